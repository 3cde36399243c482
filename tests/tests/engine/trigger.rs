//! The webhook trigger over a real socket: every row of docs/webhook.md, auth, parsing, sync and
//! async dispatch, restarts.

use std::time::Duration;

use hookflow_tests::http::{self, HttpResponse};
use hookflow_workflow::{ExecutionStatus, JobStatus};
use serde_json::{Value, json};

use crate::util::TestServer;

/// A sync workflow answering with its whole trigger data.
fn echo() -> Value {
    json!({"key": "echo", "sync": true,
           "trigger": {"request": {"headers": [{"key": "X-Request-Id"}, {"key": "date", "alias": "Date"}]}},
           "nodes": [{"key": "reply", "type": "response", "config": {"body": "{{$context}}"}}]})
}

fn guarded() -> Value {
    json!({"key": "guarded", "sync": true,
           "trigger": {"basicAuth": {"username": "shop", "password": "s3cret"}},
           "nodes": [{"key": "reply", "type": "response", "config": {"body": "welcome"}}]})
}

fn demo() -> TestServer {
    TestServer::start(&[], |config| config.demo = true)
}

fn assert_error(response: &HttpResponse, status: u16, code: &str) {
    assert_eq!(response.status, status, "{}", response.text());
    assert_eq!(response.error_code(), code, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert!(!response.json()["error"]["message"].as_str().unwrap().is_empty());
}

#[test]
fn demo_answers_success_and_failure() {
    let server = demo();
    let paid = server.post_json("demo-payment", &json!({"status": "paid", "order": 42}));
    assert_eq!(paid.status, 200);
    assert_eq!(paid.json(), json!({"ok": true, "order": 42}));
    let execution_id = paid.header("x-hookflow-execution").unwrap().to_string();
    assert_eq!(execution_id.len(), 26, "a ULID");

    let unpaid = server.post_json("demo-payment", &json!({"status": "unpaid", "order": 42}));
    assert_eq!(unpaid.status, 400);
    assert_eq!(unpaid.json(), json!({"ok": false}));

    // The sync execution is recorded (after the answer, off the hot path).
    let execution = server.finished_execution(&execution_id);
    assert_eq!(execution.status, ExecutionStatus::Resolved);
    assert_eq!(execution.workflow, "demo-payment");
    let keys: Vec<_> = execution.jobs.iter().map(|job| job.node_key.as_str()).collect();
    assert_eq!(keys, ["check", "ok"]);
    assert_eq!(execution.trigger["body"], json!({"status": "paid", "order": 42}));
}

#[test]
fn unknown_disabled_and_unrouted_are_404() {
    let off = json!({"key": "off", "enabled": false, "sync": true, "nodes": []});
    let server = TestServer::start(&[off], |_| {});
    assert_error(&server.post_json("nonesuch", &json!({})), 404, "not_found");
    assert_error(&server.post_json("off", &json!({})), 404, "not_found");
    assert_error(&http::request(server.address, "GET", "/elsewhere", &[], b""), 404, "not_found");
}

#[test]
fn every_method_but_post_is_405_with_allow() {
    let server = demo();
    for method in ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let response = http::request(server.address, method, "/api/webhook:trigger/demo-payment", &[], b"");
        assert_error(&response, 405, "method_not_allowed");
        assert_eq!(response.header("allow"), Some("POST"), "{method}");
    }
    let head = http::request(server.address, "HEAD", "/api/webhook:trigger/demo-payment", &[], b"");
    assert_eq!(head.status, 405);
    assert_eq!(head.header("allow"), Some("POST"));
    // The key is looked up first: an unknown key is 404 whatever the method.
    assert_eq!(http::request(server.address, "GET", "/api/webhook:trigger/nonesuch", &[], b"").status, 404);
}

#[test]
fn basic_auth_right_wrong_missing_malformed() {
    let server = TestServer::start(&[guarded()], |_| {});
    let with = |authorization: &str| server.post("guarded", &[("Authorization", authorization)], b"");

    let right = with("Basic c2hvcDpzM2NyZXQ="); // shop:s3cret
    assert_eq!(right.status, 200, "{}", right.text());
    assert_eq!(right.text(), "welcome");
    assert_eq!(with("basic c2hvcDpzM2NyZXQ=").status, 200, "the scheme is case-insensitive");

    for (what, authorization) in [
        ("wrong password", "Basic c2hvcDp3cm9uZw=="), // shop:wrong
        ("wrong user", "Basic c2hvcHA6czNjcmV0"),     // shopp:s3cret
        ("not base64", "Basic !!!not-base64!!!"),
        ("no colon", "Basic c2hvcHMzY3JldA=="), // shops3cret
        ("other scheme", "Bearer c2hvcDpzM2NyZXQ="),
        ("scheme only", "Basic"),
        ("empty", ""),
    ] {
        let response = with(authorization);
        assert_error(&response, 401, "unauthorized");
        assert!(response.header("www-authenticate").unwrap().starts_with("Basic realm=\"hookflow\""), "{what}");
    }
    let missing = server.post("guarded", &[], b"");
    assert_error(&missing, 401, "unauthorized");
    assert!(missing.header("www-authenticate").is_some());

    // Not UTF-8 in the header value.
    let mut raw = b"POST /api/webhook:trigger/guarded HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Basic \xff\xfe\r\n\r\n".to_vec();
    assert_error(&http::send_raw(server.address, &raw, false), 401, "unauthorized");
    raw.clear();
}

#[test]
fn bodies_over_the_limit_are_413() {
    let server = TestServer::start(&[echo()], |config| config.body_limit = 1024);
    let json_of = |size: usize| format!("{{\"pad\": \"{}\"}}", "x".repeat(size));
    let fits = server.post("echo", &[("Content-Type", "application/json")], json_of(900).as_bytes());
    assert_eq!(fits.status, 200, "{}", fits.text());
    let declared = server.post("echo", &[("Content-Type", "application/json")], json_of(2000).as_bytes());
    assert_error(&declared, 413, "payload_too_large");

    // Without a Content-Length the limit is enforced while streaming.
    let chunk = json_of(3000);
    let raw = format!(
        "POST /api/webhook:trigger/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    assert_error(&http::send_raw(server.address, raw.as_bytes(), false), 413, "payload_too_large");
}

#[test]
fn content_types() {
    let server = TestServer::start(&[echo()], |_| {});
    let body_of = |content_type: Option<&str>, body: &[u8]| {
        let headers: Vec<(&str, &str)> = content_type.map(|ct| ("Content-Type", ct)).into_iter().collect();
        server.post("echo", &headers, body)
    };
    let parsed = |response: HttpResponse| {
        assert_eq!(response.status, 200, "{}", response.text());
        response.json()["body"].clone()
    };

    assert_eq!(parsed(body_of(Some("application/json"), b"{\"a\": [1, 2]}")), json!({"a": [1, 2]}));
    assert_eq!(parsed(body_of(Some("application/json; charset=utf-8"), b"{\"a\": 1}")), json!({"a": 1}));
    assert_eq!(parsed(body_of(Some("Application/JSON"), b"7")), json!(7));
    assert_eq!(parsed(body_of(Some("application/vnd.api+json"), b"{\"b\": true}")), json!({"b": true}));
    assert_eq!(
        parsed(body_of(Some("application/x-www-form-urlencoded"), b"a=1+2&b[c]=x%20y&b[d][]=1")),
        json!({"a": "1 2", "b": {"c": "x y", "d": ["1"]}})
    );
    assert_eq!(parsed(body_of(None, b"")), Value::Null, "an empty body is null");
    assert_eq!(parsed(body_of(Some("text/plain"), b"")), Value::Null, "an empty body is null whatever the type");

    // Text and XML bodies are strings.
    assert_eq!(parsed(body_of(Some("text/plain"), b"hello")), json!("hello"));
    assert_eq!(parsed(body_of(Some("text/csv; charset=utf-8"), b"a,b\n1,2")), json!("a,b\n1,2"));
    assert_eq!(parsed(body_of(Some("application/xml"), b"<a>1</a>")), json!("<a>1</a>"));
    assert_eq!(parsed(body_of(Some("application/atom+xml"), b"<feed/>")), json!("<feed/>"));
    assert_error(&body_of(Some("text/plain"), b"\xff\xfe"), 400, "invalid_body");

    assert_error(&body_of(None, b"{\"a\": 1}"), 415, "unsupported_media_type");
    assert_error(&body_of(Some("application/octet-stream"), b"hello"), 415, "unsupported_media_type");
    assert_error(&body_of(Some("multipart/form-data; boundary=x"), b"--x--"), 415, "unsupported_media_type");

    let malformed = body_of(Some("application/json"), b"{\n  \"a\": 1,\n  \"b\": }");
    assert_error(&malformed, 400, "invalid_json");
    let message = malformed.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("line 3 column"), "{message}");

    assert_error(&body_of(Some("application/json"), b"\"\xff\xfe\""), 400, "invalid_body");
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    assert_error(&body_of(Some("application/json"), deep.as_bytes()), 400, "invalid_body");
}

#[test]
fn configured_headers_are_captured_case_insensitively() {
    let server = TestServer::start(&[echo()], |_| {});
    let response = server.post(
        "echo",
        &[
            ("x-REQUEST-id", "r-17"),
            ("Date", "Sun, 29 Nov 2026 10:00:00 GMT"),
            ("Authorization", "Bearer secret"),
            ("Cookie", "session=1"),
            ("X-Other", "not configured"),
        ],
        b"",
    );
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.json()["headers"],
        json!({"x-request-id": "r-17", "date": "Sun, 29 Nov 2026 10:00:00 GMT"}),
        "only configured headers, keyed lower-case; never Authorization or cookies"
    );
    let without = server.post("echo", &[], b"");
    assert_eq!(without.json()["headers"], json!({}), "an absent header is absent");
}

#[test]
fn query_is_parsed_like_qs() {
    let server = TestServer::start(&[echo()], |_| {});
    let path =
        "/api/webhook:trigger/echo?query[0][a]=1&query[1]=x&tag=a&tag=b&a.b=1&list[]=p&list[]=q&s=hello+w%C3%B6rld";
    let response = http::post(server.address, path, &[], b"");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.json()["query"],
        json!({"query": [{"a": "1"}, "x"], "tag": ["a", "b"], "a.b": "1", "list": ["p", "q"], "s": "hello wörld"})
    );
}

#[test]
fn async_answers_at_once_and_runs_in_the_background() {
    let custom = json!({"key": "custom-ack", "sync": false,
        "trigger": {"response": {"statusCode": 202, "headers": [{"name": "X-Ack", "value": "yes"}], "body": {"queued": true}}},
        "nodes": [{"key": "check", "type": "condition", "config": {"calculation": {"group": {"calculations": [
            {"calculator": "equal", "operands": ["{{$context.body.status}}", "paid"]}]}}}}]});
    let server = TestServer::start(&[custom], |config| config.demo = true);

    let default = server.post_json("demo-payment-async", &json!({"status": "paid", "order": 1}));
    assert_eq!(default.status, 200);
    assert_eq!(default.text(), "ok");
    assert_eq!(default.header("content-type"), Some("text/plain; charset=utf-8"));
    let id = default.header("x-hookflow-execution").unwrap().to_string();

    let configured = server.post_json("custom-ack", &json!({"status": "unpaid"}));
    assert_eq!(configured.status, 202);
    assert_eq!(configured.header("x-ack"), Some("yes"));
    assert_eq!(configured.header("content-type"), Some("application/json"));
    assert_eq!(configured.json(), json!({"queued": true}));
    let custom_id = configured.header("x-hookflow-execution").unwrap().to_string();

    let execution = server.finished_execution(&id);
    assert_eq!(execution.status, ExecutionStatus::Resolved);
    assert_eq!(execution.jobs.len(), 1);
    assert_eq!(execution.jobs[0].status, JobStatus::Resolved);
    assert_eq!(execution.jobs[0].output, json!({"result": true}));
    let custom = server.finished_execution(&custom_id);
    assert_eq!(custom.jobs[0].output, json!({"result": false}));
}

#[test]
fn sync_without_response_and_sync_failure() {
    let silent = json!({"key": "silent", "sync": true, "nodes": [{"key": "c", "type": "condition", "config": {}}]});
    let strict = json!({"key": "strict", "sync": true, "nodes": [{"key": "c", "type": "condition",
        "config": {"rejectOnFalse": true, "calculation": {"group": {"calculations": [
            {"calculator": "equal", "operands": [1, 2]}]}}}}]});
    let broken = json!({"key": "broken", "sync": true, "nodes": [
        {"key": "m", "type": "misbehave", "config": {"mode": "trap"}}]});
    let server = TestServer::start(&[silent, strict, broken], |_| {});

    let resolved = server.post("silent", &[], b"");
    assert_eq!(resolved.status, 200);
    let id = resolved.header("x-hookflow-execution").unwrap();
    assert_eq!(resolved.json(), json!({"executionId": id, "status": "resolved"}));

    for (key, status) in [("strict", "failed"), ("broken", "error")] {
        let failed = server.post(key, &[], b"");
        assert_error(&failed, 500, "execution_failed");
        let error = &failed.json()["error"];
        assert_eq!(error["status"], json!(status));
        assert_eq!(error["executionId"].as_str(), failed.header("x-hookflow-execution"));
        let named = failed.headers.iter().filter(|(name, _)| name == "x-hookflow-execution").count();
        assert_eq!(named, 1, "the execution header is set once");
    }
}

#[test]
fn a_slow_sync_execution_times_out_with_504_and_is_aborted() {
    let slow = json!({"key": "slow", "sync": true, "nodes": [
        {"key": "work", "type": "misbehave", "config": {"mode": "busy", "ms": 1500}},
        {"key": "reply", "type": "response", "config": {"body": "too late"}}]});
    let server = TestServer::start(&[slow], |config| {
        config.dispatch.sync_timeout = Duration::from_millis(300);
        config.host.time_budget = Duration::from_secs(10);
    });
    let response = server.post("slow", &[], b"");
    assert_error(&response, 504, "execution_timeout");
    let id = response.header("x-hookflow-execution").unwrap().to_string();
    assert_eq!(response.json()["error"]["executionId"], json!(id));

    let execution = server.finished_execution(&id);
    assert_eq!(execution.status, ExecutionStatus::Aborted);
    let keys: Vec<_> = execution.jobs.iter().map(|job| job.node_key.as_str()).collect();
    assert_eq!(keys, ["work"], "nothing runs after the caller was given up on");
}

#[test]
fn async_requests_accepted_without_workers_all_run_after_a_restart() {
    let server = TestServer::start(&[], |config| {
        config.demo = true;
        config.dispatch.workers = 0;
    });
    let ids: Vec<String> = (0..20)
        .map(|n| {
            let status = if n % 2 == 0 { "paid" } else { "unpaid" };
            let response = server.post_json("demo-payment-async", &json!({"status": status, "order": n}));
            assert_eq!(response.status, 200);
            response.header("x-hookflow-execution").unwrap().to_string()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    for id in &ids {
        assert_eq!(server.execution(id).unwrap().status, ExecutionStatus::Queued, "no workers: nothing runs");
    }
    let data_dir = server.stop();

    let restarted = TestServer::start_in(data_dir, |config| config.demo = true);
    for (n, id) in ids.iter().enumerate() {
        let execution = restarted.finished_execution(id);
        assert_eq!(execution.status, ExecutionStatus::Resolved, "{id}");
        assert_eq!(execution.jobs[0].output, json!({"result": n % 2 == 0}));
        assert_eq!(execution.trigger["body"]["order"], json!(n));
    }
}

#[test]
fn a_bad_workflow_file_is_reported_and_the_others_load() {
    let bad = json!({"key": "bad", "sync": true, "nodes": [{"key": "a", "type": "nonesuch"}]});
    let server = TestServer::start(&[bad, echo()], |_| {});
    let refused = &server.server().refused;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].contains("00.json") && refused[0].contains("nodes[0].type"), "{refused:?}");
    assert_eq!(server.post("echo", &[], b"").status, 200);
    assert_eq!(server.post("bad", &[], b"").status, 404);
    let keys: Vec<_> = server.server().endpoints.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["echo"]);
}
