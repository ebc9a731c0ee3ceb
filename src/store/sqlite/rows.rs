//! Row ↔ model conversion for SQLite: the one place columns are named and
//! stored text becomes states, ids, times and JSON.

use crate::model::{Task, TaskStatus};
use crate::store::{Instance, ScheduleRow, StoreError, StoreResult};
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::Row;
use serde_json::Value;
use std::time::Duration;
use uuid::Uuid;

/// Columns of `tasks`, in the order [`task_from_row`] reads them.
pub const TASK_COLUMNS: &str = "id, job, status, reason, exit_code, signal, attempt, queue, \
    priority, slots, max_execution_ms, kill_grace_ms, schedule, recurrence, instance_id, \
    instance_name, parent, after_id, args, metadata, result, created_at, due_at, started_at, \
    ended_at, deadline_at, log, host, pgid, needs_review, unique_key";

/// Milliseconds since the epoch.
pub fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// A time from milliseconds since the epoch.
pub fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn corrupt(table: &'static str, id: &str, why: String) -> StoreError {
    StoreError::Corrupt {
        table,
        id: id.to_string(),
        why,
    }
}

fn uuid_col(id: &str, col: &str, v: Option<String>) -> StoreResult<Option<Uuid>> {
    v.map(|s| Uuid::parse_str(&s).map_err(|e| corrupt("tasks", id, format!("{col}: {e}"))))
        .transpose()
}

fn json_col(id: &str, col: &str, v: Option<String>) -> StoreResult<Option<Value>> {
    v.map(|s| serde_json::from_str(&s).map_err(|e| corrupt("tasks", id, format!("{col}: {e}"))))
        .transpose()
}

/// Reads a task from a row selected with [`TASK_COLUMNS`].
pub fn task_from_row(r: &Row<'_>) -> StoreResult<Task> {
    let id_text: String = r.get(0)?;
    let id = Uuid::parse_str(&id_text).map_err(|e| corrupt("tasks", &id_text, e.to_string()))?;
    let status_text: String = r.get(2)?;
    let status: TaskStatus =
        status_text
            .parse()
            .map_err(|e: crate::model::status::UnknownStatus| {
                corrupt("tasks", &id_text, e.to_string())
            })?;
    let time = |i: usize| -> rusqlite::Result<Option<DateTime<Utc>>> {
        Ok(r.get::<_, Option<i64>>(i)?.map(from_ms))
    };
    let dur = |i: usize| -> rusqlite::Result<Duration> {
        Ok(Duration::from_millis(r.get::<_, i64>(i)?.max(0) as u64))
    };
    Ok(Task {
        id,
        job: r.get(1)?,
        status,
        reason: r.get(3)?,
        exit_code: r.get(4)?,
        signal: r.get(5)?,
        attempt: r.get(6)?,
        queue: r.get(7)?,
        priority: r.get(8)?,
        slots: r.get(9)?,
        max_execution_time: dur(10)?,
        kill_grace: dur(11)?,
        schedule: r.get(12)?,
        recurrence: json_col(&id_text, "recurrence", r.get(13)?)?,
        instance_id: uuid_col(&id_text, "instance_id", r.get(14)?)?,
        instance: r.get(15)?,
        parent: uuid_col(&id_text, "parent", r.get(16)?)?,
        after: uuid_col(&id_text, "after_id", r.get(17)?)?,
        args: json_col(&id_text, "args", r.get(18)?)?.unwrap_or(Value::Null),
        metadata: json_col(&id_text, "metadata", r.get(19)?)?.unwrap_or(Value::Null),
        result: json_col(&id_text, "result", r.get(20)?)?,
        created_at: from_ms(r.get(21)?),
        start_at: time(22)?,
        started_at: time(23)?,
        ended_at: time(24)?,
        deadline_at: time(25)?,
        log: r.get(26)?,
        host: r.get(27)?,
        pgid: r.get(28)?,
        needs_review: r.get::<_, i64>(29)? != 0,
        unique_key: r.get(30)?,
    })
}

/// Columns of `instances`, in the order [`instance_from_row`] reads them.
pub const INSTANCE_COLUMNS: &str = "id, name, host, pid, slots, queues, started_at, heartbeat_at, stopped_at, heartbeat_ms, \
    clock_offset_ms";

/// Reads an instance.
pub fn instance_from_row(r: &Row<'_>) -> StoreResult<Instance> {
    let id_text: String = r.get(0)?;
    let queues: String = r.get(5)?;
    Ok(Instance {
        id: Uuid::parse_str(&id_text).map_err(|e| corrupt("instances", &id_text, e.to_string()))?,
        name: r.get(1)?,
        host: r.get(2)?,
        pid: r.get(3)?,
        slots: r.get(4)?,
        queues: queues
            .split(',')
            .filter(|q| !q.is_empty())
            .map(str::to_string)
            .collect(),
        started_at: from_ms(r.get(6)?),
        heartbeat_at: from_ms(r.get(7)?),
        stopped_at: r.get::<_, Option<i64>>(8)?.map(from_ms),
        heartbeat_interval: Duration::from_millis(r.get::<_, i64>(9)?.max(0) as u64),
        clock_offset_ms: r.get(10)?,
    })
}

/// Reads a schedule row (`name, job, recurrence, args, last_completed_at`).
pub fn schedule_from_row(r: &Row<'_>) -> StoreResult<ScheduleRow> {
    let name: String = r.get(0)?;
    let parse = |col: &str, s: String| -> StoreResult<Value> {
        serde_json::from_str(&s).map_err(|e| corrupt("schedules", &name, format!("{col}: {e}")))
    };
    Ok(ScheduleRow {
        job: r.get(1)?,
        recurrence: parse("recurrence", r.get(2)?)?,
        args: parse("args", r.get(3)?)?,
        last_completed_at: r.get::<_, Option<i64>>(4)?.map(from_ms),
        name,
    })
}
