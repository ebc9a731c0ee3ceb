//! One supervising tokio task per claimed task: builds the child's environment,
//! starts it through the runner, waits for its end and hands the outcome to the
//! finisher.

use super::finish::{Ended, Event};
use super::{Running, Shared};
use crate::model::{Outcome, Task, fmt_time};
use crate::runner::{SpawnSpec, Started};
use chrono::Utc;
use std::path::PathBuf;
use std::sync::Arc;
use tracing::Instrument;

/// Environment variables holding the scheduler's own secrets; never given to tasks.
pub const SECRET_ENV: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "JOBSLOT_S3_ACCESS_KEY_ID",
    "JOBSLOT_S3_SECRET_ACCESS_KEY",
    "JOBSLOT_API_TOKEN",
];

/// Largest result file read, in bytes.
const RESULT_LIMIT: u64 = 1024 * 1024;

/// Takes the task's slots and starts supervising it.
pub fn start(shared: Arc<Shared>, task: Task) {
    *shared.used_slots.lock().unwrap_or_else(|p| p.into_inner()) += task.slots;
    shared
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(task.id, Running::default());
    let span = tracing::info_span!("task", id = %task.id, job = %task.job, attempt = task.attempt);
    tokio::spawn(supervise(shared, task).instrument(span));
}

fn release(shared: &Shared, task: &Task) {
    shared
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&task.id);
    let mut used = shared.used_slots.lock().unwrap_or_else(|p| p.into_inner());
    *used = used.saturating_sub(task.slots);
    drop(used);
    shared
        .freed_at
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(tokio::time::Instant::now);
    shared.wake.notify_one();
}

async fn supervise(shared: Arc<Shared>, task: Task) {
    let cfg = &shared.config;
    let log_path = cfg
        .log_dir
        .join(crate::model::log_file_name(task.id, task.attempt));
    let result_path = cfg.log_dir.join(format!("{}.result.json", task.id));
    let deadline_utc = task
        .deadline_at
        .unwrap_or_else(|| crate::model::time_after(Utc::now(), task.max_execution_time));
    let remaining = (deadline_utc - Utc::now()).to_std().unwrap_or_default();
    let program = shared.jobs.get(&task.job).and_then(|j| j.program.clone());
    let started = match program {
        None => Started::Failed(format!("no executable for job {:?} in jobs/", task.job)),
        Some(program) => {
            let spec = SpawnSpec {
                program: cfg.project.join(program),
                cwd: cfg.project.clone(),
                stdin: task.args.to_string().into_bytes(),
                env: child_env(&shared, &task, deadline_utc, &result_path),
                env_remove: SECRET_ENV.iter().map(|s| s.to_string()).collect(),
                log_path: log_path.clone(),
                log_cap: cfg.log_cap,
                deadline: tokio::time::Instant::now() + remaining,
                // The runner kills on its own clock, with or without the
                // database; capping the grace at half the orphan grace means
                // a task cut off from the database is gone well before any
                // other instance may declare it orphaned.
                kill_grace: task.kill_grace.min(cfg.orphan_grace / 2),
            };
            shared.runner.start(spec).await
        }
    };
    let log = Some(log_path.to_string_lossy().into_owned());
    let outcome = match started {
        Started::Failed(e) => {
            tracing::warn!(error = %e, "task could not be started");
            Outcome::SpawnError(e)
        }
        Started::Running(handle) => {
            if let Some(r) = shared
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(&task.id)
            {
                if let Some(why) = r.requested {
                    handle.stop(why);
                }
                r.stop = Some(handle.stop_handle());
            }
            let _ = shared
                .finisher
                .send(Event::Spawned(crate::store::TaskSpawnedParams {
                    id: task.id,
                    pgid: handle.pgid,
                    log: log.clone().unwrap_or_default(),
                }));
            tracing::debug!(pid = handle.pid, "task started");
            let report = handle.wait().await;
            report.outcome
        }
    };
    let result = match read_result(&result_path).await {
        Ok(v) => v,
        Err(warning) => {
            // The task's own log says why it has no result.
            tracing::warn!(task = %task.id, "{warning}");
            append_to_log(&log_path, &format!("[jobslot] warning: {warning}")).await;
            None
        }
    };
    tracing::info!(outcome = ?outcome, "task ended");
    let _ = shared.finisher.send(Event::Ended(Box::new(Ended {
        task: task.clone(),
        outcome,
        result,
        log,
        ended_at: Utc::now(),
    })));
    release(&shared, &task);
}

fn child_env(
    shared: &Shared,
    task: &Task,
    deadline: chrono::DateTime<Utc>,
    result_path: &std::path::Path,
) -> Vec<(String, String)> {
    let last = super::recurrence::last_completed_at(task).unwrap_or_default();
    vec![
        ("JOBSLOT_TASK_ID".into(), task.id.to_string()),
        ("JOBSLOT_JOB".into(), task.job.clone()),
        ("JOBSLOT_ATTEMPT".into(), task.attempt.to_string()),
        ("JOBSLOT_ARGS".into(), task.args.to_string()),
        ("JOBSLOT_METADATA".into(), task.metadata.to_string()),
        ("JOBSLOT_LAST_COMPLETED_AT".into(), last),
        ("JOBSLOT_DEADLINE".into(), fmt_time(deadline)),
        (
            "JOBSLOT_RESULT_FILE".into(),
            result_path.to_string_lossy().into_owned(),
        ),
        (
            "JOBSLOT_DATABASE".into(),
            shared.config.database_url.clone(),
        ),
        (
            "JOBSLOT_PROJECT".into(),
            shared.config.project.to_string_lossy().into_owned(),
        ),
    ]
}

/// Reads and removes the task's result file, if it wrote one. An empty file
/// is no result; one that is too big or not JSON is an error saying so.
async fn read_result(path: &PathBuf) -> Result<Option<serde_json::Value>, String> {
    let Ok(meta) = tokio::fs::metadata(path).await else {
        return Ok(None);
    };
    let out = if meta.len() > RESULT_LIMIT {
        Err(format!(
            "the result file ($JOBSLOT_RESULT_FILE) has {} bytes, over the limit of {RESULT_LIMIT}; the task has no result",
            meta.len()
        ))
    } else {
        match tokio::fs::read(path).await {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(None),
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                format!(
                    "the result file ($JOBSLOT_RESULT_FILE) is not valid JSON ({e}); the task has no result"
                )
            }),
            Err(e) => Err(format!("cannot read the result file: {e}")),
        }
    };
    let _ = tokio::fs::remove_file(path).await;
    out
}

/// Adds a line of jobslot's own at the end of a task's log.
async fn append_to_log(path: &std::path::Path, line: &str) {
    use tokio::io::AsyncWriteExt;
    let file = tokio::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .await;
    if let Ok(mut f) = file {
        let _ = f.write_all(format!("\n{line}\n").as_bytes()).await;
    }
}
