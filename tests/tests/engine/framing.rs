//! HTTP/1.1 framing as a client that keeps connections open sees it: several requests on one
//! connection, pipelined requests answered in order, error answers that keep (or properly end)
//! the connection. The client reads each response by its own framing, so a wrong
//! `Content-Length` or a broken chunk fails these tests.

use std::time::Duration;

use hookflow_tests::http::Connection;
use serde_json::{Value, json};

use crate::util::TestServer;

/// A sync workflow answering with the request body.
fn echo() -> Value {
    json!({"key": "echo", "sync": true, "nodes": [{"key": "reply", "type": "response", "config": {"body": "{{$context.body}}"}}]})
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

#[test]
fn one_connection_carries_many_requests() {
    let server = TestServer::start(&[echo()], |_| {});
    let mut connection = Connection::open(server.address).unwrap();
    for n in 0..5 {
        let body = json!({"n": n}).to_string();
        let answer = connection.request("POST", "/api/webhook:trigger/echo", &[JSON], body.as_bytes());
        assert_eq!((answer.status, answer.json()), (200, json!({"n": n})));
        let listed = connection.request("GET", "/api/workflows", &[], b"");
        assert_eq!(listed.status, 200, "{}", listed.text());
        assert_eq!(listed.json()["items"][0]["key"], "echo");
        let head = connection.request("HEAD", "/healthz", &[], b"");
        assert_eq!(head.status, 200);
    }
    assert!(!connection.is_closed_within(Duration::from_millis(200)), "the connection stays open");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = TestServer::start(&[echo()], |_| {});
    let mut connection = Connection::open(server.address).unwrap();
    let mut raw = Vec::new();
    for n in 0..4 {
        let body = json!({"n": n}).to_string();
        raw.extend(hookflow_tests::http::request_head(
            server.address,
            "POST",
            "/api/webhook:trigger/echo",
            &[JSON],
            body.as_bytes(),
        ));
    }
    raw.extend(hookflow_tests::http::request_head(server.address, "GET", "/healthz", &[], b""));
    connection.send(&raw).unwrap();
    for n in 0..4 {
        let answer = connection.read_response(false).unwrap();
        assert_eq!((answer.status, answer.json()), (200, json!({"n": n})));
    }
    let health = connection.read_response(false).unwrap();
    assert_eq!(health.status, 200, "{}", health.text());
}

#[test]
fn error_answers_keep_the_connection_usable_or_say_they_close_it() {
    let server = TestServer::start(&[echo()], |_| {});
    let mut connection = Connection::open(server.address).unwrap();
    let missing = connection.request("POST", "/api/webhook:trigger/nonesuch", &[JSON], b"{}");
    assert_eq!((missing.status, missing.error_code()), (404, "not_found".to_string()));
    let invalid = connection.request("POST", "/api/webhook:trigger/echo", &[JSON], b"{not json");
    assert_eq!(invalid.status, 400, "{}", invalid.text());
    let fine = connection.request("POST", "/api/webhook:trigger/echo", &[JSON], b"{\"after\": \"errors\"}");
    assert_eq!((fine.status, fine.json()), (200, json!({"after": "errors"})));

    // An answer sent before the whole body was read must end the connection, and say so.
    let mut raw = hookflow_tests::http::request_head(server.address, "POST", "/api/webhook:trigger/echo", &[JSON], b"");
    let head_end = raw.len() - 2;
    raw.splice(head_end..head_end, b"Content-Length: 20000000\r\n".iter().copied());
    connection.send(&raw).unwrap();
    let too_large = connection.read_response(false).unwrap();
    assert_eq!((too_large.status, too_large.error_code()), (413, "payload_too_large".to_string()));
    assert_eq!(too_large.header("connection"), Some("close"));
    assert!(connection.is_closed_within(Duration::from_secs(10)));
}

#[test]
fn a_chunked_request_body_is_read_to_its_last_chunk() {
    let server = TestServer::start(&[echo()], |_| {});
    let mut connection = Connection::open(server.address).unwrap();
    let mut raw = hookflow_tests::http::request_head(
        server.address,
        "POST",
        "/api/webhook:trigger/echo",
        &[JSON, ("Transfer-Encoding", "chunked")],
        b"",
    );
    raw.extend_from_slice(b"6\r\n{\"a\": \r\n3\r\n1}\n\r\n0\r\n\r\n");
    connection.send(&raw).unwrap();
    let answer = connection.read_response(false).unwrap();
    assert_eq!((answer.status, answer.json()), (200, json!({"a": 1})));
    let next = connection.request("GET", "/healthz", &[], b"");
    assert_eq!(next.status, 200);
}
