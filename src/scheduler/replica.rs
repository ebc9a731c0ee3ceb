//! A worker's replica as data: the state it carries from one run to the next
//! (in its task's `recurrence`), the task that runs it, and its replacement
//! when it ends (see [`super::workers`] for keeping the count).

use crate::model::{Task, TaskStatus, format_duration};
use crate::store::{AfterLink, CancelOutcome, NewTask, Store, WorkerRow, WorkerState, replica_key};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

/// The time limit of a replica without `max_execution_time`: never reached.
pub const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Consecutive quick exits from which a worker is shown as crash-looping.
pub const CRASH_LOOP_AFTER: u32 = 3;

/// How many of a replica's last end reasons are kept.
const REASONS_KEPT: usize = 5;

/// What a replica carries from one run to the next.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplicaState {
    /// Its worker.
    pub worker: String,
    /// Its index, from 0.
    pub replica: u32,
    /// The worker's generation it was started with.
    pub generation: u32,
    /// How many times this replica was restarted.
    pub restarts: u64,
    /// Consecutive quick exits before it started.
    pub quick_exits: u32,
    /// Its last end reasons, newest last.
    pub reasons: Vec<String>,
}

impl ReplicaState {
    /// The state a replica task carries, if it is one.
    pub fn of(task: &Task) -> Option<ReplicaState> {
        let r = task.recurrence.as_ref()?;
        let worker = r.get("worker")?.as_str()?.to_string();
        let num = |k: &str| r.get(k).and_then(Value::as_u64).unwrap_or(0);
        Some(ReplicaState {
            worker,
            replica: u32::try_from(num("replica")).ok()?,
            generation: u32::try_from(num("generation")).unwrap_or(0),
            restarts: num("restarts"),
            quick_exits: u32::try_from(num("quick_exits")).unwrap_or(u32::MAX),
            reasons: r
                .get("reasons")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    fn to_json(&self) -> Value {
        json!({
            "worker": self.worker,
            "replica": self.replica,
            "generation": self.generation,
            "restarts": self.restarts,
            "quick_exits": self.quick_exits,
            "reasons": self.reasons,
        })
    }
}

/// A replica task of `w`, due at `due`.
pub fn replica_task(
    w: &WorkerRow,
    state: ReplicaState,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
) -> NewTask {
    let s = &w.spec;
    NewTask {
        id: Uuid::now_v7(),
        job: s.job.clone(),
        queue: s.queue.clone(),
        priority: s.priority,
        slots: s.slots,
        max_execution_time: s.max_execution_time.unwrap_or(FOREVER),
        kill_grace: s.kill_grace,
        schedule: None,
        recurrence: Some(state.to_json()),
        after: AfterLink::None,
        parent: None,
        args: s.args.clone(),
        metadata: json!({"worker": s.name, "replica": state.replica}),
        due_at: due,
        created_at: now,
        attempt: 1,
        unique_key: Some(replica_key(&s.name, state.replica)),
    }
}

/// The replacement of a replica that ended with `status` (and `reason`) at
/// `now`, or `None`: the task is no replica, its worker is stopped or gone,
/// its index is beyond the replica count, or it exited 100 (the job says the
/// worker is done).
pub fn replacement(
    w: Option<&WorkerRow>,
    task: &Task,
    status: TaskStatus,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Option<NewTask> {
    let st = ReplicaState::of(task)?;
    let w = w?;
    if w.state != WorkerState::Active
        || st.replica >= w.spec.replicas
        || self_stopped(status, reason)
    {
        return None;
    }
    let ran = task
        .started_at
        .map(|s| (now - s).to_std().unwrap_or_default())
        .unwrap_or_default();
    // Stopped on purpose (a cancel, a rolling restart, the time limit, a
    // shutdown): back at once.
    let asked = status == TaskStatus::Canceled || matches!(reason, Some("timeout" | "shutdown"));
    let healthy = asked || ran >= w.spec.healthy_after;
    let quick_exits = if healthy {
        0
    } else {
        st.quick_exits.saturating_add(1)
    };
    let delay = if asked {
        Duration::ZERO
    } else if healthy {
        w.spec.backoff_initial
    } else {
        let doubled = w
            .spec
            .backoff_initial
            .saturating_mul(1u32.checked_shl(quick_exits - 1).unwrap_or(u32::MAX));
        doubled.min(w.spec.backoff_max)
    };
    let mut reasons = st.reasons.clone();
    reasons.push(format!(
        "{} after {}",
        reason.unwrap_or(status.as_str()),
        format_duration(Duration::from_millis(ran.as_millis() as u64))
    ));
    if reasons.len() > REASONS_KEPT {
        reasons.drain(..reasons.len() - REASONS_KEPT);
    }
    let next = ReplicaState {
        worker: st.worker,
        replica: st.replica,
        generation: w.generation,
        restarts: st.restarts + 1,
        quick_exits,
        reasons,
    };
    let due = crate::model::time_after(now, delay);
    Some(replica_task(w, next, due, now))
}

/// Whether a replica's end stops its worker: it exited 100 by itself.
pub fn self_stopped(status: TaskStatus, reason: Option<&str>) -> bool {
    status == TaskStatus::Canceled && reason == Some("self-canceled")
}

/// Cancels every live replica of a worker (a running one gets SIGTERM and its
/// kill grace, as any canceled task does).
pub async fn stop_replicas(store: &dyn Store, worker: &str) -> usize {
    let live = match store.worker_replicas(Some(worker.to_string())).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, worker, "cannot list replicas");
            return 0;
        }
    };
    let mut n = 0;
    for t in live {
        if let Ok(CancelOutcome::Canceled | CancelOutcome::StopRequested) =
            store.task_cancel(t.id, Utc::now()).await
        {
            n += 1;
        }
    }
    n
}
