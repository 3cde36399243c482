//! A hookflow node written in Rust: scores an order and picks the `high` or `low` branch.

use hookflow_node::{Call, Error, Info, Outcome, export_node, fail, log};
use serde::Deserialize;
use serde_json::json;

const CONFIG_SCHEMA: &str = r#"{"type": "object", "required": ["order"], "properties": {
  "threshold": {"type": "number", "default": 100, "description": "score from which an order is `high`"},
  "order": {"description": "the order, usually {{$context.body}}: {items: [{price, qty}], vip: bool}"}}}"#;

#[derive(Deserialize)]
struct Config {
    #[serde(default = "default_threshold")]
    threshold: f64,
    order: Order,
}

#[derive(Deserialize)]
struct Order {
    #[serde(default)]
    items: Vec<serde_json::Value>,
    #[serde(default)]
    vip: bool,
}

fn default_threshold() -> f64 {
    100.0
}

fn score(call: Call) -> Result<Outcome, Error> {
    let config: Config = call.config()?;
    let mut score = 0.0;
    for (index, item) in config.order.items.iter().enumerate() {
        let price = item.get("price").and_then(|price| price.as_f64());
        let qty = item.get("qty").map_or(Some(1), |qty| qty.as_u64());
        let (Some(price), Some(qty)) = (price, qty) else {
            return Err(fail(format!("order.items[{index}]: expected {{price, qty}}")));
        };
        score += price * qty as f64;
    }
    if config.order.vip {
        score *= 1.5;
    }
    let branch = if score >= config.threshold { "high" } else { "low" };
    log::info(&format!("order scored {score:.2}: {branch}"));
    Ok(Outcome::branch(branch).with_output(&json!({"score": score, "branch": branch})))
}

export_node!(
    Info::new("scorer").version(env!("CARGO_PKG_VERSION")).config_schema(CONFIG_SCHEMA).branches(&["high", "low"]),
    score
);
