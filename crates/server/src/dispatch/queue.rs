//! Async executions: stored durably and queued before the caller's acknowledgement, claimed from
//! the store by this process (at once when a worker is free, else by the claimer), run by a
//! worker with each job recorded as it finishes (so another owner, or a restart, resumes after
//! it; a run of quick built-ins is recorded once, at its end), put back on the queue while a
//! delay node holds them or their next attempt waits ([`super::failures`]), and canceled by
//! operators.
//!
//! Every write of a claimed execution's progress is fenced by the claim's owner: a node that
//! lost its lease stops the execution before its next node and nothing it still writes lands.

use std::sync::Weak;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, broadcast};
use tracing::Instrument as _;

use hookflow_plugin::Placement;
use hookflow_store::{Canceled, Claimed, Enqueued, Owner, RecordFate, StoreError, StoreEvent};
use hookflow_workflow::{Execution, ExecutionStatus, Executor, Job, JobStatus, Observer};

use super::idempotency::Claim;
use super::load::Admission;
use super::{Dispatcher, Outcome, Refusal, fate, finished};
use crate::catalog::Deployed;

/// Most executions claimed in one go.
const CLAIM_BATCH: usize = 64;

/// In a cluster, how often a claimer with nothing to do looks anyway (other nodes' notices can
/// be missed); the wait is drawn between half and all of it, so nodes do not look together.
const CLUSTER_POLL: Duration = Duration::from_secs(1);

/// How long a cancel request is remembered for an execution that no worker here runs.
const CANCEL_MEMORY: Duration = Duration::from_secs(3600);

/// How long a claimed execution whose record could not be read waits before it is claimed and
/// read again (a store that lost its connection for a moment).
const READ_RETRY: Duration = Duration::from_secs(5);

/// Where a worker left a claimed execution.
enum Left {
    /// It ended (or cannot run): off the queue.
    Finished,
    /// A delay node or its next attempt holds it, or its record could not be read: it is back
    /// on the queue, due later.
    Waits,
    /// This process lost the claim (its lease): it wrote nothing more; another owner goes on.
    Lost,
    /// It could not run (the process stops, or the run panicked); it stays claimed until the
    /// process restarts or its lease moves on.
    Stuck,
}

impl Dispatcher {
    /// Stores an async execution durably and queues it; answers once it is committed. A worker
    /// free right now claims it in the same write.
    pub(super) async fn accept_async(&self, deployed: &Deployed, trigger: Value, claim: Option<Claim>) -> Outcome {
        if let Some(failure) = self.store.write_failure() {
            // The store logged its failure once; each refusal is not news.
            tracing::debug!(workflow = %deployed.key, "refused a request: {failure}");
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
        let now = self.clock.now();
        let queued = self.enqueue_hiring(deployed, |owner| self.store.enqueue(&execution, entry, owner, now)).await;
        let hired = match queued {
            Ok((Enqueued::New, hired)) => hired,
            Ok((Enqueued::Duplicate { execution_id }, _)) => {
                // Another node took the key first: answered like its request.
                self.load.finished(&deployed.key);
                return Outcome::Answered { execution_id, reply: deployed.accept_reply.clone() };
            }
            Err(error) => {
                self.load.finished(&deployed.key);
                tracing::error!(workflow = %deployed.key, "cannot queue an execution: {error}");
                return Outcome::Refused(Refusal::Overloaded(
                    "the request could not be stored; nothing was queued".into(),
                ));
            }
        };
        let execution_id = execution.id.clone();
        if let Some(hired) = hired {
            // Its worker runs it from the record in hand, not one read back from the store.
            self.run_hired(hired, execution);
        }
        Outcome::Answered { execution_id, reply: deployed.accept_reply.clone() }
    }

    /// Stores a new execution of `deployed` and queues it; a worker free right now claims it in
    /// the same write and runs it (none for a workflow with `options.maxConcurrency`: the store's
    /// claims keep that).
    pub(super) async fn queue(&self, deployed: &Deployed, execution: &Execution) -> Result<Enqueued, StoreError> {
        let now = self.clock.now();
        self.queue_with(deployed, execution, |owner| self.store.enqueue(execution, None, owner, now)).await
    }

    /// Queues a new execution of `deployed` by `write` (given the owner that claims it in the
    /// same write, when a worker is free now), then runs it on that worker.
    pub(super) async fn queue_with<F: Future<Output = Result<Enqueued, StoreError>>>(
        &self,
        deployed: &Deployed,
        execution: &Execution,
        write: impl FnOnce(Option<Owner>) -> F,
    ) -> Result<Enqueued, StoreError> {
        let (enqueued, hired) = self.enqueue_hiring(deployed, write).await?;
        if let Some(hired) = hired {
            self.run_hired(hired, execution.clone());
        }
        Ok(enqueued)
    }

    /// Queues a new execution of `deployed` by `write`, given the owner that claims it in the
    /// same write when a worker is free now; returns that worker when it did.
    async fn enqueue_hiring<F: Future<Output = Result<Enqueued, StoreError>>>(
        &self,
        deployed: &Deployed,
        write: impl FnOnce(Option<Owner>) -> F,
    ) -> Result<(Enqueued, Option<Hired>), StoreError> {
        let worker = deployed
            .workflow()
            .options
            .max_concurrency
            .is_none()
            .then(|| self.workers.clone().try_acquire_owned().ok())
            .flatten();
        let owner = worker.as_ref().and_then(|_| self.store.owner());
        let enqueued = write(owner).await?;
        let hired = match (&enqueued, worker, owner) {
            (Enqueued::New, Some(worker), Some(owner)) => Some(Hired { worker, owner }),
            _ => None,
        };
        Ok((enqueued, hired))
    }

    /// Runs an execution that its worker claimed as it was queued, from the record just written.
    fn run_hired(&self, hired: Hired, execution: Execution) {
        let claimed = Claimed {
            id: execution.id.clone(),
            workflow: execution.workflow.clone(),
            takeovers: 0,
            cancel: false,
            waited: false,
        };
        self.run(claimed, hired.owner, hired.worker, Some(execution));
    }

    /// Cancels an async execution: one nobody runs ends `canceled` at once, one running (here or
    /// on another node) or waiting in a delay before its next node. Returns the record as it
    /// stands, or `None` when the execution has ended (or is a sync one, which its caller owns).
    pub async fn cancel(&self, mut execution: Execution) -> Result<Option<Execution>, StoreError> {
        if execution.status.is_final() {
            return Ok(None);
        }
        let now = self.clock.now();
        let ended = Execution { status: ExecutionStatus::Canceled, finished_at: Some(now), ..execution.clone() };
        Ok(match self.store.cancel(&ended, now).await? {
            Canceled::Ended => {
                self.load.finished(&execution.workflow);
                Some(ended)
            }
            Canceled::Requested => {
                execution.status = ExecutionStatus::Started;
                Some(execution)
            }
            Canceled::NotQueued => None,
        })
    }

    /// Runs a claimed execution on a task of its own, holding `worker` until it leaves; `held`
    /// is its record when this process has it in hand (else it is read from the store).
    fn run(&self, claimed: Claimed, owner: Owner, worker: OwnedSemaphorePermit, held: Option<Execution>) {
        let Some(dispatcher) = self.me.upgrade() else { return };
        if claimed.cancel {
            self.remember_cancel(&claimed.id);
        }
        if claimed.waited {
            self.load.woke(&claimed.workflow);
        }
        tokio::spawn(async move {
            let span = tracing::error_span!("execution", id = %claimed.id);
            let left = dispatcher.run_claimed(&claimed, owner, held).instrument(span).await;
            match left {
                Left::Finished => {
                    dispatcher.load.finished(&claimed.workflow);
                    dispatcher.forget_cancel(&claimed.id);
                }
                Left::Waits => dispatcher.load.delayed(&claimed.workflow),
                Left::Lost | Left::Stuck => {}
            }
            drop(worker);
            // A worker is free (and a workflow at its concurrency limit may go on).
            dispatcher.wake.notify_one();
        });
    }

    /// Runs one claimed execution to its end, or until a delay node holds it, recording each job
    /// as it finishes (a short plan of quick built-ins, which runs in microseconds and may run
    /// again from its start after a crash, is recorded once, when it ends).
    async fn run_claimed(&self, claimed: &Claimed, owner: Owner, held: Option<Execution>) -> Left {
        let id = claimed.id.as_str();
        let read = match held {
            Some(execution) => Ok(Some(execution)),
            None => self.store.execution(id).await,
        };
        let mut execution = match read {
            Ok(Some(execution)) => execution,
            Ok(None) => {
                tracing::error!("queued execution not found in the store; taken off the queue");
                self.store.dequeue(id, owner);
                return Left::Finished;
            }
            Err(error) => {
                tracing::error!("cannot load a queued execution, tried again in {} s: {error}", READ_RETRY.as_secs());
                self.store.release(id, self.clock.now().plus(READ_RETRY), owner);
                return Left::Waits;
            }
        };
        if execution.status == ExecutionStatus::Unreadable {
            // Kept as it is for an operator to look at and delete; it cannot run.
            tracing::error!("queued execution cannot run: {}", execution.error.unwrap_or_default());
            self.store.dequeue(id, owner);
            return Left::Finished;
        }
        if execution.status.is_final() {
            self.store.record_finished(&execution, RecordFate::Keep, owner, None);
            return Left::Finished;
        }
        if let Some(retry_at) = execution.retry_at.filter(|at| *at > self.clock.now() && !self.cancel_requested(id)) {
            // Claimed before its next attempt is due (after a restart: the queue forgets when):
            // back on the queue until then.
            self.store.release(id, retry_at, owner);
            return Left::Waits;
        }
        if claimed.takeovers > self.max_takeovers {
            let why = format!(
                "abandoned after {} takeovers (--max-takeovers {}): the nodes running it kept dying",
                claimed.takeovers, self.max_takeovers
            );
            tracing::error!(workflow = %execution.workflow, "{why}");
            execution.status = ExecutionStatus::Error;
            execution.error = Some(why);
            execution.finished_at = Some(self.clock.now());
            finished(&execution, &self.activity);
            let hook =
                self.catalog.get(&execution.workflow).and_then(|current| self.failure_hook(&current, &execution));
            self.store.record_finished(&execution, RecordFate::Keep, owner, hook.as_ref());
            return Left::Finished;
        }
        let deployed = match self.catalog.version(&execution.workflow, execution.version).await {
            Ok(Some(deployed)) => deployed,
            outcome => {
                let why = match outcome {
                    Err(error) => error.to_string(),
                    _ => "the workflow version no longer exists".into(),
                };
                tracing::error!(workflow = %execution.workflow, "cannot run execution: {why}");
                execution.status = ExecutionStatus::Error;
                execution.error = Some(format!("cannot run: {why}"));
                execution.finished_at = Some(self.clock.now());
                self.store.record_finished(&execution, RecordFate::Keep, owner, None);
                return Left::Finished;
            }
        };
        execution.status = ExecutionStatus::Started;
        execution.retry_at = None;
        execution.error = None;
        // A run of microseconds goes from queued to its end in one record.
        let record_progress = !deployed.runs_inline;
        if record_progress {
            self.store.mark_started(&execution, owner);
        }
        loop {
            let (host, store, canceled, clock) =
                (self.host.clone(), self.store.clone(), self.canceled.clone(), self.clock.clone());
            let plan_of = deployed.clone();
            let mut running = execution;
            let run = move |placement| {
                // The executor replays the leading resolved jobs; new ones are recorded after them.
                let next_index = running.jobs.iter().take_while(|job| job.status == JobStatus::Resolved).count();
                let mut recorder = JobRecorder {
                    store: &store,
                    owner,
                    execution_id: running.id.clone(),
                    next_index,
                    canceled: &canceled,
                    record_jobs: record_progress,
                };
                let runner = host.runner(placement);
                let executor = Executor { runner: &runner, clock: clock.as_ref() };
                let wake_at = executor.run(&plan_of.plan, &mut running, &mut recorder).wake_at;
                (running, wake_at)
            };
            let ran = if deployed.runs_inline {
                // Microseconds of quick built-ins: cheaper here than a hand-off to a blocking thread.
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(Placement::RuntimeThread)))
                    .map_err(|_| None)
            } else {
                let span = tracing::Span::current();
                tokio::task::spawn_blocking(move || {
                    let _entered = span.enter();
                    run(Placement::BlockingThread)
                })
                .await
                .map_err(Some)
            };
            let (ran, wake_at) = match ran {
                Ok(ran) => ran,
                Err(Some(error)) if error.is_cancelled() => {
                    tracing::debug!("the process stops before the execution ran; it is resumed later");
                    return Left::Stuck;
                }
                Err(_) => {
                    tracing::error!("execution panicked; it stays claimed and is retried at the next start");
                    return Left::Stuck;
                }
            };
            execution = ran;
            if self.store.owner() != Some(owner) {
                tracing::warn!("this node lost its claim while the execution ran; another node goes on with it");
                return Left::Lost;
            }
            let Some(wake_at) = wake_at else {
                if let Some(retry_at) = self.next_attempt(&deployed, &mut execution) {
                    self.store.schedule_retry(&execution, retry_at, owner);
                    return Left::Waits;
                }
                finished(&execution, &self.activity);
                let hook = self.failure_hook(&deployed, &execution);
                self.store.record_finished(&execution, fate(&deployed, execution.status), owner, hook.as_ref());
                return Left::Finished;
            };
            if self.cancel_requested(id) {
                // Canceled while its delay node ran: run it again at once, to be canceled.
                continue;
            }
            // Its pending job is recorded; it is back on the queue, due at `wake_at`.
            tracing::debug!(until = %wake_at, "execution waits");
            self.store.release(id, wake_at, owner);
            return Left::Waits;
        }
    }

    fn remember_cancel(&self, id: &str) {
        let mut canceled = self.canceled.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        canceled.retain(|_, since| since.elapsed() < CANCEL_MEMORY);
        canceled.insert(id.to_string(), Instant::now());
    }

    fn forget_cancel(&self, id: &str) {
        self.canceled.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(id);
    }

    fn cancel_requested(&self, id: &str) -> bool {
        self.canceled.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).contains_key(id)
    }
}

/// Claims queued executions whenever workers are free, until the dispatcher stops: after each
/// claim that leaves work behind at once, else when the store says work may be waiting, when the
/// next delay comes due, or (in a cluster) at the next poll.
pub(super) async fn claim_loop(dispatcher: Weak<Dispatcher>) {
    let Some((workers, wake, shared)) =
        dispatcher.upgrade().map(|d| (d.workers.clone(), d.wake.clone(), d.store.is_shared()))
    else {
        return;
    };
    let mut failures = 0u32;
    loop {
        let Ok(first) = workers.clone().acquire_owned().await else { return };
        let mut permits = vec![first];
        while permits.len() < CLAIM_BATCH
            && let Ok(more) = workers.clone().try_acquire_owned()
        {
            permits.push(more);
        }
        let Some(dispatcher) = dispatcher.upgrade() else { return };
        let wanted = permits.len();
        let mut wait = if shared { jittered_poll() } else { Duration::MAX };
        if let Some(owner) = dispatcher.store.owner() {
            let limits = dispatcher.catalog.concurrency_limits();
            let now = dispatcher.clock.now();
            match dispatcher.store.claim(owner, wanted, now, &limits).await {
                Ok(claimed) => {
                    failures = 0;
                    let got = claimed.len();
                    for claimed in claimed {
                        let Some(worker) = permits.pop() else { break };
                        dispatcher.run(claimed, owner, worker, None);
                    }
                    if got == wanted {
                        continue;
                    }
                    if let Ok(Some(due)) = dispatcher.store.next_due(now).await {
                        wait = wait.min(Duration::from_millis(due.0.saturating_sub(dispatcher.clock.now().0)));
                    }
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    if failures == 1 {
                        tracing::warn!("cannot claim queued executions: {error}");
                    }
                    wait = Duration::from_millis(100 << failures.min(5));
                }
            }
        }
        drop(permits);
        drop(dispatcher);
        if wait == Duration::MAX {
            wake.notified().await;
        } else {
            let _ = tokio::time::timeout(wait, wake.notified()).await;
        }
    }
}

/// Between half and all of [`CLUSTER_POLL`].
fn jittered_poll() -> Duration {
    let mut byte = [0u8; 1];
    let spread = getrandom::fill(&mut byte).map_or(128, |()| u32::from(byte[0]));
    CLUSTER_POLL / 2 + CLUSTER_POLL * spread / 512
}

/// Hears the store's events: queued work wakes the claimer; a cancel request is remembered, so
/// the executor running that execution here stops it.
pub(super) async fn listen(dispatcher: Weak<Dispatcher>, mut events: broadcast::Receiver<StoreEvent>) {
    loop {
        let event = events.recv().await;
        let Some(dispatcher) = dispatcher.upgrade() else { return };
        match event {
            Ok(StoreEvent::QueueReady | StoreEvent::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => {
                dispatcher.wake.notify_one();
            }
            Ok(StoreEvent::CancelRequested(id)) => dispatcher.remember_cancel(&id),
            Ok(StoreEvent::WorkflowChanged(_) | StoreEvent::PluginChanged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Records each finished job of an async execution, so a restart or another owner resumes after
/// it; stops the execution when an operator cancels it or this process loses its claim.
struct JobRecorder<'a> {
    store: &'a hookflow_store::Store,
    owner: Owner,
    execution_id: String,
    next_index: usize,
    canceled: &'a std::sync::Mutex<std::collections::HashMap<String, Instant>>,
    /// Off for a run of microseconds, whose jobs the record of its end holds.
    record_jobs: bool,
}

/// A worker that was free when an execution was queued, and the owner that claimed it in the
/// same write.
struct Hired {
    worker: OwnedSemaphorePermit,
    owner: Owner,
}

impl Observer for JobRecorder<'_> {
    fn job_finished(&mut self, job: &Job) {
        if self.record_jobs {
            self.store.record_job(&self.execution_id, self.next_index, job, self.owner);
        }
        self.next_index += 1;
    }

    fn interrupted(&mut self) -> Option<ExecutionStatus> {
        if self.store.owner() != Some(self.owner) {
            // Nothing more of it lands (the writes are fenced); its next owner goes on.
            return Some(ExecutionStatus::Aborted);
        }
        let canceled = self.canceled.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        canceled.contains_key(&self.execution_id).then_some(ExecutionStatus::Canceled)
    }
}
