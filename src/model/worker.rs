//! A worker: a long-running job kept alive by the scheduler, `replicas` copies
//! across all instances together (`[[workers]]` in the schema).

use serde_json::Value;
use std::time::Duration;

/// A `[[workers]]` entry, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Worker {
    /// Unique among workers.
    pub name: String,
    /// The job every replica runs.
    pub job: String,
    /// How many replicas run across all instances together.
    pub replicas: u32,
    /// Args given to every replica.
    pub args: Value,
    /// Slots each replica holds (default: the job's).
    pub slots: Option<u32>,
    /// First restart delay after a quick exit.
    pub backoff_initial: Duration,
    /// Longest restart delay.
    pub backoff_max: Duration,
    /// A replica that ran at least this long was healthy: its exit resets the
    /// backoff.
    pub healthy_after: Duration,
    /// After this long a replica is restarted gracefully (leak control);
    /// `None`: never.
    pub max_execution_time: Option<Duration>,
}

impl Worker {
    /// Default first restart delay.
    pub const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
    /// Default longest restart delay.
    pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
    /// Default healthy run length.
    pub const HEALTHY_AFTER: Duration = Duration::from_secs(10);
}
