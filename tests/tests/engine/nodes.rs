//! The built-in `end`, `set` and `json-query` nodes, run by the executor as real components (they are written
//! with the `hookflow-node` SDK, like `condition` and `response`).

use serde_json::{Value, json};

use crate::util::{plan, run};

fn chain(nodes: Value) -> Value {
    json!({"key": "chain", "sync": true, "nodes": nodes})
}

fn last_error(ran: &crate::util::Ran) -> String {
    ran.execution.jobs.last().and_then(|job| job.error.clone()).unwrap_or_default()
}

#[test]
fn end_stops_the_execution_with_its_status() {
    let after = json!({"key": "after", "type": "response", "config": {"body": "too late"}});
    for (config, status) in [
        (json!({}), "resolved"),
        (json!({"status": "resolved"}), "resolved"),
        (json!({"status": "failed"}), "failed"),
        (json!({"endStatus": 1}), "resolved"),
        (json!({"endStatus": -1}), "failed"),
        (json!({"status": null, "endStatus": -1}), "failed"),
        (json!({"status": "failed", "endStatus": -1}), "failed"),
    ] {
        let ran = run(&plan(chain(json!([{"key": "stop", "type": "end", "config": config}, after]))), json!({}));
        assert_eq!(ran.status(), status, "{config}");
        assert_eq!(ran.job_keys(), ["stop"], "nodes after `end` do not run");
        assert_eq!(ran.execution.jobs[0].output, json!({"status": status}));
    }
}

#[test]
fn end_inside_a_branch_ends_the_whole_execution() {
    let workflow = chain(json!([
        {"key": "check", "type": "condition", "config": {"calculation": {"group": {"calculations": [
            {"calculator": "equal", "operands": ["{{$context.body.stop}}", true]}]}}},
         "branches": {"true": [{"key": "stop", "type": "end", "config": {"status": "failed"}}]}},
        {"key": "after", "type": "response", "config": {"body": "went on"}}
    ]));
    let plan = plan(workflow);
    let stopped = run(&plan, json!({"stop": true}));
    assert_eq!((stopped.status(), stopped.job_keys()), ("failed".to_string(), vec!["check", "stop"]));
    let went_on = run(&plan, json!({"stop": false}));
    assert_eq!(went_on.reply().body, b"went on");
}

#[test]
fn a_bad_end_status_is_a_job_error_naming_the_field() {
    let ran = run(&plan(chain(json!([{"key": "stop", "type": "end", "config": {"status": "done"}}]))), json!({}));
    assert_eq!(ran.status(), "error");
    assert_eq!(last_error(&ran), "status: expected \"resolved\" or \"failed\", got \"done\"");
    let ran = run(&plan(chain(json!([{"key": "stop", "type": "end", "config": {"endStatus": 0}}]))), json!({}));
    assert!(last_error(&ran).starts_with("endStatus: expected 1 (resolved) or -1 (failed)"), "{}", last_error(&ran));
    let typo = run(&plan(chain(json!([{"key": "stop", "type": "end", "config": {"stauts": "failed"}}]))), json!({}));
    assert!(
        last_error(&typo).contains("unknown field `stauts`"),
        "a misspelt field is an error: {}",
        last_error(&typo)
    );
    let both = json!({"status": "resolved", "endStatus": -1});
    let ran = run(&plan(chain(json!([{"key": "stop", "type": "end", "config": both}]))), json!({}));
    assert_eq!(last_error(&ran), "endStatus: contradicts status; give one of them");
}

#[test]
fn set_builds_an_object_later_nodes_read() {
    let workflow = chain(json!([
        {"key": "order", "type": "set", "config": {"values": {
            "id": "{{$context.body.data.object.id}}",
            "cents": "{{$context.body.data.object.amount}}",
            "label": "order {{$context.body.data.object.id}}",
            "fixed": [1, {"a": null}]}}},
        {"key": "answer", "type": "response", "config": {"body": {
            "id": "{{$jobsMapByNodeKey.order.id}}", "label": "{{$jobsMapByNodeKey.order.label}}"}}}
    ]));
    let ran = run(&plan(workflow), json!({"data": {"object": {"id": "ord_1", "amount": 1250}}}));
    assert_eq!(
        ran.execution.jobs[0].output,
        json!({"id": "ord_1", "cents": 1250, "label": "order ord_1", "fixed": [1, {"a": null}]})
    );
    assert_eq!(ran.body(), json!({"id": "ord_1", "label": "order ord_1"}));
}

#[test]
fn a_bad_set_config_is_a_job_error_naming_the_field() {
    let missing = run(&plan(chain(json!([{"key": "s", "type": "set", "config": {}}]))), json!({}));
    assert_eq!(missing.status(), "error");
    assert!(last_error(&missing).starts_with("config: missing field `values`"), "{}", last_error(&missing));
    let wrong = run(&plan(chain(json!([{"key": "s", "type": "set", "config": {"values": [1]}}]))), json!({}));
    assert!(last_error(&wrong).starts_with("config.values: invalid type: sequence"), "{}", last_error(&wrong));
    let unknown =
        run(&plan(chain(json!([{"key": "s", "type": "set", "config": {"values": {}, "extra": 1}}]))), json!({}));
    assert!(last_error(&unknown).contains("unknown field `extra`"), "{}", last_error(&unknown));
}

fn query(expression: &str, source: Option<Value>, body: Value) -> crate::util::Ran {
    let mut config = json!({"expression": expression});
    if let Some(source) = source {
        config["source"] = source;
    }
    run(&plan(chain(json!([{"key": "q", "type": "json-query", "config": config}]))), body)
}

#[test]
fn json_query_selects_and_reshapes_with_jmespath() {
    let body =
        json!({"order": {"id": 7, "items": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}, {"sku": "C", "qty": 5}]}});
    let skus = query("order.items[?qty > `1`].sku", Some(json!("{{$context.body}}")), body.clone());
    assert_eq!(skus.status(), "resolved");
    assert_eq!(skus.execution.jobs[0].output, json!(["A", "C"]));
    let shaped = query("{id: order.id, total: sum(order.items[].qty)}", Some(json!("{{$context.body}}")), body.clone());
    assert_eq!(shaped.execution.jobs[0].output, json!({"id": 7, "total": 8.0}));
    // Without a source the whole context is queried.
    let whole = query("\"$context\".body.order.id", None, body);
    assert_eq!(whole.execution.jobs[0].output, json!(7));
    let nothing = query("a.b", Some(json!(null)), json!({}));
    assert_eq!(nothing.execution.jobs[0].output, json!(null));
}

#[test]
fn a_bad_json_query_is_a_job_error_naming_the_field() {
    let bad = query("items[?", None, json!({}));
    assert_eq!(bad.status(), "error");
    assert!(last_error(&bad).starts_with("expression: "), "{}", last_error(&bad));
    let missing = run(&plan(chain(json!([{"key": "q", "type": "json-query", "config": {}}]))), json!({}));
    assert!(last_error(&missing).starts_with("config: missing field `expression`"), "{}", last_error(&missing));
}
