//! The PostgreSQL backend: every piece of state in one database that any number of nodes share
//! (schema `hookflow`, [`schema`]). Writes go through one writer task per node ([`writer`]),
//! reads and claims through a small pool; each node holds a lease and hears of the others'
//! changes through `LISTEN`/`NOTIFY` ([`cluster`]).
//!
//! Claims follow River, Oban and graphile-worker: one `UPDATE … FROM (SELECT … FOR UPDATE SKIP
//! LOCKED)` takes the oldest free executions that are due; a workflow with
//! `options.maxConcurrency` is claimed under an advisory lock of its own, so its limit holds
//! across nodes.

mod cluster;
mod connect;
mod schema;
mod sql;
mod writer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod, Runtime};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, ToSql};

use hookflow_workflow::timestamp::Timestamp;
use hookflow_workflow::{Execution, ExecutionStatus, Workflow};

use crate::op::Request;
use crate::record::{decode, execution_of, merge_jobs};
use crate::{
    Claimed, ClusterNode, CommitObserver, ExecutionFilter, IdempotencyKey, IdempotencyRecord, Owner, Refusal,
    RefusalFilter, StoreError, StoreEvent, StoredPlugin, WorkflowQueue, WorkflowRecord, first_id_at,
};
use connect::Target;
use writer::Writer;

type Pool = deadpool_postgres::Pool;

/// How to reach and share a PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=require&sslrootcert=FILE]`.
    pub url: String,
    /// How long a node's lease lasts unless renewed (renewed every third of it).
    pub lease: Duration,
    /// How many connections reads and claims share (the writer and the listener have one
    /// each).
    pub pool_size: usize,
}

impl PostgresConfig {
    /// The defaults for `url`: a 10 s lease, 8 pooled connections.
    pub fn new(url: &str) -> PostgresConfig {
        PostgresConfig { url: url.to_string(), lease: Duration::from_secs(10), pool_size: 8 }
    }
}

/// How many rows a listing that filters on decoded records reads at a time.
const SCAN_PAGE: usize = 500;

/// How long a connection may take to open when the URL says nothing.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a read waits for a pooled connection.
const POOL_WAIT: Duration = Duration::from_secs(5);

/// How many events a slow listener may fall behind before it is told to resync.
const EVENTS: usize = 4096;

/// The database handle; cheap to clone.
#[derive(Clone)]
pub(crate) struct Postgres {
    shared: Arc<Shared>,
    writer: Writer,
    pool: Pool,
    membership: Arc<cluster::Membership>,
    location: Arc<str>,
    _tasks: Arc<Tasks>,
}

/// What the handles, the writer and the membership share.
pub(crate) struct Shared {
    /// Why the last write failed, until a write succeeds again.
    failure: Mutex<Option<Arc<StoreError>>>,
    observer: Option<Arc<dyn CommitObserver>>,
    events: broadcast::Sender<StoreEvent>,
}

impl Shared {
    fn failure(&self) -> Option<Arc<StoreError>> {
        self.failure.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    fn set_failure(&self, failure: Option<StoreError>) {
        let mut slot = self.failure.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if failure.is_none() && slot.is_some() {
            tracing::info!("store: writes succeed again");
        }
        *slot = failure.map(Arc::new);
    }

    /// The error a write gets while the database cannot be reached.
    fn unavailable(&self) -> StoreError {
        StoreError::Unavailable(self.failure().unwrap_or_else(|| Arc::new(StoreError::Closed)))
    }
}

/// Background tasks that end with the last handle.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        self.0.iter().for_each(JoinHandle::abort);
    }
}

/// A failed read.
fn read_failed(error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Read(Arc::new(error))
}

/// A failed write.
fn write_failed(error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Write(Arc::new(error))
}

/// One column of a row, or why it could not be read.
fn column<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> Result<T, StoreError> {
    row.try_get(index).map_err(read_failed)
}

/// Whether an error means the connection (or the server) is gone, as opposed to a statement
/// the server refused: the work may be tried again once connected.
pub(crate) fn is_connection_error(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    match error.code() {
        // Connection exceptions, and the server shutting down or starting up.
        Some(code) => code.code().starts_with("08") || code.code().starts_with("57P"),
        // No SQLSTATE: the socket or TLS failed — or a value could not be converted, which is
        // no connection's fault.
        None => std::error::Error::source(error).is_some_and(|source| source.is::<std::io::Error>()),
    }
}

const CLAIM: &str = "WITH next AS ( \
       SELECT id, waiting FROM hookflow.queue \
       WHERE owner IS NULL AND run_at <= $2 AND NOT (workflow = ANY($4)) \
       ORDER BY run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
     UPDATE hookflow.queue q SET owner = $1, waiting = false FROM next WHERE q.id = next.id \
     RETURNING q.id, q.workflow, q.takeovers, q.cancel, next.waiting";
const CLAIM_WORKFLOW: &str = "WITH next AS ( \
       SELECT id, waiting FROM hookflow.queue \
       WHERE owner IS NULL AND run_at <= $2 AND workflow = $4 \
       ORDER BY run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
     UPDATE hookflow.queue q SET owner = $1, waiting = false FROM next WHERE q.id = next.id \
     RETURNING q.id, q.workflow, q.takeovers, q.cancel, next.waiting";
const DUE_LIMITED: &str = "SELECT DISTINCT workflow FROM hookflow.queue \
     WHERE owner IS NULL AND run_at <= $1 AND workflow = ANY($2)";
const HELD_OF_WORKFLOW: &str = "SELECT count(*) FROM hookflow.queue WHERE workflow = $1 AND owner IS NOT NULL";
const LOCK_WORKFLOW: &str = "SELECT pg_advisory_xact_lock(hashtext('hookflow.queue:' || $1))";

impl Postgres {
    /// Connects, migrates the schema (one node at a time) and starts the writer and the listener.
    pub(crate) async fn open(
        config: &crate::PostgresConfig,
        observer: Option<Arc<dyn CommitObserver>>,
    ) -> Result<Postgres, StoreError> {
        let mut target = Target::parse(&config.url)?;
        if target.config.get_connect_timeout().is_none() {
            target.config.connect_timeout(CONNECT_TIMEOUT);
        }
        let mut client = target.connect().await?;
        schema::migrate(&mut client).await?;
        let shared = Arc::new(Shared { failure: Mutex::default(), observer, events: broadcast::channel(EVENTS).0 });
        let writer = Writer::start(target.clone(), client, shared.clone()).await?;

        // Reads, claims and leases promise nothing durable to anyone: they commit without
        // waiting for the disk (a claim lost in a crash is free again, and its fenced writes
        // are refused).
        let mut pooled = target.config.clone();
        let options = pooled.get_options().map(str::to_string).unwrap_or_default();
        pooled.options(format!("{options} -c synchronous_commit=off").trim());
        let manager =
            Manager::from_config(pooled, target.tls.clone(), ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|error| StoreError::Config(format!("connection pool: {error}")))?;
        let membership = Arc::new(cluster::Membership::new(pool.clone(), config.lease, shared.events.clone()));
        let listener = tokio::spawn(cluster::listen(target.clone(), shared.events.clone()));
        Ok(Postgres {
            shared,
            writer,
            pool,
            membership,
            location: target.location.into(),
            _tasks: Arc::new(Tasks(vec![listener])),
        })
    }

    pub(crate) fn location(&self) -> String {
        self.location.to_string()
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

    pub(crate) async fn join(&self, address: &str) -> Result<Owner, StoreError> {
        self.membership.join(address).await
    }

    pub(crate) fn owner(&self) -> Option<Owner> {
        self.membership.owner()
    }

    pub(crate) async fn leave(&self) -> Result<(), StoreError> {
        self.membership.leave().await
    }

    /// Runs one statement on a pooled connection (prepared once per connection).
    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StoreError> {
        let client = self.pool.get().await.map_err(read_failed)?;
        let statement = client.prepare_cached(sql).await.map_err(read_failed)?;
        client.query(&statement, params).await.map_err(read_failed)
    }

    async fn query_opt(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    pub(crate) async fn nodes(&self) -> Result<Vec<ClusterNode>, StoreError> {
        let rows = self
            .query(
                "SELECT n.id, n.address, (extract(epoch FROM n.started_at) * 1000)::bigint, \
                   (extract(epoch FROM n.renewed_at) * 1000)::bigint, \
                   (SELECT count(*) FROM hookflow.queue q WHERE q.owner = n.id) \
                 FROM hookflow.nodes n ORDER BY n.id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(ClusterNode {
                    id: column(row, 0)?,
                    address: column(row, 1)?,
                    started_at: Timestamp(u64::try_from(column::<i64>(row, 2)?).unwrap_or(0)),
                    renewed_at: Timestamp(u64::try_from(column::<i64>(row, 3)?).unwrap_or(0)),
                    executions: u64::try_from(column::<i64>(row, 4)?).unwrap_or(0),
                })
            })
            .collect()
    }

    // --- workflows and components ---

    pub(crate) async fn workflows(&self) -> Result<Vec<WorkflowRecord>, StoreError> {
        let rows = self.query("SELECT record FROM hookflow.workflows ORDER BY key", &[]).await?;
        rows.iter().map(|row| decode("workflows", column::<&[u8]>(row, 0)?)).collect()
    }

    pub(crate) async fn workflow(&self, key: &str) -> Result<Option<WorkflowRecord>, StoreError> {
        let row = self.query_opt("SELECT record FROM hookflow.workflows WHERE key = $1", &[&key]).await?;
        row.map(|row| decode("workflows", column::<&[u8]>(&row, 0)?)).transpose()
    }

    pub(crate) async fn workflow_version(&self, key: &str, version: u64) -> Result<Option<Workflow>, StoreError> {
        let version = i64::try_from(version).unwrap_or(i64::MAX);
        let row = self
            .query_opt(
                "SELECT definition FROM hookflow.workflow_versions WHERE key = $1 AND version = $2",
                &[&key, &version],
            )
            .await?;
        row.map(|row| decode("workflow_versions", column::<&[u8]>(&row, 0)?)).transpose()
    }

    pub(crate) async fn workflow_versions(&self, key: &str) -> Result<Vec<(u64, Workflow)>, StoreError> {
        let rows = self
            .query(
                "SELECT version, definition FROM hookflow.workflow_versions WHERE key = $1 ORDER BY version",
                &[&key],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let version = u64::try_from(column::<i64>(row, 0)?).unwrap_or(0);
                Ok((version, decode("workflow_versions", column::<&[u8]>(row, 1)?)?))
            })
            .collect()
    }

    pub(crate) async fn plugins(&self) -> Result<Vec<StoredPlugin>, StoreError> {
        let rows = self.query("SELECT name, digest FROM hookflow.plugins ORDER BY name", &[]).await?;
        rows.iter().map(|row| Ok(StoredPlugin { name: column(row, 0)?, digest: column(row, 1)? })).collect()
    }

    pub(crate) async fn plugin(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = self.query_opt("SELECT component FROM hookflow.plugins WHERE name = $1", &[&name]).await?;
        row.map(|row| column::<Vec<u8>>(&row, 0)).transpose()
    }

    // --- the queue ---

    pub(crate) async fn claim(
        &self,
        owner: Owner,
        limit: usize,
        now: Timestamp,
        max_running: &HashMap<String, u32>,
    ) -> Result<Vec<Claimed>, StoreError> {
        let now = i64::try_from(now.0).unwrap_or(i64::MAX);
        let limited: Vec<&str> = max_running.keys().map(String::as_str).collect();
        let mut client = self.pool.get().await.map_err(write_failed)?;
        let mut claimed = Vec::new();
        if !limited.is_empty() {
            let due = client.query(DUE_LIMITED, &[&now, &limited]).await.map_err(read_failed)?;
            for row in &due {
                let workflow: &str = column(row, 0)?;
                let room = limit.saturating_sub(claimed.len());
                let max = max_running.get(workflow).copied().unwrap_or(u32::MAX);
                if room == 0 {
                    break;
                }
                let txn = client.transaction().await.map_err(write_failed)?;
                txn.execute(LOCK_WORKFLOW, &[&workflow]).await.map_err(write_failed)?;
                let held: i64 = column(&txn.query_one(HELD_OF_WORKFLOW, &[&workflow]).await.map_err(read_failed)?, 0)?;
                let free = i64::from(max).saturating_sub(held).min(i64::try_from(room).unwrap_or(i64::MAX));
                if free > 0 {
                    let rows =
                        txn.query(CLAIM_WORKFLOW, &[&owner.0, &now, &free, &workflow]).await.map_err(write_failed)?;
                    for row in &rows {
                        claimed.push(claimed_of(row)?);
                    }
                }
                txn.commit().await.map_err(write_failed)?;
            }
        }
        let room = i64::try_from(limit.saturating_sub(claimed.len())).unwrap_or(i64::MAX);
        if room > 0 {
            let rows = client.query(CLAIM, &[&owner.0, &now, &room, &limited]).await.map_err(write_failed)?;
            for row in &rows {
                claimed.push(claimed_of(row)?);
            }
        }
        claimed.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(claimed)
    }

    pub(crate) async fn next_due(&self, now: Timestamp) -> Result<Option<Timestamp>, StoreError> {
        let now = i64::try_from(now.0).unwrap_or(i64::MAX);
        let row = self
            .query_opt("SELECT min(run_at) FROM hookflow.queue WHERE owner IS NULL AND run_at > $1", &[&now])
            .await?;
        let due: Option<i64> = row.map(|row| column(&row, 0)).transpose()?.flatten();
        Ok(due.map(|due| Timestamp(u64::try_from(due).unwrap_or(0))))
    }

    pub(crate) async fn is_queued(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.query_opt("SELECT 1 FROM hookflow.queue WHERE id = $1", &[&id]).await?.is_some())
    }

    pub(crate) async fn queue_counts(&self) -> Result<HashMap<String, WorkflowQueue>, StoreError> {
        let rows = self
            .query(
                "SELECT workflow, count(*) FILTER (WHERE NOT waiting), count(*) FILTER (WHERE waiting) \
                 FROM hookflow.queue GROUP BY workflow",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let count = |index| column::<i64>(row, index).map(|count| usize::try_from(count).unwrap_or(0));
                Ok((column(row, 0)?, WorkflowQueue { queued: count(1)?, waiting: count(2)? }))
            })
            .collect()
    }

    pub(crate) async fn queue_depth(&self) -> Result<u64, StoreError> {
        let row = self.query_opt("SELECT count(*) FROM hookflow.queue", &[]).await?;
        let depth: i64 = row.map(|row| column(&row, 0)).transpose()?.unwrap_or(0);
        Ok(u64::try_from(depth).unwrap_or(0))
    }

    // --- idempotency keys and answers ---

    pub(crate) async fn idempotency(&self, key: IdempotencyKey<'_>) -> Result<Option<IdempotencyRecord>, StoreError> {
        let row = self
            .query_opt(
                "SELECT record FROM hookflow.idempotency WHERE workflow = $1 AND key = $2",
                &[&key.workflow, &key.key],
            )
            .await?;
        row.map(|row| decode("idempotency", column::<&[u8]>(&row, 0)?)).transpose()
    }

    pub(crate) async fn reply(&self, execution_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row =
            self.query_opt("SELECT record FROM hookflow.replies WHERE execution_id = $1", &[&execution_id]).await?;
        row.map(|row| column::<Vec<u8>>(&row, 0)).transpose()
    }

    // --- executions ---

    pub(crate) async fn execution(&self, id: &str) -> Result<Option<Execution>, StoreError> {
        let client = self.pool.get().await.map_err(read_failed)?;
        let record =
            client.prepare_cached("SELECT record FROM hookflow.executions WHERE id = $1").await.map_err(read_failed)?;
        let jobs = client
            .prepare_cached("SELECT idx, record FROM hookflow.jobs WHERE execution_id = $1 ORDER BY idx")
            .await
            .map_err(read_failed)?;
        // Both in one round trip.
        let params: &[&(dyn ToSql + Sync)] = &[&id];
        let (record, jobs) = tokio::join!(client.query_opt(&record, params), client.query(&jobs, params));
        let Some(record) = record.map_err(read_failed)? else { return Ok(None) };
        let execution = execution_of(id, column(&record, 0)?);
        if execution.status == ExecutionStatus::Unreadable {
            return Ok(Some(execution));
        }
        let jobs = jobs
            .map_err(read_failed)?
            .iter()
            .map(|row| Ok((u32::try_from(column::<i32>(row, 0)?).unwrap_or(u32::MAX), column::<Vec<u8>>(row, 1)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some(merge_jobs(execution, jobs)))
    }

    pub(crate) async fn executions(
        &self,
        filter: &ExecutionFilter,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Execution>, StoreError> {
        let Some((low, mut high)) = filter.id_range(before) else { return Ok(Vec::new()) };
        let status = filter.status.filter(|status| *status != ExecutionStatus::Unreadable).map(ExecutionStatus::as_str);
        // What no column tells (an unreadable record, a dead letter) is found by decoding: such a
        // listing reads pages past the records it skips.
        let page = if filter.reads_records() { limit.max(SCAN_PAGE) } else { limit };
        let take = i64::try_from(page).unwrap_or(i64::MAX);
        let mut found = Vec::new();
        loop {
            let rows = match (filter.workflow.as_deref(), status) {
                (Some(workflow), Some(status)) => {
                    self.query(
                        "SELECT id, record FROM hookflow.executions WHERE workflow = $1 AND status = $2 \
                         AND id >= $3 AND id < $4 ORDER BY id DESC LIMIT $5",
                        &[&workflow, &status, &low, &high, &take],
                    )
                    .await?
                }
                (Some(workflow), None) => {
                    self.query(
                        "SELECT id, record FROM hookflow.executions WHERE workflow = $1 \
                         AND id >= $2 AND id < $3 ORDER BY id DESC LIMIT $4",
                        &[&workflow, &low, &high, &take],
                    )
                    .await?
                }
                (None, Some(status)) => {
                    self.query(
                        "SELECT id, record FROM hookflow.executions WHERE status = $1 \
                         AND id >= $2 AND id < $3 ORDER BY id DESC LIMIT $4",
                        &[&status, &low, &high, &take],
                    )
                    .await?
                }
                (None, None) => {
                    self.query(
                        "SELECT id, record FROM hookflow.executions WHERE id >= $1 AND id < $2 ORDER BY id DESC LIMIT $3",
                        &[&low, &high, &take],
                    )
                    .await?
                }
            };
            for row in &rows {
                // One record that does not decode never hides the others.
                let execution = execution_of(column(row, 0)?, column(row, 1)?);
                if filter.matches(&execution) {
                    found.push(execution);
                    if found.len() == limit {
                        return Ok(found);
                    }
                }
            }
            match rows.last() {
                Some(last) if rows.len() == page => high = column::<&str>(last, 0)?.to_string(),
                _ => return Ok(found),
            }
        }
    }

    pub(crate) async fn activity(&self, workflow: &str, from: u64, to: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let (from, to) = (i64::try_from(from).unwrap_or(i64::MAX), i64::try_from(to).unwrap_or(i64::MAX));
        let rows = self
            .query(
                "SELECT minute, record FROM hookflow.activity WHERE workflow = $1 AND minute >= $2 AND minute < $3",
                &[&workflow, &from, &to],
            )
            .await?;
        rows.iter()
            .map(|row| Ok((u64::try_from(column::<i64>(row, 0)?).unwrap_or(0), column::<Vec<u8>>(row, 1)?)))
            .collect()
    }

    pub(crate) async fn refusals(
        &self,
        filter: &RefusalFilter,
        low: &str,
        high: &str,
        limit: usize,
    ) -> Result<Vec<Refusal>, StoreError> {
        let take = i64::try_from(limit).unwrap_or(i64::MAX);
        let (workflow, code) = (filter.workflow.as_deref(), filter.code.as_deref());
        let rows = self
            .query(
                "SELECT record FROM hookflow.refusals WHERE ($1::text IS NULL OR workflow = $1) \
                 AND ($2::text IS NULL OR code = $2) AND id >= $3 AND id < $4 ORDER BY id DESC LIMIT $5",
                &[&workflow, &code, &low, &high, &take],
            )
            .await?;
        rows.iter().map(|row| decode("refusals", column(row, 0)?)).collect()
    }

    pub(crate) async fn last_execution(&self, workflow: &str) -> Result<Option<(String, String)>, StoreError> {
        let row = self
            .query_opt(
                "SELECT id, status FROM hookflow.executions WHERE workflow = $1 ORDER BY id DESC LIMIT 1",
                &[&workflow],
            )
            .await?;
        row.map(|row| Ok((column(&row, 0)?, column(&row, 1)?))).transpose()
    }

    // --- retention ---

    pub(crate) async fn settled_before(
        &self,
        cutoff: Timestamp,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let end = first_id_at(cutoff);
        let after = after.unwrap_or("");
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .query(
                "SELECT e.id FROM hookflow.executions e WHERE e.id < $1 AND e.id > $2 \
                 AND NOT EXISTS (SELECT 1 FROM hookflow.queue q WHERE q.id = e.id) ORDER BY e.id LIMIT $3",
                &[&end, &after, &limit],
            )
            .await?;
        rows.iter().map(|row| column(row, 0)).collect()
    }

    pub(crate) async fn expired_idempotency_keys(
        &self,
        now: Timestamp,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let now = i64::try_from(now.0).unwrap_or(i64::MAX);
        let (workflow, key) = after.unwrap_or(("", ""));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .query(
                "SELECT workflow, key FROM hookflow.idempotency WHERE expires_at <= $1 AND (workflow, key) > ($2, $3) \
                 ORDER BY workflow, key LIMIT $4",
                &[&now, &workflow, &key, &limit],
            )
            .await?;
        rows.iter().map(|row| Ok((column(row, 0)?, column(row, 1)?))).collect()
    }
}

/// A claimed row: `id, workflow, takeovers, cancel, waiting before the claim`.
fn claimed_of(row: &Row) -> Result<Claimed, StoreError> {
    Ok(Claimed {
        id: column(row, 0)?,
        workflow: column(row, 1)?,
        takeovers: u32::try_from(column::<i32>(row, 2)?).unwrap_or(0),
        cancel: column(row, 3)?,
        waited: column(row, 4)?,
    })
}
