//! The signature header parsers.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = hookflow_server::http::ingress::parse_stripe_header(&text);
    let _ = hookflow_workflow::standard_webhooks_key(&text);
});
