//! The single writer: one thread, one write transaction per batch of pending requests (group
//! commit). A batch that holds a durable request commits with fsync; whoever asked to hear of a
//! commit hears after it; a batch of only lazy writes commits without fsync (the next durable
//! commit, or the flush at shutdown, makes it durable). After a commit the in-memory claims
//! follow what it changed on the queue, and the process hears of queued work and cancels.
//!
//! A failed commit (disk full, I/O error) leaves redb refusing every later write, so the writer
//! marks the store failed, keeps the background writes of that batch, and reopens the database —
//! before the next batch, and every [`RECOVERY_INTERVAL`] while none comes. Once a commit
//! succeeds again (the kept writes first), the failure is cleared. Whoever waits on a write hears
//! of its failure; nothing is reported written that was not.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableTable as _};

use hookflow_workflow::ExecutionStatus;

use super::{
    ACTIVITY, ACTIVITY_BY_MINUTE, BY_STATUS, BY_WORKFLOW, BY_WORKFLOW_STATUS, EXECUTIONS, IDEMPOTENCY, INDEXED, JOBS,
    PLUGINS, QUEUE, REFUSAL_COUNTS, REFUSALS, REFUSALS_BY_WORKFLOW, REPLIES, Shared, WORKFLOW_VERSIONS, WORKFLOWS,
    write_failed,
};
use crate::op::{Applied, Op, Request};
use crate::record::decode;
use crate::{IdempotencyRecord, Owner, PAST_EVERY_ID, RECOVERY_INTERVAL, StoreError, StoreEvent, WorkflowRecord};

/// Most requests folded into one transaction.
const MAX_BATCH: usize = 4096;

/// How long a batch of background writes waits for more to join it before it commits.
const BACKGROUND_LINGER: Duration = Duration::from_millis(3);

/// Most background writes kept for after a failure; past it the oldest are dropped (and logged).
const MAX_KEPT: usize = 100_000;

/// Handle to the writer thread; the thread ends when every handle is dropped.
#[derive(Clone)]
pub(crate) struct Writer {
    requests: Sender<Request>,
}

impl Writer {
    /// Starts the writer thread.
    pub(crate) fn start(shared: Arc<Shared>) -> std::io::Result<Writer> {
        let (requests, incoming) = channel();
        std::thread::Builder::new().name("hookflow-store".into()).spawn(move || run(&shared, &incoming))?;
        Ok(Writer { requests })
    }

    /// Applies `request` in the next batch. When the writer is gone, whoever waits hears that
    /// (its sender is dropped with the request).
    pub(crate) fn submit(&self, request: Request) {
        if let Err(unsent) = self.requests.send(request)
            && unsent.0.done.is_none()
        {
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
        let batch = gather(first, incoming);
        if shared.failure().is_some() && !recover(shared, &mut kept) {
            answer(batch, Err(shared.unavailable()), &mut kept);
            continue;
        }
        let durable = batch.iter().any(|request| request.durable);
        let started = Instant::now();
        let result = shared.db().and_then(|db| commit(shared, &db, &batch, durable));
        if let Some(observer) = &shared.observer {
            observer.commit(started.elapsed());
        }
        if let Err(error) = &result {
            tracing::error!("store commit of {} writes failed: {error}", batch.len());
            shared.set_failure(Some(error.clone()));
        }
        answer(batch, result, &mut kept);
    }
}

/// The batch that starts with `first`: whatever is pending; and when nobody waits on any of it
/// (writes without fsync whose sender does not listen, such as a sync execution's record), what
/// arrives within [`BACKGROUND_LINGER`] too — one commit for many records instead of one for
/// every few. The writer sleeps rather than waits on the channel, so senders wake nobody.
fn gather(first: Request, incoming: &Receiver<Request>) -> Vec<Request> {
    let mut batch = vec![first];
    drain(&mut batch, incoming);
    let unwaited = |request: &Request| !request.durable && request.done.as_ref().is_none_or(|done| done.is_closed());
    if batch.len() < MAX_BATCH && batch.iter().all(unwaited) {
        std::thread::sleep(BACKGROUND_LINGER);
        drain(&mut batch, incoming);
    }
    batch
}

/// Moves what is pending into `batch`, up to [`MAX_BATCH`].
fn drain(batch: &mut Vec<Request>, incoming: &Receiver<Request>) {
    while batch.len() < MAX_BATCH
        && let Ok(next) = incoming.try_recv()
    {
        batch.push(next);
    }
}

/// Tells whoever waits how their request went; after a failure, keeps the background writes.
fn answer(batch: Vec<Request>, result: Result<Vec<Applied>, StoreError>, kept: &mut Vec<Request>) {
    match result {
        Ok(applied) => {
            for (request, applied) in batch.into_iter().zip(applied) {
                if let Some(done) = request.done {
                    let _ = done.send(Ok(applied));
                }
            }
        }
        Err(error) => {
            for request in batch {
                match request.done {
                    Some(done) => {
                        let _ = done.send(Err(error.clone()));
                    }
                    None => kept.push(request),
                }
            }
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
    let outcome = shared.reopen().and_then(|()| commit(shared, shared.db()?.as_ref(), kept, true));
    match outcome {
        Ok(_) => {
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

/// A change to the in-memory claims, made once the transaction that caused it has committed.
enum Effect {
    Queued { id: String, workflow: String, run_at: u64, owner: Option<Owner> },
    Released { id: String, run_at: u64 },
    Removed { id: String },
    CancelRequested { id: String, now: u64 },
}

/// Applies a batch in one transaction and commits it; then the in-memory claims follow and the
/// process hears of queued work and cancels. Answers what became of each request.
fn commit(shared: &Shared, db: &Database, batch: &[Request], durable: bool) -> Result<Vec<Applied>, StoreError> {
    let mut effects = Vec::new();
    // Cancels marked in memory while their writes wait for the commit.
    let mut canceling = Vec::new();
    let result = apply(shared, db, batch, durable, &mut effects, &mut canceling);
    let mut queue = shared.queue();
    if result.is_err() {
        for id in &canceling {
            queue.abandon_cancel(id);
        }
        return result;
    }
    let mut ready = false;
    let mut canceled = Vec::new();
    for effect in effects {
        match effect {
            Effect::Queued { id, workflow, run_at, owner } => {
                ready |= owner.is_none();
                queue.insert(&id, &workflow, run_at, owner);
            }
            Effect::Released { id, run_at } => {
                ready = true;
                queue.release(&id, run_at);
            }
            // A place under a workflow's concurrency limit may have come free.
            Effect::Removed { id } => {
                ready = true;
                queue.remove(&id);
            }
            Effect::CancelRequested { id, now } => {
                ready = true;
                queue.request_cancel(&id, now);
                canceled.push(id);
            }
        }
    }
    drop(queue);
    // Nobody listening is not an error: the events are hints.
    for id in canceled {
        let _ = shared.events.send(StoreEvent::CancelRequested(id));
    }
    if ready {
        let _ = shared.events.send(StoreEvent::QueueReady);
    }
    result
}

fn apply(
    shared: &Shared,
    db: &Database,
    batch: &[Request],
    durable: bool,
    effects: &mut Vec<Effect>,
    canceling: &mut Vec<String>,
) -> Result<Vec<Applied>, StoreError> {
    let mut txn = db.begin_write().map_err(write_failed)?;
    if !durable {
        txn.set_durability(Durability::None).map_err(write_failed)?;
    }
    let mut outcomes = Vec::with_capacity(batch.len());
    {
        let mut tables = Tables {
            workflows: txn.open_table(WORKFLOWS).map_err(write_failed)?,
            versions: txn.open_table(WORKFLOW_VERSIONS).map_err(write_failed)?,
            plugins: txn.open_table(PLUGINS).map_err(write_failed)?,
            executions: txn.open_table(EXECUTIONS).map_err(write_failed)?,
            jobs: txn.open_table(JOBS).map_err(write_failed)?,
            queue: txn.open_table(QUEUE).map_err(write_failed)?,
            idempotency: txn.open_table(IDEMPOTENCY).map_err(write_failed)?,
            replies: txn.open_table(REPLIES).map_err(write_failed)?,
            index: Index::open(&txn)?,
            txn: &txn,
            refusals: None,
        };
        for request in batch {
            let fenced =
                request.fence.as_ref().is_some_and(|fence| shared.queue().owner_of(&fence.id) != Some(fence.owner));
            if fenced {
                outcomes.push(Applied::Fenced);
                continue;
            }
            let mut outcome = Applied::Done;
            for op in &request.ops {
                if let Some(stop) = tables.apply(shared, op, effects, canceling)? {
                    outcome = stop;
                    break;
                }
            }
            outcomes.push(outcome);
        }
    }
    txn.commit().map_err(write_failed)?;
    Ok(outcomes)
}

/// The tables of one write transaction.
struct Tables<'txn> {
    workflows: redb::Table<'txn, &'static str, &'static [u8]>,
    versions: redb::Table<'txn, (&'static str, u64), &'static [u8]>,
    plugins: redb::Table<'txn, &'static str, (&'static str, &'static [u8])>,
    executions: redb::Table<'txn, &'static str, &'static [u8]>,
    jobs: redb::Table<'txn, (&'static str, u32), &'static [u8]>,
    queue: redb::Table<'txn, &'static str, ()>,
    idempotency: redb::Table<'txn, (&'static str, &'static str), &'static [u8]>,
    replies: redb::Table<'txn, &'static str, &'static [u8]>,
    index: Index<'txn>,
    txn: &'txn redb::WriteTransaction,
    /// The refusal log's tables, opened by the first refusal of the transaction (most have none).
    refusals: Option<RefusalTables<'txn>>,
}

/// The tables of the refusal log.
struct RefusalTables<'txn> {
    log: redb::Table<'txn, &'static str, &'static [u8]>,
    by_workflow: redb::Table<'txn, (&'static str, &'static str), ()>,
    counts: redb::Table<'txn, &'static str, u64>,
}

impl<'txn> RefusalTables<'txn> {
    fn open(txn: &'txn redb::WriteTransaction) -> Result<RefusalTables<'txn>, StoreError> {
        Ok(RefusalTables {
            log: txn.open_table(REFUSALS).map_err(write_failed)?,
            by_workflow: txn.open_table(REFUSALS_BY_WORKFLOW).map_err(write_failed)?,
            counts: txn.open_table(REFUSAL_COUNTS).map_err(write_failed)?,
        })
    }

    /// Logs a refusal, then drops the workflow's oldest past `keep`.
    fn put(&mut self, id: &str, workflow: &str, record: &[u8], keep: u64) -> Result<(), StoreError> {
        if self.log.insert(id, record).map_err(write_failed)?.is_some() {
            return Ok(());
        }
        self.by_workflow.insert((workflow, id), ()).map_err(write_failed)?;
        let mut count = self.counts.get(workflow).map_err(write_failed)?.map_or(0, |count| count.value()) + 1;
        while count > keep {
            let oldest =
                match self.by_workflow.range((workflow, "")..(workflow, PAST_EVERY_ID)).map_err(write_failed)?.next() {
                    Some(entry) => entry.map_err(write_failed)?.0.value().1.to_string(),
                    None => break,
                };
            self.by_workflow.remove((workflow, oldest.as_str())).map_err(write_failed)?;
            self.log.remove(oldest.as_str()).map_err(write_failed)?;
            count -= 1;
        }
        self.counts.insert(workflow, count).map_err(write_failed)?;
        Ok(())
    }
}

impl Tables<'_> {
    /// Applies one op; `Some(outcome)` when the rest of its request is skipped.
    fn apply(
        &mut self,
        shared: &Shared,
        op: &Op,
        effects: &mut Vec<Effect>,
        canceling: &mut Vec<String>,
    ) -> Result<Option<Applied>, StoreError> {
        match op {
            Op::PutWorkflow { key, version: _, record, expected } => {
                let current = match self.workflows.get(key.as_str()).map_err(write_failed)? {
                    Some(value) => Some(decode::<WorkflowRecord>("workflows", value.value())?.version),
                    None => None,
                };
                if current != *expected {
                    return Ok(Some(Applied::Conflict));
                }
                self.workflows.insert(key.as_str(), record.as_slice()).map_err(write_failed)?;
            }
            Op::DeleteWorkflow { key } => drop(self.workflows.remove(key.as_str()).map_err(write_failed)?),
            Op::PutWorkflowVersion { key, version, definition } => {
                if self.versions.get((key.as_str(), *version)).map_err(write_failed)?.is_none() {
                    self.versions.insert((key.as_str(), *version), definition.as_slice()).map_err(write_failed)?;
                }
            }
            Op::PutPlugin { name, digest, component } => {
                self.plugins.insert(name.as_str(), (digest.as_str(), component.as_slice())).map_err(write_failed)?;
            }
            Op::DeletePlugin { name } => drop(self.plugins.remove(name.as_str()).map_err(write_failed)?),
            Op::PutExecution { id, workflow, status, record } => {
                self.index.put(id, workflow, status)?;
                self.executions.insert(id.as_str(), record.as_slice()).map_err(write_failed)?;
            }
            Op::DeleteExecution { id } => {
                self.index.remove(id)?;
                self.executions.remove(id.as_str()).map_err(write_failed)?;
            }
            Op::PutJob { id, index, record } => {
                self.jobs.insert((id.as_str(), *index), record.as_slice()).map_err(write_failed)?;
            }
            Op::DeleteJobs { id } => {
                self.jobs.retain_in((id.as_str(), 0)..=(id.as_str(), u32::MAX), |_, _| false).map_err(write_failed)?
            }
            Op::Enqueue { id, workflow, run_at, owner } => {
                self.queue.insert(id.as_str(), ()).map_err(write_failed)?;
                effects.push(Effect::Queued {
                    id: id.clone(),
                    workflow: workflow.clone(),
                    run_at: *run_at,
                    owner: *owner,
                });
            }
            Op::Dequeue { id } => {
                self.queue.remove(id.as_str()).map_err(write_failed)?;
                effects.push(Effect::Removed { id: id.clone() });
            }
            Op::Release { id, run_at } => effects.push(Effect::Released { id: id.clone(), run_at: *run_at }),
            Op::TakeIdempotency { workflow, key, execution_id, record, now, .. } => {
                let held = match self.idempotency.get((workflow.as_str(), key.as_str())).map_err(write_failed)? {
                    Some(value) => Some(decode::<IdempotencyRecord>("idempotency", value.value())?),
                    None => None,
                };
                if let Some(held) = held.filter(|held| held.expires_at.0 > *now && held.execution_id != *execution_id) {
                    let stored = self.executions.get(held.execution_id.as_str()).map_err(write_failed)?.is_some();
                    if held.pending || stored {
                        return Ok(Some(Applied::Duplicate(held.execution_id)));
                    }
                }
                self.idempotency.insert((workflow.as_str(), key.as_str()), record.as_slice()).map_err(write_failed)?;
            }
            Op::PutIdempotency { workflow, key, record, .. } => {
                self.idempotency.insert((workflow.as_str(), key.as_str()), record.as_slice()).map_err(write_failed)?;
            }
            Op::DeleteIdempotency { workflow, key } => {
                self.idempotency.remove((workflow.as_str(), key.as_str())).map_err(write_failed)?;
            }
            Op::PutReply { id, record } => {
                drop(self.replies.insert(id.as_str(), record.as_slice()).map_err(write_failed)?)
            }
            Op::DeleteReply { id } => drop(self.replies.remove(id.as_str()).map_err(write_failed)?),
            Op::CancelUnclaimed { id, workflow, record } => {
                if !shared.queue().begin_cancel(id) {
                    return Ok(Some(Applied::Skipped));
                }
                canceling.push(id.clone());
                self.queue.remove(id.as_str()).map_err(write_failed)?;
                self.index.put(id, workflow, ExecutionStatus::Canceled.as_str())?;
                self.executions.insert(id.as_str(), record.as_slice()).map_err(write_failed)?;
                self.jobs.retain_in((id.as_str(), 0)..=(id.as_str(), u32::MAX), |_, _| false).map_err(write_failed)?;
                effects.push(Effect::Removed { id: id.clone() });
            }
            Op::PutRefusal { id, workflow, code: _, record, keep } => {
                let tables = match &mut self.refusals {
                    Some(tables) => tables,
                    None => self.refusals.insert(RefusalTables::open(self.txn)?),
                };
                tables.put(id, workflow, record, *keep)?;
            }
            Op::PutActivity { workflow, minute, writer, record } => {
                let mut activity = self.txn.open_table(ACTIVITY).map_err(write_failed)?;
                activity
                    .insert((workflow.as_str(), *minute, writer.as_str()), record.as_slice())
                    .map_err(write_failed)?;
                let mut by_minute = self.txn.open_table(ACTIVITY_BY_MINUTE).map_err(write_failed)?;
                by_minute.insert((*minute, workflow.as_str(), writer.as_str()), ()).map_err(write_failed)?;
            }
            Op::DeleteActivityBefore { minute } => {
                let mut by_minute = self.txn.open_table(ACTIVITY_BY_MINUTE).map_err(write_failed)?;
                let mut old = Vec::new();
                for entry in by_minute.range((0, "", "")..(*minute, "", "")).map_err(write_failed)? {
                    let (key, _) = entry.map_err(write_failed)?;
                    let (minute, workflow, writer) = key.value();
                    old.push((minute, workflow.to_string(), writer.to_string()));
                }
                let mut activity = self.txn.open_table(ACTIVITY).map_err(write_failed)?;
                for (minute, workflow, writer) in &old {
                    by_minute.remove((*minute, workflow.as_str(), writer.as_str())).map_err(write_failed)?;
                    activity.remove((workflow.as_str(), *minute, writer.as_str())).map_err(write_failed)?;
                }
            }
            Op::RequestCancel { id, now } => {
                if !shared.queue().contains(id) {
                    return Ok(Some(Applied::Skipped));
                }
                effects.push(Effect::CancelRequested { id: id.clone(), now: *now });
            }
        }
        Ok(None)
    }
}

/// The execution indexes of one write transaction: by workflow, by status, by both, and what
/// each execution is indexed as (so a status change moves its entries).
pub(crate) struct Index<'txn> {
    by_workflow: redb::Table<'txn, (&'static str, &'static str), ()>,
    by_status: redb::Table<'txn, (&'static str, &'static str), ()>,
    by_workflow_status: redb::Table<'txn, (&'static str, &'static str, &'static str), ()>,
    indexed: redb::Table<'txn, &'static str, (&'static str, &'static str)>,
}

impl<'txn> Index<'txn> {
    /// Opens the index tables in `txn`.
    pub(crate) fn open(txn: &'txn redb::WriteTransaction) -> Result<Index<'txn>, StoreError> {
        Ok(Index {
            by_workflow: txn.open_table(BY_WORKFLOW).map_err(write_failed)?,
            by_status: txn.open_table(BY_STATUS).map_err(write_failed)?,
            by_workflow_status: txn.open_table(BY_WORKFLOW_STATUS).map_err(write_failed)?,
            indexed: txn.open_table(INDEXED).map_err(write_failed)?,
        })
    }

    /// Indexes an execution under its workflow and (current) status.
    pub(crate) fn put(&mut self, id: &str, workflow: &str, status: &str) -> Result<(), StoreError> {
        let before = self.indexed(id)?;
        if before.as_ref().is_some_and(|(w, s)| w == workflow && s == status) {
            return Ok(());
        }
        // A status change (the usual update) leaves the entry by workflow where it is.
        let same_workflow = before.as_ref().is_some_and(|(old_workflow, _)| old_workflow == workflow);
        if let Some((old_workflow, old_status)) = before {
            self.by_status.remove((old_status.as_str(), id)).map_err(write_failed)?;
            self.by_workflow_status.remove((old_workflow.as_str(), old_status.as_str(), id)).map_err(write_failed)?;
            if !same_workflow {
                self.by_workflow.remove((old_workflow.as_str(), id)).map_err(write_failed)?;
            }
        }
        if !same_workflow {
            self.by_workflow.insert((workflow, id), ()).map_err(write_failed)?;
        }
        self.by_status.insert((status, id), ()).map_err(write_failed)?;
        self.by_workflow_status.insert((workflow, status, id), ()).map_err(write_failed)?;
        self.indexed.insert(id, (workflow, status)).map_err(write_failed)?;
        Ok(())
    }

    /// Forgets an execution's index entries.
    pub(crate) fn remove(&mut self, id: &str) -> Result<(), StoreError> {
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
