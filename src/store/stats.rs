//! The figures of `jobslot stats`, `/api/stats` and `/metrics`, read in one
//! snapshot by [`Store::stats_snapshot`](super::Store::stats_snapshot).
//!
//! A backend answers with raw aggregates (one grouped scan of `tasks`, the
//! running tasks, the instances and the paused queues); [`StatsSnapshot::build`]
//! folds them here, once for every backend, into per-queue, per-job and
//! per-instance figures.

use super::Instance;
use crate::model::TaskStatus;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;

/// Upper bounds (seconds) of the task duration histogram's buckets; the
/// implicit last bucket is `+Inf`.
pub const DURATION_BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
    3600.0,
];

/// [`DURATION_BUCKETS`] in milliseconds, the unit times are stored in.
pub fn duration_bucket_ms() -> [i64; 16] {
    DURATION_BUCKETS.map(|s| (s * 1000.0).round() as i64)
}

/// How long a stopped or gone instance keeps being reported after its last
/// heartbeat (unless it still holds running tasks).
pub const INSTANCE_REPORT_WINDOW: Duration = Duration::from_secs(3600);

/// One group of `tasks` rows with the same job, queue, status and slots, as a
/// backend reads it (`GROUP BY job, queue, status, slots`).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskGroup {
    /// Job.
    pub job: String,
    /// Queue.
    pub queue: String,
    /// Status.
    pub status: TaskStatus,
    /// Slots each task needs.
    pub slots: u32,
    /// Tasks in the group.
    pub count: u64,
    /// Sum of `attempt - 1`: how many times these tasks went back to pending
    /// for another attempt.
    pub retries: u64,
    /// Tasks with both a start and an end time.
    pub timed: u64,
    /// Sum of their `ended_at - started_at`, in milliseconds.
    pub duration_ms: i64,
    /// Per bound of [`DURATION_BUCKETS`], how many timed tasks took at most
    /// that long (cumulative, as Prometheus buckets are).
    pub buckets: Vec<u64>,
}

/// A running task, as the stats see it (few: bounded by the slots of every
/// instance).
#[derive(Debug, Clone, PartialEq)]
pub struct RunningTask {
    /// Task id.
    pub id: Uuid,
    /// Job.
    pub job: String,
    /// Queue.
    pub queue: String,
    /// The instance holding it.
    pub instance_id: Option<Uuid>,
    /// Slots it holds.
    pub slots: u32,
    /// When its process started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it will be killed.
    pub deadline_at: Option<DateTime<Utc>>,
}

/// What a backend reads for [`StatsSnapshot::build`], all in one snapshot.
#[derive(Debug, Clone, Default)]
pub struct StatsRows {
    /// Every group of tasks.
    pub groups: Vec<TaskGroup>,
    /// Every running task.
    pub running: Vec<RunningTask>,
    /// Every instance.
    pub instances: Vec<Instance>,
    /// Paused queues and when they were paused.
    pub paused: Vec<(String, DateTime<Utc>)>,
}

/// A duration histogram (seconds).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Histogram {
    /// Cumulative counts per bound of [`DURATION_BUCKETS`].
    pub buckets: Vec<u64>,
    /// Observations (the `+Inf` bucket).
    pub count: u64,
    /// Sum of the observations, in seconds.
    pub sum: f64,
}

/// The oldest running task of a queue: the lock held longest.
#[derive(Debug, Clone, PartialEq)]
pub struct OldestRunning {
    /// Task id.
    pub id: Uuid,
    /// Job.
    pub job: String,
    /// Seconds since it started.
    pub age: f64,
    /// Seconds left before its deadline (negative once past).
    pub deadline_in: Option<f64>,
}

/// A queue's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueFigures {
    /// Name.
    pub name: String,
    /// Tasks per status (every status, 0 when none).
    pub tasks: BTreeMap<TaskStatus, u64>,
    /// When it was paused, if it is.
    pub paused_at: Option<DateTime<Utc>>,
    /// Its oldest running task.
    pub oldest_running: Option<OldestRunning>,
}

/// A job's figures over the tasks the database holds (pruned ones are gone).
#[derive(Debug, Clone, PartialEq)]
pub struct JobFigures {
    /// Name.
    pub name: String,
    /// Completed tasks.
    pub completed: u64,
    /// Failed tasks.
    pub failed: u64,
    /// Canceled tasks.
    pub canceled: u64,
    /// Retries: the sum over its tasks of `attempt - 1`.
    pub retries: u64,
    /// Durations (`ended_at - started_at`) of its finished tasks that ran.
    pub duration: Histogram,
}

impl JobFigures {
    /// Failed among completed and failed tasks (canceled ones count as
    /// neither); `None` before any ended so.
    pub fn failure_ratio(&self) -> Option<f64> {
        let ended = self.completed + self.failed;
        (ended > 0).then(|| self.failed as f64 / ended as f64)
    }
}

/// An instance's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceFigures {
    /// The instance as registered.
    pub instance: Instance,
    /// `alive`, `gone` or `stopped` (see [`Instance::state`]).
    pub state: &'static str,
    /// Slots its running tasks hold.
    pub slots_used: u32,
    /// Its running tasks.
    pub running: u64,
    /// Seconds since its last heartbeat.
    pub heartbeat_age: f64,
}

/// Pending tasks with the same job, queue and slot need.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingGroup {
    /// Job.
    pub job: String,
    /// Queue.
    pub queue: String,
    /// Slots each needs.
    pub slots: u32,
    /// How many.
    pub count: u64,
}

/// Every figure, at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsSnapshot {
    /// When it was taken.
    pub at: DateTime<Utc>,
    /// Queues with tasks or paused, by name.
    pub queues: Vec<QueueFigures>,
    /// Jobs with tasks, by name.
    pub jobs: Vec<JobFigures>,
    /// Instances alive, holding tasks, or heard from within
    /// [`INSTANCE_REPORT_WINDOW`]; newest first.
    pub instances: Vec<InstanceFigures>,
    /// Every instance, for capacity checks.
    pub all_instances: Vec<Instance>,
    /// Pending tasks by job, queue and slots.
    pub pending: Vec<PendingGroup>,
}

/// The figures of queue `name`, added (every status at 0) if missing.
fn queue<'a>(queues: &'a mut BTreeMap<String, QueueFigures>, name: &str) -> &'a mut QueueFigures {
    queues
        .entry(name.to_string())
        .or_insert_with(|| QueueFigures {
            name: name.to_string(),
            tasks: TaskStatus::ALL.iter().map(|s| (*s, 0)).collect(),
            paused_at: None,
            oldest_running: None,
        })
}

fn secs_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 1000.0
}

impl StatsSnapshot {
    /// Folds what a backend read at `now` into figures.
    pub fn build(now: DateTime<Utc>, rows: StatsRows) -> StatsSnapshot {
        let mut queues: BTreeMap<String, QueueFigures> = BTreeMap::new();
        let mut jobs: BTreeMap<String, JobFigures> = BTreeMap::new();
        let mut pending: BTreeMap<(String, String, u32), u64> = BTreeMap::new();
        // Duration sums in milliseconds, summed exactly before one division.
        let mut duration_ms: BTreeMap<String, i64> = BTreeMap::new();
        for g in &rows.groups {
            *queue(&mut queues, &g.queue)
                .tasks
                .entry(g.status)
                .or_default() += g.count;
            let j = jobs.entry(g.job.clone()).or_insert_with(|| JobFigures {
                name: g.job.clone(),
                completed: 0,
                failed: 0,
                canceled: 0,
                retries: 0,
                duration: Histogram {
                    buckets: vec![0; DURATION_BUCKETS.len()],
                    ..Histogram::default()
                },
            });
            j.retries += g.retries;
            match g.status {
                TaskStatus::Completed => j.completed += g.count,
                TaskStatus::Failed => j.failed += g.count,
                TaskStatus::Canceled => j.canceled += g.count,
                TaskStatus::Pending => {
                    *pending
                        .entry((g.job.clone(), g.queue.clone(), g.slots))
                        .or_default() += g.count;
                }
                TaskStatus::Running | TaskStatus::Waiting => {}
            }
            if g.status.is_terminal() {
                j.duration.count += g.timed;
                *duration_ms.entry(g.job.clone()).or_default() += g.duration_ms.max(0);
                for (total, n) in j.duration.buckets.iter_mut().zip(&g.buckets) {
                    *total += n;
                }
            }
        }
        for (job, ms) in duration_ms {
            if let Some(j) = jobs.get_mut(&job) {
                j.duration.sum = ms as f64 / 1000.0;
            }
        }
        for (name, paused_at) in &rows.paused {
            queue(&mut queues, name).paused_at = Some(*paused_at);
        }
        // The oldest running task per queue (ties: the smaller id).
        for t in &rows.running {
            let Some(started) = t.started_at else {
                continue;
            };
            let q = queue(&mut queues, &t.queue);
            let age = secs_between(started, now);
            let older = match &q.oldest_running {
                None => true,
                Some(o) => age > o.age || (age == o.age && t.id < o.id),
            };
            if older {
                q.oldest_running = Some(OldestRunning {
                    id: t.id,
                    job: t.job.clone(),
                    age,
                    deadline_in: t.deadline_at.map(|d| secs_between(now, d)),
                });
            }
        }
        let mut used: BTreeMap<Uuid, (u32, u64)> = BTreeMap::new();
        for t in &rows.running {
            if let Some(i) = t.instance_id {
                let e = used.entry(i).or_default();
                e.0 += t.slots;
                e.1 += 1;
            }
        }
        let window = chrono::Duration::from_std(INSTANCE_REPORT_WINDOW).unwrap_or_default();
        let instances = rows
            .instances
            .iter()
            .filter_map(|i| {
                let (slots_used, running) = used.get(&i.id).copied().unwrap_or_default();
                let state = i.state(now);
                let reported = state == "alive" || running > 0 || i.heartbeat_at + window >= now;
                reported.then(|| InstanceFigures {
                    instance: i.clone(),
                    state,
                    slots_used,
                    running,
                    heartbeat_age: secs_between(i.heartbeat_at, now).max(0.0),
                })
            })
            .collect();
        StatsSnapshot {
            at: now,
            queues: queues.into_values().collect(),
            jobs: jobs.into_values().collect(),
            instances,
            all_instances: rows.instances,
            pending: pending
                .into_iter()
                .map(|((job, queue, slots), count)| PendingGroup {
                    job,
                    queue,
                    slots,
                    count,
                })
                .collect(),
        }
    }

    /// Whether a queue is paused.
    pub fn is_paused(&self, queue: &str) -> bool {
        self.queues
            .iter()
            .any(|q| q.name == queue && q.paused_at.is_some())
    }

    /// Tasks in a status, over every queue.
    pub fn count(&self, status: TaskStatus) -> u64 {
        self.queues
            .iter()
            .map(|q| q.tasks.get(&status).copied().unwrap_or(0))
            .sum()
    }
}
