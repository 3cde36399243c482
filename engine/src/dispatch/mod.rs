//! Runs executions: sync ones on the request (with the sync timeout), async ones durably queued
//! and run by a pool of workers; at start, every execution left queued or running is resumed.
//!
//! Node calls block (wasmtime's sync API under an epoch deadline), so executions run on tokio's
//! blocking pool, never on a runtime worker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{Mutex, Semaphore, mpsc, oneshot};

use crate::catalog::{Catalog, Deployed};
use crate::plugin::PluginHost;
use crate::store::{Store, StoreError};
use crate::timestamp::Timestamp;
use crate::workflow::{Execution, ExecutionStatus, Job, JobStatus, Observer, Reply, caller_reply, execute};

/// Dispatch settings.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// How long a sync caller waits for its answer (default 30 s).
    pub sync_timeout: Duration,
    /// How many async executions run at once; 0 queues without running.
    pub workers: usize,
    /// How many sync executions may run at once; more requests are refused (503).
    pub max_sync_inflight: usize,
    /// How many async executions may wait or run at once; more requests are refused (503).
    pub max_queue: usize,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            sync_timeout: Duration::from_secs(30),
            workers: 4,
            max_sync_inflight: 1024,
            max_queue: 100_000,
        }
    }
}

/// Why an async request was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The backlog is full.
    #[error("the queue holds {0} executions, its limit")]
    Overloaded(usize),
    /// The store failed; nothing was queued.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How a sync execution answered its caller.
#[derive(Debug)]
pub enum SyncAnswer {
    /// A Response node replied, or the execution resolved without one (DESIGN §4.4).
    Replied {
        /// The execution.
        execution_id: String,
        /// The answer.
        reply: Reply,
    },
    /// The execution ended without success.
    Failed {
        /// The execution.
        execution_id: String,
        /// How it ended.
        status: ExecutionStatus,
    },
    /// No answer within the sync timeout; the execution is aborted.
    TimedOut {
        /// The execution.
        execution_id: String,
    },
    /// Too many sync executions are running; none was started.
    Overloaded,
}

/// Runs executions.
pub struct Dispatcher {
    host: Arc<PluginHost>,
    store: Store,
    catalog: Arc<Catalog>,
    queue: mpsc::UnboundedSender<String>,
    sync_timeout: Duration,
    /// Permits for running sync executions.
    sync_slots: Arc<Semaphore>,
    /// Async executions accepted and not finished.
    backlog: Arc<AtomicUsize>,
    max_queue: usize,
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
        let dispatcher = Arc::new(Dispatcher {
            host,
            store,
            catalog,
            queue,
            sync_timeout: config.sync_timeout,
            sync_slots: Arc::new(Semaphore::new(config.max_sync_inflight)),
            backlog: Arc::new(AtomicUsize::new(pending.len())),
            max_queue: config.max_queue,
        });
        if !pending.is_empty() {
            tracing::info!("resuming {} queued or interrupted executions", pending.len());
        }
        for id in pending {
            let _ = dispatcher.queue.send(id);
        }
        let incoming = Arc::new(Mutex::new(incoming));
        for _ in 0..config.workers {
            tokio::spawn(work(Arc::downgrade(&dispatcher), incoming.clone()));
        }
        Ok(dispatcher)
    }

    /// Runs a sync execution and waits for its answer, at most the sync timeout.
    pub async fn run_sync(&self, deployed: Arc<Deployed>, trigger: Value) -> SyncAnswer {
        let Ok(slot) = self.sync_slots.clone().try_acquire_owned() else {
            return SyncAnswer::Overloaded;
        };
        let mut execution = Execution::new(&deployed.key, deployed.version, trigger);
        let execution_id = execution.id.clone();
        let (answer, answered) = oneshot::channel();
        let timed_out = Arc::new(AtomicBool::new(false));
        let mut observer = SyncObserver { answer: Some(answer), timed_out: timed_out.clone() };
        let (host, store) = (self.host.clone(), self.store.clone());
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let reply = execute(host.as_ref(), &deployed.plan, &mut execution, &mut observer);
            if observer.timed_out.load(Ordering::Acquire) && observer.answer.is_some() {
                // The caller was told 504 before the execution finished: it counts as aborted.
                execution.status = ExecutionStatus::Aborted;
            }
            // Queued for writing before the caller hears back, so a shutdown that waits for
            // in-flight requests and then flushes the store cannot lose the record.
            store.record_sync_execution(&execution);
            if let Some(answer) = observer.answer.take() {
                let _ = answer.send(caller_reply(&execution, reply));
            }
        });
        match tokio::time::timeout(self.sync_timeout, answered).await {
            Ok(Ok(Ok(reply))) => SyncAnswer::Replied { execution_id, reply },
            Ok(Ok(Err(status))) => SyncAnswer::Failed { execution_id, status },
            // The execution thread panicked: a bug, reported as an error execution.
            Ok(Err(_)) => SyncAnswer::Failed { execution_id, status: ExecutionStatus::Error },
            Err(_) => {
                timed_out.store(true, Ordering::Release);
                SyncAnswer::TimedOut { execution_id }
            }
        }
    }

    /// Stores an async execution durably and queues it; returns its id once it is on disk.
    pub async fn accept_async(&self, deployed: &Deployed, trigger: Value) -> Result<String, AcceptError> {
        if self.backlog.fetch_add(1, Ordering::AcqRel) >= self.max_queue {
            self.backlog.fetch_sub(1, Ordering::AcqRel);
            return Err(AcceptError::Overloaded(self.max_queue));
        }
        let execution = Execution::new(&deployed.key, deployed.version, trigger);
        if let Err(error) = self.store.enqueue(&execution).await {
            self.backlog.fetch_sub(1, Ordering::AcqRel);
            return Err(error.into());
        }
        // With no workers the receiver still exists; the execution waits for a restart.
        let _ = self.queue.send(execution.id.clone());
        Ok(execution.id)
    }

    /// Runs one queued execution to its end, recording each job as it finishes.
    async fn run_queued(&self, id: &str) {
        let mut execution = match self.store.execution(id) {
            Ok(Some(execution)) => execution,
            Ok(None) => return tracing::error!(execution = id, "queued execution not found in the store"),
            Err(error) => return tracing::error!(execution = id, "cannot load queued execution: {error}"),
        };
        if execution.status.is_final() {
            self.store.record_finished(&execution);
            return;
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
                execution.finished_at = Some(Timestamp::now());
                self.store.record_finished(&execution);
                return;
            }
        };
        execution.status = ExecutionStatus::Started;
        self.store.mark_started(&execution);
        let (host, store) = (self.host.clone(), self.store.clone());
        let ran = tokio::task::spawn_blocking(move || {
            // The executor replays the leading resolved jobs; new ones are recorded after them.
            let next_index = execution.jobs.iter().take_while(|job| job.status == JobStatus::Resolved).count();
            let mut recorder = JobRecorder { store: &store, execution_id: execution.id.clone(), next_index };
            execute(host.as_ref(), &deployed.plan, &mut execution, &mut recorder);
            store.record_finished(&execution);
        })
        .await;
        if ran.is_err() {
            tracing::error!(execution = id, "execution panicked; it stays queued and is retried at the next start");
        }
    }
}

/// A worker: takes queued execution ids and runs them, one at a time, until the dispatcher goes.
async fn work(dispatcher: std::sync::Weak<Dispatcher>, incoming: Arc<Mutex<mpsc::UnboundedReceiver<String>>>) {
    loop {
        let next = incoming.lock().await.recv().await;
        let (Some(id), Some(dispatcher)) = (next, dispatcher.upgrade()) else { return };
        dispatcher.run_queued(&id).await;
        dispatcher.backlog.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Sends the first reply to the waiting caller and stops the execution once the caller gave up.
struct SyncObserver {
    answer: Option<oneshot::Sender<Result<Reply, ExecutionStatus>>>,
    timed_out: Arc<AtomicBool>,
}

impl Observer for SyncObserver {
    fn replied(&mut self, reply: &Reply) {
        if let Some(answer) = self.answer.take() {
            let _ = answer.send(Ok(reply.clone()));
        }
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
}

impl Observer for JobRecorder<'_> {
    fn job_finished(&mut self, job: &Job) {
        self.store.record_job(&self.execution_id, self.next_index, job);
        self.next_index += 1;
    }
}
