//! Hostile callers and hostile nodes: backpressure, slow clients, bloated requests, nodes that
//! misbehave under concurrent load. Each gets its documented answer and the engine stays healthy.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use hookflow_tests::http::{self, HttpResponse};
use serde_json::{Value, json};

use crate::util::TestServer;

fn echo() -> Value {
    json!({"key": "echo", "sync": true, "nodes": [{"key": "reply", "type": "response", "config": {"body": "{{$context}}"}}]})
}

fn slow(ms: u64) -> Value {
    json!({"key": "slow", "sync": true, "nodes": [
        {"key": "work", "type": "misbehave", "config": {"mode": "busy", "ms": ms}},
        {"key": "reply", "type": "response", "config": {"body": "done"}}]})
}

fn assert_error(response: &HttpResponse, status: u16, code: &str) {
    assert_eq!(response.status, status, "{}", response.text());
    assert_eq!(response.error_code(), code, "{}", response.text());
}

fn assert_healthy(server: &TestServer) {
    let response = server.post("echo", &[("Content-Type", "application/json")], b"{\"still\": \"alive\"}");
    assert_eq!(response.status, 200, "the engine stays healthy: {}", response.text());
}

#[test]
fn too_many_sync_executions_are_refused_with_503() {
    let server = TestServer::start(&[slow(3000), echo()], |config| {
        config.dispatch.max_sync_inflight = 1;
        config.host.time_budget = Duration::from_secs(10);
    });
    let address = server.address;
    // Two overlapping slow requests and one slot: one runs, the other is refused.
    let requests: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || http::post(address, "/api/webhook:trigger/slow", &[], b"")))
        .collect();
    let mut responses: Vec<HttpResponse> = requests.into_iter().map(|request| request.join().unwrap()).collect();
    responses.sort_by_key(|response| response.status);
    assert_eq!(responses[0].status, 200, "the running one finishes: {}", responses[0].text());
    assert_error(&responses[1], 503, "overloaded");
    assert_eq!(responses[1].header("retry-after"), Some("1"));
    assert_healthy(&server);
}

/// With one sync slot, a caller that sends its next request as soon as it has its answer is never
/// refused: the slot is freed before the answer leaves, on the blocking pool and inline alike.
#[test]
fn back_to_back_requests_fit_in_one_sync_slot() {
    let server = TestServer::start(&[slow(1), echo()], |config| config.dispatch.max_sync_inflight = 1);
    for n in 0..200 {
        for key in ["slow", "echo"] {
            let response = server.post(key, &[("Content-Type", "application/json")], b"{}");
            assert_eq!(response.status, 200, "{key} request {n}: {}", response.text());
        }
    }
}

/// A quick sync workflow runs on the request's runtime thread: it must not wait for an instance
/// slot that slow nodes on blocking threads hold (whose own I/O may need that thread).
#[test]
fn quick_workflows_answer_while_slow_nodes_hold_every_instance_slot() {
    let server = TestServer::start(&[slow(3000), echo()], |config| {
        config.host.max_instances = 1;
        config.host.time_budget = Duration::from_secs(10);
    });
    let address = server.address;
    let slow = std::thread::spawn(move || http::post(address, "/api/webhook:trigger/slow", &[], b""));
    // The moment the slow node holds its instance slot.
    server.wait_for_node_calls(1);
    assert_healthy(&server);
    // Had it waited for the slot, the slow node's call would have ended first.
    assert!(server.server().host().calls_in_flight() > 0, "the quick workflow waited for the slow node's slot");
    assert!(!slow.is_finished(), "the quick workflow answered while the slow node held the slot");
    assert_eq!(slow.join().unwrap().status, 200);
}

#[test]
fn a_full_async_queue_refuses_with_503() {
    let server = TestServer::start(&[echo()], |config| {
        config.demo = true;
        config.dispatch.workers = 0;
        config.dispatch.max_queue = 3;
    });
    for _ in 0..3 {
        assert_eq!(server.post_json("demo-payment-async", &json!({"status": "paid"})).status, 200);
    }
    let refused = server.post_json("demo-payment-async", &json!({"status": "paid"}));
    assert_error(&refused, 503, "overloaded");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(refused.header("x-hookflow-execution").is_none(), "nothing was queued");
    assert_healthy(&server);
}

#[test]
fn a_slow_loris_client_is_cut_off() {
    let server = TestServer::start(&[echo()], |config| config.limits.read_timeout = Duration::from_millis(300));

    // The head never ends.
    let mut stream = TcpStream::connect(server.address).unwrap();
    stream.write_all(b"POST /api/webhook:trigger/echo HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n").unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    assert!(started.elapsed() < Duration::from_secs(5), "the server closed the connection");

    // The head is complete, the body never is.
    let mut stream = TcpStream::connect(server.address).unwrap();
    stream
        .write_all(b"POST /api/webhook:trigger/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\":")
        .unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
    assert_healthy(&server);
}

#[test]
fn bloated_requests() {
    let server = TestServer::start(&[echo()], |_| {});

    let many: Vec<(String, String)> = (0..150).map(|n| (format!("X-H{n}"), "v".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    assert_eq!(server.post("echo", &many, b"").status, 431, "too many header fields");

    let long_uri = format!("/api/webhook:trigger/echo?q={}", "x".repeat(100_000));
    let status = http::post(server.address, &long_uri, &[], b"").status;
    assert!(status == 431 || status == 414, "an oversized request head is refused, got {status}");

    let query: Vec<String> = (0..3000).map(|n| format!("p{n}={n}")).collect();
    let response = http::post(server.address, &format!("/api/webhook:trigger/echo?{}", query.join("&")), &[], b"");
    assert_eq!(response.status, 200, "3000 query parameters are no error");
    assert_eq!(response.json()["query"].as_object().unwrap().len(), 1000, "the first 1000 are read, as qs does");

    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let response = server.post("echo", &[("Content-Type", "application/json")], deep.as_bytes());
    assert_error(&response, 400, "invalid_body");
    let deep_form = format!("a{}=1", "[b]".repeat(10_000));
    let response = server.post("echo", &[("Content-Type", "application/x-www-form-urlencoded")], deep_form.as_bytes());
    assert_eq!(response.status, 200, "{}", response.text());
    // Like qs: five levels of brackets, then the rest of the name is one literal key.
    let mut level = &response.json()["body"]["a"];
    for depth in 0..5 {
        level = &level["b"];
        assert!(level.is_object(), "level {depth} of the form body is missing");
    }
    let rest = "[b]".repeat(10_000 - 5);
    assert_eq!(level.as_object().map(|level| level.len()), Some(1));
    assert_eq!(level[rest.as_str()], "1", "form nesting is capped at depth 5");
    assert_healthy(&server);
}

#[test]
fn hostile_nodes_fail_alone_under_concurrent_load() {
    let hostile: Vec<Value> = ["trap", "spin", "hog"]
        .iter()
        .map(|mode| {
            json!({"key": mode, "sync": true, "nodes": [
            {"key": "bad", "type": "misbehave", "config": {"mode": mode}},
            {"key": "reply", "type": "response", "config": {"body": "unreachable"}}]})
        })
        .collect();
    let server = TestServer::start(&hostile, |config| {
        config.demo = true;
        config.host.time_budget = Duration::from_millis(300);
        config.host.memory_limit = 32 << 20;
    });
    let address = server.address;
    let normal: Vec<_> = (0..4)
        .map(|n| {
            std::thread::spawn(move || {
                for order in 0..25 {
                    let body = format!("{{\"status\": \"paid\", \"order\": {}}}", n * 100 + order);
                    let response = http::post(
                        address,
                        "/api/webhook:trigger/demo-payment",
                        &[("Content-Type", "application/json")],
                        body.as_bytes(),
                    );
                    assert_eq!(response.status, 200, "{}", response.text());
                    assert_eq!(response.json()["order"], json!(n * 100 + order));
                }
            })
        })
        .collect();
    for _ in 0..3 {
        for mode in ["trap", "spin", "hog"] {
            let response = server.post(mode, &[], b"");
            assert_error(&response, 500, "execution_failed");
            let expected = if mode == "spin" { "aborted" } else { "error" };
            assert_eq!(response.json()["error"]["status"], json!(expected), "{mode}");
        }
    }
    for thread in normal {
        thread.join().unwrap();
    }
}

#[test]
fn graceful_shutdown_drains_in_flight_sync_requests() {
    let server = TestServer::start(&[slow(2000)], |config| config.host.time_budget = Duration::from_secs(10));
    let address = server.address;
    let in_flight = std::thread::spawn(move || http::post(address, "/api/webhook:trigger/slow", &[], b""));
    server.wait_for_node_calls(1);
    let data_dir = server.stop(); // what SIGTERM does
    let response = in_flight.join().unwrap();
    assert_eq!((response.status, response.text().as_str()), (200, "done"), "the in-flight request finished");
    assert!(TcpStream::connect(address).is_err(), "no longer accepting");

    // Its record was made durable by the shutdown.
    let id = response.header("x-hookflow-execution").unwrap().to_string();
    let restarted = TestServer::start_in(data_dir, |_| {});
    assert_eq!(restarted.execution(&id).unwrap().status, hookflow_workflow::ExecutionStatus::Resolved);
}

#[test]
fn a_sync_caller_that_hangs_up_mid_run_loses_nothing() {
    let server = TestServer::start(&[slow(3000), echo()], |config| config.host.time_budget = Duration::from_secs(10));
    let mut connection = hookflow_tests::http::Connection::open(server.address).unwrap();
    connection.send(&http::request_bytes(server.address, "POST", "/api/webhook:trigger/slow", &[], b"")).unwrap();
    server.wait_for_node_calls(1);
    drop(connection);
    // The execution runs to its end and is recorded; its instance slot comes back.
    let filter = hookflow_store::ExecutionFilter { workflow: Some("slow".into()), ..Default::default() };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let execution = loop {
        let listed = hookflow_tests::block_on(server.server().store().executions(&filter, None, 10)).unwrap();
        if let Some(finished) = listed.into_iter().find(|execution| execution.status.is_final()) {
            break finished;
        }
        assert!(std::time::Instant::now() < deadline, "the hung-up execution never finished");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(execution.status, hookflow_workflow::ExecutionStatus::Resolved);
    let full = server.finished_execution(&execution.id);
    assert_eq!(full.jobs.iter().map(|job| job.node_key.as_str()).collect::<Vec<_>>(), ["work", "reply"]);
    while server.server().host().calls_in_flight() != 0 {
        assert!(std::time::Instant::now() < deadline, "the slot was not given back");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_healthy(&server);
}
