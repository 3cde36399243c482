//! Micro-benchmarks (criterion) of the hot path's parts: one node call (a built-in's warm instance,
//! and a fresh instance from the `InstancePre` as every custom node gets), template resolution, query and body parsing, and a durable redb commit
//! of one execution against a group of 64 committed together.
//!
//! `cargo bench -p hookflow-bench --bench micro` measures; `cargo test -p hookflow-bench --benches`
//! runs each once.

use std::hint::black_box;
use std::path::PathBuf;

use axum::http::{HeaderMap, HeaderValue, header};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use hookflow_plugin::{BUILTIN_NODES, HostConfig, PluginHost};
use hookflow_server::http::ingress::{parse_body, parse_query};
use hookflow_store::Store;
use hookflow_workflow::template::{Scope, Template};
use hookflow_workflow::timestamp::Timestamp;
use hookflow_workflow::{Execution, NodeCall, NodeRunner, OwnedContext};
use serde_json::{Map, json};

/// A scratch directory of this process under the system's temporary directory.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hookflow-micro-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

fn node_call(c: &mut Criterion) {
    let cache = std::env::temp_dir().join("hookflow-micro-component-cache");
    let host = PluginHost::new(HostConfig { cache_dir: Some(cache), ..HostConfig::default() }).expect("the host");
    let config = json!({"rejectOnFalse": false, "calculation": {"group": {"type": "and", "calculations": [
        {"calculator": "equal", "operands": ["paid", "paid"]}]}}})
    .to_string();
    let context = OwnedContext::new("x", json!({"headers": {}, "query": {}, "body": {"status": "paid", "order": 42}}));
    let call =
        NodeCall { execution_id: "x", node_key: "check", config: &config, context: context.context(), deadline: None };
    c.bench_function("node call: condition (warm built-in instance + run)", |b| {
        b.iter(|| host.run("condition", black_box(&call)).expect("the condition runs"))
    });
    // The same component installed as a custom type: a fresh instance per call.
    let (_, condition) = BUILTIN_NODES.iter().find(|(name, _)| *name == "condition").expect("the built-in condition");
    host.install("custom-condition", condition).expect("the condition installs as a custom type");
    c.bench_function("node call: condition (fresh instance + run)", |b| {
        b.iter(|| host.run("custom-condition", black_box(&call)).expect("the condition runs"))
    });
}

fn templates(c: &mut Criterion) {
    let config = json!({"statusCode": 200, "body": {"ok": true, "order": "{{$context.body.order}}",
        "label": "order {{$context.body.order}} for {{$context.body.customer.name}}",
        "items": "{{$context.body.items.sku}}", "check": "{{$jobsMapByNodeKey.check.result}}"}});
    let template = Template::compile(&config, "config").expect("templates compile");
    let trigger = json!({"headers": {}, "query": {}, "body": {"order": 42, "customer": {"name": "Ada"},
        "items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}, {"sku": "C", "qty": 3}]}});
    let mut jobs = Map::new();
    jobs.insert("check".into(), json!({"result": true}));
    let (system, execution, scopes) = (json!({"now": "2026-11-29T00:00:00Z"}), json!({"id": "x"}), Map::new());
    let scope = Scope {
        context: &trigger,
        jobs: &jobs,
        system: &system,
        execution: &execution,
        scopes: &scopes,
        secrets: &scopes,
    };
    c.bench_function("template: resolve a response config (5 templates)", |b| {
        b.iter(|| black_box(template.resolve(black_box(&scope))))
    });
}

fn parsing(c: &mut Criterion) {
    c.bench_function("parse: query string (nested keys)", |b| {
        b.iter(|| parse_query(black_box("a=1&b[0][c]=2&b[1]=x&utm_source=mail&tags[]=x&tags[]=y")))
    });
    let body = json!({"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {
        "id": "pi_1", "amount": 2000, "currency": "eur", "metadata": {"order": "42"},
        "charges": [{"id": "ch_1", "paid": true}, {"id": "ch_2", "paid": false}]}}})
    .to_string();
    let mut json_headers = HeaderMap::new();
    json_headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    c.bench_function("parse: JSON body (a payment event)", |b| {
        b.iter(|| parse_body(&json_headers, black_box(body.as_bytes())).expect("valid JSON"))
    });
    let mut form_headers = HeaderMap::new();
    form_headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
    let form = "status=paid&order=42&customer[name]=Ada&items[0][sku]=A&items[1][sku]=B";
    c.bench_function("parse: form body", |b| {
        b.iter(|| parse_body(&form_headers, black_box(form.as_bytes())).expect("valid form"))
    });
}

fn commits(c: &mut Criterion) {
    let dir = scratch("store");
    let store = Store::open_file(&dir.join("hookflow.redb")).expect("the store");
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime");
    let trigger = json!({"headers": {}, "query": {}, "body": {"status": "paid", "order": 42}});
    let ids = hookflow_workflow::ExecutionIds::default();
    let execution = || Execution::new(ids.next(Timestamp::now()), "bench", 1, trigger.clone());
    let mut group = c.benchmark_group("redb: durable enqueue (fsync)");
    group.throughput(Throughput::Elements(1));
    group.bench_function("one execution per commit", |b| {
        b.iter_batched(
            execution,
            |execution| runtime.block_on(store.enqueue(&execution, None, None, Timestamp::now())).expect("committed"),
            BatchSize::SmallInput,
        )
    });
    group.throughput(Throughput::Elements(64));
    group.bench_function("64 executions, one group commit", |b| {
        b.iter_batched(
            || (0..64).map(|_| execution()).collect::<Vec<_>>(),
            |executions| {
                runtime.block_on(async {
                    let mut tasks = tokio::task::JoinSet::new();
                    for execution in executions {
                        let store = store.clone();
                        tasks.spawn(async move { store.enqueue(&execution, None, None, Timestamp::now()).await });
                    }
                    while let Some(committed) = tasks.join_next().await {
                        committed.expect("the task ran").expect("committed");
                    }
                })
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(micro, node_call, templates, parsing, commits);
criterion_main!(micro);
