//! SQLite migrations. Version numbers are shared with every backend.

use crate::model::TaskStatus;
use rusqlite::{Connection, TransactionBehavior};

/// Live states, for the partial index that allows one live occurrence per schedule.
fn live_states() -> String {
    [
        TaskStatus::Pending,
        TaskStatus::Running,
        TaskStatus::Waiting,
    ]
    .iter()
    .map(|s| format!("'{}'", s.as_str()))
    .collect::<Vec<_>>()
    .join(",")
}

/// Every migration, in order: (version, SQL).
fn migrations() -> Vec<(u32, String)> {
    vec![
        (
            1,
            format!(
                "
CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    exit_code INTEGER,
    signal INTEGER,
    attempt INTEGER NOT NULL DEFAULT 1,
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    slots INTEGER NOT NULL DEFAULT 1,
    max_execution_ms INTEGER NOT NULL,
    kill_grace_ms INTEGER NOT NULL,
    schedule TEXT,
    recurrence TEXT,
    after_schedule TEXT,
    instance_id TEXT,
    instance_name TEXT,
    host TEXT,
    pgid INTEGER,
    parent TEXT,
    after_id TEXT,
    args TEXT NOT NULL,
    metadata TEXT NOT NULL,
    result TEXT,
    created_at INTEGER NOT NULL,
    due_at INTEGER,
    started_at INTEGER,
    ended_at INTEGER,
    deadline_at INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    log TEXT
);
-- The claim walks this index in ORDER BY order, one priority at a time.
CREATE INDEX tasks_claim ON tasks (status, priority DESC, due_at, id);
CREATE INDEX tasks_due ON tasks (status, due_at);
CREATE INDEX tasks_after ON tasks (after_id, status);
CREATE INDEX tasks_after_schedule ON tasks (after_schedule, status);
CREATE INDEX tasks_parent ON tasks (parent, status);
CREATE INDEX tasks_job ON tasks (job, id);
CREATE INDEX tasks_status ON tasks (status, id);
CREATE UNIQUE INDEX tasks_schedule_live ON tasks (schedule)
    WHERE schedule IS NOT NULL AND status IN ({live});

CREATE TABLE instances (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    slots INTEGER NOT NULL,
    queues TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    stopped_at INTEGER
);

CREATE TABLE schedules (
    name TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    recurrence TEXT NOT NULL,
    args TEXT NOT NULL,
    last_completed_at INTEGER
);

CREATE TABLE jobs (
    name TEXT PRIMARY KEY,
    slots INTEGER NOT NULL,
    max_execution_ms INTEGER NOT NULL,
    kill_grace_ms INTEGER NOT NULL
);
",
                live = live_states()
            ),
        ),
        (
            2,
            format!(
                "
-- 1 while a finished task's log is a local file not yet uploaded to storage.
ALTER TABLE tasks ADD COLUMN log_local INTEGER NOT NULL DEFAULT 0;
UPDATE tasks SET log_local = 1
    WHERE status IN ({terminal}) AND log IS NOT NULL AND log NOT LIKE 's3://%';
CREATE INDEX tasks_log_local ON tasks (host, id) WHERE log_local = 1;
CREATE INDEX tasks_ended ON tasks (status, ended_at);
",
                terminal = terminal_states()
            ),
        ),
        (
            3,
            "
-- Retries: the attempts before a task's current (or last) one, and the flag
-- of tasks that failed after using their attempts on transient failures.
ALTER TABLE tasks ADD COLUMN needs_review INTEGER NOT NULL DEFAULT 0;
CREATE INDEX tasks_review ON tasks (id) WHERE needs_review = 1;
CREATE TABLE task_attempts (
    task_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    exit_code INTEGER,
    signal INTEGER,
    instance_id TEXT,
    instance_name TEXT,
    host TEXT,
    started_at INTEGER,
    ended_at INTEGER NOT NULL,
    log TEXT,
    PRIMARY KEY (task_id, attempt)
);
"
            .to_string(),
        ),
        (
            4,
            format!(
                "
-- Unique tasks: no two live tasks share a key.
ALTER TABLE tasks ADD COLUMN unique_key TEXT;
CREATE UNIQUE INDEX tasks_unique_live ON tasks (unique_key)
    WHERE unique_key IS NOT NULL AND status IN ({live});
-- Paused queues: no instance claims their tasks.
CREATE TABLE queue_pauses (
    name TEXT PRIMARY KEY,
    paused_at INTEGER NOT NULL
);
",
                live = live_states()
            ),
        ),
        (
            5,
            "
-- 1 while an earlier attempt's log is a local file not yet uploaded to
-- storage (as tasks.log_local for a task's own log). Attempt logs written
-- before this version are queued too: the next instance on their host uploads
-- them.
ALTER TABLE task_attempts ADD COLUMN log_local INTEGER NOT NULL DEFAULT 0;
UPDATE task_attempts SET log_local = 1 WHERE log IS NOT NULL AND log NOT LIKE 's3://%';
CREATE INDEX task_attempts_log_local ON task_attempts (host, task_id, attempt)
    WHERE log_local = 1;
"
            .to_string(),
        ),
        (
            6,
            "
-- Administration: each instance's heartbeat interval (so that anyone can tell
-- a stale heartbeat), and running tasks an operator asked to expire.
ALTER TABLE instances ADD COLUMN heartbeat_ms BIGINT NOT NULL DEFAULT 5000;
ALTER TABLE tasks ADD COLUMN expire_requested INTEGER NOT NULL DEFAULT 0;
"
            .to_string(),
        ),
        (
            7,
            "
-- Workers: the schema's [[workers]] entries, with a generation that grows
-- with every configuration change or restart, and whether each is stopped.
-- Their replicas are tasks holding the unique key worker:NAME:INDEX.
CREATE TABLE workers (
    name TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    replicas INTEGER NOT NULL,
    generation INTEGER NOT NULL DEFAULT 1,
    state TEXT NOT NULL DEFAULT 'active',
    state_reason TEXT,
    updated_at BIGINT NOT NULL
);
"
            .to_string(),
        ),
        (
            8,
            "
-- Each instance's clock offset from the database's at its last heartbeat.
ALTER TABLE instances ADD COLUMN clock_offset_ms BIGINT NOT NULL DEFAULT 0;
"
            .to_string(),
        ),
    ]
}

/// Terminal states, for migrations that look at finished tasks.
fn terminal_states() -> String {
    [
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::Canceled,
    ]
    .iter()
    .map(|s| format!("'{}'", s.as_str()))
    .collect::<Vec<_>>()
    .join(",")
}

/// Applies pending migrations; returns the resulting version. Safe when several
/// processes start at once (the check and the migration share one write lock).
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<u32> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )?;
    let current: u32 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    let mut version = current;
    for (v, sql) in migrations() {
        if v > current {
            tx.execute_batch(&sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                rusqlite::params![v, chrono::Utc::now().timestamp_millis()],
            )?;
            version = v;
        }
    }
    tx.commit()?;
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Migration 5 queues the attempt logs an older version left local, and
    /// only those.
    #[test]
    fn migration_5_queues_attempt_logs_left_local() {
        let mut c = Connection::open_in_memory().expect("open");
        c.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )
        .expect("versions table");
        for (v, sql) in migrations().into_iter().filter(|(v, _)| *v <= 4) {
            c.execute_batch(&sql).expect("old migration");
            c.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, 0)",
                [v],
            )
            .expect("version");
        }
        for (attempt, log) in [(1, Some("/l/1.log")), (2, Some("s3://b/2.log")), (3, None)] {
            c.execute(
                "INSERT INTO task_attempts (task_id, attempt, status, host, ended_at, log)
                 VALUES ('t', ?1, 'failed', 'h', 0, ?2)",
                rusqlite::params![attempt, log],
            )
            .expect("attempt");
        }
        let latest = migrations().last().map(|(v, _)| *v).unwrap_or(0);
        assert_eq!(migrate(&mut c).expect("migrate"), latest);
        let local: Vec<(u32, bool)> = c
            .prepare("SELECT attempt, log_local FROM task_attempts ORDER BY attempt")
            .expect("select")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(local, [(1, true), (2, false), (3, false)]);
    }
}
