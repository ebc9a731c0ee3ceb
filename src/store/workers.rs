//! Workers as the store keeps them: each `[[workers]]` entry of the schema,
//! with its job's settings resolved, a generation that grows with every
//! change of its configuration (or `worker restart`), and whether it is
//! stopped.
//!
//! A worker's replicas are ordinary tasks. Replica `i` of worker `W` holds the
//! unique key `worker:W:i` while it is live, so the unique index on live tasks
//! admits at most one task per replica across every instance, and a range
//! scan over those keys lists a worker's live replicas.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::time::Duration;

/// The prefix of every replica's unique key.
pub const REPLICA_KEY_PREFIX: &str = "worker:";

/// The unique key replica `replica` of worker `name` holds while live.
pub fn replica_key(name: &str, replica: u32) -> String {
    format!("{REPLICA_KEY_PREFIX}{name}:{replica}")
}

/// The range `[from, to)` of unique keys held by the replicas of `name`, or
/// of every worker when `None` (`;` sorts right after `:`).
pub fn replica_key_range(name: Option<&str>) -> (String, String) {
    match name {
        Some(n) => (format!("worker:{n}:"), format!("worker:{n};")),
        None => ("worker:".to_string(), "worker;".to_string()),
    }
}

/// A worker as applied: the schema's entry with its job's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerSpec {
    /// Name, unique among workers.
    pub name: String,
    /// The job every replica runs.
    pub job: String,
    /// How many replicas run across all instances together.
    pub replicas: u32,
    /// Args given to every replica.
    pub args: Value,
    /// Queue of the replicas (the job's).
    pub queue: String,
    /// Priority of the replicas (the job's).
    pub priority: i32,
    /// Slots each replica holds.
    pub slots: u32,
    /// After this long a replica is restarted gracefully; `None`: never.
    pub max_execution_time: Option<Duration>,
    /// SIGTERM to SIGKILL when a replica is stopped.
    pub kill_grace: Duration,
    /// First restart delay after a quick exit.
    pub backoff_initial: Duration,
    /// Longest restart delay.
    pub backoff_max: Duration,
    /// A replica that ran this long was healthy: its exit resets the backoff.
    pub healthy_after: Duration,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl WorkerSpec {
    /// Everything but the name and the replica count, as stored: a change
    /// here restarts every replica (rolling); a change of `replicas` only
    /// adds or removes some.
    pub fn config_json(&self) -> Value {
        json!({
            "job": self.job,
            "args": self.args,
            "queue": self.queue,
            "priority": self.priority,
            "slots": self.slots,
            "max_execution_time_ms": self.max_execution_time.map(ms),
            "kill_grace_ms": ms(self.kill_grace),
            "backoff_initial_ms": ms(self.backoff_initial),
            "backoff_max_ms": ms(self.backoff_max),
            "healthy_after_ms": ms(self.healthy_after),
        })
    }

    /// Reads back what [`WorkerSpec::config_json`] stored.
    pub fn from_stored(name: &str, replicas: i64, config: &str) -> Result<WorkerSpec, String> {
        let v: Value = serde_json::from_str(config).map_err(|e| e.to_string())?;
        let text = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("{k} is missing"))
        };
        let num = |k: &str| {
            v.get(k)
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("{k} is missing"))
        };
        let dur = |k: &str| num(k).map(Duration::from_millis);
        Ok(WorkerSpec {
            name: name.to_string(),
            job: text("job")?,
            replicas: u32::try_from(replicas).map_err(|_| format!("replicas {replicas}"))?,
            args: v.get("args").cloned().unwrap_or_else(|| json!({})),
            queue: text("queue")?,
            priority: v
                .get("priority")
                .and_then(Value::as_i64)
                .and_then(|p| i32::try_from(p).ok())
                .ok_or("priority is missing")?,
            slots: u32::try_from(num("slots")?).map_err(|_| "slots out of range")?,
            max_execution_time: v
                .get("max_execution_time_ms")
                .and_then(Value::as_u64)
                .map(Duration::from_millis),
            kill_grace: dur("kill_grace_ms")?,
            backoff_initial: dur("backoff_initial_ms")?,
            backoff_max: dur("backoff_max_ms")?,
            healthy_after: dur("healthy_after_ms")?,
        })
    }
}

/// Whether a worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    /// Its replicas are kept running.
    Active,
    /// Stopped by `jobslot worker stop` or by a replica's exit 100.
    Stopped,
}

impl WorkerState {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Active => "active",
            WorkerState::Stopped => "stopped",
        }
    }
}

/// A worker as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRow {
    /// Its configuration.
    pub spec: WorkerSpec,
    /// Grows with every configuration change and every `worker restart`;
    /// replicas of an older generation are replaced one at a time.
    pub generation: u32,
    /// Active or stopped.
    pub state: WorkerState,
    /// Why it was stopped.
    pub state_reason: Option<String>,
    /// When the row last changed.
    pub updated_at: DateTime<Utc>,
}

/// What `worker_apply` did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerApplyReport {
    /// Workers new to the database.
    pub added: Vec<String>,
    /// Workers whose configuration changed (a new generation).
    pub changed: Vec<String>,
    /// Workers whose replica count alone changed.
    pub scaled: Vec<String>,
    /// Workers no longer in the schema, deleted.
    pub removed: Vec<String>,
}

/// An operator's order to a worker.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerControl {
    /// Stop every replica, and start none until started again.
    Stop(String),
    /// Run its replicas again.
    Start,
    /// Replace every replica, one at a time (a new generation); starts it
    /// if it was stopped.
    Restart,
}
