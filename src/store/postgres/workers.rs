//! Workers on PostgreSQL (see [`crate::store::WorkerRow`]): SQLite's
//! `workers.rs` translated.
//!
//! Two writes need more than SQLite's single write lock gives for free:
//!
//! - [`apply`] runs from every instance as it starts, often at once. It takes
//!   the schema's `workers` advisory lock first, so applies run one after the
//!   other (one that waited, and so read before the other committed, fails to
//!   serialize and is retried on fresh data), and every statement is idempotent
//!   on its own (`ON CONFLICT DO NOTHING`, updates guarded by the values they
//!   change), so no interleaving raises a unique violation.
//! - [`roll`] must not let two instances each stop a different replica of one
//!   worker: under READ COMMITTED the checks of two concurrent UPDATEs would
//!   both pass. It takes a transaction-scoped advisory lock on the worker's
//!   name (present row or not) before its guarded UPDATE; run at READ
//!   COMMITTED, that UPDATE's snapshot is taken after the lock is granted, so
//!   it sees the stop request of any roll that went first.
//!
//! Unique keys are compared with `COLLATE "C"` (byte order, as SQLite's
//! BINARY): the database's collation may not sort `:` right before `;`.

use super::conn::lock_key;
use super::rows::{execute, from_ms, ms, query, query_opt, task_columns, tasks};
use crate::model::{Task, TaskStatus};
use crate::store::{
    StoreError, StoreResult, WorkerApplyReport, WorkerControl, WorkerRow, WorkerSpec, WorkerState,
    replica_key_range,
};
use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;
use uuid::Uuid;

/// Columns of `workers`, in the order [`row`] reads them.
macro_rules! columns {
    () => {
        "name, config, replicas, generation, state, state_reason, updated_at"
    };
}

fn row(r: &Row) -> StoreResult<WorkerRow> {
    let name: String = r.try_get(0)?;
    let config: String = r.try_get(1)?;
    let corrupt = |why: String| StoreError::Corrupt {
        table: "workers",
        id: name.clone(),
        why,
    };
    let spec = WorkerSpec::from_stored(&name, r.try_get(2)?, &config).map_err(corrupt)?;
    let state = match r.try_get::<_, &str>(4)? {
        "active" => WorkerState::Active,
        "stopped" => WorkerState::Stopped,
        other => return Err(corrupt(format!("unknown state {other:?}"))),
    };
    Ok(WorkerRow {
        spec,
        generation: u32::try_from(r.try_get::<_, i64>(3)?).unwrap_or(u32::MAX),
        state,
        state_reason: r.try_get(5)?,
        updated_at: from_ms(r.try_get(6)?),
    })
}

/// Every worker, by name (in byte order, as on SQLite).
pub async fn list<C: GenericClient>(c: &C) -> StoreResult<Vec<WorkerRow>> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM workers ORDER BY name COLLATE \"C\""
    );
    query(c, sql, &[]).await?.iter().map(row).collect()
}

/// One worker.
pub async fn get<C: GenericClient>(c: &C, name: &str) -> StoreResult<Option<WorkerRow>> {
    let sql = concat!("SELECT ", columns!(), " FROM workers WHERE name = $1");
    query_opt(c, sql, &[&name])
        .await?
        .as_ref()
        .map(row)
        .transpose()
}

/// Adds, changes and deletes rows to match `specs`, inside the caller's
/// SERIALIZABLE transaction (see the module documentation).
pub async fn apply(
    c: &Transaction<'_>,
    schema: &str,
    specs: &[WorkerSpec],
    now: DateTime<Utc>,
) -> StoreResult<WorkerApplyReport> {
    execute(
        c,
        "SELECT pg_advisory_xact_lock($1)",
        &[&lock_key("workers", schema)],
    )
    .await?;
    let now = ms(now);
    let mut report = WorkerApplyReport::default();
    for s in specs {
        let config = s.config_json().to_string();
        let replicas = i64::from(s.replicas);
        let stored = query_opt(
            c,
            "SELECT config, replicas FROM workers WHERE name = $1",
            &[&s.name],
        )
        .await?
        .map(|r| -> StoreResult<(String, i64)> { Ok((r.try_get(0)?, r.try_get(1)?)) })
        .transpose()?;
        match stored {
            None => {
                let n = execute(
                    c,
                    "INSERT INTO workers (name, config, replicas, updated_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (name) DO NOTHING",
                    &[&s.name, &config, &replicas, &now],
                )
                .await?;
                if n > 0 {
                    report.added.push(s.name.clone());
                }
            }
            Some((old, _)) if old != config => {
                let n = execute(
                    c,
                    "UPDATE workers SET config = $2, replicas = $3, generation = generation + 1,
                        updated_at = $4
                     WHERE name = $1 AND config <> $2",
                    &[&s.name, &config, &replicas, &now],
                )
                .await?;
                if n > 0 {
                    report.changed.push(s.name.clone());
                }
            }
            Some((_, stored)) if stored != replicas => {
                let n = execute(
                    c,
                    "UPDATE workers SET replicas = $2, updated_at = $3
                     WHERE name = $1 AND replicas <> $2",
                    &[&s.name, &replicas, &now],
                )
                .await?;
                if n > 0 {
                    report.scaled.push(s.name.clone());
                }
            }
            Some(_) => {}
        }
    }
    let keep: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    let mut removed: Vec<String> = query(
        c,
        "DELETE FROM workers WHERE NOT (name = ANY($1)) RETURNING name",
        &[&keep],
    )
    .await?
    .iter()
    .map(|r| Ok(r.try_get(0)?))
    .collect::<StoreResult<_>>()?;
    // By name, as SQLite lists them (byte order).
    removed.sort_unstable();
    report.removed = removed;
    Ok(report)
}

/// Stops, starts or restarts a worker: one statement, returning the row.
pub async fn control<C: GenericClient>(
    c: &C,
    name: &str,
    control: &WorkerControl,
    now: DateTime<Utc>,
) -> StoreResult<Option<WorkerRow>> {
    let now = ms(now);
    let found = match control {
        WorkerControl::Stop(reason) => {
            let sql = concat!(
                "UPDATE workers SET state = 'stopped', state_reason = $2, updated_at = $3
                 WHERE name = $1 RETURNING ",
                columns!()
            );
            query_opt(c, sql, &[&name, reason, &now]).await?
        }
        WorkerControl::Start => {
            let sql = concat!(
                "UPDATE workers SET state = 'active', state_reason = NULL, updated_at = $2
                 WHERE name = $1 RETURNING ",
                columns!()
            );
            query_opt(c, sql, &[&name, &now]).await?
        }
        WorkerControl::Restart => {
            let sql = concat!(
                "UPDATE workers SET state = 'active', state_reason = NULL,
                    generation = generation + 1, updated_at = $2
                 WHERE name = $1 RETURNING ",
                columns!()
            );
            query_opt(c, sql, &[&name, &now]).await?
        }
    };
    found.as_ref().map(row).transpose()
}

/// Live tasks holding a unique key in `[$from, $to)` (byte order); the status
/// list is written out so the planner can use the partial index
/// `tasks_unique_live`.
macro_rules! live_in_range {
    ($from:literal, $to:literal) => {
        concat!(
            "unique_key IS NOT NULL AND status IN ('pending', 'running', 'waiting')
               AND unique_key COLLATE \"C\" >= ",
            $from,
            " AND unique_key COLLATE \"C\" < ",
            $to
        )
    };
}

/// Live replicas, by unique key.
pub async fn replicas<C: GenericClient>(c: &C, name: Option<&str>) -> StoreResult<Vec<Task>> {
    let (from, to) = replica_key_range(name);
    let sql = concat!(
        "SELECT ",
        task_columns!(),
        " FROM tasks WHERE ",
        live_in_range!("$1", "$2"),
        " ORDER BY unique_key COLLATE \"C\""
    );
    tasks(c, sql, &[&from, &to]).await
}

/// One guarded step of a rolling restart, inside the caller's READ COMMITTED
/// transaction (see the module documentation).
pub async fn roll(
    c: &Transaction<'_>,
    schema: &str,
    name: &str,
    task: Uuid,
    replicas: u32,
) -> StoreResult<bool> {
    execute(
        c,
        "SELECT pg_advisory_xact_lock($1)",
        &[&lock_key(&format!("worker roll {name}"), schema)],
    )
    .await?;
    let (from, to) = replica_key_range(Some(name));
    let running = TaskStatus::Running.as_str();
    let sql = concat!(
        "UPDATE tasks SET cancel_requested = true
         WHERE id = $1 AND status = $2 AND NOT cancel_requested
           AND unique_key COLLATE \"C\" >= $3 AND unique_key COLLATE \"C\" < $4
           AND (SELECT COUNT(*) FROM tasks WHERE ",
        live_in_range!("$3", "$4"),
        " AND status = $2 AND NOT cancel_requested) >= $5
           AND NOT EXISTS (SELECT 1 FROM tasks WHERE ",
        live_in_range!("$3", "$4"),
        " AND cancel_requested)"
    );
    let n = execute(c, sql, &[&task, &running, &from, &to, &i64::from(replicas)]).await?;
    Ok(n > 0)
}
