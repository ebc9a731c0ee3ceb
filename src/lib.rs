//! jobslot: a process-per-task job scheduler.
//!
//! Data flows one way: `schema/` and `jobs/` are read by [`schema`] into validated
//! [`model`] jobs and schedules; the [`store`] (SQLite, later PostgreSQL) holds
//! tasks and instances and is the only meeting point between instances; the
//! [`scheduler`] claims due tasks from the store and hands each to the [`runner`],
//! which owns the child process until it exits, and writes the outcome back in one
//! transaction together with the next occurrence of a recurring task. The
//! runner also copies each task's output into its capped log file; [`cli`]
//! composes everything.

pub mod api;
pub mod capacity;
pub mod cli;
pub mod client;
pub mod logs;
pub mod metrics;
pub mod model;
pub mod runner;
pub mod scheduler;
pub mod schema;
pub mod secret_file;
pub mod store;
