//! What a trigger caller gets for each dispatch [`Outcome`]: the one place their statuses,
//! error codes and headers are chosen.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use hookflow_workflow::{ExecutionStatus, Reply};

use crate::dispatch::{Outcome, RESULT_PATH, Refusal};
use crate::http::api_error::{ApiError, EXECUTION_HEADER, ErrorCode, reply_into_response};

/// The HTTP answer to a trigger request (or a result poll) that ended with `outcome`.
pub fn respond(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Answered { execution_id, reply } => {
            reply_into_response(reply.with_header(EXECUTION_HEADER, &execution_id))
        }
        Outcome::Failed { execution_id, status } => ApiError::new(
            ErrorCode::ExecutionFailed,
            format!("execution {execution_id} ended with status {}", status.as_str()),
        )
        .with_execution(&execution_id, status)
        .into_response(),
        Outcome::TimedOut { execution_id } => ApiError::new(
            ErrorCode::ExecutionTimeout,
            format!("execution {execution_id} did not answer within the sync timeout"),
        )
        .with_execution(&execution_id, ExecutionStatus::Aborted)
        .into_response(),
        Outcome::StillRunning { execution_id } => reply_into_response(still_running(&execution_id)),
        Outcome::Refused(refusal) => refusal_error(refusal).into_response(),
    }
}

/// The error a refused request gets.
pub fn refusal_error(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::Overloaded(why) => {
            ApiError::new(ErrorCode::Overloaded, format!("{why}; retry later")).with_header(header::RETRY_AFTER, "1")
        }
        Refusal::InProgress { key } => ApiError::new(
            ErrorCode::Conflict,
            format!("the first request with idempotency key {key:?} is still being processed"),
        ),
        Refusal::Storage(error) => ApiError::storage(&error, "the request's idempotency key could not be looked up"),
    }
}

/// `202` with where to poll.
fn still_running(execution_id: &str) -> Reply {
    let location = format!("{RESULT_PATH}{execution_id}");
    let body = json!({"executionId": execution_id, "status": "started", "location": location});
    Reply {
        status: 202,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("location".into(), location),
            (EXECUTION_HEADER.into(), execution_id.into()),
        ],
        body: body.to_string().into_bytes(),
    }
}
