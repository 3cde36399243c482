//! TLS to a remote database: a private PostgreSQL server with a certificate of a private CA
//! (made here with `openssl`). The store connects over TLS when the URL says `sslmode=require`
//! and trusts that CA through `sslrootcert`; without it the certificate is refused (rustls always
//! verifies, against the webpki roots by default).
#![allow(missing_docs, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use hookflow_store::{PostgresConfig, Store, StoreConfig};
use hookflow_test_postgres::PgServer;

/// A CA and a server certificate for 127.0.0.1 signed by it, in a directory the postgres user
/// can read: `(ca.pem, server.pem, server.key)`.
fn certificates() -> (PathBuf, PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("hookflow-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let openssl = |args: &[&str]| {
        let output = Command::new("openssl").args(args).current_dir(&dir).output().unwrap();
        assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=hookflow test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
        .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        "server.pem",
        "-extfile",
        "san.ext",
    ]);
    if Command::new("id").arg("-u").output().is_ok_and(|output| output.stdout.trim_ascii() == b"0") {
        assert!(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status().unwrap().success());
    }
    let key = dir.join("server.key");
    assert!(Command::new("chmod").arg("600").arg(&key).status().unwrap().success());
    (dir.join("ca.pem"), dir.join("server.pem"), key)
}

fn setting(name: &str, path: &Path) -> String {
    format!("{name}={}", path.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_database_is_reached_with_its_ca_and_refused_without_it() {
    let (ca, certificate, key) = certificates();
    let cert_setting = setting("ssl_cert_file", &certificate);
    let key_setting = setting("ssl_key_file", &key);
    let server = PgServer::start_with("tls", &["ssl=on", &cert_setting, &key_setting]);
    let url = server.fresh_database("tls");
    let database = url.rsplit('/').next().unwrap().to_string();

    let trusted = format!("{url}?sslmode=require&sslrootcert={}", ca.display());
    let store = Store::open(&StoreConfig::Postgres(PostgresConfig::new(&trusted)), None).await.unwrap();
    assert!(store.location().ends_with("(TLS)"), "{}", store.location());
    store.put_plugin("probe", "00", b"x").await.unwrap();
    assert_eq!(store.plugins().await.unwrap().len(), 1);
    let encrypted = server.psql(
        &database,
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
        WHERE s.ssl AND a.datname = current_database() AND a.pid <> pg_backend_pid()",
    );
    assert_ne!(encrypted, "0", "the store's connections use TLS");
    let plain = server.psql(
        &database,
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
        WHERE NOT s.ssl AND a.datname = current_database() AND a.pid <> pg_backend_pid()",
    );
    assert_eq!(plain, "0", "and none goes without");
    drop(store);

    // The webpki roots do not know the private CA: the certificate is refused.
    let untrusted = format!("{url}?sslmode=require");
    let refused = Store::open(&StoreConfig::Postgres(PostgresConfig::new(&untrusted)), None).await.err().unwrap();
    let message = format!("{refused}: {:?}", std::error::Error::source(&refused));
    assert!(message.contains("cannot open the database"), "{message}");
    assert!(message.to_lowercase().contains("certificate"), "{message}");

    // A missing CA file is a configuration error that names it.
    let missing = format!("{url}?sslmode=require&sslrootcert=/nonexistent/ca.pem");
    let refused = Store::open(&StoreConfig::Postgres(PostgresConfig::new(&missing)), None).await.err().unwrap();
    assert!(refused.to_string().contains("sslrootcert /nonexistent/ca.pem"), "{refused}");
}
