//! Task states and the reasons a task ended: the one place they become text.

use std::fmt;
use std::str::FromStr;

/// Where a task is in its lifecycle (DESIGN "Task lifecycle").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskStatus {
    /// Waiting for its due time (or for the task it runs after).
    Pending,
    /// Claimed by an instance; its process runs.
    Running,
    /// Its process exited 0 while it still has open children.
    Waiting,
    /// Ended with exit 0.
    Completed,
    /// Ended badly: see its reason.
    Failed,
    /// Canceled by a user, by itself (exit 100) or by a failed predecessor.
    Canceled,
}

impl TaskStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [TaskStatus; 6] = [
        Self::Pending,
        Self::Running,
        Self::Waiting,
        Self::Completed,
        Self::Failed,
        Self::Canceled,
    ];

    /// The status as stored and printed.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Waiting => "waiting",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }

    /// Completed, failed and canceled are terminal: nothing overwrites them.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Canceled)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is not one of the six.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "unknown task status {0:?} (expected one of pending, running, waiting, completed, failed, canceled)"
)]
pub struct UnknownStatus(pub String);

impl FromStr for TaskStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// How a task's process ended, as the runner saw it. The scheduler turns this
/// into a terminal status and reason with [`Outcome::status_and_reason`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The process exited with this code on its own.
    Exited(i32),
    /// The process was killed by a signal jobslot did not send.
    Signaled(i32),
    /// jobslot stopped it at its deadline.
    TimedOut {
        /// The exit code, if the process exited after SIGTERM.
        exit_code: Option<i32>,
        /// The signal that ended it, if any.
        signal: Option<i32>,
    },
    /// A user canceled it while it ran and jobslot stopped it.
    Canceled {
        /// The exit code, if the process exited after SIGTERM.
        exit_code: Option<i32>,
        /// The signal that ended it, if any.
        signal: Option<i32>,
    },
    /// The instance shut down and stopped it after the shutdown timeout.
    Shutdown {
        /// The exit code, if the process exited after SIGTERM.
        exit_code: Option<i32>,
        /// The signal that ended it, if any.
        signal: Option<i32>,
    },
    /// An operator expired it while it ran (it ran too long) and jobslot
    /// stopped it.
    Expired {
        /// The exit code, if the process exited after SIGTERM.
        exit_code: Option<i32>,
        /// The signal that ended it, if any.
        signal: Option<i32>,
    },
    /// The process could not be started.
    SpawnError(String),
}

/// The reason of a task an operator expired (`jobslot admin expire-stuck`).
pub const EXPIRED_REASON: &str = "expired (stuck: stopped by jobslot admin expire-stuck)";

/// Exit code by which a job cancels itself.
pub const EXIT_SELF_CANCELED: i32 = 100;
/// Exit code for a transient failure (EX_TEMPFAIL).
pub const EXIT_TEMPFAIL: i32 = 75;

impl Outcome {
    /// The terminal status and reason this outcome gives (DESIGN "Exit codes").
    /// `Completed` may still become `waiting` if the task has open children.
    pub fn status_and_reason(&self) -> (TaskStatus, Option<String>) {
        match self {
            Self::Exited(0) => (TaskStatus::Completed, None),
            Self::Exited(EXIT_SELF_CANCELED) => {
                (TaskStatus::Canceled, Some("self-canceled".to_string()))
            }
            Self::Exited(code) => (TaskStatus::Failed, Some(format!("exit {code}"))),
            Self::Signaled(sig) => (TaskStatus::Failed, Some(format!("signal {sig}"))),
            Self::TimedOut { .. } => (TaskStatus::Failed, Some("timeout".to_string())),
            Self::Canceled { .. } => (TaskStatus::Canceled, Some("canceled".to_string())),
            Self::Shutdown { .. } => (TaskStatus::Failed, Some("shutdown".to_string())),
            Self::Expired { .. } => (TaskStatus::Failed, Some(EXPIRED_REASON.to_string())),
            Self::SpawnError(e) => (TaskStatus::Failed, Some(format!("spawn-error: {e}"))),
        }
    }

    /// The exit code, when the process exited with one.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            Self::Exited(c) => Some(*c),
            Self::TimedOut { exit_code, .. }
            | Self::Canceled { exit_code, .. }
            | Self::Shutdown { exit_code, .. }
            | Self::Expired { exit_code, .. } => *exit_code,
            Self::Signaled(_) | Self::SpawnError(_) => None,
        }
    }

    /// The signal that ended the process, when one did.
    pub fn signal(&self) -> Option<i32> {
        match self {
            Self::Signaled(s) => Some(*s),
            Self::TimedOut { signal, .. }
            | Self::Canceled { signal, .. }
            | Self::Shutdown { signal, .. }
            | Self::Expired { signal, .. } => *signal,
            Self::Exited(_) | Self::SpawnError(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_text_round_trips() {
        for s in TaskStatus::ALL {
            assert_eq!(s.as_str().parse::<TaskStatus>().ok(), Some(s));
        }
        assert!("done".parse::<TaskStatus>().is_err());
    }

    #[test]
    fn exit_code_table() {
        let table = [
            (Outcome::Exited(0), TaskStatus::Completed, None),
            (
                Outcome::Exited(100),
                TaskStatus::Canceled,
                Some("self-canceled"),
            ),
            (Outcome::Exited(75), TaskStatus::Failed, Some("exit 75")),
            (Outcome::Exited(1), TaskStatus::Failed, Some("exit 1")),
            (Outcome::Exited(3), TaskStatus::Failed, Some("exit 3")),
            (Outcome::Signaled(9), TaskStatus::Failed, Some("signal 9")),
            (
                Outcome::TimedOut {
                    exit_code: None,
                    signal: Some(15),
                },
                TaskStatus::Failed,
                Some("timeout"),
            ),
            (
                Outcome::Canceled {
                    exit_code: Some(0),
                    signal: None,
                },
                TaskStatus::Canceled,
                Some("canceled"),
            ),
        ];
        for (outcome, status, reason) in table {
            let (s, r) = outcome.status_and_reason();
            assert_eq!(s, status, "{outcome:?}");
            assert_eq!(r.as_deref(), reason, "{outcome:?}");
        }
    }
}
