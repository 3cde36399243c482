//! Databases written by earlier formats still open and read back whole: `golden/format-N.redb`
//! was written by the hookflow of format N (with `writes_a_golden_database`, below) and is never
//! rewritten, so an upgrade that could no longer read it fails here instead of stranding data.
#![allow(missing_docs, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use hookflow_store::{
    ExecutionFilter, FORMAT_VERSION, IdempotencyEntry, IdempotencyKey, IdempotencyRecord, RecordFate, Store,
    StoreError, SyncFinish, WorkflowQueue, WorkflowRecord,
};
use hookflow_workflow::timestamp::Timestamp;
use hookflow_workflow::{Execution, ExecutionStatus, Job, JobStatus, Next, Reply, Workflow};
use serde_json::json;

/// What the golden databases hold.
struct Contents {
    v1: WorkflowRecord,
    v2: WorkflowRecord,
    /// A sync execution that resolved, with its reply and idempotency key.
    resolved: Execution,
    reply: Reply,
    key: IdempotencyRecord,
    /// A sync execution that ended `error`, with an execution-level error.
    failed: Execution,
    /// An async execution that waits in a delay: its record says `started` with no jobs, its
    /// pending job is in the jobs table.
    waiting: Execution,
    pending: Job,
}

fn contents() -> Contents {
    let definition: Workflow = serde_json::from_value(json!({
        "key": "orders", "title": "Orders", "sync": true,
        "trigger": {"basicAuth": {"username": "shop", "password": "s3cret"}},
        "nodes": [{"key": "check", "type": "condition",
            "config": {"left": "{{$context.body.status}}", "operator": "equal", "right": "paid"},
            "branches": {
                "true": [{"key": "ok", "type": "response", "config": {"statusCode": 200, "body": {"ok": true}}}],
                "false": [{"key": "no", "type": "response", "config": {"statusCode": 400}}]}}]
    }))
    .unwrap();
    let created = Timestamp(1_764_000_000_000);
    let v1 = WorkflowRecord {
        definition: definition.clone(),
        version: 1,
        created_at: created,
        updated_at: created,
        source: None,
    };
    let v2 = WorkflowRecord {
        definition: Workflow { title: "Orders v2".into(), ..definition },
        version: 2,
        created_at: created,
        updated_at: Timestamp(1_764_000_100_000),
        source: Some("orders.json".into()),
    };
    let trigger = json!({"headers": {"content-type": "application/json"}, "query": {"a": ["1", "2"]},
        "body": {"status": "paid", "order": 42}});
    let execution = |id: &str, version, created_at| Execution {
        id: id.into(),
        created_at: Timestamp(created_at),
        ..Execution::new(id.parse().unwrap(), "orders", version, trigger.clone())
    };
    let job = |node_key: &str, node_type: &str, status, started_at, next| Job {
        node_key: node_key.into(),
        node_type: node_type.into(),
        status,
        input: json!({"left": "paid", "operator": "equal", "right": "paid"}),
        output: json!(true),
        error: None,
        started_at: Timestamp(started_at),
        finished_at: Timestamp(started_at + 1),
        next,
    };
    let resolved = Execution {
        status: ExecutionStatus::Resolved,
        finished_at: Some(Timestamp(1_764_000_200_007)),
        jobs: vec![
            job("check", "condition", JobStatus::Resolved, 1_764_000_200_001, Next::Branch("true".into())),
            Job {
                input: json!({"statusCode": 200, "body": {"ok": true}}),
                output: json!({"statusCode": 200}),
                finished_at: Timestamp(1_764_000_200_006),
                ..job("ok", "response", JobStatus::Resolved, 1_764_000_200_003, Next::End)
            },
        ],
        ..execution("01KB0000000000000000000001", 2, 1_764_000_200_000)
    };
    let reply = Reply {
        status: 200,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-hookflow-execution".into(), resolved.id.clone()),
        ],
        body: br#"{"ok":true}"#.to_vec(),
    };
    let key = IdempotencyRecord {
        execution_id: resolved.id.clone(),
        expires_at: Timestamp(4_102_444_800_000),
        pending: false,
    };
    let failed = Execution {
        status: ExecutionStatus::Error,
        finished_at: Some(Timestamp(1_764_000_300_009)),
        error: Some("execution exceeded --max-jobs (10000)".into()),
        jobs: vec![Job {
            input: json!({}),
            output: serde_json::Value::Null,
            error: Some("node trapped: unreachable".into()),
            finished_at: Timestamp(1_764_000_300_008),
            ..job("check", "condition", JobStatus::Error, 1_764_000_300_001, Next::Continue)
        }],
        ..execution("01KB0000000000000000000002", 1, 1_764_000_300_000)
    };
    let waiting =
        Execution { status: ExecutionStatus::Started, ..execution("01KB0000000000000000000003", 2, 1_764_000_400_000) };
    let pending = Job {
        input: json!({"duration": 60000}),
        output: json!({"until": "2026-11-24T16:11:40Z"}),
        ..job("wait", "delay", JobStatus::Pending, 1_764_000_400_001, Next::Continue)
    };
    Contents { v1, v2, resolved, reply, key, failed, waiting, pending }
}

/// A copy of a golden database to open (opening one writes to it).
fn copy_of(golden: &str, test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hookflow-golden-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("hookflow.redb");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(golden);
    std::fs::copy(source, &copy).unwrap();
    copy
}

#[tokio::test]
async fn a_database_of_format_1_reads_back_whole() {
    let store = Store::open_file(&copy_of("format-1.redb", "reads")).unwrap();
    let expected = contents();
    assert_eq!(store.workflows().await.unwrap(), std::slice::from_ref(&expected.v2));
    assert_eq!(store.workflow_version("orders", 1).await.unwrap(), Some(expected.v1.definition.clone()));
    assert_eq!(store.workflow_version("orders", 2).await.unwrap(), Some(expected.v2.definition.clone()));
    assert_eq!(store.execution(&expected.resolved.id).await.unwrap().as_ref(), Some(&expected.resolved));
    assert_eq!(store.execution(&expected.failed.id).await.unwrap().as_ref(), Some(&expected.failed));
    let waiting = Execution { jobs: vec![expected.pending.clone()], ..expected.waiting.clone() };
    assert_eq!(store.execution(&waiting.id).await.unwrap(), Some(waiting.clone()));
    assert_eq!(store.reply(&expected.resolved.id).await.unwrap(), Some(expected.reply.clone()));
    assert_eq!(
        store.idempotency(IdempotencyKey { workflow: "orders", key: "evt_1" }, Timestamp::now()).await.unwrap(),
        Some(expected.key.clone())
    );
    assert!(store.is_queued(&waiting.id).await.unwrap());
    let counts = store.queue_counts().await.unwrap();
    assert_eq!(
        counts.into_iter().collect::<Vec<_>>(),
        [("orders".to_string(), WorkflowQueue { queued: 1, waiting: 0 })]
    );
    let errors = ExecutionFilter { status: Some(ExecutionStatus::Error), ..ExecutionFilter::default() };
    let listed: Vec<String> = store.executions(&errors, None, 10).await.unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(listed, std::slice::from_ref(&expected.failed.id), "the status index reads back too");
}

#[test]
fn a_database_of_a_newer_format_is_refused_and_left_alone() {
    let path = copy_of("format-1.redb", "newer");
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<&str, u64>::new("meta"))
            .unwrap()
            .insert("format_version", FORMAT_VERSION + 1)
            .unwrap();
        txn.commit().unwrap();
    }
    let refused = Store::open_file(&path).err().unwrap();
    assert!(matches!(refused, StoreError::NewerFormat { found, .. } if found == FORMAT_VERSION + 1), "{refused}");
    assert!(refused.to_string().contains("newer than this hookflow reads"), "{refused}");
}

/// Writes `$GOLDEN` (a new file) with [`contents`]: run when the format changes, with the code of
/// the new format, to add `golden/format-<FORMAT_VERSION>.redb`; never to replace an old one.
#[tokio::test]
#[ignore = "writes a golden database; run by hand at a format change"]
async fn writes_a_golden_database() {
    let path = PathBuf::from(std::env::var("GOLDEN").expect("GOLDEN names the file to write"));
    assert!(!path.exists(), "{} exists: golden databases are never rewritten", path.display());
    let store = Store::open_file(&path).unwrap();
    let contents = contents();
    store.put_workflow(&contents.v1, None).await.unwrap();
    store.put_workflow(&contents.v2, Some(1)).await.unwrap();
    let key = IdempotencyEntry { key: IdempotencyKey { workflow: "orders", key: "evt_1" }, record: &contents.key };
    let resolved = SyncFinish {
        execution: &contents.resolved,
        fate: RecordFate::Keep,
        reply: Some(&contents.reply),
        idempotency: Some(key),
        release: None,
        follow_up: None,
    };
    store.record_sync_execution(resolved).await.unwrap().unwrap();
    let failed = SyncFinish {
        execution: &contents.failed,
        fate: RecordFate::Keep,
        reply: None,
        idempotency: None,
        release: None,
        follow_up: None,
    };
    store.record_sync_execution(failed).await.unwrap().unwrap();
    let queued = Execution { status: ExecutionStatus::Queued, ..contents.waiting.clone() };
    let owner = store.join("").await.unwrap();
    store.enqueue(&queued, None, Some(owner), Timestamp::now()).await.unwrap();
    store.mark_started(&contents.waiting, owner);
    store.record_job(&contents.waiting.id, 0, &contents.pending, owner);
    store.flush().await.unwrap();
}
