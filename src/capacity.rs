//! Capacity warnings: pending tasks that no live instance can ever run, because
//! their job needs more slots than any instance serving their queue has, or no
//! live instance serves their queue at all. `jobslot show`, `jobslot stats`,
//! `/api/stats` and `GET /api/tasks/{id}` call them out instead of letting the
//! tasks wait silently.
//!
//! Only live instances count ([`Instance::state`] is `alive`); an instance
//! with no `--queues` serves every queue. Tasks of a paused queue wait on
//! purpose, so they get no warning.

use crate::model::{Task, TaskStatus};
use crate::store::{Instance, StatsSnapshot, Store, StoreResult};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// A live instance, as far as capacity goes.
#[derive(Debug, Clone, PartialEq)]
struct Server {
    slots: u32,
    /// Empty: every queue.
    queues: Vec<String>,
}

impl Server {
    fn serves(&self, queue: &str) -> bool {
        self.queues.is_empty() || self.queues.iter().any(|q| q == queue)
    }
}

/// What the live instances can run.
#[derive(Debug, Clone, PartialEq)]
pub struct Capacity {
    live: Vec<Server>,
}

impl Capacity {
    /// The capacity of the instances alive at `now`.
    pub fn of(instances: &[Instance], now: DateTime<Utc>) -> Capacity {
        Capacity {
            live: instances
                .iter()
                .filter(|i| i.state(now) == "alive")
                .map(|i| Server {
                    slots: i.slots,
                    queues: i.queues.clone(),
                })
                .collect(),
        }
    }

    /// Why a pending task of `job` in `queue` needing `slots` can never run on
    /// the live instances, or `None` when one of them can run it.
    pub fn check(&self, job: &str, queue: &str, slots: u32) -> Option<String> {
        if self.live.is_empty() {
            return Some("no live instance".to_string());
        }
        let serving: Vec<&Server> = self.live.iter().filter(|s| s.serves(queue)).collect();
        let Some(largest) = serving.iter().map(|s| s.slots).max() else {
            let served: BTreeSet<&str> = self
                .live
                .iter()
                .flat_map(|s| s.queues.iter().map(String::as_str))
                .collect();
            let served: Vec<&str> = served.into_iter().collect();
            return Some(format!(
                "queue {queue} is served by no live instance (live instances serve: {})",
                served.join(", ")
            ));
        };
        (slots > largest).then(|| {
            format!(
                "job {job} needs {slots} slots but the largest live instance serving queue {queue} has {largest}"
            )
        })
    }
}

/// Pending tasks of one job, queue and slot need that no live instance can run.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityWarning {
    /// Job.
    pub job: String,
    /// Queue.
    pub queue: String,
    /// Slots each task needs.
    pub slots: u32,
    /// Pending tasks concerned.
    pub pending: u64,
    /// Why they cannot run.
    pub warning: String,
}

impl CapacityWarning {
    /// The warning as `jobslot stats --json` and `/api/stats` print it.
    pub fn to_json(&self) -> Value {
        json!({
            "job": self.job,
            "queue": self.queue,
            "slots": self.slots,
            "pending": self.pending,
            "warning": self.warning,
        })
    }
}

/// The capacity warnings of a snapshot's pending tasks (paused queues left
/// out), by job, queue and slots.
pub fn warnings(s: &StatsSnapshot) -> Vec<CapacityWarning> {
    let capacity = Capacity::of(&s.all_instances, s.at);
    s.pending
        .iter()
        .filter(|p| !s.is_paused(&p.queue))
        .filter_map(|p| {
            Some(CapacityWarning {
                warning: capacity.check(&p.job, &p.queue, p.slots)?,
                job: p.job.clone(),
                queue: p.queue.clone(),
                slots: p.slots,
                pending: p.count,
            })
        })
        .collect()
}

/// The capacity warning of one task: only for a pending task outside a
/// paused queue.
pub async fn task_warning(store: &dyn Store, t: &Task) -> StoreResult<Option<String>> {
    if t.status != TaskStatus::Pending {
        return Ok(None);
    }
    let now = Utc::now();
    let paused = store
        .queue_stats(now)
        .await?
        .iter()
        .any(|q| q.name == t.queue && q.paused_at.is_some());
    if paused {
        return Ok(None);
    }
    let instances = store.instance_list().await?;
    Ok(Capacity::of(&instances, now).check(&t.job, &t.queue, t.slots))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use uuid::Uuid;

    fn instance(name: &str, slots: u32, queues: &[&str], now: DateTime<Utc>) -> Instance {
        Instance {
            id: Uuid::now_v7(),
            name: name.to_string(),
            host: "h".to_string(),
            pid: 1,
            slots,
            queues: queues.iter().map(|q| q.to_string()).collect(),
            started_at: now,
            heartbeat_at: now,
            stopped_at: None,
            heartbeat_interval: Duration::from_secs(5),
            clock_offset_ms: 0,
        }
    }

    #[test]
    fn no_live_instance_is_a_warning() {
        let now = Utc::now();
        assert_eq!(
            Capacity::of(&[], now).check("j", "default", 1).as_deref(),
            Some("no live instance")
        );
        // Stopped and gone instances do not count.
        let mut stopped = instance("s", 8, &[], now);
        stopped.stopped_at = Some(now);
        let mut gone = instance("g", 8, &[], now);
        gone.heartbeat_at = now - chrono::Duration::seconds(60);
        assert_eq!(
            Capacity::of(&[stopped, gone], now)
                .check("j", "default", 1)
                .as_deref(),
            Some("no live instance")
        );
    }

    #[test]
    fn a_job_larger_than_every_serving_instance_is_a_warning() {
        let now = Utc::now();
        let c = Capacity::of(
            &[
                instance("a", 4, &[], now),
                instance("b", 16, &["other"], now),
            ],
            now,
        );
        assert_eq!(c.check("small", "default", 4), None);
        assert_eq!(
            c.check("big", "default", 8).as_deref(),
            Some("job big needs 8 slots but the largest live instance serving queue default has 4")
        );
        // b serves `other` and has room.
        assert_eq!(c.check("big", "other", 8), None);
    }

    #[test]
    fn a_queue_no_live_instance_serves_is_a_warning() {
        let now = Utc::now();
        let c = Capacity::of(
            &[
                instance("a", 4, &["b", "a"], now),
                instance("c", 4, &["a"], now),
            ],
            now,
        );
        assert_eq!(c.check("j", "a", 1), None);
        assert_eq!(
            c.check("j", "q", 1).as_deref(),
            Some("queue q is served by no live instance (live instances serve: a, b)")
        );
        // An instance with no --queues serves every queue.
        let all = Capacity::of(&[instance("all", 2, &[], now)], now);
        assert_eq!(all.check("j", "anything", 2), None);
    }
}
