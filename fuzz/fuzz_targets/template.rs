//! The template compiler and resolver on arbitrary strings.
#![no_main]

use hookflow_workflow::template::{Scope, Template};
use serde_json::{Map, Value, json};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let Ok(template) = Template::compile(&Value::String(text), "fuzz") else { return };
    let context = json!({"headers": {"x-a": "1"}, "query": {"q": ["a", "b"]},
                         "body": {"items": [{"sku": "A", "tags": [1, 2]}, {"sku": "B"}], "a.b": {"c": null}}});
    let mut jobs = Map::new();
    jobs.insert("check".into(), json!({"result": true}));
    let system = json!({"now": "2026-11-29T00:00:00Z"});
    let execution = json!({"id": "fuzz"});
    let mut scopes = Map::new();
    scopes.insert("each".into(), json!({"item": {"sku": "A"}, "index": 0, "sequence": 1, "length": 2}));
    let scope = Scope { context: &context, jobs: &jobs, system: &system, execution: &execution, scopes: &scopes, secrets: &scopes };
    let _ = template.resolve(&scope);
});
