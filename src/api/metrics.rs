//! `GET /metrics` (Prometheus text) and `GET /api/stats` (the same figures as
//! JSON, as `jobslot stats --json` prints them). Both need the bearer token
//! when one is set, like every route but health.

use super::{ApiResult, ApiState};
use crate::capacity::warnings;
use crate::metrics::{prometheus, stats_json_with};
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::Value;
use std::sync::Arc;

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;

/// `GET /metrics`.
pub(super) async fn metrics(State(state): State<Arc<ApiState>>) -> ApiResult<impl IntoResponse> {
    let s = state
        .client
        .store()
        .stats_snapshot(chrono::Utc::now())
        .await?;
    let body = prometheus::render(&s, &warnings(&s));
    Ok(([(header::CONTENT_TYPE, prometheus::CONTENT_TYPE)], body))
}

/// `GET /api/stats`.
pub(super) async fn stats(State(state): State<Arc<ApiState>>) -> ApiResult<Json<Value>> {
    let s = state
        .client
        .store()
        .stats_snapshot(chrono::Utc::now())
        .await?;
    Ok(Json(stats_json_with(&s, &warnings(&s))))
}
