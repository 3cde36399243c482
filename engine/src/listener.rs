//! The HTTP/1.1 accept loop: hyper connections with limits that protect the engine from slow or
//! bloated clients (a deadline for the request head, a cap on header count and size), and a
//! graceful stop that waits for in-flight requests up to a deadline.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt as _;

/// Connection limits.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// How long a client may take to send the request head (slow-loris guard).
    pub read_timeout: Duration,
    /// Most header fields in a request; more is answered `431`.
    pub max_headers: usize,
    /// Largest request head in bytes (request line and headers); more is answered `431`.
    pub max_head_bytes: usize,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig { read_timeout: Duration::from_secs(10), max_headers: 100, max_head_bytes: 64 << 10 }
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
    tokio::pin!(stop);
    loop {
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
                let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!("connection ended: {error}");
                    }
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
