//! The built-in `http-request` node (NocoBase's "HTTP request"): one outbound HTTP call through
//! `wasi:http`, output `{status, headers, data}`. The engine lets a request through only to the
//! hosts the operator granted this node type (`hookflow serve --allow-outbound
//! http-request=api.example.com`); without a grant every request is refused.

mod request;
mod send;

use hookflow_node::{Call, EndStatus, Error, Info, Outcome, export_node, fail};
use serde_json::json;

use request::{Config, Prepared};

const CONFIG_SCHEMA: &str = r#"{
  "description": "One outbound HTTP call to a host the operator allows",
  "type": "object",
  "additionalProperties": false,
  "required": ["url"],
  "properties": {
    "method": {"type": "string", "default": "POST", "description": "GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS"},
    "url": {"type": "string", "description": "an absolute http:// or https:// URL; may hold templates"},
    "headers": {"type": "array", "items": {"type": "object", "required": ["name", "value"],
      "properties": {"name": {"type": "string"}, "value": {}}}, "description": "request headers"},
    "params": {"type": "array", "items": {"type": "object", "required": ["name", "value"],
      "properties": {"name": {"type": "string"}, "value": {}}}, "description": "query parameters, appended to the URL"},
    "contentType": {"type": "string", "default": "application/json",
      "description": "application/json (data as JSON), application/x-www-form-urlencoded (data an object or a list of {name, value}), or any other type (data as text)"},
    "data": {"description": "the request body; none when absent or null, and never for GET or HEAD"},
    "timeout": {"type": "integer", "minimum": 1, "default": 5000, "description": "milliseconds for the whole call"},
    "onlyData": {"type": "boolean", "default": false, "description": "output only the response body"},
    "ignoreFail": {"type": "boolean", "default": false,
      "description": "go on when the call fails or answers outside 2xx (output {error} or {status, headers, data})"}
  }
}"#;

export_node!(Info::new("http-request").version(env!("CARGO_PKG_VERSION")).config_schema(CONFIG_SCHEMA), run);

fn run(call: Call) -> Result<Outcome, Error> {
    let config: Config = call.config()?;
    let prepared = Prepared::new(&config)?;
    match send::send(&prepared) {
        Ok(response) => {
            let status = response.status;
            let output = if config.only_data {
                response.data
            } else {
                json!({ "status": response.status, "headers": response.headers, "data": response.data })
            };
            if (200..300).contains(&status) || config.ignore_fail {
                Ok(Outcome::continue_with(&output))
            } else {
                Ok(Outcome::end(EndStatus::Failed).with_output(&output))
            }
        }
        Err(why) if config.ignore_fail => Ok(Outcome::continue_with(&json!({ "error": why }))),
        Err(why) => Err(fail(why)),
    }
}
