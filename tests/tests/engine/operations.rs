//! Operating the engine: the execution history's time range, background retention, the OpenAPI
//! document, the web console's assets, and the admin API's refusal of remote clients and foreign
//! browser requests when no token is configured.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookflow_server::retention::RetentionConfig;
use hookflow_tests::http;
use hookflow_tests::netns::RemoteHost;
use hookflow_workflow::timestamp::Timestamp;
use hookflow_workflow::{Clock as _, ExecutionStatus, ManualClock};
use serde_json::{Value, json};

use crate::util::TestServer;

fn get(server: &TestServer, path: &str) -> Value {
    let response = http::request(server.address, "GET", path, &[], b"");
    assert_eq!(response.status, 200, "{path}: {}", response.text());
    response.json()
}

fn ids(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
}

fn echo(key: &str) -> Value {
    json!({"key": key, "sync": true, "nodes": [{"key": "r", "type": "response", "config": {"body": "ok"}}]})
}

#[test]
fn executions_are_listed_by_time_range() {
    let server = TestServer::start(&[echo("timed")], |_| {});
    let run = || {
        let response = server.post("timed", &[], b"");
        let id = response.header("x-hookflow-execution").unwrap().to_string();
        server.finished_execution(&id);
        id
    };
    let early = run();
    std::thread::sleep(Duration::from_millis(20));
    let middle_starts = Timestamp::now();
    std::thread::sleep(Duration::from_millis(20));
    let middle = run();
    std::thread::sleep(Duration::from_millis(20));
    let late_starts = Timestamp::now();
    std::thread::sleep(Duration::from_millis(20));
    let late = run();

    let since = get(&server, &format!("/api/executions?since={middle_starts}"));
    assert_eq!(ids(&since), [late.clone(), middle.clone()]);
    let until = get(&server, &format!("/api/executions?until={middle_starts}"));
    assert_eq!(ids(&until), [early]);
    let window = get(&server, &format!("/api/executions?since={middle_starts}&until={late_starts}&workflow=timed"));
    assert_eq!(ids(&window), std::slice::from_ref(&middle));
    let paged = get(&server, &format!("/api/executions?since={middle_starts}&limit=1"));
    assert_eq!(ids(&paged), [late]);
    let rest = get(
        &server,
        &format!("/api/executions?since={middle_starts}&cursor={}", paged["nextCursor"].as_str().unwrap()),
    );
    assert_eq!(ids(&rest), [middle]);

    let bad = http::request(server.address, "GET", "/api/executions?since=yesterday", &[], b"");
    assert_eq!((bad.status, bad.error_code()), (422, "validation_failed".to_string()));
    assert!(bad.json()["error"]["message"].as_str().unwrap().contains("since"));
}

#[test]
fn retention_deletes_old_finished_executions_and_expired_keys_only() {
    let queued = json!({"key": "waiting", "sync": false, "nodes": []});
    let keyed = json!({"key": "keyed", "sync": true, "trigger": {"idempotency": {"header": "Idempotency-Key", "ttlSeconds": 1}},
        "nodes": [{"key": "r", "type": "response", "config": {"body": "ok"}}]});
    let clock = Arc::new(ManualClock::at(Timestamp::now()));
    let server = TestServer::start(&[echo("old"), queued, keyed], |config| {
        config.clock = clock.clone();
        config.dispatch.workers = 0;
        config.retention =
            RetentionConfig { keep_executions: Some(Duration::from_secs(4)), interval: Duration::from_millis(100) };
    });
    let first = |response: http::HttpResponse| response.header("x-hookflow-execution").unwrap().to_string();
    let old = first(server.post("old", &[], b""));
    let waiting = first(server.post("waiting", &[], b""));
    let keyed = first(server.post("keyed", &[("Idempotency-Key", "k-1")], b""));
    server.finished_execution(&old);
    server.finished_execution(&keyed);

    clock.advance(Duration::from_millis(4200));
    let fresh = first(server.post("old", &[], b""));
    server.finished_execution(&fresh);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.execution(&old).is_some() || server.execution(&keyed).is_some() {
        assert!(Instant::now() < deadline, "old finished executions were not deleted");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(server.execution(&fresh).is_some(), "a recent execution is kept");
    let still_queued = server.execution(&waiting).unwrap();
    assert_eq!(still_queued.status.as_str(), "queued", "an unfinished execution is never deleted, however old");
    // The same sweep forgets expired keys, just after the executions.
    let store = server.server().store();
    let expired = || hookflow_tests::block_on(store.expired_idempotency_keys(clock.now(), None, 10)).unwrap();
    while !expired().is_empty() {
        assert!(Instant::now() < deadline, "expired keys are forgotten: {:?}", expired());
        std::thread::sleep(Duration::from_millis(50));
    }
    // The key is free again: a new request with it starts a new execution.
    assert_ne!(first(server.post("keyed", &[("Idempotency-Key", "k-1")], b"")), keyed);
}

#[test]
fn the_openapi_document_describes_every_admin_route() {
    let server = TestServer::start(&[], |config| config.admin_token = Some("t".into()));
    let response = http::request(server.address, "GET", "/api/openapi.json", &[], b"");
    assert_eq!(response.status, 200, "served without a token");
    let document = response.json();
    assert_eq!(document["openapi"], json!("3.1.0"));
    let routes = [
        ("/api/workflows", "get"),
        ("/api/workflows", "post"),
        ("/api/workflows/{key}", "get"),
        ("/api/workflows/{key}", "put"),
        ("/api/workflows/{key}", "delete"),
        ("/api/workflows/{key}/enable", "post"),
        ("/api/workflows/{key}/disable", "post"),
        ("/api/workflows/{key}/versions", "get"),
        ("/api/workflows/{key}/versions/{version}/restore", "post"),
        ("/api/executions", "get"),
        ("/api/executions/{id}", "get"),
        ("/api/executions/{id}", "delete"),
        ("/api/executions/{id}/cancel", "post"),
        ("/api/executions/{id}/rerun", "post"),
        ("/api/parse/query", "post"),
        ("/api/parse/body", "post"),
        ("/api/plugins", "get"),
        ("/api/plugins/{name}", "put"),
        ("/api/plugins/{name}", "delete"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ];
    let mut operation_ids = Vec::new();
    for (path, method) in routes {
        let operation = &document["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is not documented");
        operation_ids.push(operation["operationId"].as_str().unwrap().to_string());
        // Every documented admin route exists: without the token it answers 401, not 404.
        if path.starts_with("/api/") {
            let concrete =
                path.replace("{key}", "k").replace("{id}", "i").replace("{name}", "n").replace("{version}", "1");
            let answer = http::request(server.address, &method.to_uppercase(), &concrete, &[], b"");
            assert_eq!(answer.status, 401, "{method} {concrete}");
        }
    }
    operation_ids.sort();
    operation_ids.dedup();
    assert_eq!(operation_ids.len(), routes.len(), "operation ids are unique");
    let schemas = &document["components"]["schemas"];
    assert!(schemas["WorkflowView"].is_object() && schemas["Execution"]["properties"]["jobs"].is_object());
    assert_eq!(document["components"]["securitySchemes"]["admin_token"]["scheme"], json!("bearer"));
}

#[test]
fn without_a_token_remote_admin_calls_are_refused() {
    // A real remote peer: a network namespace of this test's own, linked by a veth pair.
    let remote = RemoteHost::create();
    let server = TestServer::start(&[echo("open")], |config| config.listen = "0.0.0.0:0".parse().unwrap());
    let base = format!("http://{}:{}", remote.local_ip, server.address.port());
    let (status, body) = remote.curl("GET", &format!("{base}/api/workflows"));
    assert_eq!(status, 403, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["code"], "admin_disabled");
    // Webhooks and probes stay open to everyone.
    assert_eq!(remote.curl("POST", &format!("{base}/api/webhook:trigger/open")).0, 200);
    assert_eq!(remote.curl("GET", &format!("{base}/healthz")).0, 200);
    let local = SocketAddr::from(([127, 0, 0, 1], server.address.port()));
    assert_eq!(http::request(local, "GET", "/api/workflows", &[], b"").status, 200);
}

/// A GET of `/api/workflows` naming `host` in its `Host` header.
fn workflows_for_host(server: &TestServer, host: &str) -> http::HttpResponse {
    let raw = format!("GET /api/workflows HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    http::send_raw(server.address, raw.as_bytes(), false)
}

#[test]
fn without_a_token_browser_requests_from_other_sites_or_names_are_refused() {
    let server = TestServer::start(&[], |_| {});
    let port = server.address.port();
    let refused = |response: http::HttpResponse| (response.status, response.error_code());
    let cross_site = http::request(server.address, "GET", "/api/workflows", &[("Sec-Fetch-Site", "cross-site")], b"");
    assert_eq!(refused(cross_site), (403, "admin_disabled".to_string()));
    let same_origin = http::request(server.address, "GET", "/api/workflows", &[("Sec-Fetch-Site", "same-origin")], b"");
    assert_eq!(same_origin.status, 200, "the console's own calls");
    // DNS rebinding: a page of another name resolved to 127.0.0.1.
    assert_eq!(
        refused(workflows_for_host(&server, &format!("rebind.example:{port}"))),
        (403, "admin_disabled".to_string())
    );
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}"), format!("[::1]:{port}")] {
        assert_eq!(workflows_for_host(&server, &host).status, 200, "{host}");
    }
}

#[test]
fn the_console_is_served_without_a_token_and_calls_an_api_that_wants_one() {
    let server = TestServer::start(&[], |config| config.admin_token = Some("console-token".into()));
    let get = |path: &str| http::request(server.address, "GET", path, &[], b"");
    let redirect = get("/console");
    assert_eq!((redirect.status, redirect.header("location")), (308, Some("/console/")));
    for (path, content_type, needle) in [
        ("/console/", "text/html; charset=utf-8", "<script type=\"module\" src=\"app.js\">"),
        ("/console/index.html", "text/html; charset=utf-8", "id=\"token-dialog\""),
        ("/console/app.js", "text/javascript; charset=utf-8", "/api/workflows"),
        ("/console/style.css", "text/css; charset=utf-8", "body"),
    ] {
        let asset = get(path);
        assert_eq!((asset.status, asset.header("content-type")), (200, Some(content_type)), "{path}");
        assert!(asset.text().contains(needle), "{path} holds {needle}");
        assert!(asset.header("content-security-policy").is_some_and(|policy| policy.starts_with("default-src 'self'")));
        assert_eq!(asset.header("x-content-type-options"), Some("nosniff"));
    }
    assert_eq!(get("/api/workflows").status, 401, "the API still wants the token");
    assert_eq!(get("/console/missing.js").status, 404);
}

fn admin(server: &TestServer, method: &str, path: &str, body: Option<&Value>) -> http::HttpResponse {
    let body = body.map(Value::to_string).unwrap_or_default();
    http::request(server.address, method, path, &[("Content-Type", "application/json")], body.as_bytes())
}

fn replying(key: &str, body: &str) -> Value {
    json!({"key": key, "sync": true, "nodes": [{"key": "r", "type": "response", "config": {"body": body}}]})
}

#[test]
fn workflow_versions_are_listed_and_restored() {
    let server = TestServer::start(&[], |_| {});
    assert_eq!(admin(&server, "POST", "/api/workflows", Some(&replying("v", "one"))).status, 201);
    assert_eq!(admin(&server, "PUT", "/api/workflows/v", Some(&replying("v", "two"))).status, 200);
    let versions = admin(&server, "GET", "/api/workflows/v/versions", None).json();
    let listed: Vec<(Value, Value)> =
        versions["items"].as_array().unwrap().iter().map(|v| (v["version"].clone(), v["current"].clone())).collect();
    assert_eq!(listed, [(json!(2), json!(true)), (json!(1), json!(false))]);
    assert_eq!(versions["items"][1]["definition"]["nodes"][0]["config"]["body"], json!("one"));

    let restored = admin(&server, "POST", "/api/workflows/v/versions/1/restore", None);
    assert_eq!((restored.status, restored.json()["version"].clone()), (200, json!(3)));
    assert_eq!(server.post("v", &[], b"").text(), "one", "the restored definition serves");
    let missing = admin(&server, "POST", "/api/workflows/v/versions/9/restore", None);
    assert_eq!((missing.status, missing.error_code()), (404, "not_found".to_string()));
    assert_eq!(admin(&server, "GET", "/api/workflows/nope/versions", None).status, 404);

    let mut flipped = replying("v", "three");
    flipped["sync"] = json!(false);
    flipped["nodes"] = json!([]);
    let refused = admin(&server, "PUT", "/api/workflows/v", Some(&flipped));
    assert_eq!((refused.status, refused.error_code()), (422, "validation_failed".to_string()));
    assert_eq!(refused.json()["error"]["faults"][0]["path"], json!("sync"));

    // A key deleted and created again goes on numbering: a version names one definition forever.
    assert_eq!(admin(&server, "DELETE", "/api/workflows/v", None).status, 204);
    let again = admin(&server, "POST", "/api/workflows", Some(&replying("v", "four")));
    assert_eq!((again.status, again.json()["version"].clone()), (201, json!(4)));
}

#[test]
fn finished_executions_can_be_deleted() {
    let queued = json!({"key": "later", "sync": false, "nodes": []});
    let server = TestServer::start(&[echo("now"), queued], |config| config.dispatch.workers = 0);
    let done = server.post("now", &[], b"").header("x-hookflow-execution").unwrap().to_string();
    let waiting = server.post("later", &[], b"").header("x-hookflow-execution").unwrap().to_string();
    server.finished_execution(&done);

    let busy = admin(&server, "DELETE", &format!("/api/executions/{waiting}"), None);
    assert_eq!((busy.status, busy.error_code()), (409, "conflict".to_string()));
    assert!(server.execution(&waiting).is_some(), "an unfinished execution is not deleted");
    assert_eq!(admin(&server, "DELETE", &format!("/api/executions/{done}"), None).status, 204);
    assert_eq!(admin(&server, "GET", &format!("/api/executions/{done}"), None).status, 404);
    assert_eq!(admin(&server, "DELETE", &format!("/api/executions/{done}"), None).status, 404);
}

#[test]
fn a_deleted_execution_frees_its_idempotency_key() {
    let keyed = json!({"key": "keyed", "sync": true, "trigger": {"idempotency": {"header": "Idempotency-Key"}},
        "nodes": [{"key": "r", "type": "response", "config": {"body": "{{$execution.id}}"}}]});
    let server = TestServer::start(&[keyed], |_| {});
    let first = server.post("keyed", &[("Idempotency-Key", "k")], b"");
    let first_id = first.header("x-hookflow-execution").unwrap().to_string();
    server.finished_execution(&first_id);
    let repeat = server.post("keyed", &[("Idempotency-Key", "k")], b"");
    assert_eq!((repeat.status, repeat.text()), (200, first_id.clone()), "a repeat gets the first answer");

    let deleted = admin(&server, "DELETE", &format!("/api/executions/{first_id}"), None);
    assert_eq!(deleted.status, 204);
    let again = server.post("keyed", &[("Idempotency-Key", "k")], b"");
    assert_eq!(again.status, 200, "{}", again.text());
    assert_ne!(again.text(), first_id, "the key starts a new execution once the first is gone");
}

#[test]
fn bad_query_parameters_get_the_json_error_shape() {
    let server = TestServer::start(&[], |_| {});
    for path in ["/api/executions?limit=ten", "/api/workflows?limit=-1"] {
        let response = admin(&server, "GET", path, None);
        assert_eq!((response.status, response.error_code()), (422, "validation_failed".to_string()), "{path}");
    }
}

#[test]
fn unfinished_executions_cannot_be_deleted_and_the_refusal_names_them() {
    let busy = json!({"key": "busy", "sync": false, "nodes": [
        {"key": "work", "type": "misbehave", "config": {"mode": "busy", "ms": 4000}}]});
    let queued = json!({"key": "later", "sync": false, "nodes": [
        {"key": "work", "type": "misbehave", "config": {"mode": "busy", "ms": 4000}}]});
    let server = TestServer::start(&[busy, queued], |config| {
        config.dispatch.workers = 1;
        config.host.time_budget = Duration::from_secs(10);
    });
    let refusal = |id: &str| {
        let refused = admin(&server, "DELETE", &format!("/api/executions/{id}"), None);
        assert_eq!(refused.status, 409, "{}", refused.text());
        (refused.json()["error"]["executionId"].clone(), refused.json()["error"]["status"].clone())
    };
    // The only worker runs the first; the second, sent once the first has started (a request
    // that finds the worker free while the first still waits for the claimer would run at once),
    // waits in the queue behind it.
    let running = server.post("busy", &[], b"").header("x-hookflow-execution").unwrap().to_string();
    let started = Instant::now();
    while server.execution(&running).map(|execution| execution.status) != Some(ExecutionStatus::Started) {
        assert!(started.elapsed() < Duration::from_secs(20), "the first execution never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    let waiting = server.post("later", &[], b"").header("x-hookflow-execution").unwrap().to_string();
    assert_eq!(refusal(&running), (json!(running), json!("started")));
    assert_eq!(server.execution(&waiting).unwrap().status, ExecutionStatus::Queued);
    assert_eq!(refusal(&waiting), (json!(waiting), json!("queued")));
    // Once finished, it can be deleted.
    server.finished_execution(&running);
    assert_eq!(admin(&server, "DELETE", &format!("/api/executions/{running}"), None).status, 204);
}

#[test]
fn restoring_a_version_keeps_todays_credentials() {
    let guarded = |password: &str, body: &str| {
        json!({"key": "g", "sync": true, "trigger": {"basicAuth": {"username": "u", "password": password}},
               "nodes": [{"key": "r", "type": "response", "config": {"body": body}}]})
    };
    let server = TestServer::start(&[], |_| {});
    assert_eq!(admin(&server, "POST", "/api/workflows", Some(&guarded("leaked", "one"))).status, 201);
    assert_eq!(admin(&server, "PUT", "/api/workflows/g", Some(&guarded("rotated", "two"))).status, 200);
    assert_eq!(admin(&server, "POST", "/api/workflows/g/versions/1/restore", None).status, 200);
    let basic = |password: &str| format!("Basic {}", base64_of(&format!("u:{password}")));
    let with_leaked = server.post("g", &[("Authorization", &basic("leaked"))], b"");
    assert_eq!(with_leaked.status, 401, "the leaked password does not come back");
    let with_rotated = server.post("g", &[("Authorization", &basic("rotated"))], b"");
    assert_eq!((with_rotated.status, with_rotated.text()), (200, "one".to_string()), "the old definition serves");
}

#[test]
fn concurrent_changes_get_distinct_versions() {
    let server = TestServer::start(&[], |_| {});
    assert_eq!(admin(&server, "POST", "/api/workflows", Some(&replying("busy", "v0"))).status, 201);
    std::thread::scope(|scope| {
        for n in 1..=8 {
            let server = &server;
            scope.spawn(move || {
                let replaced = admin(server, "PUT", "/api/workflows/busy", Some(&replying("busy", &format!("v{n}"))));
                assert_eq!(replaced.status, 200);
            });
        }
    });
    let versions = admin(&server, "GET", "/api/workflows/busy/versions", None).json();
    let mut bodies: Vec<String> = versions["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["definition"]["nodes"][0]["config"]["body"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(bodies.len(), 9, "one version per change");
    bodies.sort();
    assert_eq!(bodies, (0..=8).map(|n| format!("v{n}")).collect::<Vec<_>>(), "no change overwrote another");
}

#[test]
fn a_replacement_made_from_an_older_version_is_refused_with_if_match() {
    let server = TestServer::start(&[], |_| {});
    assert_eq!(admin(&server, "POST", "/api/workflows", Some(&replying("edited", "v1"))).status, 201);
    let put = |if_match: &str, body: &str| {
        let definition = replying("edited", body).to_string();
        let headers = [("Content-Type", "application/json"), ("If-Match", if_match)];
        http::request(server.address, "PUT", "/api/workflows/edited", &headers, definition.as_bytes())
    };
    // Two editors loaded version 1; the first saves, the second's save must not overwrite it.
    assert_eq!(put("\"1\"", "first").json()["version"], json!(2));
    let stale = put("\"1\"", "second");
    assert_eq!((stale.status, stale.error_code()), (409, "conflict".to_string()));
    assert!(stale.text().contains("at version 2, not 1"), "{}", stale.text());
    let current = admin(&server, "GET", "/api/workflows/edited", None).json();
    assert_eq!((current["version"].clone(), current["nodes"][0]["config"]["body"].clone()), (json!(2), json!("first")));
    assert_eq!(put("W/\"2\"", "second").json()["version"], json!(3), "a weak tag names the version too");
    let garbled = put("yesterday", "third");
    assert_eq!((garbled.status, garbled.error_code()), (422, "validation_failed".to_string()));
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}
