//! The storage contract, checked against both backends: every check below runs once on a fresh
//! redb file and once on a fresh database of a private PostgreSQL server (`conformance!` at the
//! end makes both tests of each). What a backend must do is what these say; a new backend is done
//! when it passes them.
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hookflow_store::{
    Activity, Applied, Canceled, Claimed, Enqueued, ExecutionFilter, IdempotencyEntry, IdempotencyKey,
    IdempotencyRecord, Owner, PostgresConfig, RecordFate, Refusal, RefusalFilter, Store, StoreConfig, StoreEvent,
    SyncFinish, WorkflowQueue, WorkflowRecord,
};
use hookflow_test_postgres::PgServer;
use hookflow_workflow::timestamp::Timestamp;
use hookflow_workflow::{Execution, ExecutionIds, ExecutionStatus, Job, JobStatus, Next, Reply, Workflow};
use serde_json::json;

/// A store under test, and how to open it again (another node, a restart).
struct Subject {
    store: Store,
    config: StoreConfig,
}

impl Subject {
    async fn embedded(name: &str) -> Subject {
        let dir = std::env::temp_dir().join(format!("hookflow-conformance-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = StoreConfig::Embedded { path: dir.join("hookflow.redb") };
        Subject { store: Store::open(&config, None).await.unwrap(), config }
    }

    async fn postgres(name: &str) -> Subject {
        let mut config = PostgresConfig::new(&PgServer::shared().fresh_database(name));
        config.lease = Duration::from_millis(900);
        let config = StoreConfig::Postgres(config);
        Subject { store: Store::open(&config, None).await.unwrap(), config }
    }

    /// The store's owner, joined.
    async fn owner(&self) -> Owner {
        self.store.join("127.0.0.1:1").await.unwrap()
    }

    /// A second owner: another node on the same database, or a second claim holder of the
    /// embedded store's process.
    async fn second_owner(&self) -> (Store, Owner) {
        match &self.config {
            StoreConfig::Embedded { .. } => (self.store.clone(), Owner(2)),
            StoreConfig::Postgres(_) => {
                let other = Store::open(&self.config, None).await.unwrap();
                let owner = other.join("127.0.0.1:2").await.unwrap();
                (other, owner)
            }
        }
    }
}

static IDS: std::sync::LazyLock<ExecutionIds> = std::sync::LazyLock::new(Default::default);

fn now() -> Timestamp {
    Timestamp::now()
}

fn new_execution(workflow: &str, trigger: serde_json::Value) -> Execution {
    Execution::new(IDS.next(now()), workflow, 1, trigger)
}

fn job(key: &str, status: JobStatus) -> Job {
    Job {
        node_key: key.into(),
        node_type: "set".into(),
        status,
        input: json!({"values": {"a": "ü → ✓", "n": 1.5}}),
        output: json!({"a": [1, {"b": null}]}),
        error: None,
        started_at: now(),
        finished_at: now(),
        next: Next::Continue,
    }
}

fn no_limits() -> HashMap<String, u32> {
    HashMap::new()
}

/// Polls `check` for up to 10 s.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "{what} never happened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn workflow_record(key: &str, title: &str, version: u64) -> WorkflowRecord {
    let definition: Workflow = serde_json::from_value(json!({
        "key": key, "title": title, "sync": false,
        "nodes": [{"key": "only", "type": "set", "config": {"values": {"ok": true}}}]
    }))
    .unwrap();
    WorkflowRecord { definition, version, created_at: Timestamp(1), updated_at: Timestamp(version), source: None }
}

// --- the checks ---

async fn workflows_change_by_compare_and_set(subject: Subject) {
    let store = &subject.store;
    let v1 = workflow_record("orders", "one", 1);
    assert_eq!(store.put_workflow(&v1, None).await.unwrap(), Applied::Done);
    assert_eq!(store.put_workflow(&workflow_record("orders", "rival", 1), None).await.unwrap(), Applied::Conflict);
    let v2 = workflow_record("orders", "two", 2);
    assert_eq!(store.put_workflow(&v2, Some(1)).await.unwrap(), Applied::Done);
    assert_eq!(store.put_workflow(&workflow_record("orders", "stale", 2), Some(1)).await.unwrap(), Applied::Conflict);
    assert_eq!(store.workflow("orders").await.unwrap(), Some(v2.clone()));
    assert_eq!(store.workflows().await.unwrap(), std::slice::from_ref(&v2));
    let versions: Vec<(u64, String)> =
        store.workflow_versions("orders").await.unwrap().into_iter().map(|(v, w)| (v, w.title)).collect();
    assert_eq!(versions, [(1, "one".to_string()), (2, "two".to_string())], "a conflicting write left no version");
    store.delete_workflow("orders").await.unwrap();
    assert_eq!(store.workflow("orders").await.unwrap(), None);
    assert_eq!(store.workflow_version("orders", 1).await.unwrap().map(|w| w.title), Some("one".into()));
}

async fn uploaded_components_are_kept(subject: Subject) {
    let store = &subject.store;
    assert_eq!(store.plugins().await.unwrap(), []);
    store.put_plugin("scorer", "aa", b"\0asm one").await.unwrap();
    store.put_plugin("scorer", "bb", b"\0asm two").await.unwrap();
    store.put_plugin("other", "cc", b"\0asm").await.unwrap();
    let listed: Vec<(String, String)> =
        store.plugins().await.unwrap().into_iter().map(|p| (p.name, p.digest)).collect();
    assert_eq!(listed, [("other".into(), "cc".into()), ("scorer".into(), "bb".into())]);
    assert_eq!(store.plugin("scorer").await.unwrap().as_deref(), Some(&b"\0asm two"[..]));
    store.delete_plugin("scorer").await.unwrap();
    assert_eq!(store.plugin("scorer").await.unwrap(), None);
}

async fn a_queued_execution_is_claimed_once_and_finished(subject: Subject) {
    let store = &subject.store;
    let owner = subject.owner().await;
    let mut events = store.events();
    let mut execution = new_execution("w", json!({"body": {"n": 1}}));
    assert_eq!(store.enqueue(&execution, None, None, now()).await.unwrap(), Enqueued::New);
    eventually("a queue event", async || matches!(events.try_recv(), Ok(StoreEvent::QueueReady))).await;
    assert!(store.is_queued(&execution.id).await.unwrap());
    assert_eq!(store.queue_depth().await.unwrap(), 1);
    let claimed = store.claim(owner, 10, now(), &no_limits()).await.unwrap();
    assert_eq!(
        claimed,
        [Claimed { id: execution.id.clone(), workflow: "w".into(), takeovers: 0, cancel: false, waited: false }]
    );
    assert_eq!(store.claim(owner, 10, now(), &no_limits()).await.unwrap(), [], "claimed once");

    execution.status = ExecutionStatus::Started;
    store.mark_started(&execution, owner);
    let first = job("first", JobStatus::Resolved);
    store.record_job(&execution.id, 0, &first, owner);
    store.flush().await.unwrap();
    let stored = store.execution(&execution.id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.jobs.clone()), (ExecutionStatus::Started, vec![first.clone()]));

    execution.jobs = vec![first, job("second", JobStatus::Resolved)];
    execution.status = ExecutionStatus::Resolved;
    execution.finished_at = Some(now());
    store.record_finished(&execution, RecordFate::Keep, owner, None);
    store.flush().await.unwrap();
    assert_eq!(store.execution(&execution.id).await.unwrap(), Some(execution.clone()));
    assert!(!store.is_queued(&execution.id).await.unwrap());
    assert_eq!(store.queue_depth().await.unwrap(), 0);
    assert_eq!(store.claim(owner, 10, now(), &no_limits()).await.unwrap(), []);
}

async fn an_execution_claimed_on_insert_is_not_claimed_again(subject: Subject) {
    let store = &subject.store;
    let owner = subject.owner().await;
    let (other, other_owner) = subject.second_owner().await;
    let execution = new_execution("w", json!(1));
    store.enqueue(&execution, None, Some(owner), now()).await.unwrap();
    assert_eq!(other.claim(other_owner, 10, now(), &no_limits()).await.unwrap(), []);
    store.record_job(&execution.id, 0, &job("only", JobStatus::Resolved), owner);
    store.flush().await.unwrap();
    assert_eq!(store.execution(&execution.id).await.unwrap().unwrap().jobs.len(), 1);
    let nodes = store.nodes().await.unwrap();
    let mine = nodes.iter().find(|node| node.id == owner.0).unwrap();
    assert_eq!(mine.executions, 1, "{nodes:?}");
}

async fn writes_of_an_owner_that_lost_its_claim_are_refused(subject: Subject) {
    let store = &subject.store;
    let owner = subject.owner().await;
    let (other, other_owner) = subject.second_owner().await;
    let execution = new_execution("w", json!(1));
    store.enqueue(&execution, None, None, now()).await.unwrap();
    assert_eq!(store.claim(owner, 1, now(), &no_limits()).await.unwrap().len(), 1);
    store.release(&execution.id, now(), owner);
    store.flush().await.unwrap();
    let taken = other.claim(other_owner, 1, now(), &no_limits()).await.unwrap();
    assert_eq!(taken.len(), 1, "released, it is free to claim");

    store.record_job(&execution.id, 0, &job("late", JobStatus::Resolved), owner);
    let mut finished = execution.clone();
    finished.status = ExecutionStatus::Resolved;
    store.record_finished(&finished, RecordFate::Keep, owner, None);
    store.flush().await.unwrap();
    let stored = store.execution(&execution.id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.jobs.len()), (ExecutionStatus::Queued, 0), "nothing of the old owner landed");
    assert!(store.is_queued(&execution.id).await.unwrap());

    other.record_job(&execution.id, 0, &job("current", JobStatus::Resolved), other_owner);
    other.flush().await.unwrap();
    assert_eq!(store.execution(&execution.id).await.unwrap().unwrap().jobs[0].node_key, "current");
}

async fn a_released_execution_waits_until_it_is_due(subject: Subject) {
    let store = &subject.store;
    let owner = subject.owner().await;
    let execution = new_execution("w", json!(1));
    let start = now();
    store.enqueue(&execution, None, None, start).await.unwrap();
    store.claim(owner, 1, start, &no_limits()).await.unwrap();
    let wake = Timestamp(start.0 + 60_000);
    store.release(&execution.id, wake, owner);
    store.flush().await.unwrap();
    assert_eq!(store.claim(owner, 10, start, &no_limits()).await.unwrap(), []);
    assert_eq!(store.next_due(start).await.unwrap(), Some(wake));
    assert_eq!(store.queue_counts().await.unwrap()["w"], WorkflowQueue { queued: 0, waiting: 1 });
    let claimed = store.claim(owner, 10, wake, &no_limits()).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(claimed[0].waited, "it says it waited");
    assert_eq!(store.next_due(start).await.unwrap(), None);
    assert_eq!(store.queue_counts().await.unwrap()["w"], WorkflowQueue { queued: 1, waiting: 0 });
}

async fn claims_keep_a_workflows_concurrency_limit(subject: Subject) {
    let store = &subject.store;
    let owner = subject.owner().await;
    let limited: Vec<Execution> = (0..3).map(|n| new_execution("limited", json!(n))).collect();
    for execution in &limited {
        store.enqueue(execution, None, None, now()).await.unwrap();
    }
    let free = new_execution("free", json!(0));
    store.enqueue(&free, None, None, now()).await.unwrap();
    let limits = HashMap::from([("limited".to_string(), 1)]);
    let ids = |claimed: Vec<Claimed>| claimed.into_iter().map(|claimed| claimed.id).collect::<Vec<_>>();
    let first = ids(store.claim(owner, 10, now(), &limits).await.unwrap());
    assert_eq!(first, [limited[0].id.clone(), free.id.clone()]);
    assert_eq!(ids(store.claim(owner, 10, now(), &limits).await.unwrap()), Vec::<String>::new());
    store.record_finished(&limited[0], RecordFate::Keep, owner, None);
    store.flush().await.unwrap();
    assert_eq!(ids(store.claim(owner, 10, now(), &limits).await.unwrap()), [limited[1].id.clone()]);
}

async fn a_cancel_ends_what_nobody_holds_and_asks_the_holder_otherwise(subject: Subject) {
    let store = &subject.store;
    let owner = subject.owner().await;
    let mut events = store.events();
    let canceled = |execution: &Execution| Execution { status: ExecutionStatus::Canceled, ..execution.clone() };

    let queued = new_execution("w", json!(1));
    store.enqueue(&queued, None, None, now()).await.unwrap();
    assert_eq!(store.cancel(&canceled(&queued), now()).await.unwrap(), Canceled::Ended);
    assert_eq!(store.execution(&queued.id).await.unwrap().unwrap().status, ExecutionStatus::Canceled);
    assert!(!store.is_queued(&queued.id).await.unwrap());
    let listed = store
        .executions(&ExecutionFilter { status: Some(ExecutionStatus::Canceled), ..Default::default() }, None, 10)
        .await
        .unwrap();
    assert_eq!(
        listed.into_iter().map(|e| e.id).collect::<Vec<_>>(),
        std::slice::from_ref(&queued.id),
        "the index agrees"
    );

    let held = new_execution("w", json!(2));
    store.enqueue(&held, None, Some(owner), now()).await.unwrap();
    assert_eq!(store.cancel(&canceled(&held), now()).await.unwrap(), Canceled::Requested);
    eventually(
        "the cancel event",
        async || matches!(events.try_recv(), Ok(StoreEvent::CancelRequested(id)) if id == held.id),
    )
    .await;
    assert_eq!(store.execution(&held.id).await.unwrap().unwrap().status, ExecutionStatus::Queued, "its holder ends it");

    let waiting = new_execution("w", json!(3));
    store.enqueue(&waiting, None, Some(owner), now()).await.unwrap();
    store.release(&waiting.id, Timestamp(now().0 + 3_600_000), owner);
    store.flush().await.unwrap();
    assert_eq!(store.cancel(&canceled(&waiting), now()).await.unwrap(), Canceled::Requested);
    let woken = store.claim(owner, 10, now(), &no_limits()).await.unwrap();
    assert_eq!(woken.len(), 1, "a waiting execution is woken to be canceled");
    assert!(woken[0].cancel && woken[0].waited, "{woken:?}");

    let mut finished = held.clone();
    finished.status = ExecutionStatus::Resolved;
    store.record_finished(&finished, RecordFate::Keep, owner, None);
    store.flush().await.unwrap();
    assert_eq!(store.cancel(&canceled(&finished), now()).await.unwrap(), Canceled::NotQueued);
    assert_eq!(store.execution(&held.id).await.unwrap().unwrap().status, ExecutionStatus::Resolved);
}

async fn an_idempotency_key_admits_one_execution(subject: Subject) {
    let store = &subject.store;
    let key = IdempotencyKey { workflow: "w", key: "evt_1" };
    let first = new_execution("w", json!(1));
    let record =
        IdempotencyRecord { execution_id: first.id.clone(), expires_at: Timestamp(now().0 + 60_000), pending: false };
    let entry = IdempotencyEntry { key, record: &record };
    assert_eq!(store.enqueue(&first, Some(entry), None, now()).await.unwrap(), Enqueued::New);

    let repeat = new_execution("w", json!(2));
    let repeat_record = IdempotencyRecord { execution_id: repeat.id.clone(), ..record.clone() };
    let repeat_entry = IdempotencyEntry { key, record: &repeat_record };
    assert_eq!(
        store.enqueue(&repeat, Some(repeat_entry), None, now()).await.unwrap(),
        Enqueued::Duplicate { execution_id: first.id.clone() }
    );
    assert_eq!(store.execution(&repeat.id).await.unwrap(), None, "nothing of the repeat was stored");
    assert!(!store.is_queued(&repeat.id).await.unwrap());
    assert_eq!(store.idempotency(key, now()).await.unwrap(), Some(record.clone()));

    // Once it expires, the key is free again.
    let later = Timestamp(record.expires_at.0 + 1);
    assert_eq!(store.idempotency(key, later).await.unwrap(), None);
    assert_eq!(store.enqueue(&repeat, Some(repeat_entry), None, later).await.unwrap(), Enqueued::New);
    assert_eq!(
        store.expired_idempotency_keys(Timestamp(repeat_record.expires_at.0 + 1), None, 10).await.unwrap(),
        [("w".to_string(), "evt_1".to_string())]
    );
}

async fn a_deleted_execution_frees_its_idempotency_key(subject: Subject) {
    let store = &subject.store;
    let key = IdempotencyKey { workflow: "w", key: "evt_9" };
    let first = new_execution("w", json!(1));
    let record =
        IdempotencyRecord { execution_id: first.id.clone(), expires_at: Timestamp(now().0 + 60_000), pending: false };
    store.enqueue(&first, Some(IdempotencyEntry { key, record: &record }), None, now()).await.unwrap();
    store.delete_executions(std::slice::from_ref(&first.id)).await.unwrap().unwrap();
    let second = new_execution("w", json!(2));
    let record = IdempotencyRecord { execution_id: second.id.clone(), ..record };
    let entry = IdempotencyEntry { key, record: &record };
    assert_eq!(store.enqueue(&second, Some(entry), None, now()).await.unwrap(), Enqueued::New);
    assert_eq!(store.idempotency(key, now()).await.unwrap().map(|held| held.execution_id), Some(second.id));
}

async fn a_sync_key_is_held_while_it_runs_then_keeps_its_answer_or_is_released(subject: Subject) {
    let store = &subject.store;
    let key = IdempotencyKey { workflow: "s", key: "k" };
    let mut first = new_execution("s", json!(1));
    let pending =
        IdempotencyRecord { execution_id: first.id.clone(), expires_at: Timestamp(now().0 + 35_000), pending: true };
    assert_eq!(store.hold_idempotency(IdempotencyEntry { key, record: &pending }, now()).await.unwrap(), Enqueued::New);
    let rival = new_execution("s", json!(2));
    let rival_record = IdempotencyRecord { execution_id: rival.id.clone(), ..pending.clone() };
    assert_eq!(
        store.hold_idempotency(IdempotencyEntry { key, record: &rival_record }, now()).await.unwrap(),
        Enqueued::Duplicate { execution_id: first.id.clone() }
    );
    assert!(store.idempotency(key, now()).await.unwrap().unwrap().pending);

    first.status = ExecutionStatus::Resolved;
    let reply = Reply { status: 201, headers: vec![("x-a".into(), "1".into())], body: b"\xffbytes".to_vec() };
    let kept = IdempotencyRecord {
        execution_id: first.id.clone(),
        expires_at: Timestamp(now().0 + 86_400_000),
        pending: false,
    };
    let finish = SyncFinish {
        execution: &first,
        fate: RecordFate::Keep,
        reply: Some(&reply),
        idempotency: Some(IdempotencyEntry { key, record: &kept }),
        release: None,
        follow_up: None,
    };
    store.record_sync_execution(finish).await.unwrap().unwrap();
    assert_eq!(store.idempotency(key, now()).await.unwrap(), Some(kept));
    assert_eq!(store.reply(&first.id).await.unwrap(), Some(reply));
    assert_eq!(store.execution(&first.id).await.unwrap(), Some(first));

    // A 5xx keeps no answer: the key it held is released, so a retry runs again.
    let other = IdempotencyKey { workflow: "s", key: "failed" };
    let mut failed = new_execution("s", json!(3));
    let held = IdempotencyRecord { execution_id: failed.id.clone(), ..pending.clone() };
    store.hold_idempotency(IdempotencyEntry { key: other, record: &held }, now()).await.unwrap();
    failed.status = ExecutionStatus::Error;
    let finish = SyncFinish {
        execution: &failed,
        fate: RecordFate::Keep,
        reply: None,
        idempotency: None,
        release: Some(other),
        follow_up: None,
    };
    store.record_sync_execution(finish).await.unwrap().unwrap();
    assert_eq!(store.idempotency(other, now()).await.unwrap(), None);
}

async fn listings_follow_workflow_status_time_and_cursor(subject: Subject) {
    let store = &subject.store;
    let owner = subject.owner().await;
    let mut made = Vec::new();
    for n in 0..30 {
        let mut execution = new_execution(if n % 3 == 0 { "rare" } else { "common" }, json!(n));
        store.enqueue(&execution, None, Some(owner), now()).await.unwrap();
        if n % 2 == 0 {
            execution.status = ExecutionStatus::Resolved;
            store.record_finished(&execution, RecordFate::Keep, owner, None);
        }
        made.push(execution);
        // Distinct milliseconds keep the ids in creation order.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    store.flush().await.unwrap();
    let list = async |workflow: Option<&str>, status: Option<ExecutionStatus>, before: Option<&str>, limit: usize| {
        let filter = ExecutionFilter { workflow: workflow.map(str::to_string), status, ..ExecutionFilter::default() };
        store.executions(&filter, before, limit).await.unwrap().into_iter().map(|e| e.id).collect::<Vec<_>>()
    };
    let expected = |workflow: Option<&str>, status: Option<ExecutionStatus>| {
        let mut ids: Vec<String> = made
            .iter()
            .filter(|e| workflow.is_none_or(|w| e.workflow == w) && status.is_none_or(|s| e.status == s))
            .map(|e| e.id.clone())
            .collect();
        ids.reverse();
        ids
    };
    for workflow in [None, Some("rare"), Some("common")] {
        for status in [None, Some(ExecutionStatus::Queued), Some(ExecutionStatus::Resolved)] {
            assert_eq!(list(workflow, status, None, 100).await, expected(workflow, status), "{workflow:?} {status:?}");
        }
    }
    let page = list(Some("rare"), None, None, 3).await;
    assert_eq!(page, expected(Some("rare"), None)[..3]);
    assert_eq!(list(Some("rare"), None, Some(&page[2]), 100).await, expected(Some("rare"), None)[3..]);
    let since = made[10].created_at;
    let until = made[20].created_at;
    let ranged = store
        .executions(&ExecutionFilter { since: Some(since), until: Some(until), ..Default::default() }, None, 100)
        .await
        .unwrap();
    assert!(ranged.iter().all(|e| e.created_at >= since && e.created_at < until) && !ranged.is_empty());
    let newest = made.iter().rev().find(|e| e.workflow == "rare").unwrap();
    let last = store.last_execution("rare").await.unwrap().unwrap();
    assert_eq!(last, (newest.id.clone(), newest.status.as_str().to_string()));
    assert_eq!(store.last_execution("none").await.unwrap(), None);
    store.delete_executions(std::slice::from_ref(&newest.id)).await.unwrap().unwrap();
    assert!(!list(Some("rare"), None, None, 100).await.contains(&newest.id));
}

async fn retention_finds_settled_executions_only(subject: Subject) {
    let store = &subject.store;
    let owner = subject.owner().await;
    let mut settled = new_execution("w", json!(1));
    store.enqueue(&settled, None, Some(owner), now()).await.unwrap();
    settled.status = ExecutionStatus::Resolved;
    store.record_finished(&settled, RecordFate::Keep, owner, None);
    let running = new_execution("w", json!(2));
    store.enqueue(&running, None, Some(owner), now()).await.unwrap();
    let mut deleted = new_execution("w", json!(3));
    store.enqueue(&deleted, None, Some(owner), now()).await.unwrap();
    deleted.status = ExecutionStatus::Resolved;
    store.record_finished(&deleted, RecordFate::Delete, owner, None);
    store.flush().await.unwrap();
    let cutoff = Timestamp(now().0 + 1);
    assert_eq!(store.settled_before(cutoff, None, 10).await.unwrap(), [settled.id.clone()]);
    assert_eq!(store.settled_before(cutoff, Some(&settled.id), 10).await.unwrap(), Vec::<String>::new());
    assert_eq!(store.execution(&deleted.id).await.unwrap(), None, "deleted as it ended");
}

async fn records_deeper_than_serde_json_reads_by_default_read_back(subject: Subject) {
    let store = &subject.store;
    let mut deep = serde_json::Value::Null;
    for _ in 0..300 {
        deep = serde_json::Value::Array(vec![deep]);
    }
    let execution = new_execution("w", deep.clone());
    store.enqueue(&execution, None, None, now()).await.unwrap();
    assert_eq!(store.execution(&execution.id).await.unwrap().unwrap().trigger, deep);
}

async fn a_record_that_does_not_decode_is_listed_unreadable_and_can_be_deleted(subject: Subject) {
    let good = new_execution("w", json!({"body": 1}));
    let broken = new_execution("w", json!({"body": 2}));
    subject.store.enqueue(&good, None, None, now()).await.unwrap();
    subject.store.enqueue(&broken, None, None, now()).await.unwrap();
    let store = corrupt(subject, &broken.id).await;
    let listed = store.executions(&ExecutionFilter::default(), None, 10).await.unwrap();
    let statuses: Vec<_> = listed.iter().map(|e| (e.id.as_str(), e.status)).collect();
    assert_eq!(
        statuses,
        [(broken.id.as_str(), ExecutionStatus::Unreadable), (good.id.as_str(), ExecutionStatus::Queued)]
    );
    let shown = store.execution(&broken.id).await.unwrap().unwrap();
    assert_eq!(shown.status, ExecutionStatus::Unreadable);
    assert!(shown.error.unwrap().contains("corrupt record in executions"));
    let only = ExecutionFilter { status: Some(ExecutionStatus::Unreadable), ..ExecutionFilter::default() };
    assert_eq!(store.executions(&only, None, 10).await.unwrap().len(), 1);
    store.delete_executions(std::slice::from_ref(&broken.id)).await.unwrap().unwrap();
    assert_eq!(store.execution(&broken.id).await.unwrap(), None);
    assert!(!store.is_queued(&broken.id).await.unwrap(), "its queue entry went with it");
    assert!(store.is_queued(&good.id).await.unwrap());
}

/// Overwrites an execution's record with bytes that do not decode, behind the store's back,
/// and opens the store again.
async fn corrupt(subject: Subject, id: &str) -> Store {
    let Subject { store, config } = subject;
    match &config {
        StoreConfig::Embedded { path } => {
            drop(store);
            let db = reopen_redb(path).await;
            let txn = db.begin_write().unwrap();
            txn.open_table(redb::TableDefinition::<&str, &[u8]>::new("executions"))
                .unwrap()
                .insert(id, b"{\"id\": [not json".as_slice())
                .unwrap();
            txn.commit().unwrap();
            drop(db);
        }
        StoreConfig::Postgres(postgres) => {
            let database = postgres.url.rsplit('/').next().unwrap();
            PgServer::shared().psql(
                database,
                &format!(
                    "UPDATE hookflow.executions SET record = '\\x7b226964223a205b6e6f74206a736f6e' WHERE id = '{id}'"
                ),
            );
        }
    }
    Store::open(&config, None).await.unwrap()
}

/// The redb file once the store that had it open let go of it (its writer thread ends just
/// after the last handle).
async fn reopen_redb(path: &PathBuf) -> redb::Database {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match redb::Database::open(path) {
            Ok(db) => return db,
            Err(error) => {
                assert!(Instant::now() < deadline, "{error}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn records_are_the_same_bytes_in_both_backends(subject: Subject) {
    let store = &subject.store;
    let mut execution = new_execution(
        "w",
        json!({"headers": {"x-id": "ü"}, "query": {"a": ["1", "2"]}, "body": {"z": 1, "a": [true, null, 1.25e3]}}),
    );
    execution.jobs = vec![
        job("first", JobStatus::Resolved),
        Job { next: Next::Branch("true".into()), ..job("second", JobStatus::Resolved) },
    ];
    execution.status = ExecutionStatus::Resolved;
    execution.finished_at = Some(now());
    let reply =
        Reply { status: 200, headers: vec![("content-type".into(), "text/plain".into())], body: b"ok".to_vec() };
    let finish = SyncFinish {
        execution: &execution,
        fate: RecordFate::Keep,
        reply: Some(&reply),
        idempotency: None,
        release: None,
        follow_up: None,
    };
    store.record_sync_execution(finish).await.unwrap().unwrap();
    let stored = raw_record(subject, &execution.id).await;
    let embedded = Subject::embedded("same-bytes-reference").await;
    embedded.store.record_sync_execution(finish).await.unwrap().unwrap();
    let reference = raw_record(embedded, &execution.id).await;
    assert_eq!(String::from_utf8_lossy(&stored), String::from_utf8_lossy(&reference));
    // And the order of keys is the record's own, not a database's.
    assert!(String::from_utf8_lossy(&stored).contains(r#""body":{"z":1,"a":[true,null,1250.0]}"#));
}

/// The bytes an execution's record is stored as.
async fn raw_record(subject: Subject, id: &str) -> Vec<u8> {
    let Subject { store, config } = subject;
    match &config {
        StoreConfig::Embedded { path } => {
            drop(store);
            let db = reopen_redb(path).await;
            use redb::ReadableDatabase as _;
            let txn = db.begin_read().unwrap();
            let table = txn.open_table(redb::TableDefinition::<&str, &[u8]>::new("executions")).unwrap();
            table.get(id).unwrap().unwrap().value().to_vec()
        }
        StoreConfig::Postgres(postgres) => {
            let database = postgres.url.rsplit('/').next().unwrap();
            let hex = PgServer::shared()
                .psql(database, &format!("SELECT encode(record, 'hex') FROM hookflow.executions WHERE id = '{id}'"));
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
        }
    }
}

async fn a_node_that_stops_renewing_is_reaped_and_its_work_taken_over(subject: Subject) {
    let (other, other_owner) = subject.second_owner().await;
    let Subject { store, config: _ } = subject;
    let owner = store.join("127.0.0.1:1").await.unwrap();
    let execution = new_execution("w", json!(1));
    store.enqueue(&execution, None, Some(owner), now()).await.unwrap();
    // The node dies: nothing renews its lease any more.
    drop(store);
    let mut taken = Vec::new();
    eventually("the other node takes the execution over", async || {
        taken = other.claim(other_owner, 10, now(), &no_limits()).await.unwrap();
        !taken.is_empty()
    })
    .await;
    assert_eq!(taken[0].takeovers, 1);
    let nodes: Vec<i64> = other.nodes().await.unwrap().into_iter().map(|node| node.id).collect();
    assert_eq!(nodes, [other_owner.0], "the dead node is forgotten");
    // A write the dead node had sent late is refused: it holds nothing any more.
    other.record_job(&execution.id, 0, &job("late", JobStatus::Resolved), owner);
    other.record_job(&execution.id, 1, &job("current", JobStatus::Resolved), other_owner);
    other.flush().await.unwrap();
    let jobs: Vec<String> =
        other.execution(&execution.id).await.unwrap().unwrap().jobs.into_iter().map(|j| j.node_key).collect();
    assert_eq!(jobs, ["current"]);
}

async fn a_node_that_finds_its_lease_expired_joins_again_under_a_new_identity(subject: Subject) {
    let store = &subject.store;
    let owner = subject.owner().await;
    let execution = new_execution("w", json!(1));
    store.enqueue(&execution, None, Some(owner), now()).await.unwrap();
    // As if it had been frozen past its lease.
    let StoreConfig::Postgres(postgres) = &subject.config else { unreachable!("a cluster check") };
    let database = postgres.url.rsplit('/').next().unwrap();
    PgServer::shared().psql(
        database,
        &format!("UPDATE hookflow.nodes SET expires_at = now() - interval '1 hour' WHERE id = {}", owner.0),
    );
    eventually("it joins again", async || store.owner().is_some_and(|current| current != owner)).await;
    let rejoined = store.owner().unwrap();
    let claimed = store.claim(rejoined, 10, now(), &no_limits()).await.unwrap();
    assert_eq!((claimed.len(), claimed[0].takeovers), (1, 1), "what it held was released as taken over");
    store.record_job(&execution.id, 0, &job("late", JobStatus::Resolved), owner);
    store.flush().await.unwrap();
    assert!(store.execution(&execution.id).await.unwrap().unwrap().jobs.is_empty(), "the old identity is fenced off");
    store.leave().await.unwrap();
    assert_eq!(store.nodes().await.unwrap(), [], "it left");
    let (other, other_owner) = subject.second_owner().await;
    assert_eq!(other.claim(other_owner, 10, now(), &no_limits()).await.unwrap().len(), 1, "what it held is free");
}

async fn a_failed_attempt_waits_for_its_next_one_with_its_resolved_jobs(subject: Subject) {
    let store = &subject.store;
    let owner = subject.owner().await;
    let (other, other_owner) = subject.second_owner().await;
    let mut execution = new_execution("w", json!(1));
    let start = now();
    store.enqueue(&execution, None, Some(owner), start).await.unwrap();
    let kept = job("kept", JobStatus::Resolved);
    store.record_job(&execution.id, 0, &kept, owner);
    store.record_job(&execution.id, 1, &job("failed", JobStatus::Error), owner);
    // Its own progress is written before another store is asked to reschedule it.
    store.flush().await.unwrap();
    let retry_at = Timestamp(start.0 + 60_000);
    execution.jobs = vec![kept.clone()];
    execution.attempt = 2;
    execution.retry_at = Some(retry_at);
    execution.error = Some("attempt 1 ended error: boom".into());
    other.schedule_retry(&execution, retry_at, other_owner);
    other.flush().await.unwrap();
    assert_eq!(store.execution(&execution.id).await.unwrap().unwrap().jobs.len(), 2, "only the holder reschedules");

    store.schedule_retry(&execution, retry_at, owner);
    store.flush().await.unwrap();
    assert_eq!(store.execution(&execution.id).await.unwrap(), Some(execution.clone()), "its progress is replaced");
    assert_eq!(store.claim(owner, 10, start, &no_limits()).await.unwrap(), [], "not before its next attempt");
    assert_eq!(store.next_due(start).await.unwrap(), Some(retry_at));
    let claimed = store.claim(other_owner, 10, retry_at, &no_limits()).await.unwrap();
    assert_eq!(claimed.len(), 1, "any owner runs the next attempt");
    let listed = store.executions(&ExecutionFilter::default(), None, 10).await.unwrap();
    assert_eq!((listed[0].attempt, listed[0].retry_at), (2, Some(retry_at)));
}

async fn a_failure_hook_is_queued_with_the_failure_it_reports(subject: Subject) {
    let store = &subject.store;
    let owner = subject.owner().await;
    let (other, other_owner) = subject.second_owner().await;
    let mut failed = new_execution("w", json!(1));
    store.enqueue(&failed, None, Some(owner), now()).await.unwrap();
    failed.status = ExecutionStatus::Error;
    failed.dead_letter = true;
    failed.finished_at = Some(now());
    let mut hook = new_execution("alerts", json!({"body": {"execution": {"id": failed.id}}}));
    hook.failure_of = Some(failed.id.clone());
    other.record_finished(&failed, RecordFate::Keep, other_owner, Some(&hook));
    other.flush().await.unwrap();
    assert!(store.execution(&hook.id).await.unwrap().is_none(), "a fenced-off finish queues no hook");

    store.record_finished(&failed, RecordFate::Keep, owner, Some(&hook));
    store.flush().await.unwrap();
    assert_eq!(store.execution(&failed.id).await.unwrap(), Some(failed.clone()));
    assert_eq!(store.execution(&hook.id).await.unwrap(), Some(hook.clone()));
    let claimed = store.claim(owner, 10, now(), &no_limits()).await.unwrap();
    assert_eq!(claimed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), [hook.id.as_str()], "the hook is queued");

    let mut sync = new_execution("w", json!(2));
    sync.status = ExecutionStatus::Failed;
    let mut sync_hook = new_execution("alerts", json!(3));
    sync_hook.failure_of = Some(sync.id.clone());
    let finish = SyncFinish {
        execution: &sync,
        fate: RecordFate::Keep,
        reply: None,
        idempotency: None,
        release: None,
        follow_up: Some(&sync_hook),
    };
    store.record_sync_execution(finish).await.unwrap().unwrap();
    assert_eq!(store.execution(&sync_hook.id).await.unwrap(), Some(sync_hook.clone()));
    assert_eq!(store.claim(owner, 10, now(), &no_limits()).await.unwrap().len(), 1, "a sync failure's hook too");
}

async fn a_redrive_reruns_each_execution_once(subject: Subject) {
    let store = &subject.store;
    let (other, _) = subject.second_owner().await;
    let mut dead = Vec::new();
    for n in 0..3 {
        let mut execution = new_execution("w", json!(n));
        execution.status = ExecutionStatus::Error;
        execution.dead_letter = n < 2;
        store.record_sync_execution(SyncFinish {
            execution: &execution,
            fate: RecordFate::Keep,
            reply: None,
            idempotency: None,
            release: None,
            follow_up: None,
        });
        dead.push(execution);
    }
    store.flush().await.unwrap();
    let filter = ExecutionFilter { dead_letter: Some(true), rerun: Some(false), ..ExecutionFilter::default() };
    let matched = store.executions(&filter, None, 1).await.unwrap();
    assert_eq!(matched.iter().map(|e| &e.id).collect::<Vec<_>>(), [&dead[1].id], "newest first, by a decoded field");
    let older = store.executions(&filter, Some(&dead[1].id), 10).await.unwrap();
    assert_eq!(older.iter().map(|e| &e.id).collect::<Vec<_>>(), [&dead[0].id]);

    let first = new_execution("w", dead[0].trigger.clone());
    let second = new_execution("w", dead[0].trigger.clone());
    let marked = |rerun: &Execution| Execution { rerun_as: Some(rerun.id.clone()), ..dead[0].clone() };
    assert_eq!(store.rerun(&marked(&first), &first, None, true, now()).await.unwrap(), Enqueued::New);
    // Another node's redrive, racing with the first: it re-runs nothing.
    let raced = other.rerun(&marked(&second), &second, None, true, now()).await.unwrap();
    assert_eq!(raced, Enqueued::Duplicate { execution_id: first.id.clone() });
    assert!(store.execution(&second.id).await.unwrap().is_none());
    assert_eq!(store.execution(&dead[0].id).await.unwrap().unwrap().rerun_as, Some(first.id.clone()));
    assert!(store.is_queued(&first.id).await.unwrap());
    let left = store.executions(&filter, None, 10).await.unwrap();
    assert_eq!(left.iter().map(|e| &e.id).collect::<Vec<_>>(), [&dead[1].id], "a re-run execution matches no more");
}

async fn the_refusal_log_keeps_the_newest_per_workflow(subject: Subject) {
    let store = &subject.store;
    let refusal = |n: usize, workflow: &str, code: &str| {
        let id = IDS.next(now());
        Refusal {
            id: id.to_string(),
            time: Timestamp(id.timestamp_ms()),
            workflow: workflow.into(),
            method: "POST".into(),
            status: 401,
            code: code.into(),
            reason: format!("refusal {n}"),
            client: "203.0.113.7".into(),
            headers: [("x-request".to_string(), n.to_string())].into(),
        }
    };
    let mut logged = Vec::new();
    for n in 0..7 {
        let code = if n % 2 == 0 { "invalid_signature" } else { "unauthorized" };
        let entry = refusal(n, "orders", code);
        store.record_refusal(&entry, 5).await.unwrap().unwrap();
        logged.push(entry);
    }
    let other = refusal(99, "billing", "rate_limited");
    store.record_refusal(&other, 5).await.unwrap().unwrap();
    let orders = RefusalFilter { workflow: Some("orders".into()), ..RefusalFilter::default() };
    let kept = store.refusals(&orders, None, 100).await.unwrap();
    let newest_five: Vec<Refusal> = logged[2..].iter().rev().cloned().collect();
    assert_eq!(kept, newest_five, "the oldest two were dropped");
    let all = store.refusals(&RefusalFilter::default(), None, 100).await.unwrap();
    assert_eq!(all.len(), 6);
    assert_eq!(all[0], other, "newest first across workflows");
    let page = store.refusals(&orders, Some(&logged[5].id), 2).await.unwrap();
    assert_eq!(page, [logged[4].clone(), logged[3].clone()], "a cursor pages back");
    let signatures = RefusalFilter { code: Some("invalid_signature".into()), ..orders.clone() };
    let found: Vec<String> =
        store.refusals(&signatures, None, 100).await.unwrap().into_iter().map(|r| r.reason).collect();
    assert_eq!(found, ["refusal 6", "refusal 4", "refusal 2"]);
    let since = RefusalFilter { since: Some(logged[6].time), ..orders };
    assert!(store.refusals(&since, None, 100).await.unwrap().iter().all(|r| r.time >= logged[6].time));
}

async fn activity_is_summed_over_writers_and_forgotten_when_old(subject: Subject) {
    let store = &subject.store;
    let counted = |requests: u64, resolved: u64, duration_ms: u64| {
        let mut activity = Activity { requests, refusals: 1, ..Activity::default() };
        for _ in 0..resolved {
            activity.execution("resolved", duration_ms);
        }
        activity
    };
    store.put_activity("orders", 100, "node-a", &counted(1, 1, 3)).await.unwrap().unwrap();
    store.put_activity("orders", 100, "node-a", &counted(5, 2, 3)).await.unwrap().unwrap();
    store.put_activity("orders", 100, "node-b", &counted(2, 1, 700)).await.unwrap().unwrap();
    store.put_activity("orders", 101, "node-a", &counted(7, 0, 0)).await.unwrap().unwrap();
    store.put_activity("billing", 100, "node-a", &counted(9, 0, 0)).await.unwrap().unwrap();
    let minutes = store.activity("orders", 100, 102).await.unwrap();
    assert_eq!(minutes.iter().map(|(minute, _)| *minute).collect::<Vec<_>>(), [100, 101]);
    let first = &minutes[0].1;
    assert_eq!(
        (first.requests, first.refusals, first.executions["resolved"]),
        (7, 2, 3),
        "a writer's later count replaces its earlier one"
    );
    assert_eq!(first.duration_quantile(0.5).map(f64::round), Some(4.0));
    assert!(first.duration_quantile(0.99).unwrap() > 500.0);
    assert_eq!(store.activity("orders", 101, 102).await.unwrap().len(), 1);
    store.delete_activity_before(101).await.unwrap().unwrap();
    assert_eq!(
        store.activity("orders", 0, 1000).await.unwrap().iter().map(|(minute, _)| *minute).collect::<Vec<_>>(),
        [101]
    );
    assert!(store.activity("billing", 0, 1000).await.unwrap().is_empty());
}

/// Each check of `both` as a test on each backend; each of `postgres` (what only a shared store
/// has: other nodes, leases, a second backend to compare with) on PostgreSQL.
macro_rules! conformance {
    (both: [$($check:ident),* $(,)?], postgres: [$($shared:ident),* $(,)?]) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(super::Subject::embedded(stringify!($check)).await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(super::Subject::postgres(stringify!($check)).await).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $shared() {
                    super::$shared(super::Subject::postgres(stringify!($shared)).await).await;
                }
            )*
        }
    };
}

conformance!(
    both: [
        workflows_change_by_compare_and_set,
        uploaded_components_are_kept,
        a_queued_execution_is_claimed_once_and_finished,
        an_execution_claimed_on_insert_is_not_claimed_again,
        writes_of_an_owner_that_lost_its_claim_are_refused,
        a_released_execution_waits_until_it_is_due,
        claims_keep_a_workflows_concurrency_limit,
        a_cancel_ends_what_nobody_holds_and_asks_the_holder_otherwise,
        an_idempotency_key_admits_one_execution,
        a_deleted_execution_frees_its_idempotency_key,
        a_sync_key_is_held_while_it_runs_then_keeps_its_answer_or_is_released,
        listings_follow_workflow_status_time_and_cursor,
        retention_finds_settled_executions_only,
        records_deeper_than_serde_json_reads_by_default_read_back,
        a_record_that_does_not_decode_is_listed_unreadable_and_can_be_deleted,
        a_failed_attempt_waits_for_its_next_one_with_its_resolved_jobs,
        a_failure_hook_is_queued_with_the_failure_it_reports,
        a_redrive_reruns_each_execution_once,
        the_refusal_log_keeps_the_newest_per_workflow,
        activity_is_summed_over_writers_and_forgotten_when_old,
    ],
    postgres: [
        records_are_the_same_bytes_in_both_backends,
        a_node_that_stops_renewing_is_reaped_and_its_work_taken_over,
        a_node_that_finds_its_lease_expired_joins_again_under_a_new_identity,
    ]
);
