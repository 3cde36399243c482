//! What becomes of an execution that failed: another attempt from its failed job, after a
//! backoff (`options.retry`, async workflows), a dead letter after its last attempt, and a
//! failure hook (`options.onFailure`: another async workflow started with the failed execution,
//! stored in the same transaction as the failure, so neither is recorded without the other).

use serde_json::json;

use hookflow_workflow::timestamp::Timestamp;
use hookflow_workflow::{Execution, ExecutionStatus, JobStatus, downstream_retry_after, is_retryable};

use super::{Dispatcher, failure_reason};
use crate::catalog::Deployed;
use crate::metrics::metrics;

impl Dispatcher {
    /// After an async attempt ended: when the workflow retries this ending and attempts are
    /// left, turns `execution` into the record of its wait for the next attempt (`queued`, the
    /// resolved jobs kept, `attempt` counted up, `retryAt`) and returns when that attempt is
    /// due. After the last attempt, marks it a dead letter.
    pub(super) fn next_attempt(&self, deployed: &Deployed, execution: &mut Execution) -> Option<Timestamp> {
        let policy = deployed.retry?;
        if !is_retryable(execution) {
            return None;
        }
        if !policy.has_attempt_after(execution.attempt) {
            execution.dead_letter = true;
            metrics().dead_letter(&execution.workflow);
            tracing::warn!(
                workflow = %execution.workflow,
                attempt = execution.attempt,
                "execution failed its last attempt: a dead letter"
            );
            return None;
        }
        let now = self.clock.now();
        let next = execution.attempt + 1;
        let mut wait = policy.delay_before(next, random_unit());
        if let Some(asked) = downstream_retry_after(execution, now) {
            wait = wait.max(asked);
        }
        let at = now.plus(wait);
        let reason = failure_reason(execution).unwrap_or_default();
        tracing::info!(
            workflow = %execution.workflow,
            attempt = execution.attempt,
            status = execution.status.as_str(),
            retry_at = %at,
            "execution attempt failed, tried again later: {reason}"
        );
        execution.error = Some(format!("attempt {} ended {}: {reason}", execution.attempt, execution.status.as_str()));
        let resolved = execution.jobs.iter().take_while(|job| job.status == JobStatus::Resolved).count();
        execution.jobs.truncate(resolved);
        execution.status = ExecutionStatus::Queued;
        execution.finished_at = None;
        execution.attempt = next;
        execution.retry_at = Some(at);
        metrics().retry(&execution.workflow);
        Some(at)
    }

    /// The execution of `options.onFailure`'s workflow for `execution`, when it ended `error`,
    /// `aborted` or `failed` for good: `{"execution": {"id", "workflow", "status", "error"},
    /// "trigger": ...}` is its body. None for an execution a failure hook started (no chains) or a
    /// test run started, or when the hook is not an enabled async workflow (logged).
    pub(super) fn failure_hook(&self, deployed: &Deployed, execution: &Execution) -> Option<Execution> {
        let failed =
            matches!(execution.status, ExecutionStatus::Error | ExecutionStatus::Aborted | ExecutionStatus::Failed);
        if !failed || execution.failure_of.is_some() || execution.test {
            return None;
        }
        let target = deployed.workflow().options.on_failure.as_deref()?;
        let hook = self.catalog.get(target).filter(|hook| hook.workflow().enabled && !hook.workflow().sync);
        let Some(hook) = hook else {
            tracing::warn!(
                workflow = %execution.workflow,
                "options.onFailure names {target:?}, which is not an enabled async workflow: no failure hook ran"
            );
            return None;
        };
        let body = json!({
            "execution": {
                "id": execution.id,
                "workflow": execution.workflow,
                "status": execution.status.as_str(),
                "error": failure_reason(execution),
            },
            "trigger": execution.trigger,
        });
        let mut started = self.new_execution(&hook, json!({"headers": {}, "query": {}, "body": body}));
        started.failure_of = Some(execution.id.clone());
        self.load.add(&hook.key);
        Some(started)
    }
}

/// A number drawn uniformly from `[0, 1]` (the jitter of a retry's wait).
fn random_unit() -> f64 {
    let mut bytes = [0u8; 4];
    let drawn = getrandom::fill(&mut bytes).map_or(u32::MAX / 2, |()| u32::from_le_bytes(bytes));
    f64::from(drawn) / f64::from(u32::MAX)
}
