//! Running executions again: one on an operator's request (a rerun), or every execution a filter
//! matches (a redrive, `POST /api/executions/rerun`) — in batches, each earlier execution
//! recording the id of its rerun (`rerunAs`) in the same write that queues the rerun, so a later
//! redrive does not match it again, and two redrives at once (on two nodes) re-run it once.

use futures_util::future::join_all;

use hookflow_store::{Enqueued, ExecutionFilter, StoreError};
use hookflow_workflow::timestamp::Timestamp;
use hookflow_workflow::{Execution, ExecutionStatus};

use super::Dispatcher;
use crate::catalog::Deployed;

/// How many matched executions one batch of a redrive reads and re-runs.
const BATCH: usize = 200;

/// Which executions a redrive re-runs.
#[derive(Debug, Clone)]
pub struct RedriveFilter {
    /// Only this workflow's.
    pub workflow: Option<String>,
    /// Only executions that ended with one of these (final) statuses.
    pub statuses: Vec<ExecutionStatus>,
    /// Only dead letters (`true`), or only executions that are not (`false`).
    pub dead_letter: Option<bool>,
    /// Only executions created at or after this instant.
    pub since: Option<Timestamp>,
    /// Only executions created before this instant.
    pub until: Option<Timestamp>,
}

/// What a redrive did.
#[derive(Debug, Clone, Default)]
pub struct Redriven {
    /// How many executions matched (re-run before by nobody).
    pub matched: usize,
    /// The reruns queued, oldest match first (none in a dry run).
    pub queued: Vec<String>,
}

impl Dispatcher {
    /// Runs a workflow's current version again on an earlier execution's trigger data, in the
    /// background (as an async execution); returns the new execution. A finished earlier
    /// execution records it as its `rerunAs`.
    pub async fn rerun(&self, deployed: &Deployed, earlier: &Execution) -> Result<Execution, StoreError> {
        let rerun = self.new_execution(deployed, earlier.trigger.clone());
        self.load.add(&deployed.key);
        let queued = if earlier.status.is_final() {
            let earlier = Execution { rerun_as: Some(rerun.id.clone()), ..earlier.clone() };
            let now = self.clock.now();
            self.queue_with(deployed, &rerun, |owner| self.store.rerun(&earlier, &rerun, owner, false, now)).await
        } else {
            let now = self.clock.now();
            self.queue_with(deployed, &rerun, |owner| self.store.enqueue(&rerun, None, owner, now)).await
        };
        if let Err(error) = queued {
            self.load.finished(&deployed.key);
            return Err(error);
        }
        Ok(rerun)
    }

    /// Re-runs every execution `filter` matches that was not re-run before, on its workflow's
    /// current version, in batches; a dry run only counts them. Executions whose workflow is
    /// gone are counted, not re-run (logged).
    pub async fn redrive(&self, filter: &RedriveFilter, dry_run: bool) -> Result<Redriven, StoreError> {
        let mut redriven = Redriven::default();
        for status in &filter.statuses {
            let listing = ExecutionFilter {
                workflow: filter.workflow.clone(),
                status: Some(*status),
                since: filter.since,
                until: filter.until,
                dead_letter: filter.dead_letter,
                rerun: Some(false),
            };
            let mut before: Option<String> = None;
            loop {
                let batch = self.store.executions(&listing, before.as_deref(), BATCH).await?;
                let Some(last) = batch.last() else { break };
                before = Some(last.id.clone());
                redriven.matched += batch.len();
                if !dry_run {
                    let reruns = join_all(batch.iter().map(|earlier| self.rerun_once(earlier))).await;
                    for rerun in reruns {
                        redriven.queued.extend(rerun?);
                    }
                }
                if batch.len() < BATCH {
                    break;
                }
            }
        }
        if !dry_run {
            tracing::info!(matched = redriven.matched, queued = redriven.queued.len(), "redrive");
        }
        Ok(redriven)
    }

    /// Re-runs `earlier` unless another rerun took it first; the rerun's id when this one did.
    async fn rerun_once(&self, earlier: &Execution) -> Result<Option<String>, StoreError> {
        let Some(deployed) = self.catalog.get(&earlier.workflow) else {
            tracing::warn!(execution = %earlier.id, workflow = %earlier.workflow, "not re-run: the workflow is gone");
            return Ok(None);
        };
        let rerun = self.new_execution(&deployed, earlier.trigger.clone());
        let earlier = Execution { rerun_as: Some(rerun.id.clone()), ..earlier.clone() };
        self.load.add(&deployed.key);
        let now = self.clock.now();
        let queued =
            self.queue_with(&deployed, &rerun, |owner| self.store.rerun(&earlier, &rerun, owner, true, now)).await;
        match queued {
            Ok(Enqueued::New) => Ok(Some(rerun.id)),
            Ok(Enqueued::Duplicate { .. }) => {
                self.load.finished(&deployed.key);
                Ok(None)
            }
            Err(error) => {
                self.load.finished(&deployed.key);
                Err(error)
            }
        }
    }
}
