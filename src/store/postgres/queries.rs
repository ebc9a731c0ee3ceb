//! Read-only task and instance queries for PostgreSQL, each one statement run
//! outside an explicit transaction: lists, id prefixes, orphans, deadlines,
//! local logs (of tasks and of earlier attempts) and prunable tasks, as SQLite
//! answers them.

use super::rows::{
    Param, from_ms, instance_columns, instance_from_row, ms, query, scalar, task_columns, tasks,
};
use crate::model::{Task, TaskStatus};
use crate::store::{
    Instance, LocalAttemptLog, LocalLog, OrphanParams, PrunableTask, StoreResult, TaskListParams,
    TaskPruneParams,
};
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use uuid::Uuid;

/// The database server's clock in Unix milliseconds, as an SQL expression
/// (the real time of the statement, not of its transaction's start).
macro_rules! db_clock_ms {
    () => {
        "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
    };
}

/// Every instance, newest first.
pub async fn instance_list<C: GenericClient>(c: &C) -> StoreResult<Vec<Instance>> {
    let sql = concat!(
        "SELECT ",
        instance_columns!(),
        " FROM instances ORDER BY started_at DESC"
    );
    query(c, sql, &[])
        .await?
        .iter()
        .map(instance_from_row)
        .collect()
}

/// The range of ids whose canonical (lower-case, hyphenated) text starts with
/// `prefix`, or `None` when no id can.
pub fn prefix_range(prefix: &str) -> Option<(Uuid, Uuid)> {
    const LOW: &str = "00000000-0000-0000-0000-000000000000";
    const HIGH: &str = "ffffffff-ffff-ffff-ffff-ffffffffffff";
    let p = prefix.to_ascii_lowercase();
    if p.len() > LOW.len() {
        return None;
    }
    let fits = p.chars().zip(LOW.chars()).all(|(c, shape)| {
        if shape == '-' {
            c == '-'
        } else {
            c.is_ascii_hexdigit()
        }
    });
    if !fits {
        return None;
    }
    let lo = Uuid::parse_str(&format!("{p}{}", &LOW[p.len()..])).ok()?;
    let hi = Uuid::parse_str(&format!("{p}{}", &HIGH[p.len()..])).ok()?;
    Some((lo, hi))
}

/// Tasks whose id starts with `prefix` (any case), in id order.
pub async fn find_prefix<C: GenericClient>(
    c: &C,
    prefix: &str,
    limit: usize,
) -> StoreResult<Vec<Task>> {
    let Some((lo, hi)) = prefix_range(prefix) else {
        return Ok(Vec::new());
    };
    let sql = concat!(
        "SELECT ",
        task_columns!(),
        " FROM tasks WHERE id BETWEEN $1 AND $2 ORDER BY id LIMIT $3"
    );
    tasks(c, sql, &[&lo, &hi, &(limit as i64)]).await
}

/// Tasks matching filters, newest first.
pub async fn list<C: GenericClient>(c: &C, p: &TaskListParams) -> StoreResult<Vec<Task>> {
    // PostgreSQL text cannot hold NUL, so no stored value has one: a filter
    // with one matches nothing (rather than failing the query).
    let texts = [&p.job, &p.queue, &p.schedule, &p.instance];
    if texts
        .iter()
        .any(|t| t.as_deref().is_some_and(|t| t.contains('\0')))
    {
        return Ok(Vec::new());
    }
    // Only the filters given, so the planner can use (job, id) or (status, id).
    let mut wheres: Vec<String> = Vec::new();
    let mut args: Vec<Param> = Vec::new();
    let status = p.status.map(|s| s.as_str());
    let since = p.since.map(super::rows::ms);
    let until = p.until.map(super::rows::ms);
    let filters: [(&str, Option<Param>); 9] = [
        ("status = $", status.as_ref().map(|s| s as Param)),
        ("job = $", p.job.as_ref().map(|j| j as Param)),
        ("queue = $", p.queue.as_ref().map(|q| q as Param)),
        ("schedule = $", p.schedule.as_ref().map(|s| s as Param)),
        ("parent = $", p.parent.as_ref().map(|s| s as Param)),
        ("instance_name = $", p.instance.as_ref().map(|s| s as Param)),
        (
            "coalesce(ended_at, 9223372036854775807) >= $",
            since.as_ref().map(|t| t as Param),
        ),
        ("created_at < $", until.as_ref().map(|t| t as Param)),
        ("id < $", p.before.as_ref().map(|id| id as Param)),
    ];
    for (condition, value) in filters {
        if let Some(value) = value {
            args.push(value);
            wheres.push(format!("{condition}{}", args.len()));
        }
    }
    if p.needs_review {
        wheres.push("needs_review".to_string());
    }
    let limit = p.limit as i64;
    args.push(&limit);
    let filter = if wheres.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", wheres.join(" AND "))
    };
    let sql = format!(
        "SELECT {} FROM tasks {filter} ORDER BY id DESC LIMIT ${}",
        task_columns!(),
        args.len()
    );
    tasks(c, &sql, &args).await
}

/// Every queue with live tasks or paused, by name.
pub async fn queue_stats<C: GenericClient>(
    c: &C,
    now: chrono::DateTime<chrono::Utc>,
) -> StoreResult<Vec<crate::store::QueueStats>> {
    use crate::store::QueueStats;
    let mut by_name: std::collections::BTreeMap<String, QueueStats> = Default::default();
    let live = super::tasks::live_states();
    let rows = query(
        c,
        "SELECT queue, status, COUNT(*), COUNT(*) FILTER (WHERE due_at <= $2) FROM tasks
         WHERE status = ANY($1) GROUP BY queue, status",
        &[&live, &super::rows::ms(now)],
    )
    .await?;
    for r in &rows {
        let queue: String = r.try_get(0)?;
        let status: String = r.try_get(1)?;
        let n = u64::try_from(r.try_get::<_, i64>(2)?).unwrap_or(0);
        let due = u64::try_from(r.try_get::<_, i64>(3)?).unwrap_or(0);
        let q = by_name
            .entry(queue.clone())
            .or_insert_with(|| QueueStats::new(&queue));
        match status.parse::<TaskStatus>() {
            Ok(TaskStatus::Pending) => {
                q.pending = n;
                q.due = due;
            }
            Ok(TaskStatus::Running) => q.running = n,
            Ok(TaskStatus::Waiting) => q.waiting = n,
            _ => {}
        }
    }
    for r in &query(c, "SELECT name, paused_at FROM queue_pauses", &[]).await? {
        let name: String = r.try_get(0)?;
        let paused_at = super::rows::from_ms(r.try_get(1)?);
        by_name
            .entry(name.clone())
            .or_insert_with(|| QueueStats::new(&name))
            .paused_at = Some(paused_at);
    }
    Ok(by_name.into_values().collect())
}

/// Running tasks of an instance that a user asked to cancel.
pub async fn cancel_requests<C: GenericClient>(c: &C, instance: Uuid) -> StoreResult<Vec<Uuid>> {
    query(
        c,
        "SELECT id FROM tasks WHERE status = $1 AND instance_id = $2 AND cancel_requested",
        &[&TaskStatus::Running.as_str(), &instance],
    )
    .await?
    .iter()
    .map(|r| Ok(r.try_get(0)?))
    .collect()
}

/// Running tasks not held by `p.me` whose orphan deadline has passed.
pub async fn orphans<C: GenericClient>(c: &C, p: &OrphanParams) -> StoreResult<Vec<Task>> {
    let sql = concat!(
        "SELECT ",
        task_columns!(),
        " FROM tasks WHERE status = $1 AND instance_id != $2 AND deadline_at + $3 <= $4"
    );
    let grace = i64::try_from(p.grace.as_millis()).unwrap_or(i64::MAX);
    tasks(
        c,
        sql,
        &[&TaskStatus::Running.as_str(), &p.me, &grace, &ms(p.now)],
    )
    .await
}

/// Running tasks held by `instance`.
pub async fn held<C: GenericClient>(c: &C, instance: Uuid) -> StoreResult<Vec<Task>> {
    let sql = concat!(
        "SELECT ",
        task_columns!(),
        " FROM tasks WHERE status = $1 AND instance_id = $2"
    );
    tasks(c, sql, &[&TaskStatus::Running.as_str(), &instance]).await
}

/// The database's clock.
pub async fn db_now<C: GenericClient>(c: &C) -> StoreResult<DateTime<Utc>> {
    let v: Option<i64> = scalar(c, concat!("SELECT ", db_clock_ms!()), &[]).await?;
    Ok(v.map(from_ms).unwrap_or_else(Utc::now))
}

/// Earliest deadline of a running task held by another instance.
pub async fn next_foreign_deadline<C: GenericClient>(
    c: &C,
    me: Uuid,
) -> StoreResult<Option<DateTime<Utc>>> {
    let v: Option<i64> = scalar(
        c,
        "SELECT MIN(deadline_at) FROM tasks WHERE status = $1 AND instance_id != $2",
        &[&TaskStatus::Running.as_str(), &me],
    )
    .await?;
    Ok(v.map(from_ms))
}

/// Finished tasks run on `host` whose log is still a local file (oldest first).
pub async fn logs_local<C: GenericClient>(
    c: &C,
    host: &str,
    limit: usize,
) -> StoreResult<Vec<LocalLog>> {
    let rows = query(
        c,
        "SELECT id, log, instance_id FROM tasks WHERE log_local AND host = $1
         ORDER BY id LIMIT $2",
        &[&host, &(limit as i64)],
    )
    .await?;
    let mut out = Vec::new();
    for r in rows {
        let log: Option<String> = r.try_get(1)?;
        if let Some(path) = log {
            out.push(LocalLog {
                id: r.try_get(0)?,
                instance: r.try_get(2)?,
                path,
            });
        }
    }
    Ok(out)
}

/// Earlier attempts run on `host` whose log is still a local file, by task
/// then attempt.
pub async fn attempt_logs_local<C: GenericClient>(
    c: &C,
    host: &str,
    limit: usize,
) -> StoreResult<Vec<LocalAttemptLog>> {
    let rows = query(
        c,
        "SELECT task_id, attempt, instance_id, log FROM task_attempts
         WHERE log_local AND host = $1 ORDER BY task_id, attempt LIMIT $2",
        &[&host, &(limit as i64)],
    )
    .await?;
    let mut out = Vec::new();
    for r in rows {
        let id: Uuid = r.try_get(0)?;
        let attempt: i64 = r.try_get(1)?;
        // One bad row must not stop the uploads of the others.
        let Ok(attempt) = u32::try_from(attempt) else {
            tracing::warn!(task = %id, attempt, "attempt number out of range; its log is not uploaded");
            continue;
        };
        let log: Option<String> = r.try_get(3)?;
        if let Some(path) = log {
            out.push(LocalAttemptLog {
                id,
                attempt,
                instance: r.try_get(2)?,
                path,
            });
        }
    }
    Ok(out)
}

/// Finished tasks that ended before a time, oldest first: the `limit` oldest of
/// each state (an index range scan on `(status, ended_at)` each), merged.
pub async fn prunable<C: GenericClient>(
    c: &C,
    p: &TaskPruneParams,
) -> StoreResult<Vec<PrunableTask>> {
    let mut statuses: Vec<TaskStatus> = if p.statuses.is_empty() {
        TaskStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect()
    } else {
        p.statuses
            .iter()
            .copied()
            .filter(|s| s.is_terminal())
            .collect()
    };
    statuses.sort();
    statuses.dedup();
    let mut rows: Vec<(i64, Uuid, Option<String>)> = Vec::new();
    for s in statuses {
        let found = query(
            c,
            "SELECT ended_at, id, log FROM tasks WHERE status = $1 AND ended_at < $2
             ORDER BY ended_at LIMIT $3",
            &[&s.as_str(), &ms(p.ended_before), &(p.limit as i64)],
        )
        .await?;
        for r in found {
            rows.push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?));
        }
    }
    rows.sort();
    rows.truncate(p.limit);
    Ok(rows
        .into_iter()
        .map(|(_, id, log)| PrunableTask { id, log })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::prefix_range;

    #[test]
    fn prefix_range_covers_exactly_the_ids_with_that_text_prefix() {
        let id = uuid::Uuid::now_v7();
        let text = id.to_string();
        for n in 0..=text.len() {
            let (lo, hi) = prefix_range(&text[..n].to_uppercase())
                .unwrap_or_else(|| panic!("prefix {} has a range", &text[..n]));
            assert!(lo <= id && id <= hi, "prefix {}", &text[..n]);
            assert!(lo.to_string().starts_with(&text[..n]));
            assert!(hi.to_string().starts_with(&text[..n]));
        }
        assert_eq!(prefix_range("0190x"), None, "not hex");
        assert_eq!(
            prefix_range("01900000a"),
            None,
            "a digit where a hyphen goes"
        );
        assert_eq!(prefix_range(&format!("{text}0")), None, "longer than an id");
    }
}
