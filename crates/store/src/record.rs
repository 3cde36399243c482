//! The stored records: what the values of the execution, job and reply tables hold (JSON), the
//! same bytes in both backends. They are the store's own types, apart from the domain types and
//! the admin API's views, so a change to either cannot change the format unnoticed;
//! `tests/golden.rs` reads a database written in each format this version still reads.

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use hookflow_workflow::timestamp::Timestamp;
use hookflow_workflow::{Execution, ExecutionStatus, FIRST_ATTEMPT, Job, JobStatus, Next, Reply, TriggerText};

use crate::StoreError;

/// The format of the records this version writes, kept in the database (redb's `meta` table,
/// PostgreSQL's `hookflow_meta`). A database of a newer format is refused at open (so an older
/// hookflow never misreads it); a redb file without the entry was written before the format was
/// numbered, in format 1.
pub const FORMAT_VERSION: u64 = 1;

/// An execution with the jobs it had when last written whole (table `executions`).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExecutionRecord<'a> {
    id: Cow<'a, str>,
    workflow: Cow<'a, str>,
    version: u64,
    status: ExecutionStatus,
    trigger: RecordTrigger<'a>,
    created_at: Timestamp,
    finished_at: Option<Timestamp>,
    jobs: Vec<JobRecord<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<Cow<'a, str>>,
    // Added within format 1: absent (their defaults) in every record written before them, and in
    // records that never needed them.
    #[serde(default = "first_attempt", skip_serializing_if = "is_first_attempt")]
    attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    dead_letter: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rerun_as: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failure_of: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    test: bool,
}

fn first_attempt() -> u32 {
    FIRST_ATTEMPT
}

/// An execution record's trigger data: written as the execution's kept JSON text (the same
/// bytes serialising the value gives), read as a value.
pub(crate) enum RecordTrigger<'a> {
    Text(Arc<RawValue>),
    Value(Cow<'a, Value>),
}

impl RecordTrigger<'_> {
    fn into_value(self) -> Value {
        match self {
            RecordTrigger::Text(text) => serde_json::from_str(text.get()).unwrap_or(Value::Null),
            RecordTrigger::Value(value) => value.into_owned(),
        }
    }
}

impl Serialize for RecordTrigger<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            RecordTrigger::Text(text) => text.serialize(serializer),
            RecordTrigger::Value(value) => value.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for RecordTrigger<'_> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(|value| RecordTrigger::Value(Cow::Owned(value)))
    }
}

fn is_first_attempt(attempt: &u32) -> bool {
    *attempt == FIRST_ATTEMPT
}

impl<'a> ExecutionRecord<'a> {
    /// The record of `execution`, borrowing from it.
    pub(crate) fn of(execution: &'a Execution) -> ExecutionRecord<'a> {
        ExecutionRecord {
            id: Cow::Borrowed(&execution.id),
            workflow: Cow::Borrowed(&execution.workflow),
            version: execution.version,
            status: execution.status,
            trigger: RecordTrigger::Text(execution.trigger_json()),
            created_at: execution.created_at,
            finished_at: execution.finished_at,
            jobs: execution.jobs.iter().map(JobRecord::of).collect(),
            error: execution.error.as_deref().map(Cow::Borrowed),
            attempt: execution.attempt,
            retry_at: execution.retry_at,
            dead_letter: execution.dead_letter,
            rerun_as: execution.rerun_as.as_deref().map(Cow::Borrowed),
            failure_of: execution.failure_of.as_deref().map(Cow::Borrowed),
            test: execution.test,
        }
    }

    /// The workflow and status it is indexed under.
    pub(crate) fn index_entry(&self) -> (&str, ExecutionStatus) {
        (&self.workflow, self.status)
    }

    /// The execution it records.
    pub(crate) fn into_execution(self) -> Execution {
        Execution {
            id: self.id.into_owned(),
            workflow: self.workflow.into_owned(),
            version: self.version,
            status: self.status,
            trigger: self.trigger.into_value(),
            created_at: self.created_at,
            finished_at: self.finished_at,
            jobs: self.jobs.into_iter().map(JobRecord::into_job).collect(),
            error: self.error.map(Cow::into_owned),
            attempt: self.attempt,
            retry_at: self.retry_at,
            dead_letter: self.dead_letter,
            rerun_as: self.rerun_as.map(Cow::into_owned),
            failure_of: self.failure_of.map(Cow::into_owned),
            test: self.test,
            trigger_text: TriggerText::default(),
        }
    }
}

/// One node run (table `jobs` while its execution runs, and inside [`ExecutionRecord`]).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JobRecord<'a> {
    node_key: Cow<'a, str>,
    #[serde(rename = "type")]
    node_type: Cow<'a, str>,
    status: JobStatus,
    input: Cow<'a, Value>,
    output: Cow<'a, Value>,
    error: Option<Cow<'a, str>>,
    started_at: Timestamp,
    finished_at: Timestamp,
    #[serde(default, skip_serializing_if = "goes_on")]
    next: Cow<'a, Next>,
}

fn goes_on(next: &Next) -> bool {
    *next == Next::Continue
}

impl<'a> JobRecord<'a> {
    /// The record of `job`, borrowing from it.
    pub(crate) fn of(job: &'a Job) -> JobRecord<'a> {
        JobRecord {
            node_key: Cow::Borrowed(&job.node_key),
            node_type: Cow::Borrowed(&job.node_type),
            status: job.status,
            input: Cow::Borrowed(&job.input),
            output: Cow::Borrowed(&job.output),
            error: job.error.as_deref().map(Cow::Borrowed),
            started_at: job.started_at,
            finished_at: job.finished_at,
            next: Cow::Borrowed(&job.next),
        }
    }

    /// The job it records.
    pub(crate) fn into_job(self) -> Job {
        Job {
            node_key: self.node_key.into_owned(),
            node_type: self.node_type.into_owned(),
            status: self.status,
            input: self.input.into_owned(),
            output: self.output.into_owned(),
            error: self.error.map(Cow::into_owned),
            started_at: self.started_at,
            finished_at: self.finished_at,
            next: self.next.into_owned(),
        }
    }
}

/// The HTTP answer a sync caller got (table `replies`), its body in base64.
#[derive(Serialize, Deserialize)]
pub(crate) struct ReplyRecord<'a> {
    status: u16,
    headers: Cow<'a, [(String, String)]>,
    #[serde(with = "base64_bytes")]
    body: Cow<'a, [u8]>,
}

impl<'a> ReplyRecord<'a> {
    /// The record of `reply`, borrowing from it.
    pub(crate) fn of(reply: &'a Reply) -> ReplyRecord<'a> {
        ReplyRecord { status: reply.status, headers: Cow::Borrowed(&reply.headers), body: Cow::Borrowed(&reply.body) }
    }

    /// The reply it records.
    pub(crate) fn into_reply(self) -> Reply {
        Reply { status: self.status, headers: self.headers.into_owned(), body: self.body.into_owned() }
    }
}

/// Bytes as a base64 string in JSON.
mod base64_bytes {
    use std::borrow::Cow;

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Cow<'static, [u8]>, D::Error> {
        let text = Cow::<str>::deserialize(deserializer)?;
        STANDARD.decode(text.as_bytes()).map(Cow::Owned).map_err(serde::de::Error::custom)
    }
}

/// A record's bytes for `table`.
pub(crate) fn encode(table: &'static str, value: &impl Serialize) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|error| StoreError::Encode { table, source: Arc::new(error) })
}

/// Decodes a record whatever its nesting: serde_json's recursion limit is lifted and the stack
/// grows on the heap as needed, so everything [`encode`] wrote reads back.
pub(crate) fn decode<T: for<'de> Deserialize<'de>>(table: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    let corrupt = |e: serde_json::Error| StoreError::Corrupt { table, source: Arc::new(e) };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    deserializer.disable_recursion_limit();
    let value = T::deserialize(serde_stacker::Deserializer::new(&mut deserializer)).map_err(corrupt)?;
    deserializer.end().map_err(corrupt)?;
    Ok(value)
}

/// An execution from its stored record, or [`Execution::unreadable`] when it does not decode.
pub(crate) fn execution_of(id: &str, bytes: &[u8]) -> Execution {
    decode("executions", bytes)
        .map(ExecutionRecord::into_execution)
        .unwrap_or_else(|error| Execution::unreadable(id, error.to_string()))
}

/// Lays jobs recorded one by one while an execution runs over its whole record (which may hold
/// a delay job as `pending` that has since resolved): each replaces the one at its index.
pub(crate) fn merge_jobs(mut execution: Execution, jobs: impl IntoIterator<Item = (u32, Vec<u8>)>) -> Execution {
    for (index, bytes) in jobs {
        let index = usize::try_from(index).unwrap_or(usize::MAX);
        let job = match decode("jobs", &bytes) {
            Ok(record) => JobRecord::into_job(record),
            Err(error) => return Execution::unreadable(&execution.id, format!("job {index}: {error}")),
        };
        match execution.jobs.get_mut(index) {
            Some(slot) => *slot = job,
            None => execution.jobs.push(job),
        }
    }
    execution
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trigger_written_from_its_kept_text_has_the_bytes_of_its_value() {
        let trigger = serde_json::json!({"headers": {"x-b": "1"}, "query": {}, "body": {"z": 1.5, "a": [1, "é\"\n", null], "m": 1e300}});
        let execution = Execution::new(ulid::Ulid::new(), "w", 1, trigger);
        let from_text = serde_json::to_vec(&ExecutionRecord::of(&execution)).unwrap();
        let mut from_value = ExecutionRecord::of(&execution);
        from_value.trigger = RecordTrigger::Value(Cow::Borrowed(&execution.trigger));
        assert_eq!(
            String::from_utf8(from_text).unwrap(),
            String::from_utf8(serde_json::to_vec(&from_value).unwrap()).unwrap()
        );
    }
}
