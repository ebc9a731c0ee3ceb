//! The raw figures of [`Store::stats_snapshot`](crate::store::Store::stats_snapshot)
//! for PostgreSQL: one grouped scan of `tasks`, the running tasks, the
//! instances and the paused queues, read in one REPEATABLE READ transaction
//! (one snapshot), as SQLite reads them.

use super::queries;
use super::rows::{from_ms, query};
use crate::model::TaskStatus;
use crate::store::{RunningTask, StatsRows, StoreResult, TaskGroup, duration_bucket_ms};
use deadpool_postgres::GenericClient;

/// The grouped scan: per (job, queue, status, slots), counts, retries and the
/// duration histogram's cumulative buckets.
fn groups_sql() -> String {
    let buckets: Vec<String> = duration_bucket_ms()
        .iter()
        .map(|b| format!("COUNT(*) FILTER (WHERE ended_at - started_at <= {b})"))
        .collect();
    format!(
        "SELECT job, queue, status, slots, COUNT(*), COALESCE(SUM(attempt - 1), 0)::BIGINT,
            COUNT(ended_at - started_at), COALESCE(SUM(ended_at - started_at), 0)::BIGINT, {}
         FROM tasks GROUP BY job, queue, status, slots",
        buckets.join(", ")
    )
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Reads every raw figure; call it inside one transaction.
pub async fn rows<C: GenericClient>(c: &C) -> StoreResult<StatsRows> {
    let mut out = StatsRows::default();
    for r in query(c, &groups_sql(), &[]).await? {
        let status: String = r.try_get(2)?;
        let Ok(status) = status.parse::<TaskStatus>() else {
            tracing::warn!(status, "stats: tasks with an unknown status left out");
            continue;
        };
        let buckets = (0..duration_bucket_ms().len())
            .map(|i| r.try_get::<_, i64>(8 + i).map(count))
            .collect::<Result<Vec<_>, _>>()?;
        out.groups.push(TaskGroup {
            job: r.try_get(0)?,
            queue: r.try_get(1)?,
            status,
            slots: u32::try_from(r.try_get::<_, i64>(3)?).unwrap_or(0),
            count: count(r.try_get(4)?),
            retries: count(r.try_get(5)?),
            timed: count(r.try_get(6)?),
            duration_ms: r.try_get(7)?,
            buckets,
        });
    }
    let running = query(
        c,
        "SELECT id, job, queue, instance_id, slots, started_at, deadline_at FROM tasks
         WHERE status = $1",
        &[&TaskStatus::Running.as_str()],
    )
    .await?;
    for r in running {
        out.running.push(RunningTask {
            id: r.try_get(0)?,
            job: r.try_get(1)?,
            queue: r.try_get(2)?,
            instance_id: r.try_get(3)?,
            slots: u32::try_from(r.try_get::<_, i64>(4)?).unwrap_or(0),
            started_at: r.try_get::<_, Option<i64>>(5)?.map(from_ms),
            deadline_at: r.try_get::<_, Option<i64>>(6)?.map(from_ms),
        });
    }
    out.instances = queries::instance_list(c).await?;
    for r in query(
        c,
        "SELECT name, paused_at FROM queue_pauses ORDER BY name",
        &[],
    )
    .await?
    {
        out.paused.push((r.try_get(0)?, from_ms(r.try_get(1)?)));
    }
    Ok(out)
}

/// The grouped scans of [`Store::task_timeline`](crate::store::Store::task_timeline);
/// call it inside one transaction.
pub async fn timeline_rows<C: GenericClient>(
    c: &C,
    p: &crate::store::TimelineParams,
) -> StoreResult<crate::store::TimelineRows> {
    use crate::store::{EndedGroup, PendingSpan};
    let (from, now, step) = (
        p.from.timestamp_millis(),
        p.now.timestamp_millis(),
        p.step_ms,
    );
    let mut out = crate::store::TimelineRows::default();
    let ended = query(
        c,
        "SELECT queue, status, (ended_at - $1) / $3 AS b, COUNT(*) FROM tasks
         WHERE status IN ('completed', 'failed', 'canceled')
           AND ended_at >= $1 AND ended_at <= $2
         GROUP BY queue, status, b",
        &[&from, &now, &step],
    )
    .await?;
    for r in ended {
        let status: String = r.try_get(1)?;
        let Ok(status) = status.parse::<TaskStatus>() else {
            continue;
        };
        out.ended.push(EndedGroup {
            queue: r.try_get(0)?,
            status,
            bucket: r.try_get(2)?,
            count: count(r.try_get(3)?),
        });
    }
    // Enter: max(created, due); leave: the earlier of start and end
    // (GREATEST and LEAST skip NULLs). Only live tasks and those that ended
    // within the window can have been pending in it: both read by status.
    let pending = query(
        c,
        "SELECT queue,
            CASE WHEN enter < $1 THEN -1 ELSE (enter - $1) / $3 END AS eb,
            (leave - $1) / $3 AS lb, COUNT(*)
         FROM (SELECT queue, GREATEST(created_at, due_at) AS enter,
                 LEAST(started_at, ended_at) AS leave
               FROM (SELECT queue, created_at, due_at, started_at, ended_at FROM tasks
                     WHERE status IN ('pending', 'running', 'waiting')
                     UNION ALL
                     SELECT queue, created_at, due_at, started_at, ended_at FROM tasks
                     WHERE status IN ('completed', 'failed', 'canceled') AND ended_at > $1) u) t
         WHERE enter <= $2 AND (leave IS NULL OR leave > $1)
         GROUP BY queue, eb, lb",
        &[&from, &now, &step],
    )
    .await?;
    for r in pending {
        out.pending.push(PendingSpan {
            queue: r.try_get(0)?,
            entered: r.try_get(1)?,
            left: r.try_get(2)?,
            count: count(r.try_get(3)?),
        });
    }
    Ok(out)
}
