//! Senders' verification handshakes (`trigger.handshake`), answered by the engine before any
//! execution — none creates one. The unsigned ones come before authentication (Meta's and X's
//! `GET`, CloudEvents' `OPTIONS`, Microsoft Graph's `validationToken`: those senders send no
//! credentials with them); Slack's and Zoom's come in signed `POST`s and are answered after the
//! signature check, on the parsed body.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::auth::constant_time_eq;
use super::query::parse_query;
use crate::http::api_error::{ApiError, ErrorCode};
use hookflow_workflow::Handshake;

/// Answers a handshake that needs no credentials; `None` when the request is not one (it goes on
/// to the method check).
pub fn unsigned(
    handshake: Option<&Handshake>,
    method: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Option<Result<Response, ApiError>> {
    let handshake = handshake?;
    let parameter = |name: &str| {
        let parsed = parse_query(query.unwrap_or_default());
        parsed.get(name).and_then(Value::as_str).map(str::to_string)
    };
    match (handshake, method) {
        (Handshake::MicrosoftGraph, &Method::POST) => parameter("validationToken").map(|token| Ok(text(token))),
        (Handshake::Meta { verify_token }, &Method::GET) if parameter("hub.mode").is_some() => {
            let presented = parameter("hub.verify_token").unwrap_or_default();
            if parameter("hub.mode").as_deref() != Some("subscribe")
                || !constant_time_eq(presented.as_bytes(), verify_token.as_bytes())
            {
                return Some(Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "the Meta verification request does not carry this webhook's verify token",
                )));
            }
            Some(Ok(text(parameter("hub.challenge").unwrap_or_default())))
        }
        (Handshake::X { consumer_secret }, &Method::GET) => parameter("crc_token").map(|token| {
            let token = STANDARD.encode(hmac_sha256(consumer_secret.as_bytes(), token.as_bytes()));
            Ok(axum::Json(json!({"response_token": format!("sha256={token}")})).into_response())
        }),
        (Handshake::Cloudevents, &Method::OPTIONS) => {
            let origin = headers.get("webhook-request-origin")?.clone();
            let mut answer = StatusCode::OK.into_response();
            answer.headers_mut().insert("webhook-allowed-origin", origin);
            answer.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
            if let Some(rate) = headers.get("webhook-request-rate") {
                answer.headers_mut().insert("webhook-allowed-rate", rate.clone());
            }
            Some(Ok(answer))
        }
        _ => None,
    }
}

/// Answers a signed handshake from its parsed body; `None` when the body is not one (it goes on
/// to an execution).
pub fn signed(handshake: Option<&Handshake>, body: &Value) -> Option<Response> {
    match handshake? {
        Handshake::Slack if body["type"] == "url_verification" => {
            let challenge = body["challenge"].clone();
            Some(axum::Json(json!({"challenge": challenge})).into_response())
        }
        Handshake::Zoom { secret_token } if body["event"] == "endpoint.url_validation" => {
            let plain = body["payload"]["plainToken"].as_str()?;
            let encrypted = hex(&hmac_sha256(secret_token.as_bytes(), plain.as_bytes()));
            Some(axum::Json(json!({"plainToken": plain, "encryptedToken": encrypted})).into_response())
        }
        _ => None,
    }
}

/// The methods a workflow's webhook takes, for `Allow`.
pub fn allowed_methods(handshake: Option<&Handshake>) -> &'static str {
    match handshake {
        Some(Handshake::Meta { .. } | Handshake::X { .. }) => "GET, POST",
        Some(Handshake::Cloudevents) => "POST, OPTIONS",
        _ => "POST",
    }
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else { return Vec::new() };
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
