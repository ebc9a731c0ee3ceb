//! `jobslot enqueue`: adds a task and prints its id.

use super::{Ctx, output};
use crate::client::{Client, Enqueue};
use crate::model::{CatchUp, TaskStatus, parse_duration};
use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::Value;
use std::time::Duration;
use uuid::Uuid;

/// Options of `jobslot enqueue`.
#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// The job to run (a file in jobs/ without extension).
    pub job: String,
    /// Args as JSON, at most 2 MiB (given on stdin, and in JOBSLOT_ARGS when
    /// at most 64 KiB); `@FILE` reads them from a file, `@-` from stdin.
    #[arg(long, default_value = "{}", allow_hyphen_values = true)]
    pub args: String,
    /// Due at this time (RFC 3339).
    #[arg(long, conflicts_with = "in_")]
    pub at: Option<String>,
    /// Due after this duration.
    #[arg(long = "in")]
    pub in_: Option<String>,
    /// Recur every duration.
    #[arg(long, conflicts_with = "cron")]
    pub every: Option<String>,
    /// Recur on a cron expression (5 or 6 fields).
    #[arg(long)]
    pub cron: Option<String>,
    /// Time zone of --cron.
    #[arg(long, default_value = "UTC")]
    pub timezone: String,
    /// With --every or --cron: whether a missed occurrence runs once after
    /// downtime (`one`) or is skipped (`skip`, the default).
    #[arg(long, value_name = "skip|one", value_parser = parse_catch_up)]
    pub catch_up: Option<CatchUp>,
    /// Run after this task completes (canceled if it fails).
    #[arg(long)]
    pub after: Option<String>,
    /// Parent task.
    #[arg(long, env = "JOBSLOT_PARENT")]
    pub parent: Option<String>,
    /// Queue (default: the job's).
    #[arg(long)]
    pub queue: Option<String>,
    /// Priority (default: the job's); higher runs first.
    #[arg(long, allow_negative_numbers = true)]
    pub priority: Option<i32>,
    /// Refuse the task while another live task (pending, running or
    /// waiting) has this key.
    #[arg(long)]
    pub unique_key: Option<String>,
    /// Wait for the task to end; exit 0 only if it completed.
    #[arg(long)]
    pub wait: bool,
}

/// Adds the task.
pub async fn run(ctx: &Ctx, a: EnqueueArgs) -> Result<i32> {
    let schema = crate::schema::load(&ctx.project).map_err(|e| anyhow::anyhow!("{e}"))?;
    let args = read_args(&a.args)?;
    let mut e = Enqueue::new(&a.job).args(args);
    // Read here rather than by clap: a duration out of bounds is an error
    // (exit 1) like any other bad value, not a usage error (exit 2).
    let duration = |flag: &str, text: &Option<String>| -> Result<Option<Duration>> {
        text.as_deref()
            .map(|t| parse_duration(t).map_err(|e| anyhow::anyhow!("{flag}: {e}")))
            .transpose()
    };
    let (in_, every) = (duration("--in", &a.in_)?, duration("--every", &a.every)?);
    match (&a.at, in_) {
        (Some(at), _) => {
            let at = DateTime::parse_from_rfc3339(at).with_context(|| {
                format!("--at {at:?} is not an RFC 3339 time (e.g. 2026-01-01T02:00:00Z)")
            })?;
            e = e.at(at.with_timezone(&Utc));
        }
        (None, Some(d)) => e = e.delay(d),
        (None, None) => {}
    }
    match (every, &a.cron) {
        (Some(d), _) if d.is_zero() => bail!("--every must be longer than 0"),
        (Some(d), _) => e = e.every(d),
        (None, Some(expr)) => e = e.cron(expr, &a.timezone)?,
        (None, None) if a.catch_up.is_some() => {
            bail!("--catch-up only applies to a recurring task (--every or --cron)")
        }
        (None, None) => {}
    }
    if let Some(c) = a.catch_up {
        e = e.catch_up(c);
    }
    if let Some(q) = &a.queue {
        e = e.queue(q);
    }
    if let Some(p) = a.priority {
        e = e.priority(p);
    }
    if let Some(k) = &a.unique_key {
        e = e.unique_key(k);
    }
    let store = ctx.store().await?;
    if let Some(s) = &a.after {
        e = e.after(resolve_id(store.as_ref(), s).await?);
    }
    if let Some(s) = a.parent.as_deref().filter(|s| !s.is_empty()) {
        e = e.parent(resolve_id(store.as_ref(), s).await?);
    }
    let client = Client::with_store(store.clone(), schema, ctx.project.clone());
    let task = client.enqueue(e).await?;
    if !a.wait {
        if ctx.json {
            output::print_json(&task.to_json());
        } else {
            println!("{}", task.id);
        }
        return Ok(0);
    }
    if !ctx.json {
        eprintln!("{} enqueued; waiting for it to end", task.id);
    }
    let notify = std::sync::Arc::new(tokio::sync::Notify::new());
    let _ = store.watch_changes(notify.clone());
    loop {
        let t = store
            .task_get(task.id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("task {} disappeared", task.id))?;
        if t.status.is_terminal() {
            if ctx.json {
                output::print_json(&t.to_json());
            } else {
                println!(
                    "{} {}{}",
                    t.id,
                    t.status,
                    t.reason.map(|r| format!(" ({r})")).unwrap_or_default()
                );
            }
            return Ok(if t.status == TaskStatus::Completed {
                0
            } else {
                1
            });
        }
        tokio::select! {
            _ = notify.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// `--args`: JSON text, `@FILE` or `@-` (stdin). A command-line argument is
/// limited to 128 KiB by Linux, so large args come from a file or stdin.
fn read_args(given: &str) -> Result<Value> {
    let (text, from) = match given.strip_prefix('@') {
        Some("-") => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .context("cannot read --args from stdin")?;
            (text, "stdin".to_string())
        }
        Some(path) => (
            std::fs::read_to_string(path).with_context(|| format!("cannot read --args {given}"))?,
            path.to_string(),
        ),
        None => (given.to_string(), String::new()),
    };
    serde_json::from_str(&text).with_context(|| {
        if from.is_empty() {
            format!("--args is not valid JSON: {given}")
        } else {
            format!("--args from {from} is not valid JSON")
        }
    })
}

/// `--catch-up skip|one`.
fn parse_catch_up(s: &str) -> Result<CatchUp, String> {
    CatchUp::parse(s).ok_or_else(|| format!("{s:?} is not \"skip\" or \"one\""))
}

/// Resolves a full id or an unambiguous prefix.
pub async fn resolve_id(store: &dyn crate::store::Store, s: &str) -> Result<Uuid> {
    Ok(super::tasks::find(store, s).await?.id)
}
