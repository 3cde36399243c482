//! Definitions that cannot run are refused with faults naming their JSON paths.

use hookflow_workflow::{compile, parse_workflow};
use serde_json::{Value, json};

use crate::util::host;

/// The faults of a definition as `path: message` lines.
fn faults(definition: Value) -> Vec<String> {
    let result = parse_workflow(&definition.to_string()).and_then(|workflow| compile(&workflow, host()).map(drop));
    match result {
        Ok(()) => Vec::new(),
        Err(error) => error.faults.iter().map(|f| format!("{}: {}", f.path, f.message)).collect(),
    }
}

/// Asserts exactly one fault, at `path`, whose message contains `words`.
fn check(definition: Value, path: &str, words: &str) {
    let found = faults(definition);
    assert_eq!(found.len(), 1, "expected one fault at {path}, got {found:?}");
    let (found_path, message) = found[0].split_once(": ").unwrap();
    assert_eq!(found_path, path, "{found:?}");
    assert!(message.contains(words), "{path}: {message:?} does not mention {words:?}");
}

#[test]
fn a_valid_definition_has_no_faults() {
    assert_eq!(
        faults(json!({"sync": true, "nodes": [
            {"key": "c", "type": "condition", "config": {}, "branches": {"true": [
                {"key": "r", "type": "response", "config": {"body": "{{$jobsMapByNodeKey.c.result}}"}}]}}
        ]})),
        Vec::<String>::new()
    );
}

#[test]
fn unknown_node_type() {
    check(
        json!({"nodes": [{"key": "a", "type": "condition", "branches": {"true": [
            {"key": "b", "type": "condition"}, {"key": "c", "type": "nonesuch"}]}}]}),
        "nodes[0].branches.true[1].type",
        "unknown node type \"nonesuch\"",
    );
}

#[test]
fn duplicate_node_key_names_the_second_occurrence() {
    check(
        json!({"nodes": [{"key": "a", "type": "condition", "branches": {"false": [{"key": "a", "type": "condition"}]}}]}),
        "nodes[0].branches.false[0].key",
        "duplicate node key \"a\" (first used at nodes[0].key)",
    );
}

#[test]
fn branch_the_node_does_not_declare() {
    check(
        json!({"nodes": [{"key": "a", "type": "condition", "branches": {"maybe": []}}]}),
        "nodes[0].branches.maybe",
        "has no branch \"maybe\" (it declares: true, false)",
    );
}

#[test]
fn response_node_in_an_async_workflow() {
    check(
        json!({"sync": false, "nodes": [{"key": "r", "type": "response"}]}),
        "nodes[0].type",
        "this workflow is asynchronous",
    );
}

#[test]
fn malformed_templates() {
    for (template, words) in [
        ("{{$context.body.a", "unterminated"),
        ("x {{ }}", "empty template"),
        ("{{$env.HOME}}", "unknown variable \"$env\""),
        ("{{$context.body.}}", "empty key"),
        ("{{$context.items[x]}}", "expected an index"),
        ("{{$context.body[\"a.b\"}}", "expected ']'"),
    ] {
        check(
            json!({"sync": true, "nodes": [{"key": "r", "type": "response", "config": {"body": {"a": [1, template]}}}]}),
            "nodes[0].config.body.a[1]",
            words,
        );
    }
}

#[test]
fn reference_to_a_node_that_does_not_exist() {
    check(
        json!({"sync": true, "nodes": [{"key": "r", "type": "response", "config": {"body": "{{$jobsMapByNodeKey.ghost.x}}"}}]}),
        "nodes[0].config",
        "$jobsMapByNodeKey.ghost names no node",
    );
}

#[test]
fn type_errors_name_their_path() {
    check(
        json!({"nodes": [{"key": "a", "type": "condition", "branches": {"true": [{"key": "b"}]}}]}),
        "nodes[0].branches.true[0]",
        "missing field `type`",
    );
    check(json!({"sync": "yes"}), "sync", "expected a boolean");
    check(json!({"nodes": [{"key": "a", "type": "condition", "bogus": 1}]}), "nodes[0].bogus", "unknown field `bogus`");
}

#[test]
fn trigger_and_option_faults() {
    check(json!({"key": "has space"}), "key", "not a valid key");
    check(json!({"trigger": {"basicAuth": {"username": "a:b", "password": "p"}}}), "trigger.basicAuth.username", "':'");
    check(
        json!({"trigger": {"request": {"headers": [{"key": "Bad Header"}]}}}),
        "trigger.request.headers[0].key",
        "header name",
    );
    check(json!({"trigger": {"response": {"statusCode": 700}}}), "trigger.response.statusCode", "100 to 599");
    check(json!({"options": {"deleteExecutionOnStatus": ["queued"]}}), "options.deleteExecutionOnStatus[0]", "final");
}

#[test]
fn retry_failure_hook_and_rate_limit_faults() {
    assert_eq!(
        faults(json!({"options": {"retry": {}, "onFailure": "alerts", "rateLimit": {"requests": 5}}})),
        [] as [String; 0]
    );
    check(json!({"sync": true, "options": {"retry": {}}}), "options.retry", "async workflows only");
    check(json!({"options": {"retry": {"maxAttempts": 0}}}), "options.retry.maxAttempts", "1 to 100");
    check(json!({"options": {"retry": {"initialDelay": "soon"}}}), "options.retry.initialDelay", "positive duration");
    check(
        json!({"options": {"retry": {"initialDelay": "1m", "maxDelay": "10s"}}}),
        "options.retry.maxDelay",
        "shorter",
    );
    check(json!({"options": {"retry": {"attempts": 3}}}), "options.retry.attempts", "unknown field");
    check(json!({"options": {"onFailure": "no spaces"}}), "options.onFailure", "not a workflow key");
    check(json!({"key": "self", "options": {"onFailure": "self"}}), "options.onFailure", "its own failure hook");
    check(json!({"options": {"rateLimit": {"requests": 0}}}), "options.rateLimit.requests", "at least 1");
    check(
        json!({"options": {"rateLimit": {"requests": 5, "per": "0s"}}}),
        "options.rateLimit.per",
        "positive duration",
    );
    check(json!({"options": {"rateLimit": {"requests": 5, "burst": 0}}}), "options.rateLimit.burst", "at least 1");
}

#[test]
fn every_fault_is_reported_at_once() {
    let found = faults(json!({"sync": false, "nodes": [
        {"key": "a", "type": "nonesuch"},
        {"key": "a", "type": "response", "config": {"body": "{{oops}}"}}
    ]}));
    let paths: Vec<&str> = found.iter().map(|fault| fault.split(": ").next().unwrap_or_default()).collect();
    assert_eq!(paths, ["nodes[1].key", "nodes[0].type", "nodes[1].type", "nodes[1].config.body"], "{found:?}");
    for (fault, names) in
        found.iter().zip(["duplicate node key", "unknown node type", "asynchronous", "unknown variable"])
    {
        assert!(fault.contains(names), "{fault}");
    }
}

#[test]
fn signature_and_credential_faults() {
    check(
        json!({"trigger": {"signature": {"type": "standard-webhooks", "secrets": ["not-base64!"]}}}),
        "trigger.signature.secrets[0]",
        "whsec_",
    );
    check(
        json!({"trigger": {"signature": {"type": "stripe", "secrets": []}}}),
        "trigger.signature.secrets",
        "at least one",
    );
    check(
        json!({"trigger": {"signature": {"type": "hmac-sha256", "header": "Bad Header", "secrets": ["s"]}}}),
        "trigger.signature.header",
        "header name",
    );
    check(
        json!({"trigger": {"signature": {"type": "md5", "secrets": ["s"]}}}),
        "trigger.signature.type",
        "unknown variant",
    );
    check(
        json!({"trigger": {"request": {"headers": [{"key": "Authorization"}]}}}),
        "trigger.request.headers[0].key",
        "never captured",
    );
}

#[test]
fn idempotency_and_deadline_faults() {
    check(json!({"trigger": {"idempotency": {}}}), "trigger.idempotency", "exactly one");
    check(
        json!({"trigger": {"idempotency": {"header": "X-Key", "bodyPath": "id"}}}),
        "trigger.idempotency",
        "exactly one",
    );
    check(json!({"trigger": {"idempotency": {"bodyPath": "a..b"}}}), "trigger.idempotency.bodyPath", "empty key");
    check(
        json!({"trigger": {"idempotency": {"header": "X-Key", "ttlSeconds": 0}}}),
        "trigger.idempotency.ttlSeconds",
        "at least 1",
    );
    check(json!({"sync": false, "trigger": {"syncDeadlineMs": 100}}), "trigger.syncDeadlineMs", "sync workflows only");
}

#[test]
fn loop_scopes_and_delays_are_checked_where_they_are_used() {
    let loop_node =
        |body: Value| json!({"key": "each", "type": "loop", "config": {"target": [1]}, "branches": {"body": body}});
    let reads_scope = json!({"key": "use", "type": "set", "config": {"values": {"x": "{{$scopes.each.item}}"}}});
    assert!(faults(json!({"sync": true, "nodes": [loop_node(json!([reads_scope]))]})).is_empty());
    check(
        json!({"sync": true, "nodes": [loop_node(json!([])), reads_scope]}),
        "nodes[1].config",
        "$scopes.each names no loop node around this node",
    );
    check(
        json!({"sync": true, "nodes": [loop_node(json!([{"key": "x", "type": "set", "config": {"values": {"x": "{{$scopes}}"}}}]))]}),
        "nodes[0].branches.body[0].config",
        "$scopes needs a loop node's key",
    );
    check(
        json!({"sync": true, "nodes": [{"key": "each", "type": "loop", "config": {"target": 1}, "branches": {"loop": []}}]}),
        "nodes[0].branches.loop",
        "has no branch \"loop\" (it declares: body)",
    );
    check(
        json!({"sync": true, "nodes": [{"key": "wait", "type": "delay", "config": {"duration": "1s"}}]}),
        "nodes[0].type",
        "runs in asynchronous workflows only",
    );
}
