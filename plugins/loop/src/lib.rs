//! The built-in `loop` node (NocoBase's "Loop"): runs its `body` branch once per item of its
//! target. The engine does the iterating: this node turns the target into the list of items
//! (its output, `{"items", "length"}`, recorded in its job), and the executor runs `body` once per
//! item with `{{$scopes.<loop key>.item}}`, `.index`, `.sequence` (index + 1) and `.length` set;
//! later nodes see `{{$jobsMapByNodeKey.<loop key>.length}}`.

use hookflow_node::{Call, Error, Info, Outcome, export_node, fail};
use serde::Deserialize;
use serde_json::{Value, json};

/// Most iterations one loop node may ask for; a larger target is refused, not truncated.
const MAX_ITEMS: u64 = 100_000;

const CONFIG_SCHEMA: &str = r#"{
  "description": "Runs its body branch once per item of an array (or n times)",
  "type": "object",
  "additionalProperties": false,
  "required": ["target"],
  "properties": {
    "target": {"description": "what to loop over, usually a template such as {{$context.body.items}}: an array runs the body once per item; a number n runs it n times (rounded down), the item being the index; null runs it zero times; any other value runs it once, with that value as the item. At most 100000 iterations."}
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
            // NocoBase rounds a fractional count down.
            let count = match (number.as_u64(), number.as_f64()) {
                (Some(count), _) => count,
                (None, Some(float)) if float >= 0.0 && float.is_finite() => float.floor() as u64,
                _ => {
                    return Err(fail(format!(
                        "target: a number target is a count of iterations; {number} is not a number ≥ 0"
                    )));
                }
            };
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
        assert!(items(json!(-1)).unwrap_err().message().contains("is not a number ≥ 0"));
        assert_eq!(items(json!(2.7)).unwrap(), vec![json!(0), json!(1)], "rounded down, as NocoBase does");
        assert!(items(json!(100_001)).unwrap_err().message().contains("at most 100000"));
    }
}
