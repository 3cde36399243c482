//! Test runs without a sender: `POST /api/workflows/{key}/test` runs a workflow on a sample
//! trigger, `POST /api/workflows/{key}/nodes/{node}/test` one node on a sample of what it may
//! read; `GET /api/secrets` names the secrets templates may use (never their values).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::openapi::ErrorBody;
use super::views::{Listing, SecretName};
use super::{Admin, ApiPath, BodyText, deployed, store_failed};
use crate::dispatch::Refusal;
use crate::http::api_error::{ApiError, ErrorCode};
use crate::http::ingress::parse_query;
use hookflow_workflow::template::Template;
use hookflow_workflow::{Execution, Node, Sample, Trial};

/// A sample trigger: what a sender's request would have given the workflow.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SampleTrigger {
    /// Headers by name (the workflow sees them by lower-case name).
    #[serde(default)]
    headers: Map<String, Value>,
    /// The query: parsed (an object), or a query string (`a=1&b[c]=2`) parsed as requests' are.
    #[serde(default)]
    query: Option<Value>,
    /// The body (any JSON).
    #[serde(default)]
    body: Value,
}

impl SampleTrigger {
    /// The trigger data `{"headers", "query", "body"}`.
    fn data(self) -> Value {
        let headers: Map<String, Value> =
            self.headers.into_iter().map(|(name, value)| (name.to_ascii_lowercase(), value)).collect();
        let query = match self.query {
            None => json!({}),
            Some(Value::String(text)) => parse_query(text.trim_start_matches('?')),
            Some(parsed) => parsed,
        };
        json!({"headers": headers, "query": query, "body": self.body})
    }
}

/// What a node is tried on, and optionally the node itself (to try a change before saving it).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct NodeTest {
    /// The trigger data the node reads as `$context`.
    #[serde(default)]
    trigger: Option<SampleTrigger>,
    /// Earlier nodes' outputs by key (`$jobsMapByNodeKey`).
    #[serde(default)]
    jobs: Map<String, Value>,
    /// Enclosing loops' scopes by loop key (`$scopes`): `{"item", "index", "length"}`.
    #[serde(default)]
    scopes: Map<String, Value>,
    /// Another node type than the stored node's (or the type of a node not saved yet).
    #[serde(rename = "type")]
    node_type: Option<String>,
    /// Another config than the stored node's.
    config: Option<Value>,
}

/// Runs the workflow's current version on a sample trigger, as a test run (`"test": true`; no
/// Basic auth, signature or idempotency checks, no failure hook). A sync workflow runs to its end
/// first (200); an async one is queued (202) and runs like a request.
#[utoipa::path(post, operation_id = "testWorkflow", path = "/api/workflows/{key}/test", tag = "workflows",
    params(("key" = String, Path, description = "The workflow key")), request_body = SampleTrigger,
    security(("admin_token" = [])),
    responses((status = 200, description = "The sync test run's execution, ended", body = Execution),
        (status = 202, description = "The async test run's execution, queued", body = Execution),
        (status = 404, description = "No such workflow", body = ErrorBody),
        (status = 422, description = "Not a sample trigger", body = ErrorBody),
        (status = 503, description = "Too many sync executions are running", body = ErrorBody)))]
pub(super) async fn run(
    State(admin): State<Arc<Admin>>,
    ApiPath(key): ApiPath<String>,
    BodyText(body): BodyText,
) -> Result<(StatusCode, Json<Execution>), ApiError> {
    let deployed = deployed(&admin, &key)?;
    let sample: SampleTrigger = parse(&body, "a sample trigger {\"headers\", \"query\", \"body\"}")?;
    let sync = deployed.workflow().sync;
    let mut execution = admin.dispatcher.test_run(deployed, sample.data()).await.map_err(|refusal| match refusal {
        Refusal::Storage(error) => store_failed(error),
        Refusal::Overloaded(why) | Refusal::InProgress { key: why } => ApiError::new(ErrorCode::Overloaded, why),
    })?;
    admin.host.secrets().mask_execution(&mut execution);
    Ok((if sync { StatusCode::OK } else { StatusCode::ACCEPTED }, Json(execution)))
}

/// Runs one node of the workflow once on a sample — its config resolved against it — and shows
/// the resolved config, the output and the directive; nothing is recorded. `type` and `config`
/// try a change before it is saved.
#[utoipa::path(post, operation_id = "testNode", path = "/api/workflows/{key}/nodes/{node}/test", tag = "workflows",
    params(("key" = String, Path, description = "The workflow key"), ("node" = String, Path, description = "The node key")),
    request_body = NodeTest, security(("admin_token" = [])),
    responses((status = 200, description = "What the node did", body = Trial),
        (status = 404, description = "No such workflow, or no such node and no type given", body = ErrorBody),
        (status = 422, description = "Not a sample, an unknown node type, or a config whose templates do not parse", body = ErrorBody)))]
pub(super) async fn node(
    State(admin): State<Arc<Admin>>,
    ApiPath((key, node_key)): ApiPath<(String, String)>,
    BodyText(body): BodyText,
) -> Result<Json<Trial>, ApiError> {
    let deployed = deployed(&admin, &key)?;
    let test: NodeTest = parse(&body, "a node test {\"trigger\", \"jobs\", \"scopes\", \"type\", \"config\"}")?;
    let stored = find_node(&deployed.workflow().nodes, &node_key);
    let node_type = match (test.node_type, stored) {
        (Some(node_type), _) => node_type,
        (None, Some(node)) => node.node_type.clone(),
        (None, None) => {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!(
                    "workflow {key:?} has no node {node_key:?}; give its \"type\" and \"config\" to try it unsaved"
                ),
            ));
        }
    };
    if admin.host.plugin(&node_type).is_none() {
        return Err(ApiError::new(
            ErrorCode::ValidationFailed,
            format!("type: no node type {node_type:?} is installed"),
        ));
    }
    let config = test.config.or_else(|| stored.map(|node| node.config.clone())).unwrap_or_else(|| json!({}));
    let config = Template::compile(&config, "config")
        .map_err(|(path, error)| ApiError::new(ErrorCode::ValidationFailed, format!("{path}: {error}")))?;
    let sample = Sample { trigger: test.trigger.unwrap_or_default().data(), jobs: test.jobs, scopes: test.scopes };
    let trial = admin.dispatcher.try_node(node_key, node_type, config, sample).await;
    trial.map(Json).ok_or_else(|| ApiError::new(ErrorCode::Internal, "the node test stopped before its end"))
}

/// Names the operator's secrets (`--secret`, `--secrets-file`), for `{{$secrets.NAME}}` in
/// templates; never their values.
#[utoipa::path(get, operation_id = "listSecrets", path = "/api/secrets", tag = "workflows", security(("admin_token" = [])),
    responses((status = 200, description = "The secrets' names, sorted", body = Listing<SecretName>)))]
pub(super) async fn secrets(State(admin): State<Arc<Admin>>) -> Json<Listing<SecretName>> {
    let mut names: Vec<String> = admin.host.secrets().names().map(str::to_string).collect();
    names.sort();
    Json(Listing { items: names.into_iter().map(|name| SecretName { name }).collect(), next_cursor: None })
}

/// A JSON body of type `T`: `400 invalid_json` when it is not JSON (`{}` is the empty sample),
/// `422` when it is not `what`.
fn parse<T: serde::de::DeserializeOwned>(body: &str, what: &str) -> Result<T, ApiError> {
    let value: Value = serde_json::from_str(body)
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("the body is not JSON: {e}")))?;
    serde_json::from_value(value)
        .map_err(|e| ApiError::new(ErrorCode::ValidationFailed, format!("expected {what}: {e}")))
}

/// The node with `key` anywhere in a chain and its branches.
fn find_node<'a>(nodes: &'a [Node], key: &str) -> Option<&'a Node> {
    nodes.iter().find_map(|node| {
        if node.key == key {
            return Some(node);
        }
        node.branches.values().find_map(|chain| find_node(chain, key))
    })
}
