//! What the operator grants a node type beyond the bare sandbox: outbound HTTP to listed hosts
//! (through `wasi:http`), environment variables by name, and a longer time budget. Without a
//! grant a node has none of these.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt as _;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

use super::connect::{checked_address, send_tls};

/// The node type that makes outbound HTTP calls, and its default time budget (its requests have
/// their own timeouts; the budget bounds the whole call).
const HTTP_REQUEST_TYPE: &str = "http-request";
const HTTP_REQUEST_BUDGET: Duration = Duration::from_secs(60);

/// Grants by node type.
#[derive(Debug, Clone)]
pub struct Grants {
    by_type: HashMap<String, Grant>,
}

/// What one node type is granted.
#[derive(Debug, Clone, Default)]
pub struct Grant {
    /// Hosts it may send HTTP requests to.
    pub outbound: Arc<[HostPattern]>,
    /// Environment variables it sees: names and values, read when the grant was made.
    pub env: Vec<(String, String)>,
    /// Its time budget per call, instead of the host's.
    pub time_budget: Option<Duration>,
}

impl Default for Grants {
    /// No grants, but the built-in `http-request` node's longer time budget.
    fn default() -> Self {
        let http_request = Grant { time_budget: Some(HTTP_REQUEST_BUDGET), ..Grant::default() };
        Grants { by_type: HashMap::from([(HTTP_REQUEST_TYPE.to_string(), http_request)]) }
    }
}

impl Grants {
    /// Lets nodes of `node_type` send HTTP requests to these hosts (added to earlier ones).
    pub fn allow_outbound(&mut self, node_type: &str, hosts: &[HostPattern]) {
        let grant = self.by_type.entry(node_type.to_string()).or_default();
        grant.outbound = grant.outbound.iter().chain(hosts).cloned().collect();
    }

    /// Shows nodes of `node_type` these environment variables, with their values now; returns
    /// the names that are not set (and so not shown).
    pub fn allow_env(&mut self, node_type: &str, names: &[String]) -> Vec<String> {
        let grant = self.by_type.entry(node_type.to_string()).or_default();
        let mut missing = Vec::new();
        for name in names {
            match std::env::var(name) {
                Ok(value) => grant.env.push((name.clone(), value)),
                Err(_) => missing.push(name.clone()),
            }
        }
        missing
    }

    /// Sets the time budget of one call of a `node_type` node.
    pub fn set_time_budget(&mut self, node_type: &str, budget: Duration) {
        self.by_type.entry(node_type.to_string()).or_default().time_budget = Some(budget);
    }

    /// The grant of a node type, if it has one.
    pub fn get(&self, node_type: &str) -> Option<&Grant> {
        self.by_type.get(node_type)
    }
}

/// A host an outbound grant lets through: `api.example.com` (its scheme's default port),
/// `api.example.com:8443`, `127.0.0.1:*` (any port), `*.example.com` (any subdomain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// Lower-case host; with `subdomains`, the suffix after `*.`.
    host: String,
    subdomains: bool,
    port: PortPattern,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortPattern {
    /// 80 for http, 443 for https.
    Default,
    Exact(u16),
    Any,
}

/// A host pattern that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a host pattern: use host, host:port, host:* or *.domain")]
pub struct HostPatternError(String);

impl FromStr for HostPattern {
    type Err = HostPatternError;

    fn from_str(text: &str) -> Result<HostPattern, HostPatternError> {
        let error = || HostPatternError(text.to_string());
        let text = text.trim();
        // An IPv6 literal keeps its brackets, as in a URL's authority.
        let (host, port) = match text.rfind(':') {
            Some(colon) if !text[colon..].contains(']') => (&text[..colon], Some(&text[colon + 1..])),
            _ => (text, None),
        };
        let port = match port {
            None => PortPattern::Default,
            Some("*") => PortPattern::Any,
            Some(port) => PortPattern::Exact(port.parse().map_err(|_| error())?),
        };
        let (host, subdomains) = match host.strip_prefix("*.") {
            Some(suffix) => (suffix, true),
            None => (host, false),
        };
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
        let ipv6 = host.strip_prefix('[').and_then(|rest| rest.strip_suffix(']'));
        let well_formed = match ipv6 {
            Some(address) => address.parse::<std::net::Ipv6Addr>().is_ok() && !subdomains,
            None => !host.is_empty() && host.chars().all(valid),
        };
        if !well_formed {
            return Err(error());
        }
        Ok(HostPattern { host: host.to_ascii_lowercase(), subdomains, port })
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let wildcard = if self.subdomains { "*." } else { "" };
        match self.port {
            PortPattern::Default => write!(f, "{wildcard}{}", self.host),
            PortPattern::Exact(port) => write!(f, "{wildcard}{}:{port}", self.host),
            PortPattern::Any => write!(f, "{wildcard}{}:*", self.host),
        }
    }
}

impl HostPattern {
    /// Whether a request to `host:port` (`port` already defaulted from the scheme) passes;
    /// `default_port` is the scheme's.
    pub fn allows(&self, host: &str, port: u16, default_port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        let host_matches = if self.subdomains {
            host.strip_suffix(&self.host).is_some_and(|rest| rest.ends_with('.') && rest.len() > 1)
        } else {
            host == self.host
        };
        let port_matches = match self.port {
            PortPattern::Default => port == default_port,
            PortPattern::Exact(allowed) => port == allowed,
            PortPattern::Any => true,
        };
        host_matches && port_matches
    }
}

/// The `wasi:http` hooks of one node call: a request to a host outside the grant fails with
/// `HTTP-request-denied` before any connection is made; one inside it must be answered before
/// the call's time budget runs out, whatever timeouts the node asked for.
pub(super) struct Outbound {
    allowed: Arc<[HostPattern]>,
    deadline: tokio::time::Instant,
}

impl Outbound {
    /// The hooks of a call that may reach `allowed` and must be done within `budget`.
    pub(super) fn new(allowed: Arc<[HostPattern]>, budget: Duration) -> Outbound {
        Outbound { allowed, deadline: tokio::time::Instant::now() + budget }
    }

    fn permits(&self, uri: &http::Uri) -> bool {
        let (Some(authority), Some(host)) = (uri.authority(), uri.host()) else { return false };
        // The connection goes to the whole authority: user info would hide what `host()` says.
        if authority.as_str().contains('@') {
            return false;
        }
        let default_port = if uri.scheme() == Some(&http::uri::Scheme::HTTPS) { 443 } else { 80 };
        let port = uri.port_u16().unwrap_or(default_port);
        self.allowed.iter().any(|pattern| pattern.allows(host, port, default_port))
    }
}

/// A boxed future of `wasmtime_wasi_http`'s hook signatures.
type BoxedFuture<T> = Box<dyn Future<Output = T> + Send>;

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _errors: BoxedFuture<Result<(), wasmtime_wasi_http::Error>>,
    ) -> BoxedFuture<
        Result<
            (http::Response<WasiBody>, BoxedFuture<Result<(), wasmtime_wasi_http::Error>>),
            wasmtime_wasi_http::Error,
        >,
    > {
        if !self.permits(request.uri()) {
            tracing::debug!(uri = %request.uri(), "outbound request denied");
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        let deadline = self.deadline;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let within = |asked: Option<Duration>| Some(asked.map_or(left, |asked| asked.min(left)));
        let options = options.unwrap_or_default();
        let options = RequestOptions {
            connect_timeout: within(options.connect_timeout),
            first_byte_timeout: within(options.first_byte_timeout),
            between_bytes_timeout: within(options.between_bytes_timeout),
        };
        Box::new(async move {
            let timed_out = |_| wasmtime_wasi_http::Error::HttpResponseTimeout;
            let uri = request.uri().clone();
            let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
            let host = uri.host().unwrap_or_default();
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            // Resolved and checked here; the connection goes to this very address.
            let address = tokio::time::timeout_at(deadline, checked_address(host, port)).await.map_err(timed_out)??;
            if https {
                return send_tls(request, address, host.trim_start_matches('[').trim_end_matches(']'), deadline).await;
            }
            let path = uri.path_and_query().map_or("/", |path| path.as_str());
            *request.uri_mut() = format!("http://{address}{path}")
                .parse()
                .map_err(|_| wasmtime_wasi_http::Error::HttpRequestUriInvalid)?;
            let sent = wasmtime_wasi_http::default_send_request(request, Some(options));
            let (response, io) = tokio::time::timeout_at(deadline, sent).await.map_err(timed_out)??;
            let io: BoxedFuture<Result<(), wasmtime_wasi_http::Error>> = Box::new(io);
            Ok((response.map(|body| body.boxed_unsync()), io))
        })
    }

    /// A certificate the webpki roots do not vouch for is `tls-certificate-error` (the node names
    /// it); every other TLS failure stays a protocol error.
    fn p2_error_from_tls(&mut self, error: &std::io::Error) -> ErrorCode {
        let rejected = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<tokio_rustls::rustls::Error>())
            .is_some_and(|tls| matches!(tls, tokio_rustls::rustls::Error::InvalidCertificate(_)));
        tracing::debug!(%error, "outbound TLS failed");
        if rejected { ErrorCode::TlsCertificateError } else { ErrorCode::TlsProtocolError }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> HostPattern {
        text.parse().unwrap()
    }

    #[test]
    fn patterns_match_host_and_port() {
        assert!(pattern("api.example.com").allows("API.example.com", 443, 443));
        assert!(!pattern("api.example.com").allows("api.example.com", 8443, 443), "default port only");
        assert!(pattern("api.example.com:8443").allows("api.example.com", 8443, 443));
        assert!(pattern("127.0.0.1:*").allows("127.0.0.1", 39123, 80));
        assert!(!pattern("127.0.0.1:*").allows("127.0.0.2", 80, 80));
        assert!(pattern("*.example.com").allows("a.b.example.com", 443, 443));
        assert!(!pattern("*.example.com").allows("example.com", 443, 443));
        assert!(!pattern("*.example.com").allows("badexample.com", 443, 443));
        assert!(pattern("[::1]:*").allows("[::1]", 8080, 80));
        assert_eq!(pattern("[::1]:*").to_string(), "[::1]:*");
    }

    #[test]
    fn requests_are_checked_on_host_and_port_not_user_info() {
        let outbound = Outbound::new(["api.example.com".parse().unwrap()].into(), Duration::from_secs(1));
        let permits = |uri: &str| outbound.permits(&uri.parse().unwrap());
        assert!(permits("https://api.example.com/x"));
        assert!(permits("https://API.EXAMPLE.COM:443/x"));
        assert!(permits("http://api.example.com/x"), "a bare host means its scheme's default port");
        assert!(!permits("https://api.example.com:80/x"), "80 is not https' default port");
        assert!(!permits("http://api.example.com:8080/x"));
        assert!(!permits("https://evil.test@api.example.com/x"));
        assert!(!permits("https://api.example.com.evil.test/x"));
        assert!(!permits("/relative"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in ["", "host:port", "a b", "http://x", ":80", "*.:1", "::1", "fe80::1:*", "[::zz]", "*.[::1]"] {
            assert!(bad.parse::<HostPattern>().is_err(), "{bad:?}");
        }
    }
}
