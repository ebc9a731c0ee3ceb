//! `jobslot enqueue`: adds a task and prints its id.

use super::{Ctx, output};
use crate::model::{CatchUp, CronExpr, Recurrence, TaskStatus, parse_duration};
use crate::store::{AfterLink, NewTask};
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
    /// Args as JSON (given on stdin and in JOBSLOT_ARGS).
    #[arg(long, default_value = "{}")]
    pub args: String,
    /// Due at this time (RFC 3339).
    #[arg(long, conflicts_with = "in_")]
    pub at: Option<String>,
    /// Due after this duration.
    #[arg(long = "in", value_parser = parse_duration)]
    pub in_: Option<Duration>,
    /// Recur every duration.
    #[arg(long, value_parser = parse_duration, conflicts_with = "cron")]
    pub every: Option<Duration>,
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
    /// Wait for the task to end; exit 0 only if it completed.
    #[arg(long)]
    pub wait: bool,
}

/// Adds the task.
pub async fn run(ctx: &Ctx, a: EnqueueArgs) -> Result<i32> {
    let schema = crate::schema::load(&ctx.project).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(job) = schema.jobs.get(&a.job) else {
        bail!(
            "unknown job {:?}: no executable jobs/{}[.ext] in {}",
            a.job,
            a.job,
            ctx.project.display()
        );
    };
    let args: Value = serde_json::from_str(&a.args)
        .with_context(|| format!("--args is not valid JSON: {}", a.args))?;
    let now = Utc::now();
    let due: DateTime<Utc> = match (&a.at, a.in_) {
        (Some(at), _) => DateTime::parse_from_rfc3339(at)
            .with_context(|| {
                format!("--at {at:?} is not an RFC 3339 time (e.g. 2026-01-01T02:00:00Z)")
            })?
            .with_timezone(&Utc),
        (None, Some(d)) => now + chrono::Duration::milliseconds(d.as_millis() as i64),
        (None, None) => now,
    };
    if a.catch_up.is_some() && a.every.is_none() && a.cron.is_none() {
        bail!("--catch-up only applies to a recurring task (--every or --cron)");
    }
    let catch_up = a.catch_up.unwrap_or_default();
    let recurrence = match (a.every, &a.cron) {
        (Some(d), _) if d.is_zero() => bail!("--every must be longer than 0"),
        (Some(d), _) => Some(Recurrence::Every {
            interval: d,
            start_at: Some(due),
            catch_up,
        }),
        (None, Some(expr)) => {
            let tz = a.timezone.parse().map_err(|_| {
                anyhow::anyhow!(
                    "unknown time zone {:?} (use an IANA name such as Europe/Paris)",
                    a.timezone
                )
            })?;
            Some(Recurrence::Cron {
                expr: Box::new(CronExpr::parse(expr, tz)?),
                catch_up,
            })
        }
        (None, None) => None,
    };
    let due = match (&recurrence, &a.at, a.in_) {
        (Some(Recurrence::Cron { expr, .. }), None, None) => expr.next_after(now).unwrap_or(now),
        _ => due,
    };
    let store = ctx.store().await?;
    let after = match &a.after {
        Some(s) => AfterLink::Task(resolve_id(store.as_ref(), s).await?),
        None => AfterLink::None,
    };
    let parent = match &a.parent {
        Some(s) if !s.is_empty() => Some(resolve_id(store.as_ref(), s).await?),
        _ => None,
    };
    let mut metadata = serde_json::json!({});
    if recurrence.is_some() {
        metadata[crate::scheduler::recurrence::LAST_COMPLETED_AT] = Value::Null;
    }
    let task = store
        .task_insert(NewTask {
            id: Uuid::now_v7(),
            job: job.name.clone(),
            queue: a.queue.clone().unwrap_or_else(|| job.queue.clone()),
            priority: a.priority.unwrap_or(job.priority),
            slots: job.slots,
            max_execution_time: job.max_execution_time,
            kill_grace: job.kill_grace,
            schedule: None,
            recurrence: recurrence.as_ref().map(Recurrence::to_json),
            after,
            parent,
            args,
            metadata,
            due_at: due,
            created_at: now,
            attempt: 1,
        })
        .await?;
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

/// `--catch-up skip|one`.
fn parse_catch_up(s: &str) -> Result<CatchUp, String> {
    CatchUp::parse(s).ok_or_else(|| format!("{s:?} is not \"skip\" or \"one\""))
}

/// Resolves a full id or an unambiguous prefix.
pub async fn resolve_id(store: &dyn crate::store::Store, s: &str) -> Result<Uuid> {
    Ok(super::tasks::find(store, s).await?.id)
}
