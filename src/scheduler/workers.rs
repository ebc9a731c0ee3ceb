//! Workers: long-running jobs kept at `replicas` live copies across every
//! instance (see [`crate::store::WorkerRow`]).
//!
//! A replica is a task holding the unique key `worker:NAME:INDEX`; its
//! supervision state (generation, restarts, consecutive quick exits, last
//! reasons) rides in its `recurrence`. When a replica ends, its replacement
//! is written in the same transaction as the end (like a schedule's next
//! occurrence), due after a backoff that doubles while replicas keep exiting
//! quickly and resets after a healthy run. Every instance also reconciles
//! once a tick: it creates missing replicas (the unique index admits one per
//! index), cancels those of stopped workers or beyond the replica count,
//! replaces replicas of instances whose heartbeat proves them gone, and rolls
//! replicas of an older generation one at a time.

use super::Shared;
pub use super::replica::{
    CRASH_LOOP_AFTER, FOREVER, ReplicaState, replacement, replica_task, self_stopped, stop_replicas,
};
use crate::model::{Job, Task, TaskStatus, Worker};
use crate::store::{
    Store, StoreError, WorkerApplyReport, WorkerControl, WorkerRow, WorkerSpec, WorkerState,
};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// The schema's workers with their jobs' settings, as the store keeps them.
pub fn specs(jobs: &BTreeMap<String, Job>, workers: &[Worker]) -> Vec<WorkerSpec> {
    workers
        .iter()
        .filter_map(|w| {
            let job = jobs.get(&w.job)?;
            Some(WorkerSpec {
                name: w.name.clone(),
                job: w.job.clone(),
                replicas: w.replicas,
                args: w.args.clone(),
                queue: job.queue.clone(),
                priority: job.priority,
                slots: w.slots.unwrap_or(job.slots),
                max_execution_time: w.max_execution_time,
                kill_grace: job.kill_grace,
                backoff_initial: w.backoff_initial,
                backoff_max: w.backoff_max,
                healthy_after: w.healthy_after,
            })
        })
        .collect()
}

/// Stores the schema's workers (see [`Store::worker_apply`]).
pub async fn apply_workers(
    store: &dyn Store,
    jobs: &BTreeMap<String, Job>,
    workers: &[Worker],
) -> Result<WorkerApplyReport, StoreError> {
    store.worker_apply(specs(jobs, workers), Utc::now()).await
}

/// Stops, starts or restarts a worker, as `jobslot worker …` and the API do:
/// a stop also asks every live replica to stop. Returns the worker as
/// stored and how many replicas were asked to stop, or `None` if there is
/// no such worker.
pub async fn control(
    store: &dyn Store,
    name: &str,
    control: WorkerControl,
) -> Result<Option<(WorkerRow, usize)>, StoreError> {
    let stop = matches!(control, WorkerControl::Stop(_));
    let Some(row) = store.worker_control(name, control, Utc::now()).await? else {
        return Ok(None);
    };
    let stopped = if stop {
        stop_replicas(store, name).await
    } else {
        0
    };
    Ok(Some((row, stopped)))
}

/// Live replicas grouped by worker, each with its state.
fn by_worker(live: Vec<Task>) -> BTreeMap<String, Vec<(ReplicaState, Task)>> {
    let mut out: BTreeMap<String, Vec<(ReplicaState, Task)>> = BTreeMap::new();
    for t in live {
        if let Some(st) = ReplicaState::of(&t) {
            out.entry(st.worker.clone()).or_default().push((st, t));
        }
    }
    out
}

/// One reconciliation pass (every instance runs one per tick).
pub(super) async fn reconcile(shared: &Shared) -> Result<(), StoreError> {
    let store = shared.store.as_ref();
    let workers = store.worker_list().await?;
    let live = store.worker_replicas(None).await?;
    if workers.is_empty() && live.is_empty() {
        return Ok(());
    }
    let now = shared.now();
    let by_worker = by_worker(live);
    // Replicas whose instance's heartbeat proves it gone.
    let gone: BTreeSet<Uuid> = if by_worker
        .values()
        .flatten()
        .any(|(_, t)| t.status == TaskStatus::Running)
    {
        store
            .instance_list()
            .await?
            .into_iter()
            .filter(|i| i.is_gone(now))
            .map(|i| i.id)
            .collect()
    } else {
        BTreeSet::new()
    };
    let rows: BTreeMap<&str, &WorkerRow> =
        workers.iter().map(|w| (w.spec.name.as_str(), w)).collect();
    for (name, replicas) in &by_worker {
        // No longer in the schema, or stopped: every replica goes.
        let Some(w) = rows
            .get(name.as_str())
            .copied()
            .filter(|w| w.state == WorkerState::Active)
        else {
            for (_, t) in replicas {
                let _ = store.task_cancel(t.id, now).await;
            }
            continue;
        };
        for (st, t) in replicas {
            if st.replica >= w.spec.replicas {
                let _ = store.task_cancel(t.id, now).await;
            } else if t.status == TaskStatus::Running
                && t.instance_id.is_some_and(|i| gone.contains(&i))
            {
                let holder = t.instance.clone().unwrap_or_default();
                if t.host.as_deref() == Some(shared.instance.host.as_str()) {
                    // What is left of its processes here goes first: never
                    // two copies of one replica.
                    let (pgid, id) = (t.pgid, t.id.to_string());
                    let _ = tokio::task::spawn_blocking(move || {
                        crate::runner::kill_leftover_group(pgid, &id)
                    })
                    .await;
                }
                let reason = format!("orphaned (instance {holder} is gone)");
                super::ends::end_abandoned(store, &shared.jobs, t, reason, false, now).await?;
                tracing::warn!(worker = %name, replica = st.replica, instance = %holder, "replica of a gone instance replaced");
            }
        }
        roll(store, w, replicas, now).await?;
    }
    // Missing replicas of active workers.
    for w in workers.iter().filter(|w| w.state == WorkerState::Active) {
        let have: BTreeSet<u32> = by_worker
            .get(&w.spec.name)
            .map(|v| v.iter().map(|(st, _)| st.replica).collect())
            .unwrap_or_default();
        for i in (0..w.spec.replicas).filter(|i| !have.contains(i)) {
            let state = ReplicaState {
                worker: w.spec.name.clone(),
                replica: i,
                generation: w.generation,
                ..ReplicaState::default()
            };
            match store.task_insert(replica_task(w, state, now, now)).await {
                Ok(t) => {
                    tracing::info!(worker = %w.spec.name, replica = i, task = %t.id, "replica created")
                }
                // Another instance created it first.
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// One step of a rolling restart: a pending replica of an older generation
/// is canceled (recreated by the next pass); a running one is stopped only
/// when every replica runs and none is being stopped.
async fn roll(
    store: &dyn Store,
    w: &WorkerRow,
    replicas: &[(ReplicaState, Task)],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let outdated: Vec<&(ReplicaState, Task)> = replicas
        .iter()
        .filter(|(st, _)| st.generation != w.generation && st.replica < w.spec.replicas)
        .collect();
    for (_, t) in outdated
        .iter()
        .filter(|(_, t)| t.status == TaskStatus::Pending)
    {
        store.task_cancel(t.id, now).await?;
    }
    if let Some((st, t)) = outdated
        .iter()
        .filter(|(_, t)| t.status == TaskStatus::Running)
        .min_by_key(|(st, _)| st.replica)
        && store
            .worker_roll(&w.spec.name, t.id, w.spec.replicas)
            .await?
    {
        tracing::info!(worker = %w.spec.name, replica = st.replica, generation = w.generation, "rolling restart: replacing a replica");
    }
    Ok(())
}

/// A worker as `jobslot workers` shows it.
#[derive(Debug, Clone)]
pub struct WorkerStatus {
    /// The stored worker.
    pub row: WorkerRow,
    /// Its live replicas with their state.
    pub replicas: Vec<(ReplicaState, Task)>,
}

impl WorkerStatus {
    /// Reads every worker with its live replicas.
    pub async fn list(store: &dyn Store) -> Result<Vec<WorkerStatus>, StoreError> {
        let workers = store.worker_list().await?;
        let mut live = by_worker(store.worker_replicas(None).await?);
        Ok(workers
            .into_iter()
            .map(|row| {
                let replicas = live.remove(&row.spec.name).unwrap_or_default();
                WorkerStatus { row, replicas }
            })
            .collect())
    }

    /// Replicas running now.
    pub fn running(&self) -> usize {
        self.replicas
            .iter()
            .filter(|(_, t)| t.status == TaskStatus::Running)
            .count()
    }

    /// Restarts of its live replicas, summed.
    pub fn restarts(&self) -> u64 {
        self.replicas.iter().map(|(st, _)| st.restarts).sum()
    }

    /// `stopped`, `crash-looping` (a replica exited quickly
    /// [`CRASH_LOOP_AFTER`] times in a row), `rolling` (replicas of an older
    /// generation remain), `starting` (fewer running than wanted) or
    /// `running`.
    pub fn state(&self) -> &'static str {
        if self.row.state == WorkerState::Stopped {
            "stopped"
        } else if self
            .replicas
            .iter()
            .any(|(st, _)| st.quick_exits >= CRASH_LOOP_AFTER)
        {
            "crash-looping"
        } else if self
            .replicas
            .iter()
            .any(|(st, _)| st.generation != self.row.generation)
        {
            "rolling"
        } else if self.running() < self.row.spec.replicas as usize {
            "starting"
        } else {
            "running"
        }
    }

    /// The last end reasons of its replicas, newest last within each.
    pub fn last_reasons(&self) -> Vec<String> {
        self.replicas
            .iter()
            .flat_map(|(st, _)| {
                st.reasons
                    .iter()
                    .map(move |r| format!("replica {}: {r}", st.replica))
            })
            .collect()
    }

    /// The instances running its replicas, by name.
    pub fn instances(&self) -> BTreeSet<&str> {
        self.replicas
            .iter()
            .filter(|(_, t)| t.status == TaskStatus::Running)
            .filter_map(|(_, t)| t.instance.as_deref())
            .collect()
    }

    /// As `jobslot workers --json` prints it.
    pub fn to_json(&self) -> Value {
        let s = &self.row.spec;
        json!({
            "name": s.name,
            "job": s.job,
            "state": self.state(),
            "stopped_reason": self.row.state_reason,
            "replicas_wanted": s.replicas,
            "replicas_running": self.running(),
            "replicas_live": self.replicas.len(),
            "restarts": self.restarts(),
            "generation": self.row.generation,
            "instances": self.instances(),
            "last_reasons": self.last_reasons(),
            "replicas": self.replicas.iter().map(|(st, t)| json!({
                "replica": st.replica,
                "task": t.id.to_string(),
                "status": t.status.as_str(),
                "instance": t.instance,
                "generation": st.generation,
                "restarts": st.restarts,
                "quick_exits": st.quick_exits,
                "due_at": t.start_at.map(crate::model::fmt_time),
                "started_at": t.started_at.map(crate::model::fmt_time),
            })).collect::<Vec<_>>(),
        })
    }
}
