//! Runs executions: sync ones on the request (with the sync timeout), async ones durably queued
//! and run by a pool of workers; at start, every execution left queued or running is resumed.
//!
//! Node calls block (wasmtime's sync API under an epoch deadline), so executions run on tokio's
//! blocking pool, never on a runtime worker.

mod load;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use axum::http::header;
use serde_json::Value;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tracing::Instrument as _;

use crate::catalog::{Catalog, Deployed};
use crate::http::api_error::{ApiError, EXECUTION_HEADER, ErrorCode};
use crate::metrics::metrics;
use hookflow_plugin::{PluginHost, run_on_runtime_thread};
use hookflow_store::{IdempotencyEntry, IdempotencyRecord, Store, StoreError};
use hookflow_workflow::timestamp::Timestamp;
use hookflow_workflow::{Execution, ExecutionStatus, Job, JobStatus, Observer, Reply, caller_reply, execute};
use load::{Admission, Load};

/// Dispatch settings.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// How long a sync caller waits for its answer (default 30 s).
    pub sync_timeout: Duration,
    /// How many async executions run at once; 0 queues without running.
    pub workers: usize,
    /// How many sync executions may run at once; more requests are refused (503).
    pub max_sync_inflight: usize,
    /// How many async executions may be queued or run at once; more requests are refused (503).
    pub max_queue: usize,
    /// How many async executions may wait in a delay; past it, requests to workflows holding a
    /// delay node are refused (503).
    pub max_delayed: usize,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            sync_timeout: Duration::from_secs(30),
            workers: 4,
            max_sync_inflight: 256,
            max_queue: 100_000,
            max_delayed: 100_000,
        }
    }
}

/// The HTTP answer to a trigger request, and the execution it concerns.
#[derive(Debug)]
pub struct Answer {
    /// The execution the request started (or, for a repeat, the first request started).
    pub execution_id: Option<String>,
    /// The answer, with `X-Hookflow-Execution` set when there is an execution.
    pub reply: Reply,
}

impl Answer {
    fn new(execution_id: &str, reply: Reply) -> Answer {
        Answer {
            execution_id: Some(execution_id.to_string()),
            reply: reply.with_header(EXECUTION_HEADER, execution_id),
        }
    }

    fn error(error: ApiError) -> Answer {
        Answer { execution_id: None, reply: error.to_reply() }
    }
}

/// How much longer than its caller a sync execution waits for a node instance.
const SLOT_WAIT_MARGIN: Duration = Duration::from_millis(100);

/// The path where a sync caller past `trigger.syncDeadlineMs` polls for its answer.
pub const RESULT_PATH: &str = "/api/webhook:result/";

/// Runs executions.
pub struct Dispatcher {
    host: Arc<PluginHost>,
    store: Store,
    catalog: Arc<Catalog>,
    queue: mpsc::UnboundedSender<String>,
    sync_timeout: Duration,
    /// Permits for running sync executions.
    sync_slots: Arc<Semaphore>,
    /// Idempotency keys being processed right now.
    claims: Arc<StdMutex<Claims>>,
    /// Async executions an operator canceled while they ran.
    canceled: Arc<StdMutex<HashSet<String>>>,
    /// Which queued executions a worker has taken and which a cancel ended first: one lock, so
    /// a cancel and a worker never both act on the same queued execution.
    taken: StdMutex<Taken>,
    /// Async executions a delay node holds, with their workflow; a timer queues each again
    /// when its time comes.
    waiting: StdMutex<HashMap<String, String>>,
    /// Async executions queued, running and waiting, against the fairness limits.
    load: Load,
}

impl Dispatcher {
    /// Starts the workers and queues every execution the store holds as unfinished.
    pub fn start(
        host: Arc<PluginHost>,
        store: Store,
        catalog: Arc<Catalog>,
        config: &DispatchConfig,
    ) -> Result<Arc<Dispatcher>, StoreError> {
        let (queue, incoming) = mpsc::unbounded_channel();
        let pending = store.queued()?;
        metrics().queue_changed(i64::try_from(pending.len()).unwrap_or(i64::MAX));
        let load = Load::new(config.max_queue, config.max_delayed);
        for (_, workflow) in &pending {
            // Unreadable records count under no workflow; their worker takes them off the queue.
            load.add(workflow);
        }
        let dispatcher = Arc::new(Dispatcher {
            host,
            store,
            catalog,
            queue,
            sync_timeout: config.sync_timeout,
            sync_slots: Arc::new(Semaphore::new(config.max_sync_inflight)),
            claims: Arc::default(),
            canceled: Arc::default(),
            taken: StdMutex::default(),
            waiting: StdMutex::default(),
            load,
        });
        if !pending.is_empty() {
            tracing::info!("resuming {} queued or interrupted executions", pending.len());
        }
        for (id, _) in pending {
            let _ = dispatcher.queue.send(id);
        }
        let incoming = Arc::new(Mutex::new(incoming));
        for _ in 0..config.workers {
            tokio::spawn(work(Arc::downgrade(&dispatcher), incoming.clone()));
        }
        Ok(dispatcher)
    }

    /// Handles one trigger request: answers a repeated idempotency key from the first request,
    /// runs a sync execution, or queues an async one.
    pub async fn dispatch(&self, deployed: Arc<Deployed>, trigger: Value, idempotency_key: Option<String>) -> Answer {
        let claim = match idempotency_key {
            Some(key) => match self.claim(&deployed, key).await {
                Ok(claim) => Some(claim),
                Err(answer) => return answer,
            },
            None => None,
        };
        if deployed.workflow().sync {
            self.run_sync(deployed, trigger, claim).await
        } else {
            self.accept_async(&deployed, trigger, claim).await
        }
    }

    /// Takes an idempotency key for this request, or answers as the first request did. A repeat
    /// of an async key still held by its first request waits (at most [`CLAIM_WAIT`]) for the
    /// first to be queued and answers like it; a sync one is told the first is running.
    async fn claim(&self, deployed: &Deployed, key: String) -> Result<Claim, Answer> {
        let held_by_first = (deployed.key.clone(), key);
        loop {
            if let Some(answer) = self.first_answer(deployed, &held_by_first.1)? {
                return Err(answer);
            }
            let notify;
            let released;
            {
                let mut claims = self.claims.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                match claims.get(&held_by_first) {
                    None => {
                        claims.insert(held_by_first.clone(), Arc::default());
                        break;
                    }
                    Some(held) if !deployed.workflow().sync => {
                        notify = held.clone();
                        // Registered while the lock is held, so the release cannot slip by.
                        released = notify.notified();
                    }
                    Some(_) => return Err(Answer::error(in_progress(&held_by_first.1))),
                }
            }
            if tokio::time::timeout(CLAIM_WAIT, released).await.is_err() {
                return Err(Answer::error(in_progress(&held_by_first.1)));
            }
        }
        let (workflow, key) = held_by_first;
        let ttl = deployed.workflow().trigger.idempotency.as_ref().map_or(0, |spec| spec.ttl_seconds);
        let claim = Claim { claims: self.claims.clone(), workflow, key, ttl };
        // The first request may have stored its answer and let go of the key between the look
        // above and the claim: look again now that the key is held.
        match self.first_answer(deployed, &claim.key)? {
            Some(answer) => Err(answer),
            None => Ok(claim),
        }
    }

    /// The answer a repeated idempotency key gets from the store, if the key is remembered.
    fn first_answer(&self, deployed: &Deployed, key: &str) -> Result<Option<Answer>, Answer> {
        let internal = |error: StoreError| {
            tracing::error!(workflow = %deployed.key, "cannot read idempotency keys: {error}");
            Answer::error(ApiError::new(ErrorCode::Internal, "idempotency keys cannot be read; retry later"))
        };
        let Some(first) = self.store.idempotency(&deployed.key, key).map_err(internal)? else {
            return Ok(None);
        };
        let id = first.execution_id;
        if !deployed.workflow().sync {
            return Ok(Some(Answer::new(&id, deployed.accept_reply.clone())));
        }
        // The answer is stored with the key in one write; without it the execution was deleted
        // (by an operator or retention) and the key is free again.
        Ok(self.store.reply(&id).map_err(internal)?.map(|reply| Answer::new(&id, reply)))
    }

    /// Runs a sync execution and waits for its answer, at most the sync timeout (or the
    /// workflow's sync deadline, past which the caller gets `202` and the execution goes on).
    async fn run_sync(&self, deployed: Arc<Deployed>, trigger: Value, claim: Option<Claim>) -> Answer {
        let Ok(slot) = self.sync_slots.clone().try_acquire_owned() else {
            return Answer::error(overloaded("too many sync executions are running"));
        };
        let deadline = deployed.workflow().trigger.sync_deadline_ms.map(Duration::from_millis);
        let keep_reply = claim.is_some() || deadline.is_some();
        let mut execution = Execution::new(&deployed.key, deployed.version, trigger);
        let execution_id = execution.id.clone();
        if deadline.is_some() {
            // Its caller may poll for it before it ends.
            self.store.record_sync_start(&execution);
        }
        let (answer, answered) = oneshot::channel();
        let timed_out = Arc::new(AtomicBool::new(false));
        let (host, store) = (self.host.clone(), self.store.clone());
        let kept = claim.as_ref().map(|claim| KeptReply {
            store: store.clone(),
            execution_id: execution_id.clone(),
            workflow: claim.workflow.clone(),
            key: claim.key.clone(),
            record: claim.record(&execution_id),
        });
        let wait = deadline.map_or(self.sync_timeout, |deadline| deadline.min(self.sync_timeout));
        let mut observer = SyncObserver {
            answer: Some(answer),
            sent: None,
            timed_out: timed_out.clone(),
            kept,
            slot: Some(slot),
            // A little past the caller's own timeout, so the caller hears 504 first.
            deadline: std::time::Instant::now() + self.sync_timeout + SLOT_WAIT_MARGIN,
        };
        let span = execution_span(&execution);
        // Without an idempotency claim (whose commit this thread would wait for).
        let inline = deployed.runs_inline && claim.is_none();
        let run = move || {
            let _entered = span.enter();
            // Sync plans hold no delay node (refused at compile), so this run ends.
            let reply = execute(host.as_ref(), &deployed.plan, &mut execution, &mut observer).reply;
            let gave_up = observer.timed_out.load(Ordering::Acquire) && observer.answer.is_some();
            if gave_up {
                // The caller was told 504 before the execution finished: it counts as aborted.
                execution.status = ExecutionStatus::Aborted;
            }
            let final_reply = match observer.sent.take() {
                Some(sent) => sent,
                None if gave_up => timeout_error(&execution.id).to_reply(),
                None => caller_reply(&execution, reply)
                    .unwrap_or_else(|status| failed_error(&execution.id, status).to_reply()),
            };
            // A 5xx is no answer to remember: a retry of the same key runs again.
            let remembered = claim.as_ref().filter(|_| final_reply.status < 500);
            let record = remembered.map(|claim| claim.record(&execution.id));
            let entry = remembered.zip(record.as_ref()).map(|(claim, record)| claim.entry(record));
            // Queued for writing before the caller hears back, so a shutdown that waits for
            // in-flight requests and then flushes the store cannot lose the record.
            finished(&execution);
            let keep = keeps(&deployed, execution.status);
            let committed = store.record_sync_execution(&execution, keep, keep_reply.then_some(&final_reply), entry);
            // With an idempotency key, the caller hears back (and the key is released) only once
            // a repeat can find the stored answer.
            if let Some(claim) = claim {
                let _ = committed.blocking_recv();
                drop(claim);
            }
            // Free before the caller hears back, so that its next request finds the slot free.
            drop(observer.slot.take());
            if let Some(answer) = observer.answer.take() {
                let _ = answer.send(final_reply);
            }
        };
        if inline {
            // Microseconds of quick built-ins: cheaper here than a hand-off to a blocking thread.
            run_on_runtime_thread(run);
        } else {
            tokio::task::spawn_blocking(run);
        }
        match tokio::time::timeout(wait, answered).await {
            Ok(Ok(reply)) => Answer::new(&execution_id, reply),
            // The execution thread panicked: a bug, reported as an error execution.
            Ok(Err(_)) => Answer::new(&execution_id, failed_error(&execution_id, ExecutionStatus::Error).to_reply()),
            Err(_) if deadline.is_some() => Answer::new(&execution_id, still_running(&execution_id)),
            Err(_) => {
                timed_out.store(true, Ordering::Release);
                Answer::new(&execution_id, timeout_error(&execution_id).to_reply())
            }
        }
    }

    /// Stores an async execution durably and queues it; answers once it is on disk.
    async fn accept_async(&self, deployed: &Deployed, trigger: Value, claim: Option<Claim>) -> Answer {
        if let Some(why) = self.store.write_failure() {
            return Answer::error(overloaded(&format!("the store cannot write ({why}); nothing was queued")));
        }
        let options = &deployed.workflow().options;
        let admission = Admission {
            workflow: &deployed.key,
            max_queued: options.max_queued.map(|limit| usize::try_from(limit).unwrap_or(usize::MAX)),
            has_delay: deployed.has_delay,
        };
        if let Err(refusal) = self.load.admit(admission) {
            return Answer::error(overloaded(&refusal.to_string()));
        }
        let execution = Execution::new(&deployed.key, deployed.version, trigger);
        let record = claim.as_ref().map(|claim| claim.record(&execution.id));
        let entry = claim.as_ref().zip(record.as_ref()).map(|(claim, record)| claim.entry(record));
        if let Err(error) = self.store.enqueue(&execution, entry).await {
            self.load.finished(&deployed.key);
            tracing::error!(workflow = %deployed.key, "cannot queue an execution: {error}");
            return Answer::error(overloaded("the request could not be stored; nothing was queued"));
        }
        // With no workers the receiver still exists; the execution waits for a restart.
        metrics().queue_changed(1);
        let _ = self.queue.send(execution.id.clone());
        Answer::new(&execution.id, deployed.accept_reply.clone())
    }

    /// Cancels an async execution: a queued one ends `canceled` at once, a running one before its
    /// next node. Returns the record as it stands, or `None` when the execution has ended (or is
    /// a sync one, which its caller owns).
    pub async fn cancel(&self, mut execution: Execution) -> Result<Option<Execution>, StoreError> {
        let queued = self.store.is_queued(&execution.id)?;
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
            execution.finished_at = Some(Timestamp::now());
            self.store.record_canceled(&execution);
            self.store.flush().await?;
            // Unless a worker finished it first, from a record read before this cancel.
            if let Some(stored) = self.store.execution(&execution.id)? {
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
        let execution = Execution::new(&deployed.key, deployed.version, trigger);
        self.load.add(&deployed.key);
        if let Err(error) = self.store.enqueue(&execution, None).await {
            self.load.finished(&deployed.key);
            return Err(error);
        }
        metrics().queue_changed(1);
        let _ = self.queue.send(execution.id.clone());
        Ok(execution)
    }

    /// How long a sync caller waits; a sync execution still `started` after that long (and a
    /// second more) was cut short by a crash.
    pub fn sync_timeout(&self) -> Duration {
        self.sync_timeout
    }

    /// The store (for reading records).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The answer of a sync execution, for `GET /api/webhook:result/{id}`: its kept reply once it
    /// has ended, `202` while it runs.
    pub fn result(&self, execution: &Execution) -> Result<Reply, StoreError> {
        if !execution.status.is_final() {
            return Ok(still_running(&execution.id));
        }
        Ok(match self.store.reply(&execution.id)? {
            Some(reply) => reply,
            None => {
                caller_reply(execution, None).unwrap_or_else(|status| failed_error(&execution.id, status).to_reply())
            }
        })
    }

    /// Runs one queued execution to its end, or until a delay node holds it (then returns when
    /// it may go on), recording each job as it finishes; parks it instead while its workflow
    /// runs `options.maxConcurrency` executions.
    async fn run_queued(&self, id: &str) -> Outcome {
        self.run_queued_traced(id).instrument(tracing::error_span!("execution", id)).await
    }

    async fn run_queued_traced(&self, id: &str) -> Outcome {
        let mut execution = match self.store.execution(id) {
            Ok(Some(execution)) => execution,
            Ok(None) => {
                tracing::error!(execution = id, "queued execution not found in the store");
                return Outcome::Finished(String::new());
            }
            Err(error) => {
                tracing::error!(execution = id, "cannot load queued execution: {error}");
                return Outcome::Finished(String::new());
            }
        };
        let workflow = execution.workflow.clone();
        if self.taken.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).canceled_queued.remove(id) {
            // Canceled while it was queued; the cancel recorded it.
            return Outcome::Finished(workflow);
        }
        if execution.status == ExecutionStatus::Unreadable {
            // Kept as it is for an operator to look at and delete; it cannot run.
            tracing::error!(execution = id, "queued execution cannot run: {}", execution.error.unwrap_or_default());
            self.store.dequeue(id);
            return Outcome::Finished(workflow);
        }
        if execution.status.is_final() {
            self.store.record_finished(&execution, true);
            return Outcome::Finished(workflow);
        }
        let deployed = match self.catalog.version(&execution.workflow, execution.version) {
            Ok(Some(deployed)) => deployed,
            outcome => {
                let why = match outcome {
                    Err(error) => error.to_string(),
                    _ => "the workflow version no longer exists".into(),
                };
                tracing::error!(execution = id, workflow = %execution.workflow, "cannot run execution: {why}");
                execution.status = ExecutionStatus::Error;
                execution.error = Some(format!("cannot run: {why}"));
                execution.finished_at = Some(Timestamp::now());
                self.store.record_finished(&execution, true);
                return Outcome::Finished(workflow);
            }
        };
        let max_concurrency =
            deployed.workflow().options.max_concurrency.map(|limit| usize::try_from(limit).unwrap_or(usize::MAX));
        {
            let mut taken = self.taken.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if taken.canceled_queued.remove(id) {
                // Canceled while it was queued; the cancel recorded it.
                return Outcome::Finished(workflow);
            }
            if !self.load.start(&workflow, id, max_concurrency) {
                return Outcome::Parked;
            }
            taken.running.insert(id.to_string());
        }
        execution.status = ExecutionStatus::Started;
        self.store.mark_started(&execution);
        let (host, store, canceled) = (self.host.clone(), self.store.clone(), self.canceled.clone());
        let span = tracing::Span::current();
        let ran = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            // The executor replays the leading resolved jobs; new ones are recorded after them.
            let next_index = execution.jobs.iter().take_while(|job| job.status == JobStatus::Resolved).count();
            let mut recorder =
                JobRecorder { store: &store, execution_id: execution.id.clone(), next_index, canceled: &canceled };
            let wake_at = execute(host.as_ref(), &deployed.plan, &mut execution, &mut recorder).wake_at;
            match wake_at {
                // Its pending job is recorded; it stays on the queue, so a restart resumes it.
                Some(wake_at) => tracing::debug!(until = %wake_at, "execution waits"),
                None => {
                    finished(&execution);
                    store.record_finished(&execution, keeps(&deployed, execution.status));
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
            Ok(Some(wake_at)) => Outcome::Waits(workflow, wake_at),
            Ok(None) => Outcome::Finished(workflow),
            Err(_) => {
                tracing::error!(execution = id, "execution panicked; it stays queued and is retried at the next start");
                Outcome::Finished(workflow)
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
        let wait = Duration::from_millis(wake_at.0.saturating_sub(Timestamp::now().0));
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
enum Outcome {
    /// It ended (or cannot run); the workflow it belonged to.
    Finished(String),
    /// A delay node holds it until then.
    Waits(String, Timestamp),
    /// Its workflow runs `options.maxConcurrency` executions; it is queued again as one ends.
    Parked,
}

/// A worker: takes queued execution ids and runs them, one at a time, until the dispatcher goes.
async fn work(dispatcher: std::sync::Weak<Dispatcher>, incoming: Arc<Mutex<mpsc::UnboundedReceiver<String>>>) {
    loop {
        let next = incoming.lock().await.recv().await;
        let (Some(id), Some(dispatcher)) = (next, dispatcher.upgrade()) else { return };
        match dispatcher.run_queued(&id).await {
            // Still unfinished: it stays in the queue gauge while it waits.
            Outcome::Waits(workflow, wake_at) => dispatcher.wake_later(id, workflow, wake_at),
            Outcome::Finished(workflow) => {
                dispatcher.load.finished(&workflow);
                metrics().queue_changed(-1);
            }
            Outcome::Parked => {}
        }
    }
}

/// Sends the first reply to the waiting caller and stops the execution once the caller gave up.
struct SyncObserver {
    answer: Option<oneshot::Sender<Reply>>,
    /// The reply sent by a Response node (the execution may go on after it).
    sent: Option<Reply>,
    timed_out: Arc<AtomicBool>,
    /// With an idempotency key: where the reply is stored before the caller hears it.
    kept: Option<KeptReply>,
    /// The execution's place among `--max-sync-inflight`; freed before the caller's answer once
    /// no node runs after it.
    slot: Option<OwnedSemaphorePermit>,
    /// When the caller stops waiting: node calls wait for an instance no longer.
    deadline: std::time::Instant,
}

/// Stores a Response node's reply under its idempotency key before it is sent, so a repeat that
/// arrives once the first caller has its answer finds that answer.
struct KeptReply {
    store: Store,
    execution_id: String,
    workflow: String,
    key: String,
    record: IdempotencyRecord,
}

impl Observer for SyncObserver {
    fn replied(&mut self, reply: &Reply, ends: bool) {
        let Some(answer) = self.answer.take() else { return };
        if let Some(kept) = self.kept.as_ref().filter(|_| reply.status < 500) {
            let entry = IdempotencyEntry { workflow: &kept.workflow, key: &kept.key, record: &kept.record };
            let _ = kept.store.record_reply(&kept.execution_id, reply, entry).blocking_recv();
        }
        if ends {
            drop(self.slot.take());
        }
        let _ = answer.send(reply.clone());
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
struct Taken {
    running: HashSet<String>,
    canceled_queued: HashSet<String>,
}

/// How long a repeat of an async idempotency key waits for its first request to be queued.
const CLAIM_WAIT: Duration = Duration::from_secs(5);

/// Idempotency keys (workflow, key) held by their first request, each with the notification
/// its release sends to repeats waiting on it.
type Claims = HashMap<(String, String), Arc<tokio::sync::Notify>>;

/// An idempotency key held while its request is processed; released when dropped.
struct Claim {
    claims: Arc<StdMutex<Claims>>,
    workflow: String,
    key: String,
    ttl: u64,
}

impl Claim {
    fn record(&self, execution_id: &str) -> IdempotencyRecord {
        let expires_at = Timestamp(Timestamp::now().0.saturating_add(self.ttl.saturating_mul(1000)));
        IdempotencyRecord { execution_id: execution_id.to_string(), expires_at }
    }

    fn entry<'a>(&'a self, record: &'a IdempotencyRecord) -> IdempotencyEntry<'a> {
        IdempotencyEntry { workflow: &self.workflow, key: &self.key, record }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut claims = self.claims.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(released) = claims.remove(&(std::mem::take(&mut self.workflow), std::mem::take(&mut self.key))) {
            released.notify_waiters();
        }
    }
}

/// The span every log line of an execution is written in: it carries the execution's id. At
/// `error` level so that it is on whatever level the log is filtered to.
fn execution_span(execution: &Execution) -> tracing::Span {
    tracing::error_span!("execution", id = %execution.id)
}

/// Counts a finished execution and logs how it ended: `error` and `aborted` at `warn` with the
/// failing node's reason, `failed` and `canceled` at `info`, `resolved` at `debug`.
fn finished(execution: &Execution) {
    metrics().execution_finished(execution.status.as_str());
    let status = execution.status.as_str();
    let workflow = execution.workflow.as_str();
    let failing = execution.jobs.iter().rev().find(|job| job.status != JobStatus::Resolved);
    let node = failing.map_or("", |job| job.node_key.as_str());
    let reason = match (failing.and_then(|job| job.error.as_deref()), execution.status) {
        (Some(error), _) => error,
        (None, ExecutionStatus::Aborted) => "interrupted: the sync caller's timeout ran out",
        (None, ExecutionStatus::Canceled) => "canceled by an operator",
        (None, _) => "",
    };
    match execution.status {
        ExecutionStatus::Resolved => tracing::debug!(workflow, status, "execution finished"),
        ExecutionStatus::Error | ExecutionStatus::Aborted => {
            tracing::warn!(workflow, status, node, "execution ended: {reason}");
        }
        _ => tracing::info!(workflow, status, node, "execution ended: {reason}"),
    }
}

/// Whether a finished execution's record is kept (`options.deleteExecutionOnStatus`).
fn keeps(deployed: &Deployed, status: ExecutionStatus) -> bool {
    !deployed.workflow().options.delete_execution_on_status.iter().any(|deleted| deleted == status.as_str())
}

fn overloaded(why: &str) -> ApiError {
    ApiError::new(ErrorCode::Overloaded, format!("{why}; retry later")).with_header(header::RETRY_AFTER, "1")
}

fn in_progress(key: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Conflict,
        format!("the first request with idempotency key {key:?} is still being processed"),
    )
}

fn failed_error(execution_id: &str, status: ExecutionStatus) -> ApiError {
    ApiError::new(ErrorCode::ExecutionFailed, format!("execution {execution_id} ended with status {}", status.as_str()))
        .with_execution(execution_id, status)
}

fn timeout_error(execution_id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ExecutionTimeout,
        format!("execution {execution_id} did not answer within the sync timeout"),
    )
    .with_execution(execution_id, ExecutionStatus::Aborted)
}

/// `202` with where to poll.
fn still_running(execution_id: &str) -> Reply {
    let location = format!("{RESULT_PATH}{execution_id}");
    let body = serde_json::json!({"executionId": execution_id, "status": "started", "location": location});
    Reply {
        status: 202,
        headers: vec![("content-type".into(), "application/json".into()), ("location".into(), location)],
        body: body.to_string().into_bytes(),
    }
}
