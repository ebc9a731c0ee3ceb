//! The OpenAPI document of the HTTP API, served at `/api/openapi.json`. It is
//! written by hand (`openapi.json` beside this file) and held to the routes by
//! the router tests and by the schemathesis run in `tests/api_fuzz.rs`.

use axum::http::header;
use axum::response::IntoResponse;

/// The document as served.
pub const DOCUMENT: &str = include_str!("openapi.json");

pub(super) async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}
