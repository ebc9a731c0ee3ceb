//! The check every request but health passes before its route: where it
//! comes from (`Host`, `Origin`, `Sec-Fetch-Site`: [`super::origin`]), its
//! token and that token's role ([`super::access`]), and for a POST its
//! content type. The caller is handed to the route as an extension, and every
//! state-changing request is logged with its token's name.

use super::{ApiError, ApiState, access, origin, ui};
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;

/// Every request but health passes here first: its `Host`, `Origin` and
/// `Sec-Fetch-Site` (421, 403), its token (401), its content type if it is a
/// POST (415), then its token's role against the route's (403). The caller
/// is handed to the route, and every state-changing request is logged with
/// its token's name.
pub(super) async fn guard(
    State(state): State<Arc<ApiState>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    let headers = request.headers();
    if path != "/api/health" {
        match origin::check(headers, &state.access.hosts, state.access.tls) {
            Ok(()) => {}
            Err(origin::Refusal::Host(host)) => {
                return ApiError::new(
                    StatusCode::MISDIRECTED_REQUEST,
                    "wrong_host",
                    format!(
                        "this API does not serve the host {host:?}; name it with --api-allowed-hosts (JOBSLOT_API_ALLOWED_HOSTS) to allow it"
                    ),
                )
                .into_response();
            }
            Err(origin::Refusal::Origin(what)) => {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    "cross_origin",
                    format!("{what} is not this API's own origin; requests from other web pages are refused"),
                )
                .into_response();
            }
        }
    }
    let open = matches!(path.as_str(), "/api/health" | "/api/openapi.json") || ui::is_asset(&path);
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let caller = state.access.tokens.identify(given);
    if !open && caller.is_none() {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required (Authorization: Bearer TOKEN)",
        )
        .into_response();
    }
    if method == axum::http::Method::POST && !origin::is_json(headers) {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "every POST must carry Content-Type: application/json (with an empty body where the route takes none)",
        )
        .into_response();
    }
    let Some(caller) = caller else {
        return next.run(request).await;
    };
    if let Some(need) = access::required_role(&method, &path, open)
        && caller.role < need
    {
        tracing::warn!(token = %caller.name, %method, path, "API request refused: the token's role is {}, {need} is needed", caller.role);
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "the token {:?} has the role {}; {method} {path} needs {need}",
                caller.name, caller.role
            ),
        )
        .into_response();
    }
    let changes = !(method == axum::http::Method::GET || method == axum::http::Method::HEAD);
    let name = caller.name.clone();
    request.extensions_mut().insert(caller);
    let response = next.run(request).await;
    if changes {
        tracing::info!(token = %name, %method, path, status = response.status().as_u16(), "API request");
    }
    response
}

/// `GET /api/whoami`: the name and role of the token the request carries,
/// so the Jobs page can say what it may do.
pub(super) async fn whoami(caller: Option<axum::Extension<access::Caller>>) -> Json<Value> {
    let (name, role) = match caller {
        Some(axum::Extension(c)) => (c.name, c.role),
        None => ("anonymous".to_string(), access::Role::Read),
    };
    Json(json!({"name": name, "role": role.as_str()}))
}
