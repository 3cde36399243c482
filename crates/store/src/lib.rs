//! hookflow's storage boundary: workflows (every version), uploaded components, executions and
//! their jobs, the async queue with its claims, idempotency keys and kept answers — in one redb
//! file ([`embedded`], the default) or in PostgreSQL, shared by every node of a cluster
//! ([`postgres`]). Both keep the same records, byte for byte, and answer to the same contract
//! (`tests/conformance.rs` runs it against each).
//!
//! Writes are [`op::Request`]s built here, records encoded once, and applied by the backend's one
//! writer, which folds whatever is pending into one transaction (group commit). What an async
//! caller was promised (the execution behind an acknowledgement) is answered only after a
//! durable commit; the progress of async executions (each job, the end) is durable without
//! anyone waiting, so a crash loses at most the job that was running; records of sync executions
//! are written lazily and made durable by the next durable commit or the flush at shutdown.
//!
//! The queue: an async execution is claimed by one [`Owner`] at a time — the process, or a
//! cluster node under its lease — and the writes of its progress are fenced by that claim, so an
//! owner that lost it (a node whose lease ran out) writes nothing more.

mod embedded;
mod error;
mod op;
mod postgres;
mod record;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, oneshot};

pub use error::{Cause, StoreError};
use hookflow_workflow::timestamp::Timestamp;
use hookflow_workflow::{Execution, Job, Reply, Workflow};
pub use op::Applied;
use op::{Fence, Op, Request};
pub use postgres::PostgresConfig;
pub use record::FORMAT_VERSION;
use record::{ExecutionRecord, JobRecord, ReplyRecord, encode};

/// Where the store keeps its data.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// One redb file, for one process.
    Embedded {
        /// The file.
        path: PathBuf,
    },
    /// A PostgreSQL database, shared by every node of a cluster.
    Postgres(PostgresConfig),
}

/// Who holds claims on queued executions: the one process of an embedded store, or a cluster
/// node under its current lease (a node that lost its lease comes back as a new owner).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Owner(pub i64);

/// What a remembered idempotency key points at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdempotencyRecord {
    /// The execution the first request with the key started.
    pub execution_id: String,
    /// When the key is forgotten.
    pub expires_at: Timestamp,
    /// The first request is still running and has no answer to repeat yet (a sync execution
    /// in a cluster, where the repeat may reach another node).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
}

/// An idempotency key, within its workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencyKey<'a> {
    /// The workflow's key.
    pub workflow: &'a str,
    /// The key from the request.
    pub key: &'a str,
}

/// An idempotency key to remember.
#[derive(Debug, Clone, Copy)]
pub struct IdempotencyEntry<'a> {
    /// The key.
    pub key: IdempotencyKey<'a>,
    /// What it points at.
    pub record: &'a IdempotencyRecord,
}

/// What becomes of a finished execution's record (a workflow's
/// `options.deleteExecutionOnStatus` names the statuses that delete it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFate {
    /// The record is kept (until retention deletes it).
    Keep,
    /// The record is deleted as the execution ends.
    Delete,
}

/// A finished sync execution, as [`Store::record_sync_execution`] writes it.
#[derive(Debug, Clone, Copy)]
pub struct SyncFinish<'a> {
    /// The execution.
    pub execution: &'a Execution,
    /// Whether its record stays.
    pub fate: RecordFate,
    /// The answer its caller got, when it is kept (for idempotent repeats and result polls).
    pub reply: Option<&'a Reply>,
    /// Its idempotency key, remembered with the answer.
    pub idempotency: Option<IdempotencyEntry<'a>>,
    /// A key held while it ran that no answer is kept under (a 5xx): forgotten, so a retry runs.
    pub release: Option<IdempotencyKey<'a>>,
    /// A failure hook's execution, stored and queued with it (then the write is durable).
    pub follow_up: Option<&'a Execution>,
}

/// A stored workflow: the current definition and its bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowRecord {
    /// The current definition (its `key` is set).
    pub definition: Workflow,
    /// Starts at 1; each change of the definition adds one.
    pub version: u64,
    /// When version 1 was stored.
    pub created_at: Timestamp,
    /// When the current version was stored.
    pub updated_at: Timestamp,
    /// The file the definition was loaded from, when it came from `--workflows`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// An uploaded component, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPlugin {
    /// The node type name.
    pub name: String,
    /// The SHA-256 of the component's bytes (hex).
    pub digest: String,
}

/// Which executions a listing wants.
#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter {
    /// Only this workflow's.
    pub workflow: Option<String>,
    /// Only executions with this status.
    pub status: Option<hookflow_workflow::ExecutionStatus>,
    /// Only executions created at or after this instant.
    pub since: Option<Timestamp>,
    /// Only executions created before this instant.
    pub until: Option<Timestamp>,
    /// Only dead letters (`true`) or only executions that are not (`false`).
    pub dead_letter: Option<bool>,
    /// Only executions re-run already (`true`) or not yet (`false`).
    pub rerun: Option<bool>,
}

impl ExecutionFilter {
    fn matches(&self, execution: &Execution) -> bool {
        self.workflow.as_ref().is_none_or(|workflow| *workflow == execution.workflow)
            && self.status.is_none_or(|status| status == execution.status)
            && self.since.is_none_or(|since| execution.created_at >= since)
            && self.until.is_none_or(|until| execution.created_at < until)
            && self.dead_letter.is_none_or(|dead_letter| dead_letter == execution.dead_letter)
            && self.rerun.is_none_or(|rerun| rerun == execution.rerun_as.is_some())
    }

    /// Whether the filter asks for what only a decoded record tells (no index has it), so a
    /// listing reads past the records it skips.
    fn reads_records(&self) -> bool {
        self.status == Some(hookflow_workflow::ExecutionStatus::Unreadable)
            || self.dead_letter.is_some()
            || self.rerun.is_some()
    }

    /// The range of ids `[low, high)` a listing reads (ids sort by creation time, so a time range
    /// and a cursor are a range of ids); `None` when it is empty.
    fn id_range(&self, before: Option<&str>) -> Option<(String, String)> {
        let lowest = self.since.map(first_id_at).unwrap_or_default();
        let until = self.until.map(first_id_at);
        let highest = match (before, until.as_deref()) {
            (Some(before), Some(until)) => Some(before.min(until).to_string()),
            (bound, None) => bound.map(str::to_string),
            (None, bound) => bound.map(str::to_string),
        };
        let highest = highest.unwrap_or_else(|| PAST_EVERY_ID.to_string());
        (lowest < highest).then_some((lowest, highest))
    }
}

/// The smallest execution id (a ULID) created at `instant`: ids sort by creation time, so a time
/// range is a range of ids.
fn first_id_at(instant: Timestamp) -> String {
    ulid::Ulid::from_parts(instant.0, 0).to_string()
}

/// Sorts after every execution id (ULIDs are Crockford base32, `[0-9A-Z]`).
const PAST_EVERY_ID: &str = "~";

/// The idempotency keys that make a redrive re-run each execution once, under a name no
/// workflow key can have (keys are `[A-Za-z0-9_-]`), keyed by the earlier execution's id.
const RERUN_KEYS: &str = "#rerun";

/// How long a rerun's key guards against a concurrent second rerun; after that the earlier
/// record's `rerunAs` does.
const RERUN_KEY_TTL: Duration = Duration::from_secs(24 * 3600);

/// What became of [`Store::enqueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// The execution is stored and queued.
    New,
    /// Its idempotency key is held by an earlier execution: nothing was stored.
    Duplicate {
        /// The earlier execution.
        execution_id: String,
    },
}

/// What became of [`Store::cancel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canceled {
    /// Nobody held it: its record says `canceled` and it is off the queue.
    Ended,
    /// Whoever runs it was asked to cancel it before its next node (one waiting in a delay is
    /// woken for that).
    Requested,
    /// It is not on the queue (it has ended, or is a sync execution).
    NotQueued,
}

/// A queued execution an owner has claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The execution.
    pub id: String,
    /// Its workflow.
    pub workflow: String,
    /// How many times it was taken from an owner whose lease ran out.
    pub takeovers: u32,
    /// An operator asked to cancel it.
    pub cancel: bool,
    /// It was waiting in a delay until now.
    pub waited: bool,
}

/// What one workflow has on the queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkflowQueue {
    /// Queued or running (not waiting in a delay).
    pub queued: usize,
    /// Waiting in a delay.
    pub waiting: usize,
}

/// A refused trigger request, as the refusal log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refusal {
    /// Sortable unique id (a ULID of `time`).
    pub id: String,
    /// When it was refused.
    pub time: Timestamp,
    /// The workflow's key.
    pub workflow: String,
    /// The request's method.
    pub method: String,
    /// The status answered.
    pub status: u16,
    /// The error code answered.
    pub code: String,
    /// The error message answered.
    pub reason: String,
    /// The client's address.
    pub client: String,
    /// The workflow's configured headers of the request (lower-case), secrets masked.
    pub headers: std::collections::BTreeMap<String, String>,
}

/// Which refusals a listing wants.
#[derive(Debug, Clone, Default)]
pub struct RefusalFilter {
    /// Only this workflow's.
    pub workflow: Option<String>,
    /// Only refusals with this error code.
    pub code: Option<String>,
    /// Only refusals at or after this instant.
    pub since: Option<Timestamp>,
}

/// One minute of one workflow's activity as one process counted it (the dashboard's charts sum
/// the processes of a cluster); the workflow `*` holds every workflow's together.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    /// Trigger requests answered.
    #[serde(default)]
    pub requests: u64,
    /// Trigger requests refused.
    #[serde(default)]
    pub refusals: u64,
    /// Executions that ended, by status.
    #[serde(default)]
    pub executions: std::collections::BTreeMap<String, u64>,
    /// Their durations (creation to end), counted in the buckets of [`Activity::DURATION_BOUNDS_MS`]
    /// (one more for longer ones).
    #[serde(default)]
    pub durations: Vec<u64>,
}

impl Activity {
    /// The upper bounds, in milliseconds, of the duration buckets.
    pub const DURATION_BOUNDS_MS: [u64; 15] =
        [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000];

    /// Counts an ended execution.
    pub fn execution(&mut self, status: &str, duration_ms: u64) {
        *self.executions.entry(status.to_string()).or_default() += 1;
        if self.durations.len() <= Self::DURATION_BOUNDS_MS.len() {
            self.durations.resize(Self::DURATION_BOUNDS_MS.len() + 1, 0);
        }
        let bucket = Self::DURATION_BOUNDS_MS.iter().position(|bound| duration_ms <= *bound);
        self.durations[bucket.unwrap_or(Self::DURATION_BOUNDS_MS.len())] += 1;
    }

    /// Adds another count of the same minute (another process's, or another minute of a step).
    pub fn add(&mut self, other: &Activity) {
        self.requests += other.requests;
        self.refusals += other.refusals;
        for (status, count) in &other.executions {
            *self.executions.entry(status.clone()).or_default() += count;
        }
        if self.durations.len() < other.durations.len() {
            self.durations.resize(other.durations.len(), 0);
        }
        for (mine, theirs) in self.durations.iter_mut().zip(&other.durations) {
            *mine += theirs;
        }
    }

    /// The duration below which `quantile` (0–1) of the counted executions ended, in
    /// milliseconds, interpolated within its bucket; `None` when none ended.
    pub fn duration_quantile(&self, quantile: f64) -> Option<f64> {
        let total: u64 = self.durations.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (quantile.clamp(0.0, 1.0) * total as f64).max(1.0);
        let mut below = 0u64;
        for (index, count) in self.durations.iter().enumerate() {
            if *count > 0 && (below + count) as f64 >= rank {
                let low = if index == 0 { 0 } else { Self::DURATION_BOUNDS_MS[index - 1] };
                let Some(high) = Self::DURATION_BOUNDS_MS.get(index) else { return Some(low as f64) };
                let within = (rank - below as f64) / *count as f64;
                return Some(low as f64 + within * (high - low) as f64);
            }
            below += count;
        }
        None
    }
}

/// A node of the cluster, as `GET /api/cluster` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    /// Its current identity (the owner of its claims).
    pub id: i64,
    /// Where it serves.
    pub address: String,
    /// When it joined under this identity.
    pub started_at: Timestamp,
    /// When it last renewed its lease.
    pub renewed_at: Timestamp,
    /// How many executions it holds now.
    pub executions: u64,
}

/// Something another writer (or the database) did that a node may need to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreEvent {
    /// Executions may be waiting to be claimed.
    QueueReady,
    /// An operator asked to cancel this execution.
    CancelRequested(String),
    /// This workflow changed.
    WorkflowChanged(String),
    /// This uploaded component changed.
    PluginChanged(String),
    /// Events may have been missed (a reconnect): look at everything again.
    Resync,
}

/// Hears when a write has committed, and how.
pub type Committed = oneshot::Receiver<Result<Applied, StoreError>>;

/// Hears of every write transaction the store commits.
pub trait CommitObserver: Send + Sync {
    /// One commit (a group of writes) took `elapsed`.
    fn commit(&self, elapsed: Duration);
}

/// How often a store whose writes fail tries to write again.
pub const RECOVERY_INTERVAL: Duration = Duration::from_secs(2);

/// The store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Embedded(embedded::Embedded),
    Postgres(postgres::Postgres),
}

/// Calls the same method on whichever backend the store has.
macro_rules! on_backend {
    ($store:expr, $backend:ident => $call:expr) => {
        match &$store.backend {
            Backend::Embedded($backend) => $call,
            Backend::Postgres($backend) => $call,
        }
    };
}

impl Store {
    /// Opens (or creates) the store: a redb file, or a PostgreSQL database (whose schema is
    /// migrated first, one node at a time).
    pub async fn open(config: &StoreConfig, observer: Option<Arc<dyn CommitObserver>>) -> Result<Store, StoreError> {
        let backend = match config {
            StoreConfig::Embedded { path } => {
                let path = path.clone();
                let opened = tokio::task::spawn_blocking(move || embedded::Embedded::open(&path, observer)).await;
                Backend::Embedded(opened.map_err(|_| StoreError::Closed)??)
            }
            StoreConfig::Postgres(config) => Backend::Postgres(postgres::Postgres::open(config, observer).await?),
        };
        Ok(Store { backend })
    }

    /// Opens (or creates) a redb file (for tools and tests that need no runtime to open it).
    pub fn open_file(path: &Path) -> Result<Store, StoreError> {
        Ok(Store { backend: Backend::Embedded(embedded::Embedded::open(path, None)?) })
    }

    /// Whether other processes share this store (a cluster): what one node knows in memory
    /// (a key being processed, its count of queued executions) does not cover the others.
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// Where the data is (a file, or a server without its password), for messages.
    pub fn location(&self) -> String {
        on_backend!(self, backend => backend.location())
    }

    fn submit(&self, request: Request) {
        on_backend!(self, backend => backend.submit(request));
    }

    /// Hands `ops` to the writer without waiting; a record that could not be encoded is logged
    /// with its execution and nothing of it is written.
    fn submit_background(&self, execution_id: &str, ops: Result<Vec<Op>, StoreError>, durable: bool) {
        match ops {
            Ok(ops) => self.submit(Request::background(ops, durable)),
            Err(error) => tracing::error!(execution = execution_id, "not written: {error}"),
        }
    }

    /// Hands `ops`, fenced by `owner`'s claim on `id`, to the writer without waiting.
    fn submit_fenced(&self, id: &str, owner: Owner, ops: Result<Vec<Op>, StoreError>) {
        match ops {
            Ok(ops) => {
                let fence = Some(Fence { id: id.to_string(), owner });
                self.submit(Request { ops, fence, durable: true, done: None });
            }
            Err(error) => tracing::error!(execution = id, "not written: {error}"),
        }
    }

    /// Hands `ops` to the writer; the receiver hears once they committed (or why not).
    fn submit_notified(&self, ops: Result<Vec<Op>, StoreError>, durable: bool) -> Committed {
        let (done, committed) = oneshot::channel();
        match ops {
            Ok(ops) => self.submit(Request { ops, fence: None, durable, done: Some(done) }),
            Err(error) => {
                let _ = done.send(Err(error));
            }
        }
        committed
    }

    /// Applies `ops` durably and waits for it.
    async fn write(&self, ops: Vec<Op>) -> Result<Applied, StoreError> {
        self.submit_notified(Ok(ops), true).await.map_err(|_| StoreError::Closed)?
    }

    /// `Some(why)` while writes fail (the last failure), `None` when the last write succeeded.
    pub fn write_failure(&self) -> Option<StoreError> {
        on_backend!(self, backend => backend.write_failure())
    }

    /// Events of other writers: queued work, cancel requests, catalog changes. An embedded store
    /// reports its own queue and cancel events; a shared one also those of the other nodes.
    pub fn events(&self) -> broadcast::Receiver<StoreEvent> {
        on_backend!(self, backend => backend.events())
    }

    // --- membership ---

    /// Joins the cluster as a node serving at `address` (a shared store: a lease renewed every
    /// third of its length, a node whose lease ran out is reaped by any other); an embedded
    /// store has one owner, the process.
    pub async fn join(&self, address: &str) -> Result<Owner, StoreError> {
        match &self.backend {
            Backend::Embedded(backend) => Ok(backend.owner()),
            Backend::Postgres(backend) => backend.join(address).await,
        }
    }

    /// The owner this process claims as now; `None` while a node has lost its lease and not yet
    /// joined again.
    pub fn owner(&self) -> Option<Owner> {
        match &self.backend {
            Backend::Embedded(backend) => Some(backend.owner()),
            Backend::Postgres(backend) => backend.owner(),
        }
    }

    /// Leaves the cluster: every claim this process holds is released for others to take
    /// (waits for it); a no-op for an embedded store.
    pub async fn leave(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Embedded(_) => Ok(()),
            Backend::Postgres(backend) => backend.leave().await,
        }
    }

    /// The nodes of the cluster (an embedded store: this process, as node 1).
    pub async fn nodes(&self) -> Result<Vec<ClusterNode>, StoreError> {
        on_backend!(self, backend => backend.nodes().await)
    }

    // --- workflows ---

    /// Stores a workflow's current record and its version's definition, if the stored record is
    /// still at version `expected` (`None`: no record) — a compare-and-set, so two changes made
    /// at once (on two nodes) never both win; durable on return. [`Applied::Conflict`] when the
    /// workflow changed meanwhile: nothing was written.
    pub async fn put_workflow(&self, record: &WorkflowRecord, expected: Option<u64>) -> Result<Applied, StoreError> {
        let key = record.definition.key.clone().unwrap_or_default();
        let ops = vec![
            Op::PutWorkflow {
                key: key.clone(),
                version: record.version,
                record: encode("workflows", record)?,
                expected,
            },
            Op::PutWorkflowVersion {
                key,
                version: record.version,
                definition: encode("workflow_versions", &record.definition)?,
            },
        ];
        self.write(ops).await
    }

    /// Every stored workflow, by key.
    pub async fn workflows(&self) -> Result<Vec<WorkflowRecord>, StoreError> {
        on_backend!(self, backend => backend.workflows().await)
    }

    /// Forgets a workflow (its versions stay, for executions that ran on them); durable on return.
    pub async fn delete_workflow(&self, key: &str) -> Result<(), StoreError> {
        self.write(vec![Op::DeleteWorkflow { key: key.to_string() }]).await.map(drop)
    }

    /// One stored workflow.
    pub async fn workflow(&self, key: &str) -> Result<Option<WorkflowRecord>, StoreError> {
        on_backend!(self, backend => backend.workflow(key).await)
    }

    /// One version of a workflow's definition.
    pub async fn workflow_version(&self, key: &str, version: u64) -> Result<Option<Workflow>, StoreError> {
        on_backend!(self, backend => backend.workflow_version(key, version).await)
    }

    /// Every stored version of a workflow's definition, oldest first (they outlive the workflow's
    /// deletion, for the executions that ran on them).
    pub async fn workflow_versions(&self, key: &str) -> Result<Vec<(u64, Workflow)>, StoreError> {
        on_backend!(self, backend => backend.workflow_versions(key).await)
    }

    // --- uploaded components ---

    /// Keeps an uploaded component (replacing one of that name); durable on return.
    pub async fn put_plugin(&self, name: &str, digest: &str, component: &[u8]) -> Result<(), StoreError> {
        let op = Op::PutPlugin { name: name.to_string(), digest: digest.to_string(), component: component.to_vec() };
        self.write(vec![op]).await.map(drop)
    }

    /// Forgets an uploaded component; durable on return.
    pub async fn delete_plugin(&self, name: &str) -> Result<(), StoreError> {
        self.write(vec![Op::DeletePlugin { name: name.to_string() }]).await.map(drop)
    }

    /// Every uploaded component, by name.
    pub async fn plugins(&self) -> Result<Vec<StoredPlugin>, StoreError> {
        on_backend!(self, backend => backend.plugins().await)
    }

    /// One uploaded component's bytes.
    pub async fn plugin(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        on_backend!(self, backend => backend.plugin(name).await)
    }

    // --- the queue ---

    /// Stores a new async execution with its idempotency key and queues it; returns once the
    /// commit is durable. When the key is held by an earlier execution nothing is stored.
    /// `claim`: held at once by this owner (a worker of the accepting node is free), or `None`:
    /// free for any owner to claim.
    pub async fn enqueue(
        &self,
        execution: &Execution,
        idempotency: Option<IdempotencyEntry<'_>>,
        claim: Option<Owner>,
        now: Timestamp,
    ) -> Result<Enqueued, StoreError> {
        let mut ops = Vec::with_capacity(3);
        if let Some(idempotency) = idempotency {
            ops.push(take_idempotency_op(idempotency, &execution.id, now)?);
        }
        ops.extend(enqueue_ops(execution, claim, now)?);
        match self.write(ops).await? {
            Applied::Duplicate(execution_id) => Ok(Enqueued::Duplicate { execution_id }),
            _ => Ok(Enqueued::New),
        }
    }

    /// Claims up to `limit` queued executions due by `now` for `owner`, oldest first; of a
    /// workflow named in `max_running` (`options.maxConcurrency`), never more than that many
    /// held at once.
    pub async fn claim(
        &self,
        owner: Owner,
        limit: usize,
        now: Timestamp,
        max_running: &HashMap<String, u32>,
    ) -> Result<Vec<Claimed>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        on_backend!(self, backend => backend.claim(owner, limit, now, max_running).await)
    }

    /// When the next queued execution that nobody holds comes due after `now` (one waiting in a
    /// delay).
    pub async fn next_due(&self, now: Timestamp) -> Result<Option<Timestamp>, StoreError> {
        on_backend!(self, backend => backend.next_due(now).await)
    }

    /// Stores a new execution that re-runs `earlier` (whose record, naming it in `rerunAs`, is
    /// written with it) and queues it, held by `claim` or free to claim; durable on return.
    /// `once`: only if no other rerun took `earlier` first (a redrive), else nothing is written
    /// and the other rerun is named.
    pub async fn rerun(
        &self,
        earlier: &Execution,
        rerun: &Execution,
        claim: Option<Owner>,
        once: bool,
        now: Timestamp,
    ) -> Result<Enqueued, StoreError> {
        let mut ops = Vec::with_capacity(4);
        if once {
            let record = IdempotencyRecord {
                execution_id: rerun.id.clone(),
                expires_at: now.plus(RERUN_KEY_TTL),
                pending: false,
            };
            let key = IdempotencyKey { workflow: RERUN_KEYS, key: &earlier.id };
            ops.push(take_idempotency_op(IdempotencyEntry { key, record: &record }, &rerun.id, now)?);
        }
        ops.push(put_execution(earlier)?);
        ops.extend(enqueue_ops(rerun, claim, now)?);
        match self.write(ops).await? {
            Applied::Duplicate(execution_id) => Ok(Enqueued::Duplicate { execution_id }),
            _ => Ok(Enqueued::New),
        }
    }

    /// Records that a claimed execution started (lazy: recovery needs only the queue and the
    /// jobs); fenced by `owner`'s claim.
    pub fn mark_started(&self, execution: &Execution, owner: Owner) {
        self.submit_fenced(&execution.id, owner, put_execution(execution).map(|op| vec![op]));
    }

    /// Records a finished job of a running async execution (durable; not waited for); fenced by
    /// `owner`'s claim.
    pub fn record_job(&self, execution_id: &str, index: usize, job: &Job, owner: Owner) {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        let op = encode("jobs", &JobRecord::of(job)).map(|record| Op::PutJob {
            id: execution_id.to_string(),
            index,
            record,
        });
        self.submit_fenced(execution_id, owner, op.map(|op| vec![op]));
    }

    /// Records a finished async execution with all its jobs (or deletes it, when it is not to be
    /// kept) and takes it off the queue, in one transaction (durable; not waited for): once it is
    /// committed the execution never runs again. `follow_up` (a failure hook's execution) is
    /// stored and queued in the same transaction, free to claim. Fenced by `owner`'s claim.
    pub fn record_finished(
        &self,
        execution: &Execution,
        fate: RecordFate,
        owner: Owner,
        follow_up: Option<&Execution>,
    ) {
        self.submit_fenced(&execution.id, owner, finish_ops(execution, fate, follow_up));
    }

    /// Puts an execution whose attempt failed back on the queue for its next attempt, due at
    /// `run_at`: its record (`queued`, the resolved jobs it keeps, `retryAt`) replaces its
    /// job-by-job progress, in one transaction (durable; not waited for). Fenced by `owner`'s
    /// claim.
    pub fn schedule_retry(&self, execution: &Execution, run_at: Timestamp, owner: Owner) {
        let ops = put_execution(execution).map(|record| {
            vec![
                record,
                Op::DeleteJobs { id: execution.id.clone() },
                Op::Release { id: execution.id.clone(), run_at: run_at.0 },
            ]
        });
        self.submit_fenced(&execution.id, owner, ops);
    }

    /// Puts a claimed execution back on the queue, free to claim from `run_at` (a delay node
    /// holds it until then); durable, not waited for, fenced by `owner`'s claim.
    pub fn release(&self, id: &str, run_at: Timestamp, owner: Owner) {
        self.submit_fenced(id, owner, Ok(vec![Op::Release { id: id.to_string(), run_at: run_at.0 }]));
    }

    /// Takes a claimed execution off the queue without touching its record (one whose record
    /// cannot be read, so it cannot run); durable, not waited for, fenced by `owner`'s claim.
    pub fn dequeue(&self, id: &str, owner: Owner) {
        self.submit_fenced(id, owner, Ok(vec![Op::Dequeue { id: id.to_string() }]));
    }

    /// Cancels a queued execution: one nobody holds (and not waiting in a delay) ends at once
    /// with `canceled` — the record given, whose status says so — and leaves the queue; one held
    /// or waiting is asked to cancel (every node hears of it). Durable on return.
    pub async fn cancel(&self, canceled: &Execution, now: Timestamp) -> Result<Canceled, StoreError> {
        let record = encode("executions", &ExecutionRecord::of(canceled))?;
        let id = canceled.id.clone();
        let op = Op::CancelUnclaimed { id: id.clone(), workflow: canceled.workflow.clone(), record };
        if self.write(vec![op]).await? == Applied::Done {
            return Ok(Canceled::Ended);
        }
        Ok(match self.write(vec![Op::RequestCancel { id, now: now.0 }]).await? {
            Applied::Done => Canceled::Requested,
            _ => Canceled::NotQueued,
        })
    }

    /// Whether an async execution is still on the queue (not finished).
    pub async fn is_queued(&self, id: &str) -> Result<bool, StoreError> {
        on_backend!(self, backend => backend.is_queued(id).await)
    }

    /// How many async executions are unfinished, per workflow.
    pub async fn queue_counts(&self) -> Result<HashMap<String, WorkflowQueue>, StoreError> {
        on_backend!(self, backend => backend.queue_counts().await)
    }

    /// How many async executions are unfinished (queued, running or waiting).
    pub async fn queue_depth(&self) -> Result<u64, StoreError> {
        on_backend!(self, backend => backend.queue_depth().await)
    }

    // --- sync executions, idempotency keys, kept answers ---

    /// Records a running sync execution, so it can be polled (lazy).
    pub fn record_sync_start(&self, execution: &Execution) {
        self.submit_background(&execution.id, put_execution(execution).map(|op| vec![op]), false);
    }

    /// Records a finished sync execution (or deletes it, when it is not to be kept), with the
    /// answer its caller got when that is to be kept and its idempotency key. Lazy (durable at
    /// the next durable commit or [`Store::flush`]) without a key; with one, the receiver hears
    /// once the key and its answer are durable, so the caller is answered only after that.
    pub fn record_sync_execution(&self, finish: SyncFinish<'_>) -> Committed {
        let SyncFinish { execution, fate, reply, idempotency, release, follow_up } = finish;
        let ops = (|| {
            // A sync execution is never queued and records no jobs: nothing else to remove.
            let mut ops = end_ops(execution, fate, follow_up)?;
            ops.extend(reply.map(|reply| reply_op(&execution.id, reply)).transpose()?);
            ops.extend(idempotency.map(idempotency_op).transpose()?);
            ops.extend(
                release
                    .map(|key| Op::DeleteIdempotency { workflow: key.workflow.to_string(), key: key.key.to_string() }),
            );
            Ok(ops)
        })();
        self.submit_notified(ops, idempotency.is_some() || release.is_some() || follow_up.is_some())
    }

    /// Keeps the answer a sync caller is about to get, under its idempotency key; the receiver
    /// hears once both are durable.
    pub fn record_reply(&self, execution_id: &str, reply: &Reply, idempotency: IdempotencyEntry<'_>) -> Committed {
        let ops = reply_op(execution_id, reply).and_then(|reply| Ok(vec![reply, idempotency_op(idempotency)?]));
        self.submit_notified(ops, true)
    }

    /// Holds an idempotency key for a sync execution about to run (its record says `pending`),
    /// unless an earlier one holds it; durable on return.
    pub async fn hold_idempotency(&self, entry: IdempotencyEntry<'_>, now: Timestamp) -> Result<Enqueued, StoreError> {
        let op = take_idempotency_op(entry, &entry.record.execution_id, now)?;
        match self.write(vec![op]).await? {
            Applied::Duplicate(execution_id) => Ok(Enqueued::Duplicate { execution_id }),
            _ => Ok(Enqueued::New),
        }
    }

    /// What a remembered idempotency key points at, unless it has expired by `now`.
    pub async fn idempotency(
        &self,
        key: IdempotencyKey<'_>,
        now: Timestamp,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let record = on_backend!(self, backend => backend.idempotency(key).await)?;
        Ok(record.filter(|record| record.expires_at > now))
    }

    /// The answer a sync execution's caller got, when it was kept.
    pub async fn reply(&self, execution_id: &str) -> Result<Option<Reply>, StoreError> {
        let bytes = on_backend!(self, backend => backend.reply(execution_id).await)?;
        bytes.map(|bytes| record::decode("replies", &bytes).map(ReplyRecord::into_reply)).transpose()
    }

    /// Waits until every write issued before the call is durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.write(Vec::new()).await.map(drop)
    }

    /// Waits until every write issued before the call is visible to reads (committed, not
    /// necessarily durable), so that a sync execution whose caller was just answered — its record
    /// still waiting in the writer's batch — is found. Listings call it themselves; a reader of
    /// one execution by id calls it first unless the execution is its own claim (the async
    /// worker's hot path). When the store cannot write, it returns at once and the read sees what
    /// is there.
    pub async fn settle(&self) {
        let _ = self.submit_notified(Ok(Vec::new()), false).await;
    }

    // --- the refusal log ---

    /// Logs a refused trigger request, keeping the newest `keep` of its workflow (the oldest
    /// dropped); lazy (durable with the next durable commit), the receiver hears once it is
    /// listed.
    pub fn record_refusal(&self, refusal: &Refusal, keep: usize) -> Committed {
        let ops = encode("refusals", refusal).map(|record| {
            vec![Op::PutRefusal {
                id: refusal.id.clone(),
                workflow: refusal.workflow.clone(),
                code: refusal.code.clone(),
                record,
                keep: u64::try_from(keep).unwrap_or(u64::MAX),
            }]
        });
        self.submit_notified(ops, false)
    }

    /// Refusals newest first: those older than `before` (a refusal id) that match the filter,
    /// at most `limit`.
    pub async fn refusals(
        &self,
        filter: &RefusalFilter,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Refusal>, StoreError> {
        let low = filter.since.map(first_id_at).unwrap_or_default();
        let high = before.map_or_else(|| PAST_EVERY_ID.to_string(), str::to_string);
        if low >= high || limit == 0 {
            return Ok(Vec::new());
        }
        self.settle().await;
        on_backend!(self, backend => backend.refusals(filter, &low, &high, limit).await)
    }

    // --- activity, for the dashboard ---

    /// Stores what `writer` (one process) counted of `workflow` in `minute` (minutes since the
    /// epoch), replacing its earlier count of that minute; lazy.
    pub fn put_activity(&self, workflow: &str, minute: u64, writer: &str, activity: &Activity) -> Committed {
        let ops = encode("activity", activity).map(|record| {
            vec![Op::PutActivity { workflow: workflow.to_string(), minute, writer: writer.to_string(), record }]
        });
        self.submit_notified(ops, false)
    }

    /// `workflow`'s activity (`*`: every workflow's) in the minutes `[from, to)`, each minute
    /// summed over the processes that counted it, oldest first.
    pub async fn activity(&self, workflow: &str, from: u64, to: u64) -> Result<Vec<(u64, Activity)>, StoreError> {
        let rows = on_backend!(self, backend => backend.activity(workflow, from, to).await)?;
        let mut minutes: std::collections::BTreeMap<u64, Activity> = std::collections::BTreeMap::new();
        for (minute, bytes) in rows {
            let counted: Activity = record::decode("activity", &bytes)?;
            minutes.entry(minute).or_default().add(&counted);
        }
        Ok(minutes.into_iter().collect())
    }

    /// Forgets activity of the minutes before `minute`; lazy, the receiver hears when done.
    pub fn delete_activity_before(&self, minute: u64) -> Committed {
        self.submit_notified(Ok(vec![Op::DeleteActivityBefore { minute }]), false)
    }

    // --- reading executions ---

    /// One execution with its jobs.
    pub async fn execution(&self, id: &str) -> Result<Option<Execution>, StoreError> {
        on_backend!(self, backend => backend.execution(id).await)
    }

    /// Executions newest first, without their job-by-job progress: those older than `before`
    /// (an execution id) that match the filter, at most `limit`.
    pub async fn executions(
        &self,
        filter: &ExecutionFilter,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Execution>, StoreError> {
        self.settle().await;
        on_backend!(self, backend => backend.executions(filter, before, limit).await)
    }

    /// The newest execution of a workflow, as `(id, status)`.
    pub async fn last_execution(&self, workflow: &str) -> Result<Option<(String, String)>, StoreError> {
        self.settle().await;
        on_backend!(self, backend => backend.last_execution(workflow).await)
    }

    // --- retention ---

    /// Ids of executions created before `cutoff` that are not on the async queue — finished,
    /// or sync records whose run a crash cut short — oldest first, after the id `after`, at most
    /// `limit` (for retention).
    pub async fn settled_before(
        &self,
        cutoff: Timestamp,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        on_backend!(self, backend => backend.settled_before(cutoff, after, limit).await)
    }

    /// Deletes executions with their jobs and kept answers (lazy); the receiver hears when
    /// the deletion is visible.
    pub fn delete_executions(&self, ids: &[String]) -> Committed {
        let ops = ids
            .iter()
            .flat_map(|id| {
                [
                    Op::DeleteExecution { id: id.clone() },
                    Op::DeleteJobs { id: id.clone() },
                    Op::DeleteReply { id: id.clone() },
                    // An unreadable record may still be queued.
                    Op::Dequeue { id: id.clone() },
                ]
            })
            .collect();
        self.submit_notified(Ok(ops), false)
    }

    /// Idempotency keys that expired before `now`, as `(workflow, key)`, in key order after
    /// `after`, at most `limit`.
    pub async fn expired_idempotency_keys(
        &self,
        now: Timestamp,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        on_backend!(self, backend => backend.expired_idempotency_keys(now, after, limit).await)
    }

    /// Forgets idempotency keys (lazy); the receiver hears when that is visible.
    pub fn delete_idempotency_keys(&self, keys: &[(String, String)]) -> Committed {
        let ops = keys
            .iter()
            .map(|(workflow, key)| Op::DeleteIdempotency { workflow: workflow.clone(), key: key.clone() })
            .collect();
        self.submit_notified(Ok(ops), false)
    }
}

/// Writes an execution's record and what it is indexed under.
fn put_execution(execution: &Execution) -> Result<Op, StoreError> {
    Ok(Op::PutExecution {
        id: execution.id.clone(),
        workflow: execution.workflow.clone(),
        status: execution.status.as_str(),
        record: encode("executions", &ExecutionRecord::of(execution))?,
    })
}

/// Stores a new execution and queues it, due at `run_at`, held by `owner` or free to claim.
fn enqueue_ops(execution: &Execution, owner: Option<Owner>, run_at: Timestamp) -> Result<[Op; 2], StoreError> {
    Ok([
        put_execution(execution)?,
        Op::Enqueue { id: execution.id.clone(), workflow: execution.workflow.clone(), run_at: run_at.0, owner },
    ])
}

/// Keeps the answer a sync execution's caller got.
fn reply_op(execution_id: &str, reply: &Reply) -> Result<Op, StoreError> {
    Ok(Op::PutReply { id: execution_id.to_string(), record: encode("replies", &ReplyRecord::of(reply))? })
}

fn idempotency_op(entry: IdempotencyEntry<'_>) -> Result<Op, StoreError> {
    Ok(Op::PutIdempotency {
        workflow: entry.key.workflow.to_string(),
        key: entry.key.key.to_string(),
        execution_id: entry.record.execution_id.clone(),
        record: encode("idempotency", entry.record)?,
        expires_at: entry.record.expires_at.0,
        pending: entry.record.pending,
    })
}

fn take_idempotency_op(entry: IdempotencyEntry<'_>, execution_id: &str, now: Timestamp) -> Result<Op, StoreError> {
    Ok(Op::TakeIdempotency {
        workflow: entry.key.workflow.to_string(),
        key: entry.key.key.to_string(),
        execution_id: execution_id.to_string(),
        record: encode("idempotency", entry.record)?,
        expires_at: entry.record.expires_at.0,
        pending: entry.record.pending,
        now: now.0,
    })
}

/// The whole record of a finished execution (or its deletion, when it is not to be kept), and
/// `follow_up` stored and queued, free to claim.
fn end_ops(execution: &Execution, fate: RecordFate, follow_up: Option<&Execution>) -> Result<Vec<Op>, StoreError> {
    let mut ops = vec![match fate {
        RecordFate::Keep => put_execution(execution)?,
        RecordFate::Delete => Op::DeleteExecution { id: execution.id.clone() },
    }];
    if let Some(follow_up) = follow_up {
        ops.extend(enqueue_ops(follow_up, None, follow_up.created_at)?);
    }
    Ok(ops)
}

/// A finished async execution's [`end_ops`], which replace its job-by-job progress and its queue
/// entry: the follow-up is queued before the queue entry goes (a fenced request's writes hold
/// while the claim does).
fn finish_ops(execution: &Execution, fate: RecordFate, follow_up: Option<&Execution>) -> Result<Vec<Op>, StoreError> {
    let mut ops = end_ops(execution, fate, follow_up)?;
    ops.push(Op::DeleteJobs { id: execution.id.clone() });
    ops.push(Op::Dequeue { id: execution.id.clone() });
    Ok(ops)
}
