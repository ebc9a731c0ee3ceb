//! The store: tasks, instances and schedules, behind one [`Store`] trait.
//!
//! The database is the only meeting point between instances. Every backend
//! implements the same entity-then-verb methods taking `*Params` structs, and the
//! same conformance suite ([`conformance`]) runs against each. Backends hold no job
//! logic: the scheduler computes next occurrences and outcomes, and the backend
//! writes them atomically (a task's end and its next occurrence in one
//! transaction; terminal states only over the state the writer saw).

pub mod conformance;
mod params;
pub mod postgres;
pub mod sqlite;
mod stats;
mod timeline;
mod workers;

pub use params::*;
pub use stats::*;
pub use timeline::*;
pub use workers::*;

use crate::model::{Task, TaskStatus};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use uuid::Uuid;

/// A store failure. Busy/locked databases are retried inside the backend and
/// never surface as failed tasks.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database rejected an operation.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A row holds a value this version cannot read.
    #[error("corrupt row in table {table}, id {id}: {why}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The row's id.
        id: String,
        /// What is wrong.
        why: String,
    },
    /// The database URL cannot be used.
    #[error("cannot use database {url}: {why}")]
    Url {
        /// The URL given.
        url: String,
        /// Why it cannot be used.
        why: String,
    },
    /// An id given does not exist.
    #[error("no task {0}")]
    NoSuchTask(String),
    /// A filesystem error around the database.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A background database thread went away.
    #[error("database worker stopped: {0}")]
    Worker(String),
    /// The write contradicts what is stored (a unique key in use, a parent
    /// that has ended); the message says what.
    #[error("{0}")]
    Conflict(String),
    /// PostgreSQL rejected an operation or could not be reached. Serialization
    /// failures and deadlocks are retried inside the backend first.
    #[error("database error: {message}")]
    Postgres {
        /// The SQLSTATE code; `08006` (connection failure) when the connection
        /// was lost without one.
        code: Option<String>,
        /// What went wrong; never contains a password.
        message: String,
    },
}

impl StoreError {
    /// The error for a second live task with a unique key in use.
    pub fn unique_key_taken(key: &str, holder: &str) -> StoreError {
        StoreError::Conflict(format!(
            "unique key {key:?} is held by live task {holder}; it is free again once that task ends"
        ))
    }
}

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// The storage operations jobslot needs. Every method is one transaction.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Brings the schema to the latest migration version.
    async fn migrate(&self) -> StoreResult<u32>;

    /// Records a starting instance.
    async fn instance_register(&self, p: InstanceRegisterParams) -> StoreResult<()>;
    /// Refreshes an instance's heartbeat, with its clock's offset from the
    /// database's (milliseconds, positive when the host runs ahead).
    async fn instance_heartbeat(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        clock_offset_ms: i64,
    ) -> StoreResult<()>;
    /// The database's clock. Every instance sharing the database dates
    /// claims, deadlines and heartbeats by it (see `scheduler::clock`), so a
    /// host whose clock is off cannot fail another's live task early.
    /// SQLite's is the host's own.
    async fn db_now(&self) -> StoreResult<DateTime<Utc>> {
        Ok(Utc::now())
    }
    /// Whether the database's clock is this host's (an embedded database).
    fn clock_is_local(&self) -> bool {
        true
    }
    /// Marks an instance as stopped.
    async fn instance_stop(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<()>;
    /// Every instance, newest first.
    async fn instance_list(&self) -> StoreResult<Vec<Instance>>;

    /// Adds a task (resolving its `after` link) and returns it as stored.
    async fn task_insert(&self, p: NewTask) -> StoreResult<Task>;
    /// One task by id.
    async fn task_get(&self, id: Uuid) -> StoreResult<Option<Task>>;
    /// A task's past attempts (those that were retried), oldest first.
    async fn task_attempts(&self, id: Uuid) -> StoreResult<Vec<Attempt>>;
    /// Tasks whose id starts with `prefix` (at most `limit`).
    async fn task_find_prefix(&self, prefix: &str, limit: usize) -> StoreResult<Vec<Task>>;
    /// Tasks matching filters, newest first.
    async fn task_list(&self, p: TaskListParams) -> StoreResult<Vec<Task>>;
    /// Claims due tasks for an instance, exactly once across instances.
    async fn task_claim(&self, p: TaskClaimParams) -> StoreResult<Vec<Task>>;
    /// Records the process of tasks just spawned (process group, log path).
    async fn task_mark_spawned(&self, p: Vec<TaskSpawnedParams>) -> StoreResult<()>;
    /// Running tasks held by an instance, as the database says (for the
    /// instance to compare with the tasks it really runs).
    async fn task_held(&self, instance: Uuid) -> StoreResult<Vec<Task>>;
    /// Moves a claimed task back to pending at a new due time, same attempt
    /// (a missed occurrence; a task that never got its process). Applies only
    /// while the task is running on that instance.
    async fn task_reschedule(&self, p: TaskRescheduleParams) -> StoreResult<bool>;
    /// Ends tasks: each only if still in its expected state. Returns, per task,
    /// the status written, or `None` when it did not apply. A task asked to
    /// complete (from running) while it has children becomes `Waiting`
    /// instead; a retried one `Pending`.
    async fn task_finish_many(
        &self,
        p: Vec<TaskFinishParams>,
    ) -> StoreResult<Vec<Option<TaskStatus>>>;
    /// Cancels a pending task, or asks its instance to stop a running one.
    async fn task_cancel(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<CancelOutcome>;
    /// Asks the instance running a task to stop it and fail it as expired
    /// (`jobslot admin expire-stuck`); false if it is not running.
    async fn task_request_expire(&self, id: Uuid) -> StoreResult<bool>;
    /// Running tasks of an instance that an operator asked to expire.
    async fn task_expire_requests(&self, instance: Uuid) -> StoreResult<Vec<Uuid>>;
    /// Running tasks of an instance that a user asked to cancel.
    async fn task_cancel_requests(&self, instance: Uuid) -> StoreResult<Vec<Uuid>>;
    /// Running tasks not held by `me` whose orphan deadline has passed.
    async fn task_list_orphans(&self, p: OrphanParams) -> StoreResult<Vec<Task>>;
    /// Earliest due time of a pending task due after `now`.
    async fn task_next_due(&self, now: DateTime<Utc>) -> StoreResult<Option<DateTime<Utc>>>;
    /// Earliest deadline of a running task held by another instance.
    async fn task_next_foreign_deadline(&self, me: Uuid) -> StoreResult<Option<DateTime<Utc>>>;

    /// Finished tasks run on `host` whose log is still a local file (oldest first).
    async fn task_logs_local(&self, host: &str, limit: usize) -> StoreResult<Vec<LocalLog>>;
    /// Records that a task's local log now lives at `url`; false if it was
    /// already recorded (by another uploader).
    async fn task_log_uploaded(&self, id: Uuid, url: &str) -> StoreResult<bool>;
    /// Earlier attempts (of retried tasks) run on `host` whose log is still a
    /// local file, oldest first (by task, then attempt).
    async fn task_attempt_logs_local(
        &self,
        host: &str,
        limit: usize,
    ) -> StoreResult<Vec<LocalAttemptLog>>;
    /// Records that an earlier attempt's local log now lives at `url`; false
    /// if it was already recorded (by another uploader) or there is no such
    /// attempt.
    async fn task_attempt_log_uploaded(
        &self,
        id: Uuid,
        attempt: u32,
        url: &str,
    ) -> StoreResult<bool>;
    /// Finished tasks that ended before a time, oldest first.
    async fn task_list_prunable(&self, p: TaskPruneParams) -> StoreResult<Vec<PrunableTask>>;
    /// Deletes finished tasks; returns how many rows went.
    async fn task_delete_finished(&self, ids: Vec<Uuid>) -> StoreResult<usize>;

    /// Keeps the tasks table fast under churn; cheap when there is nothing to
    /// do, and safe to call from every instance at once. (PostgreSQL vacuums
    /// it once enough dead row versions piled up, since every claim and end
    /// leaves one behind; SQLite needs nothing.)
    async fn task_table_maintain(&self) -> StoreResult<TableMaintenance>;

    /// Pauses a queue on every instance; false if it already was.
    async fn queue_pause(&self, name: &str, now: DateTime<Utc>) -> StoreResult<bool>;
    /// Resumes a paused queue; false if it was not paused.
    async fn queue_resume(&self, name: &str) -> StoreResult<bool>;
    /// Every queue with live tasks or paused, by name.
    async fn queue_stats(&self, now: DateTime<Utc>) -> StoreResult<Vec<QueueStats>>;
    /// Every figure of `jobslot stats` and `/metrics` at `now`, read in one
    /// snapshot with aggregate queries.
    async fn stats_snapshot(&self, now: DateTime<Utc>) -> StoreResult<StatsSnapshot>;

    /// Tasks ended and pending minute by minute over a recent window, from
    /// two grouped scans of `tasks`.
    async fn task_timeline(&self, p: TimelineParams) -> StoreResult<Timeline>;

    /// Applies schedules and job settings atomically and idempotently.
    async fn schedule_apply(&self, p: ScheduleApplyParams) -> StoreResult<ApplyReport>;
    /// Every applied schedule.
    async fn schedule_list(&self) -> StoreResult<Vec<ScheduleRow>>;
    /// One applied schedule.
    async fn schedule_get(&self, name: &str) -> StoreResult<Option<ScheduleRow>>;

    /// Stores the schema's workers (adding, changing and deleting rows, in
    /// one transaction): a worker whose configuration changed gets a new
    /// generation; a stopped worker stays stopped.
    async fn worker_apply(
        &self,
        specs: Vec<WorkerSpec>,
        now: DateTime<Utc>,
    ) -> StoreResult<WorkerApplyReport>;
    /// Every worker, by name.
    async fn worker_list(&self) -> StoreResult<Vec<WorkerRow>>;
    /// One worker.
    async fn worker_get(&self, name: &str) -> StoreResult<Option<WorkerRow>>;
    /// Stops, starts or restarts a worker; `None` if there is no such worker.
    async fn worker_control(
        &self,
        name: &str,
        control: WorkerControl,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<WorkerRow>>;
    /// Live (pending, running or waiting) replicas of one worker, or of
    /// every worker, by unique key.
    async fn worker_replicas(&self, name: Option<String>) -> StoreResult<Vec<Task>>;
    /// One step of a rolling restart: asks the instance running replica
    /// `task` to stop it, only if every one of the worker's `replicas`
    /// replicas is running and none is already being stopped (so at least
    /// `replicas - 1` keep running). False when that does not hold.
    async fn worker_roll(&self, name: &str, task: Uuid, replicas: u32) -> StoreResult<bool>;

    /// Starts watching for commits by other processes; each one (coalesced)
    /// calls `notify.notify_one()`. The scheduler still polls as a fallback.
    fn watch_changes(&self, notify: Arc<tokio::sync::Notify>) -> StoreResult<()>;
}

/// Opens the store a database URL names (`sqlite://PATH`, or `postgres://…` /
/// `postgresql://…`), migrated to the latest version.
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        // Off the runtime: opening may wait for other processes' locks.
        let path = std::path::PathBuf::from(path);
        let store = tokio::task::spawn_blocking(move || sqlite::SqliteStore::open(&path))
            .await
            .map_err(|e| StoreError::Worker(e.to_string()))??;
        store.migrate().await?;
        return Ok(Arc::new(store));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(postgres::PostgresStore::open(url).await?));
    }
    Err(StoreError::Url {
        url: postgres::redact_url(url),
        why: "the URL must start with sqlite://, postgres:// or postgresql://".to_string(),
    })
}
