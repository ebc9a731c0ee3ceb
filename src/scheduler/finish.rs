//! The finisher: batches spawn records and task ends into store transactions.
//! What each end means (its status, retry, next occurrence, and what follows
//! once written) is decided in [`super::ends`]; the finisher writes them,
//! retrying until the database takes them, so no outcome is lost to a busy
//! database.

use super::{Shared, persist};
use crate::store::TaskSpawnedParams;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

pub use super::ends::Ended;

/// Messages to the finisher.
pub enum Event {
    /// A process started.
    Spawned(TaskSpawnedParams),
    /// A process ended.
    Ended(Box<Ended>),
    /// Write what is queued.
    Flush,
    /// Write what is queued, then report.
    Shutdown(oneshot::Sender<()>),
}

/// How long a spawn record waits before it is written. Most short tasks end
/// within it, and their end record carries everything: one write instead of
/// two. A longer-running task's record is written after this delay. If the
/// instance dies before, the task's process group is unrecorded and the orphan
/// rescue finds the leftovers by their `JOBSLOT_TASK_ID` instead.
const SPAWN_RECORD_DELAY: std::time::Duration = std::time::Duration::from_millis(100);

/// How long the first end of a batch waits for others to join its write.
const END_COALESCE: std::time::Duration = std::time::Duration::from_millis(2);

/// The finisher loop.
pub async fn run(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Event>) {
    // Spawn records not yet written, oldest first, with when they came.
    let mut held: Vec<(tokio::time::Instant, TaskSpawnedParams)> = Vec::new();
    loop {
        let first = match held.first() {
            None => rx.recv().await,
            Some((since, _)) => {
                tokio::select! {
                    ev = rx.recv() => ev,
                    _ = tokio::time::sleep_until(*since + SPAWN_RECORD_DELAY) => Some(Event::Flush),
                }
            }
        };
        let Some(first) = first else { break };
        if matches!(first, Event::Ended(_)) {
            // Slots are already free (they do not wait for this write): let
            // the ends of the next moment join this one's write.
            tokio::time::sleep(END_COALESCE).await;
        }
        let mut ended = Vec::new();
        let mut done = Vec::new();
        let mut next = Some(first);
        let mut flush_all = false;
        while let Some(ev) = next.take() {
            match ev {
                Event::Spawned(s) => held.push((tokio::time::Instant::now(), s)),
                Event::Ended(e) => ended.push(e),
                Event::Flush => {}
                Event::Shutdown(tx) => {
                    flush_all = true;
                    done.push(tx)
                }
            }
            if held.len() + ended.len() < 512 {
                next = rx.try_recv().ok();
            }
        }
        // A task that ended needs no spawn record: its end writes the log
        // location and clears the process group.
        held.retain(|(_, s)| !ended.iter().any(|e| e.task.id == s.id));
        let now = tokio::time::Instant::now();
        let due = held
            .iter()
            .take_while(|(since, _)| flush_all || *since + SPAWN_RECORD_DELAY <= now)
            .count();
        if due > 0 {
            let spawned: Vec<TaskSpawnedParams> = held.drain(..due).map(|(_, s)| s).collect();
            let store = shared.store.clone();
            persist("recording started tasks", || {
                store.task_mark_spawned(spawned.clone())
            })
            .await;
        }
        if !ended.is_empty() {
            let mut params = Vec::with_capacity(ended.len());
            for e in &ended {
                params.push(super::ends::end_params(&shared, e).await);
            }
            let store = shared.store.clone();
            let applied = persist("recording task ends", || {
                store.task_finish_many(params.clone())
            })
            .await;
            {
                let mut unwritten = shared.unwritten.lock().unwrap_or_else(|p| p.into_inner());
                for e in &ended {
                    unwritten.remove(&e.task.id);
                }
            }
            shared.wake.notify_one();
            super::ends::after_written(&shared, &ended, &applied).await;
        }
        for tx in done {
            let _ = tx.send(());
        }
    }
}
