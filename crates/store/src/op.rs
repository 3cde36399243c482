//! The writes both backends apply: each [`Op`] is one change with one meaning, built (records
//! encoded) once by the boundary in `lib.rs` and applied by the backend's writer, which folds the
//! pending requests into one transaction (group commit).
//!
//! Some ops decide whether the rest of their request applies (an idempotency key held by another
//! execution, a workflow changed since it was read, an execution someone holds); a request may
//! also be fenced: applied only while an owner holds the claim on an execution. What became of a
//! request is its [`Applied`].

use tokio::sync::oneshot;

use crate::{Owner, StoreError};

/// One change to the database.
#[derive(Debug)]
pub(crate) enum Op {
    /// Stores a workflow's current record, if the stored one is at version `expected` (`None`:
    /// there is none); otherwise the rest of the request is skipped ([`Applied::Conflict`]).
    PutWorkflow { key: String, version: u64, record: Vec<u8>, expected: Option<u64> },
    /// Forgets a workflow's current record (its versions stay).
    DeleteWorkflow { key: String },
    /// Stores a version's definition, unless that version is stored already.
    PutWorkflowVersion { key: String, version: u64, definition: Vec<u8> },
    /// Stores an uploaded component.
    PutPlugin { name: String, digest: String, component: Vec<u8> },
    /// Forgets an uploaded component.
    DeletePlugin { name: String },
    /// Writes an execution's whole record (and what it is indexed under).
    PutExecution { id: String, workflow: String, status: &'static str, record: Vec<u8> },
    /// Deletes an execution's record.
    DeleteExecution { id: String },
    /// Writes one job of a running execution.
    PutJob { id: String, index: u32, record: Vec<u8> },
    /// Deletes an execution's job-by-job progress.
    DeleteJobs { id: String },
    /// Puts an async execution on the queue, held by `owner` or free to claim, due at `run_at`.
    Enqueue { id: String, workflow: String, run_at: u64, owner: Option<Owner> },
    /// Takes an execution off the queue.
    Dequeue { id: String },
    /// Puts a held execution back on the queue, free to claim from `run_at` (a delay node holds
    /// it until then).
    Release { id: String, run_at: u64 },
    /// Takes an idempotency key for an execution unless it holds another execution's: one that
    /// has not expired by `now` and is either pending (a sync execution still running) or names
    /// an execution that is still stored (a deleted one frees its key). Then the rest of the
    /// request is skipped ([`Applied::Duplicate`]).
    TakeIdempotency {
        workflow: String,
        key: String,
        execution_id: String,
        record: Vec<u8>,
        expires_at: u64,
        pending: bool,
        now: u64,
    },
    /// Stores an idempotency key (replacing what it held).
    PutIdempotency {
        workflow: String,
        key: String,
        execution_id: String,
        record: Vec<u8>,
        expires_at: u64,
        pending: bool,
    },
    /// Forgets an idempotency key.
    DeleteIdempotency { workflow: String, key: String },
    /// Keeps the answer a sync caller got.
    PutReply { id: String, record: Vec<u8> },
    /// Forgets a kept answer.
    DeleteReply { id: String },
    /// Ends an execution that is on the queue, held by no one and not waiting in a delay: writes
    /// its canceled record, deletes its job-by-job progress and takes it off the queue;
    /// otherwise nothing ([`Applied::Skipped`]).
    CancelUnclaimed { id: String, workflow: String, record: Vec<u8> },
    /// Stores one process's count of one workflow's minute (replacing its earlier one).
    PutActivity { workflow: String, minute: u64, writer: String, record: Vec<u8> },
    /// Forgets the activity of the minutes before `minute`.
    DeleteActivityBefore { minute: u64 },
    /// Logs a refused trigger request, then drops the workflow's oldest past `keep`.
    PutRefusal { id: String, workflow: String, code: String, record: Vec<u8>, keep: u64 },
    /// Asks whoever runs a queued execution to cancel it; one waiting in a delay becomes due at
    /// `now`, so it is claimed and canceled. Nothing when it is not on the queue
    /// ([`Applied::Skipped`]).
    RequestCancel { id: String, now: u64 },
}

/// The claim a fenced request depends on.
#[derive(Debug, Clone)]
pub(crate) struct Fence {
    /// The execution.
    pub id: String,
    /// Who must hold it.
    pub owner: Owner,
}

/// Writes to apply together.
#[derive(Debug)]
pub(crate) struct Request {
    pub ops: Vec<Op>,
    /// Applied only while this claim holds ([`Applied::Fenced`] otherwise).
    pub fence: Option<Fence>,
    /// Whether the transaction holding it must be durable (fsync) before anyone hears back.
    pub durable: bool,
    /// Present when the caller wants to hear when (and how) it was applied.
    pub done: Option<oneshot::Sender<Result<Applied, StoreError>>>,
}

impl Request {
    /// A request nobody waits for.
    pub(crate) fn background(ops: Vec<Op>, durable: bool) -> Request {
        Request { ops, fence: None, durable, done: None }
    }
}

/// What became of a request that was committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Every op was applied.
    Done,
    /// A workflow had changed since it was read: nothing was written.
    Conflict,
    /// The idempotency key is held for another execution (its id): nothing else was written.
    Duplicate(String),
    /// The owner no longer holds the claim: nothing was written.
    Fenced,
    /// The execution was not in the state the op applies to: nothing was written.
    Skipped,
}
