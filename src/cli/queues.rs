//! `jobslot queues` and `jobslot queue pause|resume`.

use super::{Ctx, output};
use crate::model::is_valid_name;
use crate::store::QueueStats;
use anyhow::{Result, bail};
use clap::Subcommand;

/// `jobslot queue …`.
#[derive(Debug, Subcommand)]
pub enum QueueAction {
    /// Stops every instance from claiming the queue's tasks (running ones go on).
    Pause {
        /// The queue.
        queue: String,
    },
    /// Lets instances claim the queue's tasks again.
    Resume {
        /// The queue.
        queue: String,
    },
}

/// `jobslot queues`: each queue's depth, due, running and waiting counts and
/// state: queues with live tasks, paused ones, and those the schema's jobs use.
pub async fn list(ctx: &Ctx) -> Result<i32> {
    let store = ctx.store().await?;
    let mut stats = store.queue_stats(chrono::Utc::now()).await?;
    // Idle queues of the schema's jobs show too (a schema that does not load
    // only hides them: the database's figures still print).
    if let Ok(schema) = crate::schema::load(&ctx.project) {
        for job in schema.jobs.values() {
            if !stats.iter().any(|q| q.name == job.queue) {
                stats.push(QueueStats::new(&job.queue));
            }
        }
        stats.sort_by(|a, b| a.name.cmp(&b.name));
    }
    if ctx.json {
        output::print_json(&serde_json::Value::Array(
            stats.iter().map(QueueStats::to_json).collect(),
        ));
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = stats
        .iter()
        .map(|q| {
            vec![
                q.name.clone(),
                crate::store::queue_state(q.paused_at).to_string(),
                q.pending.to_string(),
                q.due.to_string(),
                q.running.to_string(),
                q.waiting.to_string(),
            ]
        })
        .collect();
    output::print_table(
        &["QUEUE", "STATE", "DEPTH", "DUE", "RUNNING", "WAITING"],
        &rows,
    );
    Ok(0)
}

/// `jobslot queue pause|resume Q`.
pub async fn act(ctx: &Ctx, action: QueueAction) -> Result<i32> {
    let (queue, pause) = match &action {
        QueueAction::Pause { queue } => (queue, true),
        QueueAction::Resume { queue } => (queue, false),
    };
    if !is_valid_name(queue) {
        bail!(
            "invalid queue name {queue:?}: use letters, digits, '.', '_' and '-', starting with a letter or digit"
        );
    }
    let store = ctx.store().await?;
    let changed = if pause {
        store.queue_pause(queue, chrono::Utc::now()).await?
    } else {
        store.queue_resume(queue).await?
    };
    let state = if pause { "paused" } else { "active" };
    if ctx.json {
        output::print_json(&serde_json::json!({
            "queue": queue,
            "state": state,
            "changed": changed,
        }));
    } else if changed {
        println!("queue {queue} {state}");
    } else {
        println!("queue {queue} was already {state}");
    }
    Ok(0)
}
