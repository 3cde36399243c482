//! The admin API: workflows, executions, parse-from-example, plugins, health,
//! metrics and the OpenAPI document that describes it all.
//! JSON in and out; `Authorization: Bearer <token>` when a token is configured, otherwise
//! loopback clients only. Secrets are never returned: passwords and signing secrets are masked,
//! and a masked value sent back in a replacement keeps the stored secret.

mod activity;
mod cluster;
mod console;
mod executions;
mod openapi;
mod parse;
mod plugins;
mod refusals;
mod testing;
mod views;
mod workflows;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::json;

use crate::catalog::{Catalog, DeployError, Deployed};
use crate::dispatch::Dispatcher;
use crate::http::api_error::{ApiError, ErrorCode};
use crate::http::ingress::constant_time_eq;
use crate::metrics::metrics;
use hookflow_plugin::PluginHost;
use hookflow_store::{Store, StoreError};

pub use openapi::openapi_document;
pub use views::MASK;

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
    /// The bearer token; `None` opens the API to loopback clients only.
    pub token: Option<String>,
    /// Origin of webhook URLs in answers.
    pub origin: String,
}

/// The admin routes, the web console, the health probes, `/metrics` and `/api/openapi.json`.
pub fn router(admin: Arc<Admin>) -> Router {
    let api = Router::new()
        .route("/api/workflows", get(workflows::list).post(workflows::create))
        .route("/api/workflows/{key}", get(workflows::show).put(workflows::replace).delete(workflows::delete))
        .route("/api/workflows/{key}/enable", post(workflows::enable))
        .route("/api/workflows/{key}/disable", post(workflows::disable))
        .route("/api/workflows/{key}/versions", get(workflows::versions))
        .route("/api/workflows/{key}/test", post(testing::run))
        .route("/api/workflows/{key}/nodes/{node}/test", post(testing::node))
        .route("/api/secrets", get(testing::secrets))
        .route("/api/stats", get(activity::show))
        .route("/api/workflows/{key}/versions/{version}/restore", post(workflows::restore))
        .route("/api/executions", get(executions::list))
        .route("/api/executions/{id}", get(executions::show).delete(executions::delete))
        .route("/api/executions/{id}/cancel", post(executions::cancel))
        .route("/api/executions/{id}/rerun", post(executions::rerun))
        .route("/api/executions/rerun", post(executions::redrive))
        .route("/api/refusals", get(refusals::list))
        .route("/api/parse/query", post(parse::query))
        .route("/api/parse/body", post(parse::body))
        .route("/api/plugins", get(plugins::list))
        .route("/api/cluster", get(cluster::list))
        .route(
            "/api/plugins/{name}",
            put(plugins::upload).delete(plugins::delete).layer(DefaultBodyLimit::max(MAX_COMPONENT_BYTES)),
        )
        .route_layer(middleware::from_fn_with_state(admin.clone(), authorize));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus))
        .route("/api/openapi.json", get(|| async { axum::Json(openapi_document()) }))
        .merge(console::router())
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
            // `::ffff:127.0.0.1` (an IPv4 client of a `[::]` listener) is loopback too.
            let loopback = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .is_some_and(|ConnectInfo(address)| address.ip().to_canonical().is_loopback());
            if !loopback {
                return ApiError::new(
                    ErrorCode::AdminDisabled,
                    "no admin token is configured (--admin-token or HOOKFLOW_ADMIN_TOKEN): the admin API answers loopback clients only",
                )
                .into_response();
            }
            // A web page the operator visits is on loopback too: refuse what a browser sends for
            // another site (cross-site request forgery) or under another name (DNS rebinding).
            if let Some(why) = proxied_request(&request) {
                return ApiError::new(
                    ErrorCode::AdminDisabled,
                    format!("{why}: a proxy is in front, so loopback proves nothing; set an admin token (--admin-token or HOOKFLOW_ADMIN_TOKEN)"),
                )
                .into_response();
            }
            if let Some(why) = foreign_browser_request(&request, &admin.origin) {
                return ApiError::new(
                    ErrorCode::AdminDisabled,
                    format!("no admin token is configured, and the admin API refuses {why}"),
                )
                .into_response();
            }
            if let Some(error) = form_like_body(&request) {
                return error.into_response();
            }
        }
    }
    next.run(request).await
}

/// Headers a proxy adds to what it forwards.
const PROXY_HEADERS: [&str; 5] = ["forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip", "via"];

/// Why a loopback request looks forwarded by a proxy on the same host: it carries a header a
/// proxy adds, or it speaks HTTP/1.0 (nginx's default towards its upstream).
fn proxied_request(request: &Request) -> Option<String> {
    if let Some(name) = PROXY_HEADERS.into_iter().find(|name| request.headers().contains_key(*name)) {
        return Some(format!("the request carries {name}"));
    }
    (request.version() < axum::http::Version::HTTP_11).then(|| "the request is HTTP/1.0".to_string())
}

/// Why a request on loopback is not the operator's own: a browser marked it as sent for another
/// site or from another origin, or it names a host that is not a loopback name.
fn foreign_browser_request(request: &Request, own_origin: &str) -> Option<String> {
    let headers = request.headers();
    let site = headers.get("sec-fetch-site").and_then(|value| value.to_str().ok());
    if site.is_some_and(|site| site != "same-origin" && site != "none") {
        return Some("requests a browser sends from another site".into());
    }
    let host = headers.get(header::HOST).and_then(|value| value.to_str().ok());
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default().trim_end_matches('/');
        let own_host = host.is_some_and(|host| origin.eq_ignore_ascii_case(&format!("http://{host}")));
        if !own_host && !origin.eq_ignore_ascii_case(own_origin.trim_end_matches('/')) {
            return Some(format!("requests from the origin {origin:?}"));
        }
    }
    let name = host.map(|host| match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    });
    let loopback_name = |name: &str| {
        name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    };
    if name.is_some_and(|name| !loopback_name(name)) {
        return Some("requests for a host name other than localhost or a loopback address".into());
    }
    None
}

/// `415` for a body a cross-site HTML form can send without a preflight (none, `text/plain`,
/// form-urlencoded, multipart): the API takes JSON, and a plugin upload `application/wasm`.
fn form_like_body(request: &Request) -> Option<ApiError> {
    let headers = request.headers();
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|value| value.to_str().ok());
    let has_body =
        headers.contains_key(header::TRANSFER_ENCODING) || declared.is_some_and(|length| length.trim() != "0");
    if !has_body {
        return None;
    }
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
    let form_like = match essence.as_deref() {
        None | Some("") => true,
        Some(essence) => ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"].contains(&essence),
    };
    form_like.then(|| {
        let sent = essence.filter(|essence| !essence.is_empty()).unwrap_or_else(|| "no Content-Type".into());
        ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("the admin API takes application/json (a plugin upload application/wasm), not {sent}"),
        )
    })
}

/// Liveness: the process answers.
#[utoipa::path(get, operation_id = "healthz", path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is alive", body = views::Health)))]
async fn healthz() -> axum::Json<views::Health> {
    axum::Json(views::Health { status: "ok".into(), plugins: None })
}

/// Readiness: the store can be read and written, and the plugins are loaded.
#[utoipa::path(get, operation_id = "readyz", path = "/readyz", tag = "health", responses(
    (status = 200, description = "Ready to take requests", body = views::Health),
    (status = 503, description = "The store cannot be read, its last write failed, or this node lost its cluster lease", body = openapi::ErrorBody)))]
async fn readyz(State(admin): State<Arc<Admin>>) -> Response {
    // The writer logged the failure; a load balancer's polls need not log it again.
    if admin.store.write_failure().is_some() {
        return ApiError::new(ErrorCode::Overloaded, "not ready: the store cannot write right now; retry later")
            .with_header(header::RETRY_AFTER, "5")
            .into_response();
    }
    if admin.store.owner().is_none() {
        return ApiError::new(
            ErrorCode::Overloaded,
            "not ready: this node lost its cluster lease and is joining again",
        )
        .with_header(header::RETRY_AFTER, "2")
        .into_response();
    }
    // A point read: answers whether the store can be read without scanning anything.
    match admin.store.is_queued("").await {
        Ok(_) => axum::Json(views::Health { status: "ready".into(), plugins: Some(admin.host.plugins().len()) })
            .into_response(),
        Err(error) => {
            tracing::error!("not ready: {error}");
            ApiError::new(ErrorCode::Overloaded, "not ready: the store cannot be read").into_response()
        }
    }
}

/// Counters, gauges and histograms in Prometheus text format.
#[utoipa::path(get, operation_id = "metrics", path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text exposition format", body = String,
        content_type = "text/plain; version=0.0.4")))]
async fn prometheus(State(admin): State<Arc<Admin>>) -> impl IntoResponse {
    // Read from the store, so in a cluster it is every node's backlog.
    let depth =
        admin.store.queue_depth().await.map_err(|error| tracing::warn!("metrics: no queue depth: {error}")).ok();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], metrics().render(depth))
}

/// Path parameters whose rejection (`/versions/-1`, invalid UTF-8) is the JSON error shape:
/// `422 validation_failed`.
struct ApiPath<T>(T);

impl<T: serde::de::DeserializeOwned + Send, S: Send + Sync> axum::extract::FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| ApiPath(value))
            .map_err(|rejection| ApiError::new(ErrorCode::ValidationFailed, rejection.body_text()))
    }
}

/// A request body as text, with the API's own errors: `413` past the limit, `400 invalid_body`
/// when it is not UTF-8 (axum's `String` extractor answers those in plain text).
struct BodyText(String);

impl<S: Send + Sync> axum::extract::FromRequest<S> for BodyText {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(request, state).await.map_err(|rejection| {
            let code = if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ErrorCode::PayloadTooLarge
            } else {
                ErrorCode::InvalidBody
            };
            ApiError::new(code, rejection.body_text())
        })?;
        String::from_utf8(bytes.to_vec())
            .map(BodyText)
            .map_err(|e| ApiError::new(ErrorCode::InvalidBody, format!("the body is not UTF-8: {e}")))
    }
}

/// Query parameters whose rejection (`?limit=ten`) is the JSON error shape: `422
/// validation_failed`.
struct ApiQuery<T>(T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| ApiQuery(value))
            .map_err(|rejection| ApiError::new(ErrorCode::ValidationFailed, rejection.body_text()))
    }
}

/// A listing page: `?limit=` (default 50, at most 500) and `?cursor=` (the `nextCursor` of the
/// page before).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Page {
    /// Most items in the page (default 50, at most 500).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
    /// The `nextCursor` of the page before.
    cursor: Option<String>,
}

impl Page {
    /// The page size; `422` outside 1 to 500.
    fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(50),
            Some(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
            Some(limit) => {
                Err(ApiError::new(ErrorCode::ValidationFailed, format!("limit: {limit} is outside 1 to {MAX_LIMIT}")))
            }
        }
    }
}

fn deployed(admin: &Admin, key: &str) -> Result<Arc<Deployed>, ApiError> {
    admin.catalog.get(key).ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no workflow has the key {key:?}")))
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
        error @ DeployError::Stale { .. } => ApiError::new(
            ErrorCode::Conflict,
            format!("{error}: reload it and make your change again (If-Match named the version it was made from)"),
        ),
        error @ DeployError::Contended(_) => ApiError::new(ErrorCode::Conflict, error.to_string()),
        error @ DeployError::SyncChanged(_) => {
            let fault = json!([{"path": "sync", "message": "fixed when the workflow is created"}]);
            ApiError::new(ErrorCode::ValidationFailed, error.to_string()).with_detail("faults", fault)
        }
        DeployError::Store(error) => store_failed(error),
    }
}

/// A failure of the engine itself: the cause goes to the log; the client hears that it failed.
fn internal(error: impl std::fmt::Display) -> ApiError {
    tracing::error!("admin API: {error}");
    ApiError::new(ErrorCode::Internal, "the server failed (its log has the cause)")
}

/// A storage failure: `503` while the store cannot write, `500` otherwise; the cause goes to
/// the log.
fn store_failed(error: StoreError) -> ApiError {
    ApiError::storage(&error, "the admin API could not read or write the store")
}
