//! The built-in `condition` node: NocoBase's basic calculation engine, in branch mode (pick
//! branch `true` or `false`) or in `rejectOnFalse` mode (continue when true, fail when false).

mod calculate;

use serde_json::{Value, json};

wit_bindgen::generate!({ world: "node", path: "../../wit" });

const CONFIG_SCHEMA: &str = r##"{
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

struct Condition;

impl Guest for Condition {
    fn describe() -> NodeInfo {
        NodeInfo {
            name: "condition".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            config_schema: CONFIG_SCHEMA.into(),
            branches: vec!["true".into(), "false".into()],
            may_respond: false,
        }
    }

    fn run(invocation: Invocation) -> Result<Outcome, NodeError> {
        let config: Value =
            serde_json::from_str(&invocation.config).map_err(|e| error(format!("config is not JSON: {e}")))?;
        match config.get("engine") {
            None | Some(Value::Null) => {}
            Some(Value::String(engine)) if engine == "basic" => {}
            Some(other) => return Err(error(format!("engine {other} is not supported; use \"basic\""))),
        }
        let reject_on_false = match config.get("rejectOnFalse") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(flag)) => *flag,
            Some(other) => return Err(error(format!("rejectOnFalse: expected a boolean, got {other}"))),
        };
        let result = calculate::evaluate(config.get("calculation")).map_err(|e| error(e.0))?;
        let directive = match (reject_on_false, result) {
            (true, true) => Directive::Continue,
            (true, false) => Directive::End(EndStatus::Failed),
            (false, branch) => Directive::Branch(branch.to_string()),
        };
        Ok(Outcome { output: json!({ "result": result }).to_string(), directive })
    }
}

fn error(message: String) -> NodeError {
    NodeError { message }
}

export!(Condition);
