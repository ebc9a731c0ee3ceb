//! The finisher: batches spawn records and task ends into store transactions.
//! A task's end and its next occurrence are written together; writes are retried
//! until the database takes them, so no outcome is lost to a busy database.

use super::{Shared, persist, recurrence};
use crate::model::{Outcome, RetryPolicy, Task, TaskStatus};
use crate::store::{TaskFinishParams, TaskSpawnedParams};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

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

/// Messages to the finisher.
pub enum Event {
    /// A process started.
    Spawned(TaskSpawnedParams),
    /// A process ended.
    Ended(Box<Ended>),
    /// Write what is queued.
    Flush,
    /// Write what is queued, then report.
    Shutdown(oneshot::Sender<()>),
}

/// How long a spawn record waits before it is written. Most short tasks end
/// within it, and their end record carries everything: one write instead of
/// two. A longer-running task's record is written after this delay. If the
/// instance dies before, the task's process group is unrecorded and the orphan
/// rescue finds the leftovers by their `JOBSLOT_TASK_ID` instead.
const SPAWN_RECORD_DELAY: std::time::Duration = std::time::Duration::from_millis(100);

/// How long the first end of a batch waits for others to join its write.
const END_COALESCE: std::time::Duration = std::time::Duration::from_millis(2);

/// The finisher loop.
pub async fn run(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Event>) {
    // Spawn records not yet written, oldest first, with when they came.
    let mut held: Vec<(tokio::time::Instant, TaskSpawnedParams)> = Vec::new();
    loop {
        let first = match held.first() {
            None => rx.recv().await,
            Some((since, _)) => {
                tokio::select! {
                    ev = rx.recv() => ev,
                    _ = tokio::time::sleep_until(*since + SPAWN_RECORD_DELAY) => Some(Event::Flush),
                }
            }
        };
        let Some(first) = first else { break };
        if matches!(first, Event::Ended(_)) {
            // Slots are already free (they do not wait for this write): let
            // the ends of the next moment join this one's write.
            tokio::time::sleep(END_COALESCE).await;
        }
        let mut ended = Vec::new();
        let mut done = Vec::new();
        let mut next = Some(first);
        let mut flush_all = false;
        while let Some(ev) = next.take() {
            match ev {
                Event::Spawned(s) => held.push((tokio::time::Instant::now(), s)),
                Event::Ended(e) => ended.push(e),
                Event::Flush => {}
                Event::Shutdown(tx) => {
                    flush_all = true;
                    done.push(tx)
                }
            }
            if held.len() + ended.len() < 512 {
                next = rx.try_recv().ok();
            }
        }
        // A task that ended needs no spawn record: its end writes the log
        // location and clears the process group.
        held.retain(|(_, s)| !ended.iter().any(|e| e.task.id == s.id));
        let now = tokio::time::Instant::now();
        let due = held
            .iter()
            .take_while(|(since, _)| flush_all || *since + SPAWN_RECORD_DELAY <= now)
            .count();
        if due > 0 {
            let spawned: Vec<TaskSpawnedParams> = held.drain(..due).map(|(_, s)| s).collect();
            let store = shared.store.clone();
            persist("recording started tasks", || {
                store.task_mark_spawned(spawned.clone())
            })
            .await;
        }
        if !ended.is_empty() {
            let mut params = Vec::with_capacity(ended.len());
            for e in &ended {
                params.push(end_params(&shared, e).await);
            }
            let store = shared.store.clone();
            let applied = persist("recording task ends", || {
                store.task_finish_many(params.clone())
            })
            .await;
            {
                let mut unwritten = shared.unwritten.lock().unwrap_or_else(|p| p.into_inner());
                for e in &ended {
                    unwritten.remove(&e.task.id);
                }
            }
            shared.wake.notify_one();
            // A replica that exited 100 stops its worker.
            let done: Vec<_> = ended
                .iter()
                .zip(&applied)
                .filter(|(e, status)| {
                    let (_, reason) = e.outcome.status_and_reason();
                    status.is_some_and(|s| super::workers::self_stopped(s, reason.as_deref()))
                })
                .filter_map(|(e, _)| super::workers::ReplicaState::of(&e.task))
                .collect();
            if !done.is_empty() {
                super::workers::stop_workers(&shared, &done).await;
            }
            // Parents that may be done: those that just began to wait, and
            // those of children that just ended.
            let mut settle = Vec::new();
            for (e, status) in ended.iter().zip(&applied) {
                match status {
                    Some(TaskStatus::Waiting) => settle.push(e.task.id),
                    Some(s) if s.is_terminal() => settle.extend(e.task.parent),
                    _ => {}
                }
            }
            if let Some(uploads) = &shared.uploads {
                for (e, status) in ended.iter().zip(&applied) {
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
                        (Some(s), Some(path)) if s.is_terminal() => {
                            uploads.push(crate::store::LocalLog {
                                id: e.task.id,
                                instance: Some(shared.instance.id),
                                path: path.clone(),
                            })
                        }
                        _ => {}
                    }
                }
            }
            if !settle.is_empty() {
                super::children::settle(&shared, settle).await;
            }
        }
        for tx in done {
            let _ = tx.send(());
        }
    }
}

async fn end_params(shared: &Shared, e: &Ended) -> TaskFinishParams {
    let (status, reason) = e.outcome.status_and_reason();
    // A worker's replica is never retried: it is replaced (with its own backoff).
    let transient = status == TaskStatus::Failed
        && super::workers::ReplicaState::of(&e.task).is_none()
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
    if let Some(st) = super::workers::ReplicaState::of(task) {
        let worker = persist("reading worker", || store.worker_get(&st.worker)).await;
        return super::workers::replacement(worker.as_ref(), task, status, reason, now);
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
    let retry = retry && super::workers::ReplicaState::of(task).is_none();
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
        super::children::settle(shared, vec![parent]).await;
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
