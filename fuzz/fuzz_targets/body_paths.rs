//! The body path extractor: paths of an example body, and selecting a path from a body. Every
//! listed path must parse back and select a value.
#![no_main]

use hookflow_workflow::example_paths;
use hookflow_workflow::template::{parse_value_path, select};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse_value_path(&text).map(|path| select(&serde_json::Value::Null, &path));
    let Ok(example) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    for path in example_paths(&example) {
        let steps = parse_value_path(&path).unwrap_or_else(|e| panic!("listed path {path:?} does not parse: {e}"));
        let _ = select(&example, &steps);
    }
});
