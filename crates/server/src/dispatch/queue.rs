//! Async executions: stored durably and queued before the caller's acknowledgement, run by a
//! pool of workers (each job recorded as it finishes, so a restart resumes after it), held by
//! delay nodes until their time, canceled by operators, and run again on request.

use std::collections::HashSet;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{Mutex, mpsc};
use tracing::Instrument as _;

use hookflow_plugin::Placement;
use hookflow_store::{RecordFate, Store, StoreError};
use hookflow_workflow::timestamp::Timestamp;
use hookflow_workflow::{Execution, ExecutionStatus, Executor, Job, JobStatus, Observer};

use super::idempotency::Claim;
use super::load::Admission;
use super::{Dispatcher, Outcome, Refusal, fate, finished};
use crate::catalog::Deployed;
use crate::metrics::metrics;

impl Dispatcher {
    /// Stores an async execution durably and queues it; answers once it is on disk.
    pub(super) async fn accept_async(&self, deployed: &Deployed, trigger: Value, claim: Option<Claim>) -> Outcome {
        if let Some(failure) = self.store.write_failure() {
            tracing::warn!(workflow = %deployed.key, "refused a request: {failure}");
            return Outcome::Refused(Refusal::Overloaded("the store cannot write; nothing was queued".into()));
        }
        let options = &deployed.workflow().options;
        let admission = Admission {
            workflow: &deployed.key,
            max_queued: options.max_queued.map(|limit| usize::try_from(limit).unwrap_or(usize::MAX)),
            has_delay: deployed.has_delay,
        };
        if let Err(refusal) = self.load.admit(admission) {
            return Outcome::Refused(Refusal::Overloaded(refusal.to_string()));
        }
        let execution = self.new_execution(deployed, trigger);
        let record = claim.as_ref().map(|claim| claim.record(&execution.id, self.clock.now()));
        let entry = claim.as_ref().zip(record.as_ref()).map(|(claim, record)| claim.entry(record));
        if let Err(error) = self.store.enqueue(&execution, entry).await {
            self.load.finished(&deployed.key);
            tracing::error!(workflow = %deployed.key, "cannot queue an execution: {error}");
            return Outcome::Refused(Refusal::Overloaded("the request could not be stored; nothing was queued".into()));
        }
        // With no workers the receiver still exists; the execution waits for a restart.
        metrics().queue_changed(1);
        let _ = self.queue.send(execution.id.clone());
        Outcome::Answered { execution_id: execution.id, reply: deployed.accept_reply.clone() }
    }

    /// Cancels an async execution: a queued one ends `canceled` at once, a running one before its
    /// next node. Returns the record as it stands, or `None` when the execution has ended (or is
    /// a sync one, which its caller owns).
    pub async fn cancel(&self, mut execution: Execution) -> Result<Option<Execution>, StoreError> {
        let queued = self.store.is_queued(&execution.id).await?;
        if !queued || execution.status.is_final() {
            return Ok(None);
        }
        let ends_now = {
            let mut taken = self.taken.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            // No worker has it: it ends here, and a worker that takes it later skips it.
            let ends_now = execution.status == ExecutionStatus::Queued && !taken.running.contains(&execution.id);
            if ends_now {
                taken.canceled_queued.insert(execution.id.clone());
            }
            ends_now
        };
        if ends_now {
            execution.status = ExecutionStatus::Canceled;
            execution.finished_at = Some(self.clock.now());
            self.store.record_canceled(&execution);
            self.store.flush().await?;
            // Unless a worker finished it first, from a record read before this cancel.
            if let Some(stored) = self.store.execution(&execution.id).await? {
                execution = stored;
            }
        } else {
            execution.status = ExecutionStatus::Started;
            self.canceled.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(execution.id.clone());
            // A waiting execution is not running: wake it, so it sees the cancellation now.
            self.wake(&execution.id);
        }
        Ok(Some(execution))
    }

    /// Runs a workflow's current version again on an earlier execution's trigger data, in the
    /// background (as an async execution); returns the new execution.
    pub async fn rerun(&self, deployed: &Deployed, trigger: Value) -> Result<Execution, StoreError> {
        let execution = self.new_execution(deployed, trigger);
        self.load.add(&deployed.key);
        if let Err(error) = self.store.enqueue(&execution, None).await {
            self.load.finished(&deployed.key);
            return Err(error);
        }
        metrics().queue_changed(1);
        let _ = self.queue.send(execution.id.clone());
        Ok(execution)
    }

    /// Runs one queued execution to its end, or until a delay node holds it (then returns when
    /// it may go on), recording each job as it finishes; parks it instead while its workflow
    /// runs `options.maxConcurrency` executions.
    async fn run_queued(&self, id: &str) -> Left {
        self.run_queued_traced(id).instrument(tracing::error_span!("execution", id)).await
    }

    async fn run_queued_traced(&self, id: &str) -> Left {
        let mut execution = match self.store.execution(id).await {
            Ok(Some(execution)) => execution,
            Ok(None) => {
                tracing::error!(execution = id, "queued execution not found in the store");
                return Left::Finished(String::new());
            }
            Err(error) => {
                tracing::error!(execution = id, "cannot load queued execution: {error}");
                return Left::Finished(String::new());
            }
        };
        let workflow = execution.workflow.clone();
        if self.taken.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).canceled_queued.remove(id) {
            // Canceled while it was queued; the cancel recorded it.
            return Left::Finished(workflow);
        }
        if execution.status == ExecutionStatus::Unreadable {
            // Kept as it is for an operator to look at and delete; it cannot run.
            tracing::error!(execution = id, "queued execution cannot run: {}", execution.error.unwrap_or_default());
            self.store.dequeue(id);
            return Left::Finished(workflow);
        }
        if execution.status.is_final() {
            self.store.record_finished(&execution, RecordFate::Keep);
            return Left::Finished(workflow);
        }
        let deployed = match self.catalog.version(&execution.workflow, execution.version).await {
            Ok(Some(deployed)) => deployed,
            outcome => {
                let why = match outcome {
                    Err(error) => error.to_string(),
                    _ => "the workflow version no longer exists".into(),
                };
                tracing::error!(execution = id, workflow = %execution.workflow, "cannot run execution: {why}");
                execution.status = ExecutionStatus::Error;
                execution.error = Some(format!("cannot run: {why}"));
                execution.finished_at = Some(self.clock.now());
                self.store.record_finished(&execution, RecordFate::Keep);
                return Left::Finished(workflow);
            }
        };
        let max_concurrency =
            deployed.workflow().options.max_concurrency.map(|limit| usize::try_from(limit).unwrap_or(usize::MAX));
        {
            let mut taken = self.taken.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if taken.canceled_queued.remove(id) {
                // Canceled while it was queued; the cancel recorded it.
                return Left::Finished(workflow);
            }
            if !self.load.start(&workflow, id, max_concurrency) {
                return Left::Parked;
            }
            taken.running.insert(id.to_string());
        }
        execution.status = ExecutionStatus::Started;
        self.store.mark_started(&execution);
        let (host, store, canceled) = (self.host.clone(), self.store.clone(), self.canceled.clone());
        let clock = self.clock.clone();
        let span = tracing::Span::current();
        let ran = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            // The executor replays the leading resolved jobs; new ones are recorded after them.
            let next_index = execution.jobs.iter().take_while(|job| job.status == JobStatus::Resolved).count();
            let mut recorder =
                JobRecorder { store: &store, execution_id: execution.id.clone(), next_index, canceled: &canceled };
            let runner = host.runner(Placement::BlockingThread);
            let executor = Executor { runner: &runner, clock: clock.as_ref() };
            let wake_at = executor.run(&deployed.plan, &mut execution, &mut recorder).wake_at;
            match wake_at {
                // Its pending job is recorded; it stays on the queue, so a restart resumes it.
                Some(wake_at) => tracing::debug!(until = %wake_at, "execution waits"),
                None => {
                    finished(&execution);
                    store.record_finished(&execution, fate(&deployed, execution.status));
                    // A cancel that came after its last node has nothing left to stop.
                    canceled.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&execution.id);
                }
            }
            wake_at
        })
        .await;
        self.taken.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).running.remove(id);
        if let Some(parked) = self.load.stop(&workflow) {
            let _ = self.queue.send(parked);
        }
        match ran {
            Ok(Some(wake_at)) => Left::Waits(workflow, wake_at),
            Ok(None) => Left::Finished(workflow),
            Err(_) => {
                tracing::error!(execution = id, "execution panicked; it stays queued and is retried at the next start");
                Left::Finished(workflow)
            }
        }
    }

    /// Queues a waiting execution again at `wake_at` (or when an operator cancels it).
    fn wake_later(self: Arc<Self>, id: String, workflow: String, wake_at: Timestamp) {
        self.load.delayed(&workflow);
        self.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(id.clone(), workflow);
        // A cancel that came while the delay node ran found nothing waiting to wake: wake now.
        // Whoever takes the id out of `waiting` queues it, so it is queued once.
        let canceled = self.canceled.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).contains(&id);
        if canceled {
            self.wake(&id);
            return;
        }
        let dispatcher = Arc::downgrade(&self);
        let wait = Duration::from_millis(wake_at.0.saturating_sub(self.clock.now().0));
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if let Some(dispatcher) = dispatcher.upgrade() {
                dispatcher.wake(&id);
            }
        });
    }

    /// Queues a waiting execution now, unless it was woken already.
    fn wake(&self, id: &str) {
        let woken = self.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(id);
        if let Some(workflow) = woken {
            self.load.woke(&workflow);
            let _ = self.queue.send(id.to_string());
        }
    }
}

/// Where a worker left a queued execution.
enum Left {
    /// It ended (or cannot run); the workflow it belonged to.
    Finished(String),
    /// A delay node holds it until then.
    Waits(String, Timestamp),
    /// Its workflow runs `options.maxConcurrency` executions; it is queued again as one ends.
    Parked,
}

/// Starts `workers` workers taking ids from `incoming`.
pub(super) fn start_workers(dispatcher: &Arc<Dispatcher>, incoming: mpsc::UnboundedReceiver<String>, workers: usize) {
    let incoming = Arc::new(Mutex::new(incoming));
    for _ in 0..workers {
        tokio::spawn(work(Arc::downgrade(dispatcher), incoming.clone()));
    }
}

/// A worker: takes queued execution ids and runs them, one at a time, until the dispatcher goes.
async fn work(dispatcher: std::sync::Weak<Dispatcher>, incoming: Arc<Mutex<mpsc::UnboundedReceiver<String>>>) {
    loop {
        let next = incoming.lock().await.recv().await;
        let (Some(id), Some(dispatcher)) = (next, dispatcher.upgrade()) else { return };
        match dispatcher.run_queued(&id).await {
            // Still unfinished: it stays in the queue gauge while it waits.
            Left::Waits(workflow, wake_at) => dispatcher.wake_later(id, workflow, wake_at),
            Left::Finished(workflow) => {
                dispatcher.load.finished(&workflow);
                metrics().queue_changed(-1);
            }
            Left::Parked => {}
        }
    }
}

/// Records each finished job of an async execution, so a restart resumes after it.
struct JobRecorder<'a> {
    store: &'a Store,
    execution_id: String,
    next_index: usize,
    canceled: &'a StdMutex<HashSet<String>>,
}

impl Observer for JobRecorder<'_> {
    fn job_finished(&mut self, job: &Job) {
        self.store.record_job(&self.execution_id, self.next_index, job);
        self.next_index += 1;
    }

    fn interrupted(&mut self) -> Option<ExecutionStatus> {
        let mut canceled = self.canceled.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        canceled.remove(&self.execution_id).then_some(ExecutionStatus::Canceled)
    }
}

/// Queued executions workers have taken, and those canceled before a worker took them.
#[derive(Default)]
pub(super) struct Taken {
    running: HashSet<String>,
    canceled_queued: HashSet<String>,
}
