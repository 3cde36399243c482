//! The operator's secrets (`--secret`, `HOOKFLOW_SECRET_<NAME>`, `--secrets-file`): what
//! `{{$secrets.NAME}}` resolves to, and the masking that keeps their values out of records,
//! logs and views. Nodes and the caller see the real values.

use serde_json::{Map, Value};

use super::execution::Execution;
use super::model::SECRET_MASK;

/// Named secret values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    /// By name, as `$secrets` resolves them.
    values: Map<String, Value>,
    /// The values to mask, longest first (so a value containing another is masked whole).
    masked: Vec<String>,
}

/// A secret that cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Not `NAME=VALUE`.
    #[error("expected NAME=VALUE, got {0:?}")]
    Malformed(String),
    /// The name is not `[A-Za-z0-9_]+`.
    #[error("secret name {0:?}: use letters, digits and _")]
    BadName(String),
    /// An empty value would mask nothing and resolve to nothing.
    #[error("secret {0}: the value is empty")]
    Empty(String),
    /// The mask itself cannot be a secret.
    #[error("secret {0}: {SECRET_MASK:?} is the mask, not a secret")]
    Mask(String),
}

impl Secrets {
    /// Secrets from `(name, value)` pairs; a later pair with the same name replaces an earlier one.
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Secrets, SecretError> {
        let mut values = Map::new();
        for (name, value) in pairs {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(SecretError::BadName(name.to_string()));
            }
            if value.is_empty() {
                return Err(SecretError::Empty(name.to_string()));
            }
            if value == SECRET_MASK {
                return Err(SecretError::Mask(name.to_string()));
            }
            values.insert(name.to_string(), Value::String(value.to_string()));
        }
        let mut masked: Vec<String> = values.values().filter_map(Value::as_str).map(str::to_string).collect();
        masked.sort_by_key(|value| std::cmp::Reverse(value.len()));
        masked.dedup();
        Ok(Secrets { values, masked })
    }

    /// Parses one `NAME=VALUE` (a flag's or a file line's).
    pub fn parse_pair(text: &str) -> Result<(String, String), SecretError> {
        let (name, value) = text.split_once('=').ok_or_else(|| SecretError::Malformed(text.to_string()))?;
        Ok((name.trim().to_string(), value.to_string()))
    }

    /// `$secrets`: the values by name.
    pub fn values(&self) -> &Map<String, Value> {
        &self.values
    }

    /// The names, for messages.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// `text` with every occurrence of a secret's value replaced by the mask; `None` when it
    /// holds none (the common case costs one search per secret).
    pub fn mask_text(&self, text: &str) -> Option<String> {
        let mut masked: Option<String> = None;
        for value in &self.masked {
            let current = masked.as_deref().unwrap_or(text);
            if current.contains(value.as_str()) {
                masked = Some(current.replace(value.as_str(), SECRET_MASK));
            }
        }
        masked
    }

    /// Masks every string (and object key) inside a JSON value, in place.
    pub fn mask_value(&self, value: &mut Value) {
        if self.masked.is_empty() {
            return;
        }
        let mut stack = vec![value];
        while let Some(value) = stack.pop() {
            match value {
                Value::String(text) => {
                    if let Some(masked) = self.mask_text(text) {
                        *text = masked;
                    }
                }
                Value::Array(items) => stack.extend(items.iter_mut()),
                Value::Object(map) => {
                    if map.keys().any(|key| self.mask_text(key).is_some()) {
                        let entries = std::mem::take(map);
                        for (key, item) in entries {
                            map.insert(self.mask_text(&key).unwrap_or(key), item);
                        }
                    }
                    stack.extend(map.values_mut());
                }
                _ => {}
            }
        }
    }

    /// Masks the values of credential headers written into a config as `{"name", "value"}`
    /// entries (an `http-request` node's `headers`): `Authorization`, `Proxy-Authorization`,
    /// `Cookie`, and any name holding `token`, `secret`, `password` or `api-key`/`apikey`. The
    /// node sends the real value; the record keeps the mask.
    pub fn mask_credential_headers(value: &mut Value) {
        let mut stack = vec![value];
        while let Some(value) = stack.pop() {
            match value {
                Value::Array(items) => stack.extend(items.iter_mut()),
                Value::Object(map) => {
                    let credential = map.get("name").and_then(Value::as_str).is_some_and(is_credential_header);
                    if credential && let Some(held) = map.get_mut("value") {
                        *held = Value::String(SECRET_MASK.into());
                    }
                    stack.extend(map.values_mut());
                }
                _ => {}
            }
        }
    }

    /// Masks an execution record for showing: its trigger data, its error and each job's input,
    /// output and error.
    pub fn mask_execution(&self, execution: &mut Execution) {
        if self.masked.is_empty() {
            return;
        }
        let mask_text = |text: &mut Option<String>| {
            if let Some(masked) = text.as_deref().and_then(|text| self.mask_text(text)) {
                *text = Some(masked);
            }
        };
        let mut trigger = std::mem::take(&mut execution.trigger);
        self.mask_value(&mut trigger);
        execution.set_trigger(trigger);
        mask_text(&mut execution.error);
        for job in &mut execution.jobs {
            self.mask_value(&mut job.input);
            self.mask_value(&mut job.output);
            mask_text(&mut job.error);
        }
    }

    /// Whether there are no secrets.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Whether a header name carries a credential.
fn is_credential_header(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase();
    matches!(name.as_str(), "authorization" | "proxy-authorization" | "cookie")
        || ["token", "secret", "password", "api-key", "apikey", "api_key"].iter().any(|part| name.contains(part))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn masks_every_occurrence_longest_first() {
        let secrets = Secrets::new([("TOKEN", "tok-123"), ("LONG", "tok-123-extra")]).unwrap();
        assert_eq!(secrets.mask_text("a tok-123 b tok-123-extra"), Some("a ******** b ********".into()));
        assert_eq!(secrets.mask_text("nothing here"), None);
        let mut value = json!({"h": ["Bearer tok-123"], "tok-123": 1, "n": 5});
        secrets.mask_value(&mut value);
        assert_eq!(value, json!({"h": ["Bearer ********"], "********": 1, "n": 5}));
    }

    #[test]
    fn masks_credential_headers_in_configs() {
        let mut config = json!({"url": "https://x", "headers": [
            {"name": "Authorization", "value": "Bearer live"}, {"name": "X-Api-Key", "value": "k"},
            {"name": "X-Auth-Token", "value": "t"}, {"name": "Accept", "value": "application/json"}]});
        Secrets::mask_credential_headers(&mut config);
        let values: Vec<&str> =
            config["headers"].as_array().unwrap().iter().map(|h| h["value"].as_str().unwrap()).collect();
        assert_eq!(values, ["********", "********", "********", "application/json"]);
    }

    #[test]
    fn refuses_bad_secrets() {
        assert_eq!(Secrets::new([("A-B", "x")]), Err(SecretError::BadName("A-B".into())));
        assert_eq!(Secrets::new([("A", "")]), Err(SecretError::Empty("A".into())));
        assert_eq!(Secrets::new([("A", "********")]), Err(SecretError::Mask("A".into())));
        assert_eq!(Secrets::parse_pair("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert!(Secrets::parse_pair("novalue").is_err());
        let later = Secrets::new([("A", "one"), ("A", "two")]).unwrap();
        assert_eq!(later.values()["A"], "two");
    }
}
