//! The admin API (DESIGN §3.6): workflows, executions, parse-from-example, plugins, health.
//! JSON in and out; `Authorization: Bearer <token>` when a token is configured, otherwise
//! loopback clients only. Secrets are never returned: passwords and signing secrets are masked,
//! and a masked value sent back in a replacement keeps the stored secret.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api_error::{ApiError, ErrorCode};
use crate::catalog::{Catalog, DeployError, DeployMode, Deployed};
use crate::dispatch::Dispatcher;
use crate::ingress::{TRIGGER_PATH, constant_time_eq, parse_query_example};
use crate::metrics::metrics;
use crate::plugin::{LoadError, Plugin, PluginHost};
use crate::store::{ExecutionFilter, Store};
use crate::workflow::{ExecutionStatus, Workflow, example_paths, parse_workflow};

/// What stands in for a secret in answers.
pub const MASK: &str = "********";

/// Largest component accepted by upload (interpreters compiled to WebAssembly are tens of MiB).
const MAX_COMPONENT_BYTES: usize = 256 << 20;

/// Largest page of a listing.
const MAX_LIMIT: usize = 500;

/// What the admin API needs.
pub struct Admin {
    /// Deployed workflows.
    pub catalog: Arc<Catalog>,
    /// Records.
    pub store: Store,
    /// Installed node types.
    pub host: Arc<PluginHost>,
    /// Runs executions (cancel, rerun).
    pub dispatcher: Arc<Dispatcher>,
    /// Where uploaded components are kept, so they are installed again at start.
    pub plugin_dir: PathBuf,
    /// The bearer token; `None` opens the API to loopback clients only.
    pub token: Option<String>,
    /// Origin of webhook URLs in answers.
    pub origin: String,
}

/// The admin routes and the health probes.
pub fn router(admin: Arc<Admin>) -> Router {
    let api = Router::new()
        .route("/api/workflows", get(list_workflows).post(create_workflow))
        .route("/api/workflows/{key}", get(show_workflow).put(replace_workflow).delete(delete_workflow))
        .route("/api/workflows/{key}/enable", post(enable_workflow))
        .route("/api/workflows/{key}/disable", post(disable_workflow))
        .route("/api/executions", get(list_executions))
        .route("/api/executions/{id}", get(show_execution))
        .route("/api/executions/{id}/cancel", post(cancel_execution))
        .route("/api/executions/{id}/rerun", post(rerun_execution))
        .route("/api/parse/query", post(parse_query))
        .route("/api/parse/body", post(parse_body))
        .route("/api/plugins", get(list_plugins))
        .route(
            "/api/plugins/{name}",
            put(upload_plugin).delete(delete_plugin).layer(DefaultBodyLimit::max(MAX_COMPONENT_BYTES)),
        )
        .route_layer(middleware::from_fn_with_state(admin.clone(), authorize));
    Router::new()
        .route("/healthz", get(|| async { axum::Json(json!({"status": "ok"})) }))
        .route("/readyz", get(ready))
        .route(
            "/metrics",
            get(|| async {
                ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], metrics().render())
            }),
        )
        .merge(api)
        .with_state(admin)
}

async fn authorize(State(admin): State<Arc<Admin>>, request: Request, next: Next) -> Response {
    match &admin.token {
        Some(token) => {
            let presented = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.strip_prefix("Bearer "))
                .unwrap_or_default();
            if !constant_time_eq(presented.trim().as_bytes(), token.as_bytes()) {
                return ApiError::new(ErrorCode::Unauthorized, "the admin API needs Authorization: Bearer <token>")
                    .with_header(header::WWW_AUTHENTICATE, "Bearer")
                    .into_response();
            }
        }
        None => {
            let loopback = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .is_some_and(|ConnectInfo(address)| address.ip().is_loopback());
            if !loopback {
                return ApiError::new(
                    ErrorCode::AdminDisabled,
                    "no admin token is configured (--admin-token or HOOKFLOW_ADMIN_TOKEN): the admin API answers loopback clients only",
                )
                .into_response();
            }
        }
    }
    next.run(request).await
}

async fn ready(State(admin): State<Arc<Admin>>) -> Response {
    // A point read: answers whether the store can be read without scanning anything.
    match admin.store.is_queued("") {
        Ok(_) => axum::Json(json!({"status": "ready", "plugins": admin.host.plugins().len()})).into_response(),
        Err(error) => ApiError::new(ErrorCode::Overloaded, format!("store unavailable: {error}")).into_response(),
    }
}

/// A listing page: `?limit=` (default 50) and `?cursor=` (the `nextCursor` of the page before).
#[derive(Debug, Deserialize)]
struct Page {
    limit: Option<usize>,
    cursor: Option<String>,
}

impl Page {
    fn limit(&self) -> usize {
        self.limit.unwrap_or(50).clamp(1, MAX_LIMIT)
    }
}

async fn list_workflows(State(admin): State<Arc<Admin>>, Query(page): Query<Page>) -> Result<Response, ApiError> {
    let limit = page.limit();
    let after = page.cursor.unwrap_or_default();
    let all = admin.catalog.all();
    let remaining: Vec<_> = all.iter().filter(|deployed| deployed.key > after).collect();
    let mut items = Vec::new();
    for deployed in remaining.iter().take(limit) {
        items.push(workflow_json(&admin, deployed)?);
    }
    let next = (remaining.len() > limit).then(|| remaining[limit - 1].key.clone());
    Ok(axum::Json(json!({"items": items, "nextCursor": next})).into_response())
}

async fn create_workflow(State(admin): State<Arc<Admin>>, body: String) -> Result<Response, ApiError> {
    let definition = parse_workflow(&body).map_err(|e| deploy_error(DeployError::Invalid(e)))?;
    let deployed = admin.catalog.deploy(definition, None, DeployMode::Create).await.map_err(deploy_error)?;
    Ok((StatusCode::CREATED, axum::Json(workflow_json(&admin, &deployed)?)).into_response())
}

async fn show_workflow(State(admin): State<Arc<Admin>>, Path(key): Path<String>) -> Result<Response, ApiError> {
    let deployed = deployed(&admin, &key)?;
    Ok(axum::Json(workflow_json(&admin, &deployed)?).into_response())
}

async fn replace_workflow(
    State(admin): State<Arc<Admin>>,
    Path(key): Path<String>,
    body: String,
) -> Result<Response, ApiError> {
    let current = deployed(&admin, &key)?;
    let mut definition = parse_workflow(&body).map_err(|e| deploy_error(DeployError::Invalid(e)))?;
    if definition.key.as_deref().is_some_and(|given| given != key) {
        return Err(ApiError::new(ErrorCode::ValidationFailed, "the definition's key differs from the URL's"));
    }
    definition.key = Some(key);
    keep_masked_secrets(&mut definition, current.workflow());
    let deployed = admin.catalog.deploy(definition, None, DeployMode::Replace).await.map_err(deploy_error)?;
    Ok(axum::Json(workflow_json(&admin, &deployed)?).into_response())
}

async fn delete_workflow(State(admin): State<Arc<Admin>>, Path(key): Path<String>) -> Result<Response, ApiError> {
    admin.catalog.remove(&key).await.map_err(deploy_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn enable_workflow(State(admin): State<Arc<Admin>>, Path(key): Path<String>) -> Result<Response, ApiError> {
    set_enabled(&admin, &key, true).await
}

async fn disable_workflow(State(admin): State<Arc<Admin>>, Path(key): Path<String>) -> Result<Response, ApiError> {
    set_enabled(&admin, &key, false).await
}

async fn set_enabled(admin: &Admin, key: &str, enabled: bool) -> Result<Response, ApiError> {
    let mut definition = deployed(admin, key)?.workflow().clone();
    definition.enabled = enabled;
    let deployed = admin.catalog.deploy(definition, None, DeployMode::Replace).await.map_err(deploy_error)?;
    Ok(axum::Json(workflow_json(admin, &deployed)?).into_response())
}

/// `?workflow=&status=&limit=&cursor=`.
#[derive(Debug, Deserialize)]
struct ExecutionQuery {
    workflow: Option<String>,
    status: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list_executions(
    State(admin): State<Arc<Admin>>,
    Query(query): Query<ExecutionQuery>,
) -> Result<Response, ApiError> {
    let status = match &query.status {
        None => None,
        Some(name) => Some(serde_json::from_value::<ExecutionStatus>(Value::String(name.clone())).map_err(|_| {
            ApiError::new(ErrorCode::ValidationFailed, format!("status: {name:?} is not an execution status"))
        })?),
    };
    let filter = ExecutionFilter { workflow: query.workflow.clone(), status };
    let limit = Page { limit: query.limit, cursor: None }.limit();
    let mut items = admin.store.executions(&filter, query.cursor.as_deref(), limit + 1).map_err(internal)?;
    let next = (items.len() > limit).then(|| items[limit - 1].id.clone());
    items.truncate(limit);
    Ok(axum::Json(json!({"items": items, "nextCursor": next})).into_response())
}

async fn show_execution(State(admin): State<Arc<Admin>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(axum::Json(execution(&admin, &id)?).into_response())
}

async fn cancel_execution(State(admin): State<Arc<Admin>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let execution = execution(&admin, &id)?;
    let status = execution.status;
    match admin.dispatcher.cancel(execution).await.map_err(internal)? {
        Some(canceled) if canceled.status.is_final() => Ok(axum::Json(canceled).into_response()),
        // Running: it stops before its next node.
        Some(running) => Ok((StatusCode::ACCEPTED, axum::Json(running)).into_response()),
        None => Err(ApiError::new(
            ErrorCode::Conflict,
            format!("execution {id} cannot be canceled: it is {} (or a sync execution)", status.as_str()),
        )),
    }
}

async fn rerun_execution(State(admin): State<Arc<Admin>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let earlier = execution(&admin, &id)?;
    let deployed = deployed(&admin, &earlier.workflow)?;
    let rerun = admin.dispatcher.rerun(&deployed, earlier.trigger).await.map_err(internal)?;
    Ok((StatusCode::CREATED, axum::Json(rerun)).into_response())
}

fn execution(admin: &Admin, id: &str) -> Result<crate::workflow::Execution, ApiError> {
    admin
        .store
        .execution(id)
        .map_err(internal)?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no execution {id:?}")))
}

/// `{"example": ...}`.
#[derive(Debug, Deserialize)]
struct Example {
    example: Value,
}

async fn parse_query(body: String) -> Result<Response, ApiError> {
    let example = example(&body)?;
    let Value::String(text) = example else {
        return Err(ApiError::new(ErrorCode::ValidationFailed, "example: expected a URL or query string"));
    };
    Ok(paths(&parse_query_example(&text)))
}

async fn parse_body(body: String) -> Result<Response, ApiError> {
    Ok(paths(&example(&body)?))
}

fn example(body: &str) -> Result<Value, ApiError> {
    serde_json::from_str::<Example>(body)
        .map(|example| example.example)
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("expected {{\"example\": ...}}: {e}")))
}

fn paths(example: &Value) -> Response {
    let paths: Vec<Value> = example_paths(example).into_iter().map(|key| json!({"key": key})).collect();
    axum::Json(json!({"paths": paths})).into_response()
}

async fn list_plugins(State(admin): State<Arc<Admin>>) -> Response {
    let items: Vec<Value> = admin.host.plugins().iter().map(|plugin| plugin_json(plugin)).collect();
    axum::Json(json!({"items": items, "nextCursor": null})).into_response()
}

fn plugin_json(plugin: &Plugin) -> Value {
    json!({"name": plugin.name, "builtin": plugin.builtin, "digest": plugin.digest,
           "version": plugin.info.version, "configSchema": plugin.info.config_schema,
           "branches": plugin.info.branches, "mayRespond": plugin.info.may_respond})
}

/// `PUT /api/plugins/{name}` with the component bytes: checked against the `node` world and
/// compiled before it is accepted; kept in the data directory.
async fn upload_plugin(
    State(admin): State<Arc<Admin>>,
    Path(name): Path<String>,
    component: Bytes,
) -> Result<Response, ApiError> {
    let existed = admin.host.plugin(&name).is_some();
    let host = admin.host.clone();
    let (install_name, bytes) = (name.clone(), component.clone());
    let installed = tokio::task::spawn_blocking(move || host.install(&install_name, &bytes))
        .await
        .map_err(|e| internal(format!("plugin install panicked: {e}")))?;
    let plugin = installed.map_err(|error| match error {
        LoadError::BuiltinName(_) => ApiError::new(ErrorCode::Conflict, error.to_string()),
        error => ApiError::new(ErrorCode::ValidationFailed, error.to_string()),
    })?;
    std::fs::create_dir_all(&admin.plugin_dir)
        .and_then(|()| std::fs::write(admin.plugin_dir.join(format!("{name}.wasm")), &component))
        .map_err(|e| internal(format!("installed, but cannot keep the component on disk: {e}")))?;
    let status = if existed { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, axum::Json(plugin_json(&plugin))).into_response())
}

/// `DELETE /api/plugins/{name}`: refused for built-ins and while an enabled workflow uses it.
async fn delete_plugin(State(admin): State<Arc<Admin>>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let plugin =
        admin.host.plugin(&name).ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no plugin {name:?}")))?;
    if plugin.builtin {
        return Err(ApiError::new(ErrorCode::Conflict, format!("{name:?} is a built-in node")));
    }
    let users = admin.catalog.users_of(&name);
    if !users.is_empty() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("{name:?} is used by enabled workflows: {}", users.join(", ")),
        ));
    }
    admin.host.uninstall(&name);
    match std::fs::remove_file(admin.plugin_dir.join(format!("{name}.wasm"))) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(internal(error)),
        _ => {}
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn deployed(admin: &Admin, key: &str) -> Result<Arc<Deployed>, ApiError> {
    admin.catalog.get(key).ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no workflow has the key {key:?}")))
}

/// A workflow as the API shows it: its definition (secrets masked) plus `version`, `url`,
/// `createdAt`, `updatedAt`.
fn workflow_json(admin: &Admin, deployed: &Deployed) -> Result<Value, ApiError> {
    let mut value = serde_json::to_value(mask_secrets(deployed.workflow())).map_err(|e| internal(e.to_string()))?;
    let record = admin.catalog.record(&deployed.key).map_err(internal)?;
    value["version"] = json!(deployed.version);
    value["url"] = json!(format!("{}{TRIGGER_PATH}{}", admin.origin.trim_end_matches('/'), deployed.key));
    value["createdAt"] = json!(record.as_ref().map(|r| r.created_at));
    value["updatedAt"] = json!(record.as_ref().map(|r| r.updated_at));
    Ok(value)
}

fn mask_secrets(workflow: &Workflow) -> Workflow {
    let mut masked = workflow.clone();
    if let Some(auth) = &mut masked.trigger.basic_auth {
        auth.password = MASK.into();
    }
    if let Some(signature) = &mut masked.trigger.signature {
        signature.secrets_mut().iter_mut().for_each(|secret| *secret = MASK.into());
    }
    masked
}

/// A replacement that sends back masked secrets keeps the stored ones.
fn keep_masked_secrets(definition: &mut Workflow, current: &Workflow) {
    if let (Some(new), Some(old)) = (&mut definition.trigger.basic_auth, &current.trigger.basic_auth)
        && new.password == MASK
    {
        new.password.clone_from(&old.password);
    }
    if let (Some(new), Some(old)) = (&mut definition.trigger.signature, &current.trigger.signature) {
        for (secret, kept) in new.secrets_mut().iter_mut().zip(old.secrets()) {
            if secret == MASK {
                secret.clone_from(kept);
            }
        }
    }
}

fn deploy_error(error: DeployError) -> ApiError {
    match error {
        DeployError::Invalid(invalid) => {
            let faults = serde_json::to_value(&invalid.faults).unwrap_or_default();
            ApiError::new(ErrorCode::ValidationFailed, format!("invalid workflow: {invalid}"))
                .with_detail("faults", faults)
        }
        DeployError::Exists(key) => {
            ApiError::new(ErrorCode::Conflict, format!("a workflow with the key {key:?} exists already"))
        }
        DeployError::Missing(key) => ApiError::new(ErrorCode::NotFound, format!("no workflow has the key {key:?}")),
        DeployError::Store(error) => internal(error),
    }
}

fn internal(error: impl std::fmt::Display) -> ApiError {
    tracing::error!("admin API: {error}");
    ApiError::new(ErrorCode::Internal, error.to_string())
}
