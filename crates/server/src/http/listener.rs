//! The HTTP/1.1 accept loop: hyper connections with limits that protect the engine from slow or
//! bloated clients (a deadline for the request head, a cap on header count and size), and a
//! graceful stop that waits for in-flight requests up to a deadline.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tower::ServiceExt as _;

/// Connection limits.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// How long a client may take to send the request head (slow-loris guard), counted from the
    /// connection's start or its last answer, and to take each answer off the socket.
    pub read_timeout: Duration,
    /// Most open connections; more wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// Most header fields in a request; more is answered `431`.
    pub max_headers: usize,
    /// Largest request head in bytes (request line and headers); more is answered `431`.
    pub max_head_bytes: usize,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            read_timeout: Duration::from_secs(10),
            max_connections: 4096,
            max_headers: 100,
            max_head_bytes: 64 << 10,
        }
    }
}

/// Serves `app` on `listener` until `stop` resolves, then stops accepting and waits for open
/// connections to finish their requests, at most `drain` long.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: &ListenerConfig,
    stop: impl Future<Output = ()>,
    drain: Duration,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.read_timeout)
        .max_headers(config.max_headers)
        .max_buf_size(config.max_head_bytes.max(8192));
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(connection_limit(config.max_connections)));
    tokio::pin!(stop);
    loop {
        // At the limit, stop accepting: new connections wait in the kernel's backlog.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut stop => break,
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!("accept failed: {error}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                // Handlers that care who is calling (the admin API's loopback rule) read ConnectInfo.
                let service = app.clone().map_request(move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                });
                let stream = WriteDeadline::new(stream, config.read_timeout);
                let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!("connection ended: {error}");
                    }
                    drop(permit);
                });
            }
            () = &mut stop => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!("stopped waiting for in-flight requests after {}", humantime::format_duration(drain));
    }
}

/// A connection whose writes fail once the client has read nothing for `timeout`: a client
/// that sends requests and never reads the answers (pipelining into a full socket buffer)
/// cannot hold its connection for ever.
struct WriteDeadline<S> {
    inner: S,
    timeout: Duration,
    /// Started when a write first finds the socket full; cleared by any progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteDeadline<S> {
    fn new(inner: S, timeout: Duration) -> WriteDeadline<S> {
        WriteDeadline { inner, timeout, stalled: None }
    }

    /// A write's outcome under the deadline: progress clears it, `Pending` starts it (or fails
    /// once it has passed).
    fn deadline<T>(&mut self, cx: &mut Context<'_>, polled: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let timeout = self.timeout;
        let stalled = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the client read no answer within {}", humantime::format_duration(timeout)),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.deadline(cx, polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.deadline(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.deadline(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// File descriptors kept for the engine's own use beyond client connections: the database, the
/// listener, outbound requests of nodes, the component cache, logs.
const RESERVED_DESCRIPTORS: usize = 64;

/// `--max-connections`, lowered when the process may not open that many files (with
/// [`RESERVED_DESCRIPTORS`] to spare): past the descriptor limit `accept` fails, and so does
/// everything else that opens a file or a socket.
fn connection_limit(wanted: usize) -> usize {
    let Some(files) = open_file_limit() else { return wanted.max(1) };
    let fits = files.saturating_sub(RESERVED_DESCRIPTORS).max(1);
    if wanted > fits {
        tracing::warn!(
            "--max-connections {wanted} lowered to {fits}: the process may open {files} files (ulimit -n), \
             {RESERVED_DESCRIPTORS} kept for the engine itself"
        );
        return fits;
    }
    wanted.max(1)
}

/// The soft limit of open files, from `/proc/self/limits` (Linux); `None` when unknown or unlimited.
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_file_limit(&limits)
}

fn parse_open_file_limit(limits: &str) -> Option<usize> {
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files").split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_soft_open_file_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max processes             127431               127431               processes\n\
                      Max open files            256                  1048576              files\n";
        assert_eq!(parse_open_file_limit(limits), Some(256));
        assert_eq!(
            parse_open_file_limit("Max open files            unlimited            unlimited            files"),
            None
        );
        assert_eq!(parse_open_file_limit(""), None);
    }
}
