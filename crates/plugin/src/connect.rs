//! Where an outbound request may connect (docs/security.md): the host is resolved first, every address
//! is checked, and the connection goes to the checked address — so a name that resolves (or
//! re-resolves, DNS rebinding) to loopback, a private network or a link-local address cannot
//! reach the engine itself or the operator's network. Such addresses pass only when the grant
//! names that IP literal (`--allow-outbound http-request=10.0.0.5:8080`).

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_rustls::rustls;
use wasmtime_wasi_http::{Error, WasiBody};

/// Whether `ip` is an address a request reaches only by its IP literal: loopback, private
/// (RFC 1918, IPv6 unique local), link-local, CGNAT shared space, unspecified or multicast.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || (a == 100 && (64..128).contains(&b))
                || a == 0
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// The address to connect to for a permitted `host:port`: an IP literal is itself (a grant
/// that let it through names that literal, so internal ones pass too); a name is resolved, and
/// its first address that is not internal is taken. `Err` when the name does not resolve or
/// resolves only to internal addresses.
pub async fn checked_address(host: &str, port: u16) -> Result<SocketAddr, Error> {
    let bare = host.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')).unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let resolved = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|error| Error::DnsError { rcode: Some(error.to_string()), info_code: None })?;
    let mut seen_internal = false;
    for address in resolved {
        if is_internal(address.ip()) {
            seen_internal = true;
        } else {
            return Ok(address);
        }
    }
    Err(if seen_internal { Error::DestinationIpProhibited } else { Error::DestinationNotFound })
}

/// The response and the future that drives its connection, as `wasi:http` hooks return them.
pub type Sent = (http::Response<WasiBody>, Box<dyn Future<Output = Result<(), Error>> + Send>);

/// Sends an HTTPS request over a connection to the checked `address`, verifying the server's
/// certificate for `server_name` (the URL's host) against the webpki roots; the response must
/// arrive, and its body end, before `deadline`.
pub async fn send_tls(
    mut request: http::Request<WasiBody>,
    address: SocketAddr,
    server_name: &str,
    deadline: Instant,
) -> Result<Sent, Error> {
    let stream = tokio::time::timeout_at(deadline, TcpStream::connect(address))
        .await
        .map_err(|_| Error::ConnectionTimeout)?
        .map_err(Error::Connect)?;
    let name = rustls::pki_types::ServerName::try_from(server_name.to_string()).map_err(Error::InvalidDnsNameError)?;
    let tls = tokio::time::timeout_at(deadline, tls_connector().connect(name, stream))
        .await
        .map_err(|_| Error::ConnectionTimeout)?
        .map_err(Error::Tls)?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    let driven = tokio::spawn(connection);
    // The request line carries only the path: the authority is in the Host header.
    let path = request.uri().path_and_query().map_or("/", |path| path.as_str()).to_string();
    *request.uri_mut() = path.parse().map_err(|_| Error::HttpRequestUriInvalid)?;
    let response = tokio::time::timeout_at(deadline, sender.send_request(request))
        .await
        .map_err(|_| Error::HttpResponseTimeout)??;
    let response = response.map(|incoming| UntilDeadline::new(incoming, deadline).boxed_unsync());
    let io: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(async move {
        match driven.await {
            Ok(outcome) => outcome.map_err(Error::from),
            Err(_) => Err(Error::InternalError(Some("the connection task ended".into()))),
        }
    });
    Ok((response, io))
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.into() };
        Arc::new(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth())
    });
    tokio_rustls::TlsConnector::from(config.clone())
}

/// A response body that fails once `deadline` passes before it ends.
struct UntilDeadline {
    incoming: Incoming,
    deadline: Pin<Box<Sleep>>,
}

impl UntilDeadline {
    fn new(incoming: Incoming, deadline: Instant) -> UntilDeadline {
        UntilDeadline { incoming, deadline: Box::pin(tokio::time::sleep_until(deadline)) }
    }
}

impl Body for UntilDeadline {
    type Data = hyper::body::Bytes;
    type Error = Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Pending if self.deadline.as_mut().poll(cx).is_ready() => {
                Poll::Ready(Some(Err(Error::HttpResponseTimeout)))
            }
            Poll::Pending => Poll::Pending,
            Poll::Ready(frame) => Poll::Ready(frame.map(|frame| frame.map_err(Error::from))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::",
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "172.32.0.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn names_resolving_inside_are_refused_and_literals_are_kept() {
        assert!(matches!(checked_address("localhost", 80).await, Err(Error::DestinationIpProhibited)));
        assert_eq!(checked_address("127.0.0.1", 80).await.unwrap(), "127.0.0.1:80".parse().unwrap());
        assert_eq!(checked_address("[::1]", 81).await.unwrap(), "[::1]:81".parse().unwrap());
    }
}
