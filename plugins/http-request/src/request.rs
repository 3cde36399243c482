//! The node's config and the request it describes: method, URL split for `wasi:http`, query
//! parameters, headers and body. Pure, so it is tested natively.

use hookflow_node::{Error, fail};
use serde::Deserialize;
use serde_json::Value;

const DEFAULT_TIMEOUT_MS: u64 = 5000;

/// The config, as NocoBase's HTTP request node spells it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    #[serde(default = "default_method")]
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<NameValue>,
    #[serde(default)]
    params: Vec<NameValue>,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    data: Value,
    #[serde(default = "default_timeout")]
    timeout: u64,
    /// Go on (and output what happened) when the call fails or answers outside 2xx.
    #[serde(default)]
    pub ignore_fail: bool,
    /// Output only the response body instead of `{status, headers, data}`.
    #[serde(default)]
    pub only_data: bool,
}

fn default_method() -> String {
    "POST".into()
}

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_MS
}

/// A header or query parameter; a value that is not a string is sent as JSON text.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameValue {
    name: String,
    value: Value,
}

/// The URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// A request ready to send.
#[derive(Debug, PartialEq)]
pub struct Prepared {
    pub method: String,
    pub scheme: Scheme,
    /// `host[:port]`.
    pub authority: String,
    /// `/path?query`, the parameters appended.
    pub path_and_query: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Option<Vec<u8>>,
    pub timeout_ms: u64,
}

impl Prepared {
    /// Checks the config and builds the request; faults name the config field.
    pub fn new(config: &Config) -> Result<Prepared, Error> {
        let method = config.method.trim().to_ascii_uppercase();
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(fail(format!("method: {:?} is not an HTTP method", config.method)));
        }
        if config.timeout == 0 {
            return Err(fail("timeout: must be at least 1 millisecond"));
        }
        let (scheme, authority, mut path_and_query) = split_url(config.url.trim())?;
        for (index, param) in config.params.iter().enumerate() {
            if param.name.is_empty() {
                return Err(fail(format!("params[{index}].name: must not be empty")));
            }
            path_and_query.push(if path_and_query.contains('?') { '&' } else { '?' });
            path_and_query.push_str(&percent_encode(&param.name));
            path_and_query.push('=');
            path_and_query.push_str(&percent_encode(&text(&param.value)));
        }
        let mut headers = Vec::with_capacity(config.headers.len() + 1);
        for (index, header) in config.headers.iter().enumerate() {
            if header.name.is_empty() || !header.name.bytes().all(is_token_byte) {
                return Err(fail(format!("headers[{index}].name: {:?} is not a header name", header.name)));
            }
            let value = text(&header.value);
            if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                return Err(fail(format!("headers[{index}].value: control characters are not allowed")));
            }
            // The length is the body's own, set below.
            if !header.name.eq_ignore_ascii_case("content-length") {
                headers.push((header.name.clone(), value.into_bytes()));
            }
        }
        let content_type = config.content_type.as_deref().unwrap_or("application/json").trim();
        // As NocoBase (axios) does, a GET or HEAD sends no body.
        let body = if method == "GET" || method == "HEAD" { None } else { body(content_type, &config.data)? };
        let has_content_type = headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
        if let Some(body) = &body {
            if !has_content_type {
                headers.push(("content-type".into(), content_type.as_bytes().to_vec()));
            }
            headers.push(("content-length".into(), body.len().to_string().into_bytes()));
        }
        Ok(Prepared { method, scheme, authority, path_and_query, headers, body, timeout_ms: config.timeout })
    }
}

/// `https://host:port/path?q#fragment` → scheme, authority, `/path?q`.
fn split_url(url: &str) -> Result<(Scheme, String, String), Error> {
    let expected = || fail(format!("url: expected an absolute http:// or https:// URL, got {url:?}"));
    let (scheme, rest) = url.split_once("://").ok_or_else(expected)?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        _ => return Err(expected()),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.is_empty() {
        return Err(expected());
    }
    if authority.contains('@') {
        return Err(fail("url: credentials in the URL are not supported; send an Authorization header"));
    }
    let mut path_and_query = rest[end..].split('#').next().unwrap_or_default().to_string();
    if !path_and_query.starts_with('/') {
        path_and_query.insert(0, '/');
    }
    Ok((scheme, authority.to_string(), path_and_query))
}

/// The body bytes for a content type; `None` when there is no data.
fn body(content_type: &str, data: &Value) -> Result<Option<Vec<u8>>, Error> {
    if data.is_null() {
        return Ok(None);
    }
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let bytes = if essence == "application/json" || essence.ends_with("+json") {
        data.to_string().into_bytes()
    } else if essence == "application/x-www-form-urlencoded" {
        let pairs: Vec<(String, String)> = match data {
            Value::Object(fields) => fields.iter().map(|(name, value)| (name.clone(), text(value))).collect(),
            // NocoBase's form editor writes `[{"name", "value"}]`.
            Value::Array(entries) => entries
                .iter()
                .enumerate()
                .map(|(index, entry)| match (entry.get("name"), entry.get("value")) {
                    (Some(Value::String(name)), value) => Ok((name.clone(), value.map(text).unwrap_or_default())),
                    _ => Err(fail(format!("data[{index}]: a form field is {{\"name\": \"...\", \"value\": ...}}"))),
                })
                .collect::<Result<_, _>>()?,
            _ => {
                return Err(fail(
                    "data: a form body (application/x-www-form-urlencoded) is an object or a list of {name, value}",
                ));
            }
        };
        let pairs: Vec<String> =
            pairs.iter().map(|(name, value)| format!("{}={}", percent_encode(name), percent_encode(value))).collect();
        pairs.join("&").into_bytes()
    } else {
        text(data).into_bytes()
    };
    Ok(Some(bytes))
}

/// A value as text: strings as they are, anything else as JSON.
fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn prepare(config: Value) -> Result<Prepared, String> {
        let config: Config = serde_json::from_value(config).map_err(|e| e.to_string())?;
        Prepared::new(&config).map_err(|e| e.message().to_string())
    }

    #[test]
    fn a_json_post_with_params() {
        let prepared = prepare(json!({
            "url": "https://api.example.com:8443/v1/orders?x=1#top",
            "params": [{"name": "q", "value": "a b&c"}, {"name": "n", "value": 2}],
            "headers": [{"name": "X-Token", "value": "t"}],
            "data": {"id": 7}
        }))
        .unwrap();
        assert_eq!(prepared.method, "POST");
        assert_eq!(prepared.scheme, Scheme::Https);
        assert_eq!(prepared.authority, "api.example.com:8443");
        assert_eq!(prepared.path_and_query, "/v1/orders?x=1&q=a%20b%26c&n=2");
        let headers: Vec<(&str, &[u8])> =
            prepared.headers.iter().map(|(name, value)| (name.as_str(), value.as_slice())).collect();
        assert_eq!(
            headers,
            [("X-Token", &b"t"[..]), ("content-type", &b"application/json"[..]), ("content-length", &b"8"[..])]
        );
        assert_eq!(prepared.body.as_deref(), Some(&br#"{"id":7}"#[..]));
        assert_eq!(prepared.timeout_ms, 5000);
    }

    #[test]
    fn a_get_without_body_and_a_form() {
        let get = prepare(json!({"method": "get", "url": "http://127.0.0.1:9000"})).unwrap();
        assert_eq!((get.method.as_str(), get.path_and_query.as_str(), get.body), ("GET", "/", None));
        assert!(get.headers.is_empty());
        let form = prepare(json!({"url": "http://h/f", "contentType": "application/x-www-form-urlencoded",
            "data": {"a": "1 2", "b": true}}))
        .unwrap();
        assert_eq!(form.body.as_deref(), Some(&b"a=1%202&b=true"[..]));
        let listed = prepare(json!({"url": "http://h/f", "contentType": "application/x-www-form-urlencoded",
            "data": [{"name": "a", "value": "1 2"}, {"name": "b", "value": 3}]}))
        .unwrap();
        assert_eq!(listed.body.as_deref(), Some(&b"a=1%202&b=3"[..]));
        let get_with_data = prepare(json!({"method": "GET", "url": "http://h/", "data": {"x": 1}})).unwrap();
        assert_eq!(get_with_data.body, None, "a GET sends no body");
    }

    #[test]
    fn faults_name_the_field() {
        let fault = |config: Value| prepare(config).unwrap_err();
        assert!(fault(json!({"url": "ftp://x"})).starts_with("url: expected an absolute http"));
        assert!(fault(json!({"url": "/relative"})).starts_with("url: expected"));
        assert!(fault(json!({"url": "http://u:p@h/"})).starts_with("url: credentials"));
        assert!(fault(json!({"url": "http://h", "method": "GE T"})).starts_with("method:"));
        assert!(
            fault(json!({"url": "http://h", "headers": [{"name": "a b", "value": 1}]})).starts_with("headers[0].name")
        );
        assert!(fault(json!({"url": "http://h", "timeout": 0})).starts_with("timeout:"));
        let form = |data: Value| {
            fault(json!({"url": "http://h", "contentType": "application/x-www-form-urlencoded", "data": data}))
        };
        assert!(form(json!("text")).starts_with("data: a form body"));
        assert!(form(json!([1])).starts_with("data[0]: a form field"));
        assert!(
            fault(json!({"url": "http://h", "headers": [{"name": "a", "value": "x\ny"}]}))
                .starts_with("headers[0].value: control characters")
        );
        assert!(fault(json!({"url": "http://h", "tiemout": 5})).contains("unknown field `tiemout`"));
    }
}
