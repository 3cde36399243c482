//! A deliberately small HTTP/1.1 client over a plain `TcpStream`: it sends exactly the bytes a
//! test asks for (malformed headers, odd methods, chunked bodies) and parses what comes back.
//! Shared with `engine/tests/cli.rs` through `#[path]`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header names (lower-case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body (chunked transfer decoded).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A header value by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?} (status {})", self.text(), self.status))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `error.code` of a JSON error body.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or_default().to_string()
    }
}

/// Sends a POST with the given headers and body (`Content-Length` is added).
pub fn post(address: SocketAddr, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
    request(address, "POST", path, headers, body)
}

/// Sends a request with any method; `Content-Length` is added when the body is not empty.
pub fn request(address: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
    send_raw(address, &request_bytes(address, method, path, headers, body), method == "HEAD")
}

/// Sends raw bytes and reads the response until the server closes the connection; panics when
/// there is no response.
pub fn send_raw(address: SocketAddr, raw: &[u8], head_only: bool) -> HttpResponse {
    try_send_raw(address, raw, head_only).unwrap_or_else(|error| panic!("{error}"))
}

/// Sends raw bytes; `Err` when the connection fails or closes before a whole response head.
pub fn try_send_raw(address: SocketAddr, raw: &[u8], head_only: bool) -> Result<HttpResponse, String> {
    let mut stream = TcpStream::connect(address).map_err(|e| format!("cannot connect to {address}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(60))).ok();
    // A server may answer (413) and close before it has read everything: ignore write errors.
    let _ = stream.write_all(raw);
    let mut received = Vec::new();
    let _ = stream.read_to_end(&mut received);
    parse_response(&received, head_only)
}

/// The bytes of a request with `Content-Length` added when the body is not empty.
pub fn request_bytes(address: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body);
    raw
}

fn parse_response(raw: &[u8], head_only: bool) -> Result<HttpResponse, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no complete response head in {:?}", String::from_utf8_lossy(raw)))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if head_only {
        Vec::new()
    } else if chunked {
        decode_chunked(rest)
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse { status, headers, body })
}

fn decode_chunked(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&rest[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16).unwrap_or(0);
        rest = &rest[line_end + 2..];
        if size == 0 || rest.len() < size {
            break;
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[(size + 2).min(rest.len())..];
    }
    body
}
