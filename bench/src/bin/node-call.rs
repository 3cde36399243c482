//! Cost of one node call with small JSON — a built-in's warm instance, and a fresh instance from
//! the `InstancePre` as every custom node gets — and of one execution of the demo flow (condition + response), in a plain timed loop.
//!
//! `cargo run --release -p hookflow-bench --bin node-call [ITERATIONS]`

use std::time::{Duration, Instant};

use hookflow_plugin::{BUILTIN_NODES, HostConfig, PluginHost};
use hookflow_workflow::{Execution, NodeCall, NodeRunner, OwnedContext, compile, execute, parse_workflow};
use serde_json::json;

const WARM_UP: u32 = 200;

fn main() {
    let iterations: u32 = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(20_000);
    let cache_dir = std::env::temp_dir().join("hookflow-bench-cache");
    let host = PluginHost::new(HostConfig { cache_dir: Some(cache_dir), ..HostConfig::default() })
        .unwrap_or_else(|e| panic!("cannot start the plugin host: {e}"));

    let config = json!({"rejectOnFalse": false, "calculation": {"group": {"type": "and", "calculations": [
        {"calculator": "equal", "operands": ["paid", "paid"]}]}}})
    .to_string();
    let context =
        OwnedContext::new("bench", json!({"headers": {}, "query": {}, "body": {"status": "paid", "order": 42}}));
    let call = NodeCall {
        execution_id: "bench",
        node_key: "check",
        config: &config,
        context: context.context(),
        deadline: None,
    };
    let per_call = time(iterations, || {
        host.run("condition", &call).unwrap_or_else(|e| panic!("node call failed: {e}"));
    });
    // The same component installed as a custom type: a fresh instance per call.
    let (_, condition) = BUILTIN_NODES.iter().find(|(name, _)| *name == "condition").expect("the built-in condition");
    host.install("custom-condition", condition).unwrap_or_else(|e| panic!("{e}"));
    let per_fresh_call = time(iterations, || {
        host.run("custom-condition", &call).unwrap_or_else(|e| panic!("node call failed: {e}"));
    });

    let definition = json!({"key": "demo-payment", "sync": true, "nodes": [
        {"key": "check", "type": "condition",
         "config": {"rejectOnFalse": false, "calculation": {"group": {"type": "and", "calculations": [
            {"calculator": "equal", "operands": ["{{$context.body.status}}", "paid"]}]}}},
         "branches": {
            "true": [{"key": "ok", "type": "response",
                      "config": {"statusCode": 200, "body": {"ok": true, "order": "{{$context.body.order}}"}}}],
            "false": [{"key": "fail", "type": "response", "config": {"statusCode": 400, "body": {"ok": false}}}]}}
    ]});
    let workflow = parse_workflow(&definition.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let plan = compile(&workflow, &host).unwrap_or_else(|e| panic!("{e}"));
    let trigger = json!({"headers": {}, "query": {}, "body": {"status": "paid", "order": 42}});
    let ids = hookflow_workflow::ExecutionIds::default();
    let per_execution = time(iterations / 2, || {
        let mut execution = Execution::new(
            ids.next(hookflow_workflow::timestamp::Timestamp::now()),
            "demo-payment",
            1,
            trigger.clone(),
        );
        execute(&host, &plan, &mut execution, &mut ());
        assert_eq!(execution.jobs.len(), 2, "{execution:#?}");
    });

    println!("node call (warm built-in instance, condition): {:>8.1} µs", micros(per_call));
    println!("node call (fresh instance, condition):         {:>8.1} µs", micros(per_fresh_call));
    println!("demo execution (condition + response):         {:>8.1} µs", micros(per_execution));
    println!("({iterations} node calls, {} executions, after {WARM_UP} warm-up rounds each)", iterations / 2);
}

/// Mean wall time of `f` over `iterations` runs, after a warm-up.
fn time(iterations: u32, mut f: impl FnMut()) -> Duration {
    for _ in 0..WARM_UP {
        f();
    }
    let started = Instant::now();
    for _ in 0..iterations {
        f();
    }
    started.elapsed() / iterations.max(1)
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}
