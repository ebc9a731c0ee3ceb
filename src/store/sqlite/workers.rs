//! Workers on SQLite (see [`crate::store::WorkerRow`]).

use super::rows::{TASK_COLUMNS, from_ms, ms};
use super::tasks::query;
use crate::model::{Task, TaskStatus};
use crate::store::{
    StoreError, StoreResult, WorkerApplyReport, WorkerControl, WorkerRow, WorkerSpec, WorkerState,
    replica_key_range,
};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

const COLUMNS: &str = "name, config, replicas, generation, state, state_reason, updated_at";

fn row(r: &rusqlite::Row<'_>) -> StoreResult<WorkerRow> {
    let name: String = r.get(0)?;
    let config: String = r.get(1)?;
    let corrupt = |why: String| StoreError::Corrupt {
        table: "workers",
        id: name.clone(),
        why,
    };
    let spec = WorkerSpec::from_stored(&name, r.get(2)?, &config).map_err(corrupt)?;
    let state = match r.get::<_, String>(4)?.as_str() {
        "active" => WorkerState::Active,
        "stopped" => WorkerState::Stopped,
        other => return Err(corrupt(format!("unknown state {other:?}"))),
    };
    Ok(WorkerRow {
        spec,
        generation: u32::try_from(r.get::<_, i64>(3)?).unwrap_or(u32::MAX),
        state,
        state_reason: r.get(5)?,
        updated_at: from_ms(r.get(6)?),
    })
}

/// Every worker, by name.
pub fn list(c: &Connection) -> StoreResult<Vec<WorkerRow>> {
    let mut stmt = c.prepare_cached(&format!("SELECT {COLUMNS} FROM workers ORDER BY name"))?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(row(r)?);
    }
    Ok(out)
}

/// One worker.
pub fn get(c: &Connection, name: &str) -> StoreResult<Option<WorkerRow>> {
    let mut stmt = c.prepare_cached(&format!("SELECT {COLUMNS} FROM workers WHERE name = ?1"))?;
    let mut rows = stmt.query(params![name])?;
    match rows.next()? {
        Some(r) => Ok(Some(row(r)?)),
        None => Ok(None),
    }
}

/// Adds, changes and deletes rows to match `specs`.
pub fn apply(
    c: &Connection,
    specs: &[WorkerSpec],
    now: DateTime<Utc>,
) -> StoreResult<WorkerApplyReport> {
    let mut report = WorkerApplyReport::default();
    for s in specs {
        let config = s.config_json().to_string();
        let stored: Option<(String, i64)> = c
            .prepare_cached("SELECT config, replicas FROM workers WHERE name = ?1")?
            .query_row(params![s.name], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        match stored {
            None => {
                c.prepare_cached(
                    "INSERT INTO workers (name, config, replicas, updated_at) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![s.name, config, s.replicas, ms(now)])?;
                report.added.push(s.name.clone());
            }
            Some((old, _)) if old != config => {
                c.prepare_cached(
                    "UPDATE workers SET config = ?2, replicas = ?3, generation = generation + 1,
                        updated_at = ?4 WHERE name = ?1",
                )?
                .execute(params![s.name, config, s.replicas, ms(now)])?;
                report.changed.push(s.name.clone());
            }
            Some((_, replicas)) if replicas != i64::from(s.replicas) => {
                c.prepare_cached(
                    "UPDATE workers SET replicas = ?2, updated_at = ?3 WHERE name = ?1",
                )?
                .execute(params![s.name, s.replicas, ms(now)])?;
                report.scaled.push(s.name.clone());
            }
            Some(_) => {}
        }
    }
    let stored: Vec<String> = c
        .prepare_cached("SELECT name FROM workers ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for name in stored {
        if !specs.iter().any(|s| s.name == name) {
            c.prepare_cached("DELETE FROM workers WHERE name = ?1")?
                .execute(params![name])?;
            report.removed.push(name);
        }
    }
    Ok(report)
}

/// Stops, starts or restarts a worker.
pub fn control(
    c: &Connection,
    name: &str,
    control: &WorkerControl,
    now: DateTime<Utc>,
) -> StoreResult<Option<WorkerRow>> {
    let n = match control {
        WorkerControl::Stop(reason) => c.execute(
            "UPDATE workers SET state = 'stopped', state_reason = ?2, updated_at = ?3 WHERE name = ?1",
            params![name, reason, ms(now)],
        )?,
        WorkerControl::Start => c.execute(
            "UPDATE workers SET state = 'active', state_reason = NULL, updated_at = ?2 WHERE name = ?1",
            params![name, ms(now)],
        )?,
        WorkerControl::Restart => c.execute(
            "UPDATE workers SET state = 'active', state_reason = NULL, generation = generation + 1,
                updated_at = ?2 WHERE name = ?1",
            params![name, ms(now)],
        )?,
    };
    if n == 0 {
        return Ok(None);
    }
    get(c, name)
}

const LIVE: &str = "status IN ('pending', 'running', 'waiting')";

/// Live replicas, by unique key.
pub fn replicas(c: &Connection, name: Option<&str>) -> StoreResult<Vec<Task>> {
    let (from, to) = replica_key_range(name);
    let sql = format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE unique_key IS NOT NULL AND {LIVE}
           AND unique_key >= ?1 AND unique_key < ?2 ORDER BY unique_key"
    );
    query(c, &sql, &[&from, &to])
}

/// One guarded step of a rolling restart.
pub fn roll(c: &Connection, name: &str, task: Uuid, replicas: u32) -> StoreResult<bool> {
    let (from, to) = replica_key_range(Some(name));
    let running = TaskStatus::Running.as_str();
    let n = c
        .prepare_cached(&format!(
            "UPDATE tasks SET cancel_requested = 1
             WHERE id = ?1 AND status = ?2 AND cancel_requested = 0
               AND unique_key >= ?3 AND unique_key < ?4
               AND (SELECT COUNT(*) FROM tasks WHERE unique_key IS NOT NULL AND {LIVE}
                      AND unique_key >= ?3 AND unique_key < ?4
                      AND status = ?2 AND cancel_requested = 0) >= ?5
               AND NOT EXISTS (SELECT 1 FROM tasks WHERE unique_key IS NOT NULL AND {LIVE}
                      AND unique_key >= ?3 AND unique_key < ?4 AND cancel_requested = 1)"
        ))?
        .execute(params![task.to_string(), running, from, to, replicas])?;
    Ok(n > 0)
}
