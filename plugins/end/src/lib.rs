//! The built-in `end` node (NocoBase's "End process"): ends the execution now, as `resolved` or
//! `failed`; nodes after it do not run.

use hookflow_node::{Call, EndStatus, Error, Info, Outcome, export_node, fail};
use serde::Deserialize;
use serde_json::json;

const CONFIG_SCHEMA: &str = r#"{
  "description": "Ends the execution at once, resolved or failed",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "status": {"enum": ["resolved", "failed"], "default": "resolved", "description": "how the execution ends"},
    "endStatus": {"enum": [1, -1], "description": "NocoBase's form: 1 resolved, -1 failed; may not contradict status"}
  }
}"#;

/// The config: hookflow's `status` or NocoBase's `endStatus` (or both, agreeing).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Config {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    end_status: Option<i64>,
}

export_node!(Info::new("end").version(env!("CARGO_PKG_VERSION")).config_schema(CONFIG_SCHEMA), run);

fn run(call: Call) -> Result<Outcome, Error> {
    let config: Config = call.config()?;
    let by_name = match config.status.as_deref() {
        None => None,
        Some("resolved") => Some(EndStatus::Resolved),
        Some("failed") => Some(EndStatus::Failed),
        Some(other) => return Err(fail(format!("status: expected \"resolved\" or \"failed\", got {other:?}"))),
    };
    let by_code = match config.end_status {
        None => None,
        Some(1) => Some(EndStatus::Resolved),
        Some(-1) => Some(EndStatus::Failed),
        Some(other) => return Err(fail(format!("endStatus: expected 1 (resolved) or -1 (failed), got {other}"))),
    };
    let status = match (by_name, by_code) {
        (Some(name), Some(code)) if name != code => {
            return Err(fail("endStatus: contradicts status; give one of them"));
        }
        (Some(status), _) | (None, Some(status)) => status,
        (None, None) => EndStatus::Resolved,
    };
    let name = if status == EndStatus::Resolved { "resolved" } else { "failed" };
    Ok(Outcome::end(status).with_output(&json!({ "status": name })))
}
