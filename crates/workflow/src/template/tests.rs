//! Templates compiled and resolved against one fixed scope; each case is a config value and what
//! it resolves to (`check`), or the fault it is refused with (`check_fault`).
#![allow(clippy::unwrap_used)]

use serde_json::{Map, Value, json};

use super::{Scope, Template};

/// Compiles `config` and resolves it against a scope with a trigger body, one earlier node's
/// output, a loop item, a system time, an execution id and a secret.
fn check(config: Value, expected: Value) {
    let context = json!({"body": {"order": {"id": 42, "items": [{"sku": "a"}, {"sku": "b"}]}, "note": null,
        "a.b": "dotted"}, "query": {"tags": ["x", "y"]}});
    let jobs = json!({"lookup": {"found": true, "price": 9.5}}).as_object().unwrap().clone();
    let scopes = json!({"each": {"item": "x", "index": 0}}).as_object().unwrap().clone();
    let secrets: Map<String, Value> = json!({"TOKEN": "s3cret"}).as_object().unwrap().clone();
    let (system, execution) = (json!({"now": "2026-01-01T00:00:00.000Z"}), json!({"id": "01EXECUTION"}));
    let scope = Scope {
        context: &context,
        jobs: &jobs,
        system: &system,
        execution: &execution,
        scopes: &scopes,
        secrets: &secrets,
    };
    let template = Template::compile(&config, "config").unwrap_or_else(|(path, error)| panic!("{path}: {error}"));
    assert_eq!(template.resolve(&scope), expected, "{config}");
}

fn check_fault(config: Value, expected: &str) {
    let (path, error) = Template::compile(&config, "config").err().unwrap();
    assert_eq!(format!("{path}: {error}"), expected, "{config}");
}

#[test]
fn an_exact_template_keeps_the_type_of_what_it_names() {
    check(json!("{{$context.body.order.id}}"), json!(42));
    check(json!("{{$jobsMapByNodeKey.lookup.found}}"), json!(true));
    check(json!("{{$context.body.order}}"), json!({"id": 42, "items": [{"sku": "a"}, {"sku": "b"}]}));
    check(json!("{{ $context.body.order.id }}"), json!(42));
}

#[test]
fn a_template_inside_text_is_interpolated() {
    check(
        json!("order {{$context.body.order.id}} costs {{$jobsMapByNodeKey.lookup.price}}"),
        json!("order 42 costs 9.5"),
    );
    check(json!("note: [{{$context.body.note}}]"), json!("note: []"));
    check(json!("tags {{$context.query.tags}}"), json!(r#"tags ["x","y"]"#));
}

#[test]
fn paths_index_arrays_map_over_them_and_quote_odd_keys() {
    check(json!("{{$context.body.order.items[1].sku}}"), json!("b"));
    check(json!("{{$context.body.order.items.sku}}"), json!(["a", "b"]));
    check(json!(r#"{{$context.body["a.b"]}}"#), json!("dotted"));
    check(json!("{{$context.body.missing.deeper}}"), Value::Null);
}

#[test]
fn every_root_resolves() {
    check(
        json!({"now": "{{$system.now}}", "id": "{{$execution.id}}", "item": "{{$scopes.each.item}}",
               "token": "Bearer {{$secrets.TOKEN}}", "kept": [1, "{{$scopes.each.index}}"]}),
        json!({"now": "2026-01-01T00:00:00.000Z", "id": "01EXECUTION", "item": "x", "token": "Bearer s3cret",
               "kept": [1, 0]}),
    );
}

#[test]
fn values_without_templates_stay_as_written() {
    check(
        json!({"a": [1, 2.5, null, false], "b": "plain {text}"}),
        json!({"a": [1, 2.5, null, false], "b": "plain {text}"}),
    );
}

#[test]
fn a_template_that_does_not_parse_is_refused_with_its_path() {
    check_fault(
        json!({"a": ["{{$nowhere.x}}"]}),
        r#"config.a[0]: unknown variable "$nowhere"; expected $context, $jobsMapByNodeKey, $scopes, $secrets, $system or $execution"#,
    );
    check_fault(json!({"b": "{{$context.body"}), r#"config.b: unterminated template in "{{$context.body": missing }}"#);
    check_fault(
        json!("{{$context.body.order.items[x]}}"),
        "config: in {{$context.body.order.items[x]}}: expected an index or a quoted key in [x]",
    );
}
