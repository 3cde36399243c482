//! The `http-request` node against a real HTTP server on loopback, and the per-node-type grants:
//! outbound hosts (allowed, refused, none by default), the timeout, `ignoreFail`, environment
//! variables by name.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use hookflow_plugin::HostPattern;
use hookflow_workflow::{ExecutionStatus, JobStatus};
use serde_json::{Value, json};

use crate::util::TestServer;

/// A small HTTP/1.1 server: `/echo` answers 200 with the request as JSON, `/fail` 500 with a JSON
/// body, `/text` 200 with plain text, `/slow` waits 3 s before answering.
fn target_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer(stream));
        }
    });
    address
}

fn answer(stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let mut headers = serde_json::Map::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let Some((name, value)) = line.trim_end().split_once(':') else { break };
        let (name, value) = (name.to_ascii_lowercase(), value.trim().to_string());
        if name == "content-length" {
            length = value.parse().unwrap();
        }
        headers.insert(name, json!(value));
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    if headers.get("transfer-encoding").is_some_and(|coding| coding == "chunked") {
        // The whole request is read before answering: sizes in hex, each chunk and its CRLF, up
        // to the empty chunk and the blank line after it.
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).unwrap();
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let path = target.split('?').next().unwrap_or_default();
    let (status, content_type, reply) = match path {
        "/echo" => {
            let echo = json!({"method": method, "target": target, "headers": headers,
                              "body": String::from_utf8_lossy(&body)});
            (200, "application/json", echo.to_string())
        }
        "/fail" => (500, "application/json", r#"{"why": "out of stock"}"#.to_string()),
        "/text" => (200, "text/plain", "plain words".to_string()),
        "/slow" => {
            std::thread::sleep(Duration::from_secs(3));
            (200, "text/plain", "late".to_string())
        }
        _ => (404, "text/plain", "no such path".to_string()),
    };
    let mut stream = stream;
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nX-Target: yes\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(reply.as_bytes());
    // Take what the client still sends (a chunked body's last chunk) before closing: closing a
    // socket with unread data resets the connection, and the client may lose the answer.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = reader.get_ref().set_read_timeout(Some(Duration::from_secs(1)));
    let _ = std::io::copy(&mut reader, &mut std::io::sink());
}

/// A sync workflow: one `http-request` node with `config`, then a response with its output.
fn calling(config: Value) -> Value {
    json!({"key": "call", "sync": true, "nodes": [
        {"key": "call", "type": "http-request", "config": config},
        {"key": "answer", "type": "response", "config": {"body": "{{$jobsMapByNodeKey.call}}"}}
    ]})
}

fn granted(hosts: &str) -> impl FnOnce(&mut hookflow_server::server::ServerConfig) {
    let hosts: Vec<HostPattern> = hosts.split(',').map(|host| host.parse().unwrap()).collect();
    move |config| config.host.grants.allow_outbound("http-request", &hosts)
}

/// POSTs `body` to the `call` workflow and returns the execution it ran.
fn call(server: &TestServer, body: &Value) -> (u16, Value, hookflow_workflow::Execution) {
    let response = server.post_json("call", body);
    let id = response.header("x-hookflow-execution").unwrap().to_string();
    let status = response.status;
    let answer = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    (status, answer, server.finished_execution(&id))
}

#[test]
fn an_allowed_host_is_called_with_method_params_headers_and_body() {
    let target = target_server();
    let config = json!({
        "method": "PUT",
        "url": format!("http://{target}/echo?fixed=1"),
        "params": [{"name": "order", "value": "{{$context.body.order}}"}, {"name": "q", "value": "a b"}],
        "headers": [{"name": "X-Order", "value": "{{$context.body.order}}"}],
        "data": {"order": "{{$context.body.order}}", "items": [1, 2]}
    });
    let server = TestServer::start(&[calling(config)], granted("127.0.0.1:*"));
    let (status, answer, execution) = call(&server, &json!({"order": 42}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(execution.status, ExecutionStatus::Resolved);
    assert_eq!(answer["status"], 200);
    assert_eq!(answer["headers"]["x-target"], "yes");
    let echo = &answer["data"];
    assert_eq!(echo["method"], "PUT");
    assert_eq!(echo["target"], "/echo?fixed=1&order=42&q=a%20b");
    assert_eq!(echo["headers"]["x-order"], "42");
    assert_eq!(echo["headers"]["content-type"], "application/json");
    assert_eq!(echo["headers"]["host"], target.to_string());
    assert_eq!(
        serde_json::from_str::<Value>(echo["body"].as_str().unwrap()).unwrap(),
        json!({"order": 42, "items": [1, 2]})
    );

    let text = calling(json!({"method": "GET", "url": format!("http://{target}/text"), "onlyData": true}));
    let server = TestServer::start(&[text], granted(&format!("127.0.0.1:{}", target.port())));
    let (_, _, execution) = call(&server, &json!({}));
    assert_eq!(execution.jobs[0].output, "plain words", "onlyData: the body alone; text when it is not JSON");
}

#[test]
fn hosts_outside_the_grant_are_refused_with_a_clear_job_error() {
    let target = target_server();
    let workflow = calling(json!({"url": format!("http://localhost:{}/echo", target.port())}));
    let expect_refusal = |server: &TestServer| {
        let (status, answer, execution) = call(server, &json!({}));
        assert_eq!(status, 500, "{answer}");
        assert_eq!(execution.status, ExecutionStatus::Error);
        let error = execution.jobs[0].error.clone().unwrap_or_default();
        assert!(error.contains("has not allowed this node type to call localhost:"), "{error}");
    };
    // Granted 127.0.0.1 only: `localhost` is another name and is refused.
    expect_refusal(&TestServer::start(std::slice::from_ref(&workflow), granted("127.0.0.1:*")));
    // Granted the default port only.
    expect_refusal(&TestServer::start(std::slice::from_ref(&workflow), granted("localhost")));
    // No grant at all: no network.
    expect_refusal(&TestServer::start(&[workflow], |_| {}));
}

#[test]
fn the_timeout_is_honoured() {
    let target = target_server();
    let server = TestServer::start(
        &[calling(json!({"method": "GET", "url": format!("http://{target}/slow"), "timeout": 300}))],
        granted("127.0.0.1:*"),
    );
    // `/slow` answers after 3 s: an error that it did not answer is the timeout at work.
    let (status, _, execution) = call(&server, &json!({}));
    assert_eq!(status, 500);
    let error = execution.jobs[0].error.clone().unwrap_or_default();
    assert!(error.contains("did not answer"), "{error}");
}

#[test]
fn ignore_fail_goes_on_after_an_error_status_or_a_refusal() {
    let target = target_server();
    let failing = |ignore: bool| calling(json!({"url": format!("http://{target}/fail"), "ignoreFail": ignore}));

    let server = TestServer::start(&[failing(false)], granted("127.0.0.1:*"));
    let (status, _, execution) = call(&server, &json!({}));
    assert_eq!(status, 500);
    assert_eq!(execution.status, ExecutionStatus::Failed, "a 5xx answer fails the execution");
    assert_eq!(execution.jobs[0].status, JobStatus::Failed);
    assert_eq!(execution.jobs[0].output["status"], 500);
    assert_eq!(execution.jobs[0].output["data"], json!({"why": "out of stock"}));

    let server = TestServer::start(&[failing(true)], granted("127.0.0.1:*"));
    let (status, answer, _) = call(&server, &json!({}));
    assert_eq!(status, 200, "the next node ran");
    assert_eq!((answer["status"].clone(), answer["data"]["why"].clone()), (json!(500), json!("out of stock")));

    let refused = calling(json!({"url": format!("http://{target}/echo"), "ignoreFail": true}));
    let (status, answer, _) = call(&TestServer::start(&[refused], |_| {}), &json!({}));
    assert_eq!(status, 200);
    assert!(answer["error"].as_str().unwrap().contains("has not allowed"), "{answer}");
}

#[test]
fn a_bad_config_is_a_job_error_naming_the_field() {
    let server = TestServer::start(&[calling(json!({"url": "{{$context.body.url}}"}))], granted("127.0.0.1:*"));
    let (_, _, execution) = call(&server, &json!({"url": "not a url"}));
    let error = execution.jobs[0].error.clone().unwrap_or_default();
    assert!(error.starts_with("url: expected an absolute http:// or https:// URL"), "{error}");
}

#[test]
fn environment_variables_are_granted_by_name_only() {
    let granted_name = "CARGO_MANIFEST_DIR";
    let expected = std::env::var(granted_name).expect("cargo sets it for tests");
    let workflow = json!({"key": "env", "sync": true, "nodes": [
        {"key": "look", "type": "misbehave", "config": {"mode": "env"}},
        {"key": "answer", "type": "response", "config": {"body": "{{$jobsMapByNodeKey.look}}"}}]});
    let server = TestServer::start(std::slice::from_ref(&workflow), |config| {
        assert!(
            config.host.grants.allow_env("misbehave", &[granted_name.into(), "HOOKFLOW_UNSET_VAR".into()])
                == ["HOOKFLOW_UNSET_VAR"]
        );
    });
    let seen: Value = serde_json::from_slice(&server.post_json("env", &json!({})).body).unwrap();
    assert_eq!(seen, json!({ granted_name: expected }), "only the granted variable, with its value");

    let ungranted = TestServer::start(&[workflow], |_| {});
    let seen: Value = serde_json::from_slice(&ungranted.post_json("env", &json!({})).body).unwrap();
    assert_eq!(seen, json!({}), "no grant, no environment");
}

#[test]
fn a_node_type_gets_its_own_time_budget() {
    let workflow = json!({"key": "busy", "sync": true, "nodes": [
        {"key": "work", "type": "misbehave", "config": {"mode": "busy", "ms": 1500}}]});
    let default_budget = TestServer::start(std::slice::from_ref(&workflow), |_| {});
    let response = default_budget.post_json("busy", &json!({}));
    let id = response.header("x-hookflow-execution").unwrap().to_string();
    let execution = default_budget.finished_execution(&id);
    assert_eq!(execution.status, ExecutionStatus::Aborted, "1.5 s of work is past the default 1 s");

    let longer = TestServer::start(&[workflow], |config| {
        config.host.grants.set_time_budget("misbehave", Duration::from_secs(5));
    });
    let response = longer.post_json("busy", &json!({}));
    assert_eq!(response.status, 200, "{}", response.text());
}

#[test]
fn names_that_resolve_to_internal_addresses_are_refused_even_when_granted() {
    let target = target_server();
    // `localhost:*` is granted by name: the name resolves to loopback, so nothing is reached —
    // neither the target nor the engine's own admin API.
    let server =
        TestServer::start(&[calling(json!({"method": "GET", "url": "{{$context.body.url}}"}))], granted("localhost:*"));
    for url in [
        format!("http://localhost:{}/echo", target.port()),
        format!("http://localhost:{}/api/workflows", server.address.port()),
    ] {
        let (status, answer, execution) = call(&server, &json!({"url": url}));
        assert_eq!(status, 500, "{answer}");
        let error = execution.jobs[0].error.clone().unwrap_or_default();
        assert!(error.contains("resolves to a loopback, private or link-local address"), "{url}: {error}");
    }
    // The IP literal, granted as such, is reached.
    let literal = TestServer::start(
        &[calling(json!({"method": "GET", "url": "{{$context.body.url}}"}))],
        granted(&format!("127.0.0.1:{}", target.port())),
    );
    let (status, answer, _) = call(&literal, &json!({"url": format!("http://127.0.0.1:{}/echo", target.port())}));
    assert_eq!(status, 200, "{answer}");
}

#[test]
fn slow_outbound_calls_holding_every_instance_do_not_hold_up_other_workflows() {
    let target = target_server();
    let slow = json!({"key": "slow", "nodes": [
        {"key": "call", "type": "http-request", "config": {"method": "GET", "url": format!("http://{target}/slow"), "timeout": 5000}}]});
    let quick =
        json!({"key": "quick", "sync": true, "nodes": [{"key": "r", "type": "response", "config": {"body": "fast"}}]});
    let keyed = json!({"key": "keyed", "sync": true, "trigger": {"idempotency": {"header": "Idempotency-Key"}},
        "nodes": [{"key": "r", "type": "response", "config": {"body": "fast"}}]});
    let server = TestServer::start(&[slow, quick, keyed], |config| {
        granted("127.0.0.1:*")(config);
        config.host.max_instances = 2;
        config.host.grants.set_time_budget("http-request", Duration::from_secs(10));
        config.dispatch.sync_timeout = Duration::from_millis(500);
        config.dispatch.workers = 4;
    });
    let ids: Vec<String> =
        (0..4).map(|_| server.post("slow", &[], b"").header("x-hookflow-execution").unwrap().to_string()).collect();
    // Both instances are taken by calls to the slow target.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ids.iter().filter(|id| server.execution(id).is_some_and(|e| e.status == ExecutionStatus::Started)).count() < 2
    {
        assert!(Instant::now() < deadline, "the slow calls never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    server.wait_for_node_calls(2);
    let still_running = || ids.iter().all(|id| server.execution(id).is_some_and(|e| !e.status.is_final()));

    let answer = server.post("quick", &[], b"");
    assert_eq!((answer.status, answer.text().as_str()), (200, "fast"));
    assert!(still_running(), "the quick workflow answered only once a slow call had ended");

    // One that needs a shared instance waits no longer than its caller does.
    let answer = server.post("keyed", &[("Idempotency-Key", "k1")], b"");
    assert_eq!(answer.status, 504, "{}", answer.text());
    let execution = server.finished_execution(answer.header("x-hookflow-execution").unwrap());
    let error = execution.jobs[0].error.clone().unwrap_or_default();
    assert!(error.contains("no node instance became free"), "{error}");
    for id in &ids {
        let slow = server.finished_execution(id);
        assert_eq!(slow.jobs[0].status, JobStatus::Resolved, "the slow calls still end");
        assert!(execution.finished_at < slow.finished_at, "it gave up before the slow calls freed an instance");
    }
}

#[test]
fn credential_headers_are_sent_but_recorded_masked() {
    let target = target_server();
    let config = json!({"url": format!("http://{target}/echo"), "headers": [
        {"name": "Authorization", "value": "Bearer live-token-31"}, {"name": "X-Api-Key", "value": "key-77"},
        {"name": "X-Order", "value": "42"}]});
    let server = TestServer::start(&[calling(config)], granted("127.0.0.1:*"));
    let (status, answer, execution) = call(&server, &json!({}));
    assert_eq!(status, 200, "{answer}: {:?}", execution.jobs);
    let sent = &answer["data"]["headers"];
    assert_eq!(sent["authorization"], "Bearer live-token-31", "the target got the real value: {answer}");
    assert_eq!(sent["x-api-key"], "key-77");
    let recorded = &execution.jobs[0].input["headers"];
    assert_eq!(recorded[0]["value"], "********");
    assert_eq!(recorded[1]["value"], "********");
    assert_eq!(recorded[2]["value"], "42", "other headers stay as they were");
    let shown =
        hookflow_tests::http::request(server.address, "GET", &format!("/api/executions/{}", execution.id), &[], b"");
    // (The echo target's answer, the job's output, carries them back: that is the target's doing.)
    let input = shown.json()["jobs"][0]["input"].to_string();
    assert!(!input.contains("live-token-31") && !input.contains("key-77"), "{input}");
}

/// `openssl s_server` on loopback with a fresh self-signed certificate; killed on drop.
struct SelfSignedServer {
    child: std::process::Child,
    address: SocketAddr,
}

impl SelfSignedServer {
    fn start() -> SelfSignedServer {
        let dir = crate::util::fresh_dir("tls-server");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let made = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("this test needs the openssl command (Debian package openssl)");
        assert!(made.status.success(), "openssl req: {}", String::from_utf8_lossy(&made.stderr));
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let child = std::process::Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(address.to_string())
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("openssl s_server");
        let server = SelfSignedServer { child, address };
        let started = Instant::now();
        while TcpStream::connect(address).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "openssl s_server did not listen on {address}");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }
}

impl Drop for SelfSignedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_https_server_with_an_untrusted_certificate_is_refused_and_named() {
    let tls = SelfSignedServer::start();
    let workflow = calling(json!({"method": "GET", "url": format!("https://{}/", tls.address)}));
    let server = TestServer::start(&[workflow], granted(&tls.address.to_string()));
    let (status, answer, execution) = call(&server, &json!({}));
    assert_eq!(status, 500, "{answer}");
    assert_eq!(execution.status, ExecutionStatus::Error);
    let error = execution.jobs[0].error.clone().unwrap_or_default();
    assert_eq!(error, format!("the TLS certificate of {} is not trusted", tls.address));
}
