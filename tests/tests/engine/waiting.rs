//! Delay nodes over HTTP: a waiting execution holds no worker, can be canceled while it waits,
//! resumes after a restart, and goes through several delays (also inside a loop) once each.

use std::time::{Duration, Instant};

use hookflow_tests::http;
use hookflow_workflow::{ExecutionStatus, JobStatus};
use serde_json::{Value, json};

use crate::util::TestServer;

fn delayed(key: &str, duration: &str) -> Value {
    json!({"key": key, "sync": false, "nodes": [
        {"key": "wait", "type": "delay", "config": {"duration": duration}},
        {"key": "after", "type": "set", "config": {"values": {"order": "{{$context.body.order}}"}}}
    ]})
}

fn quick() -> Value {
    json!({"key": "quick", "sync": false, "nodes": [{"key": "only", "type": "set", "config": {"values": {"ok": true}}}]})
}

fn accepted_id(response: &http::HttpResponse) -> String {
    assert_eq!(response.status, 200, "{}", response.text());
    response.header("x-hookflow-execution").unwrap().to_string()
}

/// Waits until the execution's delay job is recorded as pending.
fn wait_until_pending(server: &TestServer, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server.execution(id).is_some_and(|e| e.jobs.first().is_some_and(|job| job.status == JobStatus::Pending)) {
        assert!(Instant::now() < deadline, "the delay never started: {:?}", server.execution(id));
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_waiting_execution_holds_no_worker() {
    let server = TestServer::start(&[delayed("slow", "1h"), quick()], |config| config.dispatch.workers = 1);
    let waiting = accepted_id(&server.post_json("slow", &json!({"order": 1})));
    wait_until_pending(&server, &waiting);
    let other = accepted_id(&server.post_json("quick", &json!({})));
    assert_eq!(server.finished_execution(&other).status, ExecutionStatus::Resolved, "the one worker was free");
    let still = server.execution(&waiting).unwrap();
    assert_eq!(still.status, ExecutionStatus::Started);
    assert_eq!(still.jobs.len(), 1);
}

#[test]
fn an_operator_cancels_a_waiting_execution_at_once() {
    let server = TestServer::start(&[delayed("slow", "1h")], |_| {});
    let id = accepted_id(&server.post_json("slow", &json!({"order": 1})));
    wait_until_pending(&server, &id);
    let canceled = http::request(server.address, "POST", &format!("/api/executions/{id}/cancel"), &[], b"");
    assert_eq!(canceled.status, 202, "{}", canceled.text());
    let execution = server.finished_execution(&id);
    assert_eq!(execution.status, ExecutionStatus::Canceled);
    assert_eq!(execution.jobs.len(), 1, "the node after the delay never ran");
    assert_eq!(execution.jobs[0].status, JobStatus::Canceled);
}

#[test]
fn a_delay_goes_on_after_a_restart() {
    let server = TestServer::start(&[delayed("later", "1500ms")], |_| {});
    let id = accepted_id(&server.post_json("later", &json!({"order": 7})));
    wait_until_pending(&server, &id);
    let pending = server.execution(&id).unwrap().jobs[0].clone();
    let data = server.stop();

    let restarted = TestServer::start_in(data, |_| {});
    let execution = restarted.finished_execution(&id);
    assert_eq!(execution.status, ExecutionStatus::Resolved);
    let wait = &execution.jobs[0];
    assert_eq!((wait.status, wait.started_at), (JobStatus::Resolved, pending.started_at), "the same job, resolved");
    assert!(wait.finished_at.0 >= pending.started_at.0 + 1500, "it waited the whole duration");
    assert!(execution.jobs[1].started_at >= wait.finished_at);
    assert_eq!(execution.jobs[1].output, json!({"order": 7}));
}

#[test]
fn several_delays_and_a_delay_in_a_loop_each_run_once() {
    let workflow = json!({"key": "steps", "sync": false, "nodes": [
        {"key": "first", "type": "delay", "config": {"duration": "150ms"}},
        {"key": "between", "type": "set", "config": {"values": {"at": "between"}}},
        {"key": "second", "type": "delay", "config": {"duration": "150ms"}},
        {"key": "each", "type": "loop", "config": {"target": 2}, "branches": {"body": [
            {"key": "pause", "type": "delay", "config": {"duration": "100ms"}},
            {"key": "visit", "type": "set", "config": {"values": {"n": "{{$scopes.each.sequence}}"}}}]}},
        {"key": "last", "type": "set", "config": {"values": {"done": true}}}
    ]});
    let server = TestServer::start(&[workflow], |_| {});
    let id = accepted_id(&server.post_json("steps", &json!({})));
    let execution = server.finished_execution(&id);
    assert_eq!(execution.status, ExecutionStatus::Resolved, "{execution:?}");
    let keys: Vec<&str> = execution.jobs.iter().map(|job| job.node_key.as_str()).collect();
    assert_eq!(keys, ["first", "between", "second", "each", "pause", "visit", "pause", "visit", "last"]);
    assert!(execution.jobs.iter().all(|job| job.status == JobStatus::Resolved));
    let visits: Vec<&Value> =
        execution.jobs.iter().filter(|job| job.node_key == "visit").map(|job| &job.output["n"]).collect();
    assert_eq!(visits, [&json!(1), &json!(2)]);
    for pair in execution.jobs.windows(2) {
        assert!(pair[1].started_at >= pair[0].finished_at, "jobs ran in order, each once: {pair:?}");
    }
}
