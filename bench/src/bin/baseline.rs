//! The baseline of the side-by-side benchmark: a bare axum server that answers `200 ok` to a POST
//! on any path, after reading the body — the ceiling of the HTTP stack on this machine.
//!
//! `baseline 127.0.0.1:PORT`

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;

#[tokio::main]
async fn main() {
    let address = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:13999".into());
    let app = Router::new().fallback(post(|_body: Bytes| async { "ok" }));
    let listener = match tokio::net::TcpListener::bind(&address).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("baseline: cannot listen on {address}: {error}");
            std::process::exit(1);
        }
    };
    if let Err(error) = axum::serve(listener, app).await {
        eprintln!("baseline: {error}");
        std::process::exit(1);
    }
}
