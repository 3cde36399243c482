//! How many async executions each workflow has queued or running and waiting in a delay, and the
//! limits they are admitted under (fairness, docs/security.md): `--max-queue` and
//! `options.maxQueued` count executions queued or running, `--max-delayed` those a delay node
//! holds. (`options.maxConcurrency`, how many of one workflow run at once, is kept by the
//! store's claims.)
//!
//! With an embedded store the process sees every change, so the counts are exact; in a cluster
//! they are read from the database every [`super::LOAD_REFRESH`], with this node's own changes
//! counted in between.

use std::collections::HashMap;
use std::sync::Mutex;

use hookflow_store::WorkflowQueue;

/// Why an async request was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `--max-queue` is reached.
    #[error("the queue holds {0} executions, its limit (--max-queue); nothing was queued")]
    Queue(usize),
    /// The workflow's `options.maxQueued` is reached.
    #[error(
        "workflow {workflow:?} has {limit} executions queued or running, its limit (options.maxQueued); nothing was queued"
    )]
    Workflow {
        /// The workflow.
        workflow: String,
        /// Its limit.
        limit: usize,
    },
    /// `--max-delayed` is reached and the workflow holds a delay node.
    #[error("{0} executions wait in a delay, the limit (--max-delayed); nothing was queued")]
    Delayed(usize),
}

#[derive(Debug, Default)]
struct Counts {
    /// Queued or running, all workflows.
    queued: usize,
    /// Waiting in a delay, all workflows.
    delayed: usize,
    /// Queued or running (not waiting in a delay), per workflow.
    workflows: HashMap<String, usize>,
}

/// The counts, behind one lock (held for a few instructions at a time).
#[derive(Debug)]
pub struct Load {
    counts: Mutex<Counts>,
    max_queue: usize,
    max_delayed: usize,
}

/// What a workflow asks of admission.
#[derive(Debug, Clone, Copy)]
pub struct Admission<'a> {
    /// The workflow.
    pub workflow: &'a str,
    /// `options.maxQueued` (default `--max-queue`).
    pub max_queued: Option<usize>,
    /// Whether it holds a delay node (refused while `--max-delayed` is reached).
    pub has_delay: bool,
}

impl Load {
    /// Empty counts under these limits.
    pub fn new(max_queue: usize, max_delayed: usize) -> Load {
        Load { counts: Mutex::default(), max_queue, max_delayed }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Replaces the counts with what the store holds (at start, and in a cluster every
    /// refresh).
    pub fn reset(&self, stored: &HashMap<String, WorkflowQueue>) {
        let mut counts = self.counts();
        counts.queued = stored.values().map(|count| count.queued).sum();
        counts.delayed = stored.values().map(|count| count.waiting).sum();
        counts.workflows = stored.iter().map(|(workflow, count)| (workflow.clone(), count.queued)).collect();
    }

    /// Counts an execution an operator reran (never refused).
    pub fn add(&self, workflow: &str) {
        let mut counts = self.counts();
        counts.queued += 1;
        *counts.workflows.entry(workflow.to_string()).or_default() += 1;
    }

    /// Admits one more queued execution of a workflow, or says which limit refuses it.
    pub fn admit(&self, admission: Admission<'_>) -> Result<(), Refusal> {
        let mut counts = self.counts();
        if counts.queued >= self.max_queue {
            return Err(Refusal::Queue(self.max_queue));
        }
        if admission.has_delay && counts.delayed >= self.max_delayed {
            return Err(Refusal::Delayed(self.max_delayed));
        }
        let limit = admission.max_queued.unwrap_or(self.max_queue);
        let workflow = counts.workflows.entry(admission.workflow.to_string()).or_default();
        if *workflow >= limit {
            return Err(Refusal::Workflow { workflow: admission.workflow.to_string(), limit });
        }
        *workflow += 1;
        counts.queued += 1;
        Ok(())
    }

    /// Forgets an admitted execution that ended (or was never stored).
    pub fn finished(&self, workflow: &str) {
        let mut counts = self.counts();
        counts.queued = counts.queued.saturating_sub(1);
        if let Some(queued) = counts.workflows.get_mut(workflow) {
            *queued = queued.saturating_sub(1);
        }
    }

    /// An execution went to wait in a delay: it no longer counts as queued.
    pub fn delayed(&self, workflow: &str) {
        let mut counts = self.counts();
        counts.queued = counts.queued.saturating_sub(1);
        counts.delayed += 1;
        if let Some(queued) = counts.workflows.get_mut(workflow) {
            *queued = queued.saturating_sub(1);
        }
    }

    /// A delayed execution woke and is queued again.
    pub fn woke(&self, workflow: &str) {
        let mut counts = self.counts();
        counts.delayed = counts.delayed.saturating_sub(1);
        counts.queued += 1;
        *counts.workflows.entry(workflow.to_string()).or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(workflow: &str) -> Admission<'_> {
        Admission { workflow, max_queued: None, has_delay: false }
    }

    #[test]
    fn each_limit_refuses_alone() {
        let load = Load::new(3, 1);
        let capped = Admission { workflow: "capped", max_queued: Some(1), has_delay: false };
        assert_eq!(load.admit(capped), Ok(()));
        assert_eq!(load.admit(capped), Err(Refusal::Workflow { workflow: "capped".into(), limit: 1 }));
        assert_eq!(load.admit(plain("other")), Ok(()), "another workflow is not held back");

        let waits = Admission { workflow: "waits", max_queued: None, has_delay: true };
        assert_eq!(load.admit(waits), Ok(()));
        load.delayed("waits");
        assert_eq!(load.admit(waits), Err(Refusal::Delayed(1)), "a delayed backlog refuses delay workflows");
        assert_eq!(load.admit(plain("other")), Ok(()), "but not the others, and delays leave --max-queue");
        assert_eq!(load.admit(plain("third")), Err(Refusal::Queue(3)));
        load.finished("other");
        assert_eq!(load.admit(plain("third")), Ok(()));
        load.woke("waits");
        assert_eq!(load.admit(waits), Err(Refusal::Queue(3)));
    }
}
