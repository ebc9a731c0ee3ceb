//! Helpers shared by the cases: fixed-precision times, task and schedule
//! specs, and thin wrappers over the [`Store`] calls that panic with context.

use crate::model::{Task, TaskStatus};
use crate::store::{
    AfterLink, ApplyReport, NewTask, ScheduleApplyParams, ScheduleSpec, Store, TaskClaimParams,
    TaskFinishParams, TaskListParams,
};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use uuid::Uuid;

/// The current time truncated to the millisecond.
#[doc(hidden)]
pub fn now_ms() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

pub(super) fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

pub(super) fn millis(n: i64) -> TimeDelta {
    TimeDelta::milliseconds(n)
}

/// A plain task of `job`: queue `default`, priority 0, one slot, due (and
/// created) at `due`. Cases change fields with `NewTask { …, ..new_task(…) }`.
#[doc(hidden)]
pub fn new_task(job: &str, due: DateTime<Utc>) -> NewTask {
    NewTask {
        id: Uuid::now_v7(),
        job: job.to_string(),
        queue: "default".to_string(),
        priority: 0,
        slots: 1,
        max_execution_time: Duration::from_secs(60),
        kill_grace: Duration::from_secs(10),
        schedule: None,
        recurrence: None,
        after: AfterLink::None,
        parent: None,
        args: json!({}),
        metadata: json!({}),
        due_at: due,
        created_at: due,
        attempt: 1,
        unique_key: None,
    }
}

/// `n` fresh ids in increasing order.
pub(super) fn sorted_ids(n: usize) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
    ids.sort();
    ids
}

/// An instance as the claims of a case see it.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct Worker {
    /// Instance id.
    pub id: Uuid,
    /// Instance name.
    pub name: String,
    /// Host name.
    pub host: String,
    /// Queues served; empty means all.
    pub queues: Vec<String>,
}

impl Worker {
    /// An instance serving every queue.
    pub fn new(name: &str) -> Self {
        Self::serving(name, &[])
    }

    /// An instance serving `queues`.
    pub fn serving(name: &str, queues: &[&str]) -> Self {
        Self {
            id: Uuid::now_v7(),
            name: name.to_string(),
            host: format!("{name}-host"),
            queues: queues.iter().map(|q| q.to_string()).collect(),
        }
    }

    pub(super) fn claim_params(
        &self,
        now: DateTime<Utc>,
        free_slots: u32,
        limit: usize,
    ) -> TaskClaimParams {
        TaskClaimParams {
            instance_id: self.id,
            instance_name: self.name.clone(),
            host: self.host.clone(),
            queues: self.queues.clone(),
            free_slots,
            limit,
            now,
            starvation_after: None,
            log_prefix: None,
        }
    }
}

pub(super) async fn insert(s: &dyn Store, t: NewTask) -> Task {
    let id = t.id;
    s.task_insert(t)
        .await
        .unwrap_or_else(|e| panic!("task_insert {id}: {e}"))
}

pub(super) async fn get(s: &dyn Store, id: Uuid) -> Task {
    s.task_get(id)
        .await
        .unwrap_or_else(|e| panic!("task_get {id}: {e}"))
        .unwrap_or_else(|| panic!("task {id} should exist"))
}

pub(super) async fn claim(
    s: &dyn Store,
    w: &Worker,
    now: DateTime<Utc>,
    free_slots: u32,
    limit: usize,
) -> Vec<Task> {
    s.task_claim(w.claim_params(now, free_slots, limit))
        .await
        .unwrap_or_else(|e| panic!("task_claim by {}: {e}", w.name))
}

/// Claims exactly `t` (which must be the only due task) for `w`.
pub(super) async fn claim_one(s: &dyn Store, w: &Worker, now: DateTime<Utc>, t: Uuid) -> Task {
    let got = claim(s, w, now, 100, 1).await;
    assert_eq!(ids(&got), vec![t], "expected to claim exactly task {t}");
    got.into_iter().next().unwrap_or_else(|| unreachable!())
}

pub(super) fn ids(tasks: &[Task]) -> Vec<Uuid> {
    tasks.iter().map(|t| t.id).collect()
}

pub(super) fn id_set(tasks: &[Task]) -> BTreeSet<Uuid> {
    tasks.iter().map(|t| t.id).collect()
}

/// Ends `t`, held by `me`, with `status` at `at`.
pub(super) fn end(
    t: &Task,
    me: &Worker,
    status: TaskStatus,
    at: DateTime<Utc>,
) -> TaskFinishParams {
    TaskFinishParams {
        retry_at: None,
        needs_review: false,
        id: t.id,
        expect: TaskStatus::Running,
        expect_instance: Some(me.id),
        status,
        reason: None,
        exit_code: None,
        signal: None,
        ended_at: at,
        result: None,
        log: None,
        next: None,
        callback: None,
    }
}

pub(super) async fn finish(s: &dyn Store, p: TaskFinishParams) -> bool {
    let id = p.id;
    let out = s
        .task_finish_many(vec![p])
        .await
        .unwrap_or_else(|e| panic!("task_finish_many {id}: {e}"));
    assert_eq!(out.len(), 1, "task_finish_many returns one status per task");
    out[0].is_some()
}

/// Inserts a task, claims it for `w` at `now` and ends it with `status`.
pub(super) async fn ended_task(
    s: &dyn Store,
    w: &Worker,
    now: DateTime<Utc>,
    status: TaskStatus,
) -> Task {
    let t = insert(s, new_task("ended", now - secs(1))).await;
    let running = claim_one(s, w, now, t.id).await;
    assert!(finish(s, end(&running, w, status, now)).await);
    get(s, t.id).await
}

pub(super) async fn list(s: &dyn Store, p: TaskListParams) -> Vec<Task> {
    s.task_list(p.clone())
        .await
        .unwrap_or_else(|e| panic!("task_list {p:?}: {e}"))
}

pub(super) fn every(interval: &str) -> Value {
    json!({ "every": interval, "start_at": null })
}

/// An `every` schedule whose first occurrence is due at `due`.
#[doc(hidden)]
pub fn every_schedule(
    name: &str,
    job: &str,
    interval: &str,
    due: DateTime<Utc>,
    args: Value,
) -> ScheduleSpec {
    ScheduleSpec {
        name: name.to_string(),
        job: job.to_string(),
        recurrence: every(interval),
        args: args.clone(),
        first: NewTask {
            schedule: Some(name.to_string()),
            recurrence: Some(every(interval)),
            args,
            metadata: json!({ "lastCompletedAt": null }),
            ..new_task(job, due)
        },
    }
}

/// An `after` schedule running `job` after each completed occurrence of `upstream`.
#[doc(hidden)]
pub fn after_schedule(name: &str, job: &str, upstream: &str, now: DateTime<Utc>) -> ScheduleSpec {
    let recurrence = json!({ "after": upstream });
    ScheduleSpec {
        name: name.to_string(),
        job: job.to_string(),
        recurrence: recurrence.clone(),
        args: json!({}),
        first: NewTask {
            schedule: Some(name.to_string()),
            recurrence: Some(recurrence),
            after: AfterLink::Schedule(upstream.to_string()),
            metadata: json!({ "lastCompletedAt": null }),
            ..new_task(job, now)
        },
    }
}

/// The next occurrence of schedule occurrence `t`, due at `due`.
pub(super) fn next_of(t: &Task, due: DateTime<Utc>) -> NewTask {
    NewTask {
        schedule: t.schedule.clone(),
        recurrence: t.recurrence.clone(),
        args: t.args.clone(),
        metadata: json!({ "lastCompletedAt": null }),
        ..new_task(&t.job, due)
    }
}

pub(super) async fn apply(
    s: &dyn Store,
    schedules: Vec<ScheduleSpec>,
    now: DateTime<Utc>,
) -> ApplyReport {
    s.schedule_apply(ScheduleApplyParams {
        schedules,
        jobs: Vec::new(),
        now,
    })
    .await
    .unwrap_or_else(|e| panic!("schedule_apply: {e}"))
}

/// The live (not terminal) occurrences of a schedule.
pub(super) async fn live(s: &dyn Store, schedule: &str) -> Vec<Task> {
    let all = list(
        s,
        TaskListParams {
            schedule: Some(schedule.to_string()),
            limit: 10_000,
            ..TaskListParams::default()
        },
    )
    .await;
    all.into_iter()
        .filter(|t| !t.status.is_terminal())
        .collect()
}

pub(super) async fn sole_live(s: &dyn Store, schedule: &str) -> Task {
    let mut l = live(s, schedule).await;
    assert_eq!(
        l.len(),
        1,
        "schedule {schedule} must have exactly one live occurrence, has {:?}",
        l.iter().map(|t| (t.id, t.status)).collect::<Vec<_>>()
    );
    l.remove(0)
}

pub(super) fn names(v: &[String]) -> Vec<&str> {
    let mut n: Vec<&str> = v.iter().map(String::as_str).collect();
    n.sort();
    n
}
