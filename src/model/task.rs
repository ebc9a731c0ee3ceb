//! A task: one execution of a job, as stored and as printed.

use super::status::TaskStatus;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

/// One execution of a job. Field names follow DESIGN's `--json` contract.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// UUIDv7, time-sortable.
    pub id: Uuid,
    /// The job's name.
    pub job: String,
    /// Lifecycle state.
    pub status: TaskStatus,
    /// Why it ended, for failed and canceled tasks.
    pub reason: Option<String>,
    /// The process's exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended the process, when one did.
    pub signal: Option<i32>,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Queue it waits in.
    pub queue: String,
    /// Higher runs first.
    pub priority: i32,
    /// Slots it needs.
    pub slots: u32,
    /// Time it may run before it is stopped.
    pub max_execution_time: Duration,
    /// Time between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// The schedule it is an occurrence of.
    pub schedule: Option<String>,
    /// Its recurrence (stored form), for recurring tasks.
    pub recurrence: Option<Value>,
    /// Id of the instance that claimed it.
    pub instance_id: Option<Uuid>,
    /// Name of the instance that claimed it.
    pub instance: Option<String>,
    /// Parent task.
    pub parent: Option<Uuid>,
    /// The task it runs after.
    pub after: Option<Uuid>,
    /// Arguments, given on stdin and in `JOBSLOT_ARGS`.
    pub args: Value,
    /// Metadata (`lastCompletedAt` for recurring tasks).
    pub metadata: Value,
    /// JSON the task wrote to `JOBSLOT_RESULT_FILE`.
    pub result: Option<Value>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it is due; `None` while it waits for the task it runs after.
    pub start_at: Option<DateTime<Utc>>,
    /// When its process started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// When its process will be (or was to be) stopped.
    pub deadline_at: Option<DateTime<Utc>>,
    /// Where its log is: a local path or an `s3://` URL.
    pub log: Option<String>,
    /// Host name of the instance running it.
    pub host: Option<String>,
    /// Process group id of its process while it runs.
    pub pgid: Option<i32>,
    /// It failed after using every attempt on transient failures: someone
    /// should look at it (`jobslot tasks --needs-review`).
    pub needs_review: bool,
    /// While the task is live (pending, running or waiting), no other live
    /// task may have the same key.
    pub unique_key: Option<String>,
}

/// RFC 3339 UTC with milliseconds, as every time is printed.
pub fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The file name of a task's log for one attempt: `<id>.log` for the first
/// (DESIGN's layout), `<id>.attempt-<n>.log` for later ones, so that every
/// attempt keeps its own log.
pub fn log_file_name(id: Uuid, attempt: u32) -> String {
    if attempt <= 1 {
        format!("{id}.log")
    } else {
        format!("{id}.attempt-{attempt}.log")
    }
}

/// Which attempt of task `id` a log file named `name` belongs to: the inverse
/// of [`log_file_name`], `None` for any other name.
pub fn log_file_attempt(id: Uuid, name: &str) -> Option<u32> {
    let rest = name.strip_prefix(id.to_string().as_str())?;
    if rest == ".log" {
        return Some(1);
    }
    let n: u32 = rest
        .strip_prefix(".attempt-")?
        .strip_suffix(".log")?
        .parse()
        .ok()?;
    // Only the spelling `log_file_name` writes (not `+2`, `02` or `1`).
    (log_file_name(id, n) == name).then_some(n)
}

impl Task {
    /// The `--json` object (DESIGN "Command line"), plus a few extra fields.
    pub fn to_json(&self) -> Value {
        let time = |t: Option<DateTime<Utc>>| t.map(fmt_time);
        json!({
            "id": self.id.to_string(),
            "job": self.job,
            "status": self.status.as_str(),
            "reason": self.reason,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "attempt": self.attempt,
            "queue": self.queue,
            "priority": self.priority,
            "slots": self.slots,
            "schedule": self.schedule,
            "recurrence": self.recurrence,
            "instance": self.instance,
            "instance_id": self.instance_id.map(|i| i.to_string()),
            "parent": self.parent.map(|i| i.to_string()),
            "after": self.after.map(|i| i.to_string()),
            "args": self.args,
            "metadata": self.metadata,
            "result": self.result,
            "created_at": fmt_time(self.created_at),
            "start_at": time(self.start_at),
            "started_at": time(self.started_at),
            "ended_at": time(self.ended_at),
            "deadline_at": time(self.deadline_at),
            "max_execution_time_ms": self.max_execution_time.as_millis() as u64,
            "log": self.log,
            "needs_review": self.needs_review,
            "unique_key": self.unique_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_file_attempt_inverts_log_file_name() {
        let id = Uuid::now_v7();
        for n in [1, 2, 3, 10, u32::MAX] {
            assert_eq!(log_file_attempt(id, &log_file_name(id, n)), Some(n));
        }
        let other = Uuid::now_v7();
        for name in [
            format!("{other}.log"),
            format!("{id}.attempt-1.log"),
            format!("{id}.attempt-02.log"),
            format!("{id}.attempt-+2.log"),
            format!("{id}.attempt-.log"),
            format!("{id}.attempt-2.txt"),
            format!("{id}.log.1"),
            "jobslot.log".to_string(),
        ] {
            assert_eq!(log_file_attempt(id, &name), None, "{name}");
        }
    }
}
