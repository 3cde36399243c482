//! The webhook trigger: `POST /api/webhook:trigger/{key}`. Checks, in order, the key (404), the
//! method (405), the body size (413, while streaming), Basic auth (401), the signature on the raw
//! body (401) and the content type and syntax of the body (415, 400); turns the request into trigger data
//! `{"headers", "query", "body"}`; hands it to dispatch; answers (DESIGN §3.1).

mod auth;
mod body;
mod query;
mod signature;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Map, Value};

pub use query::{parse_query, parse_query_example};
pub use signature::parse_stripe_header;

use crate::api_error::{ApiError, EXECUTION_HEADER, ErrorCode};
use crate::catalog::Catalog;
use crate::dispatch::{AcceptError, Dispatcher, SyncAnswer};
use crate::workflow::{ExecutionStatus, Reply, Variable};

/// The route of the trigger endpoint.
pub const TRIGGER_PATH: &str = "/api/webhook:trigger/";

/// What the trigger endpoint needs.
pub struct Ingress {
    /// Deployed workflows.
    pub catalog: Arc<Catalog>,
    /// Runs executions.
    pub dispatcher: Arc<Dispatcher>,
    /// Largest accepted body, in bytes.
    pub body_limit: usize,
    /// How long the body may take to arrive.
    pub read_timeout: Duration,
}

/// The trigger routes.
pub fn router(ingress: Arc<Ingress>) -> Router {
    Router::new().route(&format!("{TRIGGER_PATH}{{key}}"), any(trigger)).with_state(ingress)
}

async fn trigger(State(ingress): State<Arc<Ingress>>, Path(key): Path<String>, request: Request) -> Response {
    handle(&ingress, &key, request).await.unwrap_or_else(IntoResponse::into_response)
}

async fn handle(ingress: &Ingress, key: &str, request: Request) -> Result<Response, ApiError> {
    let deployed = ingress
        .catalog
        .get(key)
        .filter(|deployed| deployed.workflow().enabled)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no enabled webhook has the key {key:?}")))?;
    if request.method() != Method::POST {
        return Err(ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!("webhooks accept POST only, not {}", request.method()),
        )
        .with_header(header::ALLOW, HeaderValue::from_static("POST")));
    }
    let (parts, body) = request.into_parts();
    let bytes = body::read_limited(&parts.headers, body, ingress.body_limit, ingress.read_timeout).await?;
    let trigger = &deployed.workflow().trigger;
    auth::check_basic_auth(&parts.headers, trigger.basic_auth.as_ref())?;
    signature::check_signature(&parts.headers, &bytes, trigger.signature.as_ref())?;
    let body = body::parse_body(&parts.headers, &bytes)?;
    let query = parts.uri.query().map_or_else(|| Value::Object(Map::new()), parse_query);
    let headers = captured_headers(&parts.headers, &trigger.request.headers);
    let data = serde_json::json!({ "headers": headers, "query": query, "body": body });

    if deployed.workflow().sync {
        return Ok(match ingress.dispatcher.run_sync(deployed.clone(), data).await {
            SyncAnswer::Replied { execution_id, reply } => reply_response(reply, &execution_id),
            SyncAnswer::Failed { execution_id, status } => ApiError::new(
                ErrorCode::ExecutionFailed,
                format!("execution {execution_id} ended with status {}", status.as_str()),
            )
            .with_execution(&execution_id, status)
            .into_response(),
            SyncAnswer::TimedOut { execution_id } => ApiError::new(
                ErrorCode::ExecutionTimeout,
                format!("execution {execution_id} did not answer within the sync timeout"),
            )
            .with_execution(&execution_id, ExecutionStatus::Aborted)
            .into_response(),
            SyncAnswer::Overloaded => overloaded("too many sync executions are running").into_response(),
        });
    }
    let execution_id = ingress.dispatcher.accept_async(&deployed, data).await.map_err(|error| match error {
        AcceptError::Overloaded(_) => overloaded(&format!("{error}; nothing was queued")),
        AcceptError::Store(error) => {
            tracing::error!(workflow = %deployed.key, "cannot queue an execution: {error}");
            ApiError::new(ErrorCode::Internal, "the request could not be stored; nothing was queued, retry later")
        }
    })?;
    Ok(reply_response(deployed.accept_reply.clone(), &execution_id))
}

/// A 503 that tells the caller to retry in a second.
fn overloaded(why: &str) -> ApiError {
    ApiError::new(ErrorCode::Overloaded, format!("{why}; retry later"))
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
}

/// The configured headers of the request, by lower-case name; several values join with `, `.
fn captured_headers(headers: &HeaderMap, wanted: &[Variable]) -> Value {
    let mut captured = Map::new();
    for variable in wanted {
        let name = variable.key.to_ascii_lowercase();
        let values: Vec<String> = headers
            .get_all(name.as_str())
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect();
        if !values.is_empty() {
            captured.insert(name, Value::String(values.join(", ")));
        }
    }
    Value::Object(captured)
}

/// A node's (or the trigger's) reply as an HTTP response naming the execution.
fn reply_response(reply: Reply, execution_id: &str) -> Response {
    let mut response = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(name, value);
    }
    response.header(EXECUTION_HEADER, execution_id).body(Body::from(reply.body)).unwrap_or_else(|error| {
        // Replies are checked at the plugin boundary and at validation; this is a bug.
        tracing::error!(execution = execution_id, "unusable reply: {error}");
        ApiError::new(ErrorCode::Internal, "the workflow produced an unusable reply").into_response()
    })
}
