//! Signature verification on the raw body: HMAC-SHA256 headers, Standard Webhooks, Stripe.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use hookflow_tests::http::HttpResponse;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::util::TestServer;

fn mac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn signed(key: &str, signature: Value) -> Value {
    json!({"key": key, "sync": true, "trigger": {"signature": signature},
           "nodes": [{"key": "reply", "type": "response", "config": {"body": "{{$context.body}}"}}]})
}

fn assert_rejected(response: &HttpResponse, secret_material: &str) {
    assert_eq!(response.status, 401, "{}", response.text());
    assert_eq!(response.error_code(), "invalid_signature");
    assert!(!response.text().contains(secret_material), "the answer reveals nothing expected: {}", response.text());
}

const BODY: &[u8] = b"{ \"event\" :\"paid\",  \"id\": 1 }";

#[test]
fn hmac_sha256_header_with_rotated_secrets() {
    let github = signed(
        "github",
        json!({"type": "hmac-sha256", "header": "X-Hub-Signature-256", "prefix": "sha256=",
        "secrets": ["old-secret", "new-secret"]}),
    );
    let base64_flavour = signed(
        "b64",
        json!({"type": "hmac-sha256", "header": "X-Signature", "encoding": "base64",
        "secrets": ["k"]}),
    );
    let server = TestServer::start(&[github, base64_flavour], |_| {});
    let post = |key: &str, header: &str, value: &str| {
        server.post(key, &[("Content-Type", "application/json"), (header, value)], BODY)
    };

    for secret in ["new-secret", "old-secret"] {
        let value = format!("sha256={}", hex(&mac(secret.as_bytes(), &[BODY])));
        let response = post("github", "X-Hub-Signature-256", &value);
        assert_eq!(response.status, 200, "{secret}: {}", response.text());
        assert_eq!(response.json(), json!({"event": "paid", "id": 1}), "verified on the raw bytes, then parsed");
    }
    let expected = hex(&mac(b"new-secret", &[BODY]));
    assert_rejected(
        &post("github", "X-Hub-Signature-256", &format!("sha256={}", hex(&mac(b"wrong", &[BODY])))),
        &expected,
    );
    assert_rejected(&post("github", "X-Hub-Signature-256", &expected), &expected); // no prefix
    assert_rejected(&post("github", "X-Other", "x"), &expected); // missing header
    assert_rejected(&post("github", "X-Hub-Signature-256", "sha256=zz"), &expected);
    let tampered = server.post(
        "github",
        &[("Content-Type", "application/json"), ("X-Hub-Signature-256", &format!("sha256={expected}"))],
        b"{\"event\": \"refund\"}",
    );
    assert_rejected(&tampered, &expected);

    let good = STANDARD.encode(mac(b"k", &[BODY]));
    assert_eq!(post("b64", "X-Signature", &good).status, 200);
    assert_rejected(&post("b64", "X-Signature", &hex(&mac(b"k", &[BODY]))), &good);
}

#[test]
fn standard_webhooks_with_tolerance() {
    let key = b"a standard webhooks key";
    let secret = format!("whsec_{}", STANDARD.encode(key));
    let server = TestServer::start(
        &[signed("std", json!({"type": "standard-webhooks", "secrets": ["whsec_b3RoZXI=", secret]}))],
        |_| {},
    );
    let send = |id: &str, time: u64, signature_header: &str, body: &[u8]| {
        let time = time.to_string();
        server.post(
            "std",
            &[
                ("Content-Type", "application/json"),
                ("webhook-id", id),
                ("webhook-timestamp", &time),
                ("webhook-signature", signature_header),
            ],
            body,
        )
    };
    let sign = |id: &str, time: u64, body: &[u8]| {
        format!("v1,{}", STANDARD.encode(mac(key, &[id.as_bytes(), b".", time.to_string().as_bytes(), b".", body])))
    };

    let t = now();
    let good = sign("msg_1", t, BODY);
    assert_eq!(send("msg_1", t, &good, BODY).status, 200);
    assert_eq!(send("msg_1", t, &format!("v1,AAAA {good}"), BODY).status, 200, "any listed signature may match");
    assert_rejected(&send("msg_2", t, &good, BODY), &good); // the id is signed
    assert_rejected(&send("msg_1", t, &good, b"{}"), &good);
    let old = t - 3600;
    assert_rejected(&send("msg_1", old, &sign("msg_1", old, BODY), BODY), &good); // expired / replayed
    let future = t + 3600;
    assert_rejected(&send("msg_1", future, &sign("msg_1", future, BODY), BODY), &good);
    let missing = server.post("std", &[("Content-Type", "application/json")], BODY);
    assert_rejected(&missing, &good);
}

#[test]
fn stripe_signatures() {
    let secret = "whsec_stripe_test_secret";
    let server = TestServer::start(
        &[signed("stripe", json!({"type": "stripe", "secrets": [secret], "toleranceSeconds": 60}))],
        |_| {},
    );
    let send = |header: &str| {
        server.post("stripe", &[("Content-Type", "application/json"), ("Stripe-Signature", header)], BODY)
    };
    let sign = |time: u64| hex(&mac(secret.as_bytes(), &[time.to_string().as_bytes(), b".", BODY]));

    let t = now();
    assert_eq!(send(&format!("t={t},v1={}", sign(t))).status, 200);
    assert_eq!(send(&format!("t={t},v1=00ff,v1={},v0=abc", sign(t))).status, 200);
    assert_rejected(&send(&format!("t={t},v1={}", hex(&mac(b"other", &[BODY])))), &sign(t));
    let replayed = t - 120;
    assert_rejected(&send(&format!("t={replayed},v1={}", sign(replayed))), &sign(t));
    assert_rejected(&send(&format!("v1={}", sign(t))), &sign(t));
    assert_rejected(&send("garbage"), &sign(t));
}

#[test]
fn many_candidate_signatures_are_refused_before_any_mac_is_computed() {
    let secret = "whsec_stripe_test_secret";
    let key = b"a standard webhooks key";
    let server = TestServer::start(
        &[
            signed("stripe", json!({"type": "stripe", "secrets": [secret]})),
            signed("std", json!({"type": "standard-webhooks", "secrets": [format!("whsec_{}", STANDARD.encode(key))]})),
        ],
        |_| {},
    );
    let body = format!("{{\"pad\": \"{}\"}}", "x".repeat(512 * 1024));
    let body = body.as_bytes();
    let t = now();
    let good = hex(&mac(secret.as_bytes(), &[t.to_string().as_bytes(), b".", body]));
    let stripe = |header: &str| {
        let started = std::time::Instant::now();
        let response =
            server.post("stripe", &[("Content-Type", "application/json"), ("Stripe-Signature", header)], body);
        (response, started.elapsed())
    };

    let eight = format!("t={t}{},v1={good}", ",v1=00".repeat(7));
    let (normal, normal_time) = stripe(&eight);
    assert_eq!(normal.status, 200, "eight candidates are read: {}", normal.text());
    let nine = format!("t={t}{},v1={good}", ",v1=00".repeat(8));
    let (refused, _) = stripe(&nine);
    assert_rejected(&refused, &good);
    assert!(refused.text().contains("at most 8"), "the limit is named: {}", refused.text());

    let flood = format!("t={t}{}", ",v1=00".repeat(10_000));
    let (flooded, flood_time) = stripe(&flood);
    assert_rejected(&flooded, &good);
    assert!(
        flood_time < normal_time + std::time::Duration::from_millis(50),
        "10,000 candidates took {flood_time:?}, a normal request {normal_time:?}"
    );

    let id = "msg_1";
    let sw = format!("v1,{}", STANDARD.encode(mac(key, &[id.as_bytes(), b".", t.to_string().as_bytes(), b".", body])));
    let flood = format!("{}{sw}", "v1,AAAA ".repeat(10_000));
    let time = t.to_string();
    let started = std::time::Instant::now();
    let response = server.post(
        "std",
        &[
            ("Content-Type", "application/json"),
            ("webhook-id", id),
            ("webhook-timestamp", &time),
            ("webhook-signature", &flood),
        ],
        body,
    );
    let elapsed = started.elapsed();
    assert_rejected(&response, &sw);
    assert!(elapsed < normal_time + std::time::Duration::from_millis(50), "Standard Webhooks flood took {elapsed:?}");
}
