//! The library API: [`Client`] lets a Rust program enqueue tasks, read and
//! cancel them, without running a scheduler (an application process that
//! creates work for the `jobslot run` instances sharing its database).
//!
//! ```no_run
//! # async fn demo() -> Result<(), jobslot::client::ClientError> {
//! use jobslot::client::{Client, Enqueue};
//! let client = Client::open("/srv/app", None).await?;
//! let task = client
//!     .enqueue(Enqueue::new("thumbnail").args(serde_json::json!({"video": 42})))
//!     .await?;
//! let ended = client.wait(task.id).await?;
//! println!("{} {}", ended.id, ended.status);
//! # Ok(()) }
//! ```

use crate::model::{CatchUp, CronExpr, Job, Recurrence, Task, TaskStatus};
use crate::schema::SchemaSet;
use crate::store::{
    AfterLink, Attempt, CancelOutcome, NewTask, QueueStats, ScheduleRow, Store, StoreError,
    TaskListParams,
};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The largest args a task may have: 2 MiB (2,097,152 bytes) of JSON as
/// jobslot serializes it (compact). Enqueues with more are refused; children's
/// results in an `on_children_done` callback's args are cut to stay within it.
pub const MAX_ARGS_BYTES: usize = 2 * 1024 * 1024;

/// What can go wrong with a [`Client`] call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The project's `schema/` or `jobs/` cannot be read.
    #[error("{0}")]
    Schema(String),
    /// The job named has no executable in `jobs/`.
    #[error("unknown job {job:?}: no executable jobs/{job}[.ext] in {project}")]
    UnknownJob {
        /// The job asked for.
        job: String,
        /// The project directory.
        project: String,
    },
    /// A value given is not valid (a time zone, a cron expression, …).
    #[error("{0}")]
    Invalid(String),
    /// The database refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A task to enqueue: the job, then whatever differs from its defaults.
#[derive(Debug, Clone)]
pub struct Enqueue {
    job: String,
    args: Value,
    metadata: Value,
    due_at: Option<DateTime<Utc>>,
    delay: Option<Duration>,
    recurrence: Option<Recurrence>,
    catch_up: CatchUp,
    after: Option<Uuid>,
    parent: Option<Uuid>,
    queue: Option<String>,
    priority: Option<i32>,
    unique_key: Option<String>,
}

impl Enqueue {
    /// A task of `job`, due now, with args `{}` and the job's queue and priority.
    pub fn new(job: &str) -> Self {
        Enqueue {
            job: job.to_string(),
            args: Value::Object(Default::default()),
            metadata: Value::Object(Default::default()),
            due_at: None,
            delay: None,
            recurrence: None,
            catch_up: CatchUp::default(),
            after: None,
            parent: None,
            queue: None,
            priority: None,
            unique_key: None,
        }
    }

    /// Its args (given to the process on stdin, and in `JOBSLOT_ARGS` when
    /// they are small enough); at most [`MAX_ARGS_BYTES`] of JSON.
    pub fn args(mut self, args: Value) -> Self {
        self.args = args;
        self
    }

    /// Its metadata (a JSON object kept with the task).
    pub fn metadata(mut self, metadata: Value) -> Self {
        self.metadata = metadata;
        self
    }

    /// Due at this time.
    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.due_at = Some(at);
        self.delay = None;
        self
    }

    /// Due after this long.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self.due_at = None;
        self
    }

    /// Recurs every `interval` from its due time.
    pub fn every(mut self, interval: Duration) -> Self {
        self.recurrence = Some(Recurrence::Every {
            interval,
            start_at: None,
            catch_up: self.catch_up,
        });
        self
    }

    /// For a recurring task: whether a missed occurrence runs once after
    /// downtime ([`CatchUp::One`]) or is skipped (the default).
    pub fn catch_up(mut self, catch_up: CatchUp) -> Self {
        self.catch_up = catch_up;
        self
    }

    /// Recurs on a cron expression (5 fields, or 6 with seconds) in a time zone.
    pub fn cron(mut self, expr: &str, timezone: &str) -> Result<Self, ClientError> {
        let tz = timezone.parse().map_err(|_| {
            ClientError::Invalid(format!(
                "unknown time zone {timezone:?} (use an IANA name such as Europe/Paris)"
            ))
        })?;
        let cron = CronExpr::parse(expr, tz).map_err(|e| ClientError::Invalid(e.to_string()))?;
        self.recurrence = Some(Recurrence::Cron {
            expr: Box::new(cron),
            catch_up: self.catch_up,
        });
        Ok(self)
    }

    /// Runs once that task completes (canceled if it fails or is canceled).
    pub fn after(mut self, task: Uuid) -> Self {
        self.after = Some(task);
        self
    }

    /// A child of that task (which waits for its children before it ends).
    pub fn parent(mut self, task: Uuid) -> Self {
        self.parent = Some(task);
        self
    }

    /// In this queue instead of the job's.
    pub fn queue(mut self, queue: &str) -> Self {
        self.queue = Some(queue.to_string());
        self
    }

    /// With this priority instead of the job's (higher runs first).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Refused while another live task holds the same key.
    pub fn unique_key(mut self, key: &str) -> Self {
        self.unique_key = Some(key.to_string());
        self
    }
}

/// Refuses args over [`MAX_ARGS_BYTES`] of serialized JSON.
pub fn check_args_size(args: &Value) -> Result<(), ClientError> {
    let size = args.to_string().len();
    if size > MAX_ARGS_BYTES {
        return Err(ClientError::Invalid(format!(
            "args are {size} bytes of JSON, over the limit of {MAX_ARGS_BYTES} bytes (2 MiB); pass large data by reference (a path or URL) instead"
        )));
    }
    Ok(())
}

/// A schedule as operators follow it (`GET /api/schedules`).
#[derive(Debug, Clone)]
pub struct ScheduleStatus {
    /// The schedule as applied.
    pub row: ScheduleRow,
    /// Its next occurrence, still pending.
    pub next: Option<Task>,
    /// Its most recent occurrence that ended.
    pub last: Option<Task>,
}

impl ScheduleStatus {
    /// The JSON the API answers with.
    pub fn to_json(&self) -> Value {
        let time = |t: Option<DateTime<Utc>>| t.map(crate::model::fmt_time);
        serde_json::json!({
            "name": self.row.name,
            "job": self.row.job,
            "recurrence": self.row.recurrence,
            "args": self.row.args,
            "last_completed_at": time(self.row.last_completed_at),
            "next_run_at": time(self.next.as_ref().and_then(|t| t.start_at)),
            "next_task": self.next.as_ref().map(|t| t.id.to_string()),
            "last": self.last.as_ref().map(|t| serde_json::json!({
                "id": t.id.to_string(),
                "status": t.status.as_str(),
                "reason": t.reason,
                "exit_code": t.exit_code,
                "ended_at": time(t.ended_at),
            })),
        })
    }
}

/// A connection to a jobslot database for a program that creates and
/// follows tasks but runs none.
#[derive(Clone)]
pub struct Client {
    store: Arc<dyn Store>,
    jobs: Arc<BTreeMap<String, Job>>,
    project: PathBuf,
}

impl Client {
    /// The default database of a project: `sqlite://<project>/.jobslot/jobslot.db`.
    pub fn default_database(project: &Path) -> String {
        format!(
            "sqlite://{}",
            project.join(".jobslot").join("jobslot.db").display()
        )
    }

    /// Opens the project at `project` (its `schema/` and `jobs/` give each
    /// job's defaults) and the database at `database` (default: the
    /// project's SQLite file), migrated to the latest version.
    pub async fn open(
        project: impl AsRef<Path>,
        database: Option<&str>,
    ) -> Result<Client, ClientError> {
        let project = project.as_ref().to_path_buf();
        let schema =
            crate::schema::load(&project).map_err(|e| ClientError::Schema(e.to_string()))?;
        let url = database
            .map(str::to_string)
            .unwrap_or_else(|| Self::default_database(&project));
        let store = crate::store::open(&url).await?;
        Ok(Self::with_store(store, schema, project))
    }

    /// A client over a store already open, with the project's schema.
    pub fn with_store(store: Arc<dyn Store>, schema: SchemaSet, project: PathBuf) -> Client {
        Client {
            store,
            jobs: Arc::new(schema.jobs),
            project,
        }
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The task `e` describes, as [`Client::enqueue`] would insert it.
    pub fn new_task(&self, e: Enqueue) -> Result<NewTask, ClientError> {
        let Some(job) = self.jobs.get(&e.job) else {
            return Err(ClientError::UnknownJob {
                job: e.job,
                project: self.project.display().to_string(),
            });
        };
        if let Some(q) = &e.queue
            && !crate::model::is_valid_name(q)
        {
            return Err(ClientError::Invalid(format!(
                "invalid queue name {q:?}: use letters, digits, '.', '_' and '-', starting with a letter or digit"
            )));
        }
        if let Some(k) = &e.unique_key
            && (k.trim().is_empty() || k.len() > 200 || k.contains('\0'))
        {
            return Err(ClientError::Invalid(
                "a unique key must be 1 to 200 characters, not blank, without NUL".to_string(),
            ));
        }
        check_args_size(&e.args)?;
        let now = Utc::now();
        let longest = crate::model::MAX_DURATION;
        if let Some(d) = e.delay.filter(|d| *d > longest) {
            return Err(ClientError::Invalid(format!(
                "a delay of {} is longer than 3650d, the longest jobslot accepts",
                crate::model::format_duration(d)
            )));
        }
        if let Some(Recurrence::Every { interval, .. }) = &e.recurrence
            && *interval > longest
        {
            return Err(ClientError::Invalid(format!(
                "a recurrence interval of {} is longer than 3650d, the longest jobslot accepts",
                crate::model::format_duration(*interval)
            )));
        }
        let due = match (e.due_at, e.delay) {
            (Some(at), _) => at,
            (None, Some(d)) => i64::try_from(d.as_millis())
                .ok()
                .and_then(chrono::Duration::try_milliseconds)
                .and_then(|d| now.checked_add_signed(d))
                .ok_or_else(|| {
                    ClientError::Invalid(format!("a delay of {} ms is too long", d.as_millis()))
                })?,
            (None, None) => now,
        };
        let recurrence = match e.recurrence {
            Some(Recurrence::Every { interval, .. }) if interval.is_zero() => {
                return Err(ClientError::Invalid(
                    "a recurrence interval must be longer than 0".to_string(),
                ));
            }
            Some(Recurrence::Every { interval, .. }) => Some(Recurrence::Every {
                interval,
                start_at: Some(due),
                catch_up: e.catch_up,
            }),
            Some(Recurrence::Cron { expr, .. }) => Some(Recurrence::Cron {
                expr,
                catch_up: e.catch_up,
            }),
            other => other,
        };
        // A cron task with no explicit time is due at the expression's next time.
        let due = match (&recurrence, e.due_at, e.delay) {
            (Some(Recurrence::Cron { expr, .. }), None, None) => {
                expr.next_after(now).unwrap_or(now)
            }
            _ => due,
        };
        let mut metadata = match e.metadata {
            Value::Object(m) => Value::Object(m),
            Value::Null => Value::Object(Default::default()),
            other => {
                return Err(ClientError::Invalid(format!(
                    "metadata must be a JSON object, got {other}"
                )));
            }
        };
        if recurrence.is_some() {
            metadata[crate::scheduler::recurrence::LAST_COMPLETED_AT] = Value::Null;
        }
        Ok(NewTask {
            id: Uuid::now_v7(),
            job: job.name.clone(),
            queue: e.queue.unwrap_or_else(|| job.queue.clone()),
            priority: e.priority.unwrap_or(job.priority),
            slots: job.slots,
            max_execution_time: job.max_execution_time,
            kill_grace: job.kill_grace,
            schedule: None,
            recurrence: recurrence.as_ref().map(Recurrence::to_json),
            after: e.after.map(AfterLink::Task).unwrap_or(AfterLink::None),
            parent: e.parent,
            args: e.args,
            metadata,
            due_at: due,
            created_at: now,
            attempt: 1,
            unique_key: e.unique_key,
        })
    }

    /// Adds a task and returns it as stored. Fails with
    /// [`StoreError::Conflict`] when its unique key is held by a live task or
    /// its parent has ended.
    pub async fn enqueue(&self, e: Enqueue) -> Result<Task, ClientError> {
        let t = self.new_task(e)?;
        Ok(self.store.task_insert(t).await?)
    }

    /// One task by id.
    pub async fn get(&self, id: Uuid) -> Result<Option<Task>, ClientError> {
        Ok(self.store.task_get(id).await?)
    }

    /// A task's earlier attempts (those that were retried), oldest first.
    pub async fn attempts(&self, id: Uuid) -> Result<Vec<Attempt>, ClientError> {
        Ok(self.store.task_attempts(id).await?)
    }

    /// Tasks matching filters, newest first.
    pub async fn list(&self, filter: TaskListParams) -> Result<Vec<Task>, ClientError> {
        Ok(self.store.task_list(filter).await?)
    }

    /// Cancels a pending or waiting task (and its open children), or asks the
    /// instance running it to stop it.
    pub async fn cancel(&self, id: Uuid) -> Result<CancelOutcome, ClientError> {
        Ok(self.store.task_cancel(id, Utc::now()).await?)
    }

    /// Runs a failed or canceled task again, as a new task of the same job
    /// with the same args, queue and priority; returns the new task. The old
    /// one keeps its record (ended tasks are never rewritten) and the new one
    /// names it in its metadata's `retryOf`; the review flag is not carried.
    /// A child retried while its parent still waits counts as one of its
    /// children; once the parent has ended it is a task of its own. Fails
    /// with [`StoreError::NoSuchTask`], or [`StoreError::Conflict`] when the
    /// task has not failed or been canceled.
    pub async fn retry(&self, id: Uuid) -> Result<Task, ClientError> {
        let t = self
            .store
            .task_get(id)
            .await?
            .ok_or_else(|| StoreError::NoSuchTask(id.to_string()))?;
        if !matches!(t.status, TaskStatus::Failed | TaskStatus::Canceled) {
            return Err(StoreError::Conflict(format!(
                "task {} is {}: only failed or canceled tasks can be retried",
                t.id, t.status
            ))
            .into());
        }
        let now = Utc::now();
        let mut metadata = match &t.metadata {
            Value::Object(m) => m.clone(),
            _ => serde_json::Map::new(),
        };
        metadata.insert("retryOf".into(), Value::String(t.id.to_string()));
        let parent = match t.parent {
            Some(p) => self
                .store
                .task_get(p)
                .await?
                .filter(|p| !p.status.is_terminal())
                .map(|p| p.id),
            None => None,
        };
        Ok(self
            .store
            .task_insert(NewTask {
                schedule: None,
                recurrence: None,
                parent,
                metadata: Value::Object(metadata),
                ..NewTask::fresh_occurrence(&t, AfterLink::None, now)
            })
            .await?)
    }

    /// The project's jobs, by name.
    pub fn jobs(&self) -> impl Iterator<Item = &Job> {
        self.jobs.values()
    }

    /// Every applied schedule with its next occurrence (the pending one) and
    /// its last ended one.
    pub async fn schedules(&self) -> Result<Vec<ScheduleStatus>, ClientError> {
        let mut out = Vec::new();
        for row in self.store.schedule_list().await? {
            let of_schedule = |status, limit| TaskListParams {
                schedule: Some(row.name.clone()),
                status,
                limit,
                ..TaskListParams::default()
            };
            let next = self
                .store
                .task_list(of_schedule(Some(TaskStatus::Pending), 1))
                .await?
                .into_iter()
                .next();
            // Newest first: the last ended occurrence is among the first few,
            // behind at most a pending and a running one.
            let last = self
                .store
                .task_list(of_schedule(None, 8))
                .await?
                .into_iter()
                .find(|t| t.status.is_terminal());
            out.push(ScheduleStatus { row, next, last });
        }
        Ok(out)
    }

    /// Every queue with live tasks or paused.
    pub async fn queues(&self) -> Result<Vec<QueueStats>, ClientError> {
        Ok(self.store.queue_stats(Utc::now()).await?)
    }

    /// Waits until the task has ended and returns it.
    pub async fn wait(&self, id: Uuid) -> Result<Task, ClientError> {
        let notify = Arc::new(tokio::sync::Notify::new());
        // Without the change signal, the poll below still sees the end.
        let _ = self.store.watch_changes(notify.clone());
        loop {
            let t = self
                .store
                .task_get(id)
                .await?
                .ok_or_else(|| StoreError::NoSuchTask(id.to_string()))?;
            if t.status.is_terminal() {
                return Ok(t);
            }
            tokio::select! {
                _ = notify.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }
}
