//! The executor running the real embedded `condition` and `response` components.

use hookflow_workflow::{ExecutionStatus, JobStatus, execute};
use serde_json::{Value, json};

use crate::util::{Ran, host, plan, run, run_on};

/// The payment example (NocoBase's webhook example): a condition on the body's status, two Response nodes.
fn payment_workflow() -> Value {
    json!({
        "key": "pay-callback",
        "sync": true,
        "nodes": [
            {"key": "check", "type": "condition",
             "config": {"rejectOnFalse": false,
                        "calculation": {"group": {"type": "and", "calculations": [
                            {"calculator": "equal", "operands": ["{{$context.body.status}}", "paid"]}]}}},
             "branches": {
                 "true":  [{"key": "ok", "type": "response",
                            "config": {"statusCode": 200, "body": {"ok": true, "order": "{{$context.body.order.id}}"}}}],
                 "false": [{"key": "fail", "type": "response",
                            "config": {"statusCode": 400, "body": {"ok": false}}}]
             }}
        ]
    })
}

#[test]
fn payment_example_answers_success_or_failure() {
    let plan = plan(payment_workflow());

    let paid = run(&plan, json!({"status": "paid", "order": {"id": 42}}));
    assert_eq!(paid.reply().status, 200);
    assert_eq!(paid.body(), json!({"ok": true, "order": 42}));
    assert_eq!(paid.header("content-type"), Some("application/json"));
    assert_eq!(paid.status(), "resolved");
    assert_eq!(paid.job_keys(), ["check", "ok"]);
    let check = &paid.execution.jobs[0];
    assert_eq!(check.output, json!({"result": true}));
    assert_eq!(
        check.input["calculation"]["group"]["calculations"][0]["operands"],
        json!(["paid", "paid"]),
        "the job records the resolved config"
    );
    assert!(paid.execution.finished_at.is_some());

    let unpaid = run(&plan, json!({"status": "pending", "order": {"id": 42}}));
    assert_eq!(unpaid.reply().status, 400);
    assert_eq!(unpaid.body(), json!({"ok": false}));
    assert_eq!(unpaid.job_keys(), ["check", "fail"]);
    assert_eq!(unpaid.status(), "resolved");
}

/// A workflow of one condition over `left` and `right`, followed by a marker node.
fn condition_workflow(calculation: Value, reject_on_false: bool) -> Value {
    json!({
        "sync": true,
        "nodes": [
            {"key": "check", "type": "condition",
             "config": {"rejectOnFalse": reject_on_false, "calculation": calculation}},
            {"key": "after", "type": "condition", "config": {}}
        ]
    })
}

#[test]
fn reject_on_false_continues_when_true_and_fails_when_false() {
    let calculation = json!({"group": {"type": "and", "calculations": [
        {"calculator": "equal", "operands": ["{{$context.body.status}}", "paid"]}]}});
    let plan = plan(condition_workflow(calculation, true));

    let passed = run(&plan, json!({"status": "paid"}));
    assert_eq!(passed.status(), "resolved");
    assert_eq!(passed.job_keys(), ["check", "after"]);
    assert_eq!(passed.reply().status, 200);
    assert_eq!(passed.body(), json!({"executionId": passed.execution.id, "status": "resolved"}));

    let rejected = run(&plan, json!({"status": "unpaid"}));
    assert_eq!(rejected.status(), "failed");
    assert_eq!(rejected.job_keys(), ["check"], "nodes after a rejecting condition do not run");
    assert_eq!(serde_json::to_value(rejected.execution.jobs[0].status).unwrap(), "failed");
    assert_eq!(rejected.execution.jobs[0].output, json!({"result": false}));
    assert_eq!(rejected.answer, Err(ExecutionStatus::Failed));
}

/// Evaluates one calculation with the real condition node; `None` when the node errored.
fn evaluate(calculation: Value) -> Option<bool> {
    let ran = run(&plan(condition_workflow(calculation, false)), Value::Null);
    match ran.status().as_str() {
        "resolved" => Some(ran.execution.jobs[0].output["result"].as_bool().unwrap()),
        _ => None,
    }
}

fn item(calculator: &str, left: &Value, right: &Value) -> Value {
    json!({"group": {"type": "and", "calculations": [{"calculator": calculator, "operands": [left, right]}]}})
}

#[test]
fn every_calculator_with_mixed_types() {
    #[rustfmt::skip]
    let cases: &[(&str, Value, Value, bool)] = &[
        ("equal", json!(42), json!("42"), true),
        ("equal", json!("42"), json!(42.0), true),
        ("equal", json!(" 4.0 "), json!(4), true),
        ("==", json!("paid"), json!("paid"), true),
        ("equal", json!("paid"), json!("Paid"), false),
        ("equal", json!(null), json!(null), true),
        ("equal", json!(null), json!(0), false),
        ("equal", json!(null), json!(""), false),
        ("equal", json!(""), json!(0), false),
        ("equal", json!(true), json!(1), false),
        ("equal", json!([1, {"a": 2}]), json!([1, {"a": 2}]), true),
        ("notEqual", json!(1), json!("1"), false),
        ("!=", json!(null), json!(1), true),
        ("gt", json!(10), json!(9), true),
        ("gt", json!("10"), json!(9), true),
        (">", json!("10"), json!("9"), false),
        ("gte", json!(3), json!(3), true),
        (">=", json!("b"), json!("a"), true),
        ("lt", json!(2.5), json!(3), true),
        ("<", json!("abc"), json!("abd"), true),
        ("lte", json!(3), json!("3"), true),
        ("<=", json!(4), json!(3), false),
        ("gt", json!(true), json!(false), false),
        ("gt", json!(null), json!(1), false),
        ("lt", json!("x"), json!(1), false),
        ("includes", json!("order-paid"), json!("paid"), true),
        ("includes", json!(["a", 2]), json!("2"), true),
        ("includes", json!(["a", "b"]), json!("c"), false),
        ("includes", json!({"a": 1}), json!("a"), false),
        ("notIncludes", json!("order"), json!("paid"), true),
        ("notIncludes", json!({"a": 1}), json!("a"), false),
        ("startsWith", json!("order-1"), json!("order"), true),
        ("startsWith", json!(12345), json!(12), true),
        ("startsWith", json!(null), json!("x"), false),
        ("notStartsWith", json!("order-1"), json!("x"), true),
        ("notStartsWith", json!([1]), json!("x"), false),
        ("endsWith", json!("file.json"), json!(".json"), true),
        ("notEndsWith", json!("file.json"), json!(".json"), false),
        ("empty", json!(null), json!(null), true),
        ("empty", json!(""), json!(null), true),
        ("empty", json!([]), json!(null), true),
        ("empty", json!({}), json!(null), true),
        ("empty", json!(0), json!(null), false),
        ("notEmpty", json!("x"), json!(null), true),
        ("notEmpty", json!([]), json!(null), false),
        ("in", json!("b"), json!(["a", "b"]), true),
        ("in", json!(2), json!(["1", "2"]), true),
        ("in", json!("c"), json!(["a", "b"]), false),
        ("in", json!("a"), json!("abc"), false),
        ("notIn", json!("c"), json!(["a", "b"]), true),
        ("notIn", json!("a"), json!("abc"), false),
    ];
    let mut wrong = Vec::new();
    for (calculator, left, right, expected) in cases {
        let actual = evaluate(item(calculator, left, right));
        if actual != Some(*expected) {
            wrong.push(format!("{left} {calculator} {right}: expected {expected}, got {actual:?}"));
        }
    }
    assert!(wrong.is_empty(), "wrong results:\n{}", wrong.join("\n"));
}

#[test]
fn unknown_calculator_is_a_node_error() {
    let ran = run(&plan(condition_workflow(item("almostEqual", &json!(1), &json!(1)), false)), Value::Null);
    assert_eq!(ran.status(), "error");
    let job = &ran.execution.jobs[0];
    assert_eq!(serde_json::to_value(job.status).unwrap(), "error");
    let message = job.error.as_deref().unwrap();
    assert!(message.contains("unknown calculator \"almostEqual\""), "{message}");
}

#[test]
fn groups_nest_and_a_missing_calculation_is_true() {
    let yes = json!({"calculator": "equal", "operands": [1, 1]});
    let no = json!({"calculator": "equal", "operands": [1, 2]});
    let group = |kind: &str, items: Value| json!({"group": {"type": kind, "calculations": items}});

    assert_eq!(evaluate(group("and", json!([yes, group("or", json!([no, yes]))]))), Some(true));
    assert_eq!(evaluate(group("and", json!([yes, group("or", json!([no, no]))]))), Some(false));
    assert_eq!(evaluate(group("or", json!([no, group("and", json!([yes, group("or", json!([yes]))]))]))), Some(true));
    assert_eq!(evaluate(group("and", json!([]))), Some(true));
    assert_eq!(evaluate(group("or", json!([]))), Some(false));
    assert_eq!(evaluate(Value::Null), Some(true), "a missing calculation is true");
}

/// Runs a sync workflow whose one Response node answers with `body`.
fn respond_with(body: Value, trigger: Value) -> Ran {
    let plan = plan(json!({
        "sync": true,
        "nodes": [{"key": "reply", "type": "response", "config": {"body": body}}]
    }));
    run_on(host(), &plan, trigger)
}

#[test]
fn templates_keep_types_or_interpolate_text() {
    let trigger = json!({
        "headers": {"x-request-id": "r-1"},
        "query": {"source": "shop", "tags": ["a", "b"]},
        "body": {"n": 7, "ok": true, "o": {"a": 1}, "s": "text", "items": [{"sku": "A"}, {"sku": "B"}],
                 "a.b": {"c": "dotted"}, "nil": null}
    });
    let ran = respond_with(
        json!({
            "number": "{{$context.body.n}}",
            "bool": "{{ $context.body.ok }}",
            "object": "{{$context.body.o}}",
            "text": "n={{$context.body.n}}, o={{$context.body.o}}, s={{$context.body.s}}, nil=[{{$context.body.nil}}]",
            "header": "{{$context.headers.x-request-id}}",
            "query": "{{$context.query.source}}",
            "indexed": "{{$context.query.tags[1]}}",
            "mapped": "{{$context.body.items.sku}}",
            "first": "{{$context.body.items[0].sku}}",
            "quoted": "{{$context.body[\"a.b\"].c}}",
            "missing": "{{$context.body.nope.deeper}}",
            "missingText": "<{{$context.body.nope}}>",
            "whole": "{{$context}}",
            "nested": [{"deep": "{{$context.body.s}}"}]
        }),
        trigger.clone(),
    );
    assert_eq!(ran.status(), "resolved");
    let body = ran.body();
    assert_eq!(body["number"], json!(7));
    assert_eq!(body["bool"], json!(true));
    assert_eq!(body["object"], json!({"a": 1}));
    assert_eq!(body["text"], json!("n=7, o={\"a\":1}, s=text, nil=[]"));
    assert_eq!(body["header"], json!("r-1"));
    assert_eq!(body["query"], json!("shop"));
    assert_eq!(body["indexed"], json!("b"));
    assert_eq!(body["mapped"], json!(["A", "B"]));
    assert_eq!(body["first"], json!("A"));
    assert_eq!(body["quoted"], json!("dotted"));
    assert_eq!(body["missing"], Value::Null);
    assert_eq!(body["missingText"], json!("<>"));
    assert_eq!(body["whole"], trigger);
    assert_eq!(body["nested"], json!([{"deep": "text"}]));
}

#[test]
fn system_execution_and_earlier_node_outputs() {
    let plan = plan(json!({
        "sync": true,
        "nodes": [
            {"key": "check", "type": "condition", "config": {"rejectOnFalse": true}},
            {"key": "reply", "type": "response", "config": {"body": {
                "previous": "{{$jobsMapByNodeKey.check.result}}",
                "all": "{{$jobsMapByNodeKey}}",
                "execution": "{{$execution.id}}",
                "now": "{{$system.now}}"
            }}}
        ]
    }));
    let ran = run(&plan, Value::Null);
    let body = ran.body();
    assert_eq!(body["previous"], json!(true));
    assert_eq!(body["all"], json!({"check": {"result": true}}));
    assert_eq!(body["execution"], json!(ran.execution.id));
    let now = body["now"].as_str().unwrap();
    assert!(now.len() >= 20 && now.ends_with('Z') && now.contains('T'), "{now}");
}

#[test]
fn a_finished_branch_continues_after_its_parent() {
    let plan = plan(json!({
        "sync": true,
        "nodes": [
            {"key": "check", "type": "condition", "config": {},
             "branches": {"true": [{"key": "inner", "type": "condition", "config": {}}]}},
            {"key": "reply", "type": "response", "config": {"statusCode": 201, "body": "after"}}
        ]
    }));
    let ran = run(&plan, Value::Null);
    assert_eq!(ran.job_keys(), ["check", "inner", "reply"]);
    assert_eq!(ran.reply().status, 201);
    assert_eq!(ran.reply().body, b"after");
    assert_eq!(ran.header("content-type"), Some("text/plain; charset=utf-8"));
}

#[test]
fn an_absent_picked_branch_continues() {
    let plan = plan(json!({
        "sync": true,
        "nodes": [
            {"key": "check", "type": "condition",
             "config": {"calculation": {"group": {"calculations": [{"calculator": "equal", "operands": [1, 2]}]}}},
             "branches": {"true": [{"key": "never", "type": "response", "config": {}}]}},
            {"key": "reply", "type": "response", "config": {"statusCode": 202}}
        ]
    }));
    let ran = run(&plan, Value::Null);
    assert_eq!(ran.job_keys(), ["check", "reply"]);
    assert_eq!(ran.reply().status, 202);
    assert!(ran.reply().body.is_empty());
}

#[test]
fn a_failing_branch_ends_the_execution() {
    let plan = plan(json!({
        "sync": true,
        "nodes": [
            {"key": "check", "type": "condition", "config": {},
             "branches": {"true": [{"key": "inner", "type": "condition", "config": {"rejectOnFalse": true,
                 "calculation": {"group": {"calculations": [{"calculator": "equal", "operands": [1, 2]}]}}}}]}},
            {"key": "reply", "type": "response", "config": {}}
        ]
    }));
    let ran = run(&plan, Value::Null);
    assert_eq!(ran.job_keys(), ["check", "inner"]);
    assert_eq!(ran.answer, Err(ExecutionStatus::Failed));
}

#[test]
fn a_response_node_ends_the_execution() {
    let plan = plan(json!({
        "sync": true,
        "nodes": [
            {"key": "first", "type": "response", "config": {"statusCode": 200, "body": "first",
                "headers": [{"name": "X-Ack", "value": "{{$context.body.n}}"}]}},
            {"key": "second", "type": "response", "config": {"statusCode": 500, "body": "second"}}
        ]
    }));
    let ran = run(&plan, json!({"n": 1}));
    assert_eq!(ran.job_keys(), ["first"]);
    assert_eq!(ran.status(), "resolved");
    assert_eq!(ran.reply().body, b"first");
    assert_eq!(ran.header("x-ack"), Some("1"));
    assert_eq!(ran.replied.len(), 1);
}

#[test]
fn a_response_with_continue_answers_and_goes_on() {
    let plan = plan(json!({
        "sync": true,
        "nodes": [
            {"key": "early", "type": "response",
             "config": {"statusCode": 202, "body": {"accepted": true}, "continue": true,
                        "headers": [{"name": "Content-Type", "value": "application/vnd.hook+json"}]}},
            {"key": "check", "type": "condition", "config": {}},
            {"key": "late", "type": "response", "config": {"statusCode": 500}}
        ]
    }));
    let ran = run(&plan, Value::Null);
    assert_eq!(ran.job_keys(), ["early", "check", "late"]);
    assert_eq!(ran.status(), "resolved");
    assert_eq!(ran.reply().status, 202, "the first reply is the answer");
    assert_eq!(ran.header("content-type"), Some("application/vnd.hook+json"));
    assert_eq!(ran.body(), json!({"accepted": true}));
    assert_eq!(ran.replied.len(), 1, "the caller is answered once");
    assert_eq!(ran.execution.jobs[2].output["statusCode"], json!(500), "the late reply is recorded");
}

#[test]
fn a_bad_response_config_is_a_node_error() {
    for (config, expected) in [
        (json!({"statusCode": 99}), "statusCode"),
        (json!({"statusCode": "{{$context.body.code}}"}), "statusCode"),
        (json!({"headers": [{"name": "Bad Name", "value": "x"}]}), "header name"),
        (json!({"headers": [{"name": "X-A", "value": "a\r\nb"}]}), "line breaks"),
    ] {
        let plan = plan(json!({"sync": true, "nodes": [{"key": "r", "type": "response", "config": config}]}));
        let ran = run(&plan, json!({"code": "abc"}));
        assert_eq!(ran.status(), "error", "{config}");
        let message = ran.execution.jobs[0].error.clone().unwrap();
        assert!(message.contains(expected), "{config}: {message}");
        assert_eq!(ran.answer, Err(ExecutionStatus::Error));
    }
}

#[test]
fn a_sync_workflow_without_response_answers_with_the_execution() {
    let plan = plan(json!({"sync": true, "nodes": []}));
    let ran = run(&plan, Value::Null);
    assert_eq!(ran.status(), "resolved");
    assert_eq!(ran.reply().status, 200);
    assert_eq!(ran.body(), json!({"executionId": ran.execution.id, "status": "resolved"}));
}

#[test]
fn a_resumed_execution_replays_resolved_jobs_and_runs_the_rest() {
    let plan = plan(payment_workflow());
    let first = run(&plan, json!({"status": "paid", "order": {"id": 7}}));
    assert_eq!(first.job_keys(), ["check", "ok"]);

    // As if the engine stopped after the condition: its job is recorded, the rest is not.
    let mut interrupted = first.execution.clone();
    interrupted.jobs.truncate(1);
    interrupted.status = ExecutionStatus::Started;
    let check = interrupted.jobs[0].clone();
    let reply = execute(host(), &plan, &mut interrupted, &mut ()).reply;
    assert_eq!(interrupted.status, ExecutionStatus::Resolved);
    assert_eq!(interrupted.jobs.len(), 2);
    assert_eq!(interrupted.jobs[0], check, "the recorded job is replayed, not run again");
    assert_eq!(interrupted.jobs[1].node_key, "ok", "the picked branch is followed from the record");
    assert_eq!(reply.unwrap().status, 200);

    // A job that did not resolve is run again.
    let mut errored = first.execution.clone();
    errored.jobs.truncate(1);
    errored.jobs[0].status = JobStatus::Error;
    execute(host(), &plan, &mut errored, &mut ());
    assert_eq!(errored.jobs.len(), 2);
    assert_eq!(errored.jobs[0].status, JobStatus::Resolved, "the errored job ran again");
    assert_eq!(errored.status, ExecutionStatus::Resolved);
}
