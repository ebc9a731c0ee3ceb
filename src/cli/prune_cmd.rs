//! `jobslot prune`: deletes finished tasks and their logs.

use super::{Ctx, output};
use crate::model::{TaskStatus, parse_duration};
use anyhow::Result;
use clap::Args;
use std::time::Duration;

/// Options of `jobslot prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Delete tasks that ended longer ago than this (e.g. 30d).
    #[arg(long, value_parser = parse_duration)]
    pub older_than: Duration,
    /// Only tasks in these states (completed, failed, canceled); default all three.
    #[arg(long, value_delimiter = ',')]
    pub status: Vec<TaskStatus>,
    /// Rows deleted per transaction.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
}

/// Prunes and prints what was removed.
pub async fn run(ctx: &Ctx, a: PruneArgs) -> Result<i32> {
    if let Some(s) = a.status.iter().find(|s| !s.is_terminal()) {
        anyhow::bail!(
            "--status {s}: only finished tasks (completed, failed, canceled) can be pruned"
        );
    }
    let store = ctx.store().await?;
    let storage = ctx.storage().await;
    let before = crate::model::time_before(chrono::Utc::now(), a.older_than);
    let report =
        crate::scheduler::prune::prune(store.as_ref(), Some(&storage), before, &a.status, a.batch)
            .await?;
    if ctx.json {
        output::print_json(&serde_json::to_value(&report)?);
    } else {
        println!(
            "pruned {} tasks that ended before {}: {} local log files and {} stored logs deleted",
            report.tasks,
            crate::model::fmt_time(before),
            report.local_logs,
            report.stored_logs
        );
    }
    Ok(0)
}
