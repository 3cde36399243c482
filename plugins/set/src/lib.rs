//! The built-in `set` node: builds an object from templates, so later nodes read well-named fields
//! (`{{$jobsMapByNodeKey.<key>.<field>}}`) instead of long paths into the request.

use hookflow_node::{Call, Error, Info, Outcome, export_node};
use serde::Deserialize;
use serde_json::{Map, Value};

const CONFIG_SCHEMA: &str = r#"{
  "description": "Outputs an object of named values, each a template or any JSON",
  "type": "object",
  "additionalProperties": false,
  "required": ["values"],
  "properties": {
    "values": {"type": "object", "additionalProperties": true,
      "description": "the output object; each value may be a template such as {{$context.body.order.id}} or any JSON"}
  }
}"#;

/// The config.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The output, templates already resolved by the engine.
    values: Map<String, Value>,
}

export_node!(Info::new("set").version(env!("CARGO_PKG_VERSION")).config_schema(CONFIG_SCHEMA), run);

fn run(call: Call) -> Result<Outcome, Error> {
    let config: Config = call.config()?;
    Ok(Outcome::continue_with(&config.values))
}
