//! The webhook trigger: `POST /api/webhook:trigger/{key}`. Checks, in order, the key (404), the
//! client's address (`trigger.ipAllowlist`, 403), a handshake that needs no credentials (answered
//! at once), the method (405), the rate limit (429), the body size (413, while streaming, then
//! decoded), Basic auth and
//! the API key (401), the signature on the decoded body (401), a signed handshake (answered), and
//! the content type and syntax of the body (415, 400); turns the request into trigger data
//! `{"headers", "query", "body"}` (and `rawBody`); hands it to dispatch; answers
//! (docs/webhook.md). A refusal of a request to a known workflow is logged first ([`refusals`]).

mod answer;
mod auth;
mod body;
mod client;
mod handshake;
mod query;
mod refusals;
mod signature;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::{Map, Value};

pub use auth::constant_time_eq;
pub use body::parse_body;
pub use query::{parse_query, parse_query_example};
pub use signature::parse_stripe_header;

use crate::catalog::{Catalog, Deployed};
use crate::dispatch::{Dispatcher, Outcome, RESULT_PATH};
use crate::http::api_error::{ApiError, ErrorCode};
use crate::metrics::metrics;
use base64::Engine as _;
use hookflow_workflow::template::{parse_value_path, select};
use hookflow_workflow::{Idempotency, Variable};
use ipnet::IpNet;

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
    /// Proxies whose `X-Forwarded-For` names the client (`--trusted-proxies`).
    pub trusted_proxies: Vec<IpNet>,
    /// The origin senders call (`--public-url`), for signatures over the URL; without one,
    /// `http://` and the request's `Host`.
    pub public_url: Option<String>,
    /// Refused requests the refusal log keeps per workflow (`--keep-refusals`; 0: none).
    pub keep_refusals: usize,
}

/// The trigger routes.
pub fn router(ingress: Arc<Ingress>) -> Router {
    Router::new()
        .route(&format!("{TRIGGER_PATH}{{key}}"), any(trigger))
        .route(&format!("{RESULT_PATH}{{id}}"), get(result))
        .layer(axum::middleware::map_response(guard_answer))
        .with_state(ingress)
}

/// Headers a node may not set: the connection's framing and hop-by-hop headers belong to the
/// server (a node's `Content-Length` would let a pipelined next answer start inside the body).
const SERVER_OWNED_HEADERS: [&str; 7] =
    ["content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer"];

/// What every webhook answer gets on its way out: framing and hop-by-hop headers a node set are
/// dropped (hyper frames the body itself; a 413 says `Connection: close`, as the unread body
/// ends the connection), `X-Content-Type-Options: nosniff` is added, and an
/// HTML answer is sandboxed (`Content-Security-Policy: sandbox`), so a page built from caller
/// data cannot run script on the console's origin.
async fn guard_answer(mut response: Response) -> Response {
    let too_large = response.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE;
    let headers = response.headers_mut();
    for name in SERVER_OWNED_HEADERS {
        headers.remove(name);
    }
    if too_large {
        // The engine's own 413 comes before the body is read: the connection ends with it.
        headers.insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    }
    let proxy: Vec<header::HeaderName> =
        headers.keys().filter(|name| name.as_str().starts_with("proxy-")).cloned().collect();
    for name in proxy {
        headers.remove(name);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff"));
    let html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().to_ascii_lowercase().starts_with("text/html"));
    if html {
        headers.insert(header::CONTENT_SECURITY_POLICY, header::HeaderValue::from_static("sandbox"));
    }
    response
}

async fn trigger(State(ingress): State<Arc<Ingress>>, Path(key): Path<String>, request: Request) -> Response {
    let not_found = || ApiError::new(ErrorCode::NotFound, format!("no enabled webhook has the key {key:?}"));
    let Some(deployed) = ingress.catalog.get(&key) else {
        // Unknown keys share one label, so probing cannot grow the metrics (or the log).
        metrics().request("(unknown)", 404);
        return not_found().into_response();
    };
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip());
    let client = peer.map(|peer| client::client_address(peer, request.headers(), &ingress.trusted_proxies));
    let trigger = &deployed.workflow().trigger;
    let caller = refusals::Caller::of(request.method(), client, request.headers(), trigger);
    let answered = if deployed.workflow().enabled {
        handle(&ingress, deployed.clone(), client, request).await
    } else {
        Err(not_found())
    };
    let refused = answered.is_err();
    let response = match answered {
        Ok(response) => response,
        Err(error) => {
            refusals::record(&ingress, &key, caller, &error).await;
            error.into_response()
        }
    };
    metrics().request(&key, response.status().as_u16());
    ingress.dispatcher.activity().request(&key, refused);
    response
}

/// Answers a request to an enabled workflow; `Err` is a refusal (nothing ran, nothing queued).
async fn handle(
    ingress: &Ingress,
    deployed: Arc<Deployed>,
    client: Option<IpAddr>,
    request: Request,
) -> Result<Response, ApiError> {
    let trigger = &deployed.workflow().trigger;
    if let Some(client) = client {
        client::check_allowlist(client, &deployed.allowlist)?;
    }
    if let Some(answer) =
        handshake::unsigned(trigger.handshake.as_ref(), request.method(), request.uri().query(), request.headers())
    {
        return answer;
    }
    if request.method() != Method::POST {
        return Err(ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!("webhooks accept POST only, not {}", request.method()),
        )
        .with_header(header::ALLOW, handshake::allowed_methods(trigger.handshake.as_ref())));
    }
    if let Some(limiter) = &deployed.rate_limit {
        limiter.check().map_err(|wait| rate_limited(&deployed.key, limiter.described(), wait))?;
    }
    let (parts, body) = request.into_parts();
    let sent = body::read_limited(&parts.headers, body, ingress.body_limit, ingress.read_timeout).await?;
    let bytes = body::decode_content_encoding(&parts.headers, sent, ingress.body_limit)?;
    auth::check_basic_auth(&parts.headers, trigger.basic_auth.as_ref())?;
    let mut query = parts.uri.query().map_or_else(|| Value::Object(Map::new()), parse_query);
    auth::check_api_key(&parts.headers, &mut query, trigger.api_key.as_ref())?;
    let url = called_url(ingress.public_url.as_deref(), &parts);
    let signed = signature::Signed { headers: &parts.headers, body: &bytes, url: &url };
    signature::check_signature(&signed, trigger.signature.as_ref())?;
    let body = body::parse_body(&parts.headers, &bytes)?;
    if let Some(answer) = handshake::signed(trigger.handshake.as_ref(), &body) {
        return Ok(answer);
    }
    let headers = captured_headers(&parts.headers, &trigger.request.headers);
    let idempotency_key = trigger.idempotency.as_ref().and_then(|spec| idempotency_key(spec, &parts.headers, &body));
    // Moved into place, not through `json!`, which would copy the body value by serialising it.
    let mut data = Map::with_capacity(4);
    data.insert("headers".into(), headers);
    data.insert("query".into(), query);
    data.insert("body".into(), body);
    if trigger.request.raw_body {
        data.insert("rawBody".into(), Value::String(base64::engine::general_purpose::STANDARD.encode(&bytes)));
    }
    let data = Value::Object(data);
    let outcome = if deployed.workflow().sync {
        ingress.dispatcher.dispatch(deployed, data, idempotency_key).await
    } else {
        // Queued on a task of its own: a caller that hangs up cannot drop the request between
        // taking its idempotency key and the commit (a repeat would then queue it twice).
        let dispatcher = ingress.dispatcher.clone();
        let queued = tokio::spawn(async move { dispatcher.dispatch(deployed, data, idempotency_key).await });
        queued.await.map_err(|_| ApiError::new(ErrorCode::Internal, "the request could not be queued; retry"))?
    };
    match outcome {
        Outcome::Refused(refusal) => Err(answer::refusal_error(refusal)),
        outcome => Ok(answer::respond(outcome)),
    }
}

/// `429 rate_limited`, with `Retry-After` in whole seconds until the bucket has a token again.
fn rate_limited(workflow: &str, limit: &str, wait: Duration) -> ApiError {
    let seconds = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1).to_string();
    ApiError::new(
        ErrorCode::RateLimited,
        format!("workflow {workflow:?} accepts {limit} (options.rateLimit); retry in {seconds} s"),
    )
    .with_header(header::RETRY_AFTER, &seconds)
}

/// The URL the sender called as it saw it: the public origin (`--public-url`, else `http://` and
/// the `Host` header) followed by the path and query of the request.
fn called_url(public_url: Option<&str>, parts: &axum::http::request::Parts) -> String {
    let origin = match public_url {
        Some(origin) => origin.trim_end_matches('/').to_string(),
        None => {
            let host = parts.headers.get(header::HOST).and_then(|host| host.to_str().ok()).unwrap_or_default();
            format!("http://{host}")
        }
    };
    let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    format!("{origin}{path}")
}

/// `GET /api/webhook:result/{id}`: the answer of a sync execution whose caller got `202`,
/// authorised like its trigger.
async fn result(State(ingress): State<Arc<Ingress>>, Path(id): Path<String>, request: Request) -> Response {
    let not_found = || ApiError::new(ErrorCode::NotFound, format!("no execution {id:?}")).into_response();
    ingress.dispatcher.store().settle().await;
    let execution = match ingress.dispatcher.store().execution(&id).await {
        Ok(Some(execution)) => execution,
        Ok(None) => return not_found(),
        Err(error) => return ApiError::storage(&error, "the execution could not be read").into_response(),
    };
    let Some(deployed) = ingress.catalog.get(&execution.workflow).filter(|d| d.workflow().sync) else {
        return not_found();
    };
    if let Err(error) = auth::check_basic_auth(request.headers(), deployed.workflow().trigger.basic_auth.as_ref()) {
        return error.into_response();
    }
    match ingress.dispatcher.result(&execution).await {
        Ok(outcome) => answer::respond(outcome),
        Err(error) => ApiError::storage(&error, "the execution's answer could not be read").into_response(),
    }
}

/// The request's idempotency key: the configured header, or the value at the body path (a
/// string or a number); `None` when the request has none.
fn idempotency_key(spec: &Idempotency, headers: &HeaderMap, body: &Value) -> Option<String> {
    if let Some(name) = &spec.header {
        return headers
            .get(name.as_str())?
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|key| !key.is_empty())
            .map(str::to_string);
    }
    let path = parse_value_path(spec.body_path.as_deref()?).ok()?;
    match select(body, &path) {
        Value::String(key) if !key.is_empty() => Some(key),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
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
