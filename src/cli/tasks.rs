//! `jobslot tasks`, `show`, `logs` and `cancel`.

use super::{Ctx, output};
use crate::model::{Task, TaskStatus};
use crate::store::{CancelOutcome, Store, TaskListParams};
use anyhow::{Result, bail};
use clap::Args;
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;
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
    let tasks = store
        .task_list(TaskListParams {
            status: a.status,
            job: a.job,
            queue: a.queue,
            schedule: a.schedule,
            needs_review: a.needs_review,
            parent,
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

/// `jobslot retry`: runs a failed or canceled task again, as a new task of the
/// same job with the same args, queue and priority (the old one keeps its
/// record; ended tasks are never rewritten). Its review flag is not carried.
pub async fn retry(ctx: &Ctx, a: IdArg) -> Result<i32> {
    let store = ctx.store().await?;
    let t = find(store.as_ref(), &a.id).await?;
    if !matches!(t.status, TaskStatus::Failed | TaskStatus::Canceled) {
        bail!(
            "task {} is {}: only failed or canceled tasks can be retried",
            t.id,
            t.status
        );
    }
    let now = chrono::Utc::now();
    let mut metadata = match &t.metadata {
        serde_json::Value::Object(m) => m.clone(),
        _ => serde_json::Map::new(),
    };
    metadata.insert("retryOf".into(), serde_json::json!(t.id.to_string()));
    // A child retried while its parent still waits counts as one of its
    // children; once the parent has ended it is a task of its own.
    let parent = match t.parent {
        Some(p) => store
            .task_get(p)
            .await?
            .filter(|p| !p.status.is_terminal())
            .map(|p| p.id),
        None => None,
    };
    let new = store
        .task_insert(crate::store::NewTask {
            schedule: None,
            recurrence: None,
            parent,
            metadata: serde_json::Value::Object(metadata),
            ..crate::store::NewTask::fresh_occurrence(&t, crate::store::AfterLink::None, now)
        })
        .await?;
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
    if let Some(n) = a.attempt.filter(|n| *n != first.attempt) {
        return attempt_log(ctx, store.as_ref(), &first, n).await;
    }
    let default_path = ctx
        .log_dir()
        .join(crate::model::log_file_name(first.id, first.attempt));
    let mut storage: Option<std::sync::Arc<crate::logs::Storage>> = None;
    let mut offset = 0u64;
    let mut out = std::io::stdout();
    let mut task = first;
    loop {
        let ended = !a.follow || task.status.is_terminal() || task.status == TaskStatus::Waiting;
        let location = task.log.clone();
        let chunk = match location.as_deref() {
            Some(url) if crate::logs::parse_s3_url(url).is_some() => {
                if storage.is_none() {
                    storage = Some(ctx.storage().await);
                }
                match &storage {
                    Some(s) => Some(s.read(url, offset).await?),
                    None => None,
                }
            }
            local => {
                let path = local
                    .map(std::path::PathBuf::from)
                    .unwrap_or_else(|| default_path.clone());
                match std::fs::File::open(&path) {
                    Ok(mut f) => {
                        f.seek(SeekFrom::Start(offset))?;
                        let mut buf = Vec::new();
                        f.read_to_end(&mut buf)?;
                        Some(buf)
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => bail!("cannot read {}: {e}", path.display()),
                }
            }
        };
        match chunk {
            Some(buf) => {
                offset += buf.len() as u64;
                out.write_all(&buf)?;
                out.flush()?;
            }
            None => {
                // Not there: uploaded meanwhile, not started, or really gone.
                let now = store.task_get(task.id).await?;
                if now.as_ref().is_some_and(|n| n.log != task.log) {
                    task = now.unwrap_or(task);
                    continue;
                }
                if ended {
                    if task.started_at.is_none() {
                        eprintln!("task {} never started; it has no log", task.id);
                        return Ok(0);
                    }
                    if offset == 0 {
                        bail!(
                            "the log of task {} is not at {}",
                            task.id,
                            location.unwrap_or_else(|| default_path.display().to_string())
                        );
                    }
                }
            }
        }
        if ended {
            return Ok(0);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(t) = store.task_get(task.id).await? {
            task = t;
        }
    }
}

/// Prints the log of an earlier attempt of `task`: the local file while it is
/// there, else the stored object (the file goes once the object is recorded).
async fn attempt_log(ctx: &Ctx, store: &dyn Store, task: &Task, n: u32) -> Result<i32> {
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
        if crate::logs::parse_s3_url(&location).is_some() {
            break ctx.storage().await.read(&location, 0).await?;
        }
        match std::fs::read(&location) {
            Ok(bytes) => break bytes,
            // Uploaded meanwhile: read the record again, once.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && read_again => {
                read_again = false;
            }
            Err(e) => bail!("cannot read {location}: {e}"),
        }
    };
    let mut out = std::io::stdout();
    out.write_all(&bytes)?;
    out.flush()?;
    Ok(0)
}
