//! The senders of docs/senders.md, each with the trigger that page gives (read from it) and
//! requests signed by the sender's own library where it has one (`tests/senders/`: Stripe's,
//! Svix's and Standard Webhooks' SDKs and `@octokit/webhooks-methods` on node, Slack's `slack_sdk`
//! and Twilio's validator on Python): the real thing is accepted, the same request tampered with
//! is refused, and handshakes are answered without starting an execution.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use hookflow_tests::http::{self, HttpResponse};
use serde_json::{Value, json};

use crate::util::TestServer;

fn senders_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("senders")
}

/// The `trigger` docs/senders.md gives for `sender` (the JSON block after its marker).
fn trigger_of(sender: &str) -> Value {
    let page = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/senders.md")).unwrap();
    let marker = format!("<!-- sender: {sender} -->");
    let after = page.split_once(&marker).unwrap_or_else(|| panic!("docs/senders.md has no {marker}")).1;
    let block = after.split_once("```json").unwrap().1.split_once("```").unwrap().0;
    serde_json::from_str(block).unwrap_or_else(|e| panic!("the {sender} trigger in docs/senders.md: {e}"))
}

/// An async workflow with `sender`'s trigger that records what it was given.
fn workflow(key: &str, sender: &str) -> Value {
    json!({"key": key, "sync": false, "trigger": trigger_of(sender),
        "nodes": [{"key": "got", "type": "set", "config": {"values": {"body": "{{$context.body}}", "query": "{{$context.query}}"}}}]})
}

/// Runs `tests/senders/sign.js` (node) or `sign.py` (the pinned Python libraries' venv,
/// `HOOKFLOW_SENDERS_PYTHON`) on `request`; its JSON answer.
fn sign(script: &str, request: &Value) -> Value {
    let mut command = if script.ends_with(".py") {
        let python = std::env::var("HOOKFLOW_SENDERS_PYTHON").unwrap_or_else(|_| "python3".into());
        Command::new(python)
    } else {
        assert!(
            senders_dir().join("node_modules/stripe").exists(),
            "the senders' libraries are not installed: run `npm ci --prefix tests/senders` (scripts/test does)"
        );
        Command::new("node")
    };
    let mut child = command
        .arg(script)
        .current_dir(senders_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    child.stdin.take().unwrap().write_all(request.to_string().as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{script} failed (scripts/test installs the senders' libraries): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The headers a library signed a request with, plus `extra`.
fn headers_of(signed: &Value, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = signed["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, value)| (name.clone(), value.as_str().unwrap().to_string()))
        .collect();
    headers.extend(extra.iter().map(|(name, value)| (name.to_string(), value.to_string())));
    headers
}

fn post(server: &TestServer, key: &str, headers: &[(String, String)], body: &str) -> HttpResponse {
    let headers: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    server.post(key, &headers, body.as_bytes())
}

fn now() -> u64 {
    hookflow_workflow::timestamp::Timestamp::now().0 / 1000
}

/// An accepted request's execution, once it has run.
fn accepted(server: &TestServer, response: &HttpResponse) -> hookflow_workflow::Execution {
    assert_eq!(response.status, 200, "{}", response.text());
    server.finished_execution(response.header("x-hookflow-execution").unwrap())
}

fn refused(response: &HttpResponse, status: u16, code: &str) {
    assert_eq!((response.status, response.error_code()), (status, code.to_string()), "{}", response.text());
    assert!(response.header("x-hookflow-execution").is_none(), "no execution");
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

#[test]
fn stripe_events_signed_by_stripes_sdk_are_accepted_once() {
    let server = TestServer::start(&[workflow("stripe", "stripe")], |_| {});
    let body = r#"{"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {"amount": 1200}}}"#;
    let request =
        json!({"library": "stripe", "secret": "whsec_stripe_example_secret", "body": body, "timestamp": now()});
    let headers = headers_of(&sign("sign.js", &request), &[JSON]);
    let execution = accepted(&server, &post(&server, "stripe", &headers, body));
    assert_eq!(execution.jobs[0].output["body"]["data"]["object"]["amount"], 1200);
    let retry = post(&server, "stripe", &headers, body);
    assert_eq!(retry.header("x-hookflow-execution"), Some(execution.id.as_str()), "a retried event starts nothing");
    refused(&post(&server, "stripe", &headers, &body.replace("1200", "1")), 401, "invalid_signature");
    let stale =
        json!({"library": "stripe", "secret": "whsec_stripe_example_secret", "body": body, "timestamp": now() - 3600});
    refused(&post(&server, "stripe", &headers_of(&sign("sign.js", &stale), &[JSON]), body), 401, "invalid_signature");
}

#[test]
fn github_deliveries_signed_by_octokit_are_accepted() {
    let server = TestServer::start(&[workflow("github", "github")], |_| {});
    let body = r#"{"action": "opened", "number": 7}"#;
    let request = json!({"library": "octokit", "secret": "github-example-secret", "body": body, "id": "delivery-1"});
    let headers = headers_of(&sign("sign.js", &request), &[JSON, ("X-GitHub-Event", "pull_request")]);
    let execution = accepted(&server, &post(&server, "github", &headers, body));
    assert_eq!(execution.trigger["headers"]["x-github-event"], "pull_request");
    refused(&post(&server, "github", &headers, &body.replace('7', "8")), 401, "invalid_signature");
}

#[test]
fn shopify_webhooks_are_accepted() {
    let server = TestServer::start(&[workflow("shopify", "shopify")], |_| {});
    let body = r#"{"id": 820982911946154508, "email": "jon@example.com"}"#;
    let request = json!({"library": "shopify", "secret": "shopify-example-secret", "body": body, "id": "w-1"});
    let headers = headers_of(&sign("sign.js", &request), &[JSON, ("X-Shopify-Topic", "orders/create")]);
    let execution = accepted(&server, &post(&server, "shopify", &headers, body));
    assert_eq!(execution.trigger["headers"]["x-shopify-topic"], "orders/create");
    refused(&post(&server, "shopify", &headers, &body.replace("jon", "eve")), 401, "invalid_signature");
}

#[test]
fn slack_verifies_the_url_and_delivers_events_signed_by_slack_sdk() {
    let mut sync = workflow("slack-sync", "slack");
    sync["sync"] = json!(true);
    let server = TestServer::start(&[workflow("slack", "slack"), sync], |_| {});
    let signed = |body: &str| {
        let request =
            json!({"library": "slack", "secret": "slack-example-signing-secret", "body": body, "timestamp": now()});
        headers_of(&sign("sign.py", &request), &[JSON])
    };
    let verification = r#"{"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"}"#;
    let answer = post(&server, "slack", &signed(verification), verification);
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json(), json!({"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}));
    assert!(answer.header("x-hookflow-execution").is_none(), "a handshake starts no execution");
    let in_sync = post(&server, "slack-sync", &signed(verification), verification);
    assert_eq!((in_sync.status, in_sync.json()), (200, answer.json()), "a sync workflow answers it the same");
    assert!(in_sync.header("x-hookflow-execution").is_none());
    let unsigned = post(&server, "slack", &[("Content-Type".into(), "application/json".into())], verification);
    refused(&unsigned, 401, "invalid_signature");

    let event = r#"{"type": "event_callback", "event": {"type": "app_mention", "text": "hi"}}"#;
    let execution = accepted(&server, &post(&server, "slack", &signed(event), event));
    assert_eq!(execution.jobs[0].output["body"]["event"]["text"], "hi");
    refused(&post(&server, "slack", &signed(event), &event.replace("hi", "ho")), 401, "invalid_signature");
}

#[test]
fn zoom_validates_the_endpoint_and_delivers_signed_events() {
    let server = TestServer::start(&[workflow("zoom", "zoom")], |_| {});
    let secret = "zoom-example-secret-token";
    let signed = |body: &str| {
        let request = json!({"library": "zoom", "secret": secret, "body": body, "timestamp": now()});
        headers_of(&sign("sign.js", &request), &[JSON])
    };
    let validation = r#"{"payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}, "event_ts": 1654503849680, "event": "endpoint.url_validation"}"#;
    let answer = post(&server, "zoom", &signed(validation), validation);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let expected = hex_hmac_sha256(secret.as_bytes(), b"qgg8vlvZRS6UYooatFL8Aw");
    assert_eq!(answer.json(), json!({"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": expected}));
    let event = r#"{"event": "meeting.started", "payload": {"object": {"id": "85"}}}"#;
    let execution = accepted(&server, &post(&server, "zoom", &signed(event), event));
    assert_eq!(execution.jobs[0].output["body"]["event"], "meeting.started");
    refused(&post(&server, "zoom", &signed(event), &event.replace("85", "86")), 401, "invalid_signature");
}

fn hex_hmac_sha256(key: &[u8], message: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().iter().map(|byte| format!("{byte:02x}")).collect()
}

#[test]
fn twilio_requests_signed_by_twilios_validator_are_accepted() {
    let server = TestServer::start(&[workflow("twilio", "twilio")], |config| {
        config.public_url = Some("https://hooks.example.com".into());
    });
    let form = "AccountSid=AC123&From=%2B14155550100&Body=Hello+world&To=%2B14155550111";
    let params = json!({"AccountSid": "AC123", "From": "+14155550100", "Body": "Hello world", "To": "+14155550111"});
    let url = "https://hooks.example.com/api/webhook:trigger/twilio?tenant=7";
    let request = json!({"library": "twilio", "secret": "twilio-example-auth-token", "url": url, "params": params});
    let headers = headers_of(&sign("sign.py", &request), &[("Content-Type", "application/x-www-form-urlencoded")]);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    let response = http::post(server.address, "/api/webhook:trigger/twilio?tenant=7", &headers, form.as_bytes());
    let execution = accepted(&server, &response);
    assert_eq!(execution.jobs[0].output["body"]["Body"], "Hello world");
    let tampered = http::post(server.address, "/api/webhook:trigger/twilio?tenant=8", &headers, form.as_bytes());
    refused(&tampered, 401, "invalid_signature");
}

#[test]
fn meta_verifies_its_subscription_with_a_get_and_signs_events() {
    let server = TestServer::start(&[workflow("meta", "meta")], |_| {});
    let verify = |token: &str| {
        let path =
            format!("/api/webhook:trigger/meta?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444");
        http::request(server.address, "GET", &path, &[], b"")
    };
    let answer = verify("meta-example-verify-token");
    assert_eq!((answer.status, answer.text()), (200, "1158201444".to_string()));
    assert_eq!(answer.header("content-type"), Some("text/plain; charset=utf-8"));
    refused(&verify("wrong-token"), 403, "forbidden");
    let plain_get = http::request(server.address, "GET", "/api/webhook:trigger/meta", &[], b"");
    refused(&plain_get, 405, "method_not_allowed");

    let body = r#"{"object": "whatsapp_business_account", "entry": [{"id": "1"}]}"#;
    let request = json!({"library": "meta", "secret": "meta-example-app-secret", "body": body});
    let headers = headers_of(&sign("sign.js", &request), &[JSON]);
    let execution = accepted(&server, &post(&server, "meta", &headers, body));
    assert_eq!(execution.jobs[0].output["body"]["object"], "whatsapp_business_account");
    refused(&post(&server, "meta", &headers, &body.replace("\"1\"", "\"2\"")), 401, "invalid_signature");
}

#[test]
fn microsoft_graph_validates_its_subscription_with_a_token() {
    let server = TestServer::start(&[workflow("graph", "microsoft-graph")], |_| {});
    let validation = http::post(
        server.address,
        "/api/webhook:trigger/graph?validationToken=Validation%3A%20Testing%20client%20application",
        &[],
        b"",
    );
    assert_eq!((validation.status, validation.text()), (200, "Validation: Testing client application".to_string()));
    assert!(validation.header("x-hookflow-execution").is_none());
    let body = r#"{"value": [{"subscriptionId": "s1", "clientState": "secretClientValue", "changeType": "created"}]}"#;
    let execution =
        accepted(&server, &post(&server, "graph", &[("Content-Type".into(), "application/json".into())], body));
    assert_eq!(execution.jobs[0].output["body"]["value"][0]["changeType"], "created");
}

#[test]
fn x_answers_its_crc_challenge_and_accepts_signed_events() {
    let server = TestServer::start(&[workflow("x", "x")], |_| {});
    let crc = http::request(server.address, "GET", "/api/webhook:trigger/x?crc_token=challenge123", &[], b"");
    assert_eq!(crc.status, 200, "{}", crc.text());
    let expected = {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"x-example-consumer-secret").unwrap();
        mac.update(b"challenge123");
        format!("sha256={}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
    };
    assert_eq!(crc.json(), json!({"response_token": expected}));
    let body = r#"{"for_user_id": "2244994945", "tweet_create_events": []}"#;
    let request = json!({"library": "x", "secret": "x-example-consumer-secret", "body": body});
    let headers = headers_of(&sign("sign.js", &request), &[JSON]);
    let execution = accepted(&server, &post(&server, "x", &headers, body));
    assert_eq!(execution.jobs[0].output["body"]["for_user_id"], "2244994945");
    refused(&post(&server, "x", &headers, &body.replace("2244", "1111")), 401, "invalid_signature");
}

#[test]
fn svix_powered_senders_signed_by_svix_are_accepted_once() {
    let server = TestServer::start(&[workflow("clerk", "svix")], |_| {});
    let body = r#"{"type": "user.created", "data": {"id": "user_29w83sxmDNGwOuEthce5gg56FcC"}}"#;
    let request = json!({"library": "svix", "secret": "whsec_c3ZpeC1leGFtcGxlLXNpZ25pbmctc2VjcmV0",
        "body": body, "id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "timestamp": now()});
    let headers = headers_of(&sign("sign.js", &request), &[JSON]);
    let execution = accepted(&server, &post(&server, "clerk", &headers, body));
    assert_eq!(execution.jobs[0].output["body"]["type"], "user.created");
    let retry = post(&server, "clerk", &headers, body);
    assert_eq!(retry.header("x-hookflow-execution"), Some(execution.id.as_str()), "svix-id makes retries idempotent");
    refused(&post(&server, "clerk", &headers, &body.replace("created", "deleted")), 401, "invalid_signature");
}

#[test]
fn standard_webhooks_signed_by_the_sdk_or_with_ed25519_are_accepted() {
    let symmetric = "whsec_c3RhbmRhcmQtd2ViaG9va3MtZXhhbXBsZQ==";
    let keys = sign("sign.js", &json!({"library": "ed25519-keygen"}));
    let public = keys["publicKey"].as_str().unwrap();
    let mut both = workflow("both", "standard-webhooks");
    both["trigger"]["signature"]["secrets"] = json!([symmetric, public]);
    let server = TestServer::start(&[workflow("standard", "standard-webhooks"), both], |_| {});

    let body = r#"{"type": "invoice.paid", "amount": 10}"#;
    let request =
        json!({"library": "standardwebhooks", "secret": symmetric, "body": body, "id": "msg_1", "timestamp": now()});
    let headers = headers_of(&sign("sign.js", &request), &[JSON]);
    assert_eq!(accepted(&server, &post(&server, "standard", &headers, body)).jobs[0].output["body"]["amount"], 10);
    refused(&post(&server, "standard", &headers, &body.replace("10", "11")), 401, "invalid_signature");

    let request = json!({"library": "standardwebhooks-v1a", "privateKey": keys["privateKey"], "body": body,
        "id": "msg_2", "timestamp": now()});
    let headers = headers_of(&sign("sign.js", &request), &[JSON]);
    assert_eq!(
        accepted(&server, &post(&server, "both", &headers, body)).jobs[0].output["body"]["type"],
        "invoice.paid"
    );
    refused(&post(&server, "both", &headers, &body.replace("10", "11")), 401, "invalid_signature");
    refused(&post(&server, "standard", &headers, body), 401, "invalid_signature");
}

#[test]
fn cloudevents_senders_are_allowed_by_the_options_handshake() {
    let server = TestServer::start(&[workflow("events", "cloudevents")], |_| {});
    let allowed = http::request(
        server.address,
        "OPTIONS",
        "/api/webhook:trigger/events",
        &[("WebHook-Request-Origin", "eventemitter.example.com"), ("WebHook-Request-Rate", "120")],
        b"",
    );
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    assert_eq!(allowed.header("webhook-allowed-origin"), Some("eventemitter.example.com"));
    assert_eq!(allowed.header("webhook-allowed-rate"), Some("120"));
    assert_eq!(allowed.header("allow"), Some("POST, OPTIONS"));
    let body = r#"{"specversion": "1.0", "type": "com.example.object.created", "source": "/x", "id": "A234"}"#;
    let headers = [("Content-Type".to_string(), "application/cloudevents+json; charset=utf-8".to_string())];
    let execution = accepted(&server, &post(&server, "events", &headers, body));
    assert_eq!(execution.jobs[0].output["body"]["type"], "com.example.object.created");
}

#[test]
fn sync_workflows_answer_every_handshake_the_same_and_start_nothing() {
    let sync = |key: &str, sender: &str| {
        let mut definition = workflow(key, sender);
        definition["sync"] = json!(true);
        definition
    };
    let senders =
        [("zoom", "zoom"), ("meta", "meta"), ("graph", "microsoft-graph"), ("x", "x"), ("events", "cloudevents")];
    let server = TestServer::start(&senders.map(|(key, sender)| sync(key, sender)), |_| {});

    let validation = r#"{"payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}, "event_ts": 1654503849680, "event": "endpoint.url_validation"}"#;
    let request =
        json!({"library": "zoom", "secret": "zoom-example-secret-token", "body": validation, "timestamp": now()});
    let zoom = post(&server, "zoom", &headers_of(&sign("sign.js", &request), &[JSON]), validation);
    let token = hex_hmac_sha256(b"zoom-example-secret-token", b"qgg8vlvZRS6UYooatFL8Aw");
    assert_eq!(
        (zoom.status, zoom.json()),
        (200, json!({"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": token}))
    );

    let meta_path = "/api/webhook:trigger/meta?hub.mode=subscribe&hub.verify_token=meta-example-verify-token&hub.challenge=1158201444";
    let meta = http::request(server.address, "GET", meta_path, &[], b"");
    assert_eq!((meta.status, meta.text()), (200, "1158201444".to_string()));

    let graph = http::post(server.address, "/api/webhook:trigger/graph?validationToken=abc%20def", &[], b"");
    assert_eq!((graph.status, graph.text()), (200, "abc def".to_string()));

    let crc = http::request(server.address, "GET", "/api/webhook:trigger/x?crc_token=challenge123", &[], b"");
    assert_eq!(crc.status, 200, "{}", crc.text());
    assert!(crc.json()["response_token"].as_str().is_some_and(|token| token.starts_with("sha256=")), "{}", crc.text());

    let events = http::request(
        server.address,
        "OPTIONS",
        "/api/webhook:trigger/events",
        &[("WebHook-Request-Origin", "eventemitter.example.com")],
        b"",
    );
    assert_eq!((events.status, events.header("webhook-allowed-origin")), (200, Some("eventemitter.example.com")));

    for answer in [&zoom, &meta, &graph, &crc, &events] {
        assert!(answer.header("x-hookflow-execution").is_none(), "a handshake starts no execution");
    }
    let filter = hookflow_store::ExecutionFilter::default();
    let stored = hookflow_tests::block_on(server.server().store().executions(&filter, None, 10)).unwrap();
    assert!(stored.is_empty(), "no execution was recorded: {stored:?}");
}

#[test]
fn without_a_handshake_get_and_options_stay_405() {
    let server = TestServer::start(&[workflow("plain", "stripe")], |_| {});
    for method in ["GET", "OPTIONS"] {
        let response = http::request(
            server.address,
            method,
            "/api/webhook:trigger/plain?crc_token=x&hub.mode=subscribe",
            &[],
            b"",
        );
        refused(&response, 405, "method_not_allowed");
        assert_eq!(response.header("allow"), Some("POST"));
    }
}

#[test]
fn an_api_key_in_the_query_and_an_address_allowlist_let_in_senders_that_cannot_sign() {
    let mut elsewhere = workflow("elsewhere", "api-key");
    elsewhere["trigger"]["ipAllowlist"] = json!(["203.0.113.0/24"]);
    let server = TestServer::start(&[workflow("keyed", "api-key"), elsewhere], |_| {});
    let call = |path: &str| http::post(server.address, path, &[("Content-Type", "application/json")], br#"{"n": 1}"#);
    let execution = accepted(&server, &call("/api/webhook:trigger/keyed?token=example-key-2025&tenant=7"));
    assert_eq!(execution.trigger["query"], json!({"tenant": "7"}), "the key is not in the trigger data");
    refused(&call("/api/webhook:trigger/keyed?token=wrong"), 401, "unauthorized");
    refused(&call("/api/webhook:trigger/keyed?tenant=7"), 401, "unauthorized");
    let outside = call("/api/webhook:trigger/elsewhere?token=example-key-2026");
    refused(&outside, 403, "forbidden");
    assert!(outside.error_message().contains("127.0.0.1"), "{}", outside.text());
}

#[test]
fn behind_a_trusted_proxy_the_client_is_the_forwarded_address() {
    let mut allowlisted = workflow("behind", "api-key");
    allowlisted["trigger"]["ipAllowlist"] = json!(["203.0.113.0/24"]);
    let server = TestServer::start(&[allowlisted], |config| {
        config.trusted_proxies = vec![hookflow_workflow::parse_address_block("127.0.0.0/8").unwrap()];
    });
    let call = |forwarded: &str| {
        http::post(
            server.address,
            "/api/webhook:trigger/behind?token=example-key-2026",
            &[("Content-Type", "application/json"), ("X-Forwarded-For", forwarded)],
            b"{}",
        )
    };
    accepted(&server, &call("198.51.100.1, 203.0.113.9"));
    // The client wrote the left-most hop: only the right-most untrusted one counts.
    refused(&call("203.0.113.9, 198.51.100.1"), 403, "forbidden");
}

#[test]
fn compressed_bodies_are_decoded_under_the_body_limit() {
    use flate2::Compression;
    use flate2::write::{GzEncoder, ZlibEncoder};
    let server = TestServer::start(&[workflow("zipped", "cloudevents")], |config| config.body_limit = 64 * 1024);
    let body = json!({"items": (0..200).map(|n| json!({"sku": format!("A-{n}")})).collect::<Vec<_>>()}).to_string();
    let gzip = {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(body.as_bytes()).unwrap();
        encoder.finish().unwrap()
    };
    let deflate = {
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(body.as_bytes()).unwrap();
        encoder.finish().unwrap()
    };
    let brotli = {
        let mut out = Vec::new();
        let mut writer = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        writer.write_all(body.as_bytes()).unwrap();
        drop(writer);
        out
    };
    for (encoding, bytes) in [("gzip", &gzip), ("deflate", &deflate), ("br", &brotli)] {
        let response =
            server.post("zipped", &[("Content-Type", "application/json"), ("Content-Encoding", encoding)], bytes);
        let execution = accepted(&server, &response);
        assert_eq!(execution.jobs[0].output["body"]["items"][199]["sku"], "A-199", "{encoding}");
    }
    // A small body that inflates past the limit is refused by its decoded size.
    let bomb = {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(&vec![b' '; 10 << 20]).unwrap();
        encoder.finish().unwrap()
    };
    assert!(bomb.len() < 64 * 1024);
    let response = server.post("zipped", &[("Content-Type", "application/json"), ("Content-Encoding", "gzip")], &bomb);
    refused(&response, 413, "payload_too_large");
    assert!(response.error_message().contains("decoded"), "{}", response.text());
    let unknown = server.post("zipped", &[("Content-Type", "application/json"), ("Content-Encoding", "zstd")], b"x");
    refused(&unknown, 415, "unsupported_media_type");
    let broken =
        server.post("zipped", &[("Content-Type", "application/json"), ("Content-Encoding", "gzip")], b"not gzip");
    refused(&broken, 400, "invalid_body");
}

#[test]
fn a_node_can_have_the_raw_body() {
    let mut raw = workflow("raw", "cloudevents");
    raw["trigger"]["request"] = json!({"rawBody": true});
    raw["nodes"][0]["config"]["values"] = json!({"raw": "{{$context.rawBody}}"});
    let server = TestServer::start(&[raw], |_| {});
    let body = "a=1&b=%20two";
    let response = server.post("raw", &[("Content-Type", "application/x-www-form-urlencoded")], body.as_bytes());
    let execution = accepted(&server, &response);
    assert_eq!(execution.jobs[0].output["raw"], base64::engine::general_purpose::STANDARD.encode(body));
    assert_eq!(execution.trigger["body"], json!({"a": "1", "b": " two"}));
}

#[test]
fn api_keys_and_handshake_tokens_are_secrets_in_the_admin_api() {
    let server = TestServer::start(&[workflow("meta", "meta"), workflow("keyed", "api-key")], |_| {});
    for key in ["meta", "keyed"] {
        let shown = http::request(server.address, "GET", &format!("/api/workflows/{key}"), &[], b"").json();
        let text = shown.to_string();
        for secret in ["meta-example-verify-token", "meta-example-app-secret", "example-key-2026", "example-key-2025"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        // Sent back masked, the stored secrets stay.
        let replaced = http::request(
            server.address,
            "PUT",
            &format!("/api/workflows/{key}"),
            &[("Content-Type", "application/json")],
            shown.to_string().as_bytes(),
        );
        assert_eq!(replaced.status, 200, "{}", replaced.text());
    }
    let verify = http::request(
        server.address,
        "GET",
        "/api/webhook:trigger/meta?hub.mode=subscribe&hub.verify_token=meta-example-verify-token&hub.challenge=9",
        &[],
        b"",
    );
    assert_eq!(verify.text(), "9", "the verify token survived the round trip");
    accepted(&server, &http::post(server.address, "/api/webhook:trigger/keyed?token=example-key-2026", &[], b""));
}
