//! Parameter and result types of the [`Store`](super::Store) methods.

use crate::model::TaskStatus;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::time::Duration;
use uuid::Uuid;

/// A running (or stopped) `jobslot run` process.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// Unique id.
    pub id: Uuid,
    /// Human name (`--name`, default host-pid).
    pub name: String,
    /// Host name.
    pub host: String,
    /// OS process id.
    pub pid: u32,
    /// Slot count.
    pub slots: u32,
    /// Queues served; empty means all.
    pub queues: Vec<String>,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// Last heartbeat.
    pub heartbeat_at: DateTime<Utc>,
    /// When it stopped cleanly, if it did.
    pub stopped_at: Option<DateTime<Utc>>,
    /// How often it records a heartbeat.
    pub heartbeat_interval: Duration,
    /// How far its host's clock was from the database's at its last
    /// heartbeat, in milliseconds (positive: the host runs ahead). Always 0
    /// on SQLite, whose clock is the host's.
    pub clock_offset_ms: i64,
}

impl Instance {
    /// Heartbeats missed before an instance counts as gone.
    pub const MISSED_HEARTBEATS: u32 = 3;

    /// Whether the instance is gone at `now`: stopped, or silent for longer
    /// than [`Self::MISSED_HEARTBEATS`] heartbeat intervals (at least a second).
    pub fn is_gone(&self, now: DateTime<Utc>) -> bool {
        let silence = Self::gone_after(self.heartbeat_interval);
        self.stopped_at.is_some() || crate::model::time_after(self.heartbeat_at, silence) < now
    }

    /// The silence after which an instance with heartbeat interval
    /// `interval` counts as gone.
    pub fn gone_after(interval: Duration) -> Duration {
        (interval * Self::MISSED_HEARTBEATS).max(Duration::from_secs(1))
    }

    /// The silence after which an instance fences itself (stops its worker
    /// replicas): two thirds of [`Self::gone_after`], so two intervals when
    /// the interval is at least a third of a second.
    pub fn fence_after(interval: Duration) -> Duration {
        Self::gone_after(interval) * 2 / 3
    }

    /// `stopped`, `gone` (see [`Self::is_gone`]) or `alive`, as shown by
    /// `jobslot instances` and the API.
    pub fn state(&self, now: DateTime<Utc>) -> &'static str {
        if self.stopped_at.is_some() {
            "stopped"
        } else if self.is_gone(now) {
            "gone"
        } else {
            "alive"
        }
    }
}

/// Registers an instance.
pub type InstanceRegisterParams = Instance;

/// What a new task waits for before it is due.
#[derive(Debug, Clone, PartialEq)]
pub enum AfterLink {
    /// Nothing: due at `due_at`.
    None,
    /// Due when that task completes; canceled if it fails or is canceled.
    Task(Uuid),
    /// An occurrence of an `after` schedule: waits for the live occurrence of
    /// the named schedule (or, if there is none yet, for its next one).
    Schedule(String),
}

/// A task to insert.
#[derive(Debug, Clone)]
pub struct NewTask {
    /// UUIDv7.
    pub id: Uuid,
    /// Job name.
    pub job: String,
    /// Queue.
    pub queue: String,
    /// Priority (higher first).
    pub priority: i32,
    /// Slots needed.
    pub slots: u32,
    /// Maximum execution time.
    pub max_execution_time: Duration,
    /// Grace between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// Schedule name, for schedule occurrences.
    pub schedule: Option<String>,
    /// Recurrence (stored form), for recurring tasks.
    pub recurrence: Option<Value>,
    /// What it waits for.
    pub after: AfterLink,
    /// Parent task.
    pub parent: Option<Uuid>,
    /// Args.
    pub args: Value,
    /// Metadata.
    pub metadata: Value,
    /// Due time (ignored while an `after` link holds it back).
    pub due_at: DateTime<Utc>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Attempt number (1 for a new task).
    pub attempt: u32,
    /// Refused while another live task has the same key.
    pub unique_key: Option<String>,
}

impl NewTask {
    /// A new occurrence like `t` (same job, settings, schedule, args and
    /// metadata), waiting on `after`: what replaces an `after`-schedule
    /// occurrence canceled because its predecessor failed.
    pub fn fresh_occurrence(
        t: &crate::model::Task,
        after: AfterLink,
        now: DateTime<Utc>,
    ) -> NewTask {
        NewTask {
            id: Uuid::now_v7(),
            job: t.job.clone(),
            queue: t.queue.clone(),
            priority: t.priority,
            slots: t.slots,
            max_execution_time: t.max_execution_time,
            kill_grace: t.kill_grace,
            schedule: t.schedule.clone(),
            recurrence: t.recurrence.clone(),
            after,
            parent: None,
            args: t.args.clone(),
            metadata: t.metadata.clone(),
            due_at: now,
            created_at: now,
            attempt: 1,
            unique_key: t.unique_key.clone(),
        }
    }
}

/// Filters for listing tasks.
#[derive(Debug, Clone, Default)]
pub struct TaskListParams {
    /// Only this status.
    pub status: Option<TaskStatus>,
    /// Only this job.
    pub job: Option<String>,
    /// Only this queue.
    pub queue: Option<String>,
    /// Only occurrences of this schedule.
    pub schedule: Option<String>,
    /// Only tasks flagged for review.
    pub needs_review: bool,
    /// Only children of this task.
    pub parent: Option<Uuid>,
    /// Only tasks run (or being run) by the instance of this name.
    pub instance: Option<String>,
    /// Only tasks live at or after this time: not ended, or ended since.
    pub since: Option<DateTime<Utc>>,
    /// Only tasks created before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only tasks listed after this one (ids below it): the next page.
    pub before: Option<Uuid>,
    /// At most this many.
    pub limit: usize,
}

/// Claims due tasks.
#[derive(Debug, Clone)]
pub struct TaskClaimParams {
    /// The claiming instance.
    pub instance_id: Uuid,
    /// Its name.
    pub instance_name: String,
    /// Its host.
    pub host: String,
    /// Queues it serves; empty means all.
    pub queues: Vec<String>,
    /// Slots free now.
    pub free_slots: u32,
    /// At most this many tasks.
    pub limit: usize,
    /// The current time.
    pub now: DateTime<Utc>,
    /// The anti-starvation rule: a task due for longer than this is taken
    /// first, whatever its priority (one such task per claim, the one due
    /// longest). `None` turns the rule off (strict priority order).
    pub starvation_after: Option<Duration>,
    /// Where the claiming instance writes task logs, ending in `/`: the claim
    /// records each task's log location (`<prefix><log file name>`), so the
    /// log of a task whose instance dies at any moment after the claim is
    /// found. `None` leaves the location unrecorded until the spawn record.
    pub log_prefix: Option<String>,
}

impl TaskClaimParams {
    /// `t`, claimed by these params, as the claim leaves it: running on this
    /// instance since `now`, with its deadline.
    pub fn mark_running(&self, t: &mut crate::model::Task) {
        t.status = TaskStatus::Running;
        t.instance_id = Some(self.instance_id);
        t.instance = Some(self.instance_name.clone());
        t.host = Some(self.host.clone());
        t.started_at = Some(self.now);
        t.deadline_at = Some(crate::model::time_after(self.now, t.max_execution_time));
        t.pgid = None;
        t.log = self.log_path(t.id, t.attempt);
    }

    /// The log location the claim records for attempt `attempt` of task `id`.
    pub fn log_path(&self, id: Uuid, attempt: u32) -> Option<String> {
        self.log_prefix
            .as_ref()
            .map(|p| format!("{p}{}", crate::model::log_file_name(id, attempt)))
    }
}

/// A task's process has started.
#[derive(Debug, Clone)]
pub struct TaskSpawnedParams {
    /// The task.
    pub id: Uuid,
    /// Its process group.
    pub pgid: i32,
    /// Its log file.
    pub log: String,
}

/// Moves a claimed task back to pending, same attempt: a missed occurrence,
/// a task that never got its process (a shortage, a lost claim). Clears its
/// instance, times, process group and log location.
#[derive(Debug, Clone)]
pub struct TaskRescheduleParams {
    /// The task.
    pub id: Uuid,
    /// The instance that claimed it.
    pub instance_id: Uuid,
    /// Its new due time.
    pub due_at: DateTime<Utc>,
}

/// Ends a task, compare-and-set on `expect`.
#[derive(Debug, Clone)]
pub struct TaskFinishParams {
    /// The task.
    pub id: Uuid,
    /// The state the writer saw; the write applies only if it still holds.
    pub expect: TaskStatus,
    /// For `expect == Running`: the instance that must still hold it.
    pub expect_instance: Option<Uuid>,
    /// Terminal status.
    pub status: TaskStatus,
    /// Reason.
    pub reason: Option<String>,
    /// Exit code.
    pub exit_code: Option<i32>,
    /// Signal.
    pub signal: Option<i32>,
    /// End time.
    pub ended_at: DateTime<Utc>,
    /// Result JSON.
    pub result: Option<Value>,
    /// Log location.
    pub log: Option<String>,
    /// The next occurrence, inserted in the same transaction if the end applies
    /// (and, for schedule occurrences, only while the schedule still exists).
    pub next: Option<NewTask>,
    /// A transient failure with attempts left: instead of ending, the task
    /// goes back to pending, due at this time, with its attempt number one
    /// higher; the attempt that ended (status, reason, codes, instance, times,
    /// log) is kept in its attempt records. `next` is then ignored.
    pub retry_at: Option<DateTime<Utc>>,
    /// The task failed for good after using its attempts on transient
    /// failures: flag it for review.
    pub needs_review: bool,
    /// A task inserted in the same transaction if the end applies: the
    /// `on_children_done` callback of a parent whose children are done.
    pub callback: Option<NewTask>,
}

/// One past attempt of a task (the current or last one is the task itself).
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub attempt: u32,
    /// How it ended (failed, for an attempt that was retried).
    pub status: TaskStatus,
    /// Why.
    pub reason: Option<String>,
    /// Its process's exit code.
    pub exit_code: Option<i32>,
    /// The signal that ended its process.
    pub signal: Option<i32>,
    /// Id of the instance that ran it.
    pub instance_id: Option<Uuid>,
    /// Name of the instance that ran it.
    pub instance: Option<String>,
    /// When its process started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub ended_at: DateTime<Utc>,
    /// Where its log is.
    pub log: Option<String>,
}

impl Attempt {
    /// The attempt as printed by `show --json` (times RFC 3339 UTC).
    pub fn to_json(&self) -> Value {
        let time = |t: Option<DateTime<Utc>>| t.map(crate::model::fmt_time);
        serde_json::json!({
            "attempt": self.attempt,
            "status": self.status.as_str(),
            "reason": self.reason,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "instance": self.instance,
            "instance_id": self.instance_id.map(|i| i.to_string()),
            "started_at": time(self.started_at),
            "ended_at": crate::model::fmt_time(self.ended_at),
            "log": self.log,
        })
    }
}

/// What `task_cancel` did.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// A pending task is now canceled.
    Canceled,
    /// A running task's instance was asked to stop it.
    StopRequested,
    /// The task had already ended.
    AlreadyEnded(TaskStatus),
    /// No such task.
    NotFound,
}

/// A queue as `jobslot queues` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueStats {
    /// Its name.
    pub name: String,
    /// Pending tasks (the depth).
    pub pending: u64,
    /// Pending tasks already due.
    pub due: u64,
    /// Running tasks.
    pub running: u64,
    /// Tasks waiting for their children.
    pub waiting: u64,
    /// When it was paused, if it is.
    pub paused_at: Option<DateTime<Utc>>,
}

/// A queue's state as shown everywhere: `paused` while paused, else `active`.
pub fn queue_state(paused_at: Option<DateTime<Utc>>) -> &'static str {
    if paused_at.is_some() {
        "paused"
    } else {
        "active"
    }
}

impl QueueStats {
    /// An idle, active queue.
    pub fn new(name: &str) -> Self {
        QueueStats {
            name: name.to_string(),
            pending: 0,
            due: 0,
            running: 0,
            waiting: 0,
            paused_at: None,
        }
    }

    /// `paused` or `active`.
    pub fn state(&self) -> &'static str {
        queue_state(self.paused_at)
    }

    /// The queue as printed by `jobslot queues --json`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "queue": self.name,
            "state": self.state(),
            "paused": self.paused_at.is_some(),
            "paused_at": self.paused_at.map(crate::model::fmt_time),
            "depth": self.pending,
            "pending": self.pending,
            "due": self.due,
            "running": self.running,
            "waiting": self.waiting,
        })
    }
}

/// Lists orphaned tasks.
#[derive(Debug, Clone)]
pub struct OrphanParams {
    /// The instance looking (its own tasks are never orphans to it).
    pub me: Uuid,
    /// Current time.
    pub now: DateTime<Utc>,
    /// Time after the deadline before a task counts as orphaned.
    pub grace: Duration,
}

/// A schedule as applied, with its occurrence's first due time computed.
#[derive(Debug, Clone)]
pub struct ScheduleSpec {
    /// Name.
    pub name: String,
    /// Job.
    pub job: String,
    /// Recurrence (stored form).
    pub recurrence: Value,
    /// Args.
    pub args: Value,
    /// A new occurrence for when the schedule has none (or its definition
    /// changed and the occurrence is still pending).
    pub first: NewTask,
}

/// Job settings that pending tasks follow when a job changes.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// Job name.
    pub name: String,
    /// Slots.
    pub slots: u32,
    /// Maximum execution time.
    pub max_execution_time: Duration,
    /// Kill grace.
    pub kill_grace: Duration,
}

/// Applies the schema.
#[derive(Debug, Clone)]
pub struct ScheduleApplyParams {
    /// Every schedule in the schema.
    pub schedules: Vec<ScheduleSpec>,
    /// Every job's settings.
    pub jobs: Vec<JobSettings>,
    /// The current time.
    pub now: DateTime<Utc>,
}

/// What applying the schema changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplyReport {
    /// Schedules that got a new occurrence.
    pub created: Vec<String>,
    /// Schedules whose pending occurrence moved.
    pub updated: Vec<String>,
    /// Schedules removed (their pending occurrence canceled).
    pub removed: Vec<String>,
    /// Schedules left as they were.
    pub unchanged: Vec<String>,
}

/// An applied schedule as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRow {
    /// Name.
    pub name: String,
    /// Job.
    pub job: String,
    /// Recurrence (stored form).
    pub recurrence: Value,
    /// Args.
    pub args: Value,
    /// End time of the last completed occurrence.
    pub last_completed_at: Option<DateTime<Utc>>,
}

/// Finished tasks to prune.
#[derive(Debug, Clone)]
pub struct TaskPruneParams {
    /// Only tasks that ended before this time.
    pub ended_before: DateTime<Utc>,
    /// Only these terminal states (empty: all three).
    pub statuses: Vec<TaskStatus>,
    /// At most this many.
    pub limit: usize,
}

/// A finished task's log that is still a local file.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalLog {
    /// The task.
    pub id: Uuid,
    /// The instance that ran it.
    pub instance: Option<Uuid>,
    /// Its log file.
    pub path: String,
}

/// An earlier attempt's log (of a task that was retried) that is still a
/// local file.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalAttemptLog {
    /// The task.
    pub id: Uuid,
    /// The attempt (1 for the first).
    pub attempt: u32,
    /// The instance that ran the attempt.
    pub instance: Option<Uuid>,
    /// Its log file.
    pub path: String,
}

/// A finished task that may be pruned, with its log location.
#[derive(Debug, Clone, PartialEq)]
pub struct PrunableTask {
    /// The task.
    pub id: Uuid,
    /// Where its log is, if anywhere.
    pub log: Option<String>,
}

/// What `task_table_maintain` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableMaintenance {
    /// Nothing to do (SQLite never needs it: it rewrites rows in place).
    NotNeeded,
    /// Another instance is doing it.
    Busy,
    /// The tasks table was vacuumed.
    Vacuumed,
}
