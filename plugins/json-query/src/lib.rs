//! The built-in `json-query` node (NocoBase's "JSON query"): selects and reshapes JSON with a
//! JMESPath expression; its output is the expression's result.

use hookflow_node::{Call, Error, Info, Outcome, export_node, fail};
use serde::Deserialize;
use serde_json::Value;

const CONFIG_SCHEMA: &str = r#"{
  "description": "A JMESPath expression over the context or a value",
  "type": "object",
  "additionalProperties": false,
  "required": ["expression"],
  "properties": {
    "expression": {"type": "string", "description": "a JMESPath expression, e.g. items[?qty > `1`].sku"},
    "source": {"description": "the JSON to query, usually a template such as {{$context.body}}; default: the whole context ($context, $jobsMapByNodeKey, ...)"}
  }
}"#;

/// The config.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The JMESPath expression.
    expression: String,
    /// What it runs on (absent: the whole context; `null` is queried as `null`).
    #[serde(default)]
    #[allow(dead_code, reason = "read from the raw config, where absent and null differ")]
    source: Option<Value>,
}

export_node!(Info::new("json-query").version(env!("CARGO_PKG_VERSION")).config_schema(CONFIG_SCHEMA), run);

fn run(call: Call) -> Result<Outcome, Error> {
    let config: Config = call.config()?;
    let expression = jmespath::compile(&config.expression).map_err(|e| fail(format!("expression: {e}")))?;
    let source = call.config_value().get("source").unwrap_or_else(|| call.context());
    let data = jmespath::Variable::from_serializable(source).map_err(|e| fail(format!("source: {e}")))?;
    let result = expression.search(data).map_err(|e| fail(format!("expression: {e}")))?;
    let output = serde_json::to_value(&*result).map_err(|e| fail(format!("result: {e}")))?;
    Ok(Outcome::continue_with(&output))
}
