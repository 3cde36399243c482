//! Durable state in one redb file: workflows (every version), executions, their jobs, and the
//! async queue. The only module that opens redb tables.
//!
//! Writes go through one writer thread that takes every pending write from a channel, applies
//! them in one transaction and commits once (group commit). What an async caller was promised (the
//! execution behind an acknowledgement) is answered only after an fsyncing commit; the progress of
//! async executions (each job, the end) is fsynced without anyone waiting, so a crash loses at most
//! the job that was running; records of sync executions are written lazily and made
//! durable by the next fsync or the flush at shutdown. Reads run on the caller's thread against a
//! snapshot.

mod record;
mod writer;

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use hookflow_workflow::timestamp::Timestamp;
use hookflow_workflow::{Execution, ExecutionStatus, Job, Reply, Workflow};
pub use record::FORMAT_VERSION;
use record::{ExecutionRecord, JobRecord, ReplyRecord};
use writer::{Op, Writer};

/// Workflow key → current [`WorkflowRecord`] (JSON).
const WORKFLOWS: TableDefinition<&str, &[u8]> = TableDefinition::new("workflows");
/// (workflow key, version) → that version's definition (JSON).
const WORKFLOW_VERSIONS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("workflow_versions");
/// Execution id → [`Execution`] (JSON), with the jobs it had when last written whole.
const EXECUTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("executions");
/// (execution id, job index) → [`Job`] (JSON): jobs of running executions, written as they finish.
const JOBS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("jobs");
/// (workflow, execution id): every execution of a workflow, for listings by workflow.
const BY_WORKFLOW: TableDefinition<(&str, &str), ()> = TableDefinition::new("executions_by_workflow");
/// (status, execution id), for listings by status.
const BY_STATUS: TableDefinition<(&str, &str), ()> = TableDefinition::new("executions_by_status");
/// (workflow, status, execution id), for listings by both.
const BY_WORKFLOW_STATUS: TableDefinition<(&str, &str, &str), ()> =
    TableDefinition::new("executions_by_workflow_status");
/// Execution id → (workflow, status) as indexed, so a status change finds the entries to move.
const INDEXED: TableDefinition<&str, (&str, &str)> = TableDefinition::new("executions_indexed");
/// Bookkeeping: `"execution_index"` → 1 once the indexes cover every stored execution.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Ids of async executions not finished yet, in arrival order (ids are ULIDs).
const QUEUE: TableDefinition<&str, ()> = TableDefinition::new("queue");
/// (workflow key, idempotency key) → [`IdempotencyRecord`] (JSON).
const IDEMPOTENCY: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("idempotency");
/// Execution id → the HTTP answer its sync caller got ([`Reply`], JSON), kept for idempotent
/// repeats and `GET /api/webhook:result/{id}`.
const REPLIES: TableDefinition<&str, &[u8]> = TableDefinition::new("replies");

/// What a remembered idempotency key points at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdempotencyRecord {
    /// The execution the first request with the key started.
    pub execution_id: String,
    /// When the key is forgotten.
    pub expires_at: Timestamp,
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
}

impl ExecutionFilter {
    fn matches(&self, execution: &Execution) -> bool {
        self.workflow.as_ref().is_none_or(|workflow| *workflow == execution.workflow)
            && self.status.is_none_or(|status| status == execution.status)
            && self.since.is_none_or(|since| execution.created_at >= since)
            && self.until.is_none_or(|until| execution.created_at < until)
    }
}

/// The smallest execution id (a ULID) created at `instant`: ids sort by creation time, so a time
/// range is a range of ids.
fn first_id_at(instant: Timestamp) -> String {
    ulid::Ulid::from_parts(instant.0, 0).to_string()
}

/// Sorts after every execution id (ULIDs are Crockford base32, `[0-9A-Z]`).
const PAST_EVERY_ID: &str = "~";

/// Hears when a write has committed.
pub type Committed = tokio::sync::oneshot::Receiver<Result<(), StoreError>>;

/// What a failure below the store was (the database's own error), kept as the source of a
/// [`StoreError`] for the log; no backend's types cross the storage boundary.
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

/// A storage failure. Its text is for the log: clients get a stable code and a message written
/// for them, never this.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database file could not be opened or created.
    #[error("cannot open the database {}: {source}", path.display())]
    Open {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: Cause,
    },
    /// A read transaction failed.
    #[error("cannot read the database: {0}")]
    Read(#[source] Cause),
    /// A write transaction failed; nothing of it was written.
    #[error("cannot write the database: {0}")]
    Write(#[source] Cause),
    /// A stored record does not decode.
    #[error("corrupt record in {table}: {source}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The decoding error.
        #[source]
        source: Cause,
    },
    /// An index names an execution whose record is missing.
    #[error("execution {id} is indexed but has no record")]
    Dangling {
        /// The execution.
        id: String,
    },
    /// A record could not be encoded; nothing was written.
    #[error("cannot encode a record for {table}: {source}")]
    Encode {
        /// The table.
        table: &'static str,
        /// The encoding error.
        #[source]
        source: Cause,
    },
    /// The database was written by a newer hookflow, in a format this one cannot read.
    #[error(
        "the database {} is in format {found}, newer than this hookflow reads ({FORMAT_VERSION}): run the newer version",
        path.display()
    )]
    NewerFormat {
        /// The file.
        path: std::path::PathBuf,
        /// The format it records.
        found: u64,
    },
    /// The writer thread is gone (the store is shutting down).
    #[error("the store is closed")]
    Closed,
    /// A write failed (disk full, I/O error) and the database is being reopened; nothing was
    /// written. It is retried at least every [`RECOVERY_INTERVAL`].
    #[error("the store cannot write since a write failed ({0}); retrying")]
    Unavailable(#[source] Arc<StoreError>),
}

impl StoreError {
    /// Whether the store refuses writes for now and will take them again once it recovers
    /// (a failed write, or shutting down), as opposed to a failure of this one operation.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Closed)
    }
}

/// How often a store whose write failed tries to reopen its database and write again.
pub const RECOVERY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// A failed read, its redb error kept as the source.
fn read_failed(error: impl Into<redb::Error>) -> StoreError {
    StoreError::Read(Arc::new(error.into()))
}

/// A failed write, its redb error kept as the source.
fn write_failed(error: impl Into<redb::Error>) -> StoreError {
    StoreError::Write(Arc::new(error.into()))
}

/// The database handle; cheap to clone.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
    writer: Writer,
}

/// The open database, which the writer replaces when a failed write left it unusable.
struct Shared {
    path: std::path::PathBuf,
    /// `None` while it is being reopened.
    db: std::sync::RwLock<Option<Arc<Database>>>,
    /// Why the last write failed, until a write succeeds again.
    failure: std::sync::Mutex<Option<Arc<StoreError>>>,
    /// Told how long each commit took.
    observer: Option<Arc<dyn CommitObserver>>,
}

/// Hears of every write transaction the store commits.
pub trait CommitObserver: Send + Sync {
    /// One commit (a group of writes) took `elapsed`.
    fn commit(&self, elapsed: std::time::Duration);
}

impl Shared {
    fn db(&self) -> Result<Arc<Database>, StoreError> {
        let db = self.db.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        db.ok_or_else(|| self.unavailable())
    }

    fn failure(&self) -> Option<Arc<StoreError>> {
        self.failure.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    fn set_failure(&self, failure: Option<StoreError>) {
        *self.failure.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = failure.map(Arc::new);
    }

    /// The error a write gets while the store recovers from `failure`.
    fn unavailable(&self) -> StoreError {
        StoreError::Unavailable(self.failure().unwrap_or_else(|| Arc::new(StoreError::Closed)))
    }

    /// Drops the database and opens it again (redb refuses every write after a failed one).
    fn reopen(&self) -> Result<(), StoreError> {
        let mut slot = self.db.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        // The file lock is released once every handle is gone; readers hold theirs briefly.
        *slot = None;
        let db = open_database(&self.path)?;
        *slot = Some(Arc::new(db));
        Ok(())
    }
}

fn open_database(path: &Path) -> Result<Database, StoreError> {
    let db = Database::builder().set_cache_size(CACHE_BYTES).create(path);
    db.map_err(|e| StoreError::Open { path: path.to_path_buf(), source: Arc::new(e) })
}

/// redb's page cache. Its default, 1 GiB, let a server's memory grow with every execution it
/// stored; the hot path reads little (idempotency keys, the queue), so 64 MiB holds it.
const CACHE_BYTES: usize = 64 << 20;

impl Store {
    /// Opens (or creates) the database file and starts its writer thread.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_observed(path, None)
    }

    /// [`Store::open`], telling `observer` how long each commit takes.
    pub fn open_observed(path: &Path, observer: Option<Arc<dyn CommitObserver>>) -> Result<Store, StoreError> {
        let open_error = |error: std::io::Error| StoreError::Open { path: path.to_path_buf(), source: Arc::new(error) };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(open_error)?;
        }
        let db = Arc::new(open_database(path)?);
        // Create every table once, so readers never meet a missing one.
        let txn = db.begin_write().map_err(write_failed)?;
        txn.open_table(WORKFLOWS).map_err(write_failed)?;
        txn.open_table(WORKFLOW_VERSIONS).map_err(write_failed)?;
        txn.open_table(EXECUTIONS).map_err(write_failed)?;
        txn.open_table(JOBS).map_err(write_failed)?;
        txn.open_table(QUEUE).map_err(write_failed)?;
        txn.open_table(IDEMPOTENCY).map_err(write_failed)?;
        txn.open_table(REPLIES).map_err(write_failed)?;
        check_format(&txn, path)?;
        index_existing(&txn)?;
        txn.commit().map_err(write_failed)?;
        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            db: std::sync::RwLock::new(Some(db)),
            failure: std::sync::Mutex::default(),
            observer,
        });
        let writer = Writer::start(shared.clone()).map_err(open_error)?;
        Ok(Store { shared, writer })
    }

    /// Runs a read that may scan many records on a blocking thread, off the async runtime.
    async fn off_thread<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || read(&store)).await.map_err(|_| StoreError::Closed)?
    }

    /// Hands `ops` to the writer without waiting; a record that could not be encoded is logged
    /// with its execution and nothing of it is written.
    fn submit(&self, execution_id: &str, ops: Result<Vec<Op>, StoreError>, durable: bool) {
        match ops {
            Ok(ops) => self.writer.write(ops, durable),
            Err(error) => tracing::error!(execution = execution_id, "not written: {error}"),
        }
    }

    /// Hands `ops` to the writer; the receiver hears once they committed (or why not).
    fn submit_notified(&self, ops: Result<Vec<Op>, StoreError>, durable: bool) -> Committed {
        match ops {
            Ok(ops) => self.writer.write_notified(ops, durable),
            Err(error) => {
                let (done, committed) = tokio::sync::oneshot::channel();
                let _ = done.send(Err(error));
                committed
            }
        }
    }

    /// `Some(why)` while writes fail (the last failure), `None` when the last write succeeded.
    pub fn write_failure(&self) -> Option<StoreError> {
        self.shared.failure().map(StoreError::Unavailable)
    }

    // --- workflows ---

    /// Stores a workflow's current record and its version's definition; durable on return.
    pub async fn put_workflow(&self, record: &WorkflowRecord) -> Result<(), StoreError> {
        let key = record.definition.key.clone().unwrap_or_default();
        let ops = vec![
            Op::PutWorkflow { key: key.clone(), record: encode("workflows", record)? },
            Op::PutWorkflowVersion {
                key,
                version: record.version,
                definition: encode("workflow_versions", &record.definition)?,
            },
        ];
        self.writer.write_and_wait(ops).await
    }

    /// Every stored workflow, by key.
    pub async fn workflows(&self) -> Result<Vec<WorkflowRecord>, StoreError> {
        let txn = self.shared.db()?.begin_read().map_err(read_failed)?;
        let table = txn.open_table(WORKFLOWS).map_err(read_failed)?;
        let mut records = Vec::new();
        for entry in table.iter().map_err(read_failed)? {
            let (_, value) = entry.map_err(read_failed)?;
            records.push(decode("workflows", value.value())?);
        }
        Ok(records)
    }

    /// Forgets a workflow (its versions stay, for executions that ran on them); durable on return.
    pub async fn delete_workflow(&self, key: &str) -> Result<(), StoreError> {
        self.writer.write_and_wait(vec![Op::DeleteWorkflow { key: key.to_string() }]).await
    }

    /// One stored workflow.
    pub async fn workflow(&self, key: &str) -> Result<Option<WorkflowRecord>, StoreError> {
        let txn = self.shared.db()?.begin_read().map_err(read_failed)?;
        let table = txn.open_table(WORKFLOWS).map_err(read_failed)?;
        let value = table.get(key).map_err(read_failed)?;
        value.map(|value| decode("workflows", value.value())).transpose()
    }

    /// One version of a workflow's definition.
    pub async fn workflow_version(&self, key: &str, version: u64) -> Result<Option<Workflow>, StoreError> {
        let txn = self.shared.db()?.begin_read().map_err(read_failed)?;
        let table = txn.open_table(WORKFLOW_VERSIONS).map_err(read_failed)?;
        let value = table.get((key, version)).map_err(read_failed)?;
        value.map(|value| decode("workflow_versions", value.value())).transpose()
    }

    /// Every stored version of a workflow's definition, oldest first (they outlive the workflow's
    /// deletion, for the executions that ran on them).
    pub async fn workflow_versions(&self, key: &str) -> Result<Vec<(u64, Workflow)>, StoreError> {
        let txn = self.shared.db()?.begin_read().map_err(read_failed)?;
        let table = txn.open_table(WORKFLOW_VERSIONS).map_err(read_failed)?;
        let mut versions = Vec::new();
        for entry in table.range((key, 0)..=(key, u64::MAX)).map_err(read_failed)? {
            let (stored, value) = entry.map_err(read_failed)?;
            versions.push((stored.value().1, decode("workflow_versions", value.value())?));
        }
        Ok(versions)
    }

    // --- executions ---

    /// Stores a new async execution (and its idempotency key) and queues it; returns once the
    /// commit is on disk.
    pub async fn enqueue(
        &self,
        execution: &Execution,
        idempotency: Option<IdempotencyEntry<'_>>,
    ) -> Result<(), StoreError> {
        let mut ops = vec![put_execution(execution)?, Op::Enqueue { id: execution.id.clone() }];
        ops.extend(idempotency.map(idempotency_op).transpose()?);
        self.writer.write_and_wait(ops).await
    }

    /// Records that a queued execution started (lazy: recovery needs only the queue and the jobs).
    pub fn mark_started(&self, execution: &Execution) {
        self.submit(&execution.id, put_execution(execution).map(|op| vec![op]), false);
    }

    /// Records a finished job of a running async execution (durable; not waited for).
    pub fn record_job(&self, execution_id: &str, index: usize, job: &Job) {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        let op = encode("jobs", &JobRecord::of(job)).map(|record| Op::PutJob {
            id: execution_id.to_string(),
            index,
            record,
        });
        self.submit(execution_id, op.map(|op| vec![op]), true);
    }

    /// Records a finished async execution with all its jobs (or deletes it, when it is not to be
    /// kept) and takes it off the queue, in one transaction (durable; not waited for): once it is
    /// on disk the execution never runs again.
    pub fn record_finished(&self, execution: &Execution, fate: RecordFate) {
        self.submit(&execution.id, finish_ops(execution, fate), true);
    }

    /// Records an execution canceled while queued and takes it off the queue, unless it has left
    /// the queue by then (a worker finished it first): durable, not waited for.
    pub fn record_canceled(&self, execution: &Execution) {
        let op = encode("executions", &ExecutionRecord::of(execution)).map(|record| Op::CancelQueued {
            id: execution.id.clone(),
            workflow: execution.workflow.clone(),
            record,
        });
        self.submit(&execution.id, op.map(|op| vec![op]), true);
    }

    /// Records a running sync execution, so it can be polled (lazy).
    pub fn record_sync_start(&self, execution: &Execution) {
        self.submit(&execution.id, put_execution(execution).map(|op| vec![op]), false);
    }

    /// Takes an execution off the queue without touching its record (durable; not waited for).
    pub fn dequeue(&self, id: &str) {
        self.writer.write(vec![Op::Dequeue { id: id.to_string() }], true);
    }

    /// Records a finished sync execution (or deletes it, when it is not to be kept), with the
    /// answer its caller got when that is to be kept and its idempotency key. Lazy (durable at
    /// the next fsync or [`Store::flush`]) without a key; with one, the receiver hears once the
    /// key and its answer are on disk, so the caller is answered only after that.
    pub fn record_sync_execution(&self, finish: SyncFinish<'_>) -> Committed {
        let SyncFinish { execution, fate, reply, idempotency } = finish;
        let ops = (|| {
            let mut ops = finish_ops(execution, fate)?;
            ops.extend(reply.map(|reply| reply_op(&execution.id, reply)).transpose()?);
            ops.extend(idempotency.map(idempotency_op).transpose()?);
            Ok(ops)
        })();
        self.submit_notified(ops, idempotency.is_some())
    }

    /// Keeps the answer a sync caller is about to get, under its idempotency key; the receiver
    /// hears once both are on disk.
    pub fn record_reply(&self, execution_id: &str, reply: &Reply, idempotency: IdempotencyEntry<'_>) -> Committed {
        let ops = reply_op(execution_id, reply).and_then(|reply| Ok(vec![reply, idempotency_op(idempotency)?]));
        self.submit_notified(ops, true)
    }

    /// What a remembered idempotency key points at, unless it has expired by `now`.
    pub async fn idempotency(
        &self,
        key: IdempotencyKey<'_>,
        now: Timestamp,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let txn = self.shared.db()?.begin_read().map_err(read_failed)?;
        let table = txn.open_table(IDEMPOTENCY).map_err(read_failed)?;
        let Some(value) = table.get((key.workflow, key.key)).map_err(read_failed)? else {
            return Ok(None);
        };
        let record: IdempotencyRecord = decode("idempotency", value.value())?;
        Ok((record.expires_at > now).then_some(record))
    }

    /// The answer a sync execution's caller got, when it was kept.
    pub async fn reply(&self, execution_id: &str) -> Result<Option<Reply>, StoreError> {
        let txn = self.shared.db()?.begin_read().map_err(read_failed)?;
        let table = txn.open_table(REPLIES).map_err(read_failed)?;
        let value = table.get(execution_id).map_err(read_failed)?;
        value.map(|value| decode("replies", value.value()).map(ReplyRecord::into_reply)).transpose()
    }

    /// Waits until every write issued before the call is durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.writer.write_and_wait(Vec::new()).await
    }

    /// One execution with its jobs.
    pub async fn execution(&self, id: &str) -> Result<Option<Execution>, StoreError> {
        let txn = self.shared.db()?.begin_read().map_err(read_failed)?;
        let executions = txn.open_table(EXECUTIONS).map_err(read_failed)?;
        let Some(value) = executions.get(id).map_err(read_failed)? else {
            return Ok(None);
        };
        let mut execution = match decode("executions", value.value()) {
            Ok(record) => ExecutionRecord::into_execution(record),
            Err(error) => return Ok(Some(Execution::unreadable(id, error.to_string()))),
        };
        // Jobs recorded one by one while it runs are newer than the whole record (which may hold
        // a delay job as `pending` that has since resolved): each replaces the one at its index.
        let jobs = txn.open_table(JOBS).map_err(read_failed)?;
        for entry in jobs.range((id, 0)..=(id, u32::MAX)).map_err(read_failed)? {
            let (key, value) = entry.map_err(read_failed)?;
            let index = usize::try_from(key.value().1).unwrap_or(usize::MAX);
            let job = match decode("jobs", value.value()) {
                Ok(record) => JobRecord::into_job(record),
                Err(error) => return Ok(Some(Execution::unreadable(id, format!("job {index}: {error}")))),
            };
            match execution.jobs.get_mut(index) {
                Some(slot) => *slot = job,
                None => execution.jobs.push(job),
            }
        }
        Ok(Some(execution))
    }

    /// Executions newest first, without their job-by-job progress: those older than `before`
    /// (an execution id) that match the filter, at most `limit`.
    pub async fn executions(
        &self,
        filter: &ExecutionFilter,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Execution>, StoreError> {
        let (filter, before) = (filter.clone(), before.map(str::to_string));
        self.off_thread(move |store| store.read_executions(&filter, before.as_deref(), limit)).await
    }

    fn read_executions(
        &self,
        filter: &ExecutionFilter,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Execution>, StoreError> {
        let txn = self.shared.db()?.begin_read().map_err(read_failed)?;
        let table = txn.open_table(EXECUTIONS).map_err(read_failed)?;
        // Ids sort by creation time: the time range and the cursor narrow the range of ids read.
        let lowest = filter.since.map(first_id_at).unwrap_or_default();
        let until = filter.until.map(first_id_at);
        let highest = match (before, until.as_deref()) {
            (Some(before), Some(until)) => Some(before.min(until)),
            (bound, None) | (None, bound) => bound,
        };
        if highest.is_some_and(|highest| highest <= lowest.as_str()) {
            return Ok(Vec::new());
        }
        let (low, high) = (lowest.as_str(), highest.unwrap_or(PAST_EVERY_ID));
        let mut found = Vec::new();
        let mut take = |id: &str, value: Option<&[u8]>| {
            // One record that does not decode never hides the others.
            let execution = value.map_or_else(
                || Err(StoreError::Dangling { id: id.to_string() }),
                |value| decode("executions", value).map(ExecutionRecord::into_execution),
            );
            let execution = execution.unwrap_or_else(|error| Execution::unreadable(id, error.to_string()));
            if filter.matches(&execution) {
                found.push(execution);
            }
            found.len() < limit
        };
        // A filter by workflow or status reads its index: the listing costs what it returns.
        let status = filter.status.filter(|status| *status != ExecutionStatus::Unreadable).map(ExecutionStatus::as_str);
        match (filter.workflow.as_deref(), status) {
            (Some(workflow), Some(status)) => {
                let index = txn.open_table(BY_WORKFLOW_STATUS).map_err(read_failed)?;
                for entry in index.range((workflow, status, low)..(workflow, status, high)).map_err(read_failed)?.rev()
                {
                    let id = entry.map_err(read_failed)?.0.value().2.to_string();
                    if !take(&id, table.get(id.as_str()).map_err(read_failed)?.as_ref().map(|v| v.value())) {
                        break;
                    }
                }
            }
            (Some(key), None) | (None, Some(key)) => {
                let index = txn
                    .open_table(if filter.workflow.is_some() { BY_WORKFLOW } else { BY_STATUS })
                    .map_err(read_failed)?;
                for entry in index.range((key, low)..(key, high)).map_err(read_failed)?.rev() {
                    let id = entry.map_err(read_failed)?.0.value().1.to_string();
                    if !take(&id, table.get(id.as_str()).map_err(read_failed)?.as_ref().map(|v| v.value())) {
                        break;
                    }
                }
            }
            (None, None) => {
                for entry in table.range(low..high).map_err(read_failed)?.rev() {
                    let (id, value) = entry.map_err(read_failed)?;
                    if !take(id.value(), Some(value.value())) {
                        break;
                    }
                }
            }
        }
        Ok(found)
    }

    /// The newest execution of a workflow, as `(id, status)`, from the index.
    pub async fn last_execution(&self, workflow: &str) -> Result<Option<(String, String)>, StoreError> {
        let txn = self.shared.db()?.begin_read().map_err(read_failed)?;
        let by_workflow = txn.open_table(BY_WORKFLOW).map_err(read_failed)?;
        let Some(entry) =
            by_workflow.range((workflow, "")..(workflow, PAST_EVERY_ID)).map_err(read_failed)?.next_back()
        else {
            return Ok(None);
        };
        let id = entry.map_err(read_failed)?.0.value().1.to_string();
        let indexed = txn.open_table(INDEXED).map_err(read_failed)?;
        let status = indexed.get(id.as_str()).map_err(read_failed)?.map(|guard| guard.value().1.to_string());
        Ok(Some((id, status.unwrap_or_else(|| "unreadable".into()))))
    }

    /// Ids of executions created before `cutoff` that are not on the async queue — finished,
    /// or sync records whose run a crash cut short — oldest first, after the id `after`, at most
    /// `limit` (for retention).
    pub async fn settled_before(
        &self,
        cutoff: Timestamp,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let after = after.map(str::to_string);
        self.off_thread(move |store| store.read_settled_before(cutoff, after.as_deref(), limit)).await
    }

    fn read_settled_before(
        &self,
        cutoff: Timestamp,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let txn = self.shared.db()?.begin_read().map_err(read_failed)?;
        let executions = txn.open_table(EXECUTIONS).map_err(read_failed)?;
        let queue = txn.open_table(QUEUE).map_err(read_failed)?;
        let end = first_id_at(cutoff);
        let range = match after {
            Some(after) => executions.range::<&str>((Bound::Excluded(after), Bound::Excluded(end.as_str()))),
            None => executions.range(..end.as_str()),
        };
        let mut ids = Vec::new();
        for entry in range.map_err(read_failed)? {
            let (id, _) = entry.map_err(read_failed)?;
            if queue.get(id.value()).map_err(read_failed)?.is_none() {
                ids.push(id.value().to_string());
                if ids.len() == limit {
                    break;
                }
            }
        }
        Ok(ids)
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
        self.writer.write_notified(ops, false)
    }

    /// Idempotency keys that expired before `now`, as `(workflow, key)`, in key order after
    /// `after`, at most `limit`.
    pub async fn expired_idempotency_keys(
        &self,
        now: Timestamp,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let after = after.map(|(workflow, key)| (workflow.to_string(), key.to_string()));
        self.off_thread(move |store| {
            let after = after.as_ref().map(|(workflow, key)| (workflow.as_str(), key.as_str()));
            store.read_expired_idempotency_keys(now, after, limit)
        })
        .await
    }

    fn read_expired_idempotency_keys(
        &self,
        now: Timestamp,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let txn = self.shared.db()?.begin_read().map_err(read_failed)?;
        let table = txn.open_table(IDEMPOTENCY).map_err(read_failed)?;
        let range = match after {
            Some(after) => table.range::<(&str, &str)>((Bound::Excluded(after), Bound::Unbounded)),
            None => table.range::<(&str, &str)>(..),
        };
        let mut expired = Vec::new();
        for entry in range.map_err(read_failed)? {
            let (key, value) = entry.map_err(read_failed)?;
            let record: IdempotencyRecord = decode("idempotency", value.value())?;
            if record.expires_at <= now {
                let (workflow, key) = key.value();
                expired.push((workflow.to_string(), key.to_string()));
                if expired.len() == limit {
                    break;
                }
            }
        }
        Ok(expired)
    }

    /// Forgets idempotency keys (lazy); the receiver hears when that is visible.
    pub fn delete_idempotency_keys(&self, keys: &[(String, String)]) -> Committed {
        let ops = keys
            .iter()
            .map(|(workflow, key)| Op::DeleteIdempotency { workflow: workflow.clone(), key: key.clone() })
            .collect();
        self.writer.write_notified(ops, false)
    }

    /// Whether an async execution is still on the queue (not finished).
    pub async fn is_queued(&self, id: &str) -> Result<bool, StoreError> {
        let txn = self.shared.db()?.begin_read().map_err(read_failed)?;
        let table = txn.open_table(QUEUE).map_err(read_failed)?;
        Ok(table.get(id).map_err(read_failed)?.is_some())
    }

    /// Every queued or unfinished async execution, oldest first, with its workflow's key (read
    /// from the index, not the record; empty for an unreadable record).
    pub async fn queued(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.off_thread(|store| store.read_queued()).await
    }

    fn read_queued(&self) -> Result<Vec<(String, String)>, StoreError> {
        let txn = self.shared.db()?.begin_read().map_err(read_failed)?;
        let table = txn.open_table(QUEUE).map_err(read_failed)?;
        let indexed = txn.open_table(INDEXED).map_err(read_failed)?;
        let mut queued = Vec::new();
        for entry in table.iter().map_err(read_failed)? {
            let (id, _) = entry.map_err(read_failed)?;
            let id = id.value().to_string();
            let workflow = indexed.get(id.as_str()).map_err(read_failed)?.map(|entry| entry.value().0.to_string());
            queued.push((id, workflow.unwrap_or_default()));
        }
        Ok(queued)
    }
}

/// Writes an execution's record and its index entries.
fn put_execution(execution: &Execution) -> Result<Op, StoreError> {
    Ok(Op::PutExecution {
        id: execution.id.clone(),
        workflow: execution.workflow.clone(),
        status: execution.status.as_str(),
        record: encode("executions", &ExecutionRecord::of(execution))?,
    })
}

/// Keeps the answer a sync execution's caller got.
fn reply_op(execution_id: &str, reply: &Reply) -> Result<Op, StoreError> {
    Ok(Op::PutReply { id: execution_id.to_string(), record: encode("replies", &ReplyRecord::of(reply))? })
}

/// Records [`FORMAT_VERSION`] in a new database (or one written before formats were numbered,
/// which is format 1); refuses one of a newer format.
fn check_format(txn: &redb::WriteTransaction, path: &Path) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META).map_err(write_failed)?;
    let found = meta.get(FORMAT_KEY).map_err(write_failed)?.map(|value| value.value());
    match found {
        Some(found) if found > FORMAT_VERSION => Err(StoreError::NewerFormat { path: path.to_path_buf(), found }),
        Some(found) if found == FORMAT_VERSION => Ok(()),
        // Older formats would be migrated here; format 1 is the first.
        _ => meta.insert(FORMAT_KEY, FORMAT_VERSION).map(drop).map_err(write_failed),
    }
}

/// The `meta` entry holding the database's format.
const FORMAT_KEY: &str = "format_version";

/// Indexes every stored execution once (a database written before the indexes existed).
fn index_existing(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META).map_err(write_failed)?;
    let mut index = writer::Index::open(txn)?;
    if meta.get("execution_index").map_err(write_failed)?.is_some() {
        return Ok(());
    }
    let executions = txn.open_table(EXECUTIONS).map_err(write_failed)?;
    let mut count = 0usize;
    for entry in executions.iter().map_err(write_failed)? {
        let (id, value) = entry.map_err(write_failed)?;
        // An undecodable record is indexed under no workflow as `unreadable`.
        let (workflow, status) = match decode::<ExecutionRecord>("executions", value.value()) {
            Ok(record) => {
                let (workflow, status) = record.index_entry();
                (workflow.to_string(), status.as_str())
            }
            Err(_) => (String::new(), "unreadable"),
        };
        index.put(id.value(), &workflow, status)?;
        count += 1;
    }
    meta.insert("execution_index", 1).map_err(write_failed)?;
    if count > 0 {
        tracing::info!("indexed {count} stored executions by workflow and status");
    }
    Ok(())
}

fn idempotency_op(entry: IdempotencyEntry<'_>) -> Result<Op, StoreError> {
    Ok(Op::PutIdempotency {
        workflow: entry.key.workflow.to_string(),
        key: entry.key.key.to_string(),
        record: encode("idempotency", entry.record)?,
    })
}

/// The whole record of a finished execution (or, when it is not to be kept, its deletion)
/// replaces its job-by-job progress and its queue entry.
fn finish_ops(execution: &Execution, fate: RecordFate) -> Result<Vec<Op>, StoreError> {
    let id = execution.id.clone();
    let record = match fate {
        RecordFate::Keep => put_execution(execution)?,
        RecordFate::Delete => Op::DeleteExecution { id: id.clone() },
    };
    Ok(vec![record, Op::DeleteJobs { id: id.clone() }, Op::Dequeue { id }])
}

/// A record's bytes for `table`.
fn encode(table: &'static str, value: &impl Serialize) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|error| StoreError::Encode { table, source: Arc::new(error) })
}

/// Decodes a record whatever its nesting: serde_json's recursion limit is lifted and the stack
/// grows on the heap as needed, so everything [`encode`] wrote reads back.
fn decode<T: for<'de> Deserialize<'de>>(table: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    let corrupt = |e: serde_json::Error| StoreError::Corrupt { table, source: Arc::new(e) };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    deserializer.disable_recursion_limit();
    let value = T::deserialize(serde_stacker::Deserializer::new(&mut deserializer)).map_err(corrupt)?;
    deserializer.end().map_err(corrupt)?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Ids of the executions the tests make.
    static IDS: std::sync::LazyLock<hookflow_workflow::ExecutionIds> = std::sync::LazyLock::new(Default::default);

    fn fresh_store(name: &str) -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("hookflow-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (Store::open(&dir.join("hookflow.redb")).unwrap(), dir)
    }

    #[tokio::test]
    async fn a_cancel_applies_only_while_the_execution_is_queued() {
        let (store, _dir) = fresh_store("cancel-queued");
        let mut queued = Execution::new(IDS.next(Timestamp::now()), "w", 1, serde_json::json!({}));
        store.enqueue(&queued, None).await.unwrap();
        queued.status = ExecutionStatus::Canceled;
        store.record_canceled(&queued);
        store.flush().await.unwrap();
        assert_eq!(store.execution(&queued.id).await.unwrap().map(|e| e.status), Some(ExecutionStatus::Canceled));
        assert!(!store.is_queued(&queued.id).await.unwrap());

        // A worker finished it before the cancel's write: the finished record stays.
        let mut finished = Execution::new(IDS.next(Timestamp::now()), "w", 1, serde_json::json!({}));
        store.enqueue(&finished, None).await.unwrap();
        finished.status = ExecutionStatus::Resolved;
        store.record_finished(&finished, RecordFate::Keep);
        let mut late = finished.clone();
        late.status = ExecutionStatus::Canceled;
        store.record_canceled(&late);
        store.flush().await.unwrap();
        assert_eq!(store.execution(&finished.id).await.unwrap().map(|e| e.status), Some(ExecutionStatus::Resolved));
        let filter = ExecutionFilter { status: Some(ExecutionStatus::Canceled), ..ExecutionFilter::default() };
        let canceled: Vec<String> =
            store.executions(&filter, None, 10).await.unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(canceled, [queued.id], "the index agrees");
    }

    #[tokio::test]
    async fn a_record_that_does_not_decode_is_listed_unreadable_and_can_be_deleted() {
        let (store, dir) = fresh_store("unreadable");
        let good = Execution::new(IDS.next(Timestamp::now()), "w", 1, serde_json::json!({"body": 1}));
        store.enqueue(&good, None).await.unwrap();
        let broken = ulid::Ulid::new().to_string();
        let ops = vec![
            Op::PutExecution {
                id: broken.clone(),
                workflow: "w".into(),
                status: "resolved",
                record: b"{\"id\": [not json".to_vec(),
            },
            Op::Enqueue { id: broken.clone() },
        ];
        store.writer.write_and_wait(ops).await.unwrap();

        let listed = store.executions(&ExecutionFilter::default(), None, 10).await.unwrap();
        let statuses: Vec<_> = listed.iter().map(|e| (e.id.as_str(), e.status)).collect();
        assert_eq!(
            statuses,
            [(broken.as_str(), ExecutionStatus::Unreadable), (good.id.as_str(), ExecutionStatus::Queued)]
        );
        let shown = store.execution(&broken).await.unwrap().unwrap();
        assert_eq!(shown.status, ExecutionStatus::Unreadable);
        assert!(shown.error.unwrap().contains("corrupt record in executions"));
        let only = ExecutionFilter { status: Some(ExecutionStatus::Unreadable), ..ExecutionFilter::default() };
        assert_eq!(store.executions(&only, None, 10).await.unwrap().len(), 1);

        store.delete_executions(std::slice::from_ref(&broken)).await.unwrap().unwrap();
        assert_eq!(store.execution(&broken).await.unwrap(), None);
        assert_eq!(store.queued().await.unwrap(), vec![(good.id, good.workflow)], "its queue entry went with it");
        drop(store);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn filtered_listings_follow_status_changes_through_the_indexes() {
        let (store, dir) = fresh_store("index");
        let mut made = Vec::new();
        for n in 0..30 {
            let mut execution = Execution::new(
                IDS.next(Timestamp::now()),
                if n % 3 == 0 { "rare" } else { "common" },
                1,
                serde_json::json!(n),
            );
            store.enqueue(&execution, None).await.unwrap();
            if n % 2 == 0 {
                execution.status = ExecutionStatus::Started;
                store.mark_started(&execution);
                execution.status = ExecutionStatus::Resolved;
                store.record_finished(&execution, RecordFate::Keep);
            }
            made.push(execution);
            // Distinct milliseconds keep the ids in creation order.
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        store.flush().await.unwrap();
        let list =
            async |workflow: Option<&str>, status: Option<ExecutionStatus>, before: Option<&str>, limit: usize| {
                let filter =
                    ExecutionFilter { workflow: workflow.map(str::to_string), status, ..ExecutionFilter::default() };
                store.executions(&filter, before, limit).await.unwrap().into_iter().map(|e| e.id).collect::<Vec<_>>()
            };
        let expected = |workflow: Option<&str>, status: Option<ExecutionStatus>| {
            let mut ids: Vec<String> = made
                .iter()
                .filter(|e| workflow.is_none_or(|w| e.workflow == w) && status.is_none_or(|s| e.status == s))
                .map(|e| e.id.clone())
                .collect();
            ids.reverse();
            ids
        };
        for workflow in [None, Some("rare"), Some("common")] {
            for status in
                [None, Some(ExecutionStatus::Queued), Some(ExecutionStatus::Resolved), Some(ExecutionStatus::Started)]
            {
                assert_eq!(
                    list(workflow, status, None, 100).await,
                    expected(workflow, status),
                    "{workflow:?} {status:?}"
                );
            }
        }
        let page = list(Some("rare"), None, None, 3).await;
        assert_eq!(page, expected(Some("rare"), None)[..3]);
        let next = list(Some("rare"), None, Some(&page[2]), 100).await;
        assert_eq!(next, expected(Some("rare"), None)[3..]);
        let newest = made.iter().rev().find(|e| e.workflow == "rare").unwrap();
        let last = store.last_execution("rare").await.unwrap().unwrap();
        assert_eq!(last, (newest.id.clone(), newest.status.as_str().to_string()));
        assert_eq!(store.last_execution("none").await.unwrap(), None);
        store.delete_executions(std::slice::from_ref(&newest.id)).await.unwrap().unwrap();
        assert!(!list(Some("rare"), None, None, 100).await.contains(&newest.id));
        drop(store);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn records_deeper_than_serde_json_reads_by_default_read_back() {
        let (store, dir) = fresh_store("deep");
        let mut deep = serde_json::Value::Null;
        for _ in 0..300 {
            deep = serde_json::Value::Array(vec![deep]);
        }
        let execution = Execution::new(IDS.next(Timestamp::now()), "w", 1, deep.clone());
        store.enqueue(&execution, None).await.unwrap();
        assert_eq!(store.execution(&execution.id).await.unwrap().unwrap().trigger, deep);
        drop(store);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
