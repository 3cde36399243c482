//! A deliberately small HTTP/1.1 client over a plain `TcpStream`: it sends exactly the bytes a
//! test asks for (malformed headers, odd methods, chunked bodies) and parses what comes back.

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

    /// The `error.message` of a JSON error body.
    pub fn error_message(&self) -> String {
        self.json()["error"]["message"].as_str().unwrap_or_default().to_string()
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

/// Sends raw bytes (one request that asks to close) and reads one strictly framed response,
/// then requires the server to close with nothing more; panics otherwise.
pub fn send_raw(address: SocketAddr, raw: &[u8], head_only: bool) -> HttpResponse {
    try_send_raw(address, raw, head_only).unwrap_or_else(|error| panic!("{error}"))
}

/// Sends raw bytes; `Err` when the connection fails, the response is not framed as its head
/// says (a short body, a malformed chunk), or bytes follow it before the server closes.
pub fn try_send_raw(address: SocketAddr, raw: &[u8], head_only: bool) -> Result<HttpResponse, String> {
    let mut connection = Connection::open(address)?;
    // A server may answer (413) and close before it has read everything: ignore write errors.
    let _ = connection.stream.write_all(raw);
    let response = connection.read_response(head_only)?;
    connection.expect_closed()?;
    Ok(response)
}

/// The bytes of a request that asks the server to close after answering, with `Content-Length`
/// added when the body is not empty.
pub fn request_bytes(address: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut with_close = vec![("Connection", "close")];
    with_close.extend_from_slice(headers);
    request_head(address, method, path, &with_close, body)
}

/// The bytes of a request with exactly these headers (plus `Host`, and `Content-Length` when
/// the body is not empty): without `Connection: close` it keeps the connection open.
pub fn request_head(address: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\n");
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

/// One client connection that reads responses one at a time by their framing, so several
/// requests (kept alive or pipelined) can share it.
pub struct Connection {
    stream: TcpStream,
    /// Bytes received and not yet taken by a response.
    buffered: Vec<u8>,
}

impl Connection {
    /// Connects, with a read timeout of 60 s.
    pub fn open(address: SocketAddr) -> Result<Connection, String> {
        let stream = TcpStream::connect(address).map_err(|e| format!("cannot connect to {address}: {e}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
        Ok(Connection { stream, buffered: Vec::new() })
    }

    /// Writes raw bytes (one request, several pipelined, or part of one).
    pub fn send(&mut self, raw: &[u8]) -> Result<(), String> {
        self.stream.write_all(raw).map_err(|e| format!("write failed: {e}"))
    }

    /// Sends a request that keeps the connection open and reads its response.
    pub fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
        let address = self.stream.peer_addr().unwrap_or_else(|e| panic!("peer address: {e}"));
        self.send(&request_head(address, method, path, headers, body)).unwrap_or_else(|e| panic!("{e}"));
        self.read_response(method == "HEAD").unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Reads one response (skipping `1xx` interim ones): the head, then exactly the body its
    /// framing gives (`Content-Length` bytes, or chunks to the last one).
    pub fn read_response(&mut self, head_only: bool) -> Result<HttpResponse, String> {
        loop {
            let split = loop {
                if let Some(split) = self.buffered.windows(4).position(|w| w == b"\r\n\r\n") {
                    break split;
                }
                if !self.fill()? {
                    return Err(format!(
                        "the connection closed before a whole response head: {:?}",
                        String::from_utf8_lossy(&self.buffered)
                    ));
                }
            };
            let head = String::from_utf8_lossy(&self.buffered[..split]).into_owned();
            self.buffered.drain(..split + 4);
            let (status, headers) = parse_head(&head)?;
            if (100..200).contains(&status) {
                continue;
            }
            let body = if head_only || status == 204 || status == 304 { Vec::new() } else { self.read_body(&headers)? };
            return Ok(HttpResponse { status, headers, body });
        }
    }

    /// Requires the server to close the connection with no further bytes (within 10 s).
    pub fn expect_closed(&mut self) -> Result<(), String> {
        self.stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(read) => self.buffered.extend_from_slice(&chunk[..read]),
                // A reset after the whole response is a close too (the server may not have read all).
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    break;
                }
                Err(error) => return Err(format!("the server did not close the connection after answering: {error}")),
            }
        }
        if self.buffered.is_empty() {
            Ok(())
        } else {
            Err(format!("bytes after the response: {:?}", String::from_utf8_lossy(&self.buffered)))
        }
    }

    /// Whether the server closes its side within `wait` (a byte or an idle `wait` is "open").
    pub fn is_closed_within(&mut self, wait: Duration) -> bool {
        matches!(self.peek_within(wait), Peek::Closed)
    }

    /// Whether nothing at all (no byte, no close) arrives within `wait`.
    pub fn is_silent_for(&mut self, wait: Duration) -> bool {
        matches!(self.peek_within(wait), Peek::Silent)
    }

    fn peek_within(&mut self, wait: Duration) -> Peek {
        self.stream.set_read_timeout(Some(wait.max(Duration::from_millis(1)))).ok();
        let mut byte = [0u8; 1];
        let seen = match self.stream.read(&mut byte) {
            Ok(0) => Peek::Closed,
            Ok(_) => {
                self.buffered.push(byte[0]);
                Peek::Data
            }
            Err(error) if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                Peek::Silent
            }
            Err(_) => Peek::Closed,
        };
        self.stream.set_read_timeout(Some(Duration::from_secs(60))).ok();
        seen
    }

    fn read_body(&mut self, headers: &[(String, String)]) -> Result<Vec<u8>, String> {
        fn values<'h>(headers: &'h [(String, String)], name: &'h str) -> impl Iterator<Item = &'h str> {
            headers.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_str())
        }
        if values(headers, "transfer-encoding").any(|v| v.to_ascii_lowercase().contains("chunked")) {
            if values(headers, "content-length").next().is_some() {
                return Err("both Transfer-Encoding: chunked and Content-Length".into());
            }
            return self.read_chunked();
        }
        let lengths: Vec<&str> = values(headers, "content-length").collect();
        let Some(first) = lengths.first() else {
            return Err(format!("a response with neither Content-Length nor chunked framing: {headers:?}"));
        };
        if lengths.iter().any(|length| length != first) {
            return Err(format!("conflicting Content-Length headers: {lengths:?}"));
        }
        let length: usize = first.parse().map_err(|_| format!("Content-Length is not a number: {first:?}"))?;
        self.take(length).map_err(|got| format!("the body ended after {got} of its {length} bytes"))
    }

    fn read_chunked(&mut self) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        loop {
            let line = self.line()?;
            let size_text = line.split(';').next().unwrap_or_default().trim();
            let size =
                usize::from_str_radix(size_text, 16).map_err(|_| format!("malformed chunk size line {line:?}"))?;
            if size == 0 {
                // Trailers, then the empty line that ends the message.
                while !self.line()?.is_empty() {}
                return Ok(body);
            }
            let chunk = self.take(size).map_err(|got| format!("a chunk ended after {got} of its {size} bytes"))?;
            body.extend_from_slice(&chunk);
            if !self.line()?.is_empty() {
                return Err("a chunk is not followed by CRLF".into());
            }
        }
    }

    /// One CRLF-terminated line, without its CRLF.
    fn line(&mut self) -> Result<String, String> {
        loop {
            if let Some(end) = self.buffered.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buffered[..end]).into_owned();
                self.buffered.drain(..end + 2);
                return Ok(line);
            }
            if !self.fill()? {
                return Err("the connection closed inside chunked framing (no last chunk)".into());
            }
        }
    }

    /// Exactly `count` bytes; `Err(received)` when the connection closes first.
    fn take(&mut self, count: usize) -> Result<Vec<u8>, usize> {
        while self.buffered.len() < count {
            if !self.fill().map_err(|_| self.buffered.len())? {
                return Err(self.buffered.len());
            }
        }
        Ok(self.buffered.drain(..count).collect())
    }

    /// Reads more bytes; `Ok(false)` at the end of the stream.
    fn fill(&mut self) -> Result<bool, String> {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => Ok(false),
            Ok(read) => {
                self.buffered.extend_from_slice(&chunk[..read]);
                Ok(true)
            }
            Err(error) => Err(format!("read failed: {error}")),
        }
    }
}

/// What a short wait on a connection saw.
enum Peek {
    Closed,
    Data,
    Silent,
}

fn parse_head(head: &str) -> Result<(u16, Vec<(String, String)>), String> {
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP/1.x status line: {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').ok_or_else(|| format!("malformed header line {line:?}"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    Ok((status, headers))
}
