//! The Jobs page: a dashboard for operators, served at `/` by every process
//! serving the API. Its three files are compiled into the binary (machines
//! may be offline: no CDN), and it reads and acts only through the API's own
//! routes, with the bearer token when one is set.
//!
//! The files themselves hold no data, so they are served without the token;
//! a Content-Security-Policy keeps the page to its own scripts and to this
//! origin.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: [Asset; 4] = [
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("ui/index.html"),
    },
    Asset {
        path: "/ui/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("ui/app.js"),
    },
    Asset {
        path: "/ui/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("ui/app.css"),
    },
    Asset {
        path: "/ui/icon.svg",
        content_type: "image/svg+xml",
        body: include_str!("ui/icon.svg"),
    },
];

/// What the page may load: its own files, and the API on this origin.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// Whether `path` is one of the page's files (served without the token).
pub(super) fn is_asset(path: &str) -> bool {
    ASSETS.iter().any(|a| a.path == path)
}

/// Serves the page's file at the request's path.
pub(super) async fn asset(uri: axum::http::Uri) -> Response {
    let Some(a) = ASSETS.iter().find(|a| a.path == uri.path()) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let mut r = a.body.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    // Small files, revalidated on every load so an upgrade shows at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}
