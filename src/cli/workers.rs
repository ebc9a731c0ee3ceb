//! `jobslot workers` and `jobslot worker stop|start|restart NAME`.

use super::{Ctx, output};
use crate::scheduler::workers::{WorkerStatus, control};
use crate::store::WorkerControl;
use anyhow::{Result, bail};
use clap::Subcommand;

/// `jobslot worker …`.
#[derive(Debug, Subcommand)]
pub enum WorkerAction {
    /// Stops every replica (SIGTERM, then SIGKILL after the job's kill
    /// grace) and starts none until `worker start`.
    Stop {
        /// The worker.
        name: String,
    },
    /// Runs a stopped worker's replicas again.
    Start {
        /// The worker.
        name: String,
    },
    /// Replaces every replica, one at a time: a replica is stopped only when
    /// all the others run.
    Restart {
        /// The worker.
        name: String,
    },
}

/// `jobslot workers`: each worker with its replicas wanted and running,
/// restarts, state, instances and last reasons.
pub async fn list(ctx: &Ctx) -> Result<i32> {
    let store = ctx.store().await?;
    let list = WorkerStatus::list(store.as_ref()).await?;
    if ctx.json {
        output::print_json(&serde_json::Value::Array(
            list.iter().map(WorkerStatus::to_json).collect(),
        ));
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|w| {
            let instances: Vec<&str> = w.instances().into_iter().collect();
            let last = w.last_reasons();
            let note = match (w.state(), &w.row.state_reason) {
                ("stopped", Some(r)) => r.clone(),
                _ => last.last().cloned().unwrap_or_default(),
            };
            vec![
                w.row.spec.name.clone(),
                w.row.spec.job.clone(),
                w.state().to_string(),
                format!("{}/{}", w.running(), w.row.spec.replicas),
                w.restarts().to_string(),
                instances.join(","),
                note,
            ]
        })
        .collect();
    output::print_table(
        &[
            "WORKER",
            "JOB",
            "STATE",
            "RUNNING",
            "RESTARTS",
            "INSTANCES",
            "LAST",
        ],
        &rows,
    );
    Ok(0)
}

/// `jobslot worker stop|start|restart NAME`.
pub async fn act(ctx: &Ctx, action: WorkerAction) -> Result<i32> {
    let (name, change) = match &action {
        WorkerAction::Stop { name } => (name, WorkerControl::Stop("stopped by hand".into())),
        WorkerAction::Start { name } => (name, WorkerControl::Start),
        WorkerAction::Restart { name } => (name, WorkerControl::Restart),
    };
    let store = ctx.store().await?;
    let Some((row, stopped)) = control(store.as_ref(), name, change).await? else {
        let known: Vec<String> = store
            .worker_list()
            .await?
            .into_iter()
            .map(|w| w.spec.name)
            .collect();
        bail!(
            "no worker {name:?} in the database (known: {}); workers come from [[workers]] in schema/, applied by `jobslot run` or `jobslot schema apply`",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    };
    if ctx.json {
        output::print_json(&serde_json::json!({
            "worker": name,
            "state": row.state.as_str(),
            "generation": row.generation,
            "replicas_stopping": stopped,
        }));
    } else {
        match action {
            WorkerAction::Stop { .. } => {
                println!("worker {name} stopped: {stopped} replicas asked to stop")
            }
            WorkerAction::Start { .. } => println!(
                "worker {name} started: running instances start its {} replicas",
                row.spec.replicas
            ),
            WorkerAction::Restart { .. } => println!(
                "worker {name} restarting (generation {}): one replica at a time",
                row.generation
            ),
        }
    }
    Ok(0)
}
