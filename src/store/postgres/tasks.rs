//! Task statements for PostgreSQL: SQLite's `tasks.rs` (but the claim, in
//! `claim.rs`), translated. Each writing function runs inside a SERIALIZABLE
//! transaction the caller opened, so concurrent instances get the results some
//! serial order would give, which is what SQLite's single write lock gives.

use super::rows::{dur_ms, execute, from_ms, ms, query_opt, scalar, task_columns, tasks};
use crate::model::{Task, TaskStatus};
use crate::store::{AfterLink, NewTask, StoreError, StoreResult, TaskFinishParams};
use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use uuid::Uuid;

const PENDING: &str = TaskStatus::Pending.as_str();

fn st(s: TaskStatus) -> &'static str {
    s.as_str()
}

/// The states in which a schedule's occurrence is live.
pub fn live_states() -> Vec<&'static str> {
    vec![
        st(TaskStatus::Pending),
        st(TaskStatus::Running),
        st(TaskStatus::Waiting),
    ]
}

/// One task by id.
pub async fn get<C: GenericClient>(c: &C, id: Uuid) -> StoreResult<Option<Task>> {
    let sql = concat!("SELECT ", task_columns!(), " FROM tasks WHERE id = $1");
    Ok(tasks(c, sql, &[&id]).await?.into_iter().next())
}

/// The live occurrence of a schedule, if any.
pub async fn live_of<C: GenericClient>(c: &C, schedule: &str) -> StoreResult<Option<Uuid>> {
    let row = query_opt(
        c,
        "SELECT id FROM tasks WHERE schedule = $1 AND status = ANY($2)",
        &[&schedule, &live_states()],
    )
    .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// Inserts a task, resolving its `after` link, and links waiting occurrences of
/// `after` schedules to it when it is an occurrence of their schedule.
pub async fn insert(c: &Transaction<'_>, t: &NewTask) -> StoreResult<()> {
    let mut status = TaskStatus::Pending;
    let mut reason: Option<String> = None;
    let mut due = Some(ms(t.due_at));
    let mut after_id = None;
    let mut after_schedule = None;
    match &t.after {
        AfterLink::None => {}
        AfterLink::Task(x) => {
            let pred = get(c, *x)
                .await?
                .ok_or_else(|| StoreError::NoSuchTask(x.to_string()))?;
            after_id = Some(*x);
            match pred.status {
                TaskStatus::Completed => {}
                TaskStatus::Failed | TaskStatus::Canceled => {
                    status = TaskStatus::Canceled;
                    reason = Some(format!("after: task {x} {}", pred.status));
                    due = None;
                }
                _ => due = None,
            }
        }
        AfterLink::Schedule(u) => {
            after_schedule = Some(u.clone());
            after_id = live_of(c, u).await?;
            due = None;
        }
    }
    let ended = status.is_terminal().then(|| ms(t.created_at));
    execute(
        c,
        "INSERT INTO tasks (id, job, status, reason, attempt, queue, priority, slots,
            max_execution_ms, kill_grace_ms, schedule, recurrence, after_schedule, parent,
            after_id, args, metadata, created_at, due_at, ended_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
        &[
            &t.id,
            &t.job,
            &st(status),
            &reason,
            &i64::from(t.attempt),
            &t.queue,
            &t.priority,
            &i64::from(t.slots),
            &dur_ms(t.max_execution_time),
            &dur_ms(t.kill_grace),
            &t.schedule,
            &t.recurrence.as_ref().map(|v| v.to_string()),
            &after_schedule,
            &t.parent,
            &after_id,
            &t.args.to_string(),
            &t.metadata.to_string(),
            &ms(t.created_at),
            &due,
            &ended,
        ],
    )
    .await?;
    if let Some(s) = &t.schedule {
        execute(
            c,
            "UPDATE tasks SET after_id = $1 WHERE after_schedule = $2 AND status = $3 AND after_id IS NULL",
            &[&t.id, s, &PENDING],
        )
        .await?;
    }
    Ok(())
}

/// Ends one task if it is still as the writer saw it; then releases or cancels
/// the tasks waiting on it and inserts its next occurrence.
/// Returns `None` when the end did not apply, else whether it made work for
/// other instances (a next occurrence, or tasks that waited on this one).
pub async fn finish(c: &Transaction<'_>, p: &TaskFinishParams) -> StoreResult<Option<bool>> {
    // Nothing overwrites a terminal state.
    if p.expect.is_terminal() {
        return Ok(None);
    }
    let row = query_opt(
        c,
        "UPDATE tasks SET status = $1, reason = $2, exit_code = $3, signal = $4, ended_at = $5,
            result = $6, log = COALESCE($7::text, log), pgid = NULL,
            log_local = (COALESCE($7::text, log) IS NOT NULL
                AND COALESCE($7::text, log) NOT ILIKE 's3://%')
         WHERE id = $8 AND status = $9 AND ($10::uuid IS NULL OR instance_id = $10::uuid)
         RETURNING schedule",
        &[
            &st(p.status),
            &p.reason,
            &p.exit_code,
            &p.signal,
            &ms(p.ended_at),
            &p.result.as_ref().map(|v| v.to_string()),
            &p.log,
            &p.id,
            &st(p.expect),
            &p.expect_instance,
        ],
    )
    .await?;
    let Some(row) = row else { return Ok(None) };
    let schedule: Option<String> = row.try_get(0)?;
    let mut made_work = false;
    if let (TaskStatus::Completed, Some(s)) = (p.status, &schedule) {
        execute(
            c,
            "UPDATE schedules SET last_completed_at = $1 WHERE name = $2",
            &[&ms(p.ended_at), s],
        )
        .await?;
    }
    if let Some(next) = &p.next {
        let keep = match &next.schedule {
            Some(s) => query_opt(c, "SELECT 1 FROM schedules WHERE name = $1", &[s])
                .await?
                .is_some(),
            None => true,
        };
        if keep {
            insert(c, next).await?;
            made_work = true;
        }
    }
    made_work |= release_dependents(c, p.id, p.status, p.ended_at).await? > 0;
    Ok(Some(made_work))
}

/// After `id` ended with `status`: on completion its dependents become due; on
/// failure or cancellation they are canceled, transitively, and each canceled
/// occurrence of an `after` schedule is replaced by a fresh one waiting for its
/// schedule's next occurrence.
pub async fn release_dependents(
    c: &Transaction<'_>,
    id: Uuid,
    status: TaskStatus,
    now: DateTime<Utc>,
) -> StoreResult<u64> {
    if status == TaskStatus::Completed {
        return execute(
            c,
            "UPDATE tasks SET due_at = $1 WHERE after_id = $2 AND status = $3",
            &[&ms(now), &id, &PENDING],
        )
        .await;
    }
    let mut touched = 0;
    let mut work = vec![(id, status)];
    while let Some((pred, pred_status)) = work.pop() {
        let sql = concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE after_id = $1 AND status = $2"
        );
        let dependents = tasks(c, sql, &[&pred, &PENDING]).await?;
        for d in dependents {
            let canceled = query_opt(
                c,
                "UPDATE tasks SET status = $1, reason = $2, ended_at = $3 WHERE id = $4 AND status = $5
                 RETURNING after_schedule",
                &[
                    &st(TaskStatus::Canceled),
                    &format!("after: task {pred} {pred_status}"),
                    &ms(now),
                    &d.id,
                    &PENDING,
                ],
            )
            .await?;
            let Some(canceled) = canceled else { continue };
            touched += 1;
            work.push((d.id, TaskStatus::Canceled));
            let after_schedule: Option<String> = canceled.try_get(0)?;
            if let Some(u) = after_schedule {
                insert(
                    c,
                    &NewTask::fresh_occurrence(&d, AfterLink::Schedule(u), now),
                )
                .await?;
            }
        }
    }
    Ok(touched)
}

/// Cancels a pending (or waiting) task and its dependents.
pub async fn cancel_pending(
    c: &Transaction<'_>,
    id: Uuid,
    expect: TaskStatus,
    now: DateTime<Utc>,
    reason: &str,
) -> StoreResult<bool> {
    let n = execute(
        c,
        "UPDATE tasks SET status = $1, reason = $2, ended_at = $3 WHERE id = $4 AND status = $5",
        &[
            &st(TaskStatus::Canceled),
            &reason,
            &ms(now),
            &id,
            &st(expect),
        ],
    )
    .await?;
    if n > 0 {
        release_dependents(c, id, TaskStatus::Canceled, now).await?;
    }
    Ok(n > 0)
}

/// Earliest due time after `now` among pending tasks.
pub async fn next_due<C: GenericClient>(
    c: &C,
    now: DateTime<Utc>,
) -> StoreResult<Option<DateTime<Utc>>> {
    let v: Option<i64> = scalar(
        c,
        "SELECT MIN(due_at) FROM tasks WHERE status = $1 AND due_at > $2",
        &[&PENDING, &ms(now)],
    )
    .await?;
    Ok(v.map(from_ms))
}
