//! Task statements for SQLite. Each function runs inside a transaction the
//! caller opened (`BEGIN IMMEDIATE` for writes).

use super::rows::{TASK_COLUMNS, from_ms, ms, task_from_row};
use crate::model::{Task, TaskStatus};
use crate::store::{
    AfterLink, NewTask, StoreError, StoreResult, TaskClaimParams, TaskFinishParams,
};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

const PENDING: &str = TaskStatus::Pending.as_str();

/// Live states: a task in one of them holds its unique key and keeps its
/// parent waiting.
const LIVE: [&str; 3] = [
    TaskStatus::Pending.as_str(),
    TaskStatus::Running.as_str(),
    TaskStatus::Waiting.as_str(),
];

fn st(s: TaskStatus) -> &'static str {
    s.as_str()
}

/// One task by id.
pub fn get(c: &Connection, id: Uuid) -> StoreResult<Option<Task>> {
    let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1");
    let mut stmt = c.prepare_cached(&sql)?;
    let mut rows = stmt.query(params![id.to_string()])?;
    match rows.next()? {
        Some(r) => Ok(Some(task_from_row(r)?)),
        None => Ok(None),
    }
}

/// Runs a `SELECT {TASK_COLUMNS} …` and reads every row.
pub fn query(c: &Connection, sql: &str, p: &[&dyn rusqlite::ToSql]) -> StoreResult<Vec<Task>> {
    let mut stmt = c.prepare_cached(sql)?;
    let mut rows = stmt.query(p)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(task_from_row(r)?);
    }
    Ok(out)
}

fn live_occurrence(c: &Connection, schedule: &str) -> StoreResult<Option<(Uuid, TaskStatus)>> {
    let row: Option<(String, String)> = c
        .prepare_cached(
            "SELECT id, status FROM tasks WHERE schedule = ?1 AND status IN (?2, ?3, ?4)",
        )?
        .query_row(
            params![
                schedule,
                st(TaskStatus::Pending),
                st(TaskStatus::Running),
                st(TaskStatus::Waiting)
            ],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    row.map(|(id, s)| {
        let id = Uuid::parse_str(&id).map_err(|e| StoreError::Corrupt {
            table: "tasks",
            id: id.clone(),
            why: e.to_string(),
        })?;
        let s =
            s.parse().map_err(
                |e: crate::model::status::UnknownStatus| StoreError::Corrupt {
                    table: "tasks",
                    id: id.to_string(),
                    why: e.to_string(),
                },
            )?;
        Ok((id, s))
    })
    .transpose()
}

/// The live occurrence of a schedule, if any.
pub fn live_of(c: &Connection, schedule: &str) -> StoreResult<Option<Uuid>> {
    Ok(live_occurrence(c, schedule)?.map(|(id, _)| id))
}

/// Inserts a task, resolving its `after` link, and links waiting occurrences of
/// `after` schedules to it when it is an occurrence of their schedule.
pub fn insert(c: &Connection, t: &NewTask) -> StoreResult<()> {
    let mut status = TaskStatus::Pending;
    let mut reason: Option<String> = None;
    let mut due = Some(ms(t.due_at));
    let mut after_id = None;
    let mut after_schedule = None;
    match &t.after {
        AfterLink::None => {}
        AfterLink::Task(x) => {
            let pred = get(c, *x)?.ok_or_else(|| StoreError::NoSuchTask(x.to_string()))?;
            after_id = Some(x.to_string());
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
            after_id = live_of(c, u)?.map(|id| id.to_string());
            due = None;
        }
    }
    if let Some(parent) = t.parent {
        let p = get(c, parent)?.ok_or_else(|| StoreError::NoSuchTask(parent.to_string()))?;
        if p.status.is_terminal() {
            return Err(StoreError::Conflict(format!(
                "parent task {parent} has already ended ({}): it can have no more children",
                p.status
            )));
        }
    }
    if let (Some(key), false) = (&t.unique_key, status.is_terminal()) {
        let holder: Option<String> = c
            .prepare_cached(
                "SELECT id FROM tasks WHERE unique_key = ?1 AND status IN (?2, ?3, ?4) LIMIT 1",
            )?
            .query_row(params![key, LIVE[0], LIVE[1], LIVE[2]], |r| r.get(0))
            .optional()?;
        if let Some(holder) = holder {
            return Err(StoreError::unique_key_taken(key, &holder));
        }
    }
    let ended = status.is_terminal().then(|| ms(t.created_at));
    c.prepare_cached(
        "INSERT INTO tasks (id, job, status, reason, attempt, queue, priority, slots,
            max_execution_ms, kill_grace_ms, schedule, recurrence, after_schedule, parent,
            after_id, args, metadata, created_at, due_at, ended_at, unique_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
    )?
    .execute(params![
        t.id.to_string(),
        t.job,
        st(status),
        reason,
        t.attempt,
        t.queue,
        t.priority,
        t.slots,
        t.max_execution_time.as_millis() as i64,
        t.kill_grace.as_millis() as i64,
        t.schedule,
        t.recurrence.as_ref().map(|v| v.to_string()),
        after_schedule,
        t.parent.map(|p| p.to_string()),
        after_id,
        t.args.to_string(),
        t.metadata.to_string(),
        ms(t.created_at),
        due,
        ended,
        t.unique_key,
    ])?;
    if let Some(s) = &t.schedule {
        c.prepare_cached(
            "UPDATE tasks SET after_id = ?1 WHERE after_schedule = ?2 AND status = ?3 AND after_id IS NULL",
        )?
        .execute(params![t.id.to_string(), s, PENDING])?;
    }
    Ok(())
}

/// Tasks of paused queues are not claimed.
const NOT_PAUSED: &str = "NOT EXISTS (SELECT 1 FROM queue_pauses WHERE name = tasks.queue)";

/// The claim's candidate query for one priority level: an index range scan over
/// `tasks_claim (status, priority DESC, due_at, id)` in ORDER BY order, which
/// stops at the first task not yet due however many wait behind it.
pub fn claim_select() -> String {
    format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE status = ?1 AND priority = ?2
         AND due_at <= ?3 AND slots <= ?4
         AND (?6 = '' OR instr(?6, ',' || queue || ',') > 0) AND {NOT_PAUSED}
         ORDER BY due_at, id LIMIT ?5"
    )
}

/// The anti-starvation pick: the task due longest, if it has been due since
/// before `?2` (walks `tasks_due (status, due_at)`).
pub fn claim_aged_select() -> String {
    format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE status = ?1 AND due_at <= ?2 AND slots <= ?3
         AND (?4 = '' OR instr(?4, ',' || queue || ',') > 0) AND {NOT_PAUSED}
         ORDER BY due_at, id LIMIT 1"
    )
}

/// Claims due tasks: one priority level at a time (each an index range scan that
/// stops at the first task not yet due), greedily while slots remain.
pub fn claim(c: &Connection, p: &TaskClaimParams) -> StoreResult<Vec<Task>> {
    let now = ms(p.now);
    let mut free = p.free_slots;
    let mut picked: Vec<Task> = Vec::new();
    let mut below: Option<i64> = None;
    let queues = if p.queues.is_empty() {
        String::new()
    } else {
        format!(",{},", p.queues.join(","))
    };
    let select = claim_select();
    let mut update = c.prepare_cached(
        "UPDATE tasks SET status = ?1, instance_id = ?2, instance_name = ?3, host = ?4,
            started_at = ?5, deadline_at = ?5 + max_execution_ms, pgid = NULL, log = ?8
         WHERE id = ?6 AND status = ?7",
    )?;
    let mut take = |t: &mut Task, free: &mut u32| -> StoreResult<()> {
        update.execute(params![
            st(TaskStatus::Running),
            p.instance_id.to_string(),
            p.instance_name,
            p.host,
            now,
            t.id.to_string(),
            PENDING,
            p.log_path(t.id, t.attempt),
        ])?;
        *free -= t.slots;
        p.mark_running(t);
        Ok(())
    };
    if let (Some(age), true) = (p.starvation_after, free > 0 && p.limit > 0) {
        let cutoff = now - i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
        let aged = query(
            c,
            &claim_aged_select(),
            &[&PENDING, &cutoff, &free, &queues],
        )?;
        for mut t in aged {
            take(&mut t, &mut free)?;
            picked.push(t);
        }
    }
    while free > 0 && picked.len() < p.limit {
        let priority: Option<i64> = match below {
            None => c
                .prepare_cached("SELECT MAX(priority) FROM tasks WHERE status = ?1")?
                .query_row(params![PENDING], |r| r.get(0))?,
            Some(b) => c
                .prepare_cached(
                    "SELECT MAX(priority) FROM tasks WHERE status = ?1 AND priority < ?2",
                )?
                .query_row(params![PENDING, b], |r| r.get(0))?,
        };
        let Some(priority) = priority else { break };
        below = Some(priority);
        // Within one level, read again while a task was taken and another was
        // left out for want of slots: a smaller one behind it may still fit.
        loop {
            let want = (p.limit - picked.len()) as i64;
            let candidates = query(
                c,
                &select,
                &[&PENDING, &priority, &now, &free, &want, &queues],
            )?;
            let mut took = false;
            let mut skipped = false;
            for mut t in candidates {
                if picked.len() >= p.limit || free == 0 {
                    break;
                }
                if t.slots > free {
                    skipped = true;
                    continue;
                }
                take(&mut t, &mut free)?;
                picked.push(t);
                took = true;
            }
            if !(took && skipped) || free == 0 || picked.len() >= p.limit {
                break;
            }
        }
    }
    Ok(picked)
}

/// Whether a task has children (in any state).
fn has_children(c: &Connection, id: Uuid) -> StoreResult<bool> {
    Ok(
        c.prepare_cached("SELECT 1 FROM tasks WHERE parent = ?1 LIMIT 1")?
            .query_row(params![id.to_string()], |_| Ok(()))
            .optional()?
            .is_some(),
    )
}

/// Ends one task if it is still as the writer saw it; then releases or cancels
/// the tasks waiting on it and inserts its next occurrence. A task asked to
/// complete from running while it has children waits for them instead.
/// Returns the status written, or `None` if the end did not apply.
pub fn finish(c: &Connection, p: &TaskFinishParams) -> StoreResult<Option<TaskStatus>> {
    // Nothing overwrites a terminal state.
    if p.expect.is_terminal() {
        return Ok(None);
    }
    if let Some(at) = p.retry_at
        && retry_later(c, p, at)?
    {
        return Ok(Some(TaskStatus::Pending));
    }
    if p.status == TaskStatus::Completed
        && p.expect == TaskStatus::Running
        && has_children(c, p.id)?
    {
        let n = c
            .prepare_cached(
                "UPDATE tasks SET status = ?1, exit_code = ?2, result = ?3,
                    log = COALESCE(?4, log), pgid = NULL
                 WHERE id = ?5 AND status = ?6 AND (?7 IS NULL OR instance_id = ?7)",
            )?
            .execute(params![
                st(TaskStatus::Waiting),
                p.exit_code,
                p.result.as_ref().map(|v| v.to_string()),
                p.log,
                p.id.to_string(),
                st(p.expect),
                p.expect_instance.map(|i| i.to_string()),
            ])?;
        return Ok((n > 0).then_some(TaskStatus::Waiting));
    }
    let changed = c
        .prepare_cached(
            "UPDATE tasks SET status = ?1, reason = ?2, exit_code = ?3, signal = ?4, ended_at = ?5,
                result = ?6, log = COALESCE(?7, log), pgid = NULL,
                log_local = (COALESCE(?7, log) IS NOT NULL AND COALESCE(?7, log) NOT LIKE 's3://%'),
                needs_review = ?11
             WHERE id = ?8 AND status = ?9 AND (?10 IS NULL OR instance_id = ?10)",
        )?
        .execute(params![
            st(p.status),
            p.reason,
            p.exit_code,
            p.signal,
            ms(p.ended_at),
            p.result.as_ref().map(|v| v.to_string()),
            p.log,
            p.id.to_string(),
            st(p.expect),
            p.expect_instance.map(|i| i.to_string()),
            p.needs_review,
        ])?;
    if changed == 0 {
        return Ok(None);
    }
    let schedule: Option<String> = c
        .prepare_cached("SELECT schedule FROM tasks WHERE id = ?1")?
        .query_row(params![p.id.to_string()], |r| r.get(0))?;
    if let (TaskStatus::Completed, Some(s)) = (p.status, &schedule) {
        c.prepare_cached("UPDATE schedules SET last_completed_at = ?1 WHERE name = ?2")?
            .execute(params![ms(p.ended_at), s])?;
    }
    if let Some(next) = &p.next {
        let keep = match &next.schedule {
            Some(s) => c
                .prepare_cached("SELECT 1 FROM schedules WHERE name = ?1")?
                .query_row(params![s], |_| Ok(()))
                .optional()?
                .is_some(),
            None => true,
        };
        if keep {
            insert_occurrence(c, next)?;
        }
    }
    if let Some(callback) = &p.callback {
        insert(c, callback)?;
    }
    if matches!(p.status, TaskStatus::Failed | TaskStatus::Canceled) {
        cancel_children(c, p.id, p.status, p.ended_at)?;
    }
    release_dependents(c, p.id, p.status, p.ended_at)?;
    Ok(Some(p.status))
}

/// Inserts a schedule's next occurrence. If its unique key is held by another
/// live task (enqueued by hand with the schedule's key), the occurrence is
/// left out rather than failing the end it follows: the schedule gets one
/// again when the schema is next applied (every instance applies it at start).
fn insert_occurrence(c: &Connection, next: &NewTask) -> StoreResult<()> {
    match insert(c, next) {
        Err(StoreError::Conflict(why)) if next.schedule.is_some() => {
            tracing::warn!(schedule = ?next.schedule, "next occurrence left out: {why}");
            Ok(())
        }
        other => other,
    }
}

/// Cancels the open children of a task that ended `status` (or was
/// canceled), transitively: pending and waiting ones at once, running ones by
/// asking their instance to stop them (their end then cancels theirs).
pub fn cancel_children(
    c: &Connection,
    parent: Uuid,
    status: TaskStatus,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let children: Vec<(String, String)> = c
        .prepare_cached(
            "SELECT id, status FROM tasks WHERE parent = ?1 AND status IN (?2, ?3, ?4)",
        )?
        .query_map(
            params![parent.to_string(), LIVE[0], LIVE[1], LIVE[2]],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .collect::<Result<_, _>>()?;
    let reason = format!("parent {parent} {status}");
    for (id, child_status) in children {
        let Ok(child) = Uuid::parse_str(&id) else {
            continue;
        };
        if child_status == st(TaskStatus::Running) {
            c.prepare_cached("UPDATE tasks SET cancel_requested = 1 WHERE id = ?1")?
                .execute(params![id])?;
        } else if let Ok(s) = child_status.parse::<TaskStatus>() {
            cancel_pending(c, child, s, now, &reason)?;
        }
    }
    Ok(())
}

/// Records the attempt that ended as one of the task's attempts and puts the
/// task back to pending, due `at`, with its attempt number one higher. Applies
/// only if the task is still as the writer saw it and nobody asked to cancel
/// it (then it ends as usual, without retry). Returns whether it applied.
fn retry_later(c: &Connection, p: &TaskFinishParams, at: DateTime<Utc>) -> StoreResult<bool> {
    let kept = c
        .prepare_cached(
            "INSERT INTO task_attempts (task_id, attempt, status, reason, exit_code, signal,
                instance_id, instance_name, host, started_at, ended_at, log, log_local)
             SELECT id, attempt, ?1, ?2, ?3, ?4, instance_id, instance_name, host, started_at, ?5,
                COALESCE(?6, log),
                (COALESCE(?6, log) IS NOT NULL AND COALESCE(?6, log) NOT LIKE 's3://%')
             FROM tasks WHERE id = ?7 AND status = ?8 AND (?9 IS NULL OR instance_id = ?9)
                AND cancel_requested = 0",
        )?
        .execute(params![
            st(p.status),
            p.reason,
            p.exit_code,
            p.signal,
            ms(p.ended_at),
            p.log,
            p.id.to_string(),
            st(p.expect),
            p.expect_instance.map(|i| i.to_string()),
        ])?;
    if kept == 0 {
        return Ok(false);
    }
    c.prepare_cached(
        "UPDATE tasks SET status = ?1, attempt = attempt + 1, due_at = ?2, reason = NULL,
            exit_code = NULL, signal = NULL, instance_id = NULL, instance_name = NULL, host = NULL,
            started_at = NULL, deadline_at = NULL, pgid = NULL, log = NULL, log_local = 0,
            result = NULL
         WHERE id = ?3",
    )?
    .execute(params![PENDING, ms(at), p.id.to_string()])?;
    Ok(true)
}

/// Earlier attempts run on `host` whose log is still a local file, by task
/// then attempt. A row whose task id cannot be read is skipped.
pub fn attempt_logs_local(
    c: &Connection,
    host: &str,
    limit: usize,
) -> StoreResult<Vec<crate::store::LocalAttemptLog>> {
    let mut stmt = c.prepare_cached(
        "SELECT task_id, attempt, instance_id, log FROM task_attempts
         WHERE log_local = 1 AND host = ?1 ORDER BY task_id, attempt LIMIT ?2",
    )?;
    let rows: Vec<(String, u32, Option<String>, Option<String>)> = stmt
        .query_map(params![host, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, attempt, instance, log)| {
            Some(crate::store::LocalAttemptLog {
                id: Uuid::parse_str(&id).ok()?,
                attempt,
                instance: instance.and_then(|i| Uuid::parse_str(&i).ok()),
                path: log?,
            })
        })
        .collect())
}

/// Records that an earlier attempt's log now lives at `url`, if it was still
/// recorded as local (compare-and-set: one uploader wins).
pub fn attempt_log_uploaded(
    c: &Connection,
    id: Uuid,
    attempt: u32,
    url: &str,
) -> StoreResult<bool> {
    let n = c
        .prepare_cached(
            "UPDATE task_attempts SET log = ?1, log_local = 0
             WHERE task_id = ?2 AND attempt = ?3 AND log_local = 1",
        )?
        .execute(params![url, id.to_string(), attempt])?;
    Ok(n > 0)
}

/// A task's past attempts, oldest first.
pub fn attempts(c: &Connection, id: Uuid) -> StoreResult<Vec<crate::store::Attempt>> {
    let mut stmt = c.prepare_cached(
        "SELECT attempt, status, reason, exit_code, signal, instance_id, instance_name,
            started_at, ended_at, log
         FROM task_attempts WHERE task_id = ?1 ORDER BY attempt",
    )?;
    let rows = stmt.query_map(params![id.to_string()], |r| {
        Ok((
            r.get::<_, u32>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, Option<i32>>(3)?,
            r.get::<_, Option<i32>>(4)?,
            r.get::<_, Option<String>>(5)?,
            r.get::<_, Option<String>>(6)?,
            r.get::<_, Option<i64>>(7)?,
            r.get::<_, i64>(8)?,
            r.get::<_, Option<String>>(9)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (attempt, status, reason, exit_code, signal, inst, name, started, ended, log) = row?;
        let corrupt = |why: String| StoreError::Corrupt {
            table: "task_attempts",
            id: format!("{id}/{attempt}"),
            why,
        };
        out.push(crate::store::Attempt {
            attempt,
            status: status
                .parse()
                .map_err(|e: crate::model::status::UnknownStatus| corrupt(e.to_string()))?,
            reason,
            exit_code,
            signal,
            instance_id: inst
                .map(|s| Uuid::parse_str(&s).map_err(|e| corrupt(e.to_string())))
                .transpose()?,
            instance: name,
            started_at: started.map(from_ms),
            ended_at: from_ms(ended),
            log,
        });
    }
    Ok(out)
}

/// After `id` ended with `status`: on completion its dependents become due; on
/// failure or cancellation they are canceled, transitively, and each canceled
/// occurrence of an `after` schedule is replaced by a fresh one waiting for its
/// schedule's next occurrence.
pub fn release_dependents(
    c: &Connection,
    id: Uuid,
    status: TaskStatus,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    if status == TaskStatus::Completed {
        c.prepare_cached("UPDATE tasks SET due_at = ?1 WHERE after_id = ?2 AND status = ?3")?
            .execute(params![ms(now), id.to_string(), PENDING])?;
        return Ok(());
    }
    let mut work = vec![(id, status)];
    while let Some((pred, pred_status)) = work.pop() {
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE after_id = ?1 AND status = ?2");
        let dependents = query(c, &sql, &[&pred.to_string(), &PENDING])?;
        for d in dependents {
            c.prepare_cached(
                "UPDATE tasks SET status = ?1, reason = ?2, ended_at = ?3 WHERE id = ?4 AND status = ?5",
            )?
            .execute(params![
                st(TaskStatus::Canceled),
                format!("after: task {pred} {pred_status}"),
                ms(now),
                d.id.to_string(),
                PENDING
            ])?;
            work.push((d.id, TaskStatus::Canceled));
            let after_schedule: Option<String> = c
                .prepare_cached("SELECT after_schedule FROM tasks WHERE id = ?1")?
                .query_row(params![d.id.to_string()], |r| r.get(0))?;
            if let Some(u) = after_schedule {
                insert(
                    c,
                    &NewTask::fresh_occurrence(&d, AfterLink::Schedule(u), now),
                )?;
            }
        }
    }
    Ok(())
}

/// Cancels a pending (or waiting) task and its dependents.
pub fn cancel_pending(
    c: &Connection,
    id: Uuid,
    expect: TaskStatus,
    now: DateTime<Utc>,
    reason: &str,
) -> StoreResult<bool> {
    let n = c
        .prepare_cached(
            "UPDATE tasks SET status = ?1, reason = ?2, ended_at = ?3 WHERE id = ?4 AND status = ?5",
        )?
        .execute(params![st(TaskStatus::Canceled), reason, ms(now), id.to_string(), st(expect)])?;
    if n > 0 {
        cancel_children(c, id, TaskStatus::Canceled, now)?;
        release_dependents(c, id, TaskStatus::Canceled, now)?;
    }
    Ok(n > 0)
}

/// Earliest due time after `now` among pending tasks.
pub fn next_due(c: &Connection, now: DateTime<Utc>) -> StoreResult<Option<DateTime<Utc>>> {
    let v: Option<i64> = c
        .prepare_cached("SELECT MIN(due_at) FROM tasks WHERE status = ?1 AND due_at > ?2")?
        .query_row(params![PENDING, ms(now)], |r| r.get(0))?;
    Ok(v.map(from_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(c: &Connection, sql: &str) -> String {
        let mut stmt = c
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("explain");
        let rows = stmt
            .query_map(params![PENDING, 0, 0, 1, 8, ""], |r| r.get::<_, String>(3))
            .expect("plan");
        rows.map(|r| r.unwrap_or_default())
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Regression: an index that does not match the claim's ORDER BY sorts every
    /// due row on each claim (19 claims/s with a million rows).
    #[test]
    fn claim_query_walks_its_index_without_sorting() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut c = Connection::open(dir.path().join("db")).expect("open");
        super::super::migrations::migrate(&mut c).expect("migrate");
        let p = plan(&c, &claim_select());
        assert!(p.contains("USING INDEX tasks_claim"), "{p}");
        assert!(!p.contains("TEMP B-TREE"), "the claim sorts: {p}");
    }
}
