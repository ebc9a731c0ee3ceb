//! PostgreSQL migrations. Version numbers, tables, columns and indexes are the
//! SQLite backend's, translated: ids are UUID (ordered like their canonical
//! lower-case text), times BIGINT milliseconds, JSON TEXT, flags BOOLEAN.
//!
//! [`migrate`] creates the schema the search path names if it is missing and
//! applies what is pending, all under a transaction-scoped advisory lock keyed
//! by that schema, so instances starting at once migrate one after the other.

use super::conn::{lock_key, quote_ident};
use super::rows::{Param, scalar};
use crate::model::TaskStatus;
use crate::store::StoreResult;
use deadpool_postgres::Transaction;

/// `states` as a list of SQL string literals (for partial indexes).
fn literals(states: &[TaskStatus]) -> String {
    states
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
    id UUID PRIMARY KEY,
    job TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    exit_code INTEGER,
    signal INTEGER,
    attempt BIGINT NOT NULL DEFAULT 1,
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    slots BIGINT NOT NULL DEFAULT 1,
    max_execution_ms BIGINT NOT NULL,
    kill_grace_ms BIGINT NOT NULL,
    schedule TEXT,
    recurrence TEXT,
    after_schedule TEXT,
    instance_id UUID,
    instance_name TEXT,
    host TEXT,
    pgid INTEGER,
    parent UUID,
    after_id UUID,
    args TEXT NOT NULL,
    metadata TEXT NOT NULL,
    result TEXT,
    created_at BIGINT NOT NULL,
    due_at BIGINT,
    started_at BIGINT,
    ended_at BIGINT,
    deadline_at BIGINT,
    cancel_requested BOOLEAN NOT NULL DEFAULT false,
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
    id UUID PRIMARY KEY,
    name TEXT NOT NULL,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    slots BIGINT NOT NULL,
    queues TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    stopped_at BIGINT
);

-- Names sort byte-wise, as in SQLite, whatever the database's collation.
CREATE TABLE schedules (
    name TEXT COLLATE \"C\" PRIMARY KEY,
    job TEXT NOT NULL,
    recurrence TEXT NOT NULL,
    args TEXT NOT NULL,
    last_completed_at BIGINT
);

CREATE TABLE jobs (
    name TEXT COLLATE \"C\" PRIMARY KEY,
    slots BIGINT NOT NULL,
    max_execution_ms BIGINT NOT NULL,
    kill_grace_ms BIGINT NOT NULL
);
",
                live = literals(&[
                    TaskStatus::Pending,
                    TaskStatus::Running,
                    TaskStatus::Waiting
                ])
            ),
        ),
        (
            2,
            format!(
                "
-- True while a finished task's log is a local file not yet uploaded to storage.
ALTER TABLE tasks ADD COLUMN log_local BOOLEAN NOT NULL DEFAULT false;
-- ILIKE: SQLite's LIKE ignores ASCII case.
UPDATE tasks SET log_local = true
    WHERE status IN ({terminal}) AND log IS NOT NULL AND log NOT ILIKE 's3://%';
CREATE INDEX tasks_log_local ON tasks (host, id) WHERE log_local;
CREATE INDEX tasks_ended ON tasks (status, ended_at);
",
                terminal = literals(&[
                    TaskStatus::Completed,
                    TaskStatus::Failed,
                    TaskStatus::Canceled
                ])
            ),
        ),
        (
            3,
            "
-- Retries: the attempts before a task's current (or last) one, and the flag
-- of tasks that failed after using their attempts on transient failures.
ALTER TABLE tasks ADD COLUMN needs_review BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX tasks_review ON tasks (id) WHERE needs_review;
CREATE TABLE task_attempts (
    task_id UUID NOT NULL,
    attempt BIGINT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    exit_code INTEGER,
    signal INTEGER,
    instance_id UUID,
    instance_name TEXT,
    host TEXT,
    started_at BIGINT,
    ended_at BIGINT NOT NULL,
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
    name TEXT COLLATE \"C\" PRIMARY KEY,
    paused_at BIGINT NOT NULL
);
",
                live = literals(&[
                    TaskStatus::Pending,
                    TaskStatus::Running,
                    TaskStatus::Waiting
                ])
            ),
        ),
        (
            5,
            "
-- True while an earlier attempt's log is a local file not yet uploaded to
-- storage (as tasks.log_local for a task's own log). Attempt logs written
-- before this version are queued too: the next instance on their host uploads
-- them.
ALTER TABLE task_attempts ADD COLUMN log_local BOOLEAN NOT NULL DEFAULT false;
UPDATE task_attempts SET log_local = true WHERE log IS NOT NULL AND log NOT ILIKE 's3://%';
CREATE INDEX task_attempts_log_local ON task_attempts (host, task_id, attempt)
    WHERE log_local;
"
            .to_string(),
        ),
        (
            6,
            "
-- Administration: each instance's heartbeat interval (so that anyone can tell
-- a stale heartbeat), and running tasks an operator asked to expire.
ALTER TABLE instances ADD COLUMN heartbeat_ms BIGINT NOT NULL DEFAULT 5000;
ALTER TABLE tasks ADD COLUMN expire_requested BOOLEAN NOT NULL DEFAULT false;
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
    replicas BIGINT NOT NULL,
    generation BIGINT NOT NULL DEFAULT 1,
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

/// Creates `schema` if needed and applies pending migrations inside `tx`
/// (which the caller commits); returns the resulting version.
pub async fn migrate(tx: &Transaction<'_>, schema: &str) -> StoreResult<u32> {
    let key = lock_key("migrate", schema);
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&key])
        .await?;
    // No "already exists, skipping" notices in every instance's log.
    tx.batch_execute("SET LOCAL client_min_messages = warning")
        .await?;
    let exists: bool = scalar(
        tx,
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
        &[&schema as Param],
    )
    .await?;
    if !exists {
        create_schema(tx, schema).await?;
    }
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .await?;
    let current: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await?
        .try_get(0)?;
    let current = u32::try_from(current).unwrap_or(0);
    let mut version = current;
    for (v, sql) in migrations() {
        if v > current {
            tx.batch_execute(&sql).await?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                &[&(v as i32), &chrono::Utc::now().timestamp_millis()],
            )
            .await?;
            version = v;
        }
    }
    Ok(version)
}

/// `CREATE SCHEMA IF NOT EXISTS`, which is not atomic: a schema created at
/// the same moment by anything that does not take jobslot's lock (a
/// deployment script, another tool) makes it fail with a unique violation
/// on the catalog. That schema exists, which is all that is needed, so the
/// error is undone (a savepoint) and migration goes on.
async fn create_schema(tx: &Transaction<'_>, schema: &str) -> StoreResult<()> {
    use tokio_postgres::error::SqlState;
    tx.batch_execute("SAVEPOINT jobslot_create_schema").await?;
    let created = tx
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            quote_ident(schema)
        ))
        .await;
    match created {
        Ok(()) => {
            tx.batch_execute("RELEASE SAVEPOINT jobslot_create_schema")
                .await?
        }
        Err(e)
            if e.code() == Some(&SqlState::UNIQUE_VIOLATION)
                || e.code() == Some(&SqlState::DUPLICATE_SCHEMA) =>
        {
            tracing::debug!(schema, "schema created meanwhile by another process");
            tx.batch_execute("ROLLBACK TO SAVEPOINT jobslot_create_schema")
                .await?;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::postgres::test_support::TestSchema;

    /// Migration 5 queues the attempt logs an older version left local, and
    /// only those (as SQLite's migration 5 does).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn migration_5_queues_attempt_logs_left_local() {
        let Some(schema) = TestSchema::fresh().await else {
            return;
        };
        let client = schema.connect().await;
        client
            .batch_execute(&format!(
                "CREATE SCHEMA {0}; CREATE TABLE {0}.schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL);",
                quote_ident(&schema.name)
            ))
            .await
            .expect("schema");
        for (v, sql) in migrations().into_iter().filter(|(v, _)| *v <= 4) {
            client.batch_execute(&sql).await.expect("old migration");
            client
                .execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, 0)",
                    &[&(v as i32)],
                )
                .await
                .expect("version");
        }
        let task = uuid::Uuid::now_v7();
        for (attempt, log) in [
            (1i64, Some("/l/1.log")),
            (2, Some("S3://b/2.log")),
            (3, None),
        ] {
            client
                .execute(
                    "INSERT INTO task_attempts (task_id, attempt, status, host, ended_at, log)
                     VALUES ($1, $2, 'failed', 'h', 0, $3)",
                    &[&task, &attempt, &log],
                )
                .await
                .expect("attempt");
        }
        // Opening the store migrates it.
        let store = crate::store::postgres::PostgresStore::open(&schema.url)
            .await
            .expect("open");
        let latest = super::migrations().last().map(|(v, _)| *v).unwrap_or(0);
        assert_eq!(
            crate::store::Store::migrate(&store).await.expect("migrate"),
            latest
        );
        let local: Vec<(i64, bool)> = client
            .query(
                "SELECT attempt, log_local FROM task_attempts ORDER BY attempt",
                &[],
            )
            .await
            .expect("rows")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert_eq!(local, [(1, true), (2, false), (3, false)]);
    }
}
