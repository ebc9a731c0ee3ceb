//! A task's log over HTTP: whole (`GET /api/tasks/{id}/log`), or followed
//! while the task runs as server-sent events
//! (`GET /api/tasks/{id}/log/stream`). Reads go through a confined
//! [`LogReader`]: the project's log directory and the stored logs only.

use super::{ApiError, ApiResult, ApiState, parse_id};
use crate::logs::{LogError, LogReader};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;

impl From<LogError> for ApiError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::Store(s) => s.into(),
            LogError::Missing(m) => ApiError::new(StatusCode::NOT_FOUND, "log_missing", m),
            LogError::Read(m) => {
                tracing::warn!("API log read failed: {m}");
                ApiError::new(StatusCode::BAD_GATEWAY, "log_unreadable", m)
            }
        }
    }
}

fn reader(state: &ApiState) -> LogReader {
    LogReader::confined(state.log_dir.clone(), state.storage.clone())
}

/// Query of `GET /api/tasks/{id}/log`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LogQuery {
    attempt: Option<u32>,
}

/// The log as text: the current attempt's, or an earlier attempt's. Empty
/// for a task that has not started.
pub(super) async fn task_log(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    query: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let id = parse_id(&id)?;
    let store = state.client.store().clone();
    let Some(task) = store.task_get(id).await? else {
        return Err(ApiError::not_found(format!("no task {id}")));
    };
    let reader = reader(&state);
    let bytes = match q.attempt.filter(|n| *n != task.attempt) {
        Some(n) => {
            let attempts = store.task_attempts(id).await?;
            let Some(a) = attempts.into_iter().find(|a| a.attempt == n) else {
                return Err(ApiError::not_found(format!(
                    "task {id} has no attempt {n} (it is at attempt {})",
                    task.attempt
                )));
            };
            // Uploaded meanwhile: the record is read again, once.
            let mut location = a.log;
            let mut bytes = reader.read(id, n, location.as_deref(), 0).await?;
            if bytes.is_none() {
                location = store
                    .task_attempts(id)
                    .await?
                    .into_iter()
                    .find(|a| a.attempt == n)
                    .and_then(|a| a.log);
                bytes = reader.read(id, n, location.as_deref(), 0).await?;
            }
            bytes.ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "log_missing",
                    format!("the log of attempt {n} of task {id} is not there"),
                )
            })?
        }
        None => {
            let mut follower = reader.follow(store, task, false);
            let mut all = Vec::new();
            while let Some(chunk) = follower.next().await? {
                all.extend_from_slice(&chunk);
            }
            all
        }
    };
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], bytes).into_response())
}

/// The log as server-sent events while the task runs: `log` events whose
/// data is `{"text": …}` (UTF-8 text; a character split between reads waits
/// for its end), then one `end` event with the task's final
/// `{"id","status","reason","exit_code"}`, or an `error` event
/// `{"code","message"}`. Following a pending task waits for it to start.
/// When the server begins to shut down the stream ends at once with an
/// `error` event whose code is `shutdown`.
pub(super) async fn task_log_stream(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let id = parse_id(&id)?;
    let store = state.client.store().clone();
    let Some(task) = store.task_get(id).await? else {
        return Err(ApiError::not_found(format!("no task {id}")));
    };
    let follower = reader(&state).follow(store, task, true);
    let shutdown = state.shutdown.clone();
    // State: the follower, bytes of an unfinished character, whether done.
    let events = stream::unfold(
        (follower, Vec::<u8>::new(), false),
        move |(mut f, mut carry, done)| {
            let shutdown = shutdown.clone();
            async move {
                if done {
                    return None;
                }
                // The server's shutdown ends the stream (a pending task may
                // wait for hours), saying so.
                let next = tokio::select! {
                    biased;
                    _ = shutdown.started() => None,
                    next = f.next() => Some(next),
                };
                let Some(next) = next else {
                    let ev = Event::default().event("error").json_data(json!({
                    "code": "shutdown",
                    "message": "the server is shutting down; follow the log again from another one",
                }));
                    return Some((Ok(ev.unwrap_or_default()), (f, Vec::new(), true)));
                };
                let event = match next {
                    Ok(Some(chunk)) => {
                        carry.extend_from_slice(&chunk);
                        let text = take_text(&mut carry);
                        Event::default()
                            .event("log")
                            .json_data(json!({ "text": text }))
                    }
                    Ok(None) if !carry.is_empty() => {
                        // A last character cut short: sent as it is.
                        let text = String::from_utf8_lossy(&carry).into_owned();
                        carry.clear();
                        Event::default()
                            .event("log")
                            .json_data(json!({ "text": text }))
                    }
                    Ok(None) => {
                        let t = f.task();
                        let end = Event::default().event("end").json_data(json!({
                            "id": t.id.to_string(),
                            "status": t.status.as_str(),
                            "reason": t.reason,
                            "exit_code": t.exit_code,
                        }));
                        return Some((Ok(end.unwrap_or_default()), (f, Vec::new(), true)));
                    }
                    Err(e) => {
                        let e = ApiError::from(e);
                        let ev = Event::default()
                            .event("error")
                            .json_data(json!({"code": e.code, "message": e.message}));
                        return Some((Ok(ev.unwrap_or_default()), (f, Vec::new(), true)));
                    }
                };
                Some((Ok(event.unwrap_or_default()), (f, carry, false)))
            }
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// Takes the longest prefix of `buf` that is complete UTF-8 (invalid bytes
/// replaced), leaving an unfinished last character in `buf`.
fn take_text(buf: &mut Vec<u8>) -> String {
    let keep = match std::str::from_utf8(buf) {
        Ok(_) => 0,
        Err(e) if e.error_len().is_none() => buf.len() - e.valid_up_to(),
        Err(_) => 0,
    };
    let rest = buf.split_off(buf.len() - keep);
    let text = String::from_utf8_lossy(buf).into_owned();
    *buf = rest;
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_split_character_waits_for_its_end() {
        let mut buf = "né".as_bytes().to_vec();
        let last = buf.pop().expect("two bytes");
        assert_eq!(super::take_text(&mut buf), "n");
        buf.push(last);
        assert_eq!(super::take_text(&mut buf), "é");
        assert!(buf.is_empty());
        let mut bad = vec![b'a', 0xff, b'b'];
        assert_eq!(super::take_text(&mut bad), "a\u{fffd}b");
    }
}
