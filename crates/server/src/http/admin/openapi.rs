//! The OpenAPI 3.1 document of the admin API, derived from the handlers' annotations and the
//! types they answer with; served at `GET /api/openapi.json`.

use std::sync::OnceLock;

use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{activity, cluster, executions, parse, plugins, refusals, testing, views, workflows};
use hookflow_workflow::{Execution, Fault, Workflow};

/// The shape of every error answer.
#[derive(utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    #[allow(dead_code, reason = "describes the JSON that ApiError writes; only read by the schema derive")]
    error: ErrorDetail,
}

/// What went wrong.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(dead_code, reason = "describes the JSON that ApiError writes; only read by the schema derive")]
struct ErrorDetail {
    /// Machine-readable: `not_found`, `unauthorized`, `validation_failed`, `conflict`, ….
    code: String,
    /// For people.
    message: String,
    /// The execution the error is about, if any.
    execution_id: Option<String>,
    /// That execution's status.
    status: Option<String>,
    /// Validation errors: each fault with its JSON path.
    faults: Option<Vec<Fault>>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "hookflow admin API", description = "Workflows, executions, plugins and health of a hookflow engine. \
        Authenticate with `Authorization: Bearer <token>` (--admin-token / HOOKFLOW_ADMIN_TOKEN); without a configured \
        token only loopback clients are answered."),
    paths(
        workflows::list, workflows::create, workflows::show, workflows::replace, workflows::delete,
        workflows::enable, workflows::disable, workflows::versions, workflows::restore,
        testing::run, testing::node, testing::secrets, activity::show,
        executions::list, executions::show, executions::delete, executions::cancel, executions::rerun,
        executions::redrive, refusals::list,
        parse::query, parse::body,
        plugins::list, plugins::upload, plugins::delete,
        cluster::list,
        super::healthz, super::readyz, super::prometheus,
    ),
    components(schemas(Workflow, Execution, views::WorkflowView, views::PluginView, views::ClusterNodeView, ErrorBody)),
    modifiers(&BearerToken),
    tags(
        (name = "workflows", description = "Deployed workflows and their webhook URLs"),
        (name = "executions", description = "Execution history, cancel, re-run and redrive"),
        (name = "refusals", description = "Trigger requests the engine refused, with why"),
        (name = "parse", description = "Turn an example request into trigger variables"),
        (name = "plugins", description = "Node types: WebAssembly components of the `node` world"),
        (name = "cluster", description = "The nodes sharing a PostgreSQL store"),
        (name = "health", description = "Probes and metrics; no token needed"),
    )
)]
struct AdminApi;

/// Declares the `admin_token` bearer scheme the operations refer to.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "admin_token",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// The OpenAPI document, built once.
pub fn openapi_document() -> Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT
        .get_or_init(|| {
            let mut document = serde_json::to_value(AdminApi::openapi()).unwrap_or_default();
            document["info"]["version"] = Value::String(env!("CARGO_PKG_VERSION").into());
            add_common_responses(&mut document);
            document
        })
        .clone()
}

/// Adds the answers every operation of a kind can give, which its own annotation leaves out:
/// `401`/`403` where a token is needed (a wrong token; the loopback-mode refusals), `415` where a
/// body is taken, `422` where query parameters are parsed, and `500`/`503` everywhere (a store
/// that cannot be read or written).
fn add_common_responses(document: &mut Value) {
    let error = |description: &str| {
        serde_json::json!({"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}})
    };
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for operations in paths.values_mut().filter_map(Value::as_object_mut) {
        for (method, operation) in operations.iter_mut() {
            let secured = operation.get("security").is_some();
            let takes_body = operation.get("requestBody").is_some() || matches!(method.as_str(), "post" | "put");
            let has_query = operation
                .get("parameters")
                .and_then(Value::as_array)
                .is_some_and(|parameters| parameters.iter().any(|p| p["in"] == "query"));
            let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else { continue };
            let mut add = |status: &str, description: &str| {
                responses.entry(status.to_string()).or_insert_with(|| error(description));
            };
            if secured {
                add("401", "Missing or wrong token (`unauthorized`)");
                add(
                    "403",
                    "No token is configured and the request is not the operator's own on loopback (`admin_disabled`)",
                );
                add("422", "A parameter or body that does not parse (`validation_failed`)");
            }
            if secured && takes_body {
                add("400", "A body that is not UTF-8 text or not JSON (`invalid_body`, `invalid_json`)");
                add("415", "A body that is not JSON (a plugin upload: application/wasm)");
                add("413", "A body over the limit");
            }
            if has_query {
                add("422", "A query parameter that does not parse (`validation_failed`)");
            }
            add("500", "The store failed (`internal`)");
        }
    }
}
