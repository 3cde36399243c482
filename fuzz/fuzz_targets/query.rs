//! The qs-style query parser (also used for form bodies and `hookflow parse query`): never panics,
//! always gives an object, and — where node and the reference `qs` are installed
//! (`npm ci --prefix tests/qs`) — gives exactly what `qs.parse` gives.
#![no_main]

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

/// `node tests/qs/parse.js`, answering one query a line.
struct Reference {
    _child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

/// The reference, started once; `None` where node or `tests/qs/node_modules` is missing.
fn reference() -> Option<&'static Mutex<Reference>> {
    static REFERENCE: OnceLock<Option<Mutex<Reference>>> = OnceLock::new();
    REFERENCE
        .get_or_init(|| {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/qs");
            if !dir.join("node_modules/qs").exists() {
                eprintln!("query: tests/qs is not installed; fuzzing without comparing to qs");
                return None;
            }
            let mut child = Command::new("node")
                .arg("parse.js")
                .current_dir(&dir)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .ok()?;
            let input = child.stdin.take()?;
            let output = BufReader::new(child.stdout.take()?);
            Some(Mutex::new(Reference { _child: child, input, output }))
        })
        .as_ref()
}

fn qs_parse(reference: &Mutex<Reference>, query: &str) -> Value {
    let mut reference = reference.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let line = format!("{}\n", Value::String(query.to_string()));
    reference.input.write_all(line.as_bytes()).expect("node takes the query");
    let mut answer = String::new();
    reference.output.read_line(&mut answer).expect("node answers");
    serde_json::from_str(&answer).expect("node answers JSON")
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = hookflow_server::http::ingress::parse_query(&text);
    assert!(parsed.is_object());
    if let Some(reference) = reference() {
        let expected = qs_parse(reference, &text);
        assert_eq!(parsed, expected, "{text:?}: hookflow and qs differ");
    }
    let _ = hookflow_server::http::ingress::parse_query_example(&text);
});
