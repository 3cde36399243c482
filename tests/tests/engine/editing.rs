//! What the console's editor stands on, over HTTP: test runs without a sender
//! (`POST /api/workflows/{key}/test`), one node tried on a sample
//! (`POST /api/workflows/{key}/nodes/{node}/test`), the secrets' names, and the dashboard's
//! activity (`GET /api/stats`).

use std::time::{Duration, Instant};

use hookflow_tests::http::{self, HttpResponse};
use hookflow_workflow::{ExecutionStatus, Secrets};
use serde_json::{Value, json};

use crate::util::TestServer;

fn admin(server: &TestServer, method: &str, path: &str, body: Option<Value>) -> HttpResponse {
    let body = body.map(|body| body.to_string()).unwrap_or_default();
    http::request(server.address, method, path, &[("Content-Type", "application/json")], body.as_bytes())
}

/// NocoBase's webhook example: a condition on `status == paid`, a success and a failure answer;
/// guarded by Basic auth (which test runs do not need).
fn seed() -> Value {
    json!({"key": "seed", "sync": true, "options": {"onFailure": "alerts"},
        "trigger": {"basicAuth": {"username": "shop", "password": "s3cret"}},
        "nodes": [{"key": "paid", "type": "condition", "config": {"calculation": {"group": {"type": "and",
            "calculations": [{"calculator": "equal", "operands": ["{{$context.body.status}}", "paid"]}]}}},
            "branches": {
                "true": [{"key": "ok", "type": "response", "config": {"statusCode": 200, "body": {"order": "{{$context.body.order}}", "source": "{{$context.query.source}}"}}}],
                "false": [{"key": "no", "type": "end", "config": {"status": "failed"}}]}}]})
}

fn alerts() -> Value {
    json!({"key": "alerts", "sync": false, "nodes": [{"key": "got", "type": "set", "config": {"values": {"x": 1}}}]})
}

#[test]
fn a_test_run_runs_a_sync_workflow_on_a_sample_without_the_senders_checks() {
    let server = TestServer::start(&[seed(), alerts()], |_| {});
    let sample =
        json!({"headers": {"X-Shop": "7"}, "query": "source=console&x[]=1", "body": {"status": "paid", "order": 42}});
    let ran = admin(&server, "POST", "/api/workflows/seed/test", Some(sample));
    assert_eq!(ran.status, 200, "{}", ran.text());
    let execution = ran.json();
    assert_eq!((&execution["status"], &execution["test"]), (&json!("resolved"), &json!(true)));
    assert_eq!(
        execution["trigger"]["query"],
        json!({"source": "console", "x": ["1"]}),
        "a query string is parsed as a request's"
    );
    assert_eq!(execution["trigger"]["headers"], json!({"x-shop": "7"}));
    assert_eq!(execution["jobs"][1]["output"]["body"], json!({"order": 42, "source": "console"}));
    let stored = server.execution(execution["id"].as_str().unwrap()).unwrap();
    assert!(stored.test, "the record says it was a test");
    let listed = admin(&server, "GET", "/api/executions?workflow=seed", None).json();
    assert_eq!(listed["items"][0]["test"], true);

    let failed = admin(&server, "POST", "/api/workflows/seed/test", Some(json!({"body": {"status": "open"}}))).json();
    assert_eq!(failed["status"], "failed");
    std::thread::sleep(Duration::from_millis(300));
    let hooks = admin(&server, "GET", "/api/executions?workflow=alerts", None).json();
    assert_eq!(hooks["items"], json!([]), "a test run starts no failure hook");

    let unknown = admin(&server, "POST", "/api/workflows/nope/test", Some(json!({})));
    assert_eq!((unknown.status, unknown.error_code()), (404, "not_found".to_string()));
    let wrong = admin(&server, "POST", "/api/workflows/seed/test", Some(json!({"bdy": {}})));
    assert_eq!((wrong.status, wrong.error_code()), (422, "validation_failed".to_string()), "{}", wrong.text());
    let not_json = http::request(
        server.address,
        "POST",
        "/api/workflows/seed/test",
        &[("Content-Type", "application/json")],
        b"{",
    );
    assert_eq!(not_json.error_code(), "invalid_json");
}

#[test]
fn a_test_run_queues_an_async_workflow() {
    let server = TestServer::start(&[alerts()], |_| {});
    let ran = admin(&server, "POST", "/api/workflows/alerts/test", Some(json!({"body": {"n": 1}})));
    assert_eq!(ran.status, 202, "{}", ran.text());
    assert_eq!((&ran.json()["status"], &ran.json()["test"]), (&json!("queued"), &json!(true)));
    let done = server.finished_execution(ran.json()["id"].as_str().unwrap());
    assert_eq!((done.status, done.test), (ExecutionStatus::Resolved, true));
}

#[test]
fn one_node_is_tried_on_a_sample_as_stored_or_as_changed() {
    let server = TestServer::start(&[seed()], |config| {
        config.host.secrets = std::sync::Arc::new(Secrets::new([("SHOP_TOKEN", "token-value-123")]).unwrap());
    });
    let sample = json!({"trigger": {"body": {"status": "paid", "order": 7}}});
    let condition = admin(&server, "POST", "/api/workflows/seed/nodes/paid/test", Some(sample.clone())).json();
    assert_eq!(condition["status"], "resolved");
    assert_eq!(condition["directive"], json!({"type": "branch", "branch": "true"}));
    assert_eq!(condition["output"], json!({"result": true}));
    assert_eq!(condition["config"]["calculation"]["group"]["calculations"][0]["operands"], json!(["paid", "paid"]));

    let reply = admin(&server, "POST", "/api/workflows/seed/nodes/ok/test", Some(sample.clone())).json();
    assert_eq!(reply["directive"]["type"], "respond");
    assert_eq!(
        (reply["directive"]["status"].as_u64(), reply["directive"]["continue"].as_bool()),
        (Some(200), Some(false))
    );
    let body: Value = serde_json::from_str(reply["directive"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body, json!({"order": 7, "source": null}));

    let end = admin(&server, "POST", "/api/workflows/seed/nodes/no/test", Some(json!({}))).json();
    assert_eq!((&end["status"], &end["directive"]), (&json!("failed"), &json!({"type": "end", "status": "failed"})));

    // A change not saved yet, reading an earlier node's output and a secret (masked when shown).
    let changed = json!({"jobs": {"paid": {"result": true}}, "type": "set",
        "config": {"values": {"was": "{{$jobsMapByNodeKey.paid.result}}", "token": "{{$secrets.SHOP_TOKEN}}"}}});
    let tried = admin(&server, "POST", "/api/workflows/seed/nodes/new_one/test", Some(changed)).json();
    assert_eq!(tried["output"], json!({"was": true, "token": "********"}));
    assert_eq!(tried["config"]["values"]["token"], "********");

    let missing = admin(&server, "POST", "/api/workflows/seed/nodes/nope/test", Some(json!({})));
    assert_eq!(missing.status, 404);
    let unknown_type = admin(&server, "POST", "/api/workflows/seed/nodes/x/test", Some(json!({"type": "nope"})));
    assert_eq!((unknown_type.status, unknown_type.error_code()), (422, "validation_failed".to_string()));
    let bad_template =
        admin(&server, "POST", "/api/workflows/seed/nodes/paid/test", Some(json!({"config": {"x": "{{$nope}}"}})));
    assert_eq!(bad_template.status, 422, "{}", bad_template.text());

    let names = admin(&server, "GET", "/api/secrets", None).json();
    assert_eq!(names["items"], json!([{"name": "SHOP_TOKEN"}]));
    assert!(!names.to_string().contains("token-value-123"));
}

#[test]
fn the_dashboard_counts_requests_refusals_executions_and_durations() {
    let server = TestServer::start(&[seed(), alerts()], |_| {});
    let paid = br#"{"status": "paid", "order": 1}"#;
    let auth = ("Authorization", "Basic c2hvcDpzM2NyZXQ="); // shop:s3cret
    for _ in 0..3 {
        assert_eq!(server.post("seed", &[("Content-Type", "application/json"), auth], paid).status, 200);
    }
    assert_eq!(
        server.post("seed", &[("Content-Type", "application/json"), auth], br#"{"status": "open"}"#).status,
        500
    );
    assert_eq!(server.post("seed", &[("Content-Type", "application/json")], paid).status, 401);
    let deadline = Instant::now() + Duration::from_secs(20);
    let stats = loop {
        let stats = admin(&server, "GET", "/api/stats?workflow=seed", None).json();
        let last = stats["points"].as_array().unwrap().last().unwrap().clone();
        if last["executions"]["resolved"] == 3 && last["executions"]["failed"] == 1 {
            break stats;
        }
        assert!(Instant::now() < deadline, "the executions were never counted: {stats}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!((&stats["range"], &stats["stepSeconds"]), (&json!("hour"), &json!(60)));
    let points = stats["points"].as_array().unwrap();
    assert_eq!(points.len(), 60);
    let requests: u64 = points.iter().map(|point| point["requests"].as_u64().unwrap()).sum();
    let refusals: u64 = points.iter().map(|point| point["refusals"].as_u64().unwrap()).sum();
    assert_eq!((requests, refusals), (5, 1));
    let last = points.last().unwrap();
    assert!(
        last["p50Ms"].as_f64().unwrap() >= 0.0 && last["p99Ms"].as_f64().unwrap() >= last["p50Ms"].as_f64().unwrap()
    );
    assert!(points[0]["p50Ms"].is_null(), "no executions, no duration");

    let overall = admin(&server, "GET", "/api/stats?range=day", None).json();
    assert_eq!((overall["points"].as_array().unwrap().len(), &overall["stepSeconds"]), (96, &json!(900)));
    let ended: u64 = overall["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|point| point["executions"]["resolved"].as_u64().unwrap_or(0))
        .sum();
    assert!(ended >= 3, "every workflow's (the failure hook's too, once it ran): {overall}");
    let wrong = admin(&server, "GET", "/api/stats?range=week", None);
    assert_eq!((wrong.status, wrong.error_code()), (422, "validation_failed".to_string()));

    // Counts survive a restart (they are in the store, under each process's own writer).
    let data_dir = server.stop();
    let server = TestServer::start_in(data_dir, |_| {});
    let again = admin(&server, "GET", "/api/stats?workflow=seed", None).json();
    let requests: u64 =
        again["points"].as_array().unwrap().iter().map(|point| point["requests"].as_u64().unwrap()).sum();
    assert_eq!(requests, 5);
}
