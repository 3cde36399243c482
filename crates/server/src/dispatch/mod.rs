//! Runs executions: sync ones on the request (with the sync timeout, [`sync`]), async ones
//! durably queued and run by this process's workers once it claims them from the store
//! ([`queue`]) — at once when a worker is free as the request arrives, else by the claimer, which
//! wakes on the store's events (queued work, a delay coming due, another node's notice) and, in
//! a cluster, polls; a repeated idempotency key is answered as its first request was
//! ([`idempotency`]). What was left queued or running by a stop or a crash is claimed again.
//!
//! Dispatch answers in domain terms ([`Outcome`]); `http::ingress` alone turns them into
//! statuses and bodies. Node calls block (wasmtime's sync API under an epoch deadline), so
//! executions run on tokio's blocking pool, except short ones made only of quick built-ins, which
//! run on a runtime thread (a sync one on the request's own) with instance slots of their own.

mod failures;
mod idempotency;
mod load;
mod queue;
mod redrive;
mod sync;
mod testing;

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{Notify, Semaphore};

use crate::activity::ActivityCounter;
use crate::catalog::{Catalog, Deployed};
use crate::metrics::metrics;
use hookflow_plugin::PluginHost;
use hookflow_store::{RecordFate, Store, StoreError};
use hookflow_workflow::{Clock, Execution, ExecutionIds, ExecutionStatus, JobStatus, Reply};
use idempotency::Claims;
use load::Load;
pub use redrive::{RedriveFilter, Redriven};

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
    /// How many times an execution may be taken over from a node that died or lost its lease
    /// before it ends `error` instead (a crash loop stops there).
    pub max_takeovers: u32,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            sync_timeout: Duration::from_secs(30),
            workers: 4,
            max_sync_inflight: 256,
            max_queue: 100_000,
            max_delayed: 100_000,
            max_takeovers: 3,
        }
    }
}

/// How a trigger request was answered, in domain terms.
#[derive(Debug)]
pub enum Outcome {
    /// The caller's answer: a Response node's reply, the default answer of a resolved sync
    /// execution, the acknowledgement of a queued one, or what the first request with the same
    /// idempotency key got.
    Answered {
        /// The execution the request started (for a repeat: the first request's).
        execution_id: String,
        /// The answer.
        reply: Reply,
    },
    /// A sync execution ended without an answer for its caller (`failed`, `error`, `aborted`).
    Failed {
        /// The execution.
        execution_id: String,
        /// How it ended.
        status: ExecutionStatus,
    },
    /// The sync timeout ran out before the execution answered; it counts as aborted.
    TimedOut {
        /// The execution.
        execution_id: String,
    },
    /// The workflow's sync deadline passed; the execution goes on and its answer can be fetched
    /// at [`RESULT_PATH`] once it ends.
    StillRunning {
        /// The execution.
        execution_id: String,
    },
    /// Nothing ran and nothing was queued.
    Refused(Refusal),
}

/// Why a trigger request was refused.
#[derive(Debug)]
pub enum Refusal {
    /// Too much is in flight (a limit, named in the reason) or the store cannot write.
    Overloaded(String),
    /// The first request with this idempotency key is still being processed.
    InProgress {
        /// The idempotency key.
        key: String,
    },
    /// The store failed while the request was looked up or recorded.
    Storage(StoreError),
}

/// How much longer than its caller a sync execution waits for a node instance.
const SLOT_WAIT_MARGIN: Duration = Duration::from_millis(100);

/// The path where a sync caller past `trigger.syncDeadlineMs` polls for its answer.
pub const RESULT_PATH: &str = "/api/webhook:result/";

/// In a cluster, how often the fairness counts are read from the database.
const LOAD_REFRESH: Duration = Duration::from_secs(1);

/// Runs executions.
pub struct Dispatcher {
    /// Itself, for the tasks it spawns.
    me: Weak<Dispatcher>,
    host: Arc<PluginHost>,
    store: Store,
    catalog: Arc<Catalog>,
    sync_timeout: Duration,
    /// Permits for running sync executions: each is held until its execution's record is queued.
    sync_slots: Arc<Semaphore>,
    /// How many permits `sync_slots` has.
    sync_capacity: u32,
    /// Free workers for async executions (`--workers`): a claim takes one per execution.
    workers: Arc<Semaphore>,
    /// Wakes the claimer: work may be waiting (or a worker came free for a limited workflow).
    wake: Arc<Notify>,
    /// Idempotency keys being processed right now.
    claims: Arc<StdMutex<Claims>>,
    /// Executions an operator asked to cancel (any node's request), with when: the executor of
    /// one held here stops it before its next node.
    canceled: Arc<StdMutex<HashMap<String, Instant>>>,
    /// Async executions queued, running and waiting, against the fairness limits.
    load: Load,
    /// The ids of new executions.
    ids: ExecutionIds,
    /// The time executions and idempotency keys go by.
    clock: Arc<dyn Clock>,
    /// How many takeovers an execution may have before it ends `error`.
    max_takeovers: u32,
    /// The dashboard's counts of this process.
    activity: Arc<ActivityCounter>,
    /// The claimer and the event listener, stopped by [`Dispatcher::stop`].
    tasks: StdMutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Dispatcher {
    /// Starts the claimer, which takes whatever the store holds as unfinished (after a restart:
    /// everything left queued or running), and the listener of the store's events.
    pub async fn start(
        host: Arc<PluginHost>,
        store: Store,
        catalog: Arc<Catalog>,
        config: &DispatchConfig,
        clock: Arc<dyn Clock>,
        activity: Arc<ActivityCounter>,
    ) -> Result<Arc<Dispatcher>, StoreError> {
        let load = Load::new(config.max_queue, config.max_delayed);
        let counts = store.queue_counts().await?;
        load.reset(&counts);
        let pending: usize = counts.values().map(|count| count.queued + count.waiting).sum();
        if pending > 0 {
            tracing::info!("{pending} queued or interrupted executions to resume");
        }
        let events = store.events();
        let dispatcher = Arc::new_cyclic(|me| Dispatcher {
            me: me.clone(),
            host,
            store,
            catalog,
            sync_timeout: config.sync_timeout,
            sync_slots: Arc::new(Semaphore::new(config.max_sync_inflight)),
            sync_capacity: u32::try_from(config.max_sync_inflight).unwrap_or(u32::MAX),
            workers: Arc::new(Semaphore::new(config.workers)),
            wake: Arc::default(),
            claims: Arc::default(),
            canceled: Arc::default(),
            load,
            ids: ExecutionIds::default(),
            clock,
            max_takeovers: config.max_takeovers,
            activity,
            tasks: StdMutex::default(),
        });
        let mut tasks = vec![
            tokio::spawn(queue::claim_loop(Arc::downgrade(&dispatcher))),
            tokio::spawn(queue::listen(Arc::downgrade(&dispatcher), events)),
        ];
        if dispatcher.store.is_shared() {
            tasks.push(tokio::spawn(refresh_load(Arc::downgrade(&dispatcher))));
        }
        *dispatcher.tasks.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = tasks;
        Ok(dispatcher)
    }

    /// Stops claiming (executions running now go on to their end or to the process's exit).
    pub fn stop(&self) {
        self.workers.close();
        for task in self.tasks.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).drain(..) {
            task.abort();
        }
    }

    /// Waits (at most the sync timeout) until no sync execution runs: each one's record is then
    /// queued for writing. A shutdown calls it once no request is in flight, before it flushes the
    /// store: a sync execution may run on after its caller was answered.
    pub async fn drain_sync(&self) {
        let all = self.sync_slots.acquire_many(self.sync_capacity);
        match tokio::time::timeout(self.sync_timeout, all).await {
            Ok(_) => {}
            Err(_) => tracing::warn!(
                running = (self.sync_capacity as usize).saturating_sub(self.sync_slots.available_permits()),
                "sync executions still running at shutdown were not waited for"
            ),
        }
    }

    /// Handles one trigger request: answers a repeated idempotency key from the first request,
    /// runs a sync execution, or queues an async one.
    pub async fn dispatch(&self, deployed: Arc<Deployed>, trigger: Value, idempotency_key: Option<String>) -> Outcome {
        let claim = match idempotency_key {
            Some(key) => match self.claim(&deployed, key).await {
                Ok(claim) => Some(claim),
                Err(outcome) => return outcome,
            },
            None => None,
        };
        if deployed.workflow().sync {
            self.run_sync(deployed, trigger, claim).await
        } else {
            self.accept_async(&deployed, trigger, claim).await
        }
    }

    /// How long a sync caller waits; a sync execution still `started` after that long (and a
    /// second more) was cut short by a crash.
    pub fn sync_timeout(&self) -> Duration {
        self.sync_timeout
    }

    /// A new execution of `deployed`'s current version on `trigger`, created now.
    fn new_execution(&self, deployed: &Deployed, trigger: Value) -> Execution {
        Execution::new(self.ids.next(self.clock.now()), &deployed.key, deployed.version, trigger)
    }

    /// The store (for reading records).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The dashboard's counts of this process.
    pub fn activity(&self) -> &ActivityCounter {
        &self.activity
    }

    /// The time the server goes by.
    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }
}

/// The span every log line of an execution is written in: it carries the execution's id. At
/// `error` level so that it is on whatever level the log is filtered to.
fn execution_span(execution: &Execution) -> tracing::Span {
    tracing::error_span!("execution", id = %execution.id)
}

/// Counts a finished execution (metrics, the dashboard's activity) and logs how it ended: `error`
/// and `aborted` at `warn` with the failing node's reason, `failed` and `canceled` at `info`,
/// `resolved` at `debug`.
fn finished(execution: &Execution, activity: &ActivityCounter) {
    metrics().execution_finished(execution.status.as_str());
    activity.finished(execution);
    let status = execution.status.as_str();
    let workflow = execution.workflow.as_str();
    let failing = execution.jobs.iter().rev().find(|job| job.status != JobStatus::Resolved);
    let node = failing.map_or("", |job| job.node_key.as_str());
    let reason = failure_reason(execution).unwrap_or_default();
    match execution.status {
        ExecutionStatus::Resolved => tracing::debug!(workflow, status, "execution finished"),
        ExecutionStatus::Error | ExecutionStatus::Aborted => {
            tracing::warn!(workflow, status, node, "execution ended: {reason}");
        }
        _ => tracing::info!(workflow, status, node, "execution ended: {reason}"),
    }
}

/// Why an execution ended as it did: its failing job's error, else the execution's own, else
/// what its status says (a sync caller's timeout, an operator's cancel); `None` when nothing
/// says.
fn failure_reason(execution: &Execution) -> Option<String> {
    let failing = execution.jobs.iter().rev().find(|job| job.status != JobStatus::Resolved);
    match (failing.and_then(|job| job.error.as_deref()).or(execution.error.as_deref()), execution.status) {
        (Some(error), _) => Some(error.to_string()),
        (None, ExecutionStatus::Aborted) => Some("interrupted: the sync caller's timeout ran out".into()),
        (None, ExecutionStatus::Canceled) => Some("canceled by an operator".into()),
        (None, ExecutionStatus::Failed) => {
            failing.map(|job| format!("node {:?} ended the execution as failed", job.node_key))
        }
        (None, _) => None,
    }
}

/// In a cluster: reads the fairness counts from the database every [`LOAD_REFRESH`].
async fn refresh_load(dispatcher: Weak<Dispatcher>) {
    loop {
        tokio::time::sleep(LOAD_REFRESH).await;
        let Some(dispatcher) = dispatcher.upgrade() else { return };
        match dispatcher.store.queue_counts().await {
            Ok(counts) => dispatcher.load.reset(&counts),
            Err(error) => tracing::debug!("cannot read the queue's counts: {error}"),
        }
    }
}

/// Whether a finished execution's record is kept (`options.deleteExecutionOnStatus`).
fn fate(deployed: &Deployed, status: ExecutionStatus) -> RecordFate {
    let deleted = deployed.workflow().options.delete_execution_on_status.iter().any(|name| name == status.as_str());
    if deleted { RecordFate::Delete } else { RecordFate::Keep }
}
