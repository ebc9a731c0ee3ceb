//! The operating figures of a jobslot database, rendered for people and
//! programs: [`stats_json`] (`jobslot stats --json`, `GET /api/stats`) and
//! [`prometheus::render`] (`GET /metrics`). Both read one
//! [`StatsSnapshot`](crate::store::StatsSnapshot) and its
//! [capacity warnings](crate::capacity), so they always agree.

pub mod prometheus;

use crate::capacity::{CapacityWarning, warnings};
use crate::model::{TaskStatus, fmt_time};
use crate::store::{DURATION_BUCKETS, Histogram, StatsSnapshot};
use serde_json::{Map, Value, json};

/// Counts per status, every status present.
fn by_status(count: impl Fn(TaskStatus) -> u64) -> Value {
    let mut m = Map::new();
    for s in TaskStatus::ALL {
        m.insert(s.as_str().to_string(), count(s).into());
    }
    Value::Object(m)
}

fn histogram_json(h: &Histogram) -> Value {
    let mut buckets: Vec<Value> = DURATION_BUCKETS
        .iter()
        .zip(&h.buckets)
        .map(|(le, n)| json!({"le": le, "count": n}))
        .collect();
    buckets.push(json!({"le": "+Inf", "count": h.count}));
    json!({"count": h.count, "sum": h.sum, "buckets": buckets})
}

/// The snapshot as `jobslot stats --json` and `GET /api/stats` print it.
pub fn stats_json(s: &StatsSnapshot) -> Value {
    stats_json_with(s, &warnings(s))
}

/// [`stats_json`] with warnings already computed.
pub fn stats_json_with(s: &StatsSnapshot, warnings: &[CapacityWarning]) -> Value {
    let queues: Vec<Value> = s
        .queues
        .iter()
        .map(|q| {
            json!({
                "queue": q.name,
                "state": crate::store::queue_state(q.paused_at),
                "paused": q.paused_at.is_some(),
                "paused_at": q.paused_at.map(fmt_time),
                "tasks": by_status(|st| q.tasks.get(&st).copied().unwrap_or(0)),
                "oldest_running": q.oldest_running.as_ref().map(|o| json!({
                    "id": o.id.to_string(),
                    "job": o.job,
                    "age_seconds": o.age,
                    "deadline_in_seconds": o.deadline_in,
                })),
            })
        })
        .collect();
    let jobs: Vec<Value> = s
        .jobs
        .iter()
        .map(|j| {
            json!({
                "job": j.name,
                "completed": j.completed,
                "failed": j.failed,
                "canceled": j.canceled,
                "failure_ratio": j.failure_ratio(),
                "retries": j.retries,
                "duration_seconds": histogram_json(&j.duration),
            })
        })
        .collect();
    let instances: Vec<Value> = s
        .instances
        .iter()
        .map(|f| {
            json!({
                "id": f.instance.id.to_string(),
                "name": f.instance.name,
                "host": f.instance.host,
                "state": f.state,
                "up": f.state == "alive",
                "slots": f.instance.slots,
                "slots_used": f.slots_used,
                "running": f.running,
                "queues": f.instance.queues,
                "heartbeat_at": fmt_time(f.instance.heartbeat_at),
                "heartbeat_age_seconds": f.heartbeat_age,
            })
        })
        .collect();
    json!({
        "generated_at": fmt_time(s.at),
        "tasks": by_status(|st| s.count(st)),
        "queues": queues,
        "jobs": jobs,
        "instances": instances,
        "capacity_warnings": warnings.iter().map(CapacityWarning::to_json).collect::<Vec<_>>(),
    })
}
