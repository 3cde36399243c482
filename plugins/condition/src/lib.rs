//! The built-in `condition` node: NocoBase's basic calculation engine, in branch mode (pick
//! branch `true` or `false`) or in `rejectOnFalse` mode (continue when true, fail when false).

mod calculate;

use hookflow_node::{Call, EndStatus, Error, Info, Outcome, export_node, fail};
use serde_json::{Value, json};

const CONFIG_SCHEMA: &str = r##"{
  "description": "Compares values and picks branch true or false, or fails the execution when false",
  "type": "object",
  "properties": {
    "rejectOnFalse": {"type": "boolean", "default": false,
      "description": "true: continue when the calculation is true and fail the execution when it is false; false: pick branch \"true\" or \"false\""},
    "engine": {"const": "basic"},
    "calculation": {"type": "object", "required": ["group"],
      "properties": {"group": {"$ref": "#/$defs/group"}}}
  },
  "$defs": {
    "group": {"type": "object", "properties": {
      "type": {"enum": ["and", "or"], "default": "and"},
      "calculations": {"type": "array", "items": {"oneOf": [
        {"type": "object", "required": ["group"], "properties": {"group": {"$ref": "#/$defs/group"}}},
        {"type": "object", "required": ["calculator"], "properties": {
          "calculator": {"enum": ["equal", "==", "notEqual", "!=", "gt", ">", "gte", ">=", "lt", "<",
            "lte", "<=", "includes", "notIncludes", "startsWith", "notStartsWith", "endsWith",
            "notEndsWith", "empty", "notEmpty", "in", "notIn"]},
          "operands": {"type": "array", "maxItems": 2}}}
      ]}}
    }}
  }
}"##;

export_node!(
    Info::new("condition").version(env!("CARGO_PKG_VERSION")).config_schema(CONFIG_SCHEMA).branches(&["true", "false"]),
    run
);

fn run(call: Call) -> Result<Outcome, Error> {
    let config = call.config_value();
    match config.get("engine") {
        None | Some(Value::Null) => {}
        Some(Value::String(engine)) if engine == "basic" => {}
        Some(other) => return Err(fail(format!("engine {other} is not supported; use \"basic\""))),
    }
    let reject_on_false = match config.get("rejectOnFalse") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(other) => return Err(fail(format!("rejectOnFalse: expected a boolean, got {other}"))),
    };
    let result = calculate::evaluate(config.get("calculation")).map_err(|e| fail(e.0))?;
    let outcome = match (reject_on_false, result) {
        (true, true) => Outcome::next(),
        (true, false) => Outcome::end(EndStatus::Failed),
        (false, branch) => Outcome::branch(if branch { "true" } else { "false" }),
    };
    Ok(outcome.with_output(&json!({ "result": result })))
}
