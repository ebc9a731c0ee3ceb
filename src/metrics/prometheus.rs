//! The Prometheus text exposition format (version 0.0.4) of a
//! [`StatsSnapshot`]: every family with its `# HELP` and `# TYPE` lines, names
//! prefixed `jobslot_`, label values escaped.
//!
//! Instances are labelled `instance_id` and `instance_name`, not `instance`:
//! Prometheus sets `instance` on every scraped series itself (the target).

use crate::capacity::CapacityWarning;
use crate::model::TaskStatus;
use crate::store::{DURATION_BUCKETS, StatsSnapshot};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A label value with `\`, `"` and line feeds escaped.
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A sample value: integers without a fraction, `+Inf`, `-Inf`, `NaN`.
fn value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{v}")
    }
}

/// Text being written, one family at a time.
struct Exposition {
    out: String,
}

impl Exposition {
    /// Starts a family: its `# HELP` and `# TYPE` lines.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            let inner: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                .collect();
            let _ = write!(self.out, "{{{}}}", inner.join(","));
        }
        let _ = writeln!(self.out, " {}", value(v));
    }
}

/// The snapshot in the text exposition format, with `warnings` (the
/// snapshot's capacity warnings).
pub fn render(s: &StatsSnapshot, warnings: &[CapacityWarning]) -> String {
    let mut e = Exposition { out: String::new() };
    tasks(&mut e, s);
    jobs(&mut e, s);
    instances(&mut e, s);
    e.family(
        "jobslot_capacity_warnings",
        "gauge",
        "Groups of pending tasks (same job, queue and slots) that no live instance can run.",
    );
    e.sample("jobslot_capacity_warnings", &[], warnings.len() as f64);
    ownership(&mut e);
    e.family(
        "jobslot_unrunnable_tasks",
        "gauge",
        "Pending tasks that no live instance can run: their job needs more slots than any instance serving their queue has, or no live instance serves their queue.",
    );
    let mut unrunnable: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for w in warnings {
        *unrunnable.entry((&w.job, &w.queue)).or_default() += w.pending;
    }
    for ((job, queue), n) in unrunnable {
        e.sample(
            "jobslot_unrunnable_tasks",
            &[("job", job), ("queue", queue)],
            n as f64,
        );
    }
    e.out
}

/// The ownership and fencing counts of the instance in this process
/// (`jobslot run`; zero in `jobslot serve`, which runs none).
fn ownership(e: &mut Exposition) {
    use std::sync::atomic::Ordering;
    let c = &crate::scheduler::COUNTERS;
    let counters = [
        (
            "jobslot_ownership_released_total",
            "Tasks the database said this instance held but it was not running (a claim's answer lost), put back to pending without using an attempt.",
            &c.released,
        ),
        (
            "jobslot_ownership_lost_total",
            "Tasks the database said this instance held whose process it had lost, ended as lost.",
            &c.lost,
        ),
        (
            "jobslot_ownership_stopped_total",
            "Processes this instance stopped because the database no longer said it held their task.",
            &c.unheld_stopped,
        ),
        (
            "jobslot_fenced_total",
            "Times this instance fenced itself: no heartbeat recorded for two intervals, so it stopped its worker replicas.",
            &c.fenced,
        ),
    ];
    for (name, help, v) in counters {
        e.family(name, "counter", help);
        e.sample(name, &[], v.load(Ordering::Relaxed) as f64);
    }
}

fn tasks(e: &mut Exposition, s: &StatsSnapshot) {
    e.family(
        "jobslot_tasks",
        "gauge",
        "Tasks in the database, by queue and status (pending: the queue's depth).",
    );
    for q in &s.queues {
        for st in TaskStatus::ALL {
            let n = q.tasks.get(&st).copied().unwrap_or(0);
            e.sample(
                "jobslot_tasks",
                &[("queue", &q.name), ("status", st.as_str())],
                n as f64,
            );
        }
    }
    e.family(
        "jobslot_queue_paused",
        "gauge",
        "1 while the queue is paused (no instance claims its tasks).",
    );
    for q in &s.queues {
        let paused = if q.paused_at.is_some() { 1.0 } else { 0.0 };
        e.sample("jobslot_queue_paused", &[("queue", &q.name)], paused);
    }
    e.family(
        "jobslot_oldest_running_task_age_seconds",
        "gauge",
        "Seconds since the oldest running task of the queue started (the lock held longest).",
    );
    for q in &s.queues {
        if let Some(o) = &q.oldest_running {
            let labels = [("queue", q.name.as_str())];
            e.sample("jobslot_oldest_running_task_age_seconds", &labels, o.age);
        }
    }
    e.family(
        "jobslot_oldest_running_task_deadline_seconds",
        "gauge",
        "Seconds left before the oldest running task of the queue reaches its deadline (negative once past).",
    );
    for q in &s.queues {
        if let Some(d) = q.oldest_running.as_ref().and_then(|o| o.deadline_in) {
            let labels = [("queue", q.name.as_str())];
            e.sample("jobslot_oldest_running_task_deadline_seconds", &labels, d);
        }
    }
}

fn jobs(e: &mut Exposition, s: &StatsSnapshot) {
    e.family(
        "jobslot_tasks_finished_total",
        "counter",
        "Finished tasks in the database, by job and final status (pruning removes tasks).",
    );
    for j in &s.jobs {
        for (st, n) in [
            (TaskStatus::Completed, j.completed),
            (TaskStatus::Failed, j.failed),
            (TaskStatus::Canceled, j.canceled),
        ] {
            e.sample(
                "jobslot_tasks_finished_total",
                &[("job", &j.name), ("status", st.as_str())],
                n as f64,
            );
        }
    }
    e.family(
        "jobslot_task_failure_ratio",
        "gauge",
        "Failed tasks among the job's completed and failed ones (canceled ones count as neither).",
    );
    for j in &s.jobs {
        if let Some(r) = j.failure_ratio() {
            e.sample("jobslot_task_failure_ratio", &[("job", &j.name)], r);
        }
    }
    e.family(
        "jobslot_task_retries_total",
        "counter",
        "Retries of the job's tasks: the sum over its tasks of attempt - 1.",
    );
    for j in &s.jobs {
        let n = j.retries as f64;
        e.sample("jobslot_task_retries_total", &[("job", &j.name)], n);
    }
    e.family(
        "jobslot_task_duration_seconds",
        "histogram",
        "How long the job's finished tasks ran (ended_at - started_at).",
    );
    for j in &s.jobs {
        let h = &j.duration;
        for (le, n) in DURATION_BUCKETS.iter().zip(&h.buckets) {
            let le = value(*le);
            e.sample(
                "jobslot_task_duration_seconds_bucket",
                &[("job", &j.name), ("le", &le)],
                *n as f64,
            );
        }
        e.sample(
            "jobslot_task_duration_seconds_bucket",
            &[("job", &j.name), ("le", "+Inf")],
            h.count as f64,
        );
        let job = [("job", j.name.as_str())];
        e.sample("jobslot_task_duration_seconds_sum", &job, h.sum);
        e.sample("jobslot_task_duration_seconds_count", &job, h.count as f64);
    }
}

fn instances(e: &mut Exposition, s: &StatsSnapshot) {
    let ids: Vec<String> = s
        .instances
        .iter()
        .map(|f| f.instance.id.to_string())
        .collect();
    let labels = |i: usize| {
        [
            ("instance_id", ids[i].as_str()),
            ("instance_name", s.instances[i].instance.name.as_str()),
        ]
    };
    e.family(
        "jobslot_instance_info",
        "gauge",
        "Instances alive, holding tasks, or heard from in the last hour: host and state (alive, gone or stopped).",
    );
    for (i, f) in s.instances.iter().enumerate() {
        let [id, name] = labels(i);
        let host = ("host", f.instance.host.as_str());
        e.sample(
            "jobslot_instance_info",
            &[id, name, host, ("state", f.state)],
            1.0,
        );
    }
    type Figure = fn(&crate::store::InstanceFigures) -> f64;
    let figures: [(&str, &str, &str, Figure); 6] = [
        (
            "jobslot_instance_up",
            "1 while the instance is alive (heartbeating), 0 once gone or stopped.",
            "gauge",
            |f| if f.state == "alive" { 1.0 } else { 0.0 },
        ),
        (
            "jobslot_instance_slots",
            "Slots of the instance (--slots).",
            "gauge",
            |f| f64::from(f.instance.slots),
        ),
        (
            "jobslot_instance_slots_used",
            "Slots held by the instance's running tasks.",
            "gauge",
            |f| f64::from(f.slots_used),
        ),
        (
            "jobslot_instance_running_tasks",
            "Running tasks held by the instance.",
            "gauge",
            |f| f.running as f64,
        ),
        (
            "jobslot_instance_heartbeat_age_seconds",
            "Seconds since the instance's last heartbeat.",
            "gauge",
            |f| f.heartbeat_age,
        ),
        (
            "jobslot_instance_clock_offset_seconds",
            "How far the instance's host clock was from the database's at its last heartbeat (positive: ahead); jobslot dates everything by the database's clock, but past 1 s the host's time service needs a look.",
            "gauge",
            |f| f.instance.clock_offset_ms as f64 / 1000.0,
        ),
    ];
    for (name, help, kind, figure) in figures {
        e.family(name, kind, help);
        for (i, f) in s.instances.iter().enumerate() {
            e.sample(name, &labels(i), figure(f));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
    }

    #[test]
    fn values_use_the_format_special_names() {
        assert_eq!(value(1.0), "1");
        assert_eq!(value(0.005), "0.005");
        assert_eq!(value(f64::INFINITY), "+Inf");
        assert_eq!(value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(value(f64::NAN), "NaN");
        assert_eq!(value(-2.5), "-2.5");
    }
}
