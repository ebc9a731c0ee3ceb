//! The raw figures of [`Store::stats_snapshot`](crate::store::Store::stats_snapshot)
//! for SQLite: one grouped scan of `tasks`, the running tasks, the instances
//! and the paused queues, read in one transaction (one snapshot of the WAL).

use super::rows::{INSTANCE_COLUMNS, from_ms, instance_from_row};
use crate::model::TaskStatus;
use crate::store::{RunningTask, StatsRows, StoreResult, TaskGroup, duration_bucket_ms};
use rusqlite::{Connection, params};
use uuid::Uuid;

/// The grouped scan: per (job, queue, status, slots), counts, retries and the
/// duration histogram's cumulative buckets.
fn groups_sql() -> String {
    let buckets: Vec<String> = duration_bucket_ms()
        .iter()
        .map(|b| format!("COALESCE(SUM(ended_at - started_at <= {b}), 0)"))
        .collect();
    format!(
        "SELECT job, queue, status, slots, COUNT(*), COALESCE(SUM(attempt - 1), 0),
            COUNT(ended_at - started_at), COALESCE(SUM(ended_at - started_at), 0), {}
         FROM tasks GROUP BY job, queue, status, slots",
        buckets.join(", ")
    )
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Reads every raw figure; call it inside one transaction.
pub fn rows(c: &Connection) -> StoreResult<StatsRows> {
    let mut out = StatsRows::default();
    let mut stmt = c.prepare_cached(&groups_sql())?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let status: String = r.get(2)?;
        let Ok(status) = status.parse::<TaskStatus>() else {
            tracing::warn!(status, "stats: tasks with an unknown status left out");
            continue;
        };
        let buckets = (0..duration_bucket_ms().len())
            .map(|i| r.get::<_, i64>(8 + i).map(count))
            .collect::<Result<Vec<_>, _>>()?;
        out.groups.push(TaskGroup {
            job: r.get(0)?,
            queue: r.get(1)?,
            status,
            slots: u32::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
            count: count(r.get(4)?),
            retries: count(r.get(5)?),
            timed: count(r.get(6)?),
            duration_ms: r.get(7)?,
            buckets,
        });
    }
    let mut stmt = c.prepare_cached(
        "SELECT id, job, queue, instance_id, slots, started_at, deadline_at FROM tasks
         WHERE status = ?1",
    )?;
    let mut rows = stmt.query(params![TaskStatus::Running.as_str()])?;
    while let Some(r) = rows.next()? {
        let id: String = r.get(0)?;
        let Ok(id) = Uuid::parse_str(&id) else {
            tracing::warn!(id, "stats: running task with a bad id left out");
            continue;
        };
        out.running.push(RunningTask {
            id,
            job: r.get(1)?,
            queue: r.get(2)?,
            instance_id: r
                .get::<_, Option<String>>(3)?
                .and_then(|i| Uuid::parse_str(&i).ok()),
            slots: u32::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
            started_at: r.get::<_, Option<i64>>(5)?.map(from_ms),
            deadline_at: r.get::<_, Option<i64>>(6)?.map(from_ms),
        });
    }
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {INSTANCE_COLUMNS} FROM instances ORDER BY started_at DESC"
    ))?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        out.instances.push(instance_from_row(r)?);
    }
    let mut stmt = c.prepare_cached("SELECT name, paused_at FROM queue_pauses ORDER BY name")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        out.paused.push((r.get(0)?, from_ms(r.get(1)?)));
    }
    Ok(out)
}

/// The grouped scans of [`Store::task_timeline`](crate::store::Store::task_timeline);
/// call it inside one transaction.
pub fn timeline_rows(
    c: &Connection,
    p: &crate::store::TimelineParams,
) -> StoreResult<crate::store::TimelineRows> {
    use crate::store::{EndedGroup, PendingSpan};
    let (from, now, step) = (
        p.from.timestamp_millis(),
        p.now.timestamp_millis(),
        p.step_ms,
    );
    let mut out = crate::store::TimelineRows::default();
    let mut stmt = c.prepare_cached(
        "SELECT queue, status, (ended_at - ?1) / ?3 AS b, COUNT(*) FROM tasks
         WHERE status IN ('completed', 'failed', 'canceled')
           AND ended_at >= ?1 AND ended_at <= ?2
         GROUP BY queue, status, b",
    )?;
    let mut rows = stmt.query(params![from, now, step])?;
    while let Some(r) = rows.next()? {
        let status: String = r.get(1)?;
        let Ok(status) = status.parse::<TaskStatus>() else {
            continue;
        };
        out.ended.push(EndedGroup {
            queue: r.get(0)?,
            status,
            bucket: r.get(2)?,
            count: count(r.get(3)?),
        });
    }
    // Enter: max(created, due); leave: the earlier of start and end. Only
    // live tasks and those that ended within the window can have been
    // pending in it: both sets are read through the status indexes, so the
    // cost follows the backlog and the window, not the whole history.
    let mut stmt = c.prepare_cached(
        "SELECT queue,
            CASE WHEN enter < ?1 THEN -1 ELSE (enter - ?1) / ?3 END AS eb,
            (leave - ?1) / ?3 AS lb, COUNT(*)
         FROM (SELECT queue, MAX(created_at, COALESCE(due_at, created_at)) AS enter,
                 MIN(COALESCE(started_at, ended_at), COALESCE(ended_at, started_at)) AS leave
               FROM (SELECT queue, created_at, due_at, started_at, ended_at FROM tasks
                     WHERE status IN ('pending', 'running', 'waiting')
                     UNION ALL
                     SELECT queue, created_at, due_at, started_at, ended_at FROM tasks
                     WHERE status IN ('completed', 'failed', 'canceled') AND ended_at > ?1))
         WHERE enter <= ?2 AND (leave IS NULL OR leave > ?1)
         GROUP BY queue, eb, lb",
    )?;
    let mut rows = stmt.query(params![from, now, step])?;
    while let Some(r) = rows.next()? {
        out.pending.push(PendingSpan {
            queue: r.get(0)?,
            entered: r.get(1)?,
            left: r.get(2)?,
            count: count(r.get(3)?),
        });
    }
    Ok(out)
}
