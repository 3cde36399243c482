//! The web console: static files (`crates/server/console/`) embedded in the binary and served
//! under `/console/`, with uPlot vendored for the dashboard's charts. They load without a token
//! (a browser cannot add one to a page load); the page then calls the admin API with the token it
//! asks for.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Every asset: its path below `/console/`, content type and content.
const ASSETS: &[(&str, &str, &str)] = &[
    ("index.html", HTML, include_str!("../../../console/index.html")),
    ("app.js", JS, include_str!("../../../console/app.js")),
    ("ui.js", JS, include_str!("../../../console/ui.js")),
    ("api.js", JS, include_str!("../../../console/api.js")),
    ("editor.js", JS, include_str!("../../../console/editor.js")),
    ("dashboard.js", JS, include_str!("../../../console/dashboard.js")),
    ("style.css", CSS, include_str!("../../../console/style.css")),
    ("vendor/uPlot.iife.min.js", JS, include_str!("../../../console/vendor/uPlot.iife.min.js")),
    ("vendor/uPlot.min.css", CSS, include_str!("../../../console/vendor/uPlot.min.css")),
];

/// Nothing from elsewhere, no framing.
const POLICY: &str = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'";

/// `/console/` and its assets; `/console` redirects there.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new()
        .route("/console", get(|| async { Redirect::permanent("/console/") }))
        .route("/console/", get(|| async { asset(HTML, ASSETS[0].2) }));
    for (path, content_type, body) in ASSETS {
        router = router.route(&format!("/console/{path}"), get(move || async move { asset(content_type, body) }));
    }
    router
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Revalidated on every load, so an upgraded binary's console is used at once.
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}
