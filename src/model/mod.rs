//! Pure domain types, no I/O: task states and outcomes, jobs, schedules,
//! durations, cron expressions and next-occurrence arithmetic.

pub mod cron;
pub mod duration;
pub mod job;
pub mod retry;
pub mod schedule;
pub mod status;
pub mod task;
pub mod worker;

pub use self::cron::{CronError, CronExpr};
pub use duration::{
    DurationError, MAX_DURATION, format_duration, parse_duration, parse_time_or_ago, time_after,
    time_before,
};
pub use job::{Job, is_valid_name};
pub use retry::RetryPolicy;
pub use schedule::{CatchUp, Recurrence, Schedule};
pub use status::{Outcome, TaskStatus};
pub use task::{Task, fmt_time, log_file_attempt, log_file_name};
pub use worker::Worker;
