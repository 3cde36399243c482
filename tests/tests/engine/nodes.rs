//! The built-in `end`, `set`, `json-query`, `loop` and `delay` nodes, run by the executor as real
//! components (they are written with the `hookflow-node` SDK, like `condition` and `response`).

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

/// A sync workflow that loops over `body.items`, marks the items with a quantity of 10 or more,
/// and answers with the last mark and the item count.
fn marking_loop() -> Value {
    chain(json!([
        {"key": "each", "type": "loop", "config": {"target": "{{$context.body.items}}"}, "branches": {"body": [
            {"key": "big", "type": "condition", "config": {"calculation": {"group": {"calculations": [
                {"calculator": "gte", "operands": ["{{$scopes.each.item.qty}}", 10]}]}}},
             "branches": {"true": [{"key": "mark", "type": "set", "config": {"values": {
                "sku": "{{$scopes.each.item.sku}}", "index": "{{$scopes.each.index}}",
                "of": "{{$scopes.each.length}}"}}}]}}
        ]}},
        {"key": "done", "type": "response", "config": {"body": {
            "last": "{{$jobsMapByNodeKey.mark}}", "count": "{{$jobsMapByNodeKey.each.length}}"}}}
    ]))
}

#[test]
fn loop_runs_its_body_once_per_item_with_a_nested_condition() {
    let plan = plan(marking_loop());

    let none = run(&plan, json!({"items": []}));
    assert_eq!(none.job_keys(), ["each", "done"], "zero items: the body does not run");
    assert_eq!(none.body(), json!({"last": null, "count": 0}));

    let one = run(&plan, json!({"items": [{"sku": "A", "qty": 12}]}));
    assert_eq!(one.job_keys(), ["each", "big", "mark", "done"]);
    assert_eq!(one.body(), json!({"last": {"sku": "A", "index": 0, "of": 1}, "count": 1}));

    let items = json!([{"sku": "A", "qty": 12}, {"sku": "B", "qty": 3}, {"sku": "C", "qty": 20}, {"sku": "D"}]);
    let many = run(&plan, json!({ "items": items }));
    assert_eq!(many.job_keys(), ["each", "big", "mark", "big", "big", "mark", "big", "done"]);
    let marks: Vec<&Value> =
        many.execution.jobs.iter().filter(|job| job.node_key == "mark").map(|job| &job.output).collect();
    assert_eq!(marks, [&json!({"sku": "A", "index": 0, "of": 4}), &json!({"sku": "C", "index": 2, "of": 4})]);
    assert_eq!(many.body(), json!({"last": {"sku": "C", "index": 2, "of": 4}, "count": 4}));
    assert_eq!(many.execution.jobs[0].output, json!({"items": items, "length": 4}), "the job records the items");
}

#[test]
fn loop_targets_a_count_and_nested_loops_see_both_scopes() {
    let workflow = chain(json!([
        {"key": "rows", "type": "loop", "config": {"target": 2}, "branches": {"body": [
            {"key": "cols", "type": "loop", "config": {"target": "{{$context.body.letters}}"}, "branches": {"body": [
                {"key": "cell", "type": "set", "config": {"values": {
                    "name": "{{$scopes.rows.item}}{{$scopes.cols.item}}"}}}]}}]}}
    ]));
    let ran = run(&plan(workflow), json!({"letters": ["a", "b"]}));
    assert_eq!(ran.status(), "resolved");
    let cells: Vec<&Value> =
        ran.execution.jobs.iter().filter(|job| job.node_key == "cell").map(|job| &job.output["name"]).collect();
    assert_eq!(cells, ["0a", "0b", "1a", "1b"]);
}

#[test]
fn an_end_inside_a_loop_body_ends_the_execution() {
    let workflow = chain(json!([
        {"key": "each", "type": "loop", "config": {"target": "{{$context.body.items}}"}, "branches": {"body": [
            {"key": "check", "type": "condition", "config": {"rejectOnFalse": true, "calculation": {"group": {
                "calculations": [{"calculator": "notEqual", "operands": ["{{$scopes.each.item}}", "bad"]}]}}}}]}},
        {"key": "after", "type": "response", "config": {"body": "all good"}}
    ]));
    let plan = plan(workflow);
    let stopped = run(&plan, json!({"items": ["ok", "bad", "ok"]}));
    assert_eq!(stopped.status(), "failed");
    assert_eq!(stopped.job_keys(), ["each", "check", "check"], "the loop stops at the failing item");
    assert_eq!(run(&plan, json!({"items": ["ok", "ok"]})).reply().body, b"all good");
}

#[test]
fn a_bad_loop_target_is_a_job_error_naming_the_field() {
    let looping = |target: Value| {
        let ran = run(&plan(chain(json!([{"key": "each", "type": "loop", "config": {"target": target}}]))), json!({}));
        (ran.status(), last_error(&ran))
    };
    let (status, error) = looping(json!(-3));
    assert_eq!(status, "error");
    assert_eq!(error, "target: a number target is a count of iterations; -3 is not a number ≥ 0");
    assert_eq!(looping(json!(1_000_000)).1, "target: 1000000 iterations asked for; one loop node runs at most 100000");
    let ran = run(&plan(chain(json!([{"key": "each", "type": "loop", "config": {}}]))), json!({}));
    assert!(last_error(&ran).contains("missing field `target`"), "{}", last_error(&ran));
}

#[test]
fn delay_makes_an_execution_wait_and_resume_where_it_stopped() {
    use hookflow_workflow::{ExecutionStatus, JobStatus, execute};

    let workflow = json!({"key": "later", "sync": false, "nodes": [
        {"key": "before", "type": "set", "config": {"values": {"n": 1}}},
        {"key": "wait", "type": "delay", "config": {"duration": "300ms"}},
        {"key": "after", "type": "set", "config": {"values": {"n": "{{$jobsMapByNodeKey.before.n}}"}}}
    ]});
    let plan = plan(workflow);
    let mut execution = hookflow_workflow::Execution::new(
        crate::util::IDS.next(hookflow_workflow::timestamp::Timestamp::now()),
        "later",
        1,
        json!({"body": {}}),
    );
    let first = execute(crate::util::host(), &plan, &mut execution, &mut ());
    let wake_at = first.wake_at.expect("the delay holds the execution");
    assert_eq!(execution.status, ExecutionStatus::Started);
    assert_eq!(execution.finished_at, None);
    let statuses: Vec<JobStatus> = execution.jobs.iter().map(|job| job.status).collect();
    assert_eq!(statuses, [JobStatus::Resolved, JobStatus::Pending]);
    assert_eq!(execution.jobs[1].output, json!({"durationMs": 300}));
    assert_eq!(wake_at.0, execution.jobs[1].started_at.0 + 300);

    // Too early: it waits again, running nothing.
    let again = execute(crate::util::host(), &plan, &mut execution, &mut ());
    assert_eq!(again.wake_at, Some(wake_at));
    assert_eq!(execution.jobs.len(), 2);

    std::thread::sleep(std::time::Duration::from_millis(320));
    let done = execute(crate::util::host(), &plan, &mut execution, &mut ());
    assert_eq!(done.wake_at, None);
    assert_eq!(execution.status, ExecutionStatus::Resolved);
    let keys: Vec<&str> = execution.jobs.iter().map(|job| job.node_key.as_str()).collect();
    assert_eq!(keys, ["before", "wait", "after"]);
    assert_eq!(execution.jobs[1].status, JobStatus::Resolved);
    assert!(execution.jobs[1].finished_at >= wake_at);
    assert_eq!(execution.jobs[2].output, json!({"n": 1}), "outputs from before the wait are replayed");
}

#[test]
fn a_bad_delay_duration_is_a_job_error_naming_the_field() {
    let workflow = json!({"key": "later", "sync": false, "nodes": [
        {"key": "wait", "type": "delay", "config": {"duration": "soon"}}]});
    let ran = run(&plan(workflow), json!({}));
    assert_eq!(ran.status(), "error");
    assert!(last_error(&ran).starts_with("duration: expected whole milliseconds"), "{}", last_error(&ran));
}

#[test]
fn a_loop_resumed_mid_way_replays_its_recorded_iterations() {
    use hookflow_workflow::{ExecutionStatus, execute};

    let plan = plan(marking_loop());
    let items = json!([{"sku": "A", "qty": 12}, {"sku": "B", "qty": 3}, {"sku": "C", "qty": 20}]);
    let whole = run(&plan, json!({ "items": items }));
    for kept in 1..whole.execution.jobs.len() {
        // As if the engine stopped after `kept` jobs.
        let mut resumed = whole.execution.clone();
        resumed.jobs.truncate(kept);
        resumed.status = ExecutionStatus::Started;
        let reply = execute(crate::util::host(), &plan, &mut resumed, &mut ()).reply;
        assert_eq!(resumed.jobs[..kept], whole.execution.jobs[..kept], "recorded jobs are kept as they were");
        let keys: Vec<&str> = resumed.jobs.iter().map(|job| job.node_key.as_str()).collect();
        assert_eq!(keys, whole.job_keys(), "resumed after {kept} jobs");
        let outputs: Vec<&Value> = resumed.jobs.iter().map(|job| &job.output).collect();
        let expected: Vec<&Value> = whole.execution.jobs.iter().map(|job| &job.output).collect();
        assert_eq!(outputs, expected, "resumed after {kept} jobs");
        assert_eq!(reply, whole.replied.first().cloned());
    }
}

/// A node of the `context-reader` world is sent no context text; through the `context` import it
/// reads the values it names — fields of a large body, a mapping over its items, an earlier
/// node's output, a loop's item, the execution id — and `none` for a missing path and for the
/// operator's secrets, which are not part of the context. A node written with the Rust SDK reads
/// the same through `Call::get` and `Call::context`.
#[test]
fn a_context_reader_gets_the_values_it_names_and_no_context_text() {
    let paths = "$context.body.order.id $context.body.order.items.sku $jobsMapByNodeKey.first.total \
                 $scopes.each.item $context.body.nope $secrets.SHOP_TOKEN $execution.id *";
    let path_list: Vec<&str> = paths.split_whitespace().collect();
    let workflow = chain(json!([
        {"key": "first", "type": "set", "config": {"values": {"total": 12}}},
        {"key": "each", "type": "loop", "config": {"target": ["only"]}, "branches": {"body": [
            {"key": "read", "type": "reader", "config": {"paths": paths}},
            {"key": "sdk", "type": "sdk-reader", "config": {"paths": path_list}}]}},
        {"key": "answer", "type": "response", "config": {"body": {
            "read": "{{$jobsMapByNodeKey.read}}", "sdk": "{{$jobsMapByNodeKey.sdk}}"}}}
    ]));
    let server = crate::util::TestServer::start(&[workflow], |config| {
        let plugins = config.plugins_dir.as_ref().unwrap();
        std::fs::write(plugins.join("reader.wasm"), hookflow_tests::fixture("context-reader")).unwrap();
        std::fs::write(plugins.join("sdk-reader.wasm"), hookflow_tests::fixture("sdk-reader")).unwrap();
        config.host.secrets =
            std::sync::Arc::new(hookflow_workflow::Secrets::new([("SHOP_TOKEN", "token-value-123")]).unwrap());
    });
    let padding = "x".repeat(200_000);
    let body = json!({"order": {"id": 7, "items": [{"sku": "A"}, {"sku": "B"}]}, "padding": padding});
    let answer = server.post_json("chain", &body);
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    let execution_id = answer.header("x-hookflow-execution").unwrap().to_string();
    let answer = answer.json();
    let read = &answer["read"];
    assert_eq!(read["contextText"], json!(0), "a context reader is sent no context text");
    let values = read["values"].as_array().unwrap();
    let expected = [json!(7), json!(["A", "B"]), json!(12), json!("only"), json!("<none>"), json!("<none>")];
    assert_eq!(values[..6], expected, "{read}");
    assert_eq!(values[6], json!(execution_id));
    // `context.all` still gives the whole context: at least the padding of the body.
    assert!(values[7].as_u64().unwrap() > 200_000, "{read}");
    let sdk = &answer["sdk"];
    let through_sdk = [json!(7), json!(["A", "B"]), json!(12), json!("only"), json!(null), json!(null)];
    assert_eq!(sdk["values"].as_array().unwrap()[..6], through_sdk, "{sdk}");
    assert_eq!(sdk["values"][6], json!(execution_id));
    assert_eq!(sdk["executionId"], json!(execution_id), "Call::context gives the whole context");
}
