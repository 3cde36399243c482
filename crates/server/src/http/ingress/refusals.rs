//! The refusal log's side of the trigger: every request to a known workflow that the engine
//! refuses (a check that failed, a disabled key, a rate limit, overload) is counted in
//! `/metrics` and written to the store's log — bounded per workflow, with the workflow's
//! configured headers only and an API key among them masked — before the caller hears the
//! refusal, so `GET /api/refusals` lists it once it has been answered.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use axum::http::HeaderMap;
use serde_json::Value;

use super::{Ingress, captured_headers};
use crate::http::api_error::ApiError;
use crate::metrics::metrics;
use hookflow_store::Refusal;
use hookflow_workflow::timestamp::Timestamp;
use hookflow_workflow::{SECRET_MASK, Trigger};

/// How long a refusal waits for its log entry before it is answered anyway.
const LOG_WAIT: Duration = Duration::from_secs(2);

/// What the log keeps of a request, taken before the request is consumed.
pub(super) struct Caller {
    method: String,
    client: Option<IpAddr>,
    headers: BTreeMap<String, String>,
}

impl Caller {
    /// The method, the client's address and the trigger's configured headers of a request.
    pub(super) fn of(
        method: &axum::http::Method,
        client: Option<IpAddr>,
        headers: &HeaderMap,
        trigger: &Trigger,
    ) -> Caller {
        let api_key_header = trigger.api_key.as_ref().and_then(|key| key.header.as_deref());
        let Value::Object(captured) = captured_headers(headers, &trigger.request.headers) else {
            unreachable!("captured headers are an object")
        };
        let headers = captured
            .into_iter()
            .map(|(name, value)| {
                let secret = api_key_header.is_some_and(|header| header.eq_ignore_ascii_case(&name));
                let value =
                    if secret { SECRET_MASK.to_string() } else { value.as_str().unwrap_or_default().to_string() };
                (name, value)
            })
            .collect();
        Caller { method: method.as_str().to_string(), client, headers }
    }
}

/// Counts a refusal of a request to `workflow` and logs it (unless `--keep-refusals 0`, or the
/// store cannot write: then the refusal is only counted).
pub(super) async fn record(ingress: &Ingress, workflow: &str, caller: Caller, error: &ApiError) {
    metrics().refusal(workflow, error.code().as_str());
    let store = ingress.dispatcher.store();
    if ingress.keep_refusals == 0 || store.write_failure().is_some() {
        return;
    }
    let id = ulid::Ulid::new();
    let refusal = Refusal {
        id: id.to_string(),
        time: Timestamp(id.timestamp_ms()),
        workflow: workflow.to_string(),
        method: caller.method,
        status: error.code().status().as_u16(),
        code: error.code().as_str().to_string(),
        reason: error.message().to_string(),
        client: caller.client.map(|client| client.to_string()).unwrap_or_default(),
        headers: caller.headers,
    };
    match tokio::time::timeout(LOG_WAIT, store.record_refusal(&refusal, ingress.keep_refusals)).await {
        Ok(Ok(Ok(_))) => {}
        Ok(Ok(Err(failure))) => tracing::debug!(workflow, "a refusal was not logged: {failure}"),
        Ok(Err(_)) | Err(_) => tracing::debug!(workflow, "a refusal was answered before it was logged"),
    }
}
