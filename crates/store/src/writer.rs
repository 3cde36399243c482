//! The single writer: one thread, one write transaction per batch of pending writes (group
//! commit). A batch that holds a durable write commits with fsync; whoever asked to hear of a
//! commit hears after it; a batch of only lazy writes commits without fsync (the next durable commit, or the
//! flush at shutdown, makes it durable).
//!
//! A failed commit (disk full, I/O error) leaves redb refusing every later write, so the writer
//! marks the store failed, keeps the background writes of that batch, and reopens the database —
//! before the next batch, and every [`RECOVERY_INTERVAL`] while none comes. Once a commit
//! succeeds again (the kept writes first), the failure is cleared. Whoever waits on a write hears
//! of its failure; nothing is reported written that was not.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};

use std::time::Instant;

use redb::{Database, Durability, ReadableTable as _};
use tokio::sync::oneshot;

use hookflow_workflow::ExecutionStatus;

use super::{
    BY_STATUS, BY_WORKFLOW, BY_WORKFLOW_STATUS, EXECUTIONS, IDEMPOTENCY, INDEXED, JOBS, QUEUE, RECOVERY_INTERVAL,
    REPLIES, Shared, StoreError, WORKFLOW_VERSIONS, WORKFLOWS, write_failed,
};

/// Most requests folded into one transaction.
const MAX_BATCH: usize = 4096;

/// Most background writes kept for after a failure; past it the oldest are dropped (and logged).
const MAX_KEPT: usize = 100_000;

/// One change to the database.
pub enum Op {
    PutWorkflow {
        key: String,
        record: Vec<u8>,
    },
    DeleteWorkflow {
        key: String,
    },
    PutWorkflowVersion {
        key: String,
        version: u64,
        definition: Vec<u8>,
    },
    PutExecution {
        id: String,
        workflow: String,
        status: &'static str,
        record: Vec<u8>,
    },
    DeleteExecution {
        id: String,
    },
    PutJob {
        id: String,
        index: u32,
        record: Vec<u8>,
    },
    DeleteJobs {
        id: String,
    },
    Enqueue {
        id: String,
    },
    Dequeue {
        id: String,
    },
    PutIdempotency {
        workflow: String,
        key: String,
        record: Vec<u8>,
    },
    PutReply {
        id: String,
        record: Vec<u8>,
    },
    DeleteReply {
        id: String,
    },
    DeleteIdempotency {
        workflow: String,
        key: String,
    },
    /// Writes a canceled execution's record and takes it off the queue, only while it is still
    /// queued: a worker that finished it first has taken it off already, and its record stays.
    CancelQueued {
        id: String,
        workflow: String,
        record: Vec<u8>,
    },
}

struct Request {
    ops: Vec<Op>,
    /// Whether the batch holding these writes must reach the disk (fsync) when it commits.
    durable: bool,
    /// Present when the caller wants to hear when the batch has committed.
    done: Option<oneshot::Sender<Result<(), StoreError>>>,
}

/// Handle to the writer thread; the thread ends when every handle is dropped.
#[derive(Clone)]
pub struct Writer {
    requests: Sender<Request>,
}

impl Writer {
    /// Starts the writer thread.
    pub fn start(shared: Arc<Shared>) -> std::io::Result<Writer> {
        let (requests, incoming) = channel();
        std::thread::Builder::new().name("hookflow-store".into()).spawn(move || run(&shared, &incoming))?;
        Ok(Writer { requests })
    }

    /// Applies `ops` in the next batch and waits until that batch is on disk.
    pub async fn write_and_wait(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        self.write_notified(ops, true).await.map_err(|_| StoreError::Closed)?
    }

    /// Applies `ops` in the next batch; the receiver hears when that batch has committed.
    pub fn write_notified(&self, ops: Vec<Op>, durable: bool) -> oneshot::Receiver<Result<(), StoreError>> {
        let (done, committed) = oneshot::channel();
        // When the writer is gone the sender is dropped with the request: the receiver hears that.
        let _ = self.requests.send(Request { ops, durable, done: Some(done) });
        committed
    }

    /// Applies `ops` in the next batch without waiting; `durable` makes that batch fsync.
    pub fn write(&self, ops: Vec<Op>, durable: bool) {
        if self.requests.send(Request { ops, durable, done: None }).is_err() {
            tracing::error!("store closed: a background write was dropped");
        }
    }
}

fn run(shared: &Shared, incoming: &Receiver<Request>) {
    // Background writes of batches that failed, written again once the database takes writes.
    let mut kept: Vec<Request> = Vec::new();
    loop {
        let first = match incoming.recv_timeout(RECOVERY_INTERVAL) {
            Ok(first) => first,
            Err(RecvTimeoutError::Timeout) => {
                if shared.failure().is_some() {
                    recover(shared, &mut kept);
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH
            && let Ok(next) = incoming.try_recv()
        {
            batch.push(next);
        }
        if shared.failure().is_some() && !recover(shared, &mut kept) {
            answer(batch, &Err(shared.unavailable()), &mut kept);
            continue;
        }
        let durable = batch.iter().any(|request| request.durable);
        let started = Instant::now();
        let result = shared.db().and_then(|db| commit(&db, &batch, durable));
        if let Some(observer) = &shared.observer {
            observer.commit(started.elapsed());
        }
        if let Err(error) = &result {
            tracing::error!("store commit of {} writes failed: {error}", batch.len());
            shared.set_failure(Some(error.clone()));
        }
        answer(batch, &result, &mut kept);
    }
}

/// Tells whoever waits how their batch went; after a failure, keeps the background writes.
fn answer(batch: Vec<Request>, result: &Result<(), StoreError>, kept: &mut Vec<Request>) {
    for request in batch {
        match request.done {
            Some(done) => {
                let _ = done.send(result.clone());
            }
            None if result.is_err() => kept.push(request),
            None => {}
        }
    }
    if kept.len() > MAX_KEPT {
        let dropped = kept.len() - MAX_KEPT;
        tracing::error!("store: {dropped} background writes dropped while writes keep failing");
        kept.drain(..dropped);
    }
}

/// Reopens the database and writes the kept writes (or an empty probe) durably; clears the
/// failure when that works.
fn recover(shared: &Shared, kept: &mut Vec<Request>) -> bool {
    let outcome = shared.reopen().and_then(|()| commit(shared.db()?.as_ref(), kept, true));
    match outcome {
        Ok(()) => {
            tracing::info!("store: writes succeed again ({} kept writes written)", kept.len());
            kept.clear();
            shared.set_failure(None);
            true
        }
        Err(error) => {
            tracing::warn!("store: still cannot write: {error}");
            // While the database is closed for reopening, the failure stays the one that caused it.
            if !matches!(error, StoreError::Unavailable(_)) {
                shared.set_failure(Some(error));
            }
            false
        }
    }
}

fn commit(db: &Database, batch: &[Request], durable: bool) -> Result<(), StoreError> {
    let mut txn = db.begin_write().map_err(write_failed)?;
    if !durable {
        txn.set_durability(Durability::None).map_err(write_failed)?;
    }
    {
        let mut workflows = txn.open_table(WORKFLOWS).map_err(write_failed)?;
        let mut versions = txn.open_table(WORKFLOW_VERSIONS).map_err(write_failed)?;
        let mut executions = txn.open_table(EXECUTIONS).map_err(write_failed)?;
        let mut jobs = txn.open_table(JOBS).map_err(write_failed)?;
        let mut queue = txn.open_table(QUEUE).map_err(write_failed)?;
        let mut idempotency = txn.open_table(IDEMPOTENCY).map_err(write_failed)?;
        let mut replies = txn.open_table(REPLIES).map_err(write_failed)?;
        let mut index = Index::open(&txn)?;
        for op in batch.iter().flat_map(|request| &request.ops) {
            match op {
                Op::PutWorkflow { key, record } => workflows.insert(key.as_str(), record.as_slice()).map(drop),
                Op::DeleteWorkflow { key } => workflows.remove(key.as_str()).map(drop),
                Op::PutWorkflowVersion { key, version, definition } => {
                    versions.insert((key.as_str(), *version), definition.as_slice()).map(drop)
                }
                Op::PutExecution { id, workflow, status, record } => {
                    index.put(id, workflow, status)?;
                    executions.insert(id.as_str(), record.as_slice()).map(drop)
                }
                Op::DeleteExecution { id } => {
                    index.remove(id)?;
                    executions.remove(id.as_str()).map(drop)
                }
                Op::PutJob { id, index, record } => jobs.insert((id.as_str(), *index), record.as_slice()).map(drop),
                Op::DeleteJobs { id } => jobs.retain_in((id.as_str(), 0)..=(id.as_str(), u32::MAX), |_, _| false),
                Op::Enqueue { id } => queue.insert(id.as_str(), ()).map(drop),
                Op::Dequeue { id } => queue.remove(id.as_str()).map(drop),
                Op::PutIdempotency { workflow, key, record } => {
                    idempotency.insert((workflow.as_str(), key.as_str()), record.as_slice()).map(drop)
                }
                Op::PutReply { id, record } => replies.insert(id.as_str(), record.as_slice()).map(drop),
                Op::DeleteReply { id } => replies.remove(id.as_str()).map(drop),
                Op::DeleteIdempotency { workflow, key } => {
                    idempotency.remove((workflow.as_str(), key.as_str())).map(drop)
                }
                Op::CancelQueued { id, workflow, record } => {
                    let was_queued = queue.remove(id.as_str()).map_err(write_failed)?.is_some();
                    if was_queued {
                        index.put(id, workflow, ExecutionStatus::Canceled.as_str())?;
                        executions.insert(id.as_str(), record.as_slice()).map(drop)
                    } else {
                        Ok(())
                    }
                }
            }
            .map_err(write_failed)?;
        }
    }
    txn.commit().map_err(write_failed)
}

/// The execution indexes of one write transaction: by workflow, by status, by both, and what
/// each execution is indexed as (so a status change moves its entries).
pub struct Index<'txn> {
    by_workflow: redb::Table<'txn, (&'static str, &'static str), ()>,
    by_status: redb::Table<'txn, (&'static str, &'static str), ()>,
    by_workflow_status: redb::Table<'txn, (&'static str, &'static str, &'static str), ()>,
    indexed: redb::Table<'txn, &'static str, (&'static str, &'static str)>,
}

impl<'txn> Index<'txn> {
    /// Opens the index tables in `txn`.
    pub fn open(txn: &'txn redb::WriteTransaction) -> Result<Index<'txn>, StoreError> {
        Ok(Index {
            by_workflow: txn.open_table(BY_WORKFLOW).map_err(write_failed)?,
            by_status: txn.open_table(BY_STATUS).map_err(write_failed)?,
            by_workflow_status: txn.open_table(BY_WORKFLOW_STATUS).map_err(write_failed)?,
            indexed: txn.open_table(INDEXED).map_err(write_failed)?,
        })
    }

    /// Indexes an execution under its workflow and (current) status.
    pub fn put(&mut self, id: &str, workflow: &str, status: &str) -> Result<(), StoreError> {
        let before = self.indexed(id)?;
        if before.as_ref().is_some_and(|(w, s)| w == workflow && s == status) {
            return Ok(());
        }
        if let Some((old_workflow, old_status)) = before {
            self.by_status.remove((old_status.as_str(), id)).map_err(write_failed)?;
            self.by_workflow_status.remove((old_workflow.as_str(), old_status.as_str(), id)).map_err(write_failed)?;
            self.by_workflow.remove((old_workflow.as_str(), id)).map_err(write_failed)?;
        }
        self.by_workflow.insert((workflow, id), ()).map_err(write_failed)?;
        self.by_status.insert((status, id), ()).map_err(write_failed)?;
        self.by_workflow_status.insert((workflow, status, id), ()).map_err(write_failed)?;
        self.indexed.insert(id, (workflow, status)).map_err(write_failed)?;
        Ok(())
    }

    /// Forgets an execution's index entries.
    pub fn remove(&mut self, id: &str) -> Result<(), StoreError> {
        let Some((workflow, status)) = self.indexed(id)? else { return Ok(()) };
        self.by_workflow.remove((workflow.as_str(), id)).map_err(write_failed)?;
        self.by_status.remove((status.as_str(), id)).map_err(write_failed)?;
        self.by_workflow_status.remove((workflow.as_str(), status.as_str(), id)).map_err(write_failed)?;
        self.indexed.remove(id).map_err(write_failed)?;
        Ok(())
    }

    fn indexed(&self, id: &str) -> Result<Option<(String, String)>, StoreError> {
        let entry = self.indexed.get(id).map_err(write_failed)?;
        Ok(entry.map(|guard| {
            let (workflow, status) = guard.value();
            (workflow.to_string(), status.to_string())
        }))
    }
}
