//! The HTTP API: tasks, queues, instances and workers as JSON, behind bearer
//! tokens with roles ([`access`]), refusing requests from the wrong place
//! ([`origin`]), over HTTPS when given a certificate ([`tls`]). Built on
//! [`Client`], so it creates and reads tasks exactly as the CLI and the
//! library do; it runs no job itself.
//!
//! Every error is `{"error": {"code", "message"}}` with the status code that
//! fits: 400 for bad input, 401 without a valid token, 403 for a token whose
//! role is too small or a request from another origin, 404 for an unknown
//! task, 409 for a conflict (a unique key in use, a parent that ended), 415
//! for a POST that is not `application/json`, 421 for a `Host` this API does
//! not serve, 500 for a database failure.

use crate::client::{Client, ClientError, Enqueue};
use crate::model::{TaskStatus, fmt_time};
use crate::store::{CancelOutcome, StoreError, TaskListParams};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use uuid::Uuid;

pub mod access;
mod dashboard;
mod guard;
mod logs;
mod metrics;
mod openapi;
pub mod origin;
#[cfg(test)]
mod security_tests;
#[cfg(test)]
mod tests;
pub mod tls;
mod ui;

/// What the handlers share.
pub struct ApiState {
    /// The client tasks are created and read through.
    pub client: Client,
    /// Who may call, and from where.
    pub access: Access,
    /// The project's log directory: the only files the API reads.
    pub log_dir: std::path::PathBuf,
    /// Where finished tasks' logs are stored.
    pub storage: Arc<crate::logs::Storage>,
    /// The start of the server's shutdown: log streams end then.
    pub shutdown: Shutdown,
}

/// Who may call the API and from where.
#[derive(Debug, Clone)]
pub struct Access {
    /// The tokens accepted, with their roles.
    pub tokens: access::Tokens,
    /// The hosts a request's `Host` may name.
    pub hosts: origin::AllowedHosts,
    /// Whether the API is served over TLS.
    pub tls: bool,
}

impl Access {
    /// No token, any host: for a router used without a socket.
    pub fn open() -> Self {
        Access {
            tokens: access::Tokens::none(),
            hosts: origin::AllowedHosts::any(),
            tls: false,
        }
    }
}

/// When the server began to shut down, once it has. Whatever waits in a
/// request (a log stream) ends then, so that no open connection holds a
/// shutdown.
#[derive(Debug, Clone)]
pub struct Shutdown(tokio::sync::watch::Receiver<Option<tokio::time::Instant>>);

impl Shutdown {
    /// A shutdown, and what starts it.
    pub fn channel() -> (ShutdownTrigger, Self) {
        let (tx, rx) = tokio::sync::watch::channel(None);
        (ShutdownTrigger(Arc::new(tx)), Self(rx))
    }

    /// A shutdown that never starts.
    pub fn never() -> Self {
        Self(tokio::sync::watch::channel(None).1)
    }

    /// Resolves with the time shutdown started: at once if it has, never
    /// if it no longer can (its sender is gone).
    pub async fn started(&self) -> tokio::time::Instant {
        let mut rx = self.0.clone();
        if let Ok(at) = rx.wait_for(Option::is_some).await
            && let Some(at) = *at
        {
            return at;
        }
        std::future::pending().await
    }
}

/// Starts a [`Shutdown`].
#[derive(Debug, Clone)]
pub struct ShutdownTrigger(Arc<tokio::sync::watch::Sender<Option<tokio::time::Instant>>>);

impl ShutdownTrigger {
    /// Starts the shutdown now, unless it has started already.
    pub fn start(&self) {
        self.0.send_if_modified(|at| {
            let first = at.is_none();
            if first {
                *at = Some(tokio::time::Instant::now());
            }
            first
        });
    }
}

/// An error as the API answers it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Store(s) => s.into(),
            ClientError::UnknownJob { .. } | ClientError::Invalid(_) => {
                Self::bad_request(e.to_string())
            }
            ClientError::Schema(m) => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "schema", m),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            StoreError::NoSuchTask(id) => Self::not_found(format!("no task {id}")),
            other => {
                tracing::warn!(error = %other, "API request failed in the database");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "database",
                    other.to_string(),
                )
            }
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The largest body of `POST /api/tasks`: room for args of
/// [`crate::client::MAX_ARGS_BYTES`] (checked once parsed) written with some
/// whitespace, plus the other fields.
pub const ENQUEUE_BODY_LIMIT: usize = 2 * crate::client::MAX_ARGS_BYTES;

/// The API's routes.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/api/health", get(health))
        .route(
            "/api/tasks",
            get(list_tasks)
                .post(enqueue)
                .layer(axum::extract::DefaultBodyLimit::max(ENQUEUE_BODY_LIMIT)),
        )
        .route("/api/tasks/{id}", get(show_task))
        .route("/api/tasks/{id}/cancel", post(cancel_task))
        .route("/api/tasks/{id}/retry", post(retry_task))
        .route("/api/tasks/{id}/log", get(logs::task_log))
        .route("/api/tasks/{id}/log/stream", get(logs::task_log_stream))
        .route("/api/openapi.json", get(openapi::document))
        .route("/api/queues", get(queues))
        .route("/api/queues/{queue}/pause", post(pause_queue))
        .route("/api/queues/{queue}/resume", post(resume_queue))
        .route("/api/instances", get(instances))
        .route("/api/jobs", get(dashboard::jobs))
        .route("/api/timeline", get(dashboard::timeline))
        .route("/api/schedules", get(dashboard::schedules))
        .route("/api/workers", get(dashboard::workers))
        .route("/api/workers/{name}/stop", post(dashboard::stop_worker))
        .route("/api/workers/{name}/start", post(dashboard::start_worker))
        .route(
            "/api/workers/{name}/restart",
            post(dashboard::restart_worker),
        )
        .route("/api/stats", get(metrics::stats))
        .route("/metrics", get(metrics::metrics))
        .route("/", get(ui::asset))
        .route("/ui/{file}", get(ui::asset))
        .fallback(|| async { ApiError::not_found("no such route") })
        .route("/api/whoami", get(guard::whoami))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .with_state(state)
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Filters of `GET /api/tasks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    job: Option<String>,
    queue: Option<String>,
    schedule: Option<String>,
    parent: Option<String>,
    needs_review: Option<bool>,
    instance: Option<String>,
    since: Option<String>,
    until: Option<String>,
    before: Option<String>,
    limit: Option<usize>,
}

fn parse_id(s: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(s).map_err(|_| ApiError::bad_request(format!("{s:?} is not a task id")))
}

async fn list_tasks(
    State(state): State<Arc<ApiState>>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let status = match &q.status {
        Some(s) => Some(
            s.parse::<TaskStatus>()
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
        ),
        None => None,
    };
    let parent = q.parent.as_deref().map(parse_id).transpose()?;
    let before = q.before.as_deref().map(parse_id).transpose()?;
    let now = chrono::Utc::now();
    let when = |name: &str, v: &Option<String>| {
        v.as_deref()
            .map(|s| crate::model::parse_time_or_ago(s, now))
            .transpose()
            .map_err(|e| ApiError::bad_request(format!("{name}: {e}")))
    };
    let (since, until) = (when("since", &q.since)?, when("until", &q.until)?);
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > 10_000 {
        return Err(ApiError::bad_request("limit must be from 1 to 10000"));
    }
    let tasks = state
        .client
        .list(TaskListParams {
            status,
            job: q.job,
            queue: q.queue,
            schedule: q.schedule,
            parent,
            needs_review: q.needs_review.unwrap_or(false),
            instance: q.instance,
            since,
            until,
            before,
            limit,
        })
        .await?;
    Ok(Json(Value::Array(
        tasks.iter().map(|t| t.to_json()).collect(),
    )))
}

async fn show_task(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let Some(task) = state.client.get(id).await? else {
        return Err(ApiError::not_found(format!("no task {id}")));
    };
    let attempts = state.client.attempts(id).await?;
    let warning = crate::capacity::task_warning(state.client.store().as_ref(), &task).await?;
    let mut v = task.to_json();
    v["attempts"] = Value::Array(attempts.iter().map(|a| a.to_json()).collect());
    v["capacity_warning"] = json!(warning);
    Ok(Json(v))
}

/// Body of `POST /api/tasks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnqueueBody {
    job: String,
    #[serde(default)]
    args: Option<Value>,
    at: Option<String>,
    delay_ms: Option<u64>,
    queue: Option<String>,
    priority: Option<i32>,
    parent: Option<String>,
    after: Option<String>,
    unique_key: Option<String>,
}

async fn enqueue(
    State(state): State<Arc<ApiState>>,
    caller: Option<axum::Extension<access::Caller>>,
    body: Result<Json<EnqueueBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Json(b) = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "the request body is over {ENQUEUE_BODY_LIMIT} bytes; args may be at most {} bytes of JSON (2 MiB)",
                    crate::client::MAX_ARGS_BYTES
                ),
            )
        } else {
            ApiError::bad_request(e.body_text())
        }
    })?;
    let created_by = caller.map_or_else(|| "anonymous".to_string(), |c| c.0.name);
    let mut e = Enqueue::new(&b.job)
        .args(b.args.unwrap_or_else(|| json!({})))
        .metadata(json!({ "createdBy": created_by }));
    match (&b.at, b.delay_ms) {
        (Some(_), Some(_)) => return Err(ApiError::bad_request("give at or delay_ms, not both")),
        (Some(at), None) => {
            let at = chrono::DateTime::parse_from_rfc3339(at)
                .map_err(|_| ApiError::bad_request(format!("at {at:?} is not an RFC 3339 time")))?;
            e = e.at(at.with_timezone(&chrono::Utc));
        }
        (None, Some(ms)) => e = e.delay(std::time::Duration::from_millis(ms)),
        (None, None) => {}
    }
    if let Some(q) = &b.queue {
        e = e.queue(q);
    }
    if let Some(p) = b.priority {
        e = e.priority(p);
    }
    if let Some(p) = &b.parent {
        e = e.parent(parse_id(p)?);
    }
    if let Some(a) = &b.after {
        e = e.after(parse_id(a)?);
    }
    if let Some(k) = &b.unique_key {
        e = e.unique_key(k);
    }
    let task = state.client.enqueue(e).await?;
    Ok((StatusCode::CREATED, Json(task.to_json())))
}

async fn cancel_task(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let outcome = match state.client.cancel(id).await? {
        CancelOutcome::Canceled => "canceled".to_string(),
        CancelOutcome::StopRequested => "stop-requested".to_string(),
        CancelOutcome::AlreadyEnded(s) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("task {id} has already ended ({s})"),
            ));
        }
        CancelOutcome::NotFound => return Err(ApiError::not_found(format!("no task {id}"))),
    };
    Ok(Json(json!({"id": id.to_string(), "outcome": outcome})))
}

async fn retry_task(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = parse_id(&id)?;
    let task = state.client.retry(id).await?;
    Ok((StatusCode::CREATED, Json(task.to_json())))
}

async fn queues(State(state): State<Arc<ApiState>>) -> ApiResult<Json<Value>> {
    let stats = state.client.queues().await?;
    Ok(Json(Value::Array(
        stats.iter().map(|q| q.to_json()).collect(),
    )))
}

fn check_queue(q: &str) -> ApiResult<()> {
    if crate::model::is_valid_name(q) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "invalid queue name {q:?}: use letters, digits, '.', '_' and '-', starting with a letter or digit"
        )))
    }
}

async fn pause_queue(
    State(state): State<Arc<ApiState>>,
    Path(queue): Path<String>,
) -> ApiResult<Json<Value>> {
    check_queue(&queue)?;
    let changed = state
        .client
        .store()
        .queue_pause(&queue, chrono::Utc::now())
        .await?;
    Ok(Json(
        json!({"queue": queue, "state": "paused", "changed": changed}),
    ))
}

async fn resume_queue(
    State(state): State<Arc<ApiState>>,
    Path(queue): Path<String>,
) -> ApiResult<Json<Value>> {
    check_queue(&queue)?;
    let changed = state.client.store().queue_resume(&queue).await?;
    Ok(Json(
        json!({"queue": queue, "state": "active", "changed": changed}),
    ))
}

async fn instances(State(state): State<Arc<ApiState>>) -> ApiResult<Json<Value>> {
    let store = state.client.store();
    let now = store.db_now().await.unwrap_or_else(|_| chrono::Utc::now());
    let list = store.instance_list().await?;
    Ok(Json(Value::Array(
        list.iter()
            .map(|i| {
                json!({
                    "id": i.id.to_string(),
                    "name": i.name,
                    "host": i.host,
                    "pid": i.pid,
                    "slots": i.slots,
                    "queues": i.queues,
                    "state": i.state(now),
                    "started_at": fmt_time(i.started_at),
                    "heartbeat_at": fmt_time(i.heartbeat_at),
                    "clock_offset_ms": i.clock_offset_ms,
                    "stopped_at": i.stopped_at.map(fmt_time),
                })
            })
            .collect(),
    )))
}
