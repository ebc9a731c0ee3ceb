//! Jobs: an executable in `jobs/` plus its settings from `schema/`.

use super::retry::RetryPolicy;
use std::path::PathBuf;
use std::time::Duration;

/// Default `max_execution_time`.
pub const DEFAULT_MAX_EXECUTION_TIME: Duration = Duration::from_secs(3600);
/// Default `kill_grace`.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(10);
/// Default queue name.
pub const DEFAULT_QUEUE: &str = "default";

/// A validated job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The file name in `jobs/` without extension.
    pub name: String,
    /// The executable, relative to the project directory (`jobs/<file>`), or
    /// `None` when the schema names a job whose file is missing (its tasks then
    /// fail with a spawn error).
    pub program: Option<PathBuf>,
    /// Slots a task of this job needs.
    pub slots: u32,
    /// After this long a running task is stopped and fails with `timeout`.
    pub max_execution_time: Duration,
    /// Time between SIGTERM and SIGKILL when stopping a task.
    pub kill_grace: Duration,
    /// Queue its tasks go to unless an enqueue says otherwise.
    pub queue: String,
    /// Higher runs first.
    pub priority: i32,
    /// How failures are retried.
    pub retry: RetryPolicy,
    /// A job enqueued when a task of this job that created children has
    /// seen them all end, with their outcomes and results in its args.
    pub on_children_done: Option<String>,
    /// The user its tasks run as (`user`: a name, or a numeric uid); `None`:
    /// the user jobslot runs as. Resolved on the machine that runs the task.
    pub user: Option<String>,
    /// The group its tasks run as (`group`, only with `user`); `None`: the
    /// user's primary group.
    pub group: Option<String>,
}

impl Job {
    /// A job with the defaults and the given program.
    pub fn with_defaults(name: &str, program: Option<PathBuf>) -> Self {
        Self {
            name: name.to_string(),
            program,
            slots: 1,
            max_execution_time: DEFAULT_MAX_EXECUTION_TIME,
            kill_grace: DEFAULT_KILL_GRACE,
            queue: DEFAULT_QUEUE.to_string(),
            priority: 0,
            retry: RetryPolicy::default(),
            on_children_done: None,
            user: None,
            group: None,
        }
    }
}

/// Whether `name` is a valid job (or schedule) name: `[A-Za-z0-9][A-Za-z0-9._-]*`.
/// Such a name can never leave `jobs/`.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape_jobs_dir() {
        for good in ["a", "send-report", "x.y_z", "9lives"] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in ["", ".hidden", "../etc", "a/b", "-x", "a b", "é"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }
}
