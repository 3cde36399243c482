//! The statements the PostgreSQL writer runs, one or two per [`Op`], and their parameters.
//!
//! A fenced request's statements each hold `EXISTS (… queue WHERE id = $1 AND owner = …)`
//! (its first statement locks that queue row, so the claim cannot move under it); the
//! statements after a `TakeIdempotency` hold `EXISTS (… idempotency … execution_id = $1)`, so
//! nothing of an execution whose key another holds is written. Every statement can be applied
//! again without harm (upserts, conditional deletes), which is what a retry after a lost
//! connection does.

use std::error::Error;

use bytes::BytesMut;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use crate::Owner;
use crate::op::Op;

/// A statement's parameter, borrowed from its op where it can be.
#[derive(Debug)]
pub(crate) enum Param<'a> {
    Text(&'a str),
    Bytes(&'a [u8]),
    BigInt(i64),
    Int(i32),
    NullableBigInt(Option<i64>),
    Bool(bool),
}

impl ToSql for Param<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self {
            Param::Text(text) => text.to_sql(ty, out),
            Param::Bytes(bytes) => bytes.to_sql(ty, out),
            Param::BigInt(value) => value.to_sql(ty, out),
            Param::Int(value) => value.to_sql(ty, out),
            Param::NullableBigInt(value) => value.to_sql(ty, out),
            Param::Bool(value) => value.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        <&str as ToSql>::accepts(ty)
            || <&[u8] as ToSql>::accepts(ty)
            || <i64 as ToSql>::accepts(ty)
            || <i32 as ToSql>::accepts(ty)
            || <bool as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

/// What a statement's result says about its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Nothing to check.
    Plain,
    /// No row: the owner does not hold the claim ([`crate::Applied::Fenced`]).
    Fence,
    /// No row changed: the workflow had changed ([`crate::Applied::Conflict`]).
    Conflict,
    /// Returns the key's holder: another execution than this one ([`crate::Applied::Duplicate`]).
    KeyHolder,
    /// No row changed: the execution was not in the state the op applies to
    /// ([`crate::Applied::Skipped`]).
    Skip,
}

/// One statement to run.
#[derive(Debug)]
pub(crate) struct Statement<'a> {
    pub sql: &'static str,
    pub params: Vec<Param<'a>>,
    pub role: Role,
    /// Whether it returns rows (a query) or a count of changed rows.
    pub query: bool,
}

impl<'a> Statement<'a> {
    fn plain(sql: &'static str, params: Vec<Param<'a>>) -> Statement<'a> {
        Statement { sql, params, role: Role::Plain, query: false }
    }

    fn checked(sql: &'static str, params: Vec<Param<'a>>, role: Role) -> Statement<'a> {
        Statement { sql, params, role, query: matches!(role, Role::Fence | Role::KeyHolder | Role::Skip) }
    }

    /// The parameters as tokio-postgres takes them.
    pub(crate) fn values(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params.iter().map(|param| param as &(dyn ToSql + Sync)).collect()
    }
}

/// The channel nodes hear queued work on.
pub(crate) const QUEUE_CHANNEL: &str = "hookflow_queue";
/// The channel nodes hear workflow changes on (payload: the key).
pub(crate) const CATALOG_CHANNEL: &str = "hookflow_catalog";
/// The channel nodes hear component changes on (payload: the name).
pub(crate) const PLUGINS_CHANNEL: &str = "hookflow_plugins";
/// The channel nodes hear cancel requests on (payload: the execution id).
pub(crate) const CANCEL_CHANNEL: &str = "hookflow_cancel";

pub(crate) const NOTIFY: &str = "SELECT pg_notify($1, $2)";
const FENCE: &str = "SELECT 1 FROM hookflow.queue WHERE id = $1 AND owner = $2 FOR UPDATE";
const PUT_WORKFLOW_NEW: &str =
    "INSERT INTO hookflow.workflows (key, version, record) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING";
const PUT_WORKFLOW_AT: &str = "UPDATE hookflow.workflows SET version = $2, record = $3 WHERE key = $1 AND version = $4";
const PUT_WORKFLOW_VERSION: &str = "INSERT INTO hookflow.workflow_versions (key, version, definition) \
     SELECT $1::text, $2::bigint, $3::bytea WHERE EXISTS (SELECT 1 FROM hookflow.workflows WHERE key = $1 AND version = $2) \
     ON CONFLICT (key, version) DO NOTHING";
const DELETE_WORKFLOW: &str = "DELETE FROM hookflow.workflows WHERE key = $1";
const PUT_PLUGIN: &str = "INSERT INTO hookflow.plugins (name, digest, component) VALUES ($1, $2, $3) \
     ON CONFLICT (name) DO UPDATE SET digest = EXCLUDED.digest, component = EXCLUDED.component";
const DELETE_PLUGIN: &str = "DELETE FROM hookflow.plugins WHERE name = $1";
const PUT_EXECUTION: &str = "INSERT INTO hookflow.executions (id, workflow, status, record) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (id) DO UPDATE SET workflow = EXCLUDED.workflow, status = EXCLUDED.status, record = EXCLUDED.record";
const PUT_EXECUTION_FENCED: &str = "INSERT INTO hookflow.executions (id, workflow, status, record) \
     SELECT $1::text, $2::text, $3::text, $4::bytea WHERE EXISTS (SELECT 1 FROM hookflow.queue WHERE id = $1 AND owner = $5) \
     ON CONFLICT (id) DO UPDATE SET workflow = EXCLUDED.workflow, status = EXCLUDED.status, record = EXCLUDED.record";
const PUT_EXECUTION_FENCED_BY: &str = "INSERT INTO hookflow.executions (id, workflow, status, record) \
     SELECT $1::text, $2::text, $3::text, $4::bytea WHERE EXISTS (SELECT 1 FROM hookflow.queue WHERE id = $5 AND owner = $6) \
     ON CONFLICT (id) DO UPDATE SET workflow = EXCLUDED.workflow, status = EXCLUDED.status, record = EXCLUDED.record";
const PUT_EXECUTION_KEYED: &str = "INSERT INTO hookflow.executions (id, workflow, status, record) \
     SELECT $1::text, $2::text, $3::text, $4::bytea \
     WHERE EXISTS (SELECT 1 FROM hookflow.idempotency WHERE workflow = $5 AND key = $6 AND execution_id = $7) \
     ON CONFLICT (id) DO UPDATE SET workflow = EXCLUDED.workflow, status = EXCLUDED.status, record = EXCLUDED.record";
const DELETE_EXECUTION: &str = "DELETE FROM hookflow.executions WHERE id = $1";
const DELETE_EXECUTION_FENCED: &str = "DELETE FROM hookflow.executions WHERE id = $1 \
     AND EXISTS (SELECT 1 FROM hookflow.queue WHERE id = $1 AND owner = $2)";
const PUT_JOB: &str = "INSERT INTO hookflow.jobs (execution_id, idx, record) VALUES ($1, $2, $3) \
     ON CONFLICT (execution_id, idx) DO UPDATE SET record = EXCLUDED.record";
const PUT_JOB_FENCED: &str = "INSERT INTO hookflow.jobs (execution_id, idx, record) \
     SELECT $1::text, $2::integer, $3::bytea WHERE EXISTS (SELECT 1 FROM hookflow.queue WHERE id = $1 AND owner = $4) \
     ON CONFLICT (execution_id, idx) DO UPDATE SET record = EXCLUDED.record";
const DELETE_JOBS: &str = "DELETE FROM hookflow.jobs WHERE execution_id = $1";
const DELETE_JOBS_FENCED: &str = "DELETE FROM hookflow.jobs WHERE execution_id = $1 \
     AND EXISTS (SELECT 1 FROM hookflow.queue WHERE id = $1 AND owner = $2)";
const ENQUEUE: &str =
    "INSERT INTO hookflow.queue (id, workflow, run_at, owner) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING";
const ENQUEUE_KEYED: &str = "INSERT INTO hookflow.queue (id, workflow, run_at, owner) \
     SELECT $1::text, $2::text, $3::bigint, $4::bigint \
     WHERE EXISTS (SELECT 1 FROM hookflow.idempotency WHERE workflow = $5 AND key = $6 AND execution_id = $7) \
     ON CONFLICT (id) DO NOTHING";
const ENQUEUE_FENCED_BY: &str = "INSERT INTO hookflow.queue (id, workflow, run_at, owner) \
     SELECT $1::text, $2::text, $3::bigint, $4::bigint \
     WHERE EXISTS (SELECT 1 FROM hookflow.queue WHERE id = $5 AND owner = $6) \
     ON CONFLICT (id) DO NOTHING";
const DEQUEUE: &str = "DELETE FROM hookflow.queue WHERE id = $1";
const DEQUEUE_FENCED: &str = "DELETE FROM hookflow.queue WHERE id = $1 AND owner = $2";
const RELEASE: &str = "UPDATE hookflow.queue SET owner = NULL, run_at = $2, waiting = true WHERE id = $1";
const RELEASE_FENCED: &str =
    "UPDATE hookflow.queue SET owner = NULL, run_at = $2, waiting = true WHERE id = $1 AND owner = $3";
const TAKE_KEY: &str = "INSERT INTO hookflow.idempotency AS held (workflow, key, execution_id, expires_at, pending, record) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (workflow, key) DO UPDATE \
     SET execution_id = EXCLUDED.execution_id, expires_at = EXCLUDED.expires_at, pending = EXCLUDED.pending, record = EXCLUDED.record \
     WHERE held.expires_at <= $7 OR held.execution_id = EXCLUDED.execution_id \
        OR (NOT held.pending AND NOT EXISTS (SELECT 1 FROM hookflow.executions WHERE id = held.execution_id))";
const KEY_HOLDER: &str = "SELECT execution_id FROM hookflow.idempotency WHERE workflow = $1 AND key = $2";
const PUT_KEY: &str = "INSERT INTO hookflow.idempotency (workflow, key, execution_id, expires_at, pending, record) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (workflow, key) DO UPDATE \
     SET execution_id = EXCLUDED.execution_id, expires_at = EXCLUDED.expires_at, pending = EXCLUDED.pending, record = EXCLUDED.record";
const DELETE_KEY: &str = "DELETE FROM hookflow.idempotency WHERE workflow = $1 AND key = $2";
const PUT_REPLY: &str = "INSERT INTO hookflow.replies (execution_id, record) VALUES ($1, $2) \
     ON CONFLICT (execution_id) DO UPDATE SET record = EXCLUDED.record";
const DELETE_REPLY: &str = "DELETE FROM hookflow.replies WHERE execution_id = $1";
const CANCEL_UNCLAIMED: &str = "WITH gone AS (DELETE FROM hookflow.queue WHERE id = $1 AND owner IS NULL AND NOT waiting RETURNING id), \
     canceled AS (UPDATE hookflow.executions SET status = 'canceled', record = $2 WHERE id IN (SELECT id FROM gone) RETURNING id), \
     progress AS (DELETE FROM hookflow.jobs WHERE execution_id IN (SELECT id FROM gone) RETURNING 1) \
     SELECT id FROM gone";
const PUT_REFUSAL: &str = "WITH inserted AS (INSERT INTO hookflow.refusals (id, workflow, code, record) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING RETURNING workflow) \
     INSERT INTO hookflow.refusal_counts AS counted (workflow, count) SELECT workflow, 1 FROM inserted \
     ON CONFLICT (workflow) DO UPDATE SET count = counted.count + 1";
const TRIM_REFUSALS: &str = "WITH over AS (SELECT count - $2 AS n FROM hookflow.refusal_counts WHERE workflow = $1), \
     gone AS (DELETE FROM hookflow.refusals WHERE id IN (SELECT id FROM hookflow.refusals WHERE workflow = $1 \
        ORDER BY id LIMIT GREATEST(COALESCE((SELECT n FROM over), 0), 0)) RETURNING 1) \
     UPDATE hookflow.refusal_counts SET count = count - (SELECT count(*) FROM gone) WHERE workflow = $1";
const PUT_ACTIVITY: &str = "INSERT INTO hookflow.activity (workflow, minute, writer, record) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (workflow, minute, writer) DO UPDATE SET record = EXCLUDED.record";
const DELETE_ACTIVITY: &str = "DELETE FROM hookflow.activity WHERE minute < $1";
const REQUEST_CANCEL: &str = "UPDATE hookflow.queue SET cancel = true, \
     run_at = CASE WHEN owner IS NULL AND waiting AND run_at > $2 THEN $2 ELSE run_at END \
     WHERE id = $1 RETURNING id";

/// Every statement the writer prepares on each connection.
pub(crate) const ALL: &[&str] = &[
    NOTIFY,
    FENCE,
    PUT_WORKFLOW_NEW,
    PUT_WORKFLOW_AT,
    PUT_WORKFLOW_VERSION,
    DELETE_WORKFLOW,
    PUT_PLUGIN,
    DELETE_PLUGIN,
    PUT_EXECUTION,
    PUT_EXECUTION_FENCED,
    PUT_EXECUTION_FENCED_BY,
    PUT_EXECUTION_KEYED,
    DELETE_EXECUTION,
    DELETE_EXECUTION_FENCED,
    PUT_JOB,
    PUT_JOB_FENCED,
    DELETE_JOBS,
    DELETE_JOBS_FENCED,
    ENQUEUE,
    ENQUEUE_KEYED,
    ENQUEUE_FENCED_BY,
    DEQUEUE,
    DEQUEUE_FENCED,
    RELEASE,
    RELEASE_FENCED,
    TAKE_KEY,
    KEY_HOLDER,
    PUT_KEY,
    DELETE_KEY,
    PUT_REPLY,
    DELETE_REPLY,
    CANCEL_UNCLAIMED,
    REQUEST_CANCEL,
    PUT_REFUSAL,
    TRIM_REFUSALS,
    PUT_ACTIVITY,
    DELETE_ACTIVITY,
];

/// A number for a `bigint` column.
fn big(value: u64) -> Param<'static> {
    Param::BigInt(i64::try_from(value).unwrap_or(i64::MAX))
}

/// The statements of one request, in order: its fence first, then each op's.
pub(crate) fn statements<'a>(ops: &'a [Op], fence: Option<(&'a str, Owner)>) -> Vec<Statement<'a>> {
    let mut out = Vec::with_capacity(ops.len() + 1);
    let owner = fence.map(|(_, owner)| owner.0);
    let fence_id = fence.map(|(id, _)| id);
    if let Some((id, owner)) = fence {
        out.push(Statement::checked(FENCE, vec![Param::Text(id), Param::BigInt(owner.0)], Role::Fence));
    }
    // After a TakeIdempotency: (workflow, key, execution) the request's other writes depend on.
    let mut key: Option<(&str, &str, &str)> = None;
    for op in ops {
        match op {
            Op::PutWorkflow { key: name, version, record, expected } => {
                let mut params = vec![Param::Text(name), big(*version), Param::Bytes(record)];
                let sql = match expected {
                    None => PUT_WORKFLOW_NEW,
                    Some(expected) => {
                        params.push(big(*expected));
                        PUT_WORKFLOW_AT
                    }
                };
                out.push(Statement::checked(sql, params, Role::Conflict));
                out.push(notify(CATALOG_CHANNEL, name));
            }
            Op::DeleteWorkflow { key: name } => {
                out.push(Statement::plain(DELETE_WORKFLOW, vec![Param::Text(name)]));
                out.push(notify(CATALOG_CHANNEL, name));
            }
            Op::PutWorkflowVersion { key: name, version, definition } => out.push(Statement::plain(
                PUT_WORKFLOW_VERSION,
                vec![Param::Text(name), big(*version), Param::Bytes(definition)],
            )),
            Op::PutPlugin { name, digest, component } => {
                out.push(Statement::plain(
                    PUT_PLUGIN,
                    vec![Param::Text(name), Param::Text(digest), Param::Bytes(component)],
                ));
                out.push(notify(PLUGINS_CHANNEL, name));
            }
            Op::DeletePlugin { name } => {
                out.push(Statement::plain(DELETE_PLUGIN, vec![Param::Text(name)]));
                out.push(notify(PLUGINS_CHANNEL, name));
            }
            Op::PutExecution { id, workflow, status, record } => {
                let mut params =
                    vec![Param::Text(id), Param::Text(workflow), Param::Text(status), Param::Bytes(record)];
                let sql = match (owner, fence_id, key) {
                    (Some(owner), Some(fence_id), _) if fence_id == id => {
                        params.push(Param::BigInt(owner));
                        PUT_EXECUTION_FENCED
                    }
                    // Another execution written under this one's claim (a failure hook's).
                    (Some(owner), Some(fence_id), _) => {
                        params.extend([Param::Text(fence_id), Param::BigInt(owner)]);
                        PUT_EXECUTION_FENCED_BY
                    }
                    (_, _, Some((workflow, key, holder))) => {
                        params.extend([Param::Text(workflow), Param::Text(key), Param::Text(holder)]);
                        PUT_EXECUTION_KEYED
                    }
                    _ => PUT_EXECUTION,
                };
                out.push(Statement::plain(sql, params));
            }
            Op::DeleteExecution { id } => {
                out.push(fenced(DELETE_EXECUTION, DELETE_EXECUTION_FENCED, vec![Param::Text(id)], owner))
            }
            Op::PutJob { id, index, record } => {
                let index = Param::Int(i32::try_from(*index).unwrap_or(i32::MAX));
                out.push(fenced(PUT_JOB, PUT_JOB_FENCED, vec![Param::Text(id), index, Param::Bytes(record)], owner));
            }
            Op::DeleteJobs { id } => out.push(fenced(DELETE_JOBS, DELETE_JOBS_FENCED, vec![Param::Text(id)], owner)),
            Op::Enqueue { id, workflow, run_at, owner: claim } => {
                let mut params = vec![
                    Param::Text(id),
                    Param::Text(workflow),
                    big(*run_at),
                    Param::NullableBigInt(claim.map(|owner| owner.0)),
                ];
                let sql = match (owner, fence_id, key) {
                    (Some(owner), Some(fence_id), _) => {
                        params.extend([Param::Text(fence_id), Param::BigInt(owner)]);
                        ENQUEUE_FENCED_BY
                    }
                    (_, _, Some((workflow, key, holder))) => {
                        params.extend([Param::Text(workflow), Param::Text(key), Param::Text(holder)]);
                        ENQUEUE_KEYED
                    }
                    _ => ENQUEUE,
                };
                out.push(Statement::plain(sql, params));
            }
            Op::Dequeue { id } => out.push(fenced(DEQUEUE, DEQUEUE_FENCED, vec![Param::Text(id)], owner)),
            Op::Release { id, run_at } => {
                out.push(fenced(RELEASE, RELEASE_FENCED, vec![Param::Text(id), big(*run_at)], owner));
            }
            Op::TakeIdempotency { workflow, key: name, execution_id, record, expires_at, pending, now } => {
                out.push(Statement::plain(
                    TAKE_KEY,
                    vec![
                        Param::Text(workflow),
                        Param::Text(name),
                        Param::Text(execution_id),
                        big(*expires_at),
                        Param::Bool(*pending),
                        Param::Bytes(record),
                        big(*now),
                    ],
                ));
                out.push(Statement::checked(
                    KEY_HOLDER,
                    vec![Param::Text(workflow), Param::Text(name)],
                    Role::KeyHolder,
                ));
                key = Some((workflow, name, execution_id));
            }
            Op::PutIdempotency { workflow, key: name, execution_id, record, expires_at, pending } => {
                out.push(Statement::plain(
                    PUT_KEY,
                    vec![
                        Param::Text(workflow),
                        Param::Text(name),
                        Param::Text(execution_id),
                        big(*expires_at),
                        Param::Bool(*pending),
                        Param::Bytes(record),
                    ],
                ));
            }
            Op::DeleteIdempotency { workflow, key: name } => {
                out.push(Statement::plain(DELETE_KEY, vec![Param::Text(workflow), Param::Text(name)]));
            }
            Op::PutReply { id, record } => {
                out.push(Statement::plain(PUT_REPLY, vec![Param::Text(id), Param::Bytes(record)]))
            }
            Op::DeleteReply { id } => out.push(Statement::plain(DELETE_REPLY, vec![Param::Text(id)])),
            Op::CancelUnclaimed { id, workflow: _, record } => {
                out.push(Statement::checked(CANCEL_UNCLAIMED, vec![Param::Text(id), Param::Bytes(record)], Role::Skip));
            }
            Op::PutRefusal { id, workflow, code, record, keep } => {
                out.push(Statement::plain(
                    PUT_REFUSAL,
                    vec![Param::Text(id), Param::Text(workflow), Param::Text(code), Param::Bytes(record)],
                ));
                out.push(Statement::plain(TRIM_REFUSALS, vec![Param::Text(workflow), big(*keep)]));
            }
            Op::PutActivity { workflow, minute, writer, record } => out.push(Statement::plain(
                PUT_ACTIVITY,
                vec![Param::Text(workflow), big(*minute), Param::Text(writer), Param::Bytes(record)],
            )),
            Op::DeleteActivityBefore { minute } => out.push(Statement::plain(DELETE_ACTIVITY, vec![big(*minute)])),
            Op::RequestCancel { id, now } => {
                out.push(Statement::checked(REQUEST_CANCEL, vec![Param::Text(id), big(*now)], Role::Skip));
                out.push(notify(CANCEL_CHANNEL, id));
            }
        }
    }
    out
}

/// The fenced form of a statement in a fenced request (its owner the last parameter).
fn fenced<'a>(
    plain: &'static str,
    fenced: &'static str,
    mut params: Vec<Param<'a>>,
    owner: Option<i64>,
) -> Statement<'a> {
    match owner {
        Some(owner) => {
            params.push(Param::BigInt(owner));
            Statement::plain(fenced, params)
        }
        None => Statement::plain(plain, params),
    }
}

fn notify<'a>(channel: &'static str, payload: &'a str) -> Statement<'a> {
    Statement::plain(NOTIFY, vec![Param::Text(channel), Param::Text(payload)])
}
