//! Retention: deleting finished tasks and their logs (local files and stored
//! objects, of the task and of its earlier attempts) in batches, logs first so
//! no row ever points at nothing silently.

use crate::logs::{Storage, parse_s3_url};
use crate::model::TaskStatus;
use crate::store::{Store, TaskPruneParams};
use chrono::{DateTime, Utc};

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    /// Task rows deleted.
    pub tasks: usize,
    /// Local log files deleted.
    pub local_logs: usize,
    /// Stored log objects deleted.
    pub stored_logs: usize,
}

/// A prune that could not finish; `done` says what was removed before.
#[derive(Debug, thiserror::Error)]
#[error("{why} (removed before the error: {} tasks, {} local logs, {} stored logs)", done.tasks, done.local_logs, done.stored_logs)]
pub struct PruneError {
    /// Why it stopped.
    pub why: String,
    /// What was removed before.
    pub done: PruneReport,
}

/// Deletes tasks in `statuses` (all finished ones if empty) that ended before
/// `ended_before`, with their logs, `batch` at a time.
pub async fn prune(
    store: &dyn Store,
    storage: Option<&Storage>,
    ended_before: DateTime<Utc>,
    statuses: &[TaskStatus],
    batch: usize,
) -> Result<PruneReport, PruneError> {
    let mut done = PruneReport::default();
    let fail = |why: String, done: &PruneReport| PruneError {
        why,
        done: done.clone(),
    };
    loop {
        let rows = store
            .task_list_prunable(TaskPruneParams {
                ended_before,
                statuses: statuses.to_vec(),
                limit: batch.max(1),
            })
            .await
            .map_err(|e| fail(e.to_string(), &done))?;
        if rows.is_empty() {
            return Ok(done);
        }
        // Every log of each task: its own and those of its earlier attempts.
        let mut logs: Vec<String> = Vec::new();
        for r in &rows {
            let earlier = store
                .task_attempts(r.id)
                .await
                .map_err(|e| fail(e.to_string(), &done))?;
            logs.extend(r.log.clone());
            logs.extend(earlier.into_iter().filter_map(|a| a.log));
        }
        let (urls, local): (Vec<String>, Vec<String>) =
            logs.into_iter().partition(|l| parse_s3_url(l).is_some());
        if !urls.is_empty() {
            let Some(storage) = storage else {
                return Err(fail(
                    "some logs are in S3 storage but no storage is configured (set JOBSLOT_S3_ENDPOINT and credentials as for `jobslot run`)".to_string(),
                    &done,
                ));
            };
            done.stored_logs += storage
                .delete(&urls)
                .await
                .map_err(|e| fail(e.to_string(), &done))?;
        }
        for path in local {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => done.local_logs += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(fail(format!("cannot delete {path}: {e}"), &done)),
            }
        }
        done.tasks += store
            .task_delete_finished(rows.iter().map(|r| r.id).collect())
            .await
            .map_err(|e| fail(e.to_string(), &done))?;
    }
}
