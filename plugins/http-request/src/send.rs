//! Sends a [`Prepared`] request through `wasi:http` and reads the answer, all within the request's
//! timeout. Errors are sentences for the operator reading the job.

use serde_json::{Map, Value};
use wasip2::clocks::monotonic_clock;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{ErrorCode, Fields, HeaderError, Method, OutgoingBody, OutgoingRequest, RequestOptions};
use wasip2::io::poll::{Pollable, poll};
use wasip2::io::streams::StreamError;

use crate::request::{Prepared, Scheme};

/// Largest response body kept; a larger one fails the call.
const MAX_BODY: usize = 8 << 20;

/// What came back.
pub struct Response {
    pub status: u16,
    /// Header names (lower case) to values; repeated headers joined with `, `.
    pub headers: Map<String, Value>,
    /// The body as JSON when it parses, else as text (`""` when empty).
    pub data: Value,
}

/// Sends the request and reads the whole answer.
pub fn send(request: &Prepared) -> Result<Response, String> {
    let timeout_ns = request.timeout_ms.saturating_mul(1_000_000);
    let deadline = monotonic_clock::now().saturating_add(timeout_ns);
    let timer = monotonic_clock::subscribe_instant(deadline);
    let authority = request.authority.as_str();
    let timed_out = || format!("{authority} did not answer within the timeout of {} ms", request.timeout_ms);

    let fields = Fields::from_list(&request.headers).map_err(|error| match error {
        HeaderError::Forbidden => "headers: one of the headers may not be set by a node (Host, Connection, …)".into(),
        _ => "headers: a header name or value is not valid".to_string(),
    })?;
    let outgoing = OutgoingRequest::new(fields);
    outgoing.set_method(&method(&request.method)).map_err(|()| format!("method: {:?} is refused", request.method))?;
    let scheme = match request.scheme {
        Scheme::Http => wasip2::http::types::Scheme::Http,
        Scheme::Https => wasip2::http::types::Scheme::Https,
    };
    outgoing.set_scheme(Some(&scheme)).map_err(|()| "url: the scheme is refused".to_string())?;
    outgoing.set_authority(Some(authority)).map_err(|()| format!("url: {authority:?} is not a valid host"))?;
    outgoing
        .set_path_with_query(Some(&request.path_and_query))
        .map_err(|()| format!("url: {:?} is not a valid path", request.path_and_query))?;
    let body = outgoing.body().map_err(|()| "cannot open the request body".to_string())?;
    let options = RequestOptions::new();
    // Refusals here only mean the host has no such option; the deadline below still holds.
    let _ = options.set_connect_timeout(Some(timeout_ns));
    let _ = options.set_first_byte_timeout(Some(timeout_ns));
    let _ = options.set_between_bytes_timeout(Some(timeout_ns));

    let pending = outgoing_handler::handle(outgoing, Some(options)).map_err(|code| describe(&code, authority))?;
    if let Some(bytes) = &request.body {
        let stream = body.write().map_err(|()| "cannot write the request body".to_string())?;
        for chunk in bytes.chunks(4096) {
            stream.blocking_write_and_flush(chunk).map_err(|error| stream_error(&error, authority))?;
        }
    }
    OutgoingBody::finish(body, None).map_err(|code| describe(&code, authority))?;

    let ready = pending.subscribe();
    let response = loop {
        if let Some(result) = pending.get() {
            break result
                .map_err(|()| "the response was already taken".to_string())?
                .map_err(|code| describe(&code, authority))?;
        }
        wait(&ready, &timer, deadline).ok_or_else(timed_out)?;
    };
    drop(ready);

    let status = response.status();
    let headers = headers(&response.headers().entries());
    let incoming = response.consume().map_err(|()| "cannot read the response body".to_string())?;
    let stream = incoming.stream().map_err(|()| "cannot read the response body".to_string())?;
    let readable = stream.subscribe();
    let mut bytes = Vec::new();
    loop {
        match stream.read(64 << 10) {
            Ok(chunk) if chunk.is_empty() => wait(&readable, &timer, deadline).ok_or_else(timed_out)?,
            Ok(chunk) => {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > MAX_BODY {
                    return Err(format!("the response body of {authority} is larger than {} MiB", MAX_BODY >> 20));
                }
            }
            Err(StreamError::Closed) => break,
            Err(error) => return Err(stream_error(&error, authority)),
        }
    }
    let data = if bytes.is_empty() {
        Value::String(String::new())
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Ok(Response { status, headers, data })
}

/// Blocks until `ready` or the deadline; `None` once the deadline has passed.
fn wait(ready: &Pollable, timer: &Pollable, deadline: u64) -> Option<()> {
    if monotonic_clock::now() >= deadline {
        return None;
    }
    poll(&[ready, timer]);
    Some(())
}

fn method(name: &str) -> Method {
    match name {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        "HEAD" => Method::Head,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_string()),
    }
}

fn headers(entries: &[(String, Vec<u8>)]) -> Map<String, Value> {
    let mut headers = Map::new();
    for (name, value) in entries {
        let value = String::from_utf8_lossy(value);
        match headers.get_mut(&name.to_ascii_lowercase()) {
            Some(Value::String(joined)) => {
                joined.push_str(", ");
                joined.push_str(&value);
            }
            _ => {
                headers.insert(name.to_ascii_lowercase(), Value::String(value.into_owned()));
            }
        }
    }
    headers
}

fn stream_error(error: &StreamError, authority: &str) -> String {
    match error {
        StreamError::LastOperationFailed(error) => {
            format!("the connection to {authority} failed: {}", error.to_debug_string())
        }
        StreamError::Closed => format!("the connection to {authority} closed early"),
    }
}

/// An error code as a sentence.
fn describe(code: &ErrorCode, authority: &str) -> String {
    match code {
        ErrorCode::HttpRequestDenied => format!(
            "the operator has not allowed this node type to call {authority} \
             (hookflow serve --allow-outbound <type>=<host>)"
        ),
        ErrorCode::DestinationIpProhibited => format!(
            "{authority} resolves to a loopback, private or link-local address, which only a grant of that IP \
             literal reaches (hookflow serve --allow-outbound <type>=<ip>:<port>)"
        ),
        ErrorCode::DnsError(_) | ErrorCode::DestinationNotFound => format!("cannot resolve the host of {authority}"),
        ErrorCode::ConnectionRefused => format!("{authority} refused the connection"),
        ErrorCode::ConnectionTimeout => format!("connecting to {authority} timed out"),
        ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => {
            format!("{authority} did not answer in time")
        }
        ErrorCode::TlsCertificateError => format!("the TLS certificate of {authority} is not trusted"),
        ErrorCode::HttpRequestUriInvalid => format!("url: the URL for {authority} is not valid"),
        other => format!("the request to {authority} failed: {other:?}"),
    }
}
