//! Credentials of trigger requests: HTTP Basic (RFC 7617) and API keys.

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::http::api_error::{ApiError, ErrorCode};
use hookflow_workflow::{ApiKey, BasicAuth};

/// Checks the request's credentials against the configured ones; `None` configured lets all in.
/// Missing, malformed and wrong credentials are all a 401 with `WWW-Authenticate`.
pub fn check_basic_auth(headers: &HeaderMap, expected: Option<&BasicAuth>) -> Result<(), ApiError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let presented = headers.get(header::AUTHORIZATION);
    let accepted =
        presented.and_then(|value| value.to_str().ok()).and_then(parse_basic).is_some_and(|(username, password)| {
            // Both comparisons always run, so timing does not tell which part was wrong.
            constant_time_eq(username.as_bytes(), expected.username.as_bytes())
                & constant_time_eq(password.as_bytes(), expected.password.as_bytes())
        });
    if accepted {
        return Ok(());
    }
    let message = if presented.is_some() {
        "the Basic credentials are wrong or malformed"
    } else {
        "this webhook requires HTTP Basic credentials"
    };
    Err(ApiError::new(ErrorCode::Unauthorized, message)
        .with_header(header::WWW_AUTHENTICATE, "Basic realm=\"hookflow\", charset=\"UTF-8\""))
}

/// Checks the request's API key (`trigger.apiKey`): the configured header's value, or the
/// configured query parameter's, which is then removed from `query` (the trigger data never holds
/// the key). Every accepted key is compared, in constant time.
pub fn check_api_key(headers: &HeaderMap, query: &mut Value, expected: Option<&ApiKey>) -> Result<(), ApiError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let (presented, place) = match (&expected.header, &expected.query) {
        (Some(name), _) => {
            let value = headers.get(name.as_str()).and_then(|value| value.to_str().ok()).map(str::to_string);
            (value, format!("the {name} header"))
        }
        (None, Some(name)) => {
            let value = query.as_object_mut().and_then(|query| query.shift_remove(name));
            (value.and_then(|value| value.as_str().map(str::to_string)), format!("the {name} query parameter"))
        }
        (None, None) => (None, "nowhere".to_string()),
    };
    let Some(presented) = presented else {
        return Err(ApiError::new(ErrorCode::Unauthorized, format!("this webhook needs an API key in {place}")));
    };
    let accepted = expected
        .keys
        .iter()
        .fold(false, |found, key| found | constant_time_eq(presented.trim().as_bytes(), key.as_bytes()));
    if accepted {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::Unauthorized, format!("the API key in {place} is not one this webhook accepts")))
    }
}

/// `Basic <base64(user:password)>` → `(user, password)`.
fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (username, password) = text.split_once(':')?;
    Some((username.to_string(), password.to_string()))
}

/// Compares without stopping at the first difference (the length is not secret): `subtle`'s
/// comparison, which keeps the optimiser from turning it back into an early exit.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_basic_credentials() {
        assert_eq!(parse_basic("Basic c2hvcDpzM2NyZXQ="), Some(("shop".into(), "s3cret".into())));
        assert_eq!(parse_basic("basic  c2hvcDpzM2NyZXQ= "), Some(("shop".into(), "s3cret".into())));
        assert_eq!(parse_basic("Basic dTpwOmM="), Some(("u".into(), "p:c".into())), "a password may hold ':'");
        assert_eq!(parse_basic("Bearer c2hvcDpzM2NyZXQ="), None);
        assert_eq!(parse_basic("Basic !!!"), None);
        assert_eq!(parse_basic("Basic bm9jb2xvbg=="), None, "no colon");
        assert_eq!(parse_basic("Basic"), None);
    }

    #[test]
    fn equal_only_when_every_byte_and_the_length_match() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
    }
}
