//! The built-in `end` node (NocoBase's "End process"): ends the execution now, as `resolved` or
//! `failed`; nodes after it do not run.

use hookflow_node::{Call, EndStatus, Error, Info, Outcome, export_node, fail};
use serde_json::{Value, json};

const CONFIG_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "status": {"enum": ["resolved", "failed"], "default": "resolved",
      "description": "how the execution ends; NocoBase's \"endStatus\": 1 (resolved) or -1 (failed) is accepted too"}
  }
}"#;

export_node!(Info::new("end").version(env!("CARGO_PKG_VERSION")).config_schema(CONFIG_SCHEMA), run);

fn run(call: Call) -> Result<Outcome, Error> {
    let config = call.config_value();
    let status = match (present(config, "status"), present(config, "endStatus")) {
        (Some(Value::String(status)), _) if status == "resolved" => EndStatus::Resolved,
        (Some(Value::String(status)), _) if status == "failed" => EndStatus::Failed,
        (Some(other), _) => return Err(fail(format!("status: expected \"resolved\" or \"failed\", got {other}"))),
        (None, Some(code)) => match code.as_i64() {
            Some(1) => EndStatus::Resolved,
            Some(-1) => EndStatus::Failed,
            _ => return Err(fail(format!("endStatus: expected 1 (resolved) or -1 (failed), got {code}"))),
        },
        (None, None) => EndStatus::Resolved,
    };
    let name = if status == EndStatus::Resolved { "resolved" } else { "failed" };
    Ok(Outcome::end(status).with_output(&json!({ "status": name })))
}

/// A config field that is present and not `null`.
fn present<'v>(config: &'v Value, name: &str) -> Option<&'v Value> {
    config.get(name).filter(|value| !value.is_null())
}
