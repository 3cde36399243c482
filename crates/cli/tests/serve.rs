//! `hookflow serve` end to end through the binary: the README's demo command answers as the
//! README shows, and each flag changes what a caller or an operator sees (flags covered
//! elsewhere through the binary: `--admin-token`, `--secret`, `--secrets-file` and
//! `--log-format` in `operator.rs`; `--allow-outbound` and `--data` across kills in `cli.rs`).

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Serve, fresh_dir, http};

/// Serves `definitions` (from a `--workflows` directory) and the `misbehave` test node (from a
/// `--plugins` directory) with `flags`.
fn start(name: &str, definitions: &[Value], flags: &[&str]) -> Serve {
    serve_env(name, definitions, flags, &[])
}

fn serve_env(name: &str, definitions: &[Value], flags: &[&str], env: &[(&str, &str)]) -> Serve {
    serve_in(&fresh_dir(name), name, definitions, flags, env)
}

/// [`start`] on the data directory `data` (kept across restarts), with extra environment.
fn serve_in(data: &Path, name: &str, definitions: &[Value], flags: &[&str], env: &[(&str, &str)]) -> Serve {
    let workflows = fresh_dir(&format!("{name}-workflows"));
    std::fs::create_dir_all(&workflows).unwrap();
    for definition in definitions {
        let key = definition["key"].as_str().unwrap();
        std::fs::write(workflows.join(format!("{key}.json")), definition.to_string()).unwrap();
    }
    let plugins = fresh_dir(&format!("{name}-plugins"));
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::write(plugins.join("misbehave.wasm"), hookflow_tests::fixture("misbehave")).unwrap();
    let (workflows, plugins) = (path_text(workflows), path_text(plugins));
    let mut args = vec!["--workflows", workflows.as_str(), "--plugins", plugins.as_str()];
    args.extend_from_slice(flags);
    Serve::start_env(data, &args, definitions.len(), env)
}

fn path_text(path: PathBuf) -> String {
    path.to_str().unwrap().to_string()
}

/// A workflow whose one `misbehave` node runs in `mode` (sync ones answer `done` after it).
fn misbehaving(key: &str, sync: bool, config: Value) -> Value {
    let mut nodes = vec![json!({"key": "work", "type": "misbehave", "config": config})];
    if sync {
        nodes.push(json!({"key": "reply", "type": "response", "config": {"body": "done"}}));
    }
    json!({"key": key, "sync": sync, "nodes": nodes})
}

/// A sync workflow answering `ok` (serve prints a URL per workflow; tests wait for them).
fn ok() -> Value {
    json!({"key": "ok", "sync": true, "nodes": [{"key": "r", "type": "response", "config": {"body": "ok"}}]})
}

fn trigger(serve: &Serve, key: &str, body: &[u8]) -> http::HttpResponse {
    http::post(serve.address, &format!("/api/webhook:trigger/{key}"), &[("Content-Type", "application/json")], body)
}

fn execution(serve: &Serve, id: &str) -> Value {
    http::request(serve.address, "GET", &format!("/api/executions/{id}"), &[], b"").json()
}

/// The execution once it has ended (a sync execution's record is written just after its answer).
fn finished(serve: &Serve, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let execution = execution(serve, id);
        if execution["status"].as_str().is_some_and(|status| !matches!(status, "queued" | "started")) {
            return execution;
        }
        assert!(Instant::now() < deadline, "execution {id} did not end: {execution}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The execution a sync answer names, once ended, and its first job's error.
fn job_error(serve: &Serve, answer: &http::HttpResponse) -> String {
    let id = answer.header("x-hookflow-execution").unwrap_or_else(|| panic!("no execution: {}", answer.text()));
    let execution = finished(serve, id);
    execution["jobs"][0]["error"].as_str().unwrap_or_else(|| panic!("no job error: {execution}")).to_string()
}

#[test]
fn the_readme_demo_command_answers_as_the_readme_shows() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/workflows");
    // Every example file is deployed (a refused one would be missing from the printed lines).
    let mut keys: Vec<String> = std::fs::read_dir(examples)
        .unwrap()
        .map(|entry| {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            serde_json::from_str::<Value>(&text).unwrap()["key"].as_str().unwrap().to_string()
        })
        .collect();
    keys.sort();
    let serve = Serve::start_with(&fresh_dir("readme"), &["--demo", "--workflows", examples], keys.len());
    let port = serve.address.port();
    let mut printed: Vec<String> =
        serve.stdout.iter().map(|line| line.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    printed.sort();
    let printed_keys: Vec<&str> = printed.iter().map(|line| line.split(' ').next().unwrap_or_default()).collect();
    assert_eq!(printed_keys, keys, "{printed:?}");
    let url = |key: &str| format!("http://127.0.0.1:{port}/api/webhook:trigger/{key}");
    for line in [
        format!("demo-payment sync POST {}", url("demo-payment")),
        format!("demo-payment-async async POST {}", url("demo-payment-async")),
        format!("guarded-payment sync POST {}", url("guarded-payment")),
    ] {
        assert!(printed.contains(&line), "the README's line {line:?} is not among {printed:?}");
    }
    let paid = br#"{"status": "paid", "order": 42}"#;
    let answer = trigger(&serve, "demo-payment", paid);
    assert_eq!((answer.status, answer.text()), (200, r#"{"ok":true,"order":42}"#.to_string()));
    let answer = trigger(&serve, "demo-payment", br#"{"status": "unpaid", "order": 42}"#);
    assert_eq!((answer.status, answer.text()), (400, r#"{"ok":false}"#.to_string()));
    let get = http::request(serve.address, "GET", "/api/webhook:trigger/demo-payment", &[], b"");
    assert_eq!(
        (get.status, get.error_code(), get.header("allow")),
        (405, "method_not_allowed".to_string(), Some("POST"))
    );
    let unauthorized = trigger(&serve, "guarded-payment", paid);
    assert_eq!((unauthorized.status, unauthorized.error_code()), (401, "unauthorized".to_string()));
    assert_eq!(unauthorized.header("www-authenticate"), Some(r#"Basic realm="hookflow", charset="UTF-8""#));
    let basic = [("Content-Type", "application/json"), ("Authorization", "Basic c2hvcDpzM2NyZXQ=")];
    let guarded = http::post(serve.address, "/api/webhook:trigger/guarded-payment", &basic, paid);
    assert_eq!((guarded.status, guarded.text()), (200, r#"{"ok":true,"order":42}"#.to_string()));
    let queued = trigger(&serve, "demo-payment-async", paid);
    assert_eq!((queued.status, queued.text()), (200, "ok".to_string()));
    assert_eq!(queued.header("content-type"), Some("text/plain; charset=utf-8"));
}

#[test]
fn sigterm_waits_for_a_sync_execution_that_runs_on_after_its_answer() {
    let data = fresh_dir("runs-on");
    let runs_on = json!({"key": "early", "sync": true, "nodes": [
        {"key": "reply", "type": "response", "config": {"body": "accepted", "continue": true}},
        {"key": "work", "type": "misbehave", "config": {"mode": "busy", "ms": 1000}}]});
    let serve = serve_in(&data, "runs-on", &[runs_on], &[], &[]);
    let answer = trigger(&serve, "early", b"{}");
    assert_eq!((answer.status, answer.text().as_str()), (200, "accepted"), "answered before the work");
    let id = answer.header("x-hookflow-execution").unwrap().to_string();
    assert_eq!(serve.terminate(), Some(0), "stopped while `work` still ran");

    let stored = support::stored_executions(&data, std::slice::from_ref(&id)).remove(0);
    let execution = stored.unwrap_or_else(|| panic!("execution {id} was lost at shutdown"));
    assert_eq!(execution.status, hookflow_workflow::ExecutionStatus::Resolved);
    let keys: Vec<&str> = execution.jobs.iter().map(|job| job.node_key.as_str()).collect();
    assert_eq!(keys, ["reply", "work"]);
}

#[test]
fn public_url_is_the_origin_of_the_printed_urls() {
    let data = fresh_dir("public-url");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .args(["serve", "--listen", "127.0.0.1:0", "--demo", "--public-url", "https://hooks.example.com/"])
        .arg("--data")
        .arg(&data)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let first = lines.next().expect("serve printed its URLs").unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(first.ends_with("POST https://hooks.example.com/api/webhook:trigger/demo-payment"), "{first}");
}

#[test]
fn body_limit_refuses_larger_bodies_naming_the_limit() {
    let echo = json!({"key": "echo", "sync": true, "nodes": [{"key": "r", "type": "response", "config": {"body": "{{$context.body}}"}}]});
    let serve = start("body-limit", &[echo], &["--body-limit", "1KiB"]);
    let small = format!(r#"{{"pad": "{}"}}"#, "x".repeat(900));
    assert_eq!(trigger(&serve, "echo", small.as_bytes()).status, 200);
    let large = format!(r#"{{"pad": "{}"}}"#, "x".repeat(1100));
    let refused = trigger(&serve, "echo", large.as_bytes());
    assert_eq!((refused.status, refused.error_code()), (413, "payload_too_large".to_string()));
    assert!(refused.json()["error"]["message"].as_str().unwrap().contains("1024 bytes"), "{}", refused.text());
}

#[test]
fn sync_timeout_answers_504_when_a_run_is_longer() {
    let slow = misbehaving("slow", true, json!({"mode": "busy", "ms": 3000}));
    let serve = start("sync-timeout", &[slow], &["--sync-timeout", "300ms", "--node-timeout", "10s"]);
    let answer = trigger(&serve, "slow", b"{}");
    assert_eq!((answer.status, answer.error_code()), (504, "execution_timeout".to_string()), "{}", answer.text());
}

#[test]
fn max_sync_inflight_refuses_sync_calls_past_it() {
    let slow = misbehaving("slow", true, json!({"mode": "busy", "ms": 3000}));
    let serve = start("sync-inflight", &[slow], &["--max-sync-inflight", "1", "--node-timeout", "10s"]);
    let address = serve.address;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(3));
    let callers: Vec<_> = (0..3)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                http::post(address, "/api/webhook:trigger/slow", &[], b"")
            })
        })
        .collect();
    let mut answers: Vec<(u16, String)> = callers
        .into_iter()
        .map(|caller| caller.join().unwrap())
        .map(|answer| (answer.status, if answer.status == 200 { answer.text() } else { answer.error_code() }))
        .collect();
    answers.sort();
    assert_eq!(answers, [(200, "done".to_string()), (503, "overloaded".to_string()), (503, "overloaded".to_string())]);
}

#[test]
fn workers_0_keeps_executions_queued_and_max_queue_refuses_past_it() {
    let orders = json!({"key": "orders", "sync": false, "nodes": [{"key": "c", "type": "condition", "config": {}}]});
    let data = fresh_dir("max-queue");
    let serve =
        serve_in(&data, "max-queue", std::slice::from_ref(&orders), &["--workers", "0", "--max-queue", "2"], &[]);
    let ids: Vec<String> = (0..2)
        .map(|_| {
            let accepted = trigger(&serve, "orders", b"{}");
            assert_eq!(accepted.status, 200, "{}", accepted.text());
            accepted.header("x-hookflow-execution").unwrap().to_string()
        })
        .collect();
    let refused = trigger(&serve, "orders", b"{}");
    assert_eq!((refused.status, refused.error_code()), (503, "overloaded".to_string()));
    assert_eq!(refused.header("retry-after"), Some("1"));
    for id in &ids {
        assert_eq!(execution(&serve, id)["status"], "queued");
    }
    // The same data with the default workers runs them.
    assert_eq!(serve.terminate(), Some(0));
    let restarted = serve_in(&data, "max-queue-again", &[orders], &[], &[]);
    for id in &ids {
        assert_eq!(finished(&restarted, id)["status"], "resolved");
    }
}

#[test]
fn max_delayed_refuses_delay_workflows_while_it_is_reached() {
    let waits =
        json!({"key": "waits", "sync": false, "nodes": [{"key": "d", "type": "delay", "config": {"duration": "60s"}}]});
    let serve = start("max-delayed", &[waits], &["--max-delayed", "1"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut accepted = 0;
    let refused = loop {
        let answer = trigger(&serve, "waits", b"{}");
        if answer.status != 200 {
            break answer;
        }
        accepted += 1;
        assert!(Instant::now() < deadline, "{accepted} delayed executions accepted with --max-delayed 1");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(accepted >= 1);
    assert_eq!((refused.status, refused.error_code()), (503, "overloaded".to_string()));
    assert!(refused.json()["error"]["message"].as_str().unwrap().contains("--max-delayed"), "{}", refused.text());
}

#[test]
fn execution_limits_end_an_execution_naming_the_flag() {
    let many = json!({"key": "many", "sync": true, "nodes": [
        {"key": "each", "type": "loop", "config": {"target": 20}, "branches": {"body": [
            {"key": "c", "type": "condition", "config": {}}]}},
        {"key": "r", "type": "response", "config": {"body": "done"}}]});
    let big = json!({"key": "big", "sync": true, "nodes": [
        {"key": "s", "type": "set", "config": {"values": {"pad": "{{$context.body.pad}}"}}},
        {"key": "r", "type": "response", "config": {"body": "done"}}]});
    let long = json!({"key": "long", "sync": false, "nodes": [
        {"key": "a", "type": "misbehave", "config": {"mode": "busy", "ms": 300}},
        {"key": "b", "type": "misbehave", "config": {"mode": "busy", "ms": 300}},
        {"key": "c", "type": "misbehave", "config": {"mode": "busy", "ms": 300}}]});
    let flags = ["--max-jobs", "5", "--max-record", "1KiB", "--max-run-time", "500ms", "--node-timeout", "10s"];
    let serve = start("execution-limits", &[many, big, long], &flags);
    let error = |id: &str| {
        let execution = finished(&serve, id);
        execution["error"].as_str().unwrap_or_else(|| panic!("no execution error: {execution}")).to_string()
    };

    let answer = trigger(&serve, "many", b"{}");
    assert_eq!(answer.status, 500, "{}", answer.text());
    assert_eq!(error(answer.header("x-hookflow-execution").unwrap()), "execution exceeded --max-jobs (5)");
    let pad = format!(r#"{{"pad": "{}"}}"#, "x".repeat(2000));
    let answer = trigger(&serve, "big", pad.as_bytes());
    assert_eq!(answer.status, 500, "{}", answer.text());
    assert_eq!(error(answer.header("x-hookflow-execution").unwrap()), "execution exceeded --max-record (1KiB)");
    let answer = trigger(&serve, "long", b"{}");
    assert_eq!(error(answer.header("x-hookflow-execution").unwrap()), "execution exceeded --max-run-time (500ms)");
}

#[test]
fn max_connections_holds_further_clients_until_one_closes() {
    let serve = start("max-connections", &[ok()], &["--max-connections", "2"]);
    let mut held: Vec<http::Connection> = (0..2)
        .map(|_| {
            let mut connection = http::Connection::open(serve.address).unwrap();
            assert_eq!(connection.request("GET", "/healthz", &[], b"").status, 200);
            connection
        })
        .collect();
    let mut third = http::Connection::open(serve.address).unwrap();
    third.send(&http::request_bytes(serve.address, "GET", "/healthz", &[], b"")).unwrap();
    assert!(third.is_silent_for(Duration::from_millis(500)), "a third connection was answered while two were open");
    held.pop();
    let answer = third.read_response(false).unwrap();
    assert_eq!(answer.status, 200, "answered once a connection closed");
}

#[test]
fn read_timeout_cuts_off_a_client_that_never_ends_its_head() {
    let serve = start("read-timeout", &[ok()], &["--read-timeout", "1s"]);
    let mut stream = TcpStream::connect(serve.address).unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n").unwrap();
    // The default (10 s) would still be waiting when this read gives up.
    stream.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let outcome = stream.read_to_end(&mut rest);
    assert!(outcome.is_ok(), "the server closed the connection within 6 s: {outcome:?}");
    assert!(started.elapsed() >= Duration::from_millis(900), "it waited for the timeout, not less");
}

#[test]
fn node_timeout_node_timeout_for_and_node_memory_bound_custom_nodes() {
    let spin = misbehaving("spin", true, json!({"mode": "spin"}));
    let hog = misbehaving("hog", true, json!({"mode": "hog"}));
    let serve = start("node-limits", &[spin.clone(), hog], &["--node-timeout", "150ms", "--node-memory", "8MiB"]);
    let error = job_error(&serve, &trigger(&serve, "spin", b"{}"));
    assert!(error.contains("time budget of 150ms"), "{error}");
    let error = job_error(&serve, &trigger(&serve, "hog", b"{}"));
    assert!(error.contains("memory limit of 8388608 bytes"), "{error}");

    let by_type =
        start("node-timeout-for", &[spin], &["--node-timeout", "5s", "--node-timeout-for", "misbehave=250ms"]);
    let answer = trigger(&by_type, "spin", b"{}");
    let error = job_error(&by_type, &answer);
    assert!(error.contains("time budget of 250ms"), "{error}");
}

#[test]
fn allow_env_shows_a_node_type_only_the_named_variables() {
    let env = misbehaving("env", true, json!({"mode": "env"}));
    let env_only = json!({"key": "env-output", "sync": true, "nodes": [
        {"key": "work", "type": "misbehave", "config": {"mode": "env"}},
        {"key": "reply", "type": "response", "config": {"body": "{{$jobsMapByNodeKey.work}}"}}]});
    let serve = serve_env(
        "allow-env",
        &[env, env_only],
        &["--allow-env", "misbehave=HOOKFLOW_TEST_SHOWN"],
        &[("HOOKFLOW_TEST_SHOWN", "visible"), ("HOOKFLOW_TEST_KEPT", "hidden")],
    );
    let answer = trigger(&serve, "env-output", b"{}");
    assert_eq!((answer.status, answer.json()), (200, json!({"HOOKFLOW_TEST_SHOWN": "visible"})));
}

/// The value of one metric line (`name{labels}`) in Prometheus text, 0 when absent.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |value| value.parse().unwrap())
}

#[test]
fn metrics_count_exactly_what_this_process_served() {
    // Its own process: no other test's requests are in these counters.
    let serve = Serve::start(&fresh_dir("metrics"), &[]);
    let scrape = || {
        let response = http::request(serve.address, "GET", "/metrics", &[], b"");
        assert_eq!(response.status, 200);
        assert!(response.header("content-type").unwrap().starts_with("text/plain"));
        response.text()
    };
    for status in ["paid", "paid", "unpaid"] {
        trigger(&serve, "demo-payment", format!(r#"{{"status": "{status}"}}"#).as_bytes());
    }
    trigger(&serve, "nonesuch", b"{}");
    // An execution is counted just after its answer: wait until the last one is.
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = scrape();
        if metric(&text, r#"hookflow_executions_total{status="resolved"}"#) >= 3.0 {
            break text;
        }
        assert!(Instant::now() < deadline, "executions were never counted: {text}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let count = |series: &str| metric(&text, series);
    assert_eq!(count(r#"hookflow_trigger_requests_total{workflow="demo-payment",status="200"}"#), 2.0, "{text}");
    assert_eq!(count(r#"hookflow_trigger_requests_total{workflow="demo-payment",status="400"}"#), 1.0);
    assert_eq!(count(r#"hookflow_trigger_requests_total{workflow="(unknown)",status="404"}"#), 1.0);
    assert_eq!(count(r#"hookflow_node_call_seconds_count{type="condition"}"#), 3.0);
    assert_eq!(count(r#"hookflow_node_call_seconds_count{type="response"}"#), 3.0);
    assert_eq!(count(r#"hookflow_executions_total{status="resolved"}"#), 3.0);
    assert_eq!(count("hookflow_queue_depth"), 0.0);
    assert!(text.contains("# TYPE hookflow_store_commit_seconds histogram"));
}
