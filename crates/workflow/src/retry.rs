//! Retries of failed async executions (`options.retry`): which endings are retried, and how long
//! an execution waits before its next attempt (exponential backoff with jitter, or longer when
//! the downstream said so with `Retry-After`).

use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::execution::{Execution, ExecutionStatus, JobStatus};
use crate::model::{Retry, parse_duration};
use crate::timestamp::Timestamp;

/// Most attempts `options.retry.maxAttempts` may ask for.
pub const MAX_ATTEMPTS: u32 = 100;

/// The longest wait a downstream's `Retry-After` can ask for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The node type whose answers outside 2xx may be retried.
const HTTP_REQUEST: &str = "http-request";

/// A validated `options.retry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Runs in all, the first included.
    pub max_attempts: u32,
    /// The wait before the second attempt.
    pub initial_delay: Duration,
    /// The longest wait between two attempts.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// The policy `retry` describes; `None` when its durations do not parse (validation refuses
    /// such a definition).
    pub fn of(retry: &Retry) -> Option<RetryPolicy> {
        Some(RetryPolicy {
            max_attempts: retry.max_attempts,
            initial_delay: parse_duration(&retry.initial_delay)?,
            max_delay: parse_duration(&retry.max_delay)?,
        })
    }

    /// Whether an execution that ended its attempt `attempt` runs again.
    pub fn has_attempt_after(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// How long to wait before attempt `next` (2 or more): drawn uniformly in `[d/2, d]`,
    /// `d = min(maxDelay, initialDelay × 2^(next−2))`, where `unit` in `[0, 1]` is the draw.
    pub fn delay_before(&self, next: u32, unit: f64) -> Duration {
        let doublings = next.saturating_sub(2).min(63);
        let factor = 1u64 << doublings;
        let grown = self.initial_delay.checked_mul(u32::try_from(factor).unwrap_or(u32::MAX)).unwrap_or(Duration::MAX);
        let ceiling = grown.min(self.max_delay);
        ceiling / 2 + ceiling.div_f64(2.0).mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// Whether the way `execution` ended may be retried: `error` or `aborted`, or `failed` at an
/// `http-request` answered 408, 425, 429 or 5xx (the downstream may answer otherwise later).
/// Any other `failed` is a business rule saying no, and `canceled` an operator's choice.
pub fn is_retryable(execution: &Execution) -> bool {
    match execution.status {
        ExecutionStatus::Error | ExecutionStatus::Aborted => true,
        ExecutionStatus::Failed => {
            failed_answer(execution).is_some_and(|(status, _)| matches!(status, 408 | 425 | 429 | 500..=599))
        }
        _ => false,
    }
}

/// The wait a downstream asked for with `Retry-After` (seconds or an HTTP date, relative to
/// `now`) in the answer that failed `execution`; at most a day.
pub fn downstream_retry_after(execution: &Execution, now: Timestamp) -> Option<Duration> {
    let (_, headers) = failed_answer(execution)?;
    let value = match headers.get("retry-after")? {
        Value::String(text) => text.trim().to_string(),
        Value::Array(values) => values.first()?.as_str()?.trim().to_string(),
        _ => return None,
    };
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = httpdate::parse_http_date(&value).ok()?;
            let now = SystemTime::UNIX_EPOCH + Duration::from_millis(now.0);
            at.duration_since(now).unwrap_or_default()
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The status and headers of the `http-request` answer an execution ended `failed` at.
fn failed_answer(execution: &Execution) -> Option<(u64, &serde_json::Map<String, Value>)> {
    let job = execution.jobs.last()?;
    if job.status != JobStatus::Failed || job.node_type != HTTP_REQUEST {
        return None;
    }
    let status = job.output.get("status")?.as_u64()?;
    let headers = job.output.get("headers").and_then(Value::as_object);
    static EMPTY: std::sync::OnceLock<serde_json::Map<String, Value>> = std::sync::OnceLock::new();
    Some((status, headers.unwrap_or_else(|| EMPTY.get_or_init(serde_json::Map::new))))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::execution::Job;

    fn policy(max_attempts: u32, initial: u64, max: u64) -> RetryPolicy {
        RetryPolicy { max_attempts, initial_delay: Duration::from_secs(initial), max_delay: Duration::from_secs(max) }
    }

    fn ended(status: ExecutionStatus, last: Option<(&str, JobStatus, Value)>) -> Execution {
        let id = ulid::Ulid::from_parts(1_800_000_000_000, 1);
        let mut execution = Execution::new(id, "w", 1, json!({}));
        execution.status = status;
        if let Some((node_type, status, output)) = last {
            execution.jobs.push(Job {
                node_key: "call".into(),
                node_type: node_type.into(),
                status,
                input: json!({}),
                output,
                error: None,
                started_at: Timestamp(0),
                finished_at: Timestamp(0),
                next: crate::execution::Next::Continue,
            });
        }
        execution
    }

    #[test]
    fn the_wait_doubles_from_the_initial_delay_up_to_the_maximum_with_jitter_in_its_upper_half() {
        let policy = policy(10, 10, 60);
        assert_eq!(policy.delay_before(2, 1.0), Duration::from_secs(10));
        assert_eq!(policy.delay_before(2, 0.0), Duration::from_secs(5));
        assert_eq!(policy.delay_before(3, 1.0), Duration::from_secs(20));
        assert_eq!(policy.delay_before(4, 0.5), Duration::from_secs(30));
        assert_eq!(policy.delay_before(5, 1.0), Duration::from_secs(60), "80 s is capped at 60");
        assert_eq!(policy.delay_before(99, 0.0), Duration::from_secs(30), "no overflow far out");
        assert!(policy.has_attempt_after(9));
        assert!(!policy.has_attempt_after(10));
    }

    #[test]
    fn errors_aborts_and_transient_http_answers_are_retried_business_failures_are_not() {
        assert!(is_retryable(&ended(ExecutionStatus::Error, None)));
        assert!(is_retryable(&ended(ExecutionStatus::Aborted, None)));
        for status in [408, 425, 429, 500, 503, 599] {
            let answer = ("http-request", JobStatus::Failed, json!({"status": status, "headers": {}, "data": ""}));
            assert!(is_retryable(&ended(ExecutionStatus::Failed, Some(answer))), "{status}");
        }
        for status in [400, 401, 404, 409, 422] {
            let answer = ("http-request", JobStatus::Failed, json!({"status": status, "headers": {}, "data": ""}));
            assert!(!is_retryable(&ended(ExecutionStatus::Failed, Some(answer))), "{status}");
        }
        let condition = ("condition", JobStatus::Failed, json!({"result": false}));
        assert!(!is_retryable(&ended(ExecutionStatus::Failed, Some(condition))));
        let only_data = ("http-request", JobStatus::Failed, json!("Service Unavailable"));
        assert!(!is_retryable(&ended(ExecutionStatus::Failed, Some(only_data))), "no status to judge by");
        assert!(!is_retryable(&ended(ExecutionStatus::Canceled, None)));
        assert!(!is_retryable(&ended(ExecutionStatus::Resolved, None)));
    }

    #[test]
    fn a_downstream_retry_after_is_read_as_seconds_or_an_http_date() {
        let answer = |value: Value| {
            let output = json!({"status": 503, "headers": {"retry-after": value}, "data": ""});
            ended(ExecutionStatus::Failed, Some(("http-request", JobStatus::Failed, output)))
        };
        let now = Timestamp(1_445_412_480_000); // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(downstream_retry_after(&answer(json!("120")), now), Some(Duration::from_secs(120)));
        assert_eq!(
            downstream_retry_after(&answer(json!("Wed, 21 Oct 2015 07:30:00 GMT")), now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(downstream_retry_after(&answer(json!("9999999")), now), Some(MAX_RETRY_AFTER));
        assert_eq!(downstream_retry_after(&answer(json!("soon")), now), None);
        assert_eq!(downstream_retry_after(&ended(ExecutionStatus::Error, None), now), None);
    }
}
