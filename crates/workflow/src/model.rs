//! The workflow definition as operators write it (docs/workflows.md), in serde form.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::node::Reply;

/// A workflow definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Workflow {
    /// The webhook key; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A human title.
    #[serde(default)]
    pub title: String,
    /// Whether the webhook URL accepts requests.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Whether the caller waits for the execution (and its Response node).
    #[serde(default)]
    pub sync: bool,
    /// How requests are accepted and parsed.
    #[serde(default)]
    pub trigger: Trigger,
    /// The top-level chain of nodes.
    #[serde(default)]
    pub nodes: Vec<Node>,
    /// Execution-history options.
    #[serde(default)]
    pub options: Options,
}

/// The webhook trigger's configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    /// HTTP Basic credentials a caller must present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// Which parts of the request the operator expects.
    #[serde(default)]
    pub request: RequestSpec,
    /// The answer of an asynchronous workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<TriggerResponse>,
    /// How requests prove they come from the sender (checked on the raw body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
    /// Where a request's idempotency key comes from; a repeated key starts no second execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency: Option<Idempotency>,
    /// Sync workflows: past this many milliseconds the caller gets `202` and a `Location` to poll
    /// while the execution goes on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_deadline_ms: Option<u64>,
    /// Keys a caller presents in a header or the query string (senders that cannot sign).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKey>,
    /// Client addresses allowed to call (IPs or CIDR blocks); empty allows every address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_allowlist: Vec<String>,
    /// A sender's verification handshake, answered by the engine before any execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake: Option<Handshake>,
}

impl Trigger {
    /// Every secret of the trigger (the Basic password, signing secrets, API keys, handshake
    /// tokens) with where it is: what admin views mask and what a replacement sending the mask
    /// keeps.
    pub fn secrets(&self) -> Vec<(SecretSlot, &String)> {
        let mut secrets = Vec::new();
        if let Some(auth) = &self.basic_auth {
            secrets.push((SecretSlot::new("basicAuth.password", "basic"), &auth.password));
        }
        if let Some(signature) = &self.signature {
            let scheme = signature.scheme();
            for (index, secret) in signature.secrets().iter().enumerate() {
                secrets.push((SecretSlot::new(format!("signature.secrets[{index}]"), scheme), secret));
            }
        }
        if let Some(api_key) = &self.api_key {
            for (index, key) in api_key.keys.iter().enumerate() {
                secrets.push((SecretSlot::new(format!("apiKey.keys[{index}]"), "apiKey"), key));
            }
        }
        if let Some((field, secret)) = self.handshake.as_ref().and_then(Handshake::secret) {
            secrets.push((SecretSlot::new(format!("handshake.{field}"), "handshake"), secret));
        }
        secrets
    }

    /// [`Trigger::secrets`], to change.
    pub fn secrets_mut(&mut self) -> Vec<(SecretSlot, &mut String)> {
        let mut secrets = Vec::new();
        if let Some(auth) = &mut self.basic_auth {
            secrets.push((SecretSlot::new("basicAuth.password", "basic"), &mut auth.password));
        }
        if let Some(signature) = &mut self.signature {
            let scheme = signature.scheme();
            for (index, secret) in signature.secrets_mut().iter_mut().enumerate() {
                secrets.push((SecretSlot::new(format!("signature.secrets[{index}]"), scheme), secret));
            }
        }
        if let Some(api_key) = &mut self.api_key {
            for (index, key) in api_key.keys.iter_mut().enumerate() {
                secrets.push((SecretSlot::new(format!("apiKey.keys[{index}]"), "apiKey"), key));
            }
        }
        if let Some((field, secret)) = self.handshake.as_mut().and_then(Handshake::secret_mut) {
            secrets.push((SecretSlot::new(format!("handshake.{field}"), "handshake"), secret));
        }
        secrets
    }
}

/// Where a trigger secret is: its path under `trigger` and the scheme it belongs to (a signing
/// secret of one scheme is not one of another).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSlot {
    /// E.g. `signature.secrets[0]`.
    pub path: String,
    /// E.g. `stripe`, `basic`, `apiKey`.
    pub scheme: &'static str,
}

impl SecretSlot {
    fn new(path: impl Into<String>, scheme: &'static str) -> SecretSlot {
        SecretSlot { path: path.into(), scheme }
    }
}

/// Keys a caller presents: in a header, or in a query parameter (exactly one of the two; the
/// parameter is removed from `$context.query`). Several keys may be valid at once (rotation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKey {
    /// The header holding the key, e.g. `X-Api-Key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// The query parameter holding the key, e.g. `token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Accepted keys.
    pub keys: Vec<String>,
}

/// A sender's verification handshake: the engine answers it before any execution, so senders
/// that verify an endpoint before they deliver to it can be connected to any workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all_fields = "camelCase", deny_unknown_fields)]
pub enum Handshake {
    /// Slack's Events API: `{"type": "url_verification", "challenge": C}` → `{"challenge": C}`.
    #[serde(rename = "slack")]
    Slack,
    /// Microsoft Graph subscriptions: a POST with `?validationToken=T` → `T` as text.
    #[serde(rename = "microsoft-graph")]
    MicrosoftGraph,
    /// Meta (WhatsApp, Messenger, Instagram): `GET ?hub.mode=subscribe&hub.verify_token=V&hub.challenge=C`
    /// → `C` as text when `V` is the verify token.
    #[serde(rename = "meta")]
    Meta {
        /// The verify token set in Meta's dashboard.
        verify_token: String,
    },
    /// Zoom: `{"event": "endpoint.url_validation", "payload": {"plainToken": P}}` →
    /// `{"plainToken": P, "encryptedToken": hex(HMAC-SHA256(secret token, P))}`.
    #[serde(rename = "zoom")]
    Zoom {
        /// The app's secret token.
        secret_token: String,
    },
    /// X (Twitter) CRC: `GET ?crc_token=T` → `{"response_token": "sha256=" + base64(HMAC-SHA256(consumer secret, T))}`.
    #[serde(rename = "x")]
    X {
        /// The app's consumer secret.
        consumer_secret: String,
    },
    /// CloudEvents' abuse protection: `OPTIONS` with `WebHook-Request-Origin: O` → `200` with
    /// `WebHook-Allowed-Origin: O`.
    #[serde(rename = "cloudevents")]
    Cloudevents,
}

impl Handshake {
    /// The handshake's secret and the name of its field, if it has one.
    pub fn secret(&self) -> Option<(&'static str, &String)> {
        match self {
            Handshake::Meta { verify_token } => Some(("verifyToken", verify_token)),
            Handshake::Zoom { secret_token } => Some(("secretToken", secret_token)),
            Handshake::X { consumer_secret } => Some(("consumerSecret", consumer_secret)),
            Handshake::Slack | Handshake::MicrosoftGraph | Handshake::Cloudevents => None,
        }
    }

    /// [`Handshake::secret`], to change.
    pub fn secret_mut(&mut self) -> Option<(&'static str, &mut String)> {
        match self {
            Handshake::Meta { verify_token } => Some(("verifyToken", verify_token)),
            Handshake::Zoom { secret_token } => Some(("secretToken", secret_token)),
            Handshake::X { consumer_secret } => Some(("consumerSecret", consumer_secret)),
            Handshake::Slack | Handshake::MicrosoftGraph | Handshake::Cloudevents => None,
        }
    }
}

/// Where an idempotency key comes from (exactly one of `header` and `bodyPath`) and how long it
/// is remembered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Idempotency {
    /// A request header, e.g. `Idempotency-Key` or `webhook-id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// A path in the JSON body, e.g. `id` or `data.object.id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_path: Option<String>,
    /// How long a key is remembered (default one day).
    #[serde(default = "default_idempotency_ttl")]
    pub ttl_seconds: u64,
}

fn default_idempotency_ttl() -> u64 {
    86_400
}

/// A webhook signature scheme. Several secrets may be valid at once (rotation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all_fields = "camelCase", deny_unknown_fields)]
pub enum Signature {
    /// HMAC-SHA256 of the raw body in one header, e.g. GitHub's `X-Hub-Signature-256: sha256=<hex>`.
    #[serde(rename = "hmac-sha256")]
    HmacSha256 {
        /// The header holding the signature.
        header: String,
        /// Text before the signature in the header (e.g. `sha256=`).
        #[serde(default)]
        prefix: String,
        /// How the signature is written.
        #[serde(default)]
        encoding: SignatureEncoding,
        /// Accepted secrets.
        secrets: Vec<String>,
    },
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>` over
    /// `id.timestamp.body`, with `whsec_<base64>` secrets (also under the `svix-` header names);
    /// `v1a,<base64>` ed25519 signatures against `whpk_<base64>` public keys.
    #[serde(rename = "standard-webhooks")]
    StandardWebhooks {
        /// Accepted secrets (`whsec_...`).
        secrets: Vec<String>,
        /// How far the timestamp may be from now, in seconds (default 300).
        #[serde(default = "default_tolerance", rename = "toleranceSeconds")]
        tolerance_seconds: u64,
    },
    /// Stripe: `Stripe-Signature: t=<time>,v1=<hex>` over `time.body`.
    #[serde(rename = "stripe")]
    Stripe {
        /// Accepted endpoint secrets (`whsec_...`).
        secrets: Vec<String>,
        /// How far the timestamp may be from now, in seconds (default 300).
        #[serde(default = "default_tolerance", rename = "toleranceSeconds")]
        tolerance_seconds: u64,
    },
    /// Slack: `X-Slack-Signature: v0=<hex>`, HMAC-SHA256 of `v0:<X-Slack-Request-Timestamp>:<body>`.
    #[serde(rename = "slack")]
    Slack {
        /// Accepted signing secrets.
        secrets: Vec<String>,
        /// How far the timestamp may be from now, in seconds (default 300).
        #[serde(default = "default_tolerance", rename = "toleranceSeconds")]
        tolerance_seconds: u64,
    },
    /// Zoom: `x-zm-signature: v0=<hex>`, HMAC-SHA256 of `v0:<x-zm-request-timestamp>:<body>`.
    #[serde(rename = "zoom")]
    Zoom {
        /// Accepted secret tokens.
        secrets: Vec<String>,
        /// How far the timestamp may be from now, in seconds (default 300).
        #[serde(default = "default_tolerance", rename = "toleranceSeconds")]
        tolerance_seconds: u64,
    },
    /// Twilio: `X-Twilio-Signature`, base64 HMAC-SHA1 of the URL the sender called (built from
    /// `--public-url`) followed by the form parameters sorted by name, each name then value.
    #[serde(rename = "twilio")]
    Twilio {
        /// Accepted auth tokens.
        secrets: Vec<String>,
    },
}

impl Signature {
    /// The accepted secrets.
    pub fn secrets(&self) -> &[String] {
        match self {
            Signature::HmacSha256 { secrets, .. }
            | Signature::StandardWebhooks { secrets, .. }
            | Signature::Stripe { secrets, .. }
            | Signature::Slack { secrets, .. }
            | Signature::Zoom { secrets, .. }
            | Signature::Twilio { secrets } => secrets,
        }
    }

    /// The accepted secrets, to change.
    pub fn secrets_mut(&mut self) -> &mut Vec<String> {
        match self {
            Signature::HmacSha256 { secrets, .. }
            | Signature::StandardWebhooks { secrets, .. }
            | Signature::Stripe { secrets, .. }
            | Signature::Slack { secrets, .. }
            | Signature::Zoom { secrets, .. }
            | Signature::Twilio { secrets } => secrets,
        }
    }

    /// The scheme's name, as `type` says it.
    pub fn scheme(&self) -> &'static str {
        match self {
            Signature::HmacSha256 { .. } => "hmac-sha256",
            Signature::StandardWebhooks { .. } => "standard-webhooks",
            Signature::Stripe { .. } => "stripe",
            Signature::Slack { .. } => "slack",
            Signature::Zoom { .. } => "zoom",
            Signature::Twilio { .. } => "twilio",
        }
    }
}

/// How an HMAC signature is written in its header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum SignatureEncoding {
    /// Lower- or upper-case hexadecimal.
    #[default]
    Hex,
    /// Standard base64.
    Base64,
}

/// A secret of the Standard Webhooks form `whsec_<base64>` as key bytes (not a `whpk_` public
/// key).
pub fn standard_webhooks_key(secret: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    if secret.starts_with("whpk_") {
        return None;
    }
    base64::engine::general_purpose::STANDARD.decode(secret.strip_prefix("whsec_").unwrap_or(secret)).ok()
}

/// An entry of `trigger.ipAllowlist`: a CIDR block (`203.0.113.0/24`, `2001:db8::/32`) or one
/// address.
pub fn parse_address_block(text: &str) -> Option<ipnet::IpNet> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>().ok().or_else(|| text.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

/// A Standard Webhooks public key `whpk_<base64>`: 32 bytes of an ed25519 key.
pub fn standard_webhooks_public_key(secret: &str) -> Option<[u8; 32]> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD.decode(secret.strip_prefix("whpk_")?).ok()?;
    bytes.try_into().ok()
}

fn default_tolerance() -> u64 {
    300
}

/// HTTP Basic credentials (RFC 7617).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
}

/// The request parts the trigger captures or documents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    /// Header names to capture.
    #[serde(default)]
    pub headers: Vec<Variable>,
    /// Query paths the operator expects.
    #[serde(default)]
    pub query: Vec<Variable>,
    /// Body paths the operator expects.
    #[serde(default)]
    pub body: Vec<Variable>,
    /// Also give nodes the body as it arrived, base64, as `$context.rawBody` (for a node that
    /// checks a signature scheme the engine lacks).
    #[serde(default, rename = "rawBody", skip_serializing_if = "std::ops::Not::not")]
    pub raw_body: bool,
}

/// One configured request variable: a path (or header name) and its display name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Variable {
    /// The path, or the header name.
    pub key: String,
    /// The display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

/// The configured answer of an asynchronous workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TriggerResponse {
    /// Status code (default 200).
    #[serde(default = "ok_status")]
    pub status_code: u16,
    /// Response headers.
    #[serde(default)]
    pub headers: Vec<HeaderSpec>,
    /// The body: a string is sent as text, anything else as JSON (default `"ok"`).
    #[serde(default = "ok_body")]
    pub body: Value,
}

impl TriggerResponse {
    /// The HTTP answer: a string body is sent as `text/plain; charset=utf-8`, anything else as
    /// JSON, unless a `Content-Type` header is configured (the Response node's rule).
    pub fn reply(&self) -> Reply {
        let mut headers: Vec<(String, String)> =
            self.headers.iter().map(|header| (header.name.clone(), header.value.clone())).collect();
        let has_content_type = headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
        let (content_type, body) = match &self.body {
            Value::Null => (None, Vec::new()),
            Value::String(text) => (Some("text/plain; charset=utf-8"), text.clone().into_bytes()),
            other => (Some("application/json"), other.to_string().into_bytes()),
        };
        if let Some(content_type) = content_type.filter(|_| !has_content_type) {
            headers.push(("content-type".into(), content_type.into()));
        }
        Reply { status: self.status_code, headers, body }
    }
}

impl Default for TriggerResponse {
    fn default() -> Self {
        Self { status_code: ok_status(), headers: Vec::new(), body: ok_body() }
    }
}

/// One configured response header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HeaderSpec {
    /// Header name.
    pub name: String,
    /// Header value.
    pub value: String,
}

/// What stands in for a secret in answers, records and logs; never accepted as a secret itself.
pub const SECRET_MASK: &str = "********";

/// Workflow options (NocoBase keeps history settings here).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Options {
    /// Execution statuses whose records are deleted once finished.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delete_execution_on_status: Vec<String>,
    /// Most jobs one execution records (default `--max-jobs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_jobs: Option<u64>,
    /// Most bytes of recorded JSON one execution holds (default `--max-record`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_record_bytes: Option<u64>,
    /// Most node time of one async execution, in milliseconds (default `--max-run-time`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_run_time_ms: Option<u64>,
    /// Most async executions of this workflow queued or running (default `--max-queue`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queued: Option<u64>,
    /// Most async executions of this workflow running at once (default: as many as workers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub max_concurrency: Option<u64>,
    /// Runs a failed async execution again from its failed job, with backoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    /// The key of an async workflow started with the execution when one ends `error`,
    /// `aborted` or `failed` for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<String>,
    /// Most trigger requests accepted per period (a token bucket); more are `429 rate_limited`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
}

/// `options.retry`: how often, and how far apart, a failed async execution runs again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retry {
    /// Runs in all, the first included (default 5).
    #[serde(default = "default_max_attempts")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100))]
    pub max_attempts: u32,
    /// The wait before the second attempt, doubled for each one after (default `10s`).
    #[serde(default = "default_initial_delay")]
    #[cfg_attr(feature = "openapi", schema(example = "10s"))]
    pub initial_delay: String,
    /// The longest wait between two attempts (default `1h`).
    #[serde(default = "default_max_delay")]
    #[cfg_attr(feature = "openapi", schema(example = "1h"))]
    pub max_delay: String,
}

fn default_max_attempts() -> u32 {
    5
}

fn default_initial_delay() -> String {
    "10s".into()
}

fn default_max_delay() -> String {
    "1h".into()
}

/// `options.rateLimit`: a token bucket of `burst` tokens (default `requests`), refilled at
/// `requests` per `per`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    /// Requests per period.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub requests: u32,
    /// The period (default `1s`).
    #[serde(default = "default_rate_period")]
    #[cfg_attr(feature = "openapi", schema(example = "1s"))]
    pub per: String,
    /// How many requests may arrive at once (default `requests`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub burst: Option<u32>,
}

fn default_rate_period() -> String {
    "1s".into()
}

/// A duration as options write it (`"10s"`, `"250ms"`, `"1h 30m"`); `None` when it does not parse.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    humantime::parse_duration(text.trim()).ok()
}

/// One node of a chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Unique within the workflow; names the node's output in `$jobsMapByNodeKey`.
    pub key: String,
    /// The node type (a plugin name).
    #[serde(rename = "type")]
    pub node_type: String,
    /// A human title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The node's config; may hold templates.
    #[serde(default = "empty_object")]
    pub config: Value,
    /// Named sub-chains the node may pick.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "openapi", schema(no_recursion))]
    pub branches: BTreeMap<String, Vec<Node>>,
}

fn yes() -> bool {
    true
}

fn ok_status() -> u16 {
    200
}

fn ok_body() -> Value {
    Value::String("ok".into())
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}
