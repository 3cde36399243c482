//! What one custom node component costs: its size, its cold compile (no cache) and one call (a
//! fresh instance + the call), for comparing nodes written in different languages.
//!
//! `cargo run --release -p hookflow-bench --bin component -- FILE.wasm [CONFIG_JSON] [ITERATIONS] [BODY_JSON]`

use std::time::{Duration, Instant};

use hookflow_plugin::{HostConfig, PluginHost};
use hookflow_workflow::{NodeCall, NodeRunner, OwnedContext};
use serde_json::json;

fn main() {
    let mut args = std::env::args().skip(1);
    let file =
        args.next().unwrap_or_else(|| panic!("usage: component FILE.wasm [CONFIG_JSON] [ITERATIONS] [BODY_JSON]"));
    let config = args.next().unwrap_or_else(|| "{}".into());
    let iterations: u32 = args.next().and_then(|n| n.parse().ok()).unwrap_or(200);
    // The request body the context carries: BODY_JSON, or a small order.
    let body = match args.next() {
        Some(text) => serde_json::from_str(&text).unwrap_or_else(|e| panic!("BODY_JSON is not JSON: {e}")),
        None => json!({"status": "paid", "order": 42}),
    };
    let wasm = std::fs::read(&file).unwrap_or_else(|e| panic!("cannot read {file}: {e}"));
    let host = PluginHost::new(HostConfig { max_instances: 4, ..HostConfig::default() })
        .unwrap_or_else(|e| panic!("cannot start the plugin host: {e}"));

    let started = Instant::now();
    let plugin = host.install("bench-node", &wasm).unwrap_or_else(|e| panic!("{e}"));
    let compile = started.elapsed();

    let context = OwnedContext::new("bench", json!({"headers": {}, "query": {}, "body": body}));
    let call =
        NodeCall { execution_id: "bench", node_key: "n", config: &config, context: context.context(), deadline: None };
    let first = Instant::now();
    host.run("bench-node", &call).unwrap_or_else(|e| panic!("node call failed: {e}"));
    let first = first.elapsed();
    for _ in 0..iterations.min(20) {
        host.run("bench-node", &call).unwrap_or_else(|e| panic!("node call failed: {e}"));
    }
    let started = Instant::now();
    for _ in 0..iterations {
        host.run("bench-node", &call).unwrap_or_else(|e| panic!("node call failed: {e}"));
    }
    let per_call = started.elapsed() / iterations.max(1);

    println!("component:       {file} ({} v{})", plugin.info.name, plugin.info.version);
    println!("size:            {:.1} KiB", wasm.len() as f64 / 1024.0);
    println!("cold compile:    {:.0} ms", millis(compile));
    println!("first call:      {:.2} ms", millis(first));
    println!("per call:        {:.1} µs (mean of {iterations}, fresh instance each)", per_call.as_secs_f64() * 1e6);
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}
