//! The CLI's HTTP client of a running server's admin API (`--server`, token from
//! `HOOKFLOW_ADMIN_TOKEN`): one request per call, answers as JSON, error answers turned into
//! messages that say what to do.

use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use http::{Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a whole call may take (an upload is compiled before the server answers).
const CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// Where the admin API is and how to authenticate.
pub struct AdminClient {
    /// `host:port`.
    authority: String,
    /// Path prefix of the server (empty, or e.g. `/hookflow` behind a proxy).
    base_path: String,
    /// The URL as the user gave it, for messages.
    server: String,
    token: Option<String>,
}

/// A successful answer.
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The JSON body (`null` when empty).
    pub body: Value,
}

impl AdminClient {
    /// A client of the server at `server` (`http://host:port`, optionally with a path prefix).
    pub fn new(server: &str, token: Option<String>) -> anyhow::Result<AdminClient> {
        let uri: Uri = server.parse().with_context(|| format!("--server {server:?} is not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => bail!(
                "--server {server}: the CLI speaks plain HTTP only; run it on the engine's host, or through an SSH tunnel to the engine's listen address"
            ),
            _ => bail!("--server {server:?} must look like http://127.0.0.1:13000"),
        }
        let authority = uri.authority().with_context(|| format!("--server {server:?} has no host"))?;
        let authority = match authority.port_u16() {
            Some(_) => authority.to_string(),
            None => format!("{authority}:80"),
        };
        Ok(AdminClient {
            authority,
            base_path: uri.path().trim_end_matches('/').to_string(),
            server: server.to_string(),
            token: token.filter(|token| !token.is_empty()),
        })
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> anyhow::Result<Answer> {
        self.call(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body (or none).
    pub async fn post(&self, path: &str, json: Option<String>) -> anyhow::Result<Answer> {
        self.call(Method::POST, path, json.map(|json| ("application/json", json.into_bytes()))).await
    }

    /// `PUT path` with a body of the given content type.
    pub async fn put(&self, path: &str, content_type: &'static str, body: Vec<u8>) -> anyhow::Result<Answer> {
        self.call(Method::PUT, path, Some((content_type, body))).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> anyhow::Result<Answer> {
        self.call(Method::DELETE, path, None).await
    }

    /// One call; a non-2xx answer becomes an error naming the status, the code and the message
    /// (and each validation fault on a line of its own).
    async fn call(&self, method: Method, path: &str, body: Option<(&'static str, Vec<u8>)>) -> anyhow::Result<Answer> {
        let (status, bytes) = tokio::time::timeout(CALL_TIMEOUT, self.exchange(method, path, body))
            .await
            .map_err(|_| anyhow!("{} did not answer within {}s", self.server, CALL_TIMEOUT.as_secs()))??;
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        if status.is_success() {
            return Ok(Answer { status, body });
        }
        Err(anyhow!(error_message(status, &body, self.token.is_some())))
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.authority))
            .await
            .map_err(|_| anyhow!("cannot reach {}: no answer within {}s", self.server, CONNECT_TIMEOUT.as_secs()))?
            .with_context(|| {
                format!(
                    "cannot reach the hookflow server at {} (is `hookflow serve` running? point --server or HOOKFLOW_SERVER at it)",
                    self.server
                )
            })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("cannot talk HTTP to {}", self.server))?;
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base_path))
            .header(header::HOST, &self.authority)
            .header(header::ACCEPT, "application/json");
        if let Some(token) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let (content_type, bytes) = body.unwrap_or(("application/json", Vec::new()));
        if !bytes.is_empty() {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let request = request.body(Full::new(Bytes::from(bytes))).context("cannot build the request")?;
        let response =
            sender.send_request(request).await.with_context(|| format!("the request to {} failed", self.server))?;
        let status = response.status();
        let bytes = response.into_body().collect().await.context("the answer broke off")?.to_bytes();
        Ok((status, bytes))
    }
}

/// `404 not_found: no workflow has the key "x"`, plus a hint for auth failures and each fault.
fn error_message(status: StatusCode, body: &Value, has_token: bool) -> String {
    let error = &body["error"];
    let code = error["code"].as_str().unwrap_or("error");
    let message = error["message"].as_str().map_or_else(|| body.to_string(), str::to_string);
    let mut text = format!("{} {code}: {message}", status.as_u16());
    if let Some(faults) = error["faults"].as_array() {
        // The message lists the faults too; one per line reads better.
        text = format!("{} {code}: the definition has {} fault(s):", status.as_u16(), faults.len());
        for fault in faults {
            let path = fault["path"].as_str().unwrap_or("");
            let why = fault["message"].as_str().unwrap_or("");
            text.push_str(&format!("\n  {path}: {why}"));
        }
    }
    if status == StatusCode::UNAUTHORIZED && !has_token {
        text.push_str("\n  set HOOKFLOW_ADMIN_TOKEN to the server's --admin-token");
    }
    text
}
