//! When things fail: retries from the failed job (`options.retry`) against a downstream that
//! fails and recovers, dead letters, a retry that waits through a restart, a redrive of a
//! thousand dead letters after a dry run, failure hooks (`options.onFailure`), the refusal log,
//! and per-workflow rate limits.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hookflow_plugin::HostPattern;
use hookflow_tests::http::{self, HttpResponse};
use hookflow_workflow::{Execution, ExecutionStatus, JobStatus};
use serde_json::{Value, json};

use crate::util::TestServer;

/// A downstream service on loopback that counts its calls by path: `/ok` answers 200;
/// `/flaky/<name>` answers 503 (with `Retry-After: 0`) to its first `failures` calls, then 200;
/// `/down` answers 503 while `down` is set; `/missing` answers 404.
struct Downstream {
    address: SocketAddr,
    calls: Arc<Mutex<HashMap<String, usize>>>,
    down: Arc<AtomicBool>,
}

impl Downstream {
    fn start(failures: usize) -> Downstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let calls: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let down = Arc::new(AtomicBool::new(true));
        let (counted, switch) = (calls.clone(), down.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (counted, switch) = (counted.clone(), switch.clone());
                std::thread::spawn(move || answer(stream, &counted, &switch, failures));
            }
        });
        Downstream { address, calls, down }
    }

    fn calls(&self, path: &str) -> usize {
        self.calls.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Lets the `http-request` node reach it.
    fn grant(&self) -> impl FnOnce(&mut hookflow_server::server::ServerConfig) + use<> {
        let host: HostPattern = self.address.to_string().parse().unwrap();
        move |config| config.host.grants.allow_outbound("http-request", &[host])
    }
}

fn answer(stream: TcpStream, calls: &Mutex<HashMap<String, usize>>, down: &AtomicBool, failures: usize) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            return;
        }
        let Some((name, value)) = line.trim_end().split_once(':') else { break };
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_string();
    let count = {
        let mut calls = calls.lock().unwrap();
        let count = calls.entry(path.clone()).or_default();
        *count += 1;
        *count
    };
    let status = match path.as_str() {
        "/ok" => 200,
        "/down" if down.load(Ordering::SeqCst) => 503,
        "/down" => 200,
        flaky if flaky.starts_with("/flaky/") && count <= failures => 503,
        flaky if flaky.starts_with("/flaky/") => 200,
        _ => 404,
    };
    let reply = format!(r#"{{"call": {count}}}"#);
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nRetry-After: 0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.len()
    );
    let mut stream = stream;
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(reply.as_bytes());
}

/// An async workflow that calls `/ok`, then `url`, retried as `retry` says.
fn calling(key: &str, url: &str, ok: &str, retry: Value) -> Value {
    json!({"key": key, "sync": false, "options": {"retry": retry}, "nodes": [
        {"key": "first", "type": "http-request", "config": {"method": "GET", "url": ok}},
        {"key": "call", "type": "http-request", "config": {"method": "GET", "url": url}},
    ]})
}

fn admin(server: &TestServer, method: &str, path: &str, body: Option<&Value>) -> HttpResponse {
    let body = body.map(Value::to_string).unwrap_or_default();
    http::request(server.address, method, path, &[("Content-Type", "application/json")], body.as_bytes())
}

fn accepted(response: &HttpResponse) -> String {
    assert_eq!(response.status, 200, "{}", response.text());
    response.header("x-hookflow-execution").unwrap().to_string()
}

fn metric(server: &TestServer, line_start: &str) -> Option<u64> {
    let metrics = admin(server, "GET", "/metrics", None).text();
    metrics.lines().find_map(|line| line.strip_prefix(line_start)?.trim().parse().ok())
}

/// Waits (at most 20 s) until `check` holds for the execution, and returns it.
fn execution_when(server: &TestServer, id: &str, what: &str, check: impl Fn(&Execution) -> bool) -> Execution {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(execution) = server.execution(id).filter(&check) {
            return execution;
        }
        assert!(Instant::now() < deadline, "{what} never happened: {:?}", server.execution(id));
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_failed_call_is_retried_from_its_failed_job_until_it_succeeds() {
    let downstream = Downstream::start(2);
    let retry = json!({"maxAttempts": 5, "initialDelay": "50ms", "maxDelay": "200ms"});
    let workflow = calling("orders", &downstream.url("/flaky/orders"), &downstream.url("/ok"), retry);
    let server = TestServer::start(&[workflow], downstream.grant());
    let id = accepted(&server.post_json("orders", &json!({"order": 1})));
    let execution = server.finished_execution(&id);
    assert_eq!(execution.status, ExecutionStatus::Resolved, "{execution:?}");
    assert_eq!(execution.attempt, 3, "two failures, then the third attempt");
    assert!(!execution.dead_letter && execution.retry_at.is_none() && execution.error.is_none());
    let jobs: Vec<(&str, JobStatus)> = execution.jobs.iter().map(|job| (job.node_key.as_str(), job.status)).collect();
    assert_eq!(jobs, [("first", JobStatus::Resolved), ("call", JobStatus::Resolved)]);
    assert_eq!(execution.jobs[1].output["data"], json!({"call": 3}));
    assert_eq!(downstream.calls("/ok"), 1, "the job that resolved was not run again");
    assert_eq!(downstream.calls("/flaky/orders"), 3);
    assert_eq!(metric(&server, "hookflow_execution_retries_total{workflow=\"orders\"}"), Some(2));
}

#[test]
fn after_its_last_attempt_an_execution_is_a_dead_letter_and_a_business_no_is_not_retried() {
    let downstream = Downstream::start(10);
    let retry = json!({"maxAttempts": 2, "initialDelay": "20ms", "maxDelay": "20ms"});
    let flaky = calling("flaky", &downstream.url("/flaky/dead"), &downstream.url("/ok"), retry.clone());
    let missing = calling("missing", &downstream.url("/missing"), &downstream.url("/ok"), retry);
    let server = TestServer::start(&[flaky, missing], downstream.grant());

    let dead = server.finished_execution(&accepted(&server.post_json("flaky", &json!({}))));
    assert_eq!((dead.status, dead.attempt, dead.dead_letter), (ExecutionStatus::Failed, 2, true), "{dead:?}");
    assert_eq!(dead.jobs.last().unwrap().output["status"], 503, "it keeps its last answer");
    assert_eq!(downstream.calls("/flaky/dead"), 2);
    assert_eq!(metric(&server, "hookflow_dead_letters_total{workflow=\"flaky\"}"), Some(1));
    let listed = admin(&server, "GET", "/api/executions?deadLetter=true", None).json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        (listed["items"][0]["id"].as_str(), &listed["items"][0]["deadLetter"]),
        (Some(dead.id.as_str()), &json!(true))
    );

    let refused = server.finished_execution(&accepted(&server.post_json("missing", &json!({}))));
    assert_eq!((refused.status, refused.attempt, refused.dead_letter), (ExecutionStatus::Failed, 1, false));
    assert_eq!(downstream.calls("/missing"), 1, "a 404 is an answer, not an outage: never retried");
}

#[test]
fn a_retry_waiting_for_its_time_survives_a_restart() {
    let downstream = Downstream::start(1);
    let retry = json!({"maxAttempts": 3, "initialDelay": "3s", "maxDelay": "3s"});
    let workflow = calling("later", &downstream.url("/flaky/later"), &downstream.url("/ok"), retry);
    let server = TestServer::start(&[workflow], downstream.grant());
    let id = accepted(&server.post_json("later", &json!({})));
    let waiting = execution_when(&server, &id, "a retry waiting", |e| e.retry_at.is_some());
    assert_eq!((waiting.status, waiting.attempt), (ExecutionStatus::Queued, 2));
    assert!(waiting.error.as_deref().unwrap().starts_with("attempt 1 ended failed"), "{waiting:?}");
    assert_eq!(waiting.jobs.len(), 1, "the resolved job is kept, the failed one will run again");
    let retry_at = waiting.retry_at.unwrap();

    let data_dir = server.stop();
    let server = TestServer::start_in(data_dir, downstream.grant());
    let after = server.execution(&id).unwrap();
    assert_eq!((after.status, after.retry_at), (ExecutionStatus::Queued, Some(retry_at)), "still waiting");
    let done = server.finished_execution(&id);
    assert_eq!((done.status, done.attempt), (ExecutionStatus::Resolved, 2));
    assert!(
        done.jobs[1].started_at >= retry_at,
        "not run before its time: {:?} < {retry_at:?}",
        done.jobs[1].started_at
    );
    assert_eq!((downstream.calls("/ok"), downstream.calls("/flaky/later")), (1, 2));
}

#[test]
fn a_redrive_reruns_a_thousand_dead_letters_once_after_a_dry_run() {
    let downstream = Downstream::start(0);
    let retry = json!({"maxAttempts": 1});
    let workflow = calling("sync-crm", &downstream.url("/down"), &downstream.url("/ok"), retry);
    let server = TestServer::start(&[workflow], |config| {
        downstream.grant()(config);
        config.dispatch.workers = 8;
    });
    let ids: Vec<String> = (0..1000).map(|n| accepted(&server.post_json("sync-crm", &json!({"n": n})))).collect();
    for id in &ids {
        assert!(server.finished_execution(id).dead_letter, "the downstream is down: a dead letter");
    }
    downstream.down.store(false, Ordering::SeqCst);

    let filter = json!({"workflow": "sync-crm", "deadLetter": true, "dryRun": true});
    let dry = admin(&server, "POST", "/api/executions/rerun", Some(&filter));
    assert_eq!(dry.status, 200, "{}", dry.text());
    assert_eq!(dry.json(), json!({"matched": 1000, "queued": []}));
    assert_eq!(downstream.calls("/down"), 1000, "a dry run runs nothing");

    let filter = json!({"workflow": "sync-crm", "status": ["failed"], "deadLetter": true});
    let redrive = admin(&server, "POST", "/api/executions/rerun", Some(&filter)).json();
    assert_eq!(redrive["matched"], 1000);
    let queued: Vec<String> =
        redrive["queued"].as_array().unwrap().iter().map(|id| id.as_str().unwrap().to_string()).collect();
    assert_eq!(queued.iter().collect::<std::collections::HashSet<_>>().len(), 1000);
    for id in &queued {
        assert_eq!(server.finished_execution(id).status, ExecutionStatus::Resolved);
    }
    let earlier = server.execution(&ids[0]).unwrap();
    assert!(queued.contains(earlier.rerun_as.as_ref().unwrap()), "it names its rerun");
    let again = admin(&server, "POST", "/api/executions/rerun", Some(&filter)).json();
    assert_eq!(again, json!({"matched": 0, "queued": []}), "nothing is re-run twice");
    assert_eq!(downstream.calls("/down"), 2000);

    let wrong = admin(&server, "POST", "/api/executions/rerun", Some(&json!({"status": ["queued"]})));
    assert_eq!((wrong.status, wrong.error_code()), (422, "validation_failed".to_string()), "{}", wrong.text());
}

#[test]
fn a_failure_hook_receives_the_failed_execution() {
    let downstream = Downstream::start(0);
    let failing = json!({"key": "charge", "sync": false, "options": {"onFailure": "alerts"}, "nodes": [
        {"key": "call", "type": "http-request", "config": {"method": "GET", "url": downstream.url("/missing")}},
    ]});
    let gate = json!({"key": "gate", "sync": true, "options": {"onFailure": "alerts"}, "nodes": [
        {"key": "paid", "type": "condition", "config": {"rejectOnFalse": true, "calculation": {"group": {"type": "and",
            "calculations": [{"calculator": "equal", "operands": ["{{$context.body.status}}", "paid"]}]}}}},
    ]});
    let alerts = json!({"key": "alerts", "sync": false, "nodes": [
        {"key": "got", "type": "set", "config": {"values": {"failed": "{{$context.body.execution}}"}}},
    ]});
    let server = TestServer::start(&[failing, gate, alerts], downstream.grant());

    let failed = server.finished_execution(&accepted(&server.post_json("charge", &json!({"order": 7}))));
    assert_eq!(failed.status, ExecutionStatus::Failed);
    let hook = hook_of(&server, &failed.id);
    let reported = &hook.jobs[0].output["failed"];
    assert_eq!(
        (&reported["id"], &reported["workflow"], &reported["status"]),
        (&json!(failed.id), &json!("charge"), &json!("failed"))
    );
    assert_eq!(hook.trigger["body"]["trigger"]["body"], json!({"order": 7}), "with what the failed one was given");

    let refused = server.post_json("gate", &json!({"status": "unpaid"}));
    assert_eq!(refused.status, 500, "{}", refused.text());
    let gate_id = refused.header("x-hookflow-execution").unwrap().to_string();
    let hook = hook_of(&server, &gate_id);
    assert_eq!(hook.jobs[0].output["failed"]["status"], "failed", "a sync failure has its hook too");
}

/// The execution of the `alerts` failure hook started for `failed`.
fn hook_of(server: &TestServer, failed: &str) -> Execution {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed = admin(server, "GET", "/api/executions?workflow=alerts&limit=500", None).json();
        let found = listed["items"].as_array().unwrap().iter().find(|e| e["failureOf"] == failed).cloned();
        if let Some(hook) = found.and_then(|hook| server.execution(hook["id"].as_str().unwrap()))
            && hook.status.is_final()
        {
            assert_eq!(hook.status, ExecutionStatus::Resolved, "{hook:?}");
            return hook;
        }
        assert!(Instant::now() < deadline, "no failure hook ran for {failed}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn each_refused_request_leaves_one_refusal_with_its_code_and_no_secret() {
    let signed = json!({"key": "signed", "sync": false, "trigger": {
        "signature": {"type": "hmac-sha256", "header": "X-Signature", "secrets": ["signing-secret-123"]},
        "request": {"headers": [{"key": "X-Request-Id"}, {"key": "X-Signature"}]}}, "nodes": []});
    let guarded = json!({"key": "guarded", "sync": false, "trigger": {
        "basicAuth": {"username": "shop", "password": "basic-password-456"},
        "apiKey": {"header": "X-Api-Key", "keys": ["api-key-789"]},
        "request": {"headers": [{"key": "X-Api-Key"}]}}, "nodes": []});
    let disabled = json!({"key": "disabled", "sync": false, "enabled": false, "nodes": []});
    let server = TestServer::start(&[signed, guarded, disabled], |_| {});

    let bad_signature = server.post("signed", &[("X-Signature", "00ff"), ("X-Request-Id", "req-1")], b"{}");
    assert_eq!(bad_signature.status, 401);
    let wrong_password = server.post(
        "guarded",
        &[("Authorization", "Basic c2hvcDp3cm9uZy1wYXNzd29yZA=="), ("X-Api-Key", "api-key-789")],
        b"{}",
    );
    assert_eq!(wrong_password.status, 401);
    assert_eq!(server.post("disabled", &[], b"{}").status, 404);
    assert_eq!(server.post("no-such-key", &[], b"{}").status, 404);

    let refusals = |query: &str| admin(&server, "GET", &format!("/api/refusals?{query}"), None).json();
    let one = |workflow: &str, code: &str| {
        let items = refusals(&format!("workflow={workflow}"))["items"].as_array().unwrap().clone();
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!((items[0]["code"].as_str(), items[0]["workflow"].as_str()), (Some(code), Some(workflow)));
        assert_eq!(items[0]["client"], "127.0.0.1");
        items[0].clone()
    };
    let signature = one("signed", "invalid_signature");
    assert_eq!(signature["status"], 401);
    assert_eq!(signature["headers"], json!({"x-request-id": "req-1", "x-signature": "00ff"}));
    let password = one("guarded", "unauthorized");
    assert_eq!(password["headers"], json!({"x-api-key": "********"}), "an API key is masked");
    assert_eq!(one("disabled", "not_found")["method"], "POST");
    let everything = refusals("limit=500");
    assert_eq!(everything["items"].as_array().unwrap().len(), 3, "an unknown key is not logged");
    for secret in ["signing-secret-123", "basic-password-456", "api-key-789", "c2hvcDp3cm9uZy1wYXNzd29yZA"] {
        assert!(!everything.to_string().contains(secret), "{secret} in {everything}");
    }
    assert_eq!(refusals("code=unauthorized")["items"].as_array().unwrap().len(), 1);
    assert_eq!(metric(&server, "hookflow_refusals_total{workflow=\"signed\",code=\"invalid_signature\"}"), Some(1));
    assert_eq!(metric(&server, "hookflow_refusals_total{workflow=\"disabled\",code=\"not_found\"}"), Some(1));
}

#[test]
fn a_rate_limit_answers_429_past_its_burst_while_other_workflows_go_on() {
    let limited =
        json!({"key": "noisy", "sync": false, "options": {"rateLimit": {"requests": 10, "per": "1s"}}, "nodes": []});
    let other = json!({"key": "quiet", "sync": false, "nodes": []});
    let server = TestServer::start(&[limited, other], |_| {});
    let started = Instant::now();
    let answers: Vec<HttpResponse> = (0..15).map(|_| server.post_json("noisy", &json!({}))).collect();
    let accepted = answers.iter().filter(|answer| answer.status == 200).count();
    let limited: Vec<&HttpResponse> = answers.iter().filter(|answer| answer.status == 429).collect();
    // 10 at once, and one more for each tenth of a second the 15 requests took.
    let refilled = usize::try_from(started.elapsed().as_millis() / 100).unwrap();
    assert!((10..=10 + refilled).contains(&accepted), "{accepted} accepted in {:?}", started.elapsed());
    assert_eq!(accepted + limited.len(), 15);
    assert!(!limited.is_empty());
    for answer in &limited {
        assert_eq!(answer.error_code(), "rate_limited");
        assert!(answer.error_message().contains("10 requests per 1s"), "{}", answer.text());
        let wait: u64 = answer.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=1).contains(&wait), "Retry-After {wait}");
    }
    for _ in 0..15 {
        assert_eq!(server.post_json("quiet", &json!({})).status, 200, "another workflow is not limited");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.post_json("noisy", &json!({})).status, 200, "the bucket refills");
    let logged = admin(&server, "GET", "/api/refusals?workflow=noisy&code=rate_limited&limit=500", None).json();
    assert_eq!(logged["items"].as_array().unwrap().len(), limited.len());
}
