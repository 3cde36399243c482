//! Request bodies: read under the size limit while streaming, decoded (`Content-Encoding` gzip,
//! deflate, br — the limit applies to the decoded size), then parsed by content type — JSON
//! (`application/json` and any `+json` type), form-urlencoded (like the query), text (`text/*`,
//! XML) as a string, an empty body as `null`, anything else refused.

use std::io::Read as _;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use http_body_util::BodyExt;
use serde_json::Value;

use super::query::parse_query;
use crate::http::api_error::{ApiError, ErrorCode};
use hookflow_workflow::{MAX_NESTING, nests_deeper_than};

/// The most a declared `Content-Length` reserves before the bytes arrive.
const INITIAL_BUFFER: usize = 64 * 1024;

/// Reads the whole body within `timeout`, failing with 413 as soon as it passes `limit` bytes.
pub async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<u8>, ApiError> {
    tokio::time::timeout(timeout, read_all(headers, body, limit)).await.unwrap_or_else(|_| {
        Err(ApiError::new(
            ErrorCode::RequestTimeout,
            format!("the body did not arrive within {}", humantime::format_duration(timeout)),
        ))
    })
}

async fn read_all(headers: &HeaderMap, mut body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    let too_large =
        || ApiError::new(ErrorCode::PayloadTooLarge, format!("the body is larger than the limit of {limit} bytes"));
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    if declared.is_some_and(|length: u64| length > limit as u64) {
        return Err(too_large());
    }
    // A declared length is only a claim: never allocate more than this up front.
    let mut bytes = Vec::with_capacity(declared.map_or(0, |length| length.min(INITIAL_BUFFER as u64) as usize));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::new(ErrorCode::InvalidBody, format!("cannot read the body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}

/// Undoes the body's `Content-Encoding` (gzip, deflate, br, identity; several are undone last
/// first), refusing a decoded body larger than `limit` (413) and any other encoding (415).
pub fn decode_content_encoding(headers: &HeaderMap, bytes: Vec<u8>, limit: usize) -> Result<Vec<u8>, ApiError> {
    let encodings: Vec<String> = headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|coding| coding.trim().to_ascii_lowercase())
        .filter(|coding| !coding.is_empty() && coding != "identity")
        .collect();
    let mut bytes = bytes;
    for coding in encodings.iter().rev() {
        if bytes.is_empty() {
            break;
        }
        bytes = match coding.as_str() {
            "gzip" | "x-gzip" => decoded(flate2::read::GzDecoder::new(bytes.as_slice()), coding, limit)?,
            // HTTP's deflate is zlib; some senders send raw deflate.
            "deflate" => decoded(flate2::read::ZlibDecoder::new(bytes.as_slice()), coding, limit)
                .or_else(|_| decoded(flate2::read::DeflateDecoder::new(bytes.as_slice()), coding, limit))?,
            "br" => decoded(brotli_decompressor::Decompressor::new(bytes.as_slice(), 4096), coding, limit)?,
            other => {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    format!("Content-Encoding {other:?} is not supported; send gzip, deflate, br or none"),
                ));
            }
        };
    }
    Ok(bytes)
}

/// Everything `reader` gives, at most `limit` bytes.
fn decoded(reader: impl std::io::Read, coding: &str, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|error| ApiError::new(ErrorCode::InvalidBody, format!("the body is not valid {coding}: {error}")))?;
    if out.len() > limit {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the decoded body is larger than the limit of {limit} bytes"),
        ));
    }
    Ok(out)
}

/// Parses a body by its `Content-Type`.
pub fn parse_body(headers: &HeaderMap, bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    let Some(content_type) = headers.get(header::CONTENT_TYPE) else {
        return Err(unsupported("a body needs a Content-Type"));
    };
    let essence = content_type.to_str().unwrap_or_default().split(';').next().unwrap_or_default().trim();
    let essence = essence.to_ascii_lowercase();
    let text = || {
        std::str::from_utf8(bytes)
            .map_err(|e| ApiError::new(ErrorCode::InvalidBody, format!("the body is not UTF-8: {e}")))
    };
    if is_json(&essence) {
        let text = text()?;
        // Checked before parsing, so every record built from the body reads back.
        if nests_deeper_than(text.as_bytes(), MAX_NESTING) {
            return Err(ApiError::new(
                ErrorCode::InvalidBody,
                format!("the JSON body is nested too deeply (more than {MAX_NESTING} levels)"),
            ));
        }
        serde_json::from_str(text)
            .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("the body is not valid JSON: {e}")))
    } else if essence == "application/x-www-form-urlencoded" {
        Ok(parse_query(text()?))
    } else if is_text(&essence) {
        Ok(Value::String(text()?.to_string()))
    } else {
        Err(unsupported(&format!("Content-Type {essence:?} is not supported")))
    }
}

fn is_json(essence: &str) -> bool {
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// `text/*`, `application/xml` and any `+xml` type: the body is its text.
fn is_text(essence: &str) -> bool {
    essence.starts_with("text/")
        || essence == "application/xml"
        || (essence.starts_with("application/") && essence.ends_with("+xml"))
}

fn unsupported(what: &str) -> ApiError {
    ApiError::new(
        ErrorCode::UnsupportedMediaType,
        format!("{what}; send application/json (or any +json type), application/x-www-form-urlencoded, text/* or XML"),
    )
}
