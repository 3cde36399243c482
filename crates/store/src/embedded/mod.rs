//! The embedded backend: one redb file, one process. Writes go through one writer thread
//! ([`writer`]); reads run on the caller's thread against a snapshot (point reads) or on a
//! blocking thread (scans); who holds which queued execution is kept in memory ([`queue`]).

mod queue;
mod writer;

use std::collections::HashMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::broadcast;

use hookflow_workflow::timestamp::Timestamp;
use hookflow_workflow::{Execution, ExecutionStatus, Workflow};
use queue::LocalQueue;
use writer::Writer;

use crate::op::Request;
use crate::record::{ExecutionRecord, FORMAT_VERSION, decode, execution_of, merge_jobs};
use crate::{
    Claimed, ClusterNode, CommitObserver, ExecutionFilter, IdempotencyKey, IdempotencyRecord, Owner, PAST_EVERY_ID,
    Refusal, RefusalFilter, StoreError, StoreEvent, StoredPlugin, WorkflowQueue, WorkflowRecord, first_id_at,
};

/// Workflow key → current [`WorkflowRecord`] (JSON).
const WORKFLOWS: TableDefinition<&str, &[u8]> = TableDefinition::new("workflows");
/// (workflow key, version) → that version's definition (JSON).
const WORKFLOW_VERSIONS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("workflow_versions");
/// Node type name → (digest, the component's bytes) of an uploaded component.
const PLUGINS: TableDefinition<&str, (&str, &[u8])> = TableDefinition::new("plugins");
/// Execution id → [`Execution`] (JSON), with the jobs it had when last written whole.
const EXECUTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("executions");
/// (execution id, job index) → [`hookflow_workflow::Job`] (JSON): jobs of running executions,
/// written as they finish.
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
/// Bookkeeping: the format, and `"execution_index"` → 1 once the indexes cover every stored
/// execution.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Ids of async executions not finished yet, in arrival order (ids are ULIDs).
const QUEUE: TableDefinition<&str, ()> = TableDefinition::new("queue");
/// (workflow key, idempotency key) → [`IdempotencyRecord`] (JSON).
const IDEMPOTENCY: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("idempotency");
/// Execution id → the HTTP answer its sync caller got (JSON), kept for idempotent repeats and
/// `GET /api/webhook:result/{id}`.
const REPLIES: TableDefinition<&str, &[u8]> = TableDefinition::new("replies");

/// Refusal id → [`crate::Refusal`] (JSON): the refusal log.
const REFUSALS: TableDefinition<&str, &[u8]> = TableDefinition::new("refusals");
/// (workflow, refusal id): each workflow's refusals, oldest first.
const REFUSALS_BY_WORKFLOW: TableDefinition<(&str, &str), ()> = TableDefinition::new("refusals_by_workflow");
/// Workflow → how many refusals it has logged (kept at most `--keep-refusals`).
const REFUSAL_COUNTS: TableDefinition<&str, u64> = TableDefinition::new("refusal_counts");

/// (workflow, minute, writer) → [`crate::Activity`] (JSON): one process's count of a minute.
const ACTIVITY: TableDefinition<(&str, u64, &str), &[u8]> = TableDefinition::new("activity");
/// (minute, workflow, writer): the activity by minute, for forgetting old minutes.
const ACTIVITY_BY_MINUTE: TableDefinition<(u64, &str, &str), ()> = TableDefinition::new("activity_by_minute");

/// The one owner of an embedded store's claims: the process.
const PROCESS: Owner = Owner(1);

/// redb's page cache. Its default, 1 GiB, let a server's memory grow with every execution it
/// stored; the hot path reads little (idempotency keys), so 64 MiB holds it.
const CACHE_BYTES: usize = 64 << 20;

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
pub(crate) struct Embedded {
    shared: Arc<Shared>,
    writer: Writer,
}

/// What the handles and the writer share.
pub(crate) struct Shared {
    path: PathBuf,
    /// The open database, which the writer replaces when a failed write left it unusable;
    /// `None` while it is being reopened.
    db: RwLock<Option<Arc<Database>>>,
    /// Why the last write failed, until a write succeeds again.
    failure: Mutex<Option<Arc<StoreError>>>,
    /// Told how long each commit took.
    observer: Option<Arc<dyn CommitObserver>>,
    /// Who holds which queued execution.
    queue: Mutex<LocalQueue>,
    /// Queue and cancel events, for the process's own dispatcher.
    events: broadcast::Sender<StoreEvent>,
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

    fn queue(&self) -> std::sync::MutexGuard<'_, LocalQueue> {
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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

/// How long an open waits for another holder's lock on the file to go. A process killed a
/// moment ago may still hold it: the kernel can release a dead process's file locks after its
/// parent has seen it exit.
const LOCK_WAIT: Duration = Duration::from_secs(3);

fn open_database(path: &Path) -> Result<Database, StoreError> {
    let give_up = Instant::now() + LOCK_WAIT;
    loop {
        match Database::builder().set_cache_size(CACHE_BYTES).create(path) {
            Err(redb::DatabaseError::DatabaseAlreadyOpen) if Instant::now() < give_up => {
                std::thread::sleep(Duration::from_millis(50));
            }
            db => {
                return db.map_err(|e| StoreError::Open { location: path.display().to_string(), source: Arc::new(e) });
            }
        }
    }
}

impl Embedded {
    /// Opens (or creates) the database file, rebuilds the queue's claims (none: every
    /// unfinished execution is free) and starts the writer thread.
    pub(crate) fn open(path: &Path, observer: Option<Arc<dyn CommitObserver>>) -> Result<Embedded, StoreError> {
        let open_error =
            |error: std::io::Error| StoreError::Open { location: path.display().to_string(), source: Arc::new(error) };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(open_error)?;
        }
        let db = Arc::new(open_database(path)?);
        // Create every table once, so readers never meet a missing one.
        let txn = db.begin_write().map_err(write_failed)?;
        txn.open_table(WORKFLOWS).map_err(write_failed)?;
        txn.open_table(WORKFLOW_VERSIONS).map_err(write_failed)?;
        txn.open_table(PLUGINS).map_err(write_failed)?;
        txn.open_table(EXECUTIONS).map_err(write_failed)?;
        txn.open_table(JOBS).map_err(write_failed)?;
        txn.open_table(QUEUE).map_err(write_failed)?;
        txn.open_table(IDEMPOTENCY).map_err(write_failed)?;
        txn.open_table(REPLIES).map_err(write_failed)?;
        txn.open_table(REFUSALS).map_err(write_failed)?;
        txn.open_table(REFUSALS_BY_WORKFLOW).map_err(write_failed)?;
        txn.open_table(REFUSAL_COUNTS).map_err(write_failed)?;
        txn.open_table(ACTIVITY).map_err(write_failed)?;
        txn.open_table(ACTIVITY_BY_MINUTE).map_err(write_failed)?;
        check_format(&txn, path)?;
        index_existing(&txn)?;
        txn.commit().map_err(write_failed)?;
        let mut queue = LocalQueue::default();
        for (id, workflow) in read_queue(&db)? {
            queue.restore(&id, &workflow);
        }
        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            db: RwLock::new(Some(db)),
            failure: Mutex::default(),
            observer,
            queue: Mutex::new(queue),
            events: broadcast::channel(EVENTS).0,
        });
        let writer = Writer::start(shared.clone()).map_err(open_error)?;
        Ok(Embedded { shared, writer })
    }

    pub(crate) fn location(&self) -> String {
        self.shared.path.display().to_string()
    }

    pub(crate) fn submit(&self, request: Request) {
        self.writer.submit(request);
    }

    pub(crate) fn write_failure(&self) -> Option<StoreError> {
        self.shared.failure().map(StoreError::Unavailable)
    }

    pub(crate) fn events(&self) -> broadcast::Receiver<StoreEvent> {
        self.shared.events.subscribe()
    }

    pub(crate) fn owner(&self) -> Owner {
        PROCESS
    }

    pub(crate) async fn nodes(&self) -> Result<Vec<ClusterNode>, StoreError> {
        let executions = self.shared.queue().held() as u64;
        let now = Timestamp::now();
        Ok(vec![ClusterNode { id: PROCESS.0, address: String::new(), started_at: now, renewed_at: now, executions }])
    }

    /// Runs a read that may scan many records on a blocking thread, off the async runtime.
    async fn off_thread<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Embedded) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || read(&store)).await.map_err(|_| StoreError::Closed)?
    }

    fn begin_read(&self) -> Result<redb::ReadTransaction, StoreError> {
        self.shared.db()?.begin_read().map_err(read_failed)
    }

    // --- workflows and components ---

    pub(crate) async fn workflows(&self) -> Result<Vec<WorkflowRecord>, StoreError> {
        let txn = self.begin_read()?;
        let table = txn.open_table(WORKFLOWS).map_err(read_failed)?;
        let mut records = Vec::new();
        for entry in table.iter().map_err(read_failed)? {
            let (_, value) = entry.map_err(read_failed)?;
            records.push(decode("workflows", value.value())?);
        }
        Ok(records)
    }

    pub(crate) async fn workflow(&self, key: &str) -> Result<Option<WorkflowRecord>, StoreError> {
        let txn = self.begin_read()?;
        let table = txn.open_table(WORKFLOWS).map_err(read_failed)?;
        let value = table.get(key).map_err(read_failed)?;
        value.map(|value| decode("workflows", value.value())).transpose()
    }

    pub(crate) async fn workflow_version(&self, key: &str, version: u64) -> Result<Option<Workflow>, StoreError> {
        let txn = self.begin_read()?;
        let table = txn.open_table(WORKFLOW_VERSIONS).map_err(read_failed)?;
        let value = table.get((key, version)).map_err(read_failed)?;
        value.map(|value| decode("workflow_versions", value.value())).transpose()
    }

    pub(crate) async fn workflow_versions(&self, key: &str) -> Result<Vec<(u64, Workflow)>, StoreError> {
        let txn = self.begin_read()?;
        let table = txn.open_table(WORKFLOW_VERSIONS).map_err(read_failed)?;
        let mut versions = Vec::new();
        for entry in table.range((key, 0)..=(key, u64::MAX)).map_err(read_failed)? {
            let (stored, value) = entry.map_err(read_failed)?;
            versions.push((stored.value().1, decode("workflow_versions", value.value())?));
        }
        Ok(versions)
    }

    pub(crate) async fn plugins(&self) -> Result<Vec<StoredPlugin>, StoreError> {
        let txn = self.begin_read()?;
        let table = txn.open_table(PLUGINS).map_err(read_failed)?;
        let mut plugins = Vec::new();
        for entry in table.iter().map_err(read_failed)? {
            let (name, value) = entry.map_err(read_failed)?;
            plugins.push(StoredPlugin { name: name.value().to_string(), digest: value.value().0.to_string() });
        }
        Ok(plugins)
    }

    pub(crate) async fn plugin(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.begin_read()?;
        let table = txn.open_table(PLUGINS).map_err(read_failed)?;
        Ok(table.get(name).map_err(read_failed)?.map(|value| value.value().1.to_vec()))
    }

    // --- the queue ---

    pub(crate) async fn claim(
        &self,
        owner: Owner,
        limit: usize,
        now: Timestamp,
        max_running: &HashMap<String, u32>,
    ) -> Result<Vec<Claimed>, StoreError> {
        Ok(self.shared.queue().claim(owner, limit, now.0, max_running))
    }

    pub(crate) async fn next_due(&self, now: Timestamp) -> Result<Option<Timestamp>, StoreError> {
        Ok(self.shared.queue().next_due(now.0).map(Timestamp))
    }

    pub(crate) async fn is_queued(&self, id: &str) -> Result<bool, StoreError> {
        let txn = self.begin_read()?;
        let table = txn.open_table(QUEUE).map_err(read_failed)?;
        Ok(table.get(id).map_err(read_failed)?.is_some())
    }

    pub(crate) async fn queue_counts(&self) -> Result<HashMap<String, WorkflowQueue>, StoreError> {
        Ok(self.shared.queue().counts())
    }

    pub(crate) async fn queue_depth(&self) -> Result<u64, StoreError> {
        Ok(self.shared.queue().len() as u64)
    }

    // --- idempotency keys and answers ---

    pub(crate) async fn idempotency(&self, key: IdempotencyKey<'_>) -> Result<Option<IdempotencyRecord>, StoreError> {
        let txn = self.begin_read()?;
        let table = txn.open_table(IDEMPOTENCY).map_err(read_failed)?;
        let value = table.get((key.workflow, key.key)).map_err(read_failed)?;
        value.map(|value| decode("idempotency", value.value())).transpose()
    }

    pub(crate) async fn reply(&self, execution_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.begin_read()?;
        let table = txn.open_table(REPLIES).map_err(read_failed)?;
        Ok(table.get(execution_id).map_err(read_failed)?.map(|value| value.value().to_vec()))
    }

    // --- executions ---

    pub(crate) async fn execution(&self, id: &str) -> Result<Option<Execution>, StoreError> {
        let txn = self.begin_read()?;
        let executions = txn.open_table(EXECUTIONS).map_err(read_failed)?;
        let Some(value) = executions.get(id).map_err(read_failed)? else {
            return Ok(None);
        };
        let execution = execution_of(id, value.value());
        if execution.status == ExecutionStatus::Unreadable {
            return Ok(Some(execution));
        }
        let table = txn.open_table(JOBS).map_err(read_failed)?;
        let mut jobs = Vec::new();
        for entry in table.range((id, 0)..=(id, u32::MAX)).map_err(read_failed)? {
            let (key, value) = entry.map_err(read_failed)?;
            jobs.push((key.value().1, value.value().to_vec()));
        }
        Ok(Some(merge_jobs(execution, jobs)))
    }

    pub(crate) async fn executions(
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
        let Some((low, high)) = filter.id_range(before) else { return Ok(Vec::new()) };
        let (low, high) = (low.as_str(), high.as_str());
        let txn = self.begin_read()?;
        let table = txn.open_table(EXECUTIONS).map_err(read_failed)?;
        let mut found = Vec::new();
        let mut take = |id: &str, value: Option<&[u8]>| {
            // One record that does not decode never hides the others.
            let execution = value.map_or_else(
                || Execution::unreadable(id, StoreError::Dangling { id: id.to_string() }.to_string()),
                |value| execution_of(id, value),
            );
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

    pub(crate) async fn last_execution(&self, workflow: &str) -> Result<Option<(String, String)>, StoreError> {
        let txn = self.begin_read()?;
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

    // --- the refusal log ---

    pub(crate) async fn refusals(
        &self,
        filter: &RefusalFilter,
        low: &str,
        high: &str,
        limit: usize,
    ) -> Result<Vec<Refusal>, StoreError> {
        let (filter, low, high) = (filter.clone(), low.to_string(), high.to_string());
        self.off_thread(move |store| store.read_refusals(&filter, &low, &high, limit)).await
    }

    fn read_refusals(
        &self,
        filter: &RefusalFilter,
        low: &str,
        high: &str,
        limit: usize,
    ) -> Result<Vec<Refusal>, StoreError> {
        let txn = self.begin_read()?;
        let table = txn.open_table(REFUSALS).map_err(read_failed)?;
        let mut found = Vec::new();
        let mut take = |value: &[u8]| -> Result<bool, StoreError> {
            let refusal: Refusal = decode("refusals", value)?;
            if filter.code.as_ref().is_none_or(|code| *code == refusal.code) {
                found.push(refusal);
            }
            Ok(found.len() < limit)
        };
        match filter.workflow.as_deref() {
            Some(workflow) => {
                let index = txn.open_table(REFUSALS_BY_WORKFLOW).map_err(read_failed)?;
                for entry in index.range((workflow, low)..(workflow, high)).map_err(read_failed)?.rev() {
                    let id = entry.map_err(read_failed)?.0.value().1.to_string();
                    if let Some(value) = table.get(id.as_str()).map_err(read_failed)?
                        && !take(value.value())?
                    {
                        break;
                    }
                }
            }
            None => {
                for entry in table.range(low..high).map_err(read_failed)?.rev() {
                    if !take(entry.map_err(read_failed)?.1.value())? {
                        break;
                    }
                }
            }
        }
        Ok(found)
    }

    // --- activity ---

    pub(crate) async fn activity(&self, workflow: &str, from: u64, to: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let txn = self.begin_read()?;
        let table = txn.open_table(ACTIVITY).map_err(read_failed)?;
        let mut rows = Vec::new();
        for entry in table.range((workflow, from, "")..(workflow, to, "")).map_err(read_failed)? {
            let (key, value) = entry.map_err(read_failed)?;
            rows.push((key.value().1, value.value().to_vec()));
        }
        Ok(rows)
    }

    // --- retention ---

    pub(crate) async fn settled_before(
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
        let txn = self.begin_read()?;
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

    pub(crate) async fn expired_idempotency_keys(
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
        let txn = self.begin_read()?;
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
}

/// How many events a slow listener may fall behind before it is told to resync.
const EVENTS: usize = 1024;

/// Every id on the `queue` table with its workflow (read from the index, not the record; empty
/// for an unreadable record).
fn read_queue(db: &Database) -> Result<Vec<(String, String)>, StoreError> {
    let txn = db.begin_read().map_err(read_failed)?;
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

/// Records [`FORMAT_VERSION`] in a new database (or one written before formats were numbered,
/// which is format 1); refuses one of a newer format.
fn check_format(txn: &redb::WriteTransaction, path: &Path) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META).map_err(write_failed)?;
    let found = meta.get(FORMAT_KEY).map_err(write_failed)?.map(|value| value.value());
    match found {
        Some(found) if found > FORMAT_VERSION => {
            Err(StoreError::NewerFormat { location: path.display().to_string(), found })
        }
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
