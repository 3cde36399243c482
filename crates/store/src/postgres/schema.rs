//! The PostgreSQL schema (`hookflow`) and its migrations, run at start by one node at a time
//! (under an advisory lock); the record format is checked the way the redb file's is.
//!
//! Records are `bytea` holding exactly the bytes the redb backend stores (not `jsonb`, which
//! would reorder keys); ids and keys are `COLLATE "C"`, so they sort byte by byte as in redb
//! (ids are ULIDs: a range of ids is a range of creation times).

use std::sync::Arc;

use crate::StoreError;
use crate::record::FORMAT_VERSION;

/// Each migration, in order; the schema's version is how many have run. Never edit one that has
/// shipped: add the next.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE hookflow.workflows (
    key text COLLATE "C" PRIMARY KEY,
    version bigint NOT NULL,
    record bytea NOT NULL
);
CREATE TABLE hookflow.workflow_versions (
    key text COLLATE "C" NOT NULL,
    version bigint NOT NULL,
    definition bytea NOT NULL,
    PRIMARY KEY (key, version)
);
CREATE TABLE hookflow.plugins (
    name text COLLATE "C" PRIMARY KEY,
    digest text NOT NULL,
    component bytea NOT NULL
);
CREATE TABLE hookflow.executions (
    id text COLLATE "C" PRIMARY KEY,
    workflow text COLLATE "C" NOT NULL,
    status text COLLATE "C" NOT NULL,
    record bytea NOT NULL
);
CREATE INDEX executions_by_workflow ON hookflow.executions (workflow, id);
CREATE INDEX executions_by_status ON hookflow.executions (status, id);
CREATE INDEX executions_by_workflow_status ON hookflow.executions (workflow, status, id);
CREATE TABLE hookflow.jobs (
    execution_id text COLLATE "C" NOT NULL,
    idx integer NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (execution_id, idx)
);
CREATE TABLE hookflow.queue (
    id text COLLATE "C" PRIMARY KEY,
    workflow text COLLATE "C" NOT NULL,
    run_at bigint NOT NULL,
    owner bigint,
    takeovers integer NOT NULL DEFAULT 0,
    cancel boolean NOT NULL DEFAULT false,
    waiting boolean NOT NULL DEFAULT false
);
CREATE INDEX queue_free ON hookflow.queue (run_at, id) WHERE owner IS NULL;
CREATE INDEX queue_held ON hookflow.queue (owner) WHERE owner IS NOT NULL;
CREATE TABLE hookflow.idempotency (
    workflow text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    execution_id text COLLATE "C" NOT NULL,
    expires_at bigint NOT NULL,
    pending boolean NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (workflow, key)
);
CREATE INDEX idempotency_expiry ON hookflow.idempotency (expires_at);
CREATE TABLE hookflow.replies (
    execution_id text COLLATE "C" PRIMARY KEY,
    record bytea NOT NULL
);
CREATE TABLE hookflow.nodes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    address text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    renewed_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
"#,
    r#"
CREATE TABLE hookflow.refusals (
    id text COLLATE "C" PRIMARY KEY,
    workflow text COLLATE "C" NOT NULL,
    code text COLLATE "C" NOT NULL,
    record bytea NOT NULL
);
CREATE INDEX refusals_by_workflow ON hookflow.refusals (workflow, id);
CREATE TABLE hookflow.refusal_counts (
    workflow text COLLATE "C" PRIMARY KEY,
    count bigint NOT NULL
);
CREATE TABLE hookflow.activity (
    workflow text COLLATE "C" NOT NULL,
    minute bigint NOT NULL,
    writer text COLLATE "C" NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (workflow, minute, writer)
);
CREATE INDEX activity_by_minute ON hookflow.activity (minute);
"#,
];

/// The advisory lock migrations run under (any 64-bit number nobody else uses).
const MIGRATION_LOCK: i64 = 0x686f_6f6b_666c_6f77;

/// Brings the schema up to date and checks the record format, holding the migration lock so
/// that nodes starting together migrate one at a time.
pub(crate) async fn migrate(client: &mut tokio_postgres::Client) -> Result<(), StoreError> {
    let failed = |error: tokio_postgres::Error| StoreError::Write(Arc::new(error));
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await.map_err(failed)?;
    let migrated = run_migrations(client).await;
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await.map_err(failed);
    migrated.and(unlocked.map(drop))
}

async fn run_migrations(client: &mut tokio_postgres::Client) -> Result<(), StoreError> {
    let failed = |error: tokio_postgres::Error| StoreError::Write(Arc::new(error));
    client
        .batch_execute(
            "CREATE SCHEMA IF NOT EXISTS hookflow;
             CREATE TABLE IF NOT EXISTS hookflow.meta (name text PRIMARY KEY, value bigint NOT NULL);",
        )
        .await
        .map_err(failed)?;
    let format = meta(client, "format").await?;
    if let Some(found) = format.filter(|found| *found > FORMAT_VERSION) {
        return Err(StoreError::NewerFormat { location: "(PostgreSQL)".into(), found });
    }
    let applied = usize::try_from(meta(client, "schema").await?.unwrap_or(0)).unwrap_or(usize::MAX);
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
        let version = i64::try_from(index + 1).unwrap_or(i64::MAX);
        let txn = client.transaction().await.map_err(failed)?;
        txn.batch_execute(migration).await.map_err(failed)?;
        set_meta(&txn, "schema", version).await?;
        txn.commit().await.map_err(failed)?;
        tracing::info!("PostgreSQL schema migrated to version {version}");
    }
    if format.is_none() {
        set_meta(client, "format", i64::try_from(FORMAT_VERSION).unwrap_or(i64::MAX)).await?;
    }
    Ok(())
}

async fn meta(client: &tokio_postgres::Client, name: &str) -> Result<Option<u64>, StoreError> {
    let row = client
        .query_opt("SELECT value FROM hookflow.meta WHERE name = $1", &[&name])
        .await
        .map_err(|error| StoreError::Read(Arc::new(error)))?;
    let value = row.map(|row| super::column::<i64>(&row, 0)).transpose()?;
    Ok(value.map(|value| u64::try_from(value).unwrap_or(0)))
}

async fn set_meta(client: &impl tokio_postgres::GenericClient, name: &str, value: i64) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO hookflow.meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
            &[&name, &value],
        )
        .await
        .map(drop)
        .map_err(|error| StoreError::Write(Arc::new(error)))
}
