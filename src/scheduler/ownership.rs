//! Every instance knows what it owns.
//!
//! At each heartbeat (and so after every database reconnect, since a
//! heartbeat is the first write to succeed) an instance compares the tasks
//! the database says it holds (running, on its instance id, at an attempt)
//! with the tasks it really runs:
//!
//! - **held there, not run here**: its claim's answer was lost (the database
//!   committed it while the connection broke) or the step that claimed it
//!   failed before the spawn. A task without a recorded process goes back to
//!   pending at once, same attempt; one with a process recorded (a
//!   supervising task that went away) is ended like an orphan, reason
//!   `lost (instance NAME)`, and retried when its job retries orphans;
//! - **run here, no longer held** (another instance failed it as orphaned, an
//!   operator cleared it): its process group is stopped at once and nothing
//!   is written for it.
//!
//! The comparison holds the claim lock, so no claim commits between the read
//! of the database and the look at `running`; ends handed to the finisher
//! but not yet written count as run here.

use super::{COUNTERS, Shared, ends};
use crate::store::{StoreResult, TaskRescheduleParams};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use uuid::Uuid;

/// What one check found and did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Held in the database, never got a process: back to pending.
    pub released: usize,
    /// Held in the database, process lost: ended `lost`.
    pub lost: usize,
    /// Run here, not held any more: stopped.
    pub stopped: usize,
}

/// One comparison (see the module documentation).
pub async fn check(shared: &Arc<Shared>) -> StoreResult<Report> {
    let me = shared.instance.id;
    let _claims = shared.claim_lock.lock().await;
    let held = shared.store.task_held(me).await?;
    let running: HashMap<Uuid, u32> = shared
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(id, r)| (*id, r.attempt))
        .collect();
    let unwritten: HashSet<Uuid> = shared
        .unwritten
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut report = Report::default();
    let held_here: HashSet<(Uuid, u32)> = held.iter().map(|t| (t.id, t.attempt)).collect();
    for task in held {
        if running.contains_key(&task.id) || unwritten.contains(&task.id) {
            continue;
        }
        let now = shared.now();
        if task.pgid.is_none() {
            // Never got a process: as if it had not been claimed.
            let moved = shared
                .store
                .task_reschedule(TaskRescheduleParams {
                    id: task.id,
                    instance_id: me,
                    due_at: task.start_at.unwrap_or(now).min(now),
                })
                .await?;
            if moved {
                report.released += 1;
                COUNTERS.released.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(task = %task.id, job = %task.job, attempt = task.attempt, "the database said this instance held a task it was not running (its claim's answer was lost): put back to pending");
            }
        } else {
            let reason = format!("lost (instance {})", shared.instance.name);
            let retry = shared
                .jobs
                .get(&task.job)
                .is_some_and(|j| j.retry.retry_on_orphan);
            let (status, _) = ends::end_abandoned(
                shared.store.as_ref(),
                &shared.jobs,
                &task,
                reason,
                retry,
                now,
            )
            .await?;
            if status.is_some() {
                report.lost += 1;
                COUNTERS.lost.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(task = %task.id, job = %task.job, attempt = task.attempt, ?status, "a task this instance held lost its process");
            }
        }
    }
    let mut stop = Vec::new();
    {
        let mut local = shared.running.lock().unwrap_or_else(|p| p.into_inner());
        for (id, r) in local.iter_mut() {
            if !r.lost && !held_here.contains(&(*id, r.attempt)) {
                r.lost = true;
                stop.push(*id);
            }
        }
    }
    for id in stop {
        report.stopped += 1;
        COUNTERS.unheld_stopped.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(task = %id, "the database no longer says this instance holds a task it runs (failed as orphaned or cleared elsewhere): stopping its processes; nothing is written for it");
        shared.request_stop(id, crate::runner::StopReason::Shutdown);
    }
    Ok(report)
}
