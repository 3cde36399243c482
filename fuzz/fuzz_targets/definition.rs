//! The definition parser and validator, against the real built-in node components.
#![no_main]

use std::sync::OnceLock;

use hookflow_plugin::{HostConfig, PluginHost};
use hookflow_workflow::{compile, parse_workflow};

fn host() -> &'static PluginHost {
    static HOST: OnceLock<PluginHost> = OnceLock::new();
    HOST.get_or_init(|| {
        let cache_dir = std::env::temp_dir().join("hookflow-fuzz-cache");
        let config = HostConfig { cache_dir: Some(cache_dir), max_instances: 4, ..HostConfig::default() };
        PluginHost::new(config).unwrap_or_else(|e| panic!("plugin host: {e}"))
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(workflow) = parse_workflow(text) {
        let _ = compile(&workflow, host());
    }
});
