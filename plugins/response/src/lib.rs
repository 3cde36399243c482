//! The built-in `response` node: answers the caller of a synchronous workflow with a status code,
//! headers and a body, then ends the execution (or, with `"continue": true`, lets it go on).

use hookflow_node::{Call, Error, Info, Outcome, Reply, export_node, fail};
use serde_json::{Value, json};

const CONFIG_SCHEMA: &str = r#"{
  "description": "Answers the caller of a sync workflow: status, headers and body",
  "type": "object",
  "properties": {
    "statusCode": {"type": "integer", "minimum": 100, "maximum": 599, "default": 200},
    "headers": {"type": "array", "items": {"type": "object", "required": ["name", "value"],
      "properties": {"name": {"type": "string"}, "value": {}}}},
    "body": {"description": "any JSON; a string is sent as text/plain; charset=utf-8, anything else as application/json, unless a Content-Type header is configured"},
    "continue": {"type": "boolean", "default": false,
      "description": "answer at once and let the execution go on"}
  }
}"#;

export_node!(Info::new("response").version(env!("CARGO_PKG_VERSION")).config_schema(CONFIG_SCHEMA).may_respond(), run);

fn run(call: Call) -> Result<Outcome, Error> {
    let config = call.config_value();
    let status = status_code(config.get("statusCode"))?;
    let mut headers = configured_headers(config.get("headers"))?;
    let body = config.get("body").cloned().unwrap_or(Value::Null);
    let has_content_type = headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
    let bytes = match &body {
        Value::Null => Vec::new(),
        Value::String(text) => {
            if !has_content_type {
                headers.push(("content-type".into(), "text/plain; charset=utf-8".into()));
            }
            text.clone().into_bytes()
        }
        other => {
            if !has_content_type {
                headers.push(("content-type".into(), "application/json".into()));
            }
            other.to_string().into_bytes()
        }
    };
    let keep_running = match config.get("continue") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(other) => return Err(fail(format!("continue: expected a boolean, got {other}"))),
    };
    let output = json!({
        "statusCode": status,
        "headers": headers.iter().map(|(name, value)| json!({"name": name, "value": value})).collect::<Vec<_>>(),
        "body": body,
    });
    let reply = Reply { status, headers, body: bytes };
    let outcome = if keep_running { Outcome::respond_and_continue(reply) } else { Outcome::respond(reply) };
    Ok(outcome.with_output(&output))
}

fn status_code(value: Option<&Value>) -> Result<u16, Error> {
    let code = match value {
        None | Some(Value::Null) => return Ok(200),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    match code {
        Some(code @ 100..=599) => Ok(code as u16),
        _ => Err(fail(format!(
            "statusCode: expected an integer from 100 to 599, got {}",
            value.map_or(Value::Null, Clone::clone)
        ))),
    }
}

fn configured_headers(value: Option<&Value>) -> Result<Vec<(String, String)>, Error> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(fail("headers: expected a list of {\"name\", \"value\"}")),
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let name = item.get("name").and_then(Value::as_str).unwrap_or_default();
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(fail(format!("headers[{index}].name: {name:?} is not a valid header name")));
            }
            let value = match item.get("value") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(text)) => text.clone(),
                Some(other) => other.to_string(),
            };
            if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(fail(format!("headers[{index}].value: line breaks are not allowed in a header value")));
            }
            Ok((name.to_string(), value))
        })
        .collect()
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
