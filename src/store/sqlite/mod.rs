//! The SQLite backend: one file shared by every instance on a machine.
//!
//! WAL mode, `synchronous = NORMAL`, a busy timeout, and `BEGIN IMMEDIATE` for
//! every write so that claims take the write lock up front. A database that stays
//! busy past the timeout is retried here, never reported as a failed task.
//! Other processes' commits are noticed through inotify on the `-wal` file.

#[cfg(test)]
mod conformance_tests;
mod migrations;
#[cfg(test)]
mod open_tests;
mod rows;
mod schedules;
mod stats;
mod tasks;
mod workers;

use super::*;
use rows::{INSTANCE_COLUMNS, TASK_COLUMNS, from_ms, instance_from_row, ms};
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;

/// The SQLite store.
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

/// How long opening waits for a database other processes keep locked.
const OPEN_BUSY_LIMIT: Duration = Duration::from_secs(60);

/// One connection to `path`, set up: the busy timeout first, then WAL mode
/// (only when the file is not in it yet) and the per-connection settings.
///
/// Switching a file to WAL takes an exclusive lock for which SQLite does not
/// call the busy handler, so processes opening a new file at the same moment
/// get `database is locked` from the pragma itself (issue 15, case 11): the
/// caller retries the whole setup while that lasts.
fn open_connection(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(%mode, "SQLite did not switch the database to WAL mode");
        }
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // 64 MiB of page cache: the claim and finish paths stay in memory even
    // with millions of rows (the default 2 MiB makes them read pages back).
    conn.pragma_update(None, "cache_size", -65536)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn is_busy(e: &StoreError) -> bool {
    matches!(e, StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
        if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`, waiting while
    /// other processes hold it locked (see [`open_connection`]).
    pub fn open(path: &Path) -> StoreResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                context: format!("cannot create {}", dir.display()),
                source,
            })?;
        }
        let started = std::time::Instant::now();
        let mut delay = Duration::from_millis(5);
        let conn = loop {
            match open_connection(path) {
                Err(e) if is_busy(&e) && started.elapsed() < OPEN_BUSY_LIMIT => {
                    tracing::debug!(error = %e, "database locked while opening, retrying");
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_millis(500));
                }
                other => break other?,
            }
        };
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_path_buf(),
        })
    }

    /// Runs `f` on the connection off the async runtime, retrying while the
    /// database stays busy.
    async fn call<T, F>(&self, mut f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnMut(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            let mut delay = Duration::from_millis(5);
            loop {
                match f(&mut guard) {
                    Err(e) if is_busy(&e) => {
                        tracing::debug!("database busy, retrying");
                        std::thread::sleep(delay);
                        delay = (delay * 2).min(Duration::from_millis(500));
                    }
                    other => return other,
                }
            }
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction.
    async fn write<T, F>(&self, mut f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
        .await
    }
}

/// Running tasks of `instance` whose flag column `flag` (`cancel_requested`
/// or `expire_requested`) is set.
fn flagged_running(c: &Connection, instance: Uuid, flag: &str) -> StoreResult<Vec<Uuid>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT id FROM tasks WHERE status = ?1 AND instance_id = ?2 AND {flag} = 1"
    ))?;
    let ids: Vec<String> = stmt
        .query_map(
            params![TaskStatus::Running.as_str(), instance.to_string()],
            |r| r.get(0),
        )?
        .collect::<Result<_, _>>()?;
    Ok(ids.iter().filter_map(|s| Uuid::parse_str(s).ok()).collect())
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> StoreResult<u32> {
        self.call(|c| Ok(migrations::migrate(c)?)).await
    }

    async fn instance_register(&self, p: InstanceRegisterParams) -> StoreResult<()> {
        self.write(move |c| {
            c.execute(
                &format!("INSERT INTO instances ({INSTANCE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
                params![
                    p.id.to_string(),
                    p.name,
                    p.host,
                    p.pid,
                    p.slots,
                    p.queues.join(","),
                    ms(p.started_at),
                    ms(p.heartbeat_at),
                    p.stopped_at.map(ms),
                    p.heartbeat_interval.as_millis() as i64,
                    p.clock_offset_ms,
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn instance_heartbeat(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        clock_offset_ms: i64,
    ) -> StoreResult<()> {
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE instances SET heartbeat_at = ?1, clock_offset_ms = ?2 WHERE id = ?3",
            )?
            .execute(params![ms(now), clock_offset_ms, id.to_string()])?;
            Ok(())
        })
        .await
    }

    async fn instance_stop(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<()> {
        self.write(move |c| {
            c.execute(
                "UPDATE instances SET stopped_at = ?1, heartbeat_at = ?1 WHERE id = ?2",
                params![ms(now), id.to_string()],
            )?;
            Ok(())
        })
        .await
    }

    async fn instance_list(&self) -> StoreResult<Vec<Instance>> {
        self.call(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {INSTANCE_COLUMNS} FROM instances ORDER BY started_at DESC"
            ))?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(instance_from_row(r)?);
            }
            Ok(out)
        })
        .await
    }

    async fn task_insert(&self, p: NewTask) -> StoreResult<Task> {
        let id = p.id;
        self.write(move |c| {
            tasks::insert(c, &p)?;
            tasks::get(c, id)?.ok_or_else(|| StoreError::NoSuchTask(id.to_string()))
        })
        .await
    }

    async fn task_get(&self, id: Uuid) -> StoreResult<Option<Task>> {
        self.call(move |c| tasks::get(c, id)).await
    }

    async fn task_attempts(&self, id: Uuid) -> StoreResult<Vec<Attempt>> {
        self.call(move |c| tasks::attempts(c, id)).await
    }

    async fn task_find_prefix(&self, prefix: &str, limit: usize) -> StoreResult<Vec<Task>> {
        let lo = prefix.to_ascii_lowercase();
        self.call(move |c| {
            let sql = format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE id >= ?1 AND id < ?1 || 'g' ORDER BY id LIMIT ?2"
            );
            tasks::query(c, &sql, &[&lo, &(limit as i64)])
        })
        .await
    }

    async fn task_list(&self, p: TaskListParams) -> StoreResult<Vec<Task>> {
        self.call(move |c| {
            // Only the filters given, so the planner can use (job, id) or (status, id).
            let mut wheres: Vec<&str> = Vec::new();
            let mut args: Vec<&dyn rusqlite::ToSql> = Vec::new();
            let status = p.status.map(|s| s.as_str());
            if let Some(s) = &status {
                wheres.push("status = ?");
                args.push(s);
            }
            if let Some(j) = &p.job {
                wheres.push("job = ?");
                args.push(j);
            }
            if let Some(q) = &p.queue {
                wheres.push("queue = ?");
                args.push(q);
            }
            if let Some(s) = &p.schedule {
                wheres.push("schedule = ?");
                args.push(s);
            }
            if p.needs_review {
                wheres.push("needs_review = 1");
            }
            let parent = p.parent.map(|id| id.to_string());
            if let Some(id) = &parent {
                wheres.push("parent = ?");
                args.push(id);
            }
            if let Some(i) = &p.instance {
                wheres.push("instance_name = ?");
                args.push(i);
            }
            let since = p.since.map(rows::ms);
            if let Some(t) = &since {
                wheres.push("(ended_at IS NULL OR ended_at >= ?)");
                args.push(t);
            }
            let until = p.until.map(rows::ms);
            if let Some(t) = &until {
                wheres.push("created_at < ?");
                args.push(t);
            }
            let before = p.before.map(|id| id.to_string());
            if let Some(id) = &before {
                wheres.push("id < ?");
                args.push(id);
            }
            let limit = p.limit as i64;
            args.push(&limit);
            let filter = if wheres.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", wheres.join(" AND "))
            };
            let sql = format!("SELECT {TASK_COLUMNS} FROM tasks {filter} ORDER BY id DESC LIMIT ?");
            tasks::query(c, &sql, &args)
        })
        .await
    }

    async fn task_claim(&self, p: TaskClaimParams) -> StoreResult<Vec<Task>> {
        self.write(move |c| tasks::claim(c, &p)).await
    }

    async fn task_mark_spawned(&self, p: Vec<TaskSpawnedParams>) -> StoreResult<()> {
        self.write(move |c| {
            let mut stmt = c.prepare_cached(
                "UPDATE tasks SET pgid = ?1, log = ?2 WHERE id = ?3 AND status = ?4",
            )?;
            for s in &p {
                stmt.execute(params![
                    s.pgid,
                    s.log,
                    s.id.to_string(),
                    TaskStatus::Running.as_str()
                ])?;
            }
            Ok(())
        })
        .await
    }

    async fn task_held(&self, instance: Uuid) -> StoreResult<Vec<Task>> {
        self.call(move |c| {
            tasks::query(
                c,
                &format!("SELECT {TASK_COLUMNS} FROM tasks WHERE status = ?1 AND instance_id = ?2"),
                &[&TaskStatus::Running.as_str(), &instance.to_string()],
            )
        })
        .await
    }

    async fn task_reschedule(&self, p: TaskRescheduleParams) -> StoreResult<bool> {
        self.write(move |c| {
            let n = c.execute(
                "UPDATE tasks SET status = ?1, due_at = ?2, instance_id = NULL, instance_name = NULL,
                    host = NULL, started_at = NULL, deadline_at = NULL, pgid = NULL, log = NULL
                 WHERE id = ?3 AND status = ?4 AND instance_id = ?5",
                params![
                    TaskStatus::Pending.as_str(),
                    ms(p.due_at),
                    p.id.to_string(),
                    TaskStatus::Running.as_str(),
                    p.instance_id.to_string()
                ],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn task_finish_many(
        &self,
        p: Vec<TaskFinishParams>,
    ) -> StoreResult<Vec<Option<TaskStatus>>> {
        self.write(move |c| p.iter().map(|f| tasks::finish(c, f)).collect())
            .await
    }

    async fn task_cancel(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<CancelOutcome> {
        self.write(move |c| {
            let Some(t) = tasks::get(c, id)? else {
                return Ok(CancelOutcome::NotFound);
            };
            match t.status {
                TaskStatus::Pending | TaskStatus::Waiting => {
                    tasks::cancel_pending(c, id, t.status, now, "canceled")?;
                    Ok(CancelOutcome::Canceled)
                }
                TaskStatus::Running => {
                    c.execute(
                        "UPDATE tasks SET cancel_requested = 1 WHERE id = ?1",
                        params![id.to_string()],
                    )?;
                    Ok(CancelOutcome::StopRequested)
                }
                s => Ok(CancelOutcome::AlreadyEnded(s)),
            }
        })
        .await
    }

    async fn queue_pause(&self, name: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let name = name.to_string();
        self.write(move |c| {
            let n = c.execute(
                "INSERT INTO queue_pauses (name, paused_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                params![name, ms(now)],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn queue_resume(&self, name: &str) -> StoreResult<bool> {
        let name = name.to_string();
        self.write(move |c| {
            let n = c.execute("DELETE FROM queue_pauses WHERE name = ?1", params![name])?;
            Ok(n > 0)
        })
        .await
    }

    async fn queue_stats(&self, now: DateTime<Utc>) -> StoreResult<Vec<QueueStats>> {
        self.call(move |c| {
            let mut by_name: std::collections::BTreeMap<String, QueueStats> = Default::default();
            let mut stmt = c.prepare_cached(
                "SELECT queue, status, COUNT(*), COALESCE(SUM(due_at <= ?4), 0) FROM tasks
                 WHERE status IN (?1, ?2, ?3) GROUP BY queue, status",
            )?;
            let mut rows = stmt.query(params![
                TaskStatus::Pending.as_str(),
                TaskStatus::Running.as_str(),
                TaskStatus::Waiting.as_str(),
                ms(now)
            ])?;
            while let Some(r) = rows.next()? {
                let queue: String = r.get(0)?;
                let status: String = r.get(1)?;
                let n = r.get::<_, i64>(2)?.max(0) as u64;
                let due = r.get::<_, i64>(3)?.max(0) as u64;
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
            let mut stmt = c.prepare_cached("SELECT name, paused_at FROM queue_pauses")?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let name: String = r.get(0)?;
                let paused_at = from_ms(r.get(1)?);
                by_name
                    .entry(name.clone())
                    .or_insert_with(|| QueueStats::new(&name))
                    .paused_at = Some(paused_at);
            }
            Ok(by_name.into_values().collect())
        })
        .await
    }

    async fn stats_snapshot(&self, now: DateTime<Utc>) -> StoreResult<StatsSnapshot> {
        let rows = self
            .call(|c| {
                // One read transaction: one snapshot of the database.
                let tx = c.transaction()?;
                let rows = stats::rows(&tx)?;
                tx.commit()?;
                Ok(rows)
            })
            .await?;
        Ok(StatsSnapshot::build(now, rows))
    }

    async fn task_timeline(&self, p: TimelineParams) -> StoreResult<Timeline> {
        let rows = self
            .call(move |c| {
                let tx = c.transaction()?;
                let rows = stats::timeline_rows(&tx, &p)?;
                tx.commit()?;
                Ok(rows)
            })
            .await?;
        Ok(Timeline::build(p, rows))
    }

    async fn worker_apply(
        &self,
        specs: Vec<WorkerSpec>,
        now: DateTime<Utc>,
    ) -> StoreResult<WorkerApplyReport> {
        self.write(move |c| workers::apply(c, &specs, now)).await
    }

    async fn worker_list(&self) -> StoreResult<Vec<WorkerRow>> {
        self.call(|c| workers::list(c)).await
    }

    async fn worker_get(&self, name: &str) -> StoreResult<Option<WorkerRow>> {
        let name = name.to_string();
        self.call(move |c| workers::get(c, &name)).await
    }

    async fn worker_control(
        &self,
        name: &str,
        control: WorkerControl,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<WorkerRow>> {
        let name = name.to_string();
        self.write(move |c| workers::control(c, &name, &control, now))
            .await
    }

    async fn worker_replicas(&self, name: Option<String>) -> StoreResult<Vec<Task>> {
        self.call(move |c| workers::replicas(c, name.as_deref()))
            .await
    }

    async fn worker_roll(&self, name: &str, task: Uuid, replicas: u32) -> StoreResult<bool> {
        let name = name.to_string();
        self.write(move |c| workers::roll(c, &name, task, replicas))
            .await
    }

    async fn task_request_expire(&self, id: Uuid) -> StoreResult<bool> {
        self.write(move |c| {
            let n = c.execute(
                "UPDATE tasks SET expire_requested = 1 WHERE id = ?1 AND status = ?2",
                params![id.to_string(), TaskStatus::Running.as_str()],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn task_expire_requests(&self, instance: Uuid) -> StoreResult<Vec<Uuid>> {
        self.call(move |c| flagged_running(c, instance, "expire_requested"))
            .await
    }

    async fn task_cancel_requests(&self, instance: Uuid) -> StoreResult<Vec<Uuid>> {
        self.call(move |c| flagged_running(c, instance, "cancel_requested"))
            .await
    }

    async fn task_list_orphans(&self, p: OrphanParams) -> StoreResult<Vec<Task>> {
        self.call(move |c| {
            let sql = format!(
                "SELECT {TASK_COLUMNS} FROM tasks
                 WHERE status = ?1 AND instance_id != ?2 AND deadline_at + ?3 <= ?4"
            );
            tasks::query(
                c,
                &sql,
                &[
                    &TaskStatus::Running.as_str(),
                    &p.me.to_string(),
                    &(p.grace.as_millis() as i64),
                    &ms(p.now),
                ],
            )
        })
        .await
    }

    async fn task_next_due(&self, now: DateTime<Utc>) -> StoreResult<Option<DateTime<Utc>>> {
        self.call(move |c| tasks::next_due(c, now)).await
    }

    async fn task_next_foreign_deadline(&self, me: Uuid) -> StoreResult<Option<DateTime<Utc>>> {
        self.call(move |c| {
            let v: Option<i64> = c
                .prepare_cached(
                    "SELECT MIN(deadline_at) FROM tasks WHERE status = ?1 AND instance_id != ?2",
                )?
                .query_row(params![TaskStatus::Running.as_str(), me.to_string()], |r| {
                    r.get(0)
                })
                .optional()?
                .flatten();
            Ok(v.map(from_ms))
        })
        .await
    }

    async fn task_logs_local(&self, host: &str, limit: usize) -> StoreResult<Vec<LocalLog>> {
        let host = host.to_string();
        self.call(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, log, instance_id FROM tasks WHERE log_local = 1 AND host = ?1
                 ORDER BY id LIMIT ?2",
            )?;
            let rows: Vec<(String, Option<String>, Option<String>)> = stmt
                .query_map(params![host, limit as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows
                .into_iter()
                .filter_map(|(id, log, instance)| {
                    Some(LocalLog {
                        id: Uuid::parse_str(&id).ok()?,
                        instance: instance.and_then(|i| Uuid::parse_str(&i).ok()),
                        path: log?,
                    })
                })
                .collect())
        })
        .await
    }

    async fn task_log_uploaded(&self, id: Uuid, url: &str) -> StoreResult<bool> {
        let url = url.to_string();
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE tasks SET log = ?1, log_local = 0 WHERE id = ?2 AND log_local = 1",
                )?
                .execute(params![url, id.to_string()])?;
            Ok(n > 0)
        })
        .await
    }

    async fn task_attempt_logs_local(
        &self,
        host: &str,
        limit: usize,
    ) -> StoreResult<Vec<LocalAttemptLog>> {
        let host = host.to_string();
        self.call(move |c| tasks::attempt_logs_local(c, &host, limit))
            .await
    }

    async fn task_attempt_log_uploaded(
        &self,
        id: Uuid,
        attempt: u32,
        url: &str,
    ) -> StoreResult<bool> {
        let url = url.to_string();
        self.write(move |c| tasks::attempt_log_uploaded(c, id, attempt, &url))
            .await
    }

    async fn task_list_prunable(&self, p: TaskPruneParams) -> StoreResult<Vec<PrunableTask>> {
        self.call(move |c| {
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
            // The `limit` oldest of each state (an index range scan on
            // (status, ended_at) each), merged: the `limit` oldest overall.
            let mut rows: Vec<(i64, String, Option<String>)> = Vec::new();
            let mut stmt = c.prepare_cached(
                "SELECT ended_at, id, log FROM tasks WHERE status = ?1 AND ended_at < ?2
                 ORDER BY ended_at LIMIT ?3",
            )?;
            for s in statuses {
                let found: Vec<(i64, String, Option<String>)> = stmt
                    .query_map(
                        params![s.as_str(), ms(p.ended_before), p.limit as i64],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )?
                    .collect::<Result<_, _>>()?;
                rows.extend(found);
            }
            rows.sort();
            rows.truncate(p.limit);
            Ok(rows
                .into_iter()
                .filter_map(|(_, id, log)| {
                    Some(PrunableTask {
                        id: Uuid::parse_str(&id).ok()?,
                        log,
                    })
                })
                .collect())
        })
        .await
    }

    async fn task_delete_finished(&self, ids: Vec<Uuid>) -> StoreResult<usize> {
        self.write(move |c| {
            let mut stmt =
                c.prepare_cached("DELETE FROM tasks WHERE id = ?1 AND status IN (?2, ?3, ?4)")?;
            let mut attempts = c.prepare_cached("DELETE FROM task_attempts WHERE task_id = ?1")?;
            let mut n = 0;
            for id in &ids {
                let gone = stmt.execute(params![
                    id.to_string(),
                    TaskStatus::Completed.as_str(),
                    TaskStatus::Failed.as_str(),
                    TaskStatus::Canceled.as_str()
                ])?;
                if gone > 0 {
                    attempts.execute(params![id.to_string()])?;
                }
                n += gone;
            }
            Ok(n)
        })
        .await
    }

    async fn task_table_maintain(&self) -> StoreResult<TableMaintenance> {
        Ok(TableMaintenance::NotNeeded)
    }

    async fn schedule_apply(&self, p: ScheduleApplyParams) -> StoreResult<ApplyReport> {
        self.write(move |c| schedules::apply(c, &p)).await
    }

    async fn schedule_list(&self) -> StoreResult<Vec<ScheduleRow>> {
        self.call(|c| schedules::list(c)).await
    }

    async fn schedule_get(&self, name: &str) -> StoreResult<Option<ScheduleRow>> {
        let name = name.to_string();
        self.call(move |c| schedules::get(c, &name)).await
    }

    fn watch_changes(&self, notify: Arc<Notify>) -> StoreResult<()> {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        let io = |e: nix::Error| StoreError::Io {
            context: "cannot watch the database for changes".to_string(),
            source: std::io::Error::from(e),
        };
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let wal = format!(
            "{}-wal",
            self.path
                .file_name()
                .map(|f| f.to_string_lossy())
                .unwrap_or_default()
        );
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC).map_err(io)?;
        inotify
            .add_watch(&dir, AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_CREATE)
            .map_err(io)?;
        std::thread::Builder::new()
            .name("jobslot-db-watch".to_string())
            .spawn(move || {
                loop {
                    match inotify.read_events() {
                        Ok(events) => {
                            if events
                                .iter()
                                .any(|e| e.name.as_ref().is_some_and(|n| n.to_string_lossy() == wal))
                            {
                                notify.notify_one();
                            }
                        }
                        Err(nix::Error::EINTR) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "database change watch stopped; falling back to polling");
                            return;
                        }
                    }
                }
            })
            .map_err(|source| StoreError::Io {
                context: "cannot start the database watch thread".to_string(),
                source,
            })?;
        Ok(())
    }
}
