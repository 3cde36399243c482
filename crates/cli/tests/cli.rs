//! Tests that run the `hookflow` binary as a user would.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hookflow_workflow::{Execution, ExecutionStatus};
use serde_json::{Value, json};
use support::{Serve, fresh_dir, hookflow, http, stdout_json, stored_executions};

#[test]
fn parse_query_prints_the_path_list() {
    let expected = json!([{"key": "query"}, {"key": "query[0]"}, {"key": "query[0].a"}, {"key": "query[1]"}]);
    let url = "http://localhost:13000/api/webhook:trigger/1hfmkioou0d?query[0][a]=1&query[1]=x";
    assert_eq!(stdout_json(&hookflow(&["parse", "query", url])), expected);
    assert_eq!(stdout_json(&hookflow(&["parse", "query", "?query[0][a]=1&query[1]=x"])), expected);
    assert_eq!(stdout_json(&hookflow(&["parse", "query", "query[0][a]=1&query[1]=x"])), expected);
}

#[test]
fn parse_body_prints_the_path_list() {
    let output = hookflow(&["parse", "body", r#"{"a": 1, "b": {"c": 2}, "items": [{"sku": "A"}], "x.y": 1}"#]);
    assert_eq!(
        stdout_json(&output),
        json!([{"key": "a"}, {"key": "b"}, {"key": "b.c"}, {"key": "items"}, {"key": "items[0]"},
               {"key": "items[0].sku"}, {"key": "[\"x.y\"]"}])
    );
}

#[test]
fn failures_exit_1_and_usage_errors_exit_2() {
    let bad = hookflow(&["parse", "body", "{oops"]);
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.starts_with("hookflow: the example body is not valid JSON"), "{stderr}");

    assert_eq!(hookflow(&["serve", "--bogus"]).status.code(), Some(2));
    assert_eq!(hookflow(&["serve", "--body-limit", "1parsec"]).status.code(), Some(2));
    assert_eq!(hookflow(&["frobnicate"]).status.code(), Some(2));
    for (grant, why) in [
        (["--allow-outbound", "http-request"], "expected TYPE=VALUE"),
        (["--allow-outbound", "http-request=api.example.com,a b"], "\"a b\" is not a host pattern"),
        (["--allow-outbound", "Bad Type=x"], "is not a node type name"),
        (["--allow-env", "http-request=A=B"], "is not an environment variable name"),
        (["--node-timeout-for", "http-request=soon"], "is not a duration"),
    ] {
        let refused = hookflow(&[&["serve"][..], &grant[..]].concat());
        assert_eq!(refused.status.code(), Some(2), "{grant:?}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(why), "{grant:?}: {stderr}");
    }
    let help = hookflow(&["serve", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--sync-timeout"));
}

#[test]
fn serve_demo_answers_and_stops_cleanly_on_sigterm() {
    let data = fresh_dir("demo");
    let serve = Serve::start(&data, &[]);
    assert!(
        serve.stdout[0].starts_with("demo-payment ") && serve.stdout[0].contains("/api/webhook:trigger/demo-payment")
    );
    assert!(serve.stdout[1].starts_with("demo-payment-async "));

    let path = "/api/webhook:trigger/demo-payment";
    let json = [("Content-Type", "application/json")];
    let paid = http::post(serve.address, path, &json, br#"{"status": "paid", "order": 42}"#);
    assert_eq!((paid.status, paid.json()), (200, json!({"ok": true, "order": 42})));
    let unpaid = http::post(serve.address, path, &json, br#"{"status": "unpaid", "order": 42}"#);
    assert_eq!((unpaid.status, unpaid.json()), (400, json!({"ok": false})));
    let id = paid.header("x-hookflow-execution").unwrap().to_string();

    assert_eq!(serve.terminate(), Some(0));
    // The sync execution's record, written off the hot path, survived the shutdown.
    let stored = stored_executions(&data, std::slice::from_ref(&id)).remove(0);
    assert_eq!(stored.map(|execution| execution.status), Some(ExecutionStatus::Resolved));
}

#[test]
fn async_requests_acknowledged_without_workers_run_after_a_process_restart() {
    let data = fresh_dir("restart");
    let serve = Serve::start(&data, &["--workers", "0"]);
    let ids: Vec<String> = (0..10)
        .map(|n| {
            let body = format!(r#"{{"status": "paid", "order": {n}}}"#);
            let response = http::post(
                serve.address,
                "/api/webhook:trigger/demo-payment-async",
                &[("Content-Type", "application/json")],
                body.as_bytes(),
            );
            assert_eq!((response.status, response.text().as_str()), (200, "ok"));
            response.header("x-hookflow-execution").unwrap().to_string()
        })
        .collect();
    assert_eq!(serve.terminate(), Some(0));
    // Restarted with workers, it runs every one of them.
    run_to_completion(&data, &["--demo"], 2, &ids);
}

/// Starts the server on `data` again and waits until every execution in `ids` is resolved (after
/// a crash on PostgreSQL, once the dead node's lease has run out); returns them as stored.
fn run_to_completion(data: &Path, args: &[&str], endpoints: usize, ids: &[String]) -> Vec<Execution> {
    let serve = Serve::start_with(data, args, endpoints);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut pending: Vec<&String> = ids.iter().collect();
    while let Some(id) = pending.last() {
        let shown = serve.admin("GET", &format!("/api/executions/{id}"));
        if shown.status == 200 && shown.json()["status"] == "resolved" {
            pending.pop();
            continue;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} executions did not run, {id} among them: {}",
            pending.len(),
            ids.len(),
            shown.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(serve.terminate(), Some(0));
    stored_executions(data, ids).into_iter().map(Option::unwrap).collect()
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_request() {
    let data = fresh_dir("kill9");
    let serve = Serve::start(&data, &[]);
    let address = serve.address;
    // Set just before the kill: a connection error before it is a failure, not "the server is gone".
    let killing = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..8)
        .map(|sender| {
            let (killing, answered) = (killing.clone(), answered.clone());
            std::thread::spawn(move || {
                let mut acknowledged = Vec::new();
                for n in 0.. {
                    let body = format!(r#"{{"status": "paid", "order": {}}}"#, sender * 100_000 + n);
                    let request = http::request_bytes(
                        address,
                        "POST",
                        "/api/webhook:trigger/demo-payment-async",
                        &[("Content-Type", "application/json")],
                        body.as_bytes(),
                    );
                    match http::try_send_raw(address, &request, false) {
                        Ok(response) if response.status == 200 => {
                            acknowledged.push(response.header("x-hookflow-execution").unwrap().to_string());
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(response) => panic!("unexpected answer {}: {}", response.status, response.text()),
                        Err(_) if killing.load(Ordering::SeqCst) => return acknowledged, // the server is gone
                        Err(error) => panic!("request failed before the kill: {error}"),
                    }
                }
                acknowledged
            })
        })
        .collect();
    // The kill comes under load: once every sender has had answers.
    let deadline = Instant::now() + Duration::from_secs(60);
    while answered.load(Ordering::Relaxed) < 200 {
        assert!(Instant::now() < deadline, "the load did not get going");
        std::thread::sleep(Duration::from_millis(10));
    }
    killing.store(true, Ordering::SeqCst);
    serve.kill();
    let acknowledged: Vec<String> = senders.into_iter().flat_map(|sender| sender.join().unwrap()).collect();

    let executions = run_to_completion(&data, &["--demo"], 2, &acknowledged);
    for execution in &executions {
        assert_eq!(execution.jobs.len(), 1, "each acknowledged request ran once to its end: {execution:?}");
        assert_eq!(execution.jobs[0].output, json!({"result": true}));
        assert!(execution.trigger["body"]["order"].is_number(), "the trigger data is whole");
    }
}

#[test]
fn duplicates_of_idempotency_keys_around_a_kill_9_give_one_execution_each() {
    let data = fresh_dir("kill9-idempotency");
    let workflows = fresh_dir("kill9-idempotency-workflows");
    std::fs::create_dir_all(&workflows).unwrap();
    let events = json!({"key": "events", "sync": false, "trigger": {"idempotency": {"header": "Idempotency-Key"}},
                        "nodes": [{"key": "c", "type": "condition", "config": {}}]});
    std::fs::write(workflows.join("events.json"), events.to_string()).unwrap();
    let args = ["--workflows", workflows.to_str().unwrap()];
    let send = |address: std::net::SocketAddr, event: usize| {
        let key = format!("evt-{event}");
        let body = format!(r#"{{"event": "{key}"}}"#);
        let headers = [("Content-Type", "application/json"), ("Idempotency-Key", key.as_str())];
        http::try_send_raw(
            address,
            &http::request_bytes(address, "POST", "/api/webhook:trigger/events", &headers, body.as_bytes()),
            false,
        )
    };

    let serve = Serve::start_with(&data, &args, 1);
    let address = serve.address;
    let killing = Arc::new(AtomicBool::new(false));
    let next_event = Arc::new(AtomicUsize::new(0));
    // Four senders take events in turn and each sends its event twice at once with the next
    // sender, so every key is duplicated while the first request is being stored.
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let (killing, next_event) = (killing.clone(), next_event.clone());
            std::thread::spawn(move || {
                let mut acknowledged: Vec<(usize, String)> = Vec::new();
                loop {
                    let event = next_event.fetch_add(1, Ordering::SeqCst) / 2;
                    match send(address, event) {
                        Ok(answer) if answer.status == 200 => {
                            acknowledged.push((event, answer.header("x-hookflow-execution").unwrap().to_string()));
                        }
                        Ok(answer) => panic!("unexpected answer {}: {}", answer.status, answer.text()),
                        Err(_) if killing.load(Ordering::SeqCst) => return acknowledged,
                        Err(error) => panic!("request failed before the kill: {error}"),
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while next_event.load(Ordering::SeqCst) < 400 {
        assert!(Instant::now() < deadline, "the load did not get going");
        std::thread::sleep(Duration::from_millis(5));
    }
    killing.store(true, Ordering::SeqCst);
    serve.kill();
    let acknowledged: Vec<(usize, String)> = senders.into_iter().flat_map(|sender| sender.join().unwrap()).collect();
    let sent = next_event.load(Ordering::SeqCst) / 2 + 1;

    // Every event is retried after the restart, as its sender would: one execution per event,
    // the one every acknowledgement of it named.
    let serve = Serve::start_with(&data, &args, 1);
    let mut execution_of_event = std::collections::HashMap::new();
    for event in 0..sent {
        let answer = send(serve.address, event).unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text());
        execution_of_event.insert(event, answer.header("x-hookflow-execution").unwrap().to_string());
    }
    for (event, id) in &acknowledged {
        assert_eq!(&execution_of_event[event], id, "evt-{event} was acknowledged as {id} before the kill");
    }
    assert_eq!(serve.terminate(), Some(0));
    let ids: Vec<String> = execution_of_event.values().cloned().collect();
    run_to_completion(&data, &args, 1, &ids);
    let serve = Serve::start_with(&data, &args, 1);
    let listed = serve.admin("GET", "/api/executions?workflow=events&limit=500").json();
    let stored = listed["items"].as_array().unwrap();
    assert!(sent < 500 && listed["nextCursor"].is_null(), "one page holds them all");
    let mut events: Vec<String> =
        stored.iter().map(|execution| execution["trigger"]["body"]["event"].to_string()).collect();
    events.sort();
    events.dedup();
    assert_eq!((stored.len(), events.len()), (sent, sent), "one execution per event");
}

#[test]
fn an_execution_killed_between_nodes_resumes_after_its_last_resolved_job() {
    // Each step computes for 5 ms, so the execution lasts about a second and the kill lands in it
    // however fast the engine gets.
    const NODES: usize = 200;
    let data = fresh_dir("resume");
    let workflows = fresh_dir("resume-workflows");
    let plugins = fresh_dir("resume-plugins");
    std::fs::create_dir_all(&workflows).unwrap();
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::write(plugins.join("misbehave.wasm"), hookflow_tests::fixture("misbehave")).unwrap();
    let step = |n: usize| json!({"key": format!("step{n}"), "type": "misbehave", "config": {"mode": "busy", "ms": 5}});
    let nodes: Vec<Value> = (0..NODES).map(step).collect();
    let workflow = json!({"key": "many-steps", "sync": false, "nodes": nodes});
    std::fs::write(workflows.join("many-steps.json"), workflow.to_string()).unwrap();
    let args = ["--workflows", workflows.to_str().unwrap(), "--plugins", plugins.to_str().unwrap()];

    let serve = Serve::start_with(&data, &args, 1);
    let response = http::post(serve.address, "/api/webhook:trigger/many-steps", &[], b"");
    assert_eq!(response.status, 200);
    let id = response.header("x-hookflow-execution").unwrap().to_string();
    // Killed as soon as some steps are recorded: most have not run yet.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let shown = serve.admin("GET", &format!("/api/executions/{id}")).json();
        if shown["jobs"].as_array().is_some_and(|jobs| !jobs.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "no step ran: {shown}");
        std::thread::sleep(Duration::from_millis(2));
    }
    serve.kill();
    let killed_at = hookflow_workflow::timestamp::Timestamp::now();

    let execution = run_to_completion(&data, &args, 1, std::slice::from_ref(&id)).remove(0);
    let keys: Vec<String> = execution.jobs.iter().map(|job| job.node_key.clone()).collect();
    let expected: Vec<String> = (0..NODES).map(|n| format!("step{n}")).collect();
    assert_eq!(keys, expected, "every step ran, once, in order");
    let before = execution.jobs.iter().filter(|job| job.finished_at < killed_at).count();
    assert!(before > 0, "steps that resolved before the crash were kept, not run again");
    assert!(before < NODES, "the crash happened mid-execution");
    assert!(execution.jobs[before..].iter().all(|job| job.started_at >= killed_at), "the rest ran after the restart");
}

#[test]
fn a_delay_survives_a_crash_and_ends_on_time() {
    let data = fresh_dir("delay");
    let workflows = fresh_dir("delay-workflows");
    std::fs::create_dir_all(&workflows).unwrap();
    let workflow = json!({"key": "later", "sync": false, "nodes": [
        {"key": "wait", "type": "delay", "config": {"duration": "2s"}},
        {"key": "after", "type": "set", "config": {"values": {"order": "{{$context.body.order}}"}}}]});
    std::fs::write(workflows.join("later.json"), workflow.to_string()).unwrap();
    let args = ["--workflows", workflows.to_str().unwrap()];
    let show = |serve: &Serve, id: &str| serve.admin("GET", &format!("/api/executions/{id}")).json();
    let poll = |serve: &Serve, id: &str, done: &dyn Fn(&Value) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let execution = show(serve, id);
            if done(&execution) {
                return execution;
            }
            assert!(Instant::now() < deadline, "gave up waiting: {execution}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    let serve = Serve::start_with(&data, &args, 1);
    let response = http::post(
        serve.address,
        "/api/webhook:trigger/later",
        &[("Content-Type", "application/json")],
        br#"{"order": 9}"#,
    );
    assert_eq!(response.status, 200);
    let id = response.header("x-hookflow-execution").unwrap().to_string();
    let waiting = poll(&serve, &id, &|e| e["jobs"][0]["status"] == "pending");
    assert_eq!(waiting["status"], "started");
    serve.kill();

    let serve = Serve::start_with(&data, &args, 1);
    let execution = poll(&serve, &id, &|e| e["status"] != "started");
    assert_eq!(execution["status"], "resolved", "{execution}");
    let wait = &execution["jobs"][0];
    assert_eq!(wait["startedAt"], waiting["jobs"][0]["startedAt"], "the job recorded before the crash went on");
    let millis = |field: &Value| hookflow_workflow::timestamp::Timestamp::parse(field.as_str().unwrap()).unwrap().0;
    assert!(millis(&wait["finishedAt"]) >= millis(&wait["startedAt"]) + 2000, "it waited 2 s: {wait}");
    assert_eq!(execution["jobs"][1]["output"], json!({"order": 9}));
    assert_eq!(serve.terminate(), Some(0));
}

/// A small tmpfs mounted for one test (hookflow's data directory on a disk that fills up);
/// unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(name: &str, size: &str) -> SmallDisk {
        let dir = fresh_dir(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", dir.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(mounted.success(), "this test mounts a {size} tmpfs to fill a disk: run it as root");
        SmallDisk(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_reported_refused_and_recovered_from_without_losing_acknowledged_requests() {
    let disk = SmallDisk::mount("full-disk", "24m");
    let data = disk.0.join("data");
    let workflows = fresh_dir("full-disk-workflows");
    std::fs::create_dir_all(&workflows).unwrap();
    let stored = json!({"key": "stored", "nodes": [{"key": "c", "type": "condition", "config": {}}]});
    std::fs::write(workflows.join("stored.json"), stored.to_string()).unwrap();
    // The redb file on a disk that fills up, whichever store the other tests run on.
    let args = ["--workflows", workflows.to_str().unwrap(), "--workers", "1", "--store", "redb"];
    let serve = Serve::start_with(&data, &args, 1);
    let address = serve.address;
    let ready = || http::request(address, "GET", "/readyz", &[], b"").status;
    assert_eq!(ready(), 200);

    // Fill what is left of the disk.
    let ballast = disk.0.join("ballast");
    let mut file = std::fs::File::create(&ballast).unwrap();
    let chunk = vec![0u8; 64 << 10];
    while std::io::Write::write_all(&mut file, &chunk).is_ok() {}
    drop(file);

    let body = json!({"pad": "p".repeat(200_000)}).to_string();
    let json_type = [("Content-Type", "application/json")];
    let mut acknowledged = Vec::new();
    let refused = loop {
        let answer = http::post(address, "/api/webhook:trigger/stored", &json_type, body.as_bytes());
        match answer.status {
            200 => acknowledged.push(answer.header("x-hookflow-execution").unwrap().to_string()),
            _ => break answer,
        }
        assert!(acknowledged.len() < 500, "the disk never filled up");
    };
    assert_eq!((refused.status, refused.error_code()), (503, "overloaded".to_string()), "{}", refused.text());
    assert!(refused.header("retry-after").is_some());
    assert_eq!(ready(), 503, "/readyz tells a load balancer");
    let again = http::post(address, "/api/webhook:trigger/stored", &json_type, br#"{"small": 1}"#);
    assert_eq!(again.status, 503, "refused while writes fail: {}", again.text());
    assert_eq!(http::request(address, "GET", "/healthz", &[], b"").status, 200, "the process goes on");

    std::fs::remove_file(&ballast).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ready() != 200 {
        assert!(Instant::now() < deadline, "the store did not recover after the disk was freed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = http::post(address, "/api/webhook:trigger/stored", &json_type, br#"{"small": 1}"#);
    assert_eq!(after.status, 200, "{}", after.text());
    acknowledged.push(after.header("x-hookflow-execution").unwrap().to_string());
    for id in &acknowledged {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let shown = http::request(address, "GET", &format!("/api/executions/{id}"), &[], b"");
            assert_eq!(shown.status, 200, "acknowledged {id} is kept: {}", shown.text());
            if shown.json()["status"] == "resolved" {
                break;
            }
            assert!(Instant::now() < deadline, "acknowledged {id} did not run: {}", shown.text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert_eq!(serve.terminate(), Some(0));
}

#[test]
fn under_a_small_open_file_limit_connections_leave_descriptors_for_the_engine() {
    use std::io::{Read as _, Write as _};
    use std::net::{TcpListener, TcpStream};

    // A local target for the outbound call, answering every connection at once.
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let target_address = target.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in target.incoming().flatten() {
            let mut head = [0u8; 1024];
            let _ = stream.read(&mut head);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    let workflows = fresh_dir("nofile-workflows");
    std::fs::create_dir_all(&workflows).unwrap();
    let call = json!({"key": "call", "sync": true, "nodes": [
        {"key": "out", "type": "http-request", "config": {"method": "GET", "url": format!("http://{target_address}/")}},
        {"key": "r", "type": "response", "config": {"body": "{{$jobsMapByNodeKey.out.data}}"}}]});
    std::fs::write(workflows.join("call.json"), call.to_string()).unwrap();
    let data = fresh_dir("nofile-data");
    let grant = format!("http-request={target_address}");
    // The shell lowers its own limit and becomes hookflow (exec), so killing the child kills it.
    let mut child = std::process::Command::new("sh")
        .args([
            "-c",
            "ulimit -n 256 && exec \"$0\" \"$@\"",
            env!("CARGO_BIN_EXE_hookflow"),
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--data", data.to_str().unwrap(), "--workflows", workflows.to_str().unwrap()])
        .args(["--allow-outbound", &grant])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let line = lines.next().expect("serve printed its URL").unwrap();
    std::thread::spawn(move || lines.for_each(drop));
    let url = line.split_whitespace().last().unwrap().to_string();
    let address: std::net::SocketAddr = url.trim_start_matches("http://").split('/').next().unwrap().parse().unwrap();

    // An accepted connection that sends its request only once the descriptors are under siege.
    let mut caller = TcpStream::connect(address).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let idle: Vec<TcpStream> = (0..300).filter_map(|_| TcpStream::connect(address).ok()).collect();
    std::thread::sleep(Duration::from_millis(500));
    let request = format!(
        "POST /api/webhook:trigger/call HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    caller.write_all(request.as_bytes()).unwrap();
    caller.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut answer = String::new();
    let _ = caller.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "the outbound call found a descriptor: {answer}");
    assert!(answer.ends_with("ok"), "{answer}");
    drop(idle);
    let _ = child.kill();
    let _ = child.wait();
}
