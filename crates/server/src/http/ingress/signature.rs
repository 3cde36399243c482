//! Webhook signatures, verified on the body as it was sent (its `Content-Encoding` undone) before
//! it is parsed: HMAC-SHA256 in one header, Standard Webhooks (also under Svix's header names,
//! and `v1a` ed25519 signatures), Stripe, Slack, Zoom and Twilio. Every accepted secret is tried
//! (rotation); the MAC is computed once per secret and compared to each presented candidate in
//! constant time; a header with more than [`MAX_CANDIDATES`] candidates is refused before any MAC
//! is computed, so the work per request is bounded by the body size times the number of secrets.
//! A failure never says what the expected value was.

use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

use super::auth::constant_time_eq;
use super::query::decode;
use crate::http::api_error::{ApiError, ErrorCode};
use hookflow_workflow::timestamp::Timestamp;
use hookflow_workflow::{Signature, SignatureEncoding, standard_webhooks_key, standard_webhooks_public_key};

type HmacSha256 = Hmac<Sha256>;

/// What a signature is checked against.
pub struct Signed<'a> {
    /// The request's headers.
    pub headers: &'a HeaderMap,
    /// The body as it was sent (its `Content-Encoding` undone).
    pub body: &'a [u8],
    /// The URL the sender called, as it saw it: the public origin, the path and the query
    /// (Twilio signs it).
    pub url: &'a str,
}

/// The most candidate signatures read from one header.
pub const MAX_CANDIDATES: usize = 8;

/// Checks the request's signature; `None` configured lets all in.
pub fn check_signature(request: &Signed<'_>, signature: Option<&Signature>) -> Result<(), ApiError> {
    let Some(signature) = signature else {
        return Ok(());
    };
    let (headers, body) = (request.headers, request.body);
    let now = Timestamp::now().0 / 1000;
    let verdict = match signature {
        Signature::HmacSha256 { header, prefix, encoding, secrets } => {
            hmac_header(headers, body, header, prefix, *encoding, secrets)
        }
        Signature::StandardWebhooks { secrets, tolerance_seconds } => {
            standard_webhooks(headers, body, secrets, now, *tolerance_seconds)
        }
        Signature::Stripe { secrets, tolerance_seconds } => stripe(headers, body, secrets, now, *tolerance_seconds),
        Signature::Slack { secrets, tolerance_seconds } => versioned_hmac(
            headers,
            body,
            ("x-slack-request-timestamp", "x-slack-signature"),
            secrets,
            now,
            *tolerance_seconds,
        ),
        Signature::Zoom { secrets, tolerance_seconds } => versioned_hmac(
            headers,
            body,
            ("x-zm-request-timestamp", "x-zm-signature"),
            secrets,
            now,
            *tolerance_seconds,
        ),
        Signature::Twilio { secrets } => twilio(headers, body, request.url, secrets),
    };
    verdict.map_err(|why| ApiError::new(ErrorCode::InvalidSignature, format!("signature rejected: {why}")))
}

/// Parses `Stripe-Signature: t=1700000000,v1=<hex>,v1=<hex>,v0=...` into the time and the v1 values.
pub fn parse_stripe_header(value: &str) -> Option<(u64, Vec<&str>)> {
    let mut time = None;
    let mut signatures = Vec::new();
    for part in value.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => time = Some(t.parse().ok()?),
            Some(("v1", v1)) => signatures.push(v1),
            _ => {}
        }
    }
    Some((time?, signatures))
}

fn hmac_header(
    headers: &HeaderMap,
    body: &[u8],
    header: &str,
    prefix: &str,
    encoding: SignatureEncoding,
    secrets: &[String],
) -> Result<(), String> {
    let value = header_text(headers, header)?;
    let encoded =
        value.trim().strip_prefix(prefix).ok_or_else(|| format!("{header} does not start with {prefix:?}"))?;
    let presented = match encoding {
        SignatureEncoding::Hex => decode_hex(encoded),
        SignatureEncoding::Base64 => STANDARD.decode(encoded).ok(),
    }
    .ok_or_else(|| format!("{header} is not {encoding:?}-encoded"))?;
    let matches =
        secrets.iter().any(|secret| matches_any(secret.as_bytes(), &[body], std::slice::from_ref(&presented)));
    matches.then_some(()).ok_or_else(|| format!("{header} does not match the body"))
}

fn standard_webhooks(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[String],
    now: u64,
    tolerance: u64,
) -> Result<(), String> {
    // Svix-powered senders send the same scheme under their own names.
    let prefix = if headers.contains_key("webhook-signature") || !headers.contains_key("svix-signature") {
        "webhook"
    } else {
        "svix"
    };
    let id = header_text(headers, &format!("{prefix}-id"))?;
    let timestamp = header_text(headers, &format!("{prefix}-timestamp"))?;
    let time: u64 = timestamp.trim().parse().map_err(|_| format!("{prefix}-timestamp is not a number"))?;
    check_tolerance(time, now, tolerance)?;
    let signatures = header_text(headers, &format!("{prefix}-signature"))?;
    let entries: Vec<&str> = signatures.split_whitespace().collect();
    check_candidate_count(&format!("{prefix}-signature"), entries.len())?;
    let decoded = |version: &str| -> Vec<Vec<u8>> {
        entries
            .iter()
            .filter_map(|entry| entry.strip_prefix(version))
            .filter_map(|encoded| STANDARD.decode(encoded).ok())
            .collect()
    };
    let (symmetric, asymmetric) = (decoded("v1,"), decoded("v1a,"));
    let signed = [id.as_bytes(), b".", timestamp.trim().as_bytes(), b".", body];
    let matches = secrets.iter().any(|secret| match standard_webhooks_public_key(secret) {
        Some(public) => verifies_ed25519(&public, &signed.concat(), &asymmetric),
        None => standard_webhooks_key(secret).is_some_and(|key| matches_any(&key, &signed, &symmetric)),
    });
    matches.then_some(()).ok_or_else(|| format!("no {prefix}-signature matches"))
}

/// Whether any presented `v1a` signature is `public`'s ed25519 signature of `message` (strict
/// verification: no malleable signatures, no small-order keys).
fn verifies_ed25519(public: &[u8; 32], message: &[u8], presented: &[Vec<u8>]) -> bool {
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(public) else { return false };
    presented.iter().any(|signature| {
        ed25519_dalek::Signature::from_slice(signature)
            .is_ok_and(|signature| key.verify_strict(message, &signature).is_ok())
    })
}

/// Slack's and Zoom's scheme: `<signature header>: v0=<hex>`, HMAC-SHA256 of
/// `v0:<timestamp header>:<body>`.
fn versioned_hmac(
    headers: &HeaderMap,
    body: &[u8],
    (timestamp_header, signature_header): (&str, &str),
    secrets: &[String],
    now: u64,
    tolerance: u64,
) -> Result<(), String> {
    let timestamp = header_text(headers, timestamp_header)?;
    let time: u64 = timestamp.trim().parse().map_err(|_| format!("{timestamp_header} is not a number"))?;
    check_tolerance(time, now, tolerance)?;
    let signature = header_text(headers, signature_header)?;
    let presented = signature
        .trim()
        .strip_prefix("v0=")
        .and_then(decode_hex)
        .ok_or_else(|| format!("{signature_header} is not v0=<hex>"))?;
    let signed = [b"v0:", timestamp.trim().as_bytes(), b":", body];
    let matches =
        secrets.iter().any(|secret| matches_any(secret.as_bytes(), &signed, std::slice::from_ref(&presented)));
    matches.then_some(()).ok_or_else(|| format!("{signature_header} does not match"))
}

/// Twilio: `X-Twilio-Signature`, base64 HMAC-SHA1 of the URL followed by each form parameter
/// (names sorted, each name's values sorted, duplicates once) as name then value — what Twilio's
/// request validators compute. A JSON body carries its own hash in the URL (`bodySHA256`), which
/// the URL's signature covers.
fn twilio(headers: &HeaderMap, body: &[u8], url: &str, secrets: &[String]) -> Result<(), String> {
    let signature = header_text(headers, "x-twilio-signature")?;
    let presented = STANDARD.decode(signature.trim()).map_err(|_| "X-Twilio-Signature is not base64".to_string())?;
    let form = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    let mut signed = url.as_bytes().to_vec();
    if form {
        let text = std::str::from_utf8(body).map_err(|_| "the form body is not UTF-8".to_string())?;
        let mut pairs: Vec<(String, String)> = text
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(name), decode(value))
            })
            .collect();
        pairs.sort();
        pairs.dedup();
        for (name, value) in pairs {
            signed.extend_from_slice(name.as_bytes());
            signed.extend_from_slice(value.as_bytes());
        }
    }
    let matches = secrets.iter().any(|secret| {
        let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret.as_bytes()) else { return false };
        mac.update(&signed);
        constant_time_eq(&mac.finalize().into_bytes(), &presented)
    });
    matches.then_some(()).ok_or_else(|| "X-Twilio-Signature does not match the URL and parameters".to_string())
}

fn stripe(headers: &HeaderMap, body: &[u8], secrets: &[String], now: u64, tolerance: u64) -> Result<(), String> {
    let value = header_text(headers, "stripe-signature")?;
    let (time, signatures) = parse_stripe_header(&value).ok_or("Stripe-Signature has no t= timestamp")?;
    check_candidate_count("Stripe-Signature", signatures.len())?;
    check_tolerance(time, now, tolerance)?;
    let time_text = time.to_string();
    let signed = [time_text.as_bytes(), b".", body];
    let presented: Vec<Vec<u8>> = signatures.into_iter().filter_map(decode_hex).collect();
    let matches = secrets.iter().any(|secret| matches_any(secret.as_bytes(), &signed, &presented));
    matches.then_some(()).ok_or_else(|| "no v1 signature in Stripe-Signature matches".to_string())
}

fn check_tolerance(time: u64, now: u64, tolerance: u64) -> Result<(), String> {
    if time.abs_diff(now) > tolerance {
        return Err(format!("the timestamp is more than {tolerance} s away from now (expired or replayed)"));
    }
    Ok(())
}

fn check_candidate_count(header: &str, count: usize) -> Result<(), String> {
    if count > MAX_CANDIDATES {
        return Err(format!("{header} carries {count} signatures; at most {MAX_CANDIDATES} are read"));
    }
    Ok(())
}

/// Computes HMAC-SHA256 of `parts` concatenated once, then compares it to every presented
/// candidate in constant time (all of them, so timing does not tell which one matched).
fn matches_any(key: &[u8], parts: &[&[u8]], presented: &[Vec<u8>]) -> bool {
    if presented.is_empty() {
        return false;
    }
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        return false;
    };
    for part in parts {
        mac.update(part);
    }
    let expected = mac.finalize().into_bytes();
    presented.iter().fold(false, |found, candidate| found | constant_time_eq(&expected, candidate))
}

fn header_text(headers: &HeaderMap, name: &str) -> Result<String, String> {
    let value = headers.get(name).ok_or_else(|| format!("the {name} header is missing"))?;
    value.to_str().map(str::to_string).map_err(|_| format!("the {name} header is not text"))
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stripe_headers() {
        assert_eq!(parse_stripe_header("t=12,v1=ab,v0=cd,v1=ef"), Some((12, vec!["ab", "ef"])));
        assert_eq!(parse_stripe_header(" t=12 , v1=ab"), Some((12, vec!["ab"])));
        assert_eq!(parse_stripe_header("v1=ab"), None);
        assert_eq!(parse_stripe_header("t=soon,v1=ab"), None);
        assert_eq!(parse_stripe_header(""), None);
    }

    #[test]
    fn decodes_hex() {
        assert_eq!(decode_hex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(decode_hex("ABcd"), Some(vec![0xab, 0xcd]));
        assert_eq!(decode_hex("abc"), None);
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(decode_hex("é1"), None);
    }
}
