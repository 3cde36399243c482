//! One call of a node: its resolved config and the execution context.

use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{Error, bindings, fail};

/// What a node is called with.
#[derive(Debug, Clone)]
pub struct Call {
    node_key: String,
    config: Value,
    /// Where the context comes from.
    source: Source,
    /// The whole context, parsed on first use (many nodes never read it).
    context: OnceLock<Value>,
}

/// Where a call's context comes from.
#[derive(Debug, Clone)]
enum Source {
    /// The engine reads it out a path at a time through the `context` import: it sends an empty
    /// `invocation.context` to a component that imports `context`, as every SDK node does.
    Engine,
    /// The whole context as text, from an engine that sends it in `invocation.context`.
    Text(String),
    /// Given to [`Call::new`].
    Given,
}

impl Call {
    pub(crate) fn parse(invocation: bindings::Invocation) -> Result<Call, Error> {
        let config = serde_json::from_str(&invocation.config).map_err(|e| fail(format!("config is not JSON: {e}")))?;
        let source = if invocation.context.is_empty() { Source::Engine } else { Source::Text(invocation.context) };
        Ok(Call { node_key: invocation.node_key, config, source, context: OnceLock::new() })
    }

    /// A call made by hand, for testing a node's function natively (`cargo test`).
    pub fn new(node_key: &str, config: Value, context: Value) -> Call {
        Call { node_key: node_key.into(), config, source: Source::Given, context: OnceLock::from(context) }
    }

    /// The node's key in the workflow.
    pub fn node_key(&self) -> &str {
        &self.node_key
    }

    /// The config as a typed value; an error names the faulty field, e.g.
    /// `config.threshold: invalid type: string "x", expected f64`.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_path_to_error::deserialize(&self.config).map_err(|error| {
            let path = error.path().to_string();
            let place = if path == "." { "config".to_string() } else { format!("config.{path}") };
            fail(format!("{place}: {}", error.inner()))
        })
    }

    /// The config as JSON.
    pub fn config_value(&self) -> &Value {
        &self.config
    }

    /// The whole execution context: `$context` (the trigger data), `$jobsMapByNodeKey`,
    /// `$scopes`, `$execution`, `$system`. This asks the engine for all of it: a node that reads
    /// a few values of a large request is cheaper with [`Call::get`].
    pub fn context(&self) -> &Value {
        // The engine always sends a JSON object; anything else reads as `null`.
        self.context.get_or_init(|| match &self.source {
            Source::Engine => serde_json::from_str(&bindings::hookflow::node::context::all()).unwrap_or(Value::Null),
            Source::Text(text) => serde_json::from_str(text).unwrap_or(Value::Null),
            Source::Given => Value::Null,
        })
    }

    /// A value of the context by path, as templates write it: `$context.body.order.id`,
    /// `$jobsMapByNodeKey.score.total`, `$context.body.items[0].sku`, `$context.body["a.b"]`;
    /// `None` when the path reaches nothing. The engine hands over only that value, so reading
    /// one field of a large request costs that field.
    ///
    /// In a call made with [`Call::new`] (and from engines that send the whole context), paths
    /// follow [`lookup`]: a subset of the template syntax (no single quotes, no spaces inside
    /// brackets, no mapping over arrays).
    pub fn get(&self, path: &str) -> Option<Value> {
        match &self.source {
            Source::Engine => serde_json::from_str(&bindings::hookflow::node::context::get(path)?).ok(),
            Source::Text(_) | Source::Given => lookup(self.context(), path).cloned(),
        }
    }
}

/// Follows a path (`a.b[0]["c.d"]`) into a JSON value.
pub fn lookup<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    let mut current = value;
    let mut rest = path.trim();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            rest = after;
        }
        if let Some(after) = rest.strip_prefix('[') {
            let end = if after.starts_with('"') { closing_quote(after)? + 1 } else { after.find(']')? };
            let inside = &after[..end];
            current = match inside.strip_prefix('"').and_then(|quoted| quoted.strip_suffix('"')) {
                Some(key) => current.get(key.replace("\\\"", "\"").replace("\\\\", "\\").as_str())?,
                None => match current {
                    Value::Array(items) => items.get(inside.trim().parse::<usize>().ok()?)?,
                    other => other.get(inside)?,
                },
            };
            rest = after[end..].strip_prefix(']')?;
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            current = current.get(&rest[..end])?;
            rest = &rest[end..];
        }
    }
    Some(current)
}

/// Index of the quote that closes the string `text` starts with.
fn closing_quote(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (index, byte) in text.bytes().enumerate().skip(1) {
        match byte {
            b'\\' if !escaped => escaped = true,
            b'"' if !escaped => return Some(index),
            _ => escaped = false,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn paths() {
        let context = json!({"$context": {"body": {"items": [{"sku": "A"}], "a.b": {"c": 1}, "n": null}}});
        assert_eq!(lookup(&context, "$context.body.items[0].sku"), Some(&json!("A")));
        assert_eq!(lookup(&context, "$context.body[\"a.b\"].c"), Some(&json!(1)));
        assert_eq!(lookup(&context, "$context.body.n"), Some(&json!(null)));
        assert_eq!(lookup(&context, "$context.body.items[1]"), None);
        assert_eq!(lookup(&context, "$context.body.missing.deeper"), None);
        assert_eq!(lookup(&context, "$context.body.items[x"), None);
    }

    #[test]
    fn typed_config_errors_name_the_field() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Config {
            limits: Limits,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Limits {
            max: u32,
        }
        let call = Call::new("n", json!({"limits": {"max": "ten"}}), json!({}));
        let error = call.config::<Config>().unwrap_err();
        assert!(error.message().starts_with("config.limits.max: invalid type: string \"ten\""), "{error}");
        let missing = Call::new("n", json!({}), json!({})).config::<Config>().unwrap_err();
        assert!(missing.message().starts_with("config: missing field `limits`"), "{missing}");
    }
}
