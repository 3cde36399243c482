//! `/api/parse/query` and `/api/parse/body`: the console's "parse" button, turning an example
//! request into the path list of a trigger's request configuration.

use axum::Json;
use serde_json::Value;

use super::BodyText;
use super::openapi::ErrorBody;
use super::views::{Example, PathEntry, PathList, QueryExample};
use crate::http::api_error::{ApiError, ErrorCode};
use crate::http::ingress::parse_query_example;
use hookflow_workflow::example_paths;

/// Paths of an example query: a full URL, or its query part with or without `?`.
#[utoipa::path(post, operation_id = "parseQuery", path = "/api/parse/query", tag = "parse", request_body = QueryExample,
    security(("admin_token" = [])),
    responses((status = 200, description = "The paths, in order", body = PathList),
        (status = 400, description = "Not `{\"example\": ...}`", body = ErrorBody),
        (status = 422, description = "The example is not a string", body = ErrorBody)))]
pub(super) async fn query(BodyText(body): BodyText) -> Result<Json<PathList>, ApiError> {
    let Value::String(text) = example(&body)? else {
        return Err(ApiError::new(ErrorCode::ValidationFailed, "example: expected a URL or query string"));
    };
    Ok(paths(&parse_query_example(&text)))
}

/// Paths of an example JSON body.
#[utoipa::path(post, operation_id = "parseBody", path = "/api/parse/body", tag = "parse", request_body = Example,
    security(("admin_token" = [])),
    responses((status = 200, description = "The paths, in order", body = PathList),
        (status = 400, description = "Not `{\"example\": ...}`", body = ErrorBody)))]
pub(super) async fn body(BodyText(body): BodyText) -> Result<Json<PathList>, ApiError> {
    Ok(paths(&example(&body)?))
}

fn example(body: &str) -> Result<Value, ApiError> {
    serde_json::from_str::<Example>(body)
        .map(|example| example.example)
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("expected {{\"example\": ...}}: {e}")))
}

fn paths(example: &Value) -> Json<PathList> {
    Json(PathList { paths: example_paths(example).into_iter().map(|key| PathEntry { key }).collect() })
}
