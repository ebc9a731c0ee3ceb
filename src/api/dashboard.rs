//! Routes the Jobs page reads besides the task, queue and instance routes:
//! the project's jobs (for its enqueue form), the timeline behind its charts,
//! and the schedules with their next and last occurrences.

use super::{ApiError, ApiResult, ApiState};
use crate::model::fmt_time;
use crate::store::{Series, TimelineParams};
use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// `GET /api/jobs`: every job of the project, by name.
pub(super) async fn jobs(State(state): State<Arc<ApiState>>) -> Json<Value> {
    Json(Value::Array(
        state
            .client
            .jobs()
            .map(|j| {
                json!({
                    "name": j.name,
                    "queue": j.queue,
                    "priority": j.priority,
                    "slots": j.slots,
                    "max_execution_time_ms": j.max_execution_time.as_millis() as u64,
                    "runnable": j.program.is_some(),
                })
            })
            .collect(),
    ))
}

/// Query of `GET /api/timeline`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TimelineQuery {
    minutes: Option<u32>,
}

fn series_json(s: &Series) -> Value {
    json!({
        "completed": s.completed,
        "failed": s.failed,
        "canceled": s.canceled,
        "depth": s.depth,
    })
}

/// `GET /api/timeline?minutes=N`: tasks ended per minute and pending at each
/// minute's end over the last N minutes (default 60, at most 1440).
pub(super) async fn timeline(
    State(state): State<Arc<ApiState>>,
    query: Result<Query<TimelineQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let minutes = q.minutes.unwrap_or(60);
    if !(1..=1440).contains(&minutes) {
        return Err(ApiError::bad_request("minutes must be from 1 to 1440"));
    }
    let p = TimelineParams::last(chrono::Utc::now(), minutes, 60_000);
    let t = state.client.store().task_timeline(p).await?;
    let sum = |v: &[u64]| v.iter().sum::<u64>();
    let queues: Vec<Value> = t
        .queues
        .iter()
        .map(|(name, s)| {
            json!({
                "queue": name,
                "completed": sum(&s.completed),
                "failed": sum(&s.failed),
                "canceled": sum(&s.canceled),
                "depth": s.depth,
            })
        })
        .collect();
    let mut v = series_json(&t.total);
    v["from"] = json!(fmt_time(p.from));
    v["to"] = json!(fmt_time(p.now));
    v["step_seconds"] = json!(60);
    v["minutes"] = json!(t.starts.iter().map(|s| fmt_time(*s)).collect::<Vec<_>>());
    v["queues"] = Value::Array(queues);
    Ok(Json(v))
}

/// `GET /api/schedules`: every applied schedule with its next run and its
/// last outcome.
pub(super) async fn schedules(State(state): State<Arc<ApiState>>) -> ApiResult<Json<Value>> {
    let list = state.client.schedules().await?;
    Ok(Json(Value::Array(
        list.iter().map(|s| s.to_json()).collect(),
    )))
}

/// `GET /api/workers`: every worker with its replicas, as `jobslot workers
/// --json`.
pub(super) async fn workers(State(state): State<Arc<ApiState>>) -> ApiResult<Json<Value>> {
    let list = crate::scheduler::workers::WorkerStatus::list(state.client.store().as_ref()).await?;
    Ok(Json(Value::Array(
        list.iter().map(|w| w.to_json()).collect(),
    )))
}

async fn control_worker(
    state: &ApiState,
    name: &str,
    change: crate::store::WorkerControl,
) -> ApiResult<Json<Value>> {
    let store = state.client.store();
    let Some((row, stopped)) =
        crate::scheduler::workers::control(store.as_ref(), name, change).await?
    else {
        return Err(ApiError::not_found(format!("no worker {name:?}")));
    };
    Ok(Json(json!({
        "worker": name,
        "state": row.state.as_str(),
        "generation": row.generation,
        "replicas_stopping": stopped,
    })))
}

/// `POST /api/workers/{name}/stop`.
pub(super) async fn stop_worker(
    State(state): State<Arc<ApiState>>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> ApiResult<Json<Value>> {
    let why = crate::store::WorkerControl::Stop("stopped through the API".into());
    control_worker(&state, &name, why).await
}

/// `POST /api/workers/{name}/start`.
pub(super) async fn start_worker(
    State(state): State<Arc<ApiState>>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> ApiResult<Json<Value>> {
    control_worker(&state, &name, crate::store::WorkerControl::Start).await
}

/// `POST /api/workers/{name}/restart`: a rolling restart.
pub(super) async fn restart_worker(
    State(state): State<Arc<ApiState>>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> ApiResult<Json<Value>> {
    control_worker(&state, &name, crate::store::WorkerControl::Restart).await
}
