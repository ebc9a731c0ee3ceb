//! Activity over a recent window, minute by minute: tasks that ended per
//! status, and how many were pending. Read by
//! [`Store::task_timeline`](super::Store::task_timeline) for the Jobs page's
//! charts.
//!
//! Nothing is sampled while instances run: depth is rebuilt from each task's
//! own times. A task enters the queue at `max(created_at, due_at)` and leaves
//! it at `min(started_at, ended_at)`; a backend groups tasks by the bucket of
//! each, and [`Timeline::build`] adds them up. A retried task counts from its
//! latest due time, and pruned tasks count no more.

use crate::model::TaskStatus;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// The window asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimelineParams {
    /// Start of the first bucket.
    pub from: DateTime<Utc>,
    /// The present: the last bucket ends here.
    pub now: DateTime<Utc>,
    /// Bucket width in milliseconds (at least 1).
    pub step_ms: i64,
}

impl TimelineParams {
    /// `buckets` whole buckets of `step_ms`, the last one holding `now`.
    pub fn last(now: DateTime<Utc>, buckets: u32, step_ms: i64) -> TimelineParams {
        let step_ms = step_ms.max(1);
        let now_ms = now.timestamp_millis();
        let last_start = now_ms - now_ms.rem_euclid(step_ms);
        let from_ms = last_start - (i64::from(buckets.max(1)) - 1) * step_ms;
        TimelineParams {
            from: DateTime::from_timestamp_millis(from_ms).unwrap_or(now),
            now,
            step_ms,
        }
    }

    /// How many buckets the window holds.
    pub fn buckets(&self) -> usize {
        let span = (self.now - self.from).num_milliseconds().max(0);
        usize::try_from(span / self.step_ms + 1).unwrap_or(1)
    }
}

/// Tasks of one queue that ended with one status in one bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct EndedGroup {
    /// Queue.
    pub queue: String,
    /// Terminal status.
    pub status: TaskStatus,
    /// Bucket index (0 is the first).
    pub bucket: i64,
    /// How many.
    pub count: u64,
}

/// Tasks of one queue that entered the pending state in one bucket (`-1`:
/// before the window) and left it in another (`None`: still pending).
#[derive(Debug, Clone, PartialEq)]
pub struct PendingSpan {
    /// Queue.
    pub queue: String,
    /// Bucket it became pending in; `-1` before the window.
    pub entered: i64,
    /// Bucket it stopped being pending in; `None` while still pending.
    pub left: Option<i64>,
    /// How many.
    pub count: u64,
}

/// What a backend reads for [`Timeline::build`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TimelineRows {
    /// Ended tasks, grouped.
    pub ended: Vec<EndedGroup>,
    /// Pending spans touching the window, grouped.
    pub pending: Vec<PendingSpan>,
}

/// One series of the timeline (all queues, or one).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    /// Tasks completed per bucket.
    pub completed: Vec<u64>,
    /// Tasks failed per bucket.
    pub failed: Vec<u64>,
    /// Tasks canceled per bucket.
    pub canceled: Vec<u64>,
    /// Pending tasks at the end of each bucket (the last: at `now`).
    pub depth: Vec<u64>,
}

impl Series {
    fn new(n: usize) -> Series {
        Series {
            completed: vec![0; n],
            failed: vec![0; n],
            canceled: vec![0; n],
            depth: vec![0; n],
        }
    }

    fn add_ended(&mut self, status: TaskStatus, bucket: usize, count: u64) {
        let series = match status {
            TaskStatus::Completed => &mut self.completed,
            TaskStatus::Failed => &mut self.failed,
            TaskStatus::Canceled => &mut self.canceled,
            _ => return,
        };
        if let Some(v) = series.get_mut(bucket) {
            *v += count;
        }
    }

    fn add_pending(&mut self, entered: i64, left: Option<i64>, count: u64) {
        for (i, d) in self.depth.iter_mut().enumerate() {
            let i = i as i64;
            // Entered by the end of bucket i, and not yet left by then.
            if entered <= i && left.is_none_or(|l| l > i) {
                *d += count;
            }
        }
    }
}

/// Minute-by-minute activity, for every queue together and per queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// The window.
    pub params: TimelineParams,
    /// Start of each bucket.
    pub starts: Vec<DateTime<Utc>>,
    /// Every queue together.
    pub total: Series,
    /// Per queue that had activity or pending tasks in the window.
    pub queues: BTreeMap<String, Series>,
}

impl Timeline {
    /// Adds up a backend's grouped rows.
    pub fn build(params: TimelineParams, rows: TimelineRows) -> Timeline {
        let n = params.buckets();
        let starts = (0..n)
            .map(|i| params.from + chrono::Duration::milliseconds(params.step_ms * i as i64))
            .collect();
        let mut total = Series::new(n);
        let mut queues: BTreeMap<String, Series> = BTreeMap::new();
        for g in rows.ended {
            let Ok(bucket) = usize::try_from(g.bucket) else {
                continue;
            };
            total.add_ended(g.status, bucket, g.count);
            queues
                .entry(g.queue)
                .or_insert_with(|| Series::new(n))
                .add_ended(g.status, bucket, g.count);
        }
        for p in rows.pending {
            // A leave past the window's end (a clock ahead) counts as not yet.
            let left = p.left.filter(|&l| l < n as i64);
            total.add_pending(p.entered, left, p.count);
            queues
                .entry(p.queue)
                .or_insert_with(|| Series::new(n))
                .add_pending(p.entered, left, p.count);
        }
        Timeline {
            params,
            starts,
            total,
            queues,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).expect("time")
    }

    #[test]
    fn window_ends_with_the_bucket_holding_now() {
        let p = TimelineParams::last(at(3_600_000 + 30_500), 60, 60_000);
        assert_eq!(p.from, at(3_600_000 - 59 * 60_000));
        assert_eq!(p.buckets(), 60);
    }

    #[test]
    fn depth_counts_spans_open_at_each_bucket_end() {
        let p = TimelineParams::last(at(10 * 60_000 + 1), 3, 60_000);
        let rows = TimelineRows {
            ended: vec![EndedGroup {
                queue: "q".into(),
                status: TaskStatus::Failed,
                bucket: 2,
                count: 4,
            }],
            pending: vec![
                // Before the window, still pending.
                PendingSpan {
                    queue: "q".into(),
                    entered: -1,
                    left: None,
                    count: 2,
                },
                // Entered in bucket 0, left in bucket 1.
                PendingSpan {
                    queue: "r".into(),
                    entered: 0,
                    left: Some(1),
                    count: 3,
                },
                // Entered in bucket 2.
                PendingSpan {
                    queue: "r".into(),
                    entered: 2,
                    left: None,
                    count: 1,
                },
            ],
        };
        let t = Timeline::build(p, rows);
        assert_eq!(t.starts.len(), 3);
        assert_eq!(t.total.depth, vec![5, 2, 3]);
        assert_eq!(t.total.failed, vec![0, 0, 4]);
        assert_eq!(t.queues["r"].depth, vec![3, 0, 1]);
        assert_eq!(t.queues["q"].failed, vec![0, 0, 4]);
    }
}
