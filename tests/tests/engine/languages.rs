//! Nodes written in other languages, built from source with their real tool chains, uploaded
//! through the admin API and run in a workflow over HTTP.

use std::path::{Path, PathBuf};
use std::process::Command;

use hookflow_tests::http;
use serde_json::{Value, json};

use crate::util::{TestServer, fresh_dir};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Runs a build tool; a missing tool fails with the command that installs it.
fn build(program: &str, args: &[&str], dir: &Path, install: &str) {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): install it with `{install}` (scripts/test does)"));
    assert!(
        output.status.success(),
        "{program} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The order-scoring workflow every language's example node is tried in.
fn scoring_workflow(node_type: &str) -> Value {
    json!({"key": format!("score-{node_type}"), "sync": true, "nodes": [
        {"key": "score", "type": node_type, "config": {"threshold": 100, "order": "{{$context.body}}"},
         "branches": {
            "high": [{"key": "fast", "type": "response", "config": {"body": {"lane": "priority", "score": "{{$jobsMapByNodeKey.score.score}}"}}}],
            "low": [{"key": "slow", "type": "response", "config": {"body": {"lane": "standard", "score": "{{$jobsMapByNodeKey.score.score}}"}}}]}}]})
}

/// Uploads `wasm` as `node_type`, deploys the scoring workflow and calls it as a shop would.
fn runs_the_scoring_workflow(node_type: &str, wasm: &[u8]) {
    let server = TestServer::start(&[], |_| {});
    let uploaded = http::request(
        server.address,
        "PUT",
        &format!("/api/plugins/{node_type}"),
        &[("Content-Type", "application/wasm")],
        wasm,
    );
    assert_eq!(uploaded.status, 201, "{}", uploaded.text());
    assert_eq!(uploaded.json()["branches"], json!(["high", "low"]));
    let workflow = scoring_workflow(node_type);
    let created = http::request(
        server.address,
        "POST",
        "/api/workflows",
        &[("Content-Type", "application/json")],
        workflow.to_string().as_bytes(),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let key = workflow["key"].as_str().unwrap();

    // Languages write numbers their own way (15 or 15.0): compare them as numbers.
    let answer = |response: http::HttpResponse| {
        let body = response.json();
        (response.status, body["lane"].as_str().unwrap_or_default().to_string(), body["score"].as_f64())
    };
    let vip = json!({"items": [{"price": 30, "qty": 2}, {"price": 25, "qty": 1}], "vip": true});
    assert_eq!(answer(server.post_json(key, &vip)), (200, "priority".into(), Some(127.5)));
    let small = json!({"items": [{"price": 5, "qty": 3}]});
    assert_eq!(answer(server.post_json(key, &small)), (200, "standard".into(), Some(15.0)));

    let bad = server.post_json(key, &json!({"items": [{"price": "lots"}]}));
    assert_eq!(bad.status, 500);
    let id = bad.header("x-hookflow-execution").unwrap();
    let job = &server.finished_execution(id).jobs[0];
    assert_eq!(job.error.as_deref(), Some("order.items[0]: expected {price, qty}"));
}

#[test]
fn a_rust_node_built_with_the_sdk_runs_in_a_workflow() {
    let example = repository().join("examples/nodes/rust/scorer");
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("rust-example");
    let args = ["build", "--release", "--target", "wasm32-wasip2", "--target-dir", target.to_str().unwrap()];
    build(env!("CARGO"), &args, &example, "rustup target add wasm32-wasip2");
    let wasm = std::fs::read(target.join("wasm32-wasip2/release/scorer.wasm")).unwrap();
    runs_the_scoring_workflow("scorer-rs", &wasm);
}

#[test]
fn a_python_node_built_with_componentize_py_runs_in_a_workflow() {
    let example = repository().join("examples/nodes/python/scorer");
    let out = fresh_dir("python-node").join("scorer.wasm");
    let wit = repository().join("wit");
    let args =
        ["-d", wit.to_str().unwrap(), "-w", "context-reader", "componentize", "app", "-o", out.to_str().unwrap()];
    build("componentize-py", &args, &example, "pip install componentize-py==0.25.1");
    runs_the_scoring_workflow("scorer-py", &std::fs::read(&out).unwrap());
}

#[test]
fn a_javascript_node_built_with_componentize_js_runs_in_a_workflow() {
    let example = repository().join("examples/nodes/js/scorer");
    assert!(
        example.join("node_modules/.bin/componentize-js").exists(),
        "the JavaScript tool chain is not installed: run `npm ci --prefix examples/nodes/js/scorer` (scripts/test does)"
    );
    build("npm", &["run", "--silent", "build"], &example, "npm ci --prefix examples/nodes/js/scorer");
    runs_the_scoring_workflow("scorer-js", &std::fs::read(example.join("scorer.wasm")).unwrap());
}
