//! `jobslot tasks`, `show`, `logs` and `cancel`.

use super::{Ctx, output};
use crate::model::{Task, TaskStatus};
use crate::store::{CancelOutcome, Store, TaskListParams};
use anyhow::{Result, bail};
use clap::Args;
use std::io::Write;
use uuid::Uuid;

/// Options of `jobslot tasks`.
#[derive(Debug, Args)]
pub struct TasksArgs {
    /// Only tasks in this status.
    #[arg(long)]
    pub status: Option<TaskStatus>,
    /// Only tasks of this job.
    #[arg(long)]
    pub job: Option<String>,
    /// Only tasks in this queue.
    #[arg(long)]
    pub queue: Option<String>,
    /// Only occurrences of this schedule.
    #[arg(long)]
    pub schedule: Option<String>,
    /// Only tasks that failed after using every attempt on transient failures.
    #[arg(long)]
    pub needs_review: bool,
    /// Only children of this task (id or unambiguous prefix).
    #[arg(long)]
    pub parent: Option<String>,
    /// Only tasks run (or being run) by the instance of this name.
    #[arg(long)]
    pub instance: Option<String>,
    /// Only tasks live at or after this time (not ended, or ended since):
    /// RFC 3339, or a duration ago such as 2h.
    #[arg(long)]
    pub since: Option<String>,
    /// Only tasks created before this time: RFC 3339, or a duration ago.
    #[arg(long)]
    pub until: Option<String>,
    /// The next page: only tasks listed after this id.
    #[arg(long)]
    pub before: Option<Uuid>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

/// A task id (or an unambiguous prefix).
#[derive(Debug, Args)]
pub struct IdArg {
    /// The task id or an unambiguous prefix of it.
    pub id: String,
}

/// Options of `jobslot logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The task id or an unambiguous prefix of it.
    pub id: String,
    /// Keep printing while the task runs; end when it ends.
    #[arg(long, short)]
    pub follow: bool,
    /// Print the log of this earlier attempt (1 for the first) instead.
    #[arg(long)]
    pub attempt: Option<u32>,
}

/// Finds a task by id or unambiguous prefix.
pub async fn find(store: &dyn Store, s: &str) -> Result<Task> {
    if let Ok(id) = Uuid::parse_str(s) {
        if let Some(t) = store.task_get(id).await? {
            return Ok(t);
        }
        bail!("no task {s}");
    }
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        bail!("{s:?} is not a task id (ids look like 0190c3e4-8f1a-7b2c-9d3e-4f5a6b7c8d9e)");
    }
    let mut found = store.task_find_prefix(s, 2).await?;
    match found.len() {
        0 => bail!("no task id starts with {s}"),
        1 => Ok(found.remove(0)),
        _ => bail!("the id prefix {s} is ambiguous; give more characters"),
    }
}

/// `jobslot tasks`.
pub async fn list(ctx: &Ctx, a: TasksArgs) -> Result<i32> {
    let store = ctx.store().await?;
    let parent = match &a.parent {
        Some(p) => Some(find(store.as_ref(), p).await?.id),
        None => None,
    };
    let now = chrono::Utc::now();
    let when = |flag: &str, v: &Option<String>| -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        v.as_deref()
            .map(|s| crate::model::parse_time_or_ago(s, now))
            .transpose()
            .map_err(|e| anyhow::anyhow!("--{flag}: {e}"))
    };
    let tasks = store
        .task_list(TaskListParams {
            status: a.status,
            job: a.job,
            queue: a.queue,
            schedule: a.schedule,
            needs_review: a.needs_review,
            parent,
            instance: a.instance,
            since: when("since", &a.since)?,
            until: when("until", &a.until)?,
            before: a.before,
            limit: a.limit,
        })
        .await?;
    if ctx.json {
        output::print_json(&serde_json::Value::Array(
            tasks.iter().map(Task::to_json).collect(),
        ));
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|t| {
            vec![
                t.id.to_string(),
                t.job.clone(),
                t.status.to_string(),
                t.queue.clone(),
                match (t.start_at, t.after) {
                    (Some(due), _) => output::short_time(Some(due)),
                    (None, Some(after)) => format!("after {}", &after.to_string()[..13]),
                    (None, None) => "-".to_string(),
                },
                output::short_time(t.ended_at),
                t.instance.clone().unwrap_or_else(|| "-".into()),
                t.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    output::print_table(
        &[
            "ID", "JOB", "STATUS", "QUEUE", "DUE", "ENDED", "INSTANCE", "REASON",
        ],
        &rows,
    );
    Ok(0)
}

/// `jobslot show`.
pub async fn show(ctx: &Ctx, a: IdArg) -> Result<i32> {
    let store = ctx.store().await?;
    let t = find(store.as_ref(), &a.id).await?;
    let attempts = store.task_attempts(t.id).await?;
    let children = store
        .task_list(TaskListParams {
            parent: Some(t.id),
            limit: i64::MAX as usize,
            ..Default::default()
        })
        .await?;
    // Children by status, every status present (0 when none).
    let mut by_status = serde_json::Map::new();
    by_status.insert("total".into(), children.len().into());
    for s in TaskStatus::ALL {
        let n = children.iter().filter(|c| c.status == s).count();
        by_status.insert(s.as_str().into(), n.into());
    }
    let warning = crate::capacity::task_warning(store.as_ref(), &t).await?;
    if ctx.json {
        let mut v = t.to_json();
        v["attempts"] = serde_json::Value::Array(attempts.iter().map(|a| a.to_json()).collect());
        v["children"] = serde_json::Value::Object(by_status);
        v["capacity_warning"] = serde_json::json!(warning);
        output::print_json(&v);
    } else {
        output::print_task(&t);
        if let Some(w) = &warning {
            println!("warning: {w}");
        }
        if !children.is_empty() {
            let counts: Vec<String> = TaskStatus::ALL
                .iter()
                .filter_map(|s| {
                    let n = children.iter().filter(|c| c.status == *s).count();
                    (n > 0).then(|| format!("{n} {s}"))
                })
                .collect();
            println!(
                "children: {} ({}); jobslot tasks --parent {} lists them",
                children.len(),
                counts.join(", "),
                t.id
            );
        }
        if !attempts.is_empty() {
            println!("earlier attempts:");
            for a in &attempts {
                println!(
                    "  {}: {} {} on {} ({} → {}), log {}",
                    a.attempt,
                    a.status,
                    a.reason.as_deref().unwrap_or(""),
                    a.instance.as_deref().unwrap_or("-"),
                    output::short_time(a.started_at),
                    output::short_time(Some(a.ended_at)),
                    a.log.as_deref().unwrap_or("-"),
                );
            }
        }
    }
    Ok(0)
}

/// `jobslot retry`: runs a failed or canceled task again, as a new task (see
/// [`crate::client::Client::retry`]); prints the new id.
pub async fn retry(ctx: &Ctx, a: IdArg) -> Result<i32> {
    let store = ctx.store().await?;
    let t = find(store.as_ref(), &a.id).await?;
    let client = crate::client::Client::with_store(
        store,
        crate::schema::SchemaSet::default(),
        ctx.project.clone(),
    );
    let new = client.retry(t.id).await?;
    if ctx.json {
        output::print_json(&new.to_json());
    } else {
        println!("{}", new.id);
    }
    Ok(0)
}

/// `jobslot cancel`.
pub async fn cancel(ctx: &Ctx, a: IdArg) -> Result<i32> {
    let store = ctx.store().await?;
    let t = find(store.as_ref(), &a.id).await?;
    let outcome = store.task_cancel(t.id, chrono::Utc::now()).await?;
    let after = store.task_get(t.id).await?.unwrap_or(t);
    if ctx.json {
        let mut v = after.to_json();
        v["cancel"] = serde_json::json!(match &outcome {
            CancelOutcome::Canceled => "canceled",
            CancelOutcome::StopRequested => "stop-requested",
            CancelOutcome::AlreadyEnded(_) => "already-ended",
            CancelOutcome::NotFound => "not-found",
        });
        output::print_json(&v);
    }
    match outcome {
        CancelOutcome::Canceled => {
            if !ctx.json {
                println!("{} canceled", after.id);
            }
            Ok(0)
        }
        CancelOutcome::StopRequested => {
            if !ctx.json {
                println!("{} is running: its instance will stop it", after.id);
            }
            Ok(0)
        }
        CancelOutcome::AlreadyEnded(s) => {
            eprintln!("task {} already ended ({s}); nothing to cancel", after.id);
            Ok(1)
        }
        CancelOutcome::NotFound => bail!("no task {}", a.id),
    }
}

/// `jobslot logs`: from the local file while it is there, else from storage;
/// `--follow` keeps reading until the task has ended and its log is complete
/// (switching to storage if the file is uploaded meanwhile).
pub async fn logs(ctx: &Ctx, a: LogsArgs) -> Result<i32> {
    let store = ctx.store().await?;
    let first = find(store.as_ref(), &a.id).await?;
    let reader = crate::logs::LogReader::new(ctx.log_dir(), ctx.storage().await);
    if let Some(n) = a.attempt.filter(|n| *n != first.attempt) {
        return attempt_log(&reader, store.as_ref(), &first, n).await;
    }
    let mut out = std::io::stdout();
    let mut follower = reader.follow(store, first, a.follow);
    let mut printed = false;
    while let Some(buf) = follower.next().await? {
        printed = true;
        out.write_all(&buf)?;
        out.flush()?;
    }
    let task = follower.task();
    if !printed && task.started_at.is_none() {
        eprintln!("task {} never started; it has no log", task.id);
    }
    Ok(0)
}

/// Prints the log of an earlier attempt of `task`: the local file while it is
/// there, else the stored object (the file goes once the object is recorded).
async fn attempt_log(
    reader: &crate::logs::LogReader,
    store: &dyn Store,
    task: &Task,
    n: u32,
) -> Result<i32> {
    let mut read_again = true;
    let bytes = loop {
        let attempts = store.task_attempts(task.id).await?;
        let Some(a) = attempts.into_iter().find(|a| a.attempt == n) else {
            bail!(
                "task {} has no attempt {n} (it is at attempt {})",
                task.id,
                task.attempt
            );
        };
        let Some(location) = a.log else {
            bail!("attempt {n} of task {} has no log", task.id);
        };
        match reader.read(task.id, n, Some(&location), 0).await? {
            Some(bytes) => break bytes,
            // Uploaded meanwhile: read the record again, once.
            None if read_again => read_again = false,
            None => bail!("cannot read {location}: it is not there"),
        }
    };
    let mut out = std::io::stdout();
    out.write_all(&bytes)?;
    out.flush()?;
    Ok(0)
}
