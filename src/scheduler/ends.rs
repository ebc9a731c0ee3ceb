//! What a task's end means: the one place that decides it.
//!
//! Whoever sees a task end feeds it here: the finisher (a process this
//! instance ran), the orphan rescue and the ownership check (a task whose
//! process nobody will report on), and the settling of parents (a task whose
//! children are all done). Here its status and retry are decided, and what
//! is written with it in one transaction: the next occurrence of a schedule,
//! the replacement of a worker's replica, a parent's callback. Once written,
//! what follows is decided here too: a worker stopped by its replica's exit
//! 100, parents that may now be settled, logs to upload.
//!
//! It uses the pure rules of [`super::recurrence`], [`super::replica`] and
//! [`super::children`]; nothing here calls back into the finisher or the
//! workers' reconciliation.

use super::{Shared, children, persist, recurrence, replica};
use crate::model::{Outcome, RetryPolicy, Task, TaskStatus};
use crate::store::{StoreResult, TaskFinishParams, TaskListParams, WorkerControl};
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

/// A task's process ended.
pub struct Ended {
    /// The task as claimed.
    pub task: Task,
    /// How it ended.
    pub outcome: Outcome,
    /// Its result JSON.
    pub result: Option<Value>,
    /// Its log location.
    pub log: Option<String>,
    /// When.
    pub ended_at: DateTime<Utc>,
}

/// The write of a process's end, as this instance decides it.
pub async fn end_params(shared: &Shared, e: &Ended) -> TaskFinishParams {
    let (status, reason) = e.outcome.status_and_reason();
    // A worker's replica is never retried: it is replaced (with its own backoff).
    let transient = status == TaskStatus::Failed
        && replica::ReplicaState::of(&e.task).is_none()
        && policy_of(shared, &e.task).is_some_and(|p| p.is_transient(&e.outcome));
    let outcome_reason = reason.clone();
    let plan = retry_plan(
        policy_of(shared, &e.task),
        &e.task,
        transient,
        reason,
        e.ended_at,
    );
    let next = match plan.retry_at {
        Some(_) => None,
        None => {
            next_for(
                shared.store.as_ref(),
                &shared.jobs,
                &e.task,
                status,
                outcome_reason.as_deref(),
                e.ended_at,
            )
            .await
        }
    };
    let mut p = recurrence::finish_params(
        &e.task,
        shared.instance.id,
        status,
        plan.reason,
        e.outcome.exit_code(),
        e.outcome.signal(),
        e.result.clone(),
        e.log.clone(),
        next,
        e.ended_at,
    );
    p.retry_at = plan.retry_at;
    p.needs_review = plan.needs_review;
    p
}

/// The retry policy of a task's job, as this instance knows it.
fn policy_of<'a>(shared: &'a Shared, task: &Task) -> Option<&'a RetryPolicy> {
    shared.jobs.get(&task.job).map(|j| &j.retry)
}

/// What becomes of a failed attempt.
struct RetryPlan {
    /// Another attempt, due then.
    retry_at: Option<DateTime<Utc>>,
    /// The failure's reason, saying so when the attempts ran out.
    reason: Option<String>,
    /// Attempts ran out on transient failures.
    needs_review: bool,
}

/// Decides whether a failed attempt of `task` is tried again, and when.
fn retry_plan(
    policy: Option<&RetryPolicy>,
    task: &Task,
    transient: bool,
    reason: Option<String>,
    now: DateTime<Utc>,
) -> RetryPlan {
    let Some(policy) = policy.filter(|_| transient) else {
        return RetryPlan {
            retry_at: None,
            reason,
            needs_review: false,
        };
    };
    if policy.retries(task.attempt, true) {
        let delay = policy.delay(task.attempt, random_unit());
        let retry_at = crate::model::time_after(now, delay);
        tracing::info!(task = %task.id, attempt = task.attempt, reason = ?reason, %retry_at, "transient failure; retrying");
        return RetryPlan {
            retry_at: Some(retry_at),
            reason,
            needs_review: false,
        };
    }
    if policy.max_attempts > 1 {
        let text = reason.unwrap_or_else(|| "failed".to_string());
        return RetryPlan {
            retry_at: None,
            reason: Some(format!(
                "{text} (attempts exhausted: {} of {})",
                task.attempt, policy.max_attempts
            )),
            needs_review: true,
        };
    }
    RetryPlan {
        retry_at: None,
        reason,
        needs_review: false,
    }
}

/// A number in [0, 1) from the random bits of a UUIDv7 (for jitter).
fn random_unit() -> f64 {
    let bytes = uuid::Uuid::now_v7().into_bytes();
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&bytes[8..]);
    (u64::from_be_bytes(tail) >> 11) as f64 / (1u64 << 53) as f64
}

pub(super) async fn next_for(
    store: &dyn crate::store::Store,
    jobs: &std::collections::BTreeMap<String, crate::model::Job>,
    task: &Task,
    status: TaskStatus,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Option<crate::store::NewTask> {
    task.recurrence.as_ref()?;
    if let Some(st) = replica::ReplicaState::of(task) {
        let worker = persist("reading worker", || store.worker_get(&st.worker)).await;
        return replica::replacement(worker.as_ref(), task, status, reason, now);
    }
    let schedule = match &task.schedule {
        Some(name) => persist("reading schedule", || store.schedule_get(name)).await,
        None => None,
    };
    let job_name = schedule
        .as_ref()
        .map(|s| s.job.as_str())
        .unwrap_or(&task.job);
    recurrence::next_occurrence(task, status, schedule.as_ref(), jobs.get(job_name), now)
}

/// What follows once the ends of `ended` were written with the statuses
/// `applied`: workers stopped by a replica's exit 100, logs queued for
/// upload, parents that may now be settled.
pub async fn after_written(shared: &Shared, ended: &[Box<Ended>], applied: &[Option<TaskStatus>]) {
    // A replica that exited 100 stops its worker.
    let done: Vec<_> = ended
        .iter()
        .zip(applied)
        .filter(|(e, status)| {
            let (_, reason) = e.outcome.status_and_reason();
            status.is_some_and(|s| replica::self_stopped(s, reason.as_deref()))
        })
        .filter_map(|(e, _)| replica::ReplicaState::of(&e.task))
        .collect();
    if !done.is_empty() {
        stop_workers(shared, &done).await;
    }
    // Parents that may be done: those that just began to wait, and
    // those of children that just ended.
    let mut parents = Vec::new();
    for (e, status) in ended.iter().zip(applied) {
        match status {
            Some(TaskStatus::Waiting) => parents.push(e.task.id),
            Some(s) if s.is_terminal() => parents.extend(e.task.parent),
            _ => {}
        }
    }
    if let Some(uploads) = &shared.uploads {
        for (e, status) in ended.iter().zip(applied) {
            // A retried attempt's log goes now, named in its attempt
            // record; a waiting parent's goes when it ends.
            match (status, &e.log) {
                (Some(TaskStatus::Pending), Some(path)) => {
                    uploads.push_attempt(crate::store::LocalAttemptLog {
                        id: e.task.id,
                        attempt: e.task.attempt,
                        instance: Some(shared.instance.id),
                        path: path.clone(),
                    })
                }
                (Some(s), Some(path)) if s.is_terminal() => uploads.push(crate::store::LocalLog {
                    id: e.task.id,
                    instance: Some(shared.instance.id),
                    path: path.clone(),
                }),
                _ => {}
            }
        }
    }
    if !parents.is_empty() {
        settle(shared, parents).await;
    }
}

/// After their ends were written: replicas that exited 100 stop their
/// workers and the workers' other replicas.
async fn stop_workers(shared: &Shared, done: &[replica::ReplicaState]) {
    for st in done {
        let why = format!(
            "replica {} exited 100 (the job says it is done)",
            st.replica
        );
        tracing::info!(worker = %st.worker, "{why}: worker stopped");
        let store = shared.store.clone();
        let control = WorkerControl::Stop(why);
        persist("stopping a worker", || {
            store.worker_control(&st.worker, control.clone(), shared.now())
        })
        .await;
        replica::stop_replicas(shared.store.as_ref(), &st.worker).await;
    }
}

/// Fails (or, when `retry` and its job's policy allow, retries later) a
/// running task whose process nobody will report on: its instance is gone.
/// Compare-and-set on the instance that held it; with its next occurrence.
/// Returns the status written, or `None` if it no longer applied.
pub async fn end_abandoned(
    store: &dyn crate::store::Store,
    jobs: &std::collections::BTreeMap<String, crate::model::Job>,
    task: &Task,
    reason: String,
    retry: bool,
    now: DateTime<Utc>,
) -> crate::store::StoreResult<(Option<TaskStatus>, Option<DateTime<Utc>>)> {
    let policy = jobs.get(&task.job).map(|j| &j.retry);
    let retry = retry && replica::ReplicaState::of(task).is_none();
    let plan = retry_plan(policy, task, retry, Some(reason.clone()), now);
    let next = match plan.retry_at {
        Some(_) => None,
        None => next_for(store, jobs, task, TaskStatus::Failed, Some(&reason), now).await,
    };
    let applied = store
        .task_finish_many(vec![TaskFinishParams {
            retry_at: plan.retry_at,
            needs_review: plan.needs_review,
            id: task.id,
            expect: TaskStatus::Running,
            expect_instance: task.instance_id,
            status: TaskStatus::Failed,
            reason: plan.reason,
            exit_code: None,
            signal: None,
            ended_at: now,
            result: None,
            log: None,
            next,
            callback: None,
        }])
        .await?;
    Ok((applied.first().copied().flatten(), plan.retry_at))
}

/// Fails a running task of another instance as orphaned (compare-and-set on
/// the instance that held it), with its next occurrence.
pub async fn fail_orphan(shared: &Shared, task: Task) -> crate::store::StoreResult<()> {
    let now = shared.now();
    let holder = task
        .instance
        .clone()
        .unwrap_or_else(|| "unknown".to_string());
    let transient = policy_of(shared, &task).is_some_and(|p| p.retry_on_orphan);
    let (status, retry_at) = end_abandoned(
        shared.store.as_ref(),
        &shared.jobs,
        &task,
        format!("orphaned (instance {holder})"),
        transient,
        now,
    )
    .await?;
    if let (Some(s), Some(parent)) = (status, task.parent)
        && s.is_terminal()
    {
        settle(shared, vec![parent]).await;
    }
    if status.is_some() {
        tracing::warn!(task = %task.id, instance = %holder, retry_at = ?retry_at, "task failed as orphaned");
        // The log is on the dead instance's host: uploaded from there (by
        // this instance if it is the same host, else by the recovery sweep of
        // the next instance there). A retried attempt's log is named in its
        // attempt record; a cancel asked for wins over the retry, and then the
        // log is the task's.
        if let (Some(uploads), true, Some(path)) = (
            &shared.uploads,
            task.host.as_deref() == Some(shared.instance.host.as_str()),
            &task.log,
        ) {
            if status == Some(TaskStatus::Pending) {
                uploads.push_attempt(crate::store::LocalAttemptLog {
                    id: task.id,
                    attempt: task.attempt,
                    instance: task.instance_id,
                    path: path.clone(),
                });
            } else if status.is_some_and(|s| s.is_terminal()) {
                uploads.push(crate::store::LocalLog {
                    id: task.id,
                    instance: task.instance_id,
                    path: path.clone(),
                });
            }
        }
    }
    Ok(())
}

/// How many waiting tasks one sweep looks at.
const SWEEP_LIMIT: usize = 100;

/// Settles the waiting parents among `ids` whose children have all ended,
/// then their own parents, transitively.
pub async fn settle(shared: &Shared, ids: Vec<Uuid>) {
    let mut work = ids;
    work.sort_unstable();
    work.dedup();
    while let Some(id) = work.pop() {
        match settle_one(shared, id).await {
            Ok(Some(grandparent)) => work.push(grandparent),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(task = %id, error = %e, "cannot settle a waiting parent; the sweep tries again")
            }
        }
    }
}

/// Settles every waiting task whose children are done (the safety net).
pub async fn sweep(shared: &Shared) {
    let waiting = shared
        .store
        .task_list(TaskListParams {
            status: Some(TaskStatus::Waiting),
            limit: SWEEP_LIMIT,
            ..Default::default()
        })
        .await;
    match waiting {
        Ok(list) if !list.is_empty() => settle(shared, list.iter().map(|t| t.id).collect()).await,
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot list waiting tasks"),
    }
}

/// Settles one parent if it waits and its children are done. Returns its own
/// parent when it settled (which may now be done too).
async fn settle_one(shared: &Shared, id: Uuid) -> StoreResult<Option<Uuid>> {
    let store = &shared.store;
    let Some(parent) = store.task_get(id).await? else {
        return Ok(None);
    };
    if parent.status != TaskStatus::Waiting {
        return Ok(None);
    }
    let children = store
        .task_list(TaskListParams {
            parent: Some(id),
            limit: i64::MAX as usize,
            ..Default::default()
        })
        .await?;
    if children.iter().any(|c| !c.status.is_terminal()) {
        return Ok(None);
    }
    let now = shared.now();
    let (status, reason) = children::parent_outcome(&children);
    let next = next_for(
        shared.store.as_ref(),
        &shared.jobs,
        &parent,
        status,
        None,
        now,
    )
    .await;
    let callback = children::callback_task(&shared.jobs, &parent, status, &children, now);
    let callback_id = callback.as_ref().map(|c| c.id);
    let applied = store
        .task_finish_many(vec![TaskFinishParams {
            id,
            expect: TaskStatus::Waiting,
            expect_instance: None,
            status,
            reason,
            exit_code: parent.exit_code,
            signal: None,
            ended_at: now,
            result: parent.result.clone(),
            log: None,
            next,
            retry_at: None,
            needs_review: false,
            callback,
        }])
        .await?;
    if applied.first().copied().flatten().is_none() {
        return Ok(None);
    }
    tracing::info!(task = %id, %status, children = children.len(), callback = ?callback_id, "parent settled: its children are done");
    if let (Some(uploads), Some(path)) = (&shared.uploads, &parent.log)
        && parent.host.as_deref() == Some(shared.instance.host.as_str())
        && !path.starts_with("s3://")
    {
        uploads.push(crate::store::LocalLog {
            id,
            instance: parent.instance_id,
            path: path.clone(),
        });
    }
    Ok(parent.parent)
}
