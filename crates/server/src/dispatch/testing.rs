//! Test runs, from the console and the CLI, without a sender: a workflow run on a sample trigger
//! (its execution marked `test`; a sync one runs to its end before the answer, an async one is
//! queued like a request), and one node run on its own on a sample of what it may read.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use hookflow_plugin::Placement;
use hookflow_store::{RecordFate, SyncFinish};
use hookflow_workflow::template::Template;
use hookflow_workflow::{Execution, ExecutionStatus, Executor, Observer, Sample, Trial, try_node};

use super::{Dispatcher, Refusal, finished};
use crate::catalog::Deployed;

impl Dispatcher {
    /// Runs `deployed` on `trigger` as a test run (`test: true`, no failure hook): a sync
    /// workflow to its end, within the sync timeout, returned once its record is stored; an async
    /// one queued, returned `queued`.
    pub async fn test_run(&self, deployed: Arc<Deployed>, trigger: Value) -> Result<Execution, Refusal> {
        let mut execution = self.new_execution(&deployed, trigger);
        execution.test = true;
        if !deployed.workflow().sync {
            self.load.add(&deployed.key);
            if let Err(error) = self.queue(&deployed, &execution).await {
                self.load.finished(&deployed.key);
                return Err(Refusal::Storage(error));
            }
            return Ok(execution);
        }
        let Ok(slot) = self.sync_slots.clone().try_acquire_owned() else {
            return Err(Refusal::Overloaded("too many sync executions are running".into()));
        };
        let (host, store, clock, activity) =
            (self.host.clone(), self.store.clone(), self.clock.clone(), self.activity.clone());
        let mut observer = Deadline(Instant::now() + self.sync_timeout);
        let ran = tokio::task::spawn_blocking(move || {
            let runner = host.runner(Placement::BlockingThread);
            Executor { runner: &runner, clock: clock.as_ref() }.run(&deployed.plan, &mut execution, &mut observer);
            finished(&execution, &activity);
            let committed = store.record_sync_execution(SyncFinish {
                execution: &execution,
                fate: RecordFate::Keep,
                reply: None,
                idempotency: None,
                release: None,
                follow_up: None,
            });
            drop(slot);
            (execution, committed)
        })
        .await;
        let Ok((execution, committed)) = ran else {
            return Err(Refusal::Overloaded("the test run stopped before its end (the server is stopping)".into()));
        };
        match committed.await {
            Ok(Ok(_)) => Ok(execution),
            Ok(Err(error)) => Err(Refusal::Storage(error)),
            Err(_) => Err(Refusal::Overloaded("the store closed".into())),
        }
    }

    /// Runs one node (`key` of type `node_type`, with `config`) once on `sample`, on the blocking
    /// pool; nothing is recorded.
    pub async fn try_node(&self, key: String, node_type: String, config: Template, sample: Sample) -> Option<Trial> {
        let (host, clock) = (self.host.clone(), self.clock.clone());
        tokio::task::spawn_blocking(move || {
            let runner = host.runner(Placement::BlockingThread);
            try_node(&runner, clock.as_ref(), host.secrets(), (&key, &node_type), &config, &sample)
        })
        .await
        .ok()
    }
}

/// Stops a sync test run that outlives the sync timeout, before its next node (`aborted`).
struct Deadline(Instant);

impl Observer for Deadline {
    fn deadline(&self) -> Option<Instant> {
        Some(self.0)
    }

    fn interrupted(&mut self) -> Option<ExecutionStatus> {
        (Instant::now() > self.0).then_some(ExecutionStatus::Aborted)
    }
}
