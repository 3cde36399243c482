//! Sync executions: run while the caller waits, answered by the first Response node (the
//! execution may go on after it), within the sync timeout or the workflow's sync deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use hookflow_plugin::Placement;
use hookflow_store::{Enqueued, IdempotencyEntry, IdempotencyKey, IdempotencyRecord, Store, StoreError, SyncFinish};
use hookflow_workflow::{Execution, ExecutionStatus, Executor, Observer, Reply, caller_reply};

use super::idempotency::Claim;
use super::{Dispatcher, Outcome, Refusal, SLOT_WAIT_MARGIN, execution_span, fate, finished};
use crate::catalog::Deployed;

impl Dispatcher {
    /// Runs a sync execution and waits for its answer, at most the sync timeout (or the
    /// workflow's sync deadline, past which the caller is told it still runs).
    pub(super) async fn run_sync(&self, deployed: Arc<Deployed>, trigger: Value, claim: Option<Claim>) -> Outcome {
        let Ok(slot) = self.sync_slots.clone().try_acquire_owned() else {
            return Outcome::Refused(Refusal::Overloaded("too many sync executions are running".into()));
        };
        let deadline = deployed.workflow().trigger.sync_deadline_ms.map(Duration::from_millis);
        let keep_reply = claim.is_some() || deadline.is_some();
        let mut execution = self.new_execution(&deployed, trigger);
        let execution_id = execution.id.clone();
        // In a cluster a repeat may reach another node while this one runs: the key is held in
        // the store (marked pending) until the answer is kept under it.
        let held = match claim.as_ref().filter(|_| self.store.is_shared()) {
            Some(claim) => match self.hold(&deployed, claim, &execution_id).await {
                Ok(()) => true,
                Err(outcome) => return outcome,
            },
            None => false,
        };
        if deadline.is_some() {
            // Its caller may poll for it before it ends.
            self.store.record_sync_start(&execution);
        }
        let (answer, answered) = oneshot::channel();
        let timed_out = Arc::new(AtomicBool::new(false));
        let (host, store, clock) = (self.host.clone(), self.store.clone(), self.clock.clone());
        let kept = claim.as_ref().map(|claim| KeptReply {
            store: store.clone(),
            workflow: claim.workflow.clone(),
            key: claim.key.clone(),
            record: claim.record(&execution_id, self.clock.now()),
        });
        let wait = deadline.map_or(self.sync_timeout, |deadline| deadline.min(self.sync_timeout));
        let mut observer = SyncObserver {
            execution_id: execution_id.clone(),
            answer: Some(answer),
            sent: None,
            timed_out: timed_out.clone(),
            kept,
            slot: Some(slot),
            // A little past the caller's own timeout, so the caller hears of the timeout first.
            deadline: std::time::Instant::now() + self.sync_timeout + SLOT_WAIT_MARGIN,
        };
        let dispatcher = self.me.upgrade();
        let span = execution_span(&execution);
        // Without an idempotency claim (whose commit this thread would wait for).
        let inline = deployed.runs_inline && claim.is_none();
        let placement = if inline { Placement::RuntimeThread } else { Placement::BlockingThread };
        let run = move || {
            let _entered = span.enter();
            // Sync plans hold no delay node (refused at compile), so this run ends.
            let runner = host.runner(placement);
            let executor = Executor { runner: &runner, clock: clock.as_ref() };
            let reply = executor.run(&deployed.plan, &mut execution, &mut observer).reply;
            let gave_up = observer.timed_out.load(Ordering::Acquire) && observer.answer.is_some();
            if gave_up {
                // The caller was told of the timeout before the execution finished: it counts
                // as aborted.
                execution.status = ExecutionStatus::Aborted;
            }
            let execution_id = execution.id.clone();
            let outcome = match observer.sent.take() {
                Some(reply) => Outcome::Answered { execution_id, reply },
                None if gave_up => Outcome::TimedOut { execution_id },
                None => match caller_reply(&execution, reply) {
                    Ok(reply) => Outcome::Answered { execution_id, reply },
                    Err(status) => Outcome::Failed { execution_id, status },
                },
            };
            // Only an answer is kept, and a 5xx is no answer to remember: a retry of the same
            // key runs again.
            let answer = match &outcome {
                Outcome::Answered { reply, .. } => Some(reply),
                _ => None,
            };
            let remembered = claim.as_ref().filter(|_| answer.is_some_and(|reply| reply.status < 500));
            let record = remembered.map(|claim| claim.record(&execution.id, clock.now()));
            let entry = remembered.zip(record.as_ref()).map(|(claim, record)| claim.entry(record));
            let release = claim.as_ref().filter(|_| held && remembered.is_none()).map(Claim::key);
            // Queued for writing before the caller hears back, so a shutdown that waits for
            // in-flight requests and then flushes the store cannot lose the record.
            if let Some(dispatcher) = &dispatcher {
                finished(&execution, &dispatcher.activity);
            }
            let hook = dispatcher.as_ref().and_then(|dispatcher| dispatcher.failure_hook(&deployed, &execution));
            let committed = store.record_sync_execution(SyncFinish {
                execution: &execution,
                fate: fate(&deployed, execution.status),
                reply: answer.filter(|_| keep_reply),
                idempotency: entry,
                release,
                follow_up: hook.as_ref(),
            });
            // With an idempotency key, the caller hears back (and the key is released) only once
            // a repeat can find the stored answer.
            if let Some(claim) = claim {
                wait_for_commit(committed, &execution.id);
                drop(claim);
            }
            // Free before the caller hears back, so that its next request finds the slot free.
            drop(observer.slot.take());
            if let Some(answer) = observer.answer.take() {
                let _ = answer.send(outcome);
            }
        };
        if inline {
            // Microseconds of quick built-ins: cheaper here than a hand-off to a blocking thread.
            run();
        } else {
            tokio::task::spawn_blocking(run);
        }
        match tokio::time::timeout(wait, answered).await {
            Ok(Ok(outcome)) => outcome,
            // The execution thread panicked: a bug, reported as an error execution.
            Ok(Err(_)) => Outcome::Failed { execution_id, status: ExecutionStatus::Error },
            Err(_) if deadline.is_some() => Outcome::StillRunning { execution_id },
            Err(_) => {
                timed_out.store(true, Ordering::Release);
                Outcome::TimedOut { execution_id }
            }
        }
    }

    /// Holds an idempotency key in a shared store for the sync execution `execution_id`, or
    /// answers as its first request did (or says that one still runs).
    async fn hold(&self, deployed: &Deployed, claim: &Claim, execution_id: &str) -> Result<(), Outcome> {
        let now = self.clock.now();
        let running_for = self.sync_timeout + HOLD_MARGIN;
        let expires_at = now.plus(running_for);
        let pending = IdempotencyRecord { execution_id: execution_id.to_string(), expires_at, pending: true };
        match self.store.hold_idempotency(claim.entry(&pending), now).await {
            Ok(Enqueued::New) => Ok(()),
            Ok(Enqueued::Duplicate { .. }) => Err(match self.first_answer(deployed, &claim.key).await {
                Ok(Some(answer)) => answer,
                Ok(None) => Outcome::Refused(Refusal::InProgress { key: claim.key.clone() }),
                Err(outcome) => outcome,
            }),
            Err(error) => Err(Outcome::Refused(Refusal::Storage(error))),
        }
    }

    /// The answer of a sync execution, for `GET /api/webhook:result/{id}`: its kept reply once it
    /// has ended, [`Outcome::StillRunning`] while it runs.
    pub async fn result(&self, execution: &Execution) -> Result<Outcome, StoreError> {
        let execution_id = execution.id.clone();
        if !execution.status.is_final() {
            return Ok(Outcome::StillRunning { execution_id });
        }
        Ok(match self.store.reply(&execution.id).await? {
            Some(reply) => Outcome::Answered { execution_id, reply },
            None => match caller_reply(execution, None) {
                Ok(reply) => Outcome::Answered { execution_id, reply },
                Err(status) => Outcome::Failed { execution_id, status },
            },
        })
    }
}

/// How much longer than the sync timeout a key held for a running sync execution stays held,
/// should its node die before letting go of it.
const HOLD_MARGIN: Duration = Duration::from_secs(5);

/// Waits on a blocking thread for a write the caller's answer depends on; a failed one is
/// logged (the answer goes out, but a repeat of its key will run again).
fn wait_for_commit(committed: hookflow_store::Committed, execution_id: &str) {
    match committed.blocking_recv() {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => {
            tracing::error!(
                execution = execution_id,
                "the answer kept under its idempotency key was not written: {error}"
            );
        }
        Err(_) => tracing::error!(execution = execution_id, "the store closed before the idempotency key was written"),
    }
}

/// Sends the first reply to the waiting caller and stops the execution once the caller gave up.
struct SyncObserver {
    execution_id: String,
    answer: Option<oneshot::Sender<Outcome>>,
    /// The reply sent by a Response node (the execution may go on after it).
    sent: Option<Reply>,
    timed_out: Arc<AtomicBool>,
    /// With an idempotency key: where the reply is stored before the caller hears it.
    kept: Option<KeptReply>,
    /// The execution's place among `--max-sync-inflight`; freed once its record is queued for
    /// writing (what [`Dispatcher::drain_sync`] waits for).
    slot: Option<OwnedSemaphorePermit>,
    /// When the caller stops waiting: node calls wait for an instance no longer.
    deadline: std::time::Instant,
}

/// Stores a Response node's reply under its idempotency key before it is sent, so a repeat that
/// arrives once the first caller has its answer finds that answer.
struct KeptReply {
    store: Store,
    workflow: String,
    key: String,
    record: IdempotencyRecord,
}

impl Observer for SyncObserver {
    fn replied(&mut self, reply: &Reply, ends: bool) {
        if ends {
            // The caller hears back once the record is queued for writing (at the run's end,
            // microseconds away), so a shutdown that drains requests and then flushes the store
            // cannot lose it.
            self.sent = Some(reply.clone());
            return;
        }
        let Some(answer) = self.answer.take() else { return };
        if let Some(kept) = self.kept.as_ref().filter(|_| reply.status < 500) {
            let key = IdempotencyKey { workflow: &kept.workflow, key: &kept.key };
            let entry = IdempotencyEntry { key, record: &kept.record };
            wait_for_commit(kept.store.record_reply(&self.execution_id, reply, entry), &self.execution_id);
        }
        let _ = answer.send(Outcome::Answered { execution_id: self.execution_id.clone(), reply: reply.clone() });
        self.sent = Some(reply.clone());
    }

    fn deadline(&self) -> Option<std::time::Instant> {
        Some(self.deadline)
    }

    fn interrupted(&mut self) -> Option<ExecutionStatus> {
        // Only while the caller still waits: after a reply, the execution may run on.
        (self.answer.is_some() && self.timed_out.load(Ordering::Acquire)).then_some(ExecutionStatus::Aborted)
    }
}
