//! The one JSON error shape of every HTTP answer that is an error:
//! `{"error": {"code": "...", "message": "..."}}`, plus `executionId` and `status` when the error
//! is about an execution (docs/webhook.md lists the codes).

use axum::body::Body;
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use hookflow_store::StoreError;
use hookflow_workflow::{ExecutionStatus, Reply};

/// The machine-readable error codes clients rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 404: unknown or disabled webhook, unknown resource.
    NotFound,
    /// 405: a method other than the route allows.
    MethodNotAllowed,
    /// 401: missing or wrong credentials.
    Unauthorized,
    /// 401: a webhook signature that does not verify.
    InvalidSignature,
    /// 413: a body over the limit.
    PayloadTooLarge,
    /// 415: a body whose content type is not understood.
    UnsupportedMediaType,
    /// 400: a JSON body that does not parse.
    InvalidJson,
    /// 400: a body that is not usable otherwise (not UTF-8, nested too deep).
    InvalidBody,
    /// 408: the body did not arrive within the read timeout.
    RequestTimeout,
    /// 503: too much in flight.
    Overloaded,
    /// 500: the execution ended without success.
    ExecutionFailed,
    /// 504: a sync execution ran past its timeout.
    ExecutionTimeout,
    /// 422: an invalid definition.
    ValidationFailed,
    /// 409: a duplicate.
    Conflict,
    /// 403: the admin API is closed to this client.
    AdminDisabled,
    /// 403: this client may not call this webhook (`trigger.ipAllowlist`, a wrong handshake token).
    Forbidden,
    /// 429: the workflow's rate limit is reached.
    RateLimited,
    /// 500: the engine itself failed (storage, a bug).
    Internal,
}

impl ErrorCode {
    /// The code's JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::InvalidSignature => "invalid_signature",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidBody => "invalid_body",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::ExecutionFailed => "execution_failed",
            ErrorCode::ExecutionTimeout => "execution_timeout",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::AdminDisabled => "admin_disabled",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status that goes with the code.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Unauthorized | ErrorCode::InvalidSignature => StatusCode::UNAUTHORIZED,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::InvalidJson | ErrorCode::InvalidBody => StatusCode::BAD_REQUEST,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ExecutionFailed | ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::ExecutionTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::ValidationFailed => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::AdminDisabled | ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    execution: Option<(String, ExecutionStatus)>,
    details: Vec<(&'static str, serde_json::Value)>,
    headers: Vec<(String, String)>,
}

impl ApiError {
    /// An error with a code and a human message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into(), execution: None, details: Vec::new(), headers: Vec::new() }
    }

    /// A storage failure as a client sees it: a stable code and a message written for them
    /// (`what` failed; retry, or the server's log has the cause); the cause goes to the log.
    pub fn storage(error: &StoreError, what: &str) -> ApiError {
        tracing::error!("{what}: {error}");
        if error.is_unavailable() {
            ApiError::new(ErrorCode::Overloaded, format!("{what}: the store cannot write right now; retry later"))
                .with_header(axum::http::header::RETRY_AFTER, "5")
        } else {
            ApiError::new(ErrorCode::Internal, format!("{what}: the store failed (the server's log has the cause)"))
        }
    }

    /// Names the execution the error is about (`executionId`, `status`, and the
    /// `X-Hookflow-Execution` header).
    pub fn with_execution(mut self, id: &str, status: ExecutionStatus) -> ApiError {
        self.execution = Some((id.to_string(), status));
        self
    }

    /// Adds a field to the `error` object (e.g. `faults` of a validation error).
    pub fn with_detail(mut self, name: &'static str, value: serde_json::Value) -> ApiError {
        self.details.push((name, value));
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: &str) -> ApiError {
        self.headers.push((name.as_str().to_string(), value.to_string()));
        self
    }

    /// The error's code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The error as an HTTP answer.
    pub fn to_reply(&self) -> Reply {
        let mut error = json!({ "code": self.code.as_str(), "message": self.message });
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        if let Some((id, status)) = &self.execution {
            error["executionId"] = json!(id);
            error["status"] = json!(status);
            headers.push((EXECUTION_HEADER.to_string(), id.clone()));
        }
        for (name, value) in &self.details {
            error[*name] = value.clone();
        }
        headers.extend(self.headers.iter().cloned());
        Reply { status: self.code.status().as_u16(), headers, body: json!({ "error": error }).to_string().into_bytes() }
    }
}

/// The response header naming the execution a trigger request created.
pub const EXECUTION_HEADER: &str = "x-hookflow-execution";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let too_large = self.code == ErrorCode::PayloadTooLarge;
        let mut response = reply_into_response(self.to_reply());
        if too_large {
            // Answered before the body was read: the connection cannot carry another request.
            response
                .headers_mut()
                .insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
        }
        response
    }
}

/// An HTTP answer as an axum response; headers were checked where the reply was made (plugin
/// boundary, validation), so a failure here is a bug, answered 500.
pub fn reply_into_response(reply: Reply) -> Response {
    let mut response = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(name, value);
    }
    response.body(Body::from(reply.body)).unwrap_or_else(|error| {
        tracing::error!("unusable reply: {error}");
        let body = json!({"error": {"code": "internal", "message": "the workflow produced an unusable reply"}});
        (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
    })
}
