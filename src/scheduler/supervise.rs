//! One supervising tokio task per claimed task: builds the child's environment,
//! starts it through the runner, waits for its end and hands the outcome to the
//! finisher.

use super::finish::{Ended, Event};
use super::{Running, Shared};
use crate::model::{Outcome, Task, fmt_time};
use crate::runner::{SpawnSpec, Started, StopReason};
use crate::store::TaskRescheduleParams;
use chrono::Utc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument;

/// Environment variables holding the scheduler's own secrets; never given to tasks.
pub const SECRET_ENV: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "JOBSLOT_S3_ACCESS_KEY_ID",
    "JOBSLOT_S3_SECRET_ACCESS_KEY",
    "JOBSLOT_S3_SECRET_ACCESS_KEY_FILE",
    "JOBSLOT_API_TOKEN",
    "JOBSLOT_API_TOKEN_FILE",
    "JOBSLOT_API_TOKENS_FILE",
];

/// Takes a claimed task's slots and records it as run by this instance,
/// before its process exists (see [`super::ownership`]).
pub fn register(shared: &Shared, task: &Task) {
    *shared.used_slots.lock().unwrap_or_else(|p| p.into_inner()) += task.slots;
    shared
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(task.id, Running::new(task));
}

/// Starts supervising a registered task.
pub fn start(shared: Arc<Shared>, task: Task) {
    let span = tracing::info_span!("task", id = %task.id, job = %task.job, attempt = task.attempt);
    let fut = supervise(shared.clone(), task).instrument(span);
    tokio::spawn(async move {
        use futures_util::FutureExt;
        if let Err(panic) = std::panic::AssertUnwindSafe(fut).catch_unwind().await {
            let text = super::panic_text(&*panic);
            super::fatal("task supervisor", &format!("panicked: {text}"));
        }
    });
}

/// Gives back the slots of a registered task that will not run here.
pub fn unregister(shared: &Shared, task: &Task) {
    release(shared, task);
}

fn release(shared: &Shared, task: &Task) {
    shared
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&task.id);
    let mut used = shared.used_slots.lock().unwrap_or_else(|p| p.into_inner());
    *used = used.saturating_sub(task.slots);
    drop(used);
    shared
        .freed_at
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(tokio::time::Instant::now);
    shared.wake.notify_one();
}

async fn supervise(shared: Arc<Shared>, task: Task) {
    let cfg = &shared.config;
    // The claim recorded where the log goes (so it is found whatever
    // happens to this instance from now on).
    let log_path = task
        .log
        .as_ref()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            cfg.log_dir
                .join(crate::model::log_file_name(task.id, task.attempt))
        });
    let result_path = cfg.log_dir.join(format!("{}.result.json", task.id));
    let now = shared.now();
    let deadline_utc = task
        .deadline_at
        .unwrap_or_else(|| crate::model::time_after(now, task.max_execution_time));
    let remaining = (deadline_utc - now).to_std().unwrap_or_default();
    let program = shared.jobs.get(&task.job).and_then(|j| j.program.clone());
    let args = task.args.to_string();
    let started = match program {
        None => Started::Failed(format!("no executable for job {:?} in jobs/", task.job)),
        Some(program) => {
            // Jobs without `user` are not in the map: nothing changes for them.
            let run_as = cfg.identities.get(&task.job).cloned();
            let spec = SpawnSpec {
                // The job's user cannot write the log directory: its result
                // file is made for it (empty still means no result).
                owned_files: match run_as {
                    Some(_) => vec![result_path.clone()],
                    None => Vec::new(),
                },
                run_as,
                program: cfg.project.join(program),
                cwd: cfg.project.clone(),
                env: child_env(&shared, &task, &args, deadline_utc, &result_path),
                stdin: args.into_bytes(),
                // Unset rather than inherited when too big to be set.
                env_remove: SECRET_ENV
                    .iter()
                    .chain(&["JOBSLOT_ARGS", "JOBSLOT_METADATA"])
                    .map(|s| s.to_string())
                    .collect(),
                log_path: log_path.clone(),
                log_cap: cfg.log_cap,
                deadline: tokio::time::Instant::now() + remaining,
                // The runner kills on its own clock, with or without the
                // database; capping the grace at half the orphan grace means
                // a task cut off from the database is gone well before any
                // other instance may declare it orphaned.
                kill_grace: task.kill_grace.min(cfg.orphan_grace / 2),
            };
            shared.runner.start(spec).await
        }
    };
    let log = Some(log_path.to_string_lossy().into_owned());
    let outcome = match started {
        Started::Shortage(why) => match put_back(&shared, &task, &why, &log_path).await {
            None => {
                release(&shared, &task);
                return;
            }
            Some(outcome) => outcome,
        },
        Started::Failed(e) => {
            tracing::warn!(error = %e, "task could not be started");
            Outcome::SpawnError(e)
        }
        Started::Running(handle) => {
            shared.shortage.spawned();
            if let Some(r) = shared
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(&task.id)
            {
                if let Some(why) = r.requested {
                    handle.stop(why);
                }
                r.stop = Some(handle.stop_handle());
            }
            let _ = shared
                .finisher
                .send(Event::Spawned(crate::store::TaskSpawnedParams {
                    id: task.id,
                    pgid: handle.pgid,
                    log: log.clone().unwrap_or_default(),
                }));
            tracing::debug!(pid = handle.pid, "task started");
            let report = handle.wait().await;
            report.outcome
        }
    };
    let result = match super::result_file::read_and_remove(result_path).await {
        Ok(v) => v,
        Err(warning) => {
            // The task's own log says why it has no result.
            tracing::warn!(task = %task.id, "{warning}");
            append_to_log(&log_path, &format!("[jobslot] warning: {warning}")).await;
            None
        }
    };
    tracing::info!(outcome = ?outcome, "task ended");
    let lost = shared
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&task.id)
        .is_some_and(|r| r.lost);
    if lost {
        // Another instance ended it (or will): nothing is written for it.
        tracing::warn!(
            "the task's process ended after this instance lost the task; its end is not recorded here"
        );
    } else {
        shared
            .unwritten
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(task.id);
        let _ = shared.finisher.send(Event::Ended(Box::new(Ended {
            task: task.clone(),
            outcome,
            result,
            log,
            ended_at: shared.now(),
        })));
    }
    release(&shared, &task);
}

/// The largest value of `JOBSLOT_ARGS` and `JOBSLOT_METADATA`, in bytes.
/// Linux refuses an environment string over 128 KiB (`MAX_ARG_STRLEN`) and
/// the whole of argv and environment over a quarter of the stack limit, so a
/// task whose args are larger gets no `JOBSLOT_ARGS` and reads them on stdin
/// (which always carries them whole); metadata that large is read with
/// `jobslot show "$JOBSLOT_TASK_ID" --json`.
pub const ENV_JSON_LIMIT: usize = 64 * 1024;

fn child_env(
    shared: &Shared,
    task: &Task,
    args: &str,
    deadline: chrono::DateTime<Utc>,
    result_path: &std::path::Path,
) -> Vec<(String, String)> {
    let last = super::recurrence::last_completed_at(task).unwrap_or_default();
    let metadata = task.metadata.to_string();
    let mut env: Vec<(String, String)> = vec![
        ("JOBSLOT_TASK_ID".into(), task.id.to_string()),
        ("JOBSLOT_JOB".into(), task.job.clone()),
        ("JOBSLOT_ATTEMPT".into(), task.attempt.to_string()),
        ("JOBSLOT_LAST_COMPLETED_AT".into(), last),
        ("JOBSLOT_DEADLINE".into(), fmt_time(deadline)),
        (
            "JOBSLOT_RESULT_FILE".into(),
            result_path.to_string_lossy().into_owned(),
        ),
        (
            "JOBSLOT_DATABASE".into(),
            shared.config.database_url.clone(),
        ),
        (
            "JOBSLOT_PROJECT".into(),
            shared.config.project.to_string_lossy().into_owned(),
        ),
    ];
    if args.len() <= ENV_JSON_LIMIT {
        env.push(("JOBSLOT_ARGS".into(), args.to_string()));
    }
    if metadata.len() <= ENV_JSON_LIMIT {
        env.push(("JOBSLOT_METADATA".into(), metadata));
    }
    env
}

/// Adds a line of jobslot's own at the end of a task's log. Out of
/// descriptors for a moment, it tries again a few times.
async fn append_to_log(path: &std::path::Path, line: &str) {
    use tokio::io::AsyncWriteExt;
    for attempt in 1..=20u64 {
        let file = tokio::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .await;
        match file {
            Ok(mut f) => {
                let _ = f.write_all(format!("\n{line}\n").as_bytes()).await;
                return;
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                tokio::time::sleep(Duration::from_millis(10 * attempt)).await;
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot add a line to the task's log");
                return;
            }
        }
    }
}

/// A spawn that found the machine short of resources (see
/// [`Started::Shortage`]) is not the job's failure: the task's log says why,
/// the task goes back to pending with the same attempt, due now (a
/// compare-and-set on running and this instance), and this instance pauses
/// its claims ([`ShortagePause`]). The caller then frees its slots. When a
/// user or an operator asked to stop the task meanwhile, returns how it ends
/// instead.
async fn put_back(
    shared: &Shared,
    task: &Task,
    why: &str,
    log_path: &std::path::Path,
) -> Option<Outcome> {
    let requested = shared
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&task.id)
        .and_then(|r| r.requested);
    match requested {
        Some(StopReason::Cancel) => {
            return Some(Outcome::Canceled {
                exit_code: None,
                signal: None,
            });
        }
        Some(StopReason::Expire) => {
            return Some(Outcome::Expired {
                exit_code: None,
                signal: None,
            });
        }
        Some(StopReason::Shutdown) | None => {}
    }
    let pause = shared.shortage.hit();
    tracing::warn!(error = %why, ?pause, "the machine is short of resources: the task goes back to pending; claims pause");
    append_to_log(
        log_path,
        &format!(
            "[jobslot] warning: the task could not start now, the machine is short of resources ({why}); it goes back to pending and runs again as attempt {}",
            task.attempt
        ),
    )
    .await;
    let me = shared.instance.id;
    let moved = super::persist("putting a task back to pending", || {
        shared.store.task_reschedule(TaskRescheduleParams {
            id: task.id,
            instance_id: me,
            due_at: shared.now(),
        })
    })
    .await;
    if !moved {
        tracing::info!("the task is no longer held by this instance: nothing to put back");
    }
    None
}

/// First pause of claims after a shortage; it doubles while shortages go on.
const SHORTAGE_PAUSE_MIN: Duration = Duration::from_millis(50);
/// Longest pause of claims after a shortage.
const SHORTAGE_PAUSE_MAX: Duration = Duration::from_secs(2);

/// How long this instance claims nothing after a spawn found the machine
/// short (50 ms, doubling up to 2 s while shortages go on). Shortages during
/// a pause (the rest of the batch claimed with it) do not lengthen it; a
/// successful spawn sets the next pause back to the shortest.
#[derive(Debug, Default)]
pub struct ShortagePause {
    /// (end of the current pause, length of the last pause)
    state: Mutex<(Option<Instant>, Duration)>,
}

impl ShortagePause {
    /// A shortage: starts a pause unless one runs; returns its length.
    fn hit(&self) -> Duration {
        let now = Instant::now();
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.0.is_some_and(|until| now < until) {
            return s.1;
        }
        s.1 = if s.1.is_zero() {
            SHORTAGE_PAUSE_MIN
        } else {
            (s.1 * 2).min(SHORTAGE_PAUSE_MAX)
        };
        s.0 = Some(now + s.1);
        s.1
    }

    /// A spawn succeeded: the next pause starts from the shortest again.
    fn spawned(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1 = Duration::ZERO;
    }

    /// While a pause runs: when it ends. The dispatcher claims nothing before.
    pub fn until(&self) -> Option<chrono::DateTime<Utc>> {
        let now = Instant::now();
        let until = self.state.lock().unwrap_or_else(|p| p.into_inner()).0?;
        let left = until.checked_duration_since(now).filter(|d| !d.is_zero())?;
        Some(Utc::now() + chrono::Duration::from_std(left).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shortage_pause_doubles_only_after_a_pause_and_a_spawn_resets_it() {
        let p = ShortagePause::default();
        assert_eq!(p.until(), None);
        assert_eq!(p.hit(), SHORTAGE_PAUSE_MIN);
        assert_eq!(p.hit(), SHORTAGE_PAUSE_MIN, "same pause, same batch");
        assert!(p.until().is_some());
        std::thread::sleep(SHORTAGE_PAUSE_MIN);
        assert_eq!(p.until(), None);
        assert_eq!(p.hit(), SHORTAGE_PAUSE_MIN * 2);
        p.spawned();
        assert!(p.until().is_some(), "a spawn does not end the pause");
        std::thread::sleep(SHORTAGE_PAUSE_MIN * 2);
        assert_eq!(p.hit(), SHORTAGE_PAUSE_MIN);
        let mut d = Duration::ZERO;
        for _ in 0..10 {
            p.state.lock().expect("lock").0 = None;
            d = p.hit();
        }
        assert_eq!(d, SHORTAGE_PAUSE_MAX);
    }
}
