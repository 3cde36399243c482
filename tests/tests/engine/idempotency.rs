//! Idempotency keys (`trigger.idempotency`) and deadline-aware sync (`trigger.syncDeadlineMs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hookflow_tests::http::{self, HttpResponse};
use hookflow_workflow::ManualClock;
use hookflow_workflow::timestamp::Timestamp;
use serde_json::{Value, json};

use crate::util::TestServer;

fn execution_of(response: &HttpResponse) -> String {
    response.header("x-hookflow-execution").unwrap_or_else(|| panic!("no execution: {}", response.text())).to_string()
}

fn async_by_header() -> Value {
    json!({"key": "orders", "sync": false, "trigger": {"idempotency": {"header": "Idempotency-Key"}},
           "nodes": [{"key": "c", "type": "condition", "config": {}}]})
}

fn sync_by_body(ms: u64) -> Value {
    json!({"key": "charge", "sync": true, "trigger": {"idempotency": {"bodyPath": "event.id"}},
           "nodes": [{"key": "work", "type": "misbehave", "config": {"mode": "busy", "ms": ms}},
                     {"key": "r", "type": "response", "config": {"statusCode": 201, "body": {"run": "{{$execution.id}}"}}}]})
}

#[test]
fn async_repeats_answer_like_the_first_and_start_nothing() {
    let server = TestServer::start(&[async_by_header()], |_| {});
    let send = |key: Option<&str>| {
        let headers: Vec<(&str, &str)> = key.map(|k| ("Idempotency-Key", k)).into_iter().collect();
        server.post("orders", &headers, b"")
    };
    let first = send(Some("k-1"));
    assert_eq!((first.status, first.text().as_str()), (200, "ok"));
    let repeat = send(Some("k-1"));
    assert_eq!((repeat.status, repeat.text().as_str()), (200, "ok"));
    assert_eq!(execution_of(&repeat), execution_of(&first), "the repeat names the first execution");
    assert_ne!(execution_of(&send(Some("k-2"))), execution_of(&first));
    assert_ne!(execution_of(&send(None)), execution_of(&send(None)), "no key, no deduplication");
    server.finished_execution(&execution_of(&first));

    // Remembered across a restart.
    let id = execution_of(&first);
    let data = server.stop();
    let restarted = TestServer::start_in(data, |_| {});
    let after = restarted.post("orders", &[("Idempotency-Key", "k-1")], b"");
    assert_eq!(execution_of(&after), id);
}

#[test]
fn sync_repeats_get_the_stored_answer_and_409_while_running() {
    let server = TestServer::start(&[sync_by_body(1500)], |config| config.host.time_budget = Duration::from_secs(10));
    let body = br#"{"event": {"id": "evt_1"}}"#;
    let address = server.address;
    // Two overlapping requests with one key: one runs, the other is told the first is running.
    let requests: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                http::post(address, "/api/webhook:trigger/charge", &[("Content-Type", "application/json")], body)
            })
        })
        .collect();
    let mut responses: Vec<HttpResponse> = requests.into_iter().map(|request| request.join().unwrap()).collect();
    responses.sort_by_key(|response| response.status);
    let (first, concurrent) = (&responses[0], &responses[1]);
    assert_eq!(concurrent.status, 409, "{}", concurrent.text());
    assert_eq!(concurrent.error_code(), "conflict");
    assert_eq!(first.status, 201);
    assert_eq!(first.json(), json!({"run": execution_of(first)}));

    let repeat = server.post("charge", &[("Content-Type", "application/json")], body);
    assert_eq!((repeat.status, repeat.json()), (201, first.json()), "the stored answer, not a second run");
    assert_eq!(execution_of(&repeat), execution_of(first));

    let other = server.post("charge", &[("Content-Type", "application/json")], br#"{"event": {"id": 7}}"#);
    assert_eq!(other.status, 201);
    assert_ne!(execution_of(&other), execution_of(first), "a numeric key is a different key");
}

#[test]
fn keys_expire_after_their_ttl() {
    let workflow = json!({"key": "short", "sync": false, "trigger": {"idempotency": {"header": "X-Key", "ttlSeconds": 2}},
                          "nodes": []});
    let clock = Arc::new(ManualClock::at(Timestamp::now()));
    let server = TestServer::start(&[workflow], |config| config.clock = clock.clone());
    let first = server.post("short", &[("X-Key", "a")], b"");
    clock.advance(Duration::from_millis(1999));
    let repeat = server.post("short", &[("X-Key", "a")], b"");
    assert_eq!(execution_of(&repeat), execution_of(&first), "within the TTL");
    clock.advance(Duration::from_millis(1));
    assert_ne!(execution_of(&server.post("short", &[("X-Key", "a")], b"")), execution_of(&first), "once it has passed");
}

#[test]
fn a_sync_run_past_its_deadline_answers_202_and_can_be_polled() {
    let workflow = json!({"key": "deadline", "sync": true,
        "trigger": {"syncDeadlineMs": 200, "basicAuth": {"username": "u", "password": "p"}},
        "nodes": [{"key": "work", "type": "misbehave", "config": {"mode": "busy", "ms": 1200}},
                  {"key": "r", "type": "response", "config": {"body": "finally"}}]});
    let server = TestServer::start(&[workflow], |config| config.host.time_budget = Duration::from_secs(10));
    let auth = [("Authorization", "Basic dTpw")]; // u:p
    let accepted = server.post("deadline", &auth, b"");
    assert_eq!(accepted.status, 202, "{}", accepted.text());
    let id = execution_of(&accepted);
    let location = accepted.header("location").unwrap().to_string();
    assert_eq!(location, format!("/api/webhook:result/{id}"));
    assert_eq!(accepted.json()["executionId"], json!(id));

    let polled = http::request(server.address, "GET", &location, &auth, b"");
    assert_eq!(polled.status, 202, "still running");
    assert_eq!(http::request(server.address, "GET", &location, &[], b"").status, 401, "authorised like the trigger");
    assert_eq!(http::request(server.address, "GET", "/api/webhook:result/nonesuch", &auth, b"").status, 404);

    let deadline = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let polled = http::request(server.address, "GET", &location, &auth, b"");
        if polled.status != 202 {
            break polled;
        }
        assert!(Instant::now() < deadline, "the execution never finished");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!((done.status, done.text().as_str()), (200, "finally"), "the execution went on and its answer was kept");
    assert_eq!(execution_of(&done), id);
}

#[test]
fn failed_sync_answers_are_not_kept_under_their_key() {
    let flaky = json!({"key": "flaky", "sync": true, "trigger": {"idempotency": {"header": "Idempotency-Key"}},
        "nodes": [{"key": "work", "type": "misbehave", "config": {"mode": "{{$context.body.mode}}", "ms": "{{$context.body.ms}}"}},
                  {"key": "r", "type": "response", "config": {"body": {"run": "{{$execution.id}}"}}}]});
    let server = TestServer::start(&[flaky], |config| {
        config.dispatch.sync_timeout = Duration::from_millis(300);
        config.host.time_budget = Duration::from_secs(10);
    });
    let send = |key: &str, body: Value| {
        server.post(
            "flaky",
            &[("Content-Type", "application/json"), ("Idempotency-Key", key)],
            body.to_string().as_bytes(),
        )
    };

    let trapped = send("evt-1", json!({"mode": "trap"}));
    assert_eq!((trapped.status, trapped.error_code()), (500, "execution_failed".to_string()), "{}", trapped.text());
    let retried = send("evt-1", json!({"mode": "fine"}));
    assert_eq!(retried.status, 200, "the retry ran again: {}", retried.text());
    assert_ne!(execution_of(&retried), execution_of(&trapped));
    let repeated = send("evt-1", json!({"mode": "trap"}));
    assert_eq!(
        (repeated.status, execution_of(&repeated)),
        (200, execution_of(&retried)),
        "the success is what the key remembers"
    );

    let slow = send("evt-2", json!({"mode": "busy", "ms": 1000}));
    assert_eq!(slow.status, 504, "{}", slow.text());
    let first = server.finished_execution(&execution_of(&slow));
    assert_eq!(first.status.as_str(), "aborted");
    // The first execution lets go of the key just after its record is written.
    let deadline = Instant::now() + Duration::from_secs(10);
    let retried = loop {
        let retried = send("evt-2", json!({"mode": "fine"}));
        if retried.status != 409 || Instant::now() > deadline {
            break retried;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(retried.status, 200, "a 504 is not remembered either: {}", retried.text());
}

/// Executions of `workflow` stored now.
fn executions_of(server: &TestServer, workflow: &str) -> Vec<hookflow_workflow::Execution> {
    let filter = hookflow_store::ExecutionFilter { workflow: Some(workflow.into()), ..Default::default() };
    hookflow_tests::block_on(server.server().store().executions(&filter, None, 100)).unwrap()
}

#[test]
fn concurrent_async_duplicates_of_one_key_start_one_execution() {
    let server = TestServer::start(&[async_by_header()], |_| {});
    let address = server.address;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(16));
    let senders: Vec<_> = (0..16)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                http::post(address, "/api/webhook:trigger/orders", &[("Idempotency-Key", "same-event")], b"")
            })
        })
        .collect();
    let answers: Vec<HttpResponse> = senders.into_iter().map(|sender| sender.join().unwrap()).collect();
    let ids: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|answer| {
            assert_eq!(answer.status, 200, "{}", answer.text());
            execution_of(answer)
        })
        .collect();
    assert_eq!(ids.len(), 1, "every duplicate names one execution: {ids:?}");
    let id = ids.into_iter().next().unwrap();
    server.finished_execution(&id);
    let stored: Vec<String> = executions_of(&server, "orders").into_iter().map(|execution| execution.id).collect();
    assert_eq!(stored, [id], "one execution ran");
}
