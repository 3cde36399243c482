//! The qs-style query parser (also used for form bodies and `hookflow parse query`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = hookflow_server::http::ingress::parse_query(&text);
    assert!(parsed.is_object());
    let _ = hookflow_server::http::ingress::parse_query_example(&text);
});
