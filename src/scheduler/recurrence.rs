//! What follows a task's end: its terminal state and, for recurring tasks, the
//! next occurrence, computed here (pure) and written by the store in the same
//! transaction as the end.

use crate::model::{Job, Recurrence, Task, TaskStatus, fmt_time};
use crate::store::{AfterLink, NewTask, ScheduleRow, TaskFinishParams};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

/// The key in a recurring task's metadata holding the schedule's last success.
pub const LAST_COMPLETED_AT: &str = "lastCompletedAt";

/// The key in a schedule's stored recurrence holding its `unique_key`.
pub const UNIQUE_KEY: &str = "unique_key";

/// The schedule's last successful run as the task knows it.
pub fn last_completed_at(task: &Task) -> Option<String> {
    task.metadata
        .get(LAST_COMPLETED_AT)
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The next occurrence of a recurring task that ended with `status` at `now`,
/// or `None` when it does not recur (not recurring, canceled, or its schedule
/// is gone). `schedule` is the schedule's current definition, when the task is
/// a schedule occurrence; `job` the job's current settings.
pub fn next_occurrence(
    task: &Task,
    status: TaskStatus,
    schedule: Option<&ScheduleRow>,
    job: Option<&Job>,
    now: DateTime<Utc>,
) -> Option<NewTask> {
    if !matches!(status, TaskStatus::Completed | TaskStatus::Failed) {
        return None;
    }
    let (recurrence_json, args, job_name) = match (&task.schedule, schedule) {
        (Some(_), Some(s)) => (s.recurrence.clone(), s.args.clone(), s.job.clone()),
        (Some(_), None) => return None,
        (None, _) => (
            task.recurrence.clone()?,
            task.args.clone(),
            task.job.clone(),
        ),
    };
    let recurrence = Recurrence::from_json(&recurrence_json).ok()?;
    let (due_at, after) = match &recurrence {
        Recurrence::After { schedule } => (now, AfterLink::Schedule(schedule.clone())),
        r => (r.next_due(task.start_at, now)?, AfterLink::None),
    };
    let mut metadata = match &task.metadata {
        Value::Object(m) => Value::Object(m.clone()),
        _ => json!({}),
    };
    if status == TaskStatus::Completed {
        metadata[LAST_COMPLETED_AT] = Value::String(fmt_time(now));
    } else if metadata.get(LAST_COMPLETED_AT).is_none() {
        metadata[LAST_COMPLETED_AT] = Value::Null;
    }
    let same_job = job_name == task.job;
    let unique_key = match schedule {
        Some(_) => recurrence_json
            .get(UNIQUE_KEY)
            .and_then(Value::as_str)
            .map(str::to_string),
        None => task.unique_key.clone(),
    };
    Some(NewTask {
        id: Uuid::now_v7(),
        queue: if same_job {
            task.queue.clone()
        } else {
            job.map(|j| j.queue.clone())
                .unwrap_or_else(|| task.queue.clone())
        },
        priority: if same_job {
            task.priority
        } else {
            job.map(|j| j.priority).unwrap_or(task.priority)
        },
        slots: job.map(|j| j.slots).unwrap_or(task.slots),
        max_execution_time: job
            .map(|j| j.max_execution_time)
            .unwrap_or(task.max_execution_time),
        kill_grace: job.map(|j| j.kill_grace).unwrap_or(task.kill_grace),
        job: job_name,
        schedule: task.schedule.clone(),
        recurrence: Some(recurrence_json),
        after,
        parent: None,
        args,
        metadata,
        due_at,
        created_at: now,
        attempt: 1,
        unique_key,
    })
}

/// Finish parameters for a task this instance ran.
#[allow(clippy::too_many_arguments)]
pub fn finish_params(
    task: &Task,
    me: Uuid,
    status: TaskStatus,
    reason: Option<String>,
    exit_code: Option<i32>,
    signal: Option<i32>,
    result: Option<Value>,
    log: Option<String>,
    next: Option<NewTask>,
    now: DateTime<Utc>,
) -> TaskFinishParams {
    TaskFinishParams {
        retry_at: None,
        needs_review: false,
        id: task.id,
        expect: TaskStatus::Running,
        expect_instance: Some(me),
        status,
        reason,
        exit_code,
        signal,
        ended_at: now,
        result,
        log,
        next,
        callback: None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::time::Duration;

    /// A running task due and started at `start`.
    pub(crate) fn task(recurrence: Option<Value>, start: DateTime<Utc>) -> Task {
        Task {
            id: Uuid::now_v7(),
            job: "j".into(),
            status: TaskStatus::Running,
            reason: None,
            exit_code: None,
            signal: None,
            attempt: 1,
            queue: "default".into(),
            priority: 0,
            slots: 1,
            max_execution_time: Duration::from_secs(60),
            kill_grace: Duration::from_secs(1),
            schedule: None,
            recurrence,
            instance_id: None,
            instance: None,
            parent: None,
            after: None,
            args: json!({"a": 1}),
            metadata: json!({}),
            result: None,
            created_at: start,
            start_at: Some(start),
            started_at: Some(start),
            ended_at: None,
            deadline_at: None,
            log: None,
            host: None,
            pgid: None,
            needs_review: false,
            unique_key: None,
        }
    }

    #[test]
    fn completed_recurring_task_carries_last_completed_at() {
        let t0 = Utc.timestamp_opt(1_800_000_000, 0).single().expect("time");
        let r = Recurrence::Every {
            interval: Duration::from_secs(10),
            start_at: None,
            catch_up: crate::model::CatchUp::Skip,
        };
        let t = task(Some(r.to_json()), t0);
        let now = t0 + chrono::Duration::seconds(3);
        let next = next_occurrence(&t, TaskStatus::Completed, None, None, now).expect("recurs");
        assert_eq!(next.due_at, t0 + chrono::Duration::seconds(10));
        assert_eq!(next.metadata[LAST_COMPLETED_AT], json!(fmt_time(now)));
        assert_eq!(next.args, json!({"a": 1}));
        // A failure recurs too but keeps the previous lastCompletedAt.
        let failed = next_occurrence(&t, TaskStatus::Failed, None, None, now).expect("recurs");
        assert_eq!(failed.metadata[LAST_COMPLETED_AT], Value::Null);
        // A cancellation ends the recurrence.
        assert!(next_occurrence(&t, TaskStatus::Canceled, None, None, now).is_none());
    }

    #[test]
    fn one_off_tasks_do_not_recur() {
        let t0 = Utc.timestamp_opt(1_800_000_000, 0).single().expect("time");
        assert!(next_occurrence(&task(None, t0), TaskStatus::Completed, None, None, t0).is_none());
    }
}
