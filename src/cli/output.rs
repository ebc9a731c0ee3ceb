//! Output helpers: JSON and plain tables.

use crate::model::Task;
use chrono::{DateTime, Utc};

/// Prints a JSON value.
pub fn print_json(v: &serde_json::Value) {
    use std::io::Write;
    let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    // A reader that went away (`jobslot --json tasks | head`) is not an error
    // worth a panic: the rest of the output is simply not wanted.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|_| out.flush());
}

/// A short local-free time for tables.
pub fn short_time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".to_string())
}

/// Prints rows as an aligned table.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{:<w$}  ", c, w = widths[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r.clone());
    }
}

/// A task in full, for `show`.
pub fn print_task(t: &Task) {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
    let rows: Vec<(&str, String)> = vec![
        ("id", t.id.to_string()),
        ("job", t.job.clone()),
        ("status", t.status.to_string()),
        ("reason", opt(&t.reason)),
        (
            "exit code",
            t.exit_code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
        ),
        (
            "signal",
            t.signal
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
        ),
        ("attempt", t.attempt.to_string()),
        ("queue", t.queue.clone()),
        ("priority", t.priority.to_string()),
        ("slots", t.slots.to_string()),
        ("schedule", opt(&t.schedule)),
        ("instance", opt(&t.instance)),
        (
            "parent",
            t.parent
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
        ),
        (
            "after",
            t.after.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
        ),
        ("unique key", opt(&t.unique_key)),
        ("args", t.args.to_string()),
        ("metadata", t.metadata.to_string()),
        (
            "result",
            t.result
                .as_ref()
                .map(|r| r.to_string())
                .unwrap_or_else(|| "-".into()),
        ),
        ("created", short_time(Some(t.created_at))),
        ("due", short_time(t.start_at)),
        ("started", short_time(t.started_at)),
        ("ended", short_time(t.ended_at)),
        ("deadline", short_time(t.deadline_at)),
        ("log", opt(&t.log)),
    ];
    for (k, v) in rows {
        println!("{k:<10} {v}");
    }
    if t.needs_review {
        println!("{:<10} yes (failed after using every attempt)", "review");
    }
}
