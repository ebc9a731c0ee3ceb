//! Row ↔ model conversion for PostgreSQL: the one place columns are named and
//! stored values become states, times and JSON, plus thin helpers that run a
//! cached prepared statement on a connection or a transaction.
//!
//! Times are BIGINT milliseconds since the epoch and JSON is TEXT, as in the
//! SQLite backend, so both keep exactly the same values.

use crate::model::{Task, TaskStatus};
use crate::store::{Instance, ScheduleRow, StoreError, StoreResult};
use chrono::{DateTime, TimeZone, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use std::time::Duration;
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, ToSql};

/// Columns of `tasks`, in the order [`task_from_row`] reads them (a macro so
/// that statements built with `concat!` stay `&'static str`).
macro_rules! task_columns {
    () => {
        "id, job, status, reason, exit_code, signal, attempt, queue, \
         priority, slots, max_execution_ms, kill_grace_ms, schedule, recurrence, instance_id, \
         instance_name, parent, after_id, args, metadata, result, created_at, due_at, started_at, \
         ended_at, deadline_at, log, host, pgid, needs_review, unique_key"
    };
}
pub(crate) use task_columns;

/// Columns of `instances`, in the order [`instance_from_row`] reads them.
macro_rules! instance_columns {
    () => {
        "id, name, host, pid, slots, queues, started_at, heartbeat_at, stopped_at, heartbeat_ms, \
         clock_offset_ms"
    };
}
pub(crate) use instance_columns;

/// A statement parameter.
pub type Param<'a> = &'a (dyn ToSql + Sync);

/// Milliseconds since the epoch.
pub fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// A time from milliseconds since the epoch.
pub fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// A duration in milliseconds, as stored.
pub fn dur_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Runs a query (prepared once per connection) and returns its rows.
pub async fn query<C: GenericClient>(c: &C, sql: &str, p: &[Param<'_>]) -> StoreResult<Vec<Row>> {
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.query(&stmt, p).await?)
}

/// Runs a query expected to return at most one row.
pub async fn query_opt<C: GenericClient>(
    c: &C,
    sql: &str,
    p: &[Param<'_>],
) -> StoreResult<Option<Row>> {
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.query_opt(&stmt, p).await?)
}

/// Runs a statement; returns the number of rows it changed.
pub async fn execute<C: GenericClient>(c: &C, sql: &str, p: &[Param<'_>]) -> StoreResult<u64> {
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.execute(&stmt, p).await?)
}

/// Runs a query returning one value in one row (an aggregate).
pub async fn scalar<C, T>(c: &C, sql: &str, p: &[Param<'_>]) -> StoreResult<T>
where
    C: GenericClient,
    T: for<'r> FromSql<'r>,
{
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.query_one(&stmt, p).await?.try_get(0)?)
}

/// Runs a `SELECT task_columns!() …` and reads every row.
pub async fn tasks<C: GenericClient>(c: &C, sql: &str, p: &[Param<'_>]) -> StoreResult<Vec<Task>> {
    query(c, sql, p).await?.iter().map(task_from_row).collect()
}

fn corrupt(table: &'static str, id: &str, why: String) -> StoreError {
    StoreError::Corrupt {
        table,
        id: id.to_string(),
        why,
    }
}

/// Parses a stored status.
pub fn status(table: &'static str, id: &str, text: &str) -> StoreResult<TaskStatus> {
    text.parse()
        .map_err(|e: crate::model::status::UnknownStatus| corrupt(table, id, e.to_string()))
}

fn json_col(
    table: &'static str,
    id: &str,
    col: &str,
    v: Option<String>,
) -> StoreResult<Option<Value>> {
    v.map(|s| serde_json::from_str(&s).map_err(|e| corrupt(table, id, format!("{col}: {e}"))))
        .transpose()
}

fn u32_col(table: &'static str, id: &str, col: &str, v: i64) -> StoreResult<u32> {
    u32::try_from(v).map_err(|_| corrupt(table, id, format!("{col}: {v} is out of range")))
}

/// Reads a task from a row selected with [`task_columns!`].
pub fn task_from_row(r: &Row) -> StoreResult<Task> {
    let id: uuid::Uuid = r.try_get(0)?;
    let id_text = id.to_string();
    let time = |i: usize| -> StoreResult<Option<DateTime<Utc>>> {
        Ok(r.try_get::<_, Option<i64>>(i)?.map(from_ms))
    };
    let dur = |i: usize| -> StoreResult<Duration> {
        Ok(Duration::from_millis(r.try_get::<_, i64>(i)?.max(0) as u64))
    };
    let json = |i: usize, col: &str| -> StoreResult<Option<Value>> {
        json_col("tasks", &id_text, col, r.try_get(i)?)
    };
    Ok(Task {
        id,
        job: r.try_get(1)?,
        status: status("tasks", &id_text, r.try_get(2)?)?,
        reason: r.try_get(3)?,
        exit_code: r.try_get(4)?,
        signal: r.try_get(5)?,
        attempt: u32_col("tasks", &id_text, "attempt", r.try_get(6)?)?,
        queue: r.try_get(7)?,
        priority: r.try_get(8)?,
        slots: u32_col("tasks", &id_text, "slots", r.try_get(9)?)?,
        max_execution_time: dur(10)?,
        kill_grace: dur(11)?,
        schedule: r.try_get(12)?,
        recurrence: json(13, "recurrence")?,
        instance_id: r.try_get(14)?,
        instance: r.try_get(15)?,
        parent: r.try_get(16)?,
        after: r.try_get(17)?,
        args: json(18, "args")?.unwrap_or(Value::Null),
        metadata: json(19, "metadata")?.unwrap_or(Value::Null),
        result: json(20, "result")?,
        created_at: from_ms(r.try_get(21)?),
        start_at: time(22)?,
        started_at: time(23)?,
        ended_at: time(24)?,
        deadline_at: time(25)?,
        log: r.try_get(26)?,
        host: r.try_get(27)?,
        pgid: r.try_get(28)?,
        needs_review: r.try_get(29)?,
        unique_key: r.try_get(30)?,
    })
}

/// Reads an instance from a row selected with [`instance_columns!`].
pub fn instance_from_row(r: &Row) -> StoreResult<Instance> {
    let id: uuid::Uuid = r.try_get(0)?;
    let id_text = id.to_string();
    let queues: String = r.try_get(5)?;
    Ok(Instance {
        id,
        name: r.try_get(1)?,
        host: r.try_get(2)?,
        pid: u32_col("instances", &id_text, "pid", r.try_get(3)?)?,
        slots: u32_col("instances", &id_text, "slots", r.try_get(4)?)?,
        queues: queues
            .split(',')
            .filter(|q| !q.is_empty())
            .map(str::to_string)
            .collect(),
        started_at: from_ms(r.try_get(6)?),
        heartbeat_at: from_ms(r.try_get(7)?),
        stopped_at: r.try_get::<_, Option<i64>>(8)?.map(from_ms),
        heartbeat_interval: Duration::from_millis(
            u64::try_from(r.try_get::<_, i64>(9)?).unwrap_or(0),
        ),
        clock_offset_ms: r.try_get(10)?,
    })
}

/// Reads a schedule row (`name, job, recurrence, args, last_completed_at`).
pub fn schedule_from_row(r: &Row) -> StoreResult<ScheduleRow> {
    let name: String = r.try_get(0)?;
    let parse = |col: &str, s: String| -> StoreResult<Value> {
        serde_json::from_str(&s).map_err(|e| corrupt("schedules", &name, format!("{col}: {e}")))
    };
    Ok(ScheduleRow {
        job: r.try_get(1)?,
        recurrence: parse("recurrence", r.try_get(2)?)?,
        args: parse("args", r.try_get(3)?)?,
        last_completed_at: r.try_get::<_, Option<i64>>(4)?.map(from_ms),
        name,
    })
}
