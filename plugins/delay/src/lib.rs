//! The built-in `delay` node (NocoBase's "Delay"): the execution waits this long before its next
//! node. Asynchronous workflows only. This node reads the duration (its output,
//! `{"durationMs"}`); the engine keeps the job `pending` in its store until the time is up, so the
//! wait survives a restart, and no worker is held while it waits.

use hookflow_node::{Call, Error, Info, Outcome, export_node, fail};
use serde::Deserialize;
use serde_json::{Value, json};

/// The longest wait: 366 days.
const MAX_MS: u64 = 366 * 24 * 3600 * 1000;

const CONFIG_SCHEMA: &str = r#"{
  "description": "Waits, durably, before the next node (async workflows)",
  "type": "object",
  "additionalProperties": false,
  "required": ["duration"],
  "properties": {
    "duration": {"oneOf": [
      {"type": "integer", "minimum": 0, "description": "milliseconds"},
      {"type": "string", "pattern": "^[0-9]+(ms|s|m|h|d)$", "description": "a number with a unit: 500ms, 30s, 5m, 2h, 1d"}
    ], "description": "how long to wait, at most 366 days"}
  }
}"#;

/// The config.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Milliseconds, or a number with a unit.
    duration: Value,
}

export_node!(Info::new("delay").version(env!("CARGO_PKG_VERSION")).config_schema(CONFIG_SCHEMA), run);

fn run(call: Call) -> Result<Outcome, Error> {
    let config: Config = call.config()?;
    let millis = duration_ms(&config.duration)?;
    Ok(Outcome::continue_with(&json!({ "durationMs": millis })))
}

/// Reads a duration: whole milliseconds, or `<n>ms|s|m|h|d`.
fn duration_ms(duration: &Value) -> Result<u64, Error> {
    let expected = || {
        fail(format!(
            "duration: expected whole milliseconds or a number with a unit (500ms, 30s, 5m, 2h, 1d), got {duration}"
        ))
    };
    let millis = match duration {
        Value::Number(number) => number.as_u64().ok_or_else(expected)?,
        Value::String(text) => {
            let text = text.trim();
            let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
            let count: u64 = text[..digits].parse().map_err(|_| expected())?;
            let unit: u64 = match &text[digits..] {
                "ms" => 1,
                "s" => 1000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                _ => return Err(expected()),
            };
            count.saturating_mul(unit)
        }
        _ => return Err(expected()),
    };
    if millis > MAX_MS {
        return Err(fail(format!("duration: {millis} ms is longer than the longest wait, 366 days")));
    }
    Ok(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_read_with_their_units() {
        assert_eq!(duration_ms(&json!(1500)).unwrap(), 1500);
        assert_eq!(duration_ms(&json!("500ms")).unwrap(), 500);
        assert_eq!(duration_ms(&json!("30s")).unwrap(), 30_000);
        assert_eq!(duration_ms(&json!("5m")).unwrap(), 300_000);
        assert_eq!(duration_ms(&json!("2h")).unwrap(), 7_200_000);
        assert_eq!(duration_ms(&json!("1d")).unwrap(), 86_400_000);
    }

    #[test]
    fn bad_durations_name_the_field() {
        for bad in [json!(-5), json!(1.5), json!("ten seconds"), json!("5 weeks"), json!("s"), json!(null)] {
            let error = duration_ms(&bad).unwrap_err();
            assert!(error.message().starts_with("duration: expected"), "{bad}: {error}");
        }
        assert!(duration_ms(&json!("400d")).unwrap_err().message().contains("366 days"));
    }
}
