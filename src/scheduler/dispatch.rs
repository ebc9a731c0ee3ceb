//! The dispatcher: claims due tasks while slots are free, fails orphaned tasks
//! of other instances, and forwards cancel requests to running tasks. It sleeps
//! until the next due time or orphan deadline, or until woken.

use super::{Shared, supervise};
use crate::model::{CatchUp, Job, Recurrence, Schedule, Task};
use crate::store::{
    AfterLink, ApplyReport, JobSettings, NewTask, OrphanParams, ScheduleApplyParams, ScheduleSpec,
    Store, StoreResult, TaskClaimParams, TaskRescheduleParams,
};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Applies the schema's schedules and job settings to the store.
pub async fn apply_schema(
    store: &dyn Store,
    jobs: &BTreeMap<String, Job>,
    schedules: &[Schedule],
) -> StoreResult<ApplyReport> {
    let now = Utc::now();
    let specs = schedules
        .iter()
        .filter_map(|s| {
            let job = jobs.get(&s.job)?;
            let (due_at, after) = match &s.recurrence {
                Recurrence::After { schedule } => (now, AfterLink::Schedule(schedule.clone())),
                r => (r.first_due(now)?, AfterLink::None),
            };
            // The unique key rides in the stored recurrence, so that changing
            // it counts as a change of the schedule.
            let mut recurrence = s.recurrence.to_json();
            if let Some(key) = &s.unique_key {
                recurrence[super::recurrence::UNIQUE_KEY] = serde_json::Value::from(key.clone());
            }
            Some(ScheduleSpec {
                name: s.name.clone(),
                job: s.job.clone(),
                recurrence: recurrence.clone(),
                args: s.args.clone(),
                first: NewTask {
                    id: Uuid::now_v7(),
                    job: s.job.clone(),
                    queue: job.queue.clone(),
                    priority: job.priority,
                    slots: job.slots,
                    max_execution_time: job.max_execution_time,
                    kill_grace: job.kill_grace,
                    schedule: Some(s.name.clone()),
                    recurrence: Some(recurrence),
                    after,
                    parent: None,
                    args: s.args.clone(),
                    metadata: serde_json::json!({ super::recurrence::LAST_COMPLETED_AT: null }),
                    due_at,
                    created_at: now,
                    attempt: 1,
                    unique_key: s.unique_key.clone(),
                },
            })
        })
        .collect();
    let job_settings = jobs
        .values()
        .map(|j| JobSettings {
            name: j.name.clone(),
            slots: j.slots,
            max_execution_time: j.max_execution_time,
            kill_grace: j.kill_grace,
        })
        .collect();
    store
        .schedule_apply(ScheduleApplyParams {
            schedules: specs,
            jobs: job_settings,
            now,
        })
        .await
}

/// How often, at most, a wake-up from another process triggers the checks for
/// cancel requests and orphans (a claim is tried on every wake-up).
const CHECK_EVERY: Duration = Duration::from_millis(25);

/// How long a claim after a local wake-up waits for more slots to free up.
const LOCAL_COALESCE: Duration = Duration::from_millis(2);

/// The dispatcher loop.
pub async fn run(shared: Arc<Shared>) {
    assert!(
        !shared.faults.panic_dispatcher,
        "test fault: the dispatcher panics"
    );
    let mut stopping = shared.stopping.subscribe();
    let mut last_check: Option<tokio::time::Instant> = None;
    let mut full = true;
    loop {
        if *stopping.borrow() {
            return;
        }
        if full {
            last_check = Some(tokio::time::Instant::now());
        }
        let next = match step(&shared, full).await {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(error = %e, "dispatch step failed; retrying");
                Some(shared.now() + chrono::Duration::milliseconds(200))
            }
        };
        let poll = tokio::time::Instant::now() + shared.config.poll_interval;
        let until = next
            .map(|t| {
                let d = (t - shared.now()).to_std().unwrap_or(Duration::ZERO);
                tokio::time::Instant::now() + d
            })
            .map_or(poll, |t| t.min(poll));
        full = tokio::select! {
            // Slots freed or tasks ended in this process: only a claim is needed.
            // While other slots are busy, more are likely to free up within a
            // moment: wait that moment, counted from the first slot freed (it
            // may have waited through the previous claim already), so one
            // claim fills several slots.
            _ = shared.wake.notified() => {
                if shared.free_slots() < shared.config.slots {
                    let first = shared.peek_freed_at().unwrap_or_else(tokio::time::Instant::now);
                    tokio::time::sleep_until(first + LOCAL_COALESCE).await;
                }
                false
            }
            // Another process committed: it may have enqueued, canceled or died.
            _ = shared.external.notified() => {
                last_check.is_none_or(|t| t.elapsed() >= CHECK_EVERY)
            }
            _ = tokio::time::sleep_until(until) => true,
            _ = stopping.changed() => true,
        };
    }
}

/// One pass: cancel requests and orphans (when `full`), then claims. Returns
/// when to look again.
async fn step(shared: &Arc<Shared>, full: bool) -> StoreResult<Option<DateTime<Utc>>> {
    let store = &shared.store;
    let me = shared.instance.id;
    let mut orphan_deadline = *shared
        .orphan_deadline
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if full {
        if shared.running_count() > 0 {
            for id in store.task_cancel_requests(me).await? {
                shared.request_stop(id, crate::runner::StopReason::Cancel);
            }
            for id in store.task_expire_requests(me).await? {
                shared.request_stop(id, crate::runner::StopReason::Expire);
            }
        }
        orphan_deadline = rescue_orphans(shared).await?;
        *shared
            .orphan_deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = orphan_deadline;
    }
    loop {
        if *shared.stopping.borrow() {
            return Ok(None);
        }
        if shared.is_fenced() {
            // No heartbeat recorded for a while: claim nothing until one is.
            return Ok(orphan_deadline);
        }
        if let Some(until) = shared.shortage.until() {
            return Ok([Some(until), orphan_deadline].into_iter().flatten().min());
        }
        shared.clear_freed_at();
        let free = shared.free_slots();
        if free == 0 {
            break;
        }
        let now = shared.now();
        let claimed = {
            // Claimed tasks are registered before the ownership check can
            // look (see `ownership`).
            let _claims = shared.claim_lock.lock().await;
            let claimed = store
                .task_claim(TaskClaimParams {
                    instance_id: me,
                    instance_name: shared.instance.name.clone(),
                    host: shared.instance.host.clone(),
                    queues: shared.config.queues.clone(),
                    free_slots: free,
                    limit: free as usize,
                    now,
                    starvation_after: shared.starvation_after(),
                    log_prefix: Some(format!("{}/", shared.config.log_dir.to_string_lossy())),
                })
                .await?;
            for task in &claimed {
                supervise::register(shared, task);
            }
            claimed
        };
        if claimed.is_empty() {
            break;
        }
        // Each claimed task is started or handed back on its own: an error
        // with one never strands the others (and one left held is put back
        // by the ownership check at the next heartbeat).
        for task in claimed {
            if shared.faults.drop_claimed() {
                tracing::warn!(task = %task.id, "test fault: forgetting a claimed task");
                supervise::unregister(shared, &task);
                continue;
            }
            if let Some(due) = missed(&task, now) {
                let moved = store
                    .task_reschedule(TaskRescheduleParams {
                        id: task.id,
                        instance_id: me,
                        due_at: due,
                    })
                    .await;
                supervise::unregister(shared, &task);
                match moved {
                    Ok(moved) => {
                        tracing::info!(task = %task.id, schedule = ?task.schedule, next = %due, moved, "missed occurrence skipped")
                    }
                    Err(e) => {
                        tracing::warn!(task = %task.id, error = %e, "cannot move a missed occurrence; the ownership check puts it back")
                    }
                }
                continue;
            }
            supervise::start(shared.clone(), task);
        }
    }
    // With every slot busy, the next claim follows a slot freeing up, which
    // wakes the dispatcher: when the next task is due does not matter yet.
    if shared.free_slots() == 0 {
        return Ok(orphan_deadline);
    }
    let next_due = store.task_next_due(shared.now()).await?;
    Ok([next_due, orphan_deadline].into_iter().flatten().min())
}

/// For a recurring occurrence claimed after the following one was already due
/// (missed): with `catch_up = "skip"`, the due time to move it to (the first in
/// the future) instead of running it. With `catch_up = "one"` it runs now (`None`),
/// and its end decides the next due time, which skips the other missed ones.
fn missed(task: &Task, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let recurrence = Recurrence::from_json(task.recurrence.as_ref()?).ok()?;
    let due = task.start_at?;
    if !recurrence.is_missed(due, now) {
        return None;
    }
    match recurrence.catch_up() {
        CatchUp::Skip => recurrence.next_due(Some(due), now),
        CatchUp::One => {
            tracing::info!(task = %task.id, schedule = ?task.schedule, due = %due, "missed occurrence runs now (catch_up = one)");
            None
        }
    }
}

/// Fails running tasks of other instances whose deadline plus the orphan grace
/// has passed, first killing what is left of their process groups when they ran
/// on this host. Returns the next time to look.
async fn rescue_orphans(shared: &Arc<Shared>) -> StoreResult<Option<DateTime<Utc>>> {
    let store = &shared.store;
    let grace = shared.config.orphan_grace;
    let now = shared.now();
    let orphans = store
        .task_list_orphans(OrphanParams {
            me: shared.instance.id,
            now,
            grace,
        })
        .await?;
    for task in orphans {
        if task.host.as_deref() == Some(shared.instance.host.as_str()) {
            // Without a recorded group (the instance died within moments of
            // the spawn), every process is searched for the task's id.
            let pgid = task.pgid;
            let id = task.id.to_string();
            let killed =
                tokio::task::spawn_blocking(move || crate::runner::kill_leftover_group(pgid, &id))
                    .await
                    .unwrap_or(0);
            if killed > 0 {
                tracing::warn!(task = %task.id, ?pgid, killed, "killed leftover processes of an orphaned task");
            }
        }
        super::ends::fail_orphan(shared, task).await?;
    }
    let next = store.task_next_foreign_deadline(shared.instance.id).await?;
    Ok(next.map(|d| crate::model::time_after(d, grace)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::recurrence::tests::task;
    use chrono::TimeZone;

    #[test]
    fn a_missed_occurrence_is_moved_with_skip_and_runs_with_one() {
        let t0 = Utc.timestamp_opt(1_800_000_000, 0).single().expect("time");
        let s = |n| t0 + chrono::Duration::seconds(n);
        let every = |catch_up| Recurrence::Every {
            interval: Duration::from_secs(10),
            start_at: None,
            catch_up,
        };
        let skip = task(Some(every(CatchUp::Skip).to_json()), t0);
        let one = task(Some(every(CatchUp::One).to_json()), t0);
        // Claimed at t0+35 s: t0+10, +20 and +30 were due too.
        assert_eq!(missed(&skip, s(35)), Some(s(40)));
        assert_eq!(missed(&one, s(35)), None);
        // Late by less than one interval: it runs either way.
        assert_eq!(missed(&skip, s(9)), None);
        assert_eq!(missed(&one, s(9)), None);
    }
}
