//! The single writer: one thread, one write transaction per batch of pending writes (group
//! commit). A batch that holds a durable write commits with fsync; whoever asked to hear of a
//! commit hears after it; a batch of only lazy writes commits without fsync (the next durable commit, or the
//! flush at shutdown, makes it durable).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use std::time::Instant;

use redb::{Database, Durability};
use tokio::sync::oneshot;

use crate::metrics::metrics;

use super::{EXECUTIONS, IDEMPOTENCY, JOBS, QUEUE, REPLIES, StoreError, WORKFLOW_VERSIONS, WORKFLOWS, storage};

/// Most requests folded into one transaction.
const MAX_BATCH: usize = 4096;

/// One change to the database.
pub enum Op {
    PutWorkflow { key: String, record: Vec<u8> },
    DeleteWorkflow { key: String },
    PutWorkflowVersion { key: String, version: u64, definition: Vec<u8> },
    PutExecution { id: String, record: Vec<u8> },
    DeleteExecution { id: String },
    PutJob { id: String, index: u32, record: Vec<u8> },
    DeleteJobs { id: String },
    Enqueue { id: String },
    Dequeue { id: String },
    PutIdempotency { workflow: String, key: String, record: Vec<u8> },
    PutReply { id: String, record: Vec<u8> },
    DeleteReply { id: String },
    DeleteIdempotency { workflow: String, key: String },
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
    pub fn start(db: Arc<Database>) -> std::io::Result<Writer> {
        let (requests, incoming) = channel();
        std::thread::Builder::new().name("hookflow-store".into()).spawn(move || run(&db, &incoming))?;
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

fn run(db: &Database, incoming: &Receiver<Request>) {
    while let Ok(first) = incoming.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH
            && let Ok(next) = incoming.try_recv()
        {
            batch.push(next);
        }
        let durable = batch.iter().any(|request| request.durable);
        let started = Instant::now();
        let result = commit(db, &batch, durable);
        metrics().commit(started.elapsed());
        if let Err(error) = &result {
            tracing::error!("store commit of {} writes failed: {error}", batch.len());
        }
        for request in batch {
            if let Some(done) = request.done {
                let _ = done.send(result.clone());
            }
        }
    }
}

fn commit(db: &Database, batch: &[Request], durable: bool) -> Result<(), StoreError> {
    let mut txn = db.begin_write().map_err(storage)?;
    if !durable {
        txn.set_durability(Durability::None).map_err(storage)?;
    }
    {
        let mut workflows = txn.open_table(WORKFLOWS).map_err(storage)?;
        let mut versions = txn.open_table(WORKFLOW_VERSIONS).map_err(storage)?;
        let mut executions = txn.open_table(EXECUTIONS).map_err(storage)?;
        let mut jobs = txn.open_table(JOBS).map_err(storage)?;
        let mut queue = txn.open_table(QUEUE).map_err(storage)?;
        let mut idempotency = txn.open_table(IDEMPOTENCY).map_err(storage)?;
        let mut replies = txn.open_table(REPLIES).map_err(storage)?;
        for op in batch.iter().flat_map(|request| &request.ops) {
            match op {
                Op::PutWorkflow { key, record } => workflows.insert(key.as_str(), record.as_slice()).map(drop),
                Op::DeleteWorkflow { key } => workflows.remove(key.as_str()).map(drop),
                Op::PutWorkflowVersion { key, version, definition } => {
                    versions.insert((key.as_str(), *version), definition.as_slice()).map(drop)
                }
                Op::PutExecution { id, record } => executions.insert(id.as_str(), record.as_slice()).map(drop),
                Op::DeleteExecution { id } => executions.remove(id.as_str()).map(drop),
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
            }
            .map_err(storage)?;
        }
    }
    txn.commit().map_err(storage)
}
