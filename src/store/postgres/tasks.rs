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
    if let Some(parent) = t.parent {
        let p = get(c, parent)
            .await?
            .ok_or_else(|| StoreError::NoSuchTask(parent.to_string()))?;
        if p.status.is_terminal() {
            return Err(StoreError::Conflict(format!(
                "parent task {parent} has already ended ({}): it can have no more children",
                p.status
            )));
        }
    }
    if let (Some(key), false) = (&t.unique_key, status.is_terminal()) {
        let holder = query_opt(
            c,
            "SELECT id FROM tasks WHERE unique_key = $1 AND status = ANY($2) LIMIT 1",
            &[key, &live_states()],
        )
        .await?;
        if let Some(holder) = holder {
            let holder: Uuid = holder.try_get(0)?;
            return Err(StoreError::unique_key_taken(key, &holder.to_string()));
        }
    }
    let ended = status.is_terminal().then(|| ms(t.created_at));
    let inserted = execute(
        c,
        "INSERT INTO tasks (id, job, status, reason, attempt, queue, priority, slots,
            max_execution_ms, kill_grace_ms, schedule, recurrence, after_schedule, parent,
            after_id, args, metadata, created_at, due_at, ended_at, unique_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
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
            &t.unique_key,
        ],
    )
    .await;
    match (inserted, &t.unique_key) {
        // Another transaction took the key between the check and the insert.
        (
            Err(StoreError::Postgres {
                code: Some(code),
                message,
            }),
            Some(key),
        ) if code == "23505" && message.contains("tasks_unique_live") => {
            return Err(StoreError::unique_key_taken(
                key,
                "(another, just inserted)",
            ));
        }
        (Err(e), _) => return Err(e),
        (Ok(_), _) => {}
    }
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
/// the tasks waiting on it and inserts its next occurrence. A task asked to
/// complete from running while it has children waits for them instead.
/// Returns `None` when the end did not apply, else the status written and
/// whether it made work for other instances (a next occurrence, a callback,
/// or tasks that waited on this one).
pub async fn finish(
    c: &Transaction<'_>,
    p: &TaskFinishParams,
) -> StoreResult<Option<(TaskStatus, bool)>> {
    // Nothing overwrites a terminal state.
    if p.expect.is_terminal() {
        return Ok(None);
    }
    if let Some(at) = p.retry_at
        && retry_later(c, p, at).await?
    {
        return Ok(Some((TaskStatus::Pending, true)));
    }
    if p.status == TaskStatus::Completed && p.expect == TaskStatus::Running {
        let n = execute(
            c,
            "UPDATE tasks SET status = $1, exit_code = $2, result = $3,
                log = COALESCE($4::text, log), pgid = NULL
             WHERE id = $5 AND status = $6 AND ($7::uuid IS NULL OR instance_id = $7::uuid)
                AND EXISTS (SELECT 1 FROM tasks AS ch WHERE ch.parent = $5)",
            &[
                &st(TaskStatus::Waiting),
                &p.exit_code,
                &p.result.as_ref().map(|v| v.to_string()),
                &p.log,
                &p.id,
                &st(p.expect),
                &p.expect_instance,
            ],
        )
        .await?;
        if n > 0 {
            return Ok(Some((TaskStatus::Waiting, false)));
        }
    }
    let row = query_opt(
        c,
        "UPDATE tasks SET status = $1, reason = $2, exit_code = $3, signal = $4, ended_at = $5,
            result = $6, log = COALESCE($7::text, log), pgid = NULL,
            log_local = (COALESCE($7::text, log) IS NOT NULL
                AND COALESCE($7::text, log) NOT ILIKE 's3://%'),
            needs_review = $11
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
            &p.needs_review,
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
            made_work |= insert_occurrence(c, next).await?;
        }
    }
    if let Some(callback) = &p.callback {
        insert(c, callback).await?;
        made_work = true;
    }
    if matches!(p.status, TaskStatus::Failed | TaskStatus::Canceled) {
        made_work |= cancel_children(c, p.id, p.status, p.ended_at).await?;
    }
    made_work |= release_dependents(c, p.id, p.status, p.ended_at).await? > 0;
    Ok(Some((p.status, made_work)))
}

/// SQLite's `insert_occurrence`: a next occurrence whose unique key another
/// live task holds is left out (with a warning) instead of failing the end.
/// Returns whether it was inserted.
async fn insert_occurrence(c: &Transaction<'_>, next: &NewTask) -> StoreResult<bool> {
    // A savepoint: the failed INSERT must not abort the end's transaction.
    c.batch_execute("SAVEPOINT occurrence").await?;
    match insert(c, next).await {
        Err(StoreError::Conflict(why)) if next.schedule.is_some() => {
            c.batch_execute("ROLLBACK TO SAVEPOINT occurrence").await?;
            tracing::warn!(schedule = ?next.schedule, "next occurrence left out: {why}");
            Ok(false)
        }
        Err(e) => Err(e),
        Ok(()) => {
            c.batch_execute("RELEASE SAVEPOINT occurrence").await?;
            Ok(true)
        }
    }
}

/// SQLite's `cancel_children`, translated. Returns whether it touched any.
pub async fn cancel_children(
    c: &Transaction<'_>,
    parent: Uuid,
    status: TaskStatus,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let rows = super::rows::query(
        c,
        "SELECT id, status FROM tasks WHERE parent = $1 AND status = ANY($2)",
        &[&parent, &live_states()],
    )
    .await?;
    let reason = format!("parent {parent} {status}");
    let mut touched = false;
    for r in &rows {
        let child: Uuid = r.try_get(0)?;
        let child_status: String = r.try_get(1)?;
        touched = true;
        if child_status == st(TaskStatus::Running) {
            execute(
                c,
                "UPDATE tasks SET cancel_requested = true WHERE id = $1",
                &[&child],
            )
            .await?;
        } else if let Ok(s) = child_status.parse::<TaskStatus>() {
            Box::pin(cancel_pending(c, child, s, now, &reason)).await?;
        }
    }
    Ok(touched)
}

/// SQLite's `retry_later`, translated: records the attempt that ended and puts
/// the task back to pending, due `at`, one attempt further, unless it is no
/// longer as the writer saw it or a cancel was asked for.
async fn retry_later(
    c: &Transaction<'_>,
    p: &TaskFinishParams,
    at: DateTime<Utc>,
) -> StoreResult<bool> {
    let n = execute(
        c,
        "WITH kept AS (
            INSERT INTO task_attempts (task_id, attempt, status, reason, exit_code, signal,
                instance_id, instance_name, host, started_at, ended_at, log, log_local)
            SELECT id, attempt, $1, $2, $3, $4, instance_id, instance_name, host, started_at, $5,
                COALESCE($6::text, log),
                (COALESCE($6::text, log) IS NOT NULL AND COALESCE($6::text, log) NOT ILIKE 's3://%')
            FROM tasks WHERE id = $7 AND status = $8
                AND ($9::uuid IS NULL OR instance_id = $9::uuid) AND NOT cancel_requested
            RETURNING task_id
         )
         UPDATE tasks SET status = $10, attempt = attempt + 1, due_at = $11, reason = NULL,
            exit_code = NULL, signal = NULL, instance_id = NULL, instance_name = NULL,
            host = NULL, started_at = NULL, deadline_at = NULL, pgid = NULL, log = NULL,
            log_local = false, result = NULL
         FROM kept WHERE tasks.id = kept.task_id",
        &[
            &st(p.status),
            &p.reason,
            &p.exit_code,
            &p.signal,
            &ms(p.ended_at),
            &p.log,
            &p.id,
            &st(p.expect),
            &p.expect_instance,
            &PENDING,
            &ms(at),
        ],
    )
    .await?;
    Ok(n > 0)
}

/// A task's past attempts, oldest first.
pub async fn attempts<C: GenericClient>(
    c: &C,
    id: Uuid,
) -> StoreResult<Vec<crate::store::Attempt>> {
    let rows = super::rows::query(
        c,
        "SELECT attempt, status, reason, exit_code, signal, instance_id, instance_name,
            started_at, ended_at, log
         FROM task_attempts WHERE task_id = $1 ORDER BY attempt",
        &[&id],
    )
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let attempt: i64 = r.try_get(0)?;
        let key = format!("{id}/{attempt}");
        let status_text: String = r.try_get(1)?;
        out.push(crate::store::Attempt {
            attempt: u32::try_from(attempt).map_err(|e| StoreError::Corrupt {
                table: "task_attempts",
                id: key.clone(),
                why: e.to_string(),
            })?,
            status: super::rows::status("task_attempts", &key, &status_text)?,
            reason: r.try_get(2)?,
            exit_code: r.try_get(3)?,
            signal: r.try_get(4)?,
            instance_id: r.try_get(5)?,
            instance: r.try_get(6)?,
            started_at: r.try_get::<_, Option<i64>>(7)?.map(from_ms),
            ended_at: from_ms(r.try_get(8)?),
            log: r.try_get(9)?,
        });
    }
    Ok(out)
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
        Box::pin(cancel_children(c, id, TaskStatus::Canceled, now)).await?;
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

/// Whether an end can go in a batch statement ([`FINISH_COMPLETED`]): a
/// completion with no next occurrence to insert. Other ends insert tasks and
/// may cancel chains, whose effects depend on the order of ends, so they are
/// written one at a time by [`finish`].
pub fn finishes_in_bulk(p: &TaskFinishParams) -> bool {
    p.status == TaskStatus::Completed
        && p.next.is_none()
        && p.callback.is_none()
        && p.expect == TaskStatus::Running
}

/// Completes several running tasks in one statement, each only if it is still
/// as its writer saw it; then marks their schedules' last completion and makes
/// the tasks waiting on them due. Returns the ids that applied and the number
/// of tasks released (the same on every row).
///
/// The ids must be distinct. Every part reads the same snapshot: the ends
/// touch running rows, the releases pending ones.
pub const FINISH_COMPLETED: &str = "
WITH v AS (
    SELECT * FROM unnest($2::uuid[], $3::text[], $4::int4[], $5::int4[], $6::int8[],
        $7::text[], $8::text[], $9::text[], $10::uuid[])
        AS v(id, reason, exit_code, signal, ended_at, result, log, expect, inst)
), p AS (
    -- A task with children waits for them instead of completing.
    SELECT v.*, EXISTS (SELECT 1 FROM tasks AS ch WHERE ch.parent = v.id) AS waits FROM v
), done AS (
    UPDATE tasks AS t SET status = CASE WHEN v.waits THEN $12 ELSE $1 END,
        reason = v.reason, exit_code = v.exit_code, signal = v.signal,
        ended_at = CASE WHEN v.waits THEN NULL ELSE v.ended_at END, result = v.result,
        log = COALESCE(v.log, t.log), pgid = NULL,
        log_local = (NOT v.waits AND COALESCE(v.log, t.log) IS NOT NULL
            AND COALESCE(v.log, t.log) NOT ILIKE 's3://%')
    FROM p AS v
    WHERE t.id = v.id AND t.status = v.expect AND (v.inst IS NULL OR t.instance_id = v.inst)
    RETURNING t.id, t.schedule, v.ended_at, t.status
), marked AS (
    UPDATE schedules AS s SET last_completed_at = m.at
    FROM (SELECT schedule, MAX(ended_at) AS at FROM done
          WHERE schedule IS NOT NULL AND status = $1 GROUP BY schedule) AS m
    WHERE s.name = m.schedule
), released AS (
    UPDATE tasks AS d SET due_at = done.ended_at FROM done
    WHERE d.after_id = done.id AND d.status = $11 AND done.status = $1
    RETURNING d.id
)
SELECT done.id, (SELECT COUNT(*) FROM released), done.status FROM done";

/// The ids of a batch that [`FINISH_COMPLETED`] applied with the status
/// written (completed, or waiting for a task with children), and whether it
/// released any task.
pub fn finish_completed_rows(
    rows: &[tokio_postgres::Row],
) -> StoreResult<(Vec<(Uuid, TaskStatus)>, bool)> {
    let mut ids = Vec::with_capacity(rows.len());
    let mut released = false;
    for r in rows {
        let id = r.try_get::<_, Uuid>(0)?;
        released |= r.try_get::<_, i64>(1)? > 0;
        let status: String = r.try_get(2)?;
        ids.push((id, super::rows::status("tasks", &id.to_string(), &status)?));
    }
    Ok((ids, released))
}

/// The parameters of [`FINISH_COMPLETED`] for `ps`.
pub struct FinishColumns {
    status: &'static str,
    id: Vec<Uuid>,
    reason: Vec<Option<String>>,
    exit_code: Vec<Option<i32>>,
    signal: Vec<Option<i32>>,
    ended_at: Vec<i64>,
    result: Vec<Option<String>>,
    log: Vec<Option<String>>,
    expect: Vec<&'static str>,
    inst: Vec<Option<Uuid>>,
    pending: &'static str,
    waiting: &'static str,
}

impl FinishColumns {
    /// Columns for the ends in `ps` (all completions, see [`finishes_in_bulk`]).
    pub fn new<'p>(ps: impl Iterator<Item = &'p TaskFinishParams>) -> Self {
        let mut c = FinishColumns {
            status: st(TaskStatus::Completed),
            id: Vec::new(),
            reason: Vec::new(),
            exit_code: Vec::new(),
            signal: Vec::new(),
            ended_at: Vec::new(),
            result: Vec::new(),
            log: Vec::new(),
            expect: Vec::new(),
            inst: Vec::new(),
            pending: PENDING,
            waiting: st(TaskStatus::Waiting),
        };
        for p in ps {
            c.id.push(p.id);
            c.reason.push(p.reason.clone());
            c.exit_code.push(p.exit_code);
            c.signal.push(p.signal);
            c.ended_at.push(ms(p.ended_at));
            c.result.push(p.result.as_ref().map(|v| v.to_string()));
            c.log.push(p.log.clone());
            c.expect.push(st(p.expect));
            c.inst.push(p.expect_instance);
        }
        c
    }

    /// The statement's parameters, in order.
    pub fn params(&self) -> [super::rows::Param<'_>; 12] {
        [
            &self.status,
            &self.id,
            &self.reason,
            &self.exit_code,
            &self.signal,
            &self.ended_at,
            &self.result,
            &self.log,
            &self.expect,
            &self.inst,
            &self.pending,
            &self.waiting,
        ]
    }
}
