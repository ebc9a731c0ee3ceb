//! `jobslot stats`: the figures of `/metrics` as tables (queues, jobs,
//! instances, capacity warnings); `--json` prints the object `GET /api/stats`
//! answers.

use super::{Ctx, output};
use crate::capacity::warnings;
use crate::metrics::stats_json_with;
use crate::model::TaskStatus;
use anyhow::Result;

/// Seconds as people read them: `850ms`, `12.3s`, `4m05s`, `2h03m`.
fn human_secs(s: f64) -> String {
    let sign = if s < 0.0 { "-" } else { "" };
    let a = s.abs();
    let text = if a < 1.0 {
        format!("{:.0}ms", a * 1000.0)
    } else if a < 60.0 {
        format!("{a:.1}s")
    } else if a < 3600.0 {
        format!("{}m{:02}s", (a / 60.0) as u64, (a % 60.0) as u64)
    } else {
        format!(
            "{}h{:02}m",
            (a / 3600.0) as u64,
            ((a % 3600.0) / 60.0) as u64
        )
    };
    format!("{sign}{text}")
}

/// `jobslot stats`.
pub async fn run(ctx: &Ctx) -> Result<i32> {
    let store = ctx.store().await?;
    let s = store.stats_snapshot(chrono::Utc::now()).await?;
    let warnings = warnings(&s);
    if ctx.json {
        output::print_json(&stats_json_with(&s, &warnings));
        return Ok(0);
    }
    let mut header = vec!["QUEUE", "STATE"];
    header.extend(TaskStatus::ALL.iter().map(|st| st.as_str()));
    header.extend(["OLDEST RUNNING", "DEADLINE IN"]);
    let header: Vec<String> = header.iter().map(|h| h.to_uppercase()).collect();
    let rows: Vec<Vec<String>> = s
        .queues
        .iter()
        .map(|q| {
            let mut r = vec![
                q.name.clone(),
                crate::store::queue_state(q.paused_at).to_string(),
            ];
            r.extend(
                TaskStatus::ALL
                    .iter()
                    .map(|st| q.tasks.get(st).copied().unwrap_or(0).to_string()),
            );
            let o = q.oldest_running.as_ref();
            r.push(o.map_or("-".into(), |o| human_secs(o.age)));
            r.push(o.and_then(|o| o.deadline_in).map_or("-".into(), human_secs));
            r
        })
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    output::print_table(&header, &rows);

    println!();
    let rows: Vec<Vec<String>> = s
        .jobs
        .iter()
        .map(|j| {
            let h = &j.duration;
            vec![
                j.name.clone(),
                j.completed.to_string(),
                j.failed.to_string(),
                j.canceled.to_string(),
                j.failure_ratio()
                    .map_or("-".into(), |r| format!("{:.1}%", r * 100.0)),
                j.retries.to_string(),
                if h.count > 0 {
                    human_secs(h.sum / h.count as f64)
                } else {
                    "-".into()
                },
            ]
        })
        .collect();
    output::print_table(
        &[
            "JOB",
            "COMPLETED",
            "FAILED",
            "CANCELED",
            "FAILURE",
            "RETRIES",
            "MEAN DURATION",
        ],
        &rows,
    );

    println!();
    let rows: Vec<Vec<String>> = s
        .instances
        .iter()
        .map(|f| {
            vec![
                f.instance.name.clone(),
                f.state.to_string(),
                format!("{}/{}", f.slots_used, f.instance.slots),
                f.running.to_string(),
                if f.instance.queues.is_empty() {
                    "*".to_string()
                } else {
                    f.instance.queues.join(",")
                },
                human_secs(f.heartbeat_age),
            ]
        })
        .collect();
    output::print_table(
        &[
            "INSTANCE",
            "STATE",
            "SLOTS",
            "RUNNING",
            "QUEUES",
            "HEARTBEAT AGE",
        ],
        &rows,
    );

    if !warnings.is_empty() {
        println!();
        println!("capacity warnings (pending tasks no live instance can run):");
        for w in &warnings {
            println!(
                "  {} pending {} task(s) in queue {} ({} slot(s) each): {}",
                w.pending, w.job, w.queue, w.slots, w.warning
            );
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::human_secs;

    #[test]
    fn seconds_read_as_people_write_them() {
        assert_eq!(human_secs(0.25), "250ms");
        assert_eq!(human_secs(12.34), "12.3s");
        assert_eq!(human_secs(245.0), "4m05s");
        assert_eq!(human_secs(7380.0), "2h03m");
        assert_eq!(human_secs(-3.0), "-3.0s");
    }
}
