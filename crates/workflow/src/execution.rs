//! Execution records: one run of a workflow for one request, and its jobs.

use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::timestamp::Timestamp;

/// One run of a workflow for one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    /// Sortable unique id (a ULID).
    pub id: String,
    /// The workflow's key.
    pub workflow: String,
    /// The workflow version the execution runs against.
    pub version: u64,
    /// Where the execution stands.
    pub status: ExecutionStatus,
    /// The trigger data: `{"headers", "query", "body"}`.
    pub trigger: Value,
    /// When the request was accepted.
    pub created_at: Timestamp,
    /// When the execution ended.
    pub finished_at: Option<Timestamp>,
    /// One entry per node run, in order.
    pub jobs: Vec<Job>,
    /// Why the execution ended `error` when no single node is to blame (a limit
    /// named in it, such as `execution exceeded --max-jobs (10000)`), or why its record is `unreadable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Which run this is: 1 for the first, one more for each retry (`options.retry`).
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// When the next attempt runs, while the execution waits for it (`queued`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<Timestamp>,
    /// Its last attempt failed: it is not retried again (a redrive may re-run it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dead_letter: bool,
    /// The execution that re-ran it (a rerun or a redrive); a redrive does not match it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_as: Option<String>,
    /// The failed execution whose workflow's `options.onFailure` started this one (such an
    /// execution starts no failure hook itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_of: Option<String>,
    /// Started by a test run (`POST /api/workflows/{key}/test`), not by a sender.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub test: bool,
    /// `trigger` as JSON text, written the first time it is needed: every node's context and
    /// every record write of the execution splice the same text instead of serialising the
    /// trigger again. Reset by whoever changes `trigger` after a run (see [`Self::set_trigger`]).
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub trigger_text: TriggerText,
}

/// The trigger's JSON text, kept once written (see [`Execution::trigger_json`]). Two executions
/// compare equal whatever their caches hold.
#[derive(Debug, Clone, Default)]
pub struct TriggerText(OnceLock<Arc<RawValue>>);

impl PartialEq for TriggerText {
    fn eq(&self, _: &TriggerText) -> bool {
        true
    }
}

/// The number of an execution's first run.
pub const FIRST_ATTEMPT: u32 = 1;

fn first_attempt() -> u32 {
    FIRST_ATTEMPT
}

/// Where new execution ids come from: ULIDs of the current time, each greater than the one
/// before (random bits counted up within a millisecond; a fresh random one in the unlikely case
/// they overflow), so "newest first" holds within a millisecond too.
#[derive(Default)]
pub struct ExecutionIds {
    generator: std::sync::Mutex<ulid::Generator>,
}

impl ExecutionIds {
    /// The next id, of the time `now`.
    pub fn next(&self, now: Timestamp) -> ulid::Ulid {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(now.0);
        let mut generator = self.generator.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        generator.generate_from_datetime(time).unwrap_or_else(|_| ulid::Ulid::from_datetime(time))
    }
}

impl Execution {
    /// A new `queued` execution with the id `id`, created at the id's time (so a time range is
    /// a range of ids).
    pub fn new(id: ulid::Ulid, workflow: &str, version: u64, trigger: Value) -> Execution {
        Execution {
            id: id.to_string(),
            workflow: workflow.to_string(),
            version,
            status: ExecutionStatus::Queued,
            trigger,
            created_at: Timestamp(id.timestamp_ms()),
            finished_at: None,
            jobs: Vec::new(),
            error: None,
            attempt: FIRST_ATTEMPT,
            retry_at: None,
            dead_letter: false,
            rerun_as: None,
            failure_of: None,
            test: false,
            trigger_text: TriggerText::default(),
        }
    }

    /// The trigger as JSON text, serialised on first use and kept.
    pub fn trigger_json(&self) -> Arc<RawValue> {
        self.trigger_text
            .0
            .get_or_init(|| {
                // A `Value` always serialises; `null` stands in should that ever change.
                serde_json::value::to_raw_value(&self.trigger).unwrap_or_default().into()
            })
            .clone()
    }

    /// Replaces the trigger data (and forgets its JSON text).
    pub fn set_trigger(&mut self, trigger: Value) {
        self.trigger = trigger;
        self.trigger_text = TriggerText::default();
    }

    /// What a listing shows for a stored record that does not decode: its id, the time in its
    /// id, status `unreadable` and why; such a record can be deleted.
    pub fn unreadable(id: &str, reason: String) -> Execution {
        let created_at = ulid::Ulid::from_string(id).map_or(Timestamp(0), |ulid| Timestamp(ulid.timestamp_ms()));
        Execution {
            id: id.to_string(),
            workflow: String::new(),
            version: 0,
            status: ExecutionStatus::Unreadable,
            trigger: Value::Null,
            created_at,
            finished_at: None,
            jobs: Vec::new(),
            error: Some(reason),
            attempt: FIRST_ATTEMPT,
            retry_at: None,
            dead_letter: false,
            rerun_as: None,
            failure_of: None,
            test: false,
            trigger_text: TriggerText::default(),
        }
    }
}

/// One node run within an execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// The node's key.
    pub node_key: String,
    /// The node's type.
    #[serde(rename = "type")]
    pub node_type: String,
    /// How the run ended.
    pub status: JobStatus,
    /// The node's config with templates resolved.
    pub input: Value,
    /// The node's output (`null` when it produced none).
    pub output: Value,
    /// Why the run failed, when it did.
    pub error: Option<String>,
    /// When the call started.
    pub started_at: Timestamp,
    /// When the call returned.
    pub finished_at: Timestamp,
    /// Where the execution went after this job; lets a resumed execution replay it.
    #[serde(default, skip_serializing_if = "Next::is_continue")]
    pub next: Next,
}

/// Where an execution went after a job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Next {
    /// On to the next node (also after a failed job, whose status ends the execution).
    #[default]
    Continue,
    /// Into the named branch.
    Branch(String),
    /// The node ended the execution.
    End,
}

impl Next {
    fn is_continue(&self) -> bool {
        *self == Next::Continue
    }
}

/// Execution statuses, as NocoBase names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ExecutionStatus {
    /// Accepted, waiting for a worker.
    Queued,
    /// Running.
    Started,
    /// Ended successfully.
    Resolved,
    /// Ended by a deliberate failure (a rejecting condition, an `end` with failure).
    Failed,
    /// Ended because a node errored or trapped.
    Error,
    /// Ended because a time limit ran out.
    Aborted,
    /// Ended by an operator.
    Canceled,
    /// Its stored record does not decode; it can only be deleted.
    Unreadable,
}

impl ExecutionStatus {
    /// Whether the execution has ended.
    pub fn is_final(self) -> bool {
        !matches!(self, ExecutionStatus::Queued | ExecutionStatus::Started)
    }

    /// The lower-case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Queued => "queued",
            ExecutionStatus::Started => "started",
            ExecutionStatus::Resolved => "resolved",
            ExecutionStatus::Failed => "failed",
            ExecutionStatus::Error => "error",
            ExecutionStatus::Aborted => "aborted",
            ExecutionStatus::Canceled => "canceled",
            ExecutionStatus::Unreadable => "unreadable",
        }
    }
}

/// Job statuses, as NocoBase names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Not finished.
    Pending,
    /// Ran successfully.
    Resolved,
    /// Ended the execution deliberately as failed.
    Failed,
    /// Errored or trapped.
    Error,
    /// Ran past its time budget.
    Aborted,
    /// Stopped by an operator.
    Canceled,
}
