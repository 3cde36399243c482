//! The built-in `response` node: answers the caller of a synchronous workflow with a status code,
//! headers and a body, then ends the execution (or, with `"continue": true`, lets it go on).

use serde_json::{Value, json};

wit_bindgen::generate!({ world: "node", path: "../../wit" });

const CONFIG_SCHEMA: &str = r#"{
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

struct Response;

impl Guest for Response {
    fn describe() -> NodeInfo {
        NodeInfo {
            name: "response".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            config_schema: CONFIG_SCHEMA.into(),
            branches: Vec::new(),
            may_respond: true,
        }
    }

    fn run(invocation: Invocation) -> Result<Outcome, NodeError> {
        let config: Value =
            serde_json::from_str(&invocation.config).map_err(|e| error(format!("config is not JSON: {e}")))?;
        let status = status_code(config.get("statusCode"))?;
        let mut headers = configured_headers(config.get("headers"))?;
        let body = config.get("body").cloned().unwrap_or(Value::Null);
        let has_content_type = headers.iter().any(|h| h.name.eq_ignore_ascii_case("content-type"));
        let bytes = match &body {
            Value::Null => Vec::new(),
            Value::String(text) => {
                if !has_content_type {
                    headers.push(header("content-type", "text/plain; charset=utf-8"));
                }
                text.clone().into_bytes()
            }
            other => {
                if !has_content_type {
                    headers.push(header("content-type", "application/json"));
                }
                other.to_string().into_bytes()
            }
        };
        let keep_running = match config.get("continue") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(flag)) => *flag,
            Some(other) => return Err(error(format!("continue: expected a boolean, got {other}"))),
        };
        let output = json!({
            "statusCode": status,
            "headers": headers.iter().map(|h| json!({"name": h.name, "value": h.value})).collect::<Vec<_>>(),
            "body": body,
        });
        let reply = Reply { status, headers, body: bytes };
        let directive = if keep_running { Directive::RespondAndContinue(reply) } else { Directive::Respond(reply) };
        Ok(Outcome { output: output.to_string(), directive })
    }
}

fn status_code(value: Option<&Value>) -> Result<u16, NodeError> {
    let code = match value {
        None | Some(Value::Null) => return Ok(200),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    match code {
        Some(code @ 100..=599) => Ok(code as u16),
        _ => Err(error(format!(
            "statusCode: expected an integer from 100 to 599, got {}",
            value.map_or(Value::Null, Clone::clone)
        ))),
    }
}

fn configured_headers(value: Option<&Value>) -> Result<Vec<Header>, NodeError> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(error("headers: expected a list of {\"name\", \"value\"}".into())),
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let name = item.get("name").and_then(Value::as_str).unwrap_or_default();
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(error(format!("headers[{index}].name: {name:?} is not a valid header name")));
            }
            let value = match item.get("value") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(text)) => text.clone(),
                Some(other) => other.to_string(),
            };
            if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(error(format!("headers[{index}].value: line breaks are not allowed in a header value")));
            }
            Ok(header(name, &value))
        })
        .collect()
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn header(name: &str, value: &str) -> Header {
    Header { name: name.into(), value: value.into() }
}

fn error(message: String) -> NodeError {
    NodeError { message }
}

export!(Response);
