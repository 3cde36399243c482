//! The limits of docs/security.md against the running engine: nesting, per-execution limits, idempotency of failed
//! answers, reply framing, and what the loopback-mode admin API refuses.

use hookflow_tests::http::{self, HttpResponse};
use hookflow_workflow::JobStatus;
use serde_json::{Value, json};

use crate::util::TestServer;

fn admin(server: &TestServer, method: &str, path: &str) -> HttpResponse {
    http::request(server.address, method, path, &[], b"")
}

/// `[[…[{}]…]]` with `levels` containers in all.
fn nested(levels: usize) -> String {
    format!("{}{{}}{}", "[".repeat(levels - 1), "]".repeat(levels - 1))
}

#[test]
fn bodies_nest_at_most_64_levels_and_every_record_reads_back() {
    let sync = json!({"key": "echo", "sync": true,
        "nodes": [{"key": "reply", "type": "response", "config": {"body": {"got": "{{$context.body}}"}}}]});
    let queued = json!({"key": "later", "nodes": [{"key": "copy", "type": "set", "config": {"values": {"body": "{{$context.body}}"}}}]});
    let server = TestServer::start(&[sync, queued], |_| {});
    let json_type = [("Content-Type", "application/json")];

    let refused = server.post("echo", &json_type, nested(65).as_bytes());
    assert_eq!((refused.status, refused.error_code()), (400, "invalid_body".to_string()), "{}", refused.text());
    assert!(refused.text().contains("64 levels"), "the limit is named: {}", refused.text());
    let refused = server.post("later", &json_type, nested(127).as_bytes());
    assert_eq!(refused.status, 400, "127 levels are refused before anything is queued");

    let deepest: Value = serde_json::from_str(&nested(64)).unwrap();
    let answered = server.post("echo", &json_type, nested(64).as_bytes());
    assert_eq!(answered.status, 200, "{}", answered.text());
    assert_eq!(answered.json()["got"], deepest);
    let accepted = server.post("later", &json_type, nested(64).as_bytes());
    assert_eq!(accepted.status, 200, "{}", accepted.text());
    let id = accepted.header("x-hookflow-execution").unwrap().to_string();
    let finished = server.finished_execution(&id);
    assert_eq!(finished.status.as_str(), "resolved", "the 64-level async execution ran");

    let listed = admin(&server, "GET", "/api/executions");
    assert_eq!(listed.status, 200, "{}", listed.text());
    assert_eq!(listed.json()["items"].as_array().unwrap().len(), 2);
    let shown = admin(&server, "GET", &format!("/api/executions/{id}"));
    assert_eq!(shown.status, 200, "{}", shown.text());
    assert_eq!(shown.json()["trigger"]["body"], deepest);
    assert_eq!(shown.json()["jobs"][0]["output"]["body"], deepest);
    assert_eq!(admin(&server, "DELETE", &format!("/api/executions/{id}")).status, 204);
    assert_eq!(admin(&server, "GET", &format!("/api/executions/{id}")).status, 404);
}

#[test]
fn nodes_cannot_frame_the_answer_and_html_is_sandboxed() {
    let framing = json!({"key": "framing", "sync": true, "nodes": [{"key": "r", "type": "response", "config": {
        "headers": [{"name": "Content-Length", "value": "3"}, {"name": "Transfer-Encoding", "value": "chunked"},
                    {"name": "Connection", "value": "close"}, {"name": "Keep-Alive", "value": "timeout=1"},
                    {"name": "Upgrade", "value": "websocket"}, {"name": "Trailer", "value": "x"},
                    {"name": "Proxy-Authenticate", "value": "Basic"}, {"name": "X-Kept", "value": "yes"}],
        "body": "hello world"}}]});
    let page = json!({"key": "page", "sync": true, "nodes": [{"key": "r", "type": "response", "config": {
        "headers": [{"name": "Content-Type", "value": "text/html; charset=utf-8"}],
        "body": "<script>alert({{$context.body.name}})</script>"}}]});
    let server = TestServer::start(&[framing, page], |_| {});

    let answer = server.post("framing", &[], b"");
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "hello world");
    assert_eq!(answer.header("content-length"), Some("11"), "the server frames the body: {:?}", answer.headers);
    for dropped in ["transfer-encoding", "keep-alive", "upgrade", "trailer", "proxy-authenticate"] {
        assert_eq!(answer.header(dropped), None, "{dropped} is dropped: {:?}", answer.headers);
    }
    assert_eq!(answer.header("x-kept"), Some("yes"));
    assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(answer.header("content-security-policy"), None, "only HTML is sandboxed");

    // Two pipelined requests on one connection: the second answer starts after the first body.
    let address = server.address;
    let one = format!("POST /api/webhook:trigger/framing HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\n\r\n");
    let two = format!(
        "POST /api/webhook:trigger/framing HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    std::io::Write::write_all(&mut stream, format!("{one}{two}").as_bytes()).unwrap();
    let mut raw = String::new();
    std::io::Read::read_to_string(&mut stream, &mut raw).unwrap();
    let answers: Vec<&str> = raw.split("HTTP/1.1 ").filter(|part| !part.is_empty()).collect();
    assert_eq!(answers.len(), 2, "{raw}");
    for answer in answers {
        assert!(answer.starts_with("200 OK\r\n") && answer.ends_with("\r\n\r\nhello world"), "{answer:?}");
    }

    let html = server.post("page", &[("Content-Type", "application/json")], br#"{"name": "document.cookie"}"#);
    assert_eq!(html.status, 200);
    assert_eq!(html.header("content-security-policy"), Some("sandbox"));
    assert_eq!(html.header("x-content-type-options"), Some("nosniff"));
    let missing = server.post("nope", &[], b"");
    assert_eq!((missing.status, missing.header("x-content-type-options")), (404, Some("nosniff")));
}

#[test]
fn the_open_loopback_api_refuses_what_a_proxy_or_a_browser_form_sends() {
    let server = TestServer::start(&[], |_| {});
    let address = server.address;
    let get = |headers: &[(&str, &str)]| http::request(address, "GET", "/api/workflows", headers, b"");
    assert_eq!(get(&[]).status, 200, "the operator's own request");

    for header in ["Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Real-IP", "Via"] {
        let value = if header == "Forwarded" { "for=203.0.113.9" } else { "203.0.113.9" };
        let refused = get(&[(header, value)]);
        assert_eq!((refused.status, refused.error_code()), (403, "admin_disabled".to_string()), "{header}");
        assert!(refused.text().contains("admin token"), "the message says to set a token: {}", refused.text());
    }
    // nginx's default towards its upstream: HTTP/1.0 with the upstream's own Host.
    let raw = format!("GET /api/workflows HTTP/1.0\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    assert_eq!(http::send_raw(address, raw.as_bytes(), false).status, 403);

    let workflow = json!({"key": "w", "sync": true, "nodes": []}).to_string();
    let create = |content_type: Option<&str>, origin: Option<&str>| {
        let mut headers: Vec<(&str, &str)> = Vec::new();
        headers.extend(content_type.map(|value| ("Content-Type", value)));
        headers.extend(origin.map(|value| ("Origin", value)));
        http::request(address, "POST", "/api/workflows", &headers, workflow.as_bytes())
    };
    for form_type in
        [None, Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("multipart/form-data; boundary=x")]
    {
        let refused = create(form_type, None);
        assert_eq!(
            (refused.status, refused.error_code()),
            (415, "unsupported_media_type".to_string()),
            "{form_type:?}"
        );
    }
    let foreign = create(Some("application/json"), Some("http://evil.example"));
    assert_eq!((foreign.status, foreign.error_code()), (403, "admin_disabled".to_string()), "{}", foreign.text());
    let own = format!("http://{address}");
    assert_eq!(create(Some("application/json"), Some(&own)).status, 201, "the server's own origin is accepted");
    assert_eq!(admin(&server, "GET", "/api/workflows/w").status, 200);

    // Probes, the document and the webhooks stay open to everyone.
    for path in ["/healthz", "/readyz", "/api/openapi.json"] {
        assert_eq!(http::request(address, "GET", path, &[("X-Forwarded-For", "203.0.113.9")], b"").status, 200);
    }
}

#[test]
fn the_mask_is_never_taken_for_a_secret() {
    let server = TestServer::start(&[], |_| {});
    let post = |definition: &Value| {
        http::request(
            server.address,
            "POST",
            "/api/workflows",
            &[("Content-Type", "application/json")],
            definition.to_string().as_bytes(),
        )
    };
    let masked_password = json!({"key": "shop", "sync": true,
        "trigger": {"basicAuth": {"username": "shop", "password": "********"}}, "nodes": []});
    let refused = post(&masked_password);
    assert_eq!((refused.status, refused.error_code()), (422, "validation_failed".to_string()), "{}", refused.text());
    assert_eq!(refused.json()["error"]["faults"][0]["path"], "trigger.basicAuth.password");
    let masked_secret = json!({"key": "hub", "sync": true, "trigger": {"signature": {"type": "hmac-sha256",
        "header": "X-Sig", "secrets": ["real", "********"]}}, "nodes": []});
    let refused = post(&masked_secret);
    assert_eq!(refused.status, 422, "{}", refused.text());
    assert_eq!(refused.json()["error"]["faults"][0]["path"], "trigger.signature.secrets[1]");
    assert_eq!(admin(&server, "GET", "/api/workflows/shop").status, 404, "nothing was created");
    assert!(server.post("shop", &[("Authorization", "Basic c2hvcDoqKioqKioqKg==")], b"").status == 404);

    // A replacement that sends the mask back keeps the stored secret.
    let real = json!({"key": "shop", "sync": true,
        "trigger": {"basicAuth": {"username": "shop", "password": "s3cret"}}, "nodes": []});
    assert_eq!(post(&real).status, 201);
    let replaced = http::request(
        server.address,
        "PUT",
        "/api/workflows/shop",
        &[("Content-Type", "application/json")],
        masked_password.to_string().as_bytes(),
    );
    assert_eq!(replaced.status, 200, "{}", replaced.text());
    assert_eq!(server.post("shop", &[("Authorization", "Basic c2hvcDpzM2NyZXQ=")], b"").status, 200);
    assert_eq!(server.post("shop", &[("Authorization", "Basic c2hvcDoqKioqKioqKg==")], b"").status, 401);
}

#[cfg(unix)]
#[test]
fn the_data_directory_and_database_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    // The redb file, whichever store the other tests run on.
    let server = TestServer::start(&[], |config| config.postgres = None);
    let data = server.stop();
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("hookflow.redb")), 0o600);

    // An existing directory and database, readable by all, are tightened at start.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(data.join("hookflow.redb"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let restarted = TestServer::start_in(data.clone(), |config| config.postgres = None);
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("hookflow.redb")), 0o600);
    drop(restarted.stop());
}

#[test]
fn connections_beyond_the_limit_wait_and_idle_ones_are_closed() {
    use std::io::{Read as _, Write as _};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    let server = TestServer::start(&[], |config| {
        config.limits.max_connections = 4;
        config.limits.read_timeout = Duration::from_millis(1500);
    });
    let address = server.address;
    let idle: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(address).unwrap()).collect();
    // Past the limit a connection waits in the backlog: this one is answered only once an idle
    // one is gone.
    let waiting = std::thread::spawn(move || {
        let started = Instant::now();
        let answer = http::request(address, "GET", "/healthz", &[], b"");
        (answer.status, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(!waiting.is_finished(), "a fifth connection was served while four were open");
    // The idle connections sent no request head within --read-timeout: the server closes them.
    for mut connection in idle {
        connection.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut rest = Vec::new();
        let closed = connection.read_to_end(&mut rest);
        assert!(closed.is_ok() || closed.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset));
    }
    let (status, waited) = waiting.join().unwrap();
    assert_eq!(status, 200);
    assert!(waited >= Duration::from_millis(300), "it waited for a free place: {waited:?}");

    // A client that sends requests and never reads the answers loses its connection.
    let big = json!({"key": "big", "sync": true,
        "nodes": [{"key": "r", "type": "response", "config": {"body": "x".repeat(100_000)}}]});
    let server = TestServer::start(&[big], |config| config.limits.read_timeout = Duration::from_millis(500));
    let stream = TcpStream::connect(server.address).unwrap();
    let request =
        format!("POST /api/webhook:trigger/big HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\n\r\n", server.address);
    let mut writer = stream.try_clone().unwrap();
    // Requests go out until the connection breaks: answers pile up unread, the server's writes
    // stall, and it must close the connection (then a write here fails). Bounded in count.
    let sending = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(30);
        (0..).take_while(|_| Instant::now() < until).find(|sent| {
            if *sent > 2_000 {
                std::thread::sleep(Duration::from_millis(5));
            }
            writer.write_all(request.as_bytes()).is_err()
        })
    });
    assert!(sending.join().unwrap().is_some(), "the server kept a connection whose answers nobody read for 30 s");
    drop(stream);
    assert_eq!(http::request(server.address, "GET", "/healthz", &[], b"").status, 200);
}

#[test]
fn an_execution_ends_error_at_its_job_limit_naming_it() {
    let looping = json!({"key": "looping", "sync": true, "nodes": [
        {"key": "each", "type": "loop", "config": {"target": "{{$context.body.n}}"}, "branches": {"body": [
            {"key": "step", "type": "set", "config": {"values": {"i": "{{$scopes.each.index}}"}}}]}},
        {"key": "r", "type": "response", "config": {"body": "unreachable"}}]});
    let server = TestServer::start(&[looping], |_| {});
    let answer = server.post_json("looping", &json!({"n": 100_000}));
    assert_eq!((answer.status, answer.error_code()), (500, "execution_failed".to_string()), "{}", answer.text());
    let execution = server.finished_execution(answer.header("x-hookflow-execution").unwrap());
    assert_eq!(execution.status.as_str(), "error");
    let message = "execution exceeded --max-jobs (10000)";
    assert_eq!(execution.error.as_deref(), Some(message));
    assert_eq!(execution.jobs.len(), 10_001, "10000 jobs, then the one that crossed the limit");
    let crossing = execution.jobs.last().unwrap();
    assert_eq!((crossing.node_key.as_str(), crossing.error.as_deref()), ("step", Some(message)));
    let shown = admin(&server, "GET", &format!("/api/executions/{}", execution.id));
    assert_eq!(shown.json()["error"], message);
    assert!(shown.body.len() < 4 << 20, "the record stays small: {} bytes", shown.body.len());
}

#[test]
fn recorded_bytes_are_capped_and_large_values_truncated() {
    // The audit's case: every iteration copies the whole 100 KB order into its job.
    let copying = json!({"key": "copying", "nodes": [
        {"key": "each", "type": "loop", "config": {"target": "{{$context.body.items}}"}, "branches": {"body": [
            {"key": "copy", "type": "set", "config": {"values": {"order": "{{$context.body.order}}"}}}]}}]});
    let large = json!({"key": "large", "sync": true, "nodes": [
        {"key": "big", "type": "set", "config": {"values": {"text": "{{$context.body.text}}"}}},
        {"key": "r", "type": "response", "config": {"body": {"text": "{{$jobsMapByNodeKey.big.text}}"}}}]});
    let server = TestServer::start(&[copying, large], |_| {});

    let order = "o".repeat(100_000);
    let accepted = server.post_json("copying", &json!({"order": order, "items": vec![1; 1000]}));
    assert_eq!(accepted.status, 200);
    let execution = server.finished_execution(accepted.header("x-hookflow-execution").unwrap());
    assert_eq!(execution.status.as_str(), "error");
    assert_eq!(execution.error.as_deref(), Some("execution exceeded --max-record (16MiB)"));
    let recorded: usize =
        execution.jobs.iter().map(|job| job.input.to_string().len() + job.output.to_string().len()).sum();
    assert!(recorded < (16 << 20) + 400_000, "recorded {recorded} bytes");
    assert!(execution.jobs.len() < 200, "it stopped after {} jobs", execution.jobs.len());

    let text = "t".repeat(300 * 1024);
    let answer = server.post_json("large", &json!({"text": text}));
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["text"].as_str().map(str::len), Some(300 * 1024), "later nodes see the whole value");
    let execution = server.finished_execution(answer.header("x-hookflow-execution").unwrap());
    let output = &execution.jobs[0].output;
    assert_eq!(output["truncated"], true, "{}", &output.to_string()[..200.min(output.to_string().len())]);
    assert_eq!(output["bytes"], json!({"text": text}).to_string().len());
    assert!(output["preview"].as_str().unwrap().starts_with("{\"text\":\"ttt"));
    assert!(output["preview"].as_str().unwrap().len() <= 1024);
    assert_eq!(execution.jobs[0].input["truncated"], true);
}

#[test]
fn async_node_time_is_capped_per_workflow() {
    let busy = |key: &str| json!({"key": key, "type": "misbehave", "config": {"mode": "busy", "ms": 300}});
    let slow = json!({"key": "slow", "options": {"maxRunTimeMs": 500},
        "nodes": [busy("a"), busy("b"), busy("c"), busy("d")]});
    let server = TestServer::start(&[slow], |_| {});
    let accepted = server.post("slow", &[], b"");
    let execution = server.finished_execution(accepted.header("x-hookflow-execution").unwrap());
    assert_eq!(execution.status.as_str(), "error");
    let message = "execution exceeded options.maxRunTimeMs (500ms)";
    assert_eq!(execution.error.as_deref(), Some(message));
    assert_eq!(execution.jobs.iter().map(|job| job.node_key.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
    assert_eq!(execution.jobs[2].error.as_deref(), Some(message));
}

/// Posts to an async workflow and returns its execution id; panics unless it was accepted.
fn accepted(server: &TestServer, key: &str) -> String {
    let answer = server.post(key, &[], b"");
    assert_eq!(answer.status, 200, "{key}: {}", answer.text());
    answer.header("x-hookflow-execution").unwrap().to_string()
}

fn assert_overloaded(answer: &HttpResponse, limit: &str) {
    assert_eq!((answer.status, answer.error_code()), (503, "overloaded".to_string()), "{}", answer.text());
    assert!(answer.header("retry-after").is_some());
    assert!(answer.text().contains(limit), "the limit is named: {}", answer.text());
}

#[test]
fn a_delayed_backlog_of_one_workflow_does_not_lock_out_another() {
    use std::time::{Duration, Instant};
    let waits = json!({"key": "waits", "nodes": [{"key": "d", "type": "delay", "config": {"duration": "1h"}}]});
    let other = json!({"key": "other", "nodes": [{"key": "c", "type": "condition", "config": {}}]});
    let server = TestServer::start(&[waits, other], |config| {
        config.dispatch.max_queue = 3;
        config.dispatch.max_delayed = 5;
    });
    for _ in 0..5 {
        let id = accepted(&server, "waits");
        // Each one is waiting in its delay before the next is sent.
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.execution(&id).is_none_or(|e| e.jobs.first().is_none_or(|job| job.status != JobStatus::Pending)) {
            assert!(Instant::now() < deadline, "{id} never reached its delay");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    assert_overloaded(&server.post("waits", &[], b""), "--max-delayed");
    for _ in 0..3 {
        let id = accepted(&server, "other");
        assert_eq!(server.finished_execution(&id).status.as_str(), "resolved");
    }
}

#[test]
fn a_workflow_has_its_own_queue_share_and_concurrency() {
    let capped = json!({"key": "capped", "options": {"maxQueued": 2}, "nodes": []});
    let free = json!({"key": "free", "nodes": []});
    let server = TestServer::start(&[capped, free], |config| config.dispatch.workers = 0);
    accepted(&server, "capped");
    accepted(&server, "capped");
    assert_overloaded(&server.post("capped", &[], b""), "options.maxQueued");
    accepted(&server, "free");

    let busy = json!({"key": "one-at-a-time", "options": {"maxConcurrency": 1},
        "nodes": [{"key": "work", "type": "misbehave", "config": {"mode": "busy", "ms": 300}}]});
    let quick = json!({"key": "quick", "nodes": [{"key": "c", "type": "condition", "config": {}}]});
    let server = TestServer::start(&[busy, quick], |config| config.dispatch.workers = 4);
    let ids: Vec<String> = (0..3).map(|_| accepted(&server, "one-at-a-time")).collect();
    let quick_id = accepted(&server, "quick");
    let runs: Vec<_> = ids.iter().map(|id| server.finished_execution(id)).collect();
    let mut spans: Vec<(u64, u64)> = runs.iter().map(|e| (e.jobs[0].started_at.0, e.jobs[0].finished_at.0)).collect();
    spans.sort_unstable();
    for pair in spans.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "runs of one workflow overlapped: {spans:?}");
    }
    let quick_run = server.finished_execution(&quick_id);
    assert!(quick_run.finished_at.unwrap().0 < spans[2].0, "the other workflow did not wait behind them");
    let invalid = json!({"key": "never", "options": {"maxConcurrency": 0}, "nodes": []}).to_string();
    let refused = http::request(
        server.address,
        "POST",
        "/api/workflows",
        &[("Content-Type", "application/json")],
        invalid.as_bytes(),
    );
    assert_eq!(refused.status, 422, "{}", refused.text());
}

#[test]
fn the_api_refuses_what_its_document_forbids() {
    let server = TestServer::start(&[], |_| {});
    let json_type = [("Content-Type", "application/json")];
    let post = |body: &[u8]| http::request(server.address, "POST", "/api/workflows", &json_type, body);
    for body in [&b"[]"[..], b"[true, \"x\"]", br#"{"sync": true, "trigger": []}"#, br#"{"nodes": [[]]}"#] {
        let refused = post(body);
        assert_eq!(
            (refused.status, refused.error_code()),
            (422, "validation_failed".to_string()),
            "{}",
            refused.text()
        );
    }
    assert_eq!(admin(&server, "GET", "/api/workflows").json()["items"], json!([]), "nothing was created");
    let not_text = post(b"{\"title\": \"\xff\"}");
    assert_eq!((not_text.status, not_text.error_code()), (400, "invalid_body".to_string()));
    assert_eq!(not_text.header("content-type"), Some("application/json"));

    // Every secured operation documents the refusals the middleware gives.
    let document = admin(&server, "GET", "/api/openapi.json").json();
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            if operation.get("security").is_some() {
                for status in ["401", "403", "422", "500"] {
                    assert!(operation["responses"].get(status).is_some(), "{method} {path} documents {status}");
                }
            }
        }
    }
}
