//! How the PostgreSQL backend reaches its server: the `--store` URL (libpq's `postgres://` form,
//! with `sslrootcert` understood here) and TLS through rustls, which always verifies the
//! server's certificate — against the webpki roots, or the CA file `sslrootcert` names.

use std::sync::Arc;

use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::StoreError;

/// A parsed `--store` URL.
#[derive(Clone)]
pub(crate) struct Target {
    /// tokio-postgres's settings.
    pub config: tokio_postgres::Config,
    /// The TLS connector every connection uses (TLS or not is `sslmode`'s choice).
    pub tls: MakeRustlsConnect,
    /// The server and database, without the password, for messages.
    pub location: String,
}

impl Target {
    /// Parses `url`; `sslrootcert=FILE` (PEM) replaces the webpki roots, and `sslmode`
    /// `verify-ca` / `verify-full` mean `require` (certificates are always verified).
    pub(crate) fn parse(url: &str) -> Result<Target, StoreError> {
        let (url, root_file) = take_root_file(url);
        let config: tokio_postgres::Config =
            url.parse().map_err(|error| StoreError::Config(format!("URL is not a PostgreSQL URL: {error}")))?;
        let mut roots = RootCertStore::empty();
        match &root_file {
            Some(path) => {
                let certificates = CertificateDer::pem_file_iter(path)
                    .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
                    .map_err(|error| StoreError::Config(format!("sslrootcert {path}: {error}")))?;
                for certificate in certificates {
                    roots
                        .add(certificate)
                        .map_err(|error| StoreError::Config(format!("sslrootcert {path}: {error}")))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let tls_config = ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        let location = location_of(&config);
        Ok(Target { config, tls: MakeRustlsConnect::new(tls_config), location })
    }

    /// Connects once; the connection is driven on a task of its own, which ends with it.
    pub(crate) async fn connect(&self) -> Result<tokio_postgres::Client, StoreError> {
        let (client, connection) =
            self.config.connect(self.tls.clone()).await.map_err(|error| self.unreachable(error))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!("a PostgreSQL connection ended: {error}");
            }
        });
        Ok(client)
    }

    /// The error for a server that could not be reached.
    pub(crate) fn unreachable(&self, error: tokio_postgres::Error) -> StoreError {
        StoreError::Open { location: self.location.clone(), source: Arc::new(error) }
    }
}

/// Takes `sslrootcert` out of the URL's query (tokio-postgres does not know it) and maps
/// libpq's verifying modes onto `require`.
fn take_root_file(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else { return (url.to_string(), None) };
    let mut root_file = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        match pair.split_once('=') {
            Some(("sslrootcert", value)) => root_file = Some(percent_decoded(value)),
            Some(("sslmode", "verify-ca" | "verify-full")) => kept.push("sslmode=require".to_string()),
            _ => kept.push(pair.to_string()),
        }
    }
    let url = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    (url, root_file)
}

/// `%XX` escapes decoded (a path in a URL's query).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = bytes.get(index + 1..index + 3).and_then(|pair| std::str::from_utf8(pair).ok());
        match (bytes[index], hex.and_then(|hex| u8::from_str_radix(hex, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                index += 3;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `host:port/dbname` (the first host), without user or password.
fn location_of(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let tls = if config.get_ssl_mode() == SslMode::Require { " (TLS)" } else { "" };
    format!("postgres://{host}:{port}/{}{tls}", config.get_dbname().unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_file_is_taken_out_and_verifying_modes_mean_require() {
        let (url, root) =
            take_root_file("postgres://u@db/h?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3");
        assert_eq!(url, "postgres://u@db/h?sslmode=require&connect_timeout=3");
        assert_eq!(root.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(take_root_file("postgres://db/h"), ("postgres://db/h".to_string(), None));
    }

    #[test]
    fn the_location_names_no_password() {
        let target = Target::parse("postgres://hookflow:secret@db.internal:6432/flows?sslmode=require").ok();
        let location = target.map(|target| target.location);
        assert_eq!(location.as_deref(), Some("postgres://db.internal:6432/flows (TLS)"));
    }
}
