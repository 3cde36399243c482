//! The built-in `loop` node (NocoBase's "Loop"): runs its `body` branch once per item of its
//! target. The engine does the iterating: this node turns the target into the list of items
//! (its output, `{"items", "length"}`), and the executor runs `body` once per item with
//! `{{$scopes.<loop key>.item}}`, `.index` and `.length` set.

use hookflow_node::{Call, Error, Info, Outcome, export_node, fail};
use serde::Deserialize;
use serde_json::{Value, json};

/// Most iterations one loop node may ask for; a larger target is refused, not truncated.
const MAX_ITEMS: u64 = 100_000;

const CONFIG_SCHEMA: &str = r#"{
  "type": "object",
  "additionalProperties": false,
  "required": ["target"],
  "properties": {
    "target": {"description": "what to loop over, usually a template such as {{$context.body.items}}: an array runs the body once per item; a whole number n runs it n times, the item being the index; null runs it zero times; any other value runs it once, with that value as the item. At most 100000 iterations."}
  }
}"#;

/// The config.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The resolved target.
    target: Value,
}

export_node!(
    Info::new("loop").version(env!("CARGO_PKG_VERSION")).config_schema(CONFIG_SCHEMA).branches(&["body"]),
    run
);

fn run(call: Call) -> Result<Outcome, Error> {
    let config: Config = call.config()?;
    let items = items(config.target)?;
    let length = items.len();
    Ok(Outcome::branch("body").with_output(&json!({ "items": items, "length": length })))
}

/// The items a target loops over.
fn items(target: Value) -> Result<Vec<Value>, Error> {
    let items = match target {
        Value::Null => Vec::new(),
        Value::Array(items) => items,
        Value::Number(number) => {
            let count = number.as_u64().ok_or_else(|| {
                fail(format!("target: a number target is a count of iterations; {number} is not a whole number ≥ 0"))
            })?;
            if count > MAX_ITEMS {
                return Err(too_many(count));
            }
            (0..count).map(Value::from).collect()
        }
        other => vec![other],
    };
    match u64::try_from(items.len()) {
        Ok(count) if count <= MAX_ITEMS => Ok(items),
        _ => Err(too_many(items.len() as u64)),
    }
}

fn too_many(count: u64) -> Error {
    fail(format!("target: {count} iterations asked for; one loop node runs at most {MAX_ITEMS}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_become_items() {
        assert_eq!(items(json!([1, "a"])).unwrap(), vec![json!(1), json!("a")]);
        assert_eq!(items(json!(3)).unwrap(), vec![json!(0), json!(1), json!(2)]);
        assert_eq!(items(Value::Null).unwrap(), Vec::<Value>::new());
        assert_eq!(items(json!({"a": 1})).unwrap(), vec![json!({"a": 1})]);
        assert_eq!(items(json!("text")).unwrap(), vec![json!("text")]);
    }

    #[test]
    fn bad_counts_are_refused() {
        assert!(items(json!(-1)).unwrap_err().message().contains("not a whole number"));
        assert!(items(json!(1.5)).unwrap_err().message().contains("not a whole number"));
        assert!(items(json!(100_001)).unwrap_err().message().contains("at most 100000"));
    }
}
