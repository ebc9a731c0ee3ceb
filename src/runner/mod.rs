//! Child processes: one owner per task's process, from spawn to reap.
//!
//! [`Runner::start`] spawns a job's executable (no shell) as the leader of a new
//! process group, with its args on stdin and stdout+stderr appended to its log
//! file, and hands back a [`RunHandle`]. One tokio task owns each child: it waits
//! for the leader's exit through a pidfd, and on the deadline or a [`StopReason`]
//! sends SIGTERM to the whole group, then SIGKILL after the kill grace. **A task's
//! end ends its process group**: whatever the task left running in its group is
//! killed when the leader exits, before the leader is reaped (so neither the pid
//! nor the group id can have been reused while we signal them).
//!
//! All forks happen on one dedicated thread (the spawner), because the children's
//! parent-death signal (`PR_SET_PDEATHSIG`) fires when the *thread* that forked
//! them exits. The thread lives as long as the [`Runner`] or any child it started.
//! [`kill_leftover_group`] cleans up after an instance that died without its
//! owners. The runner never touches the database.

mod child;
mod child_error;
mod group;
mod identity;
mod log;
mod reaper;
mod spawn;
mod sys;
#[cfg(test)]
mod tests;
mod vfork;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::model::Outcome;

pub use group::{kill_leftover_group, process_start_ticks};
pub use identity::{IdentityError, RunAs, resolve as resolve_identity};
pub use sys::make_non_dumpable;

/// Descriptors the scheduler holds whatever the task count: the runtime, the
/// database (one SQLite file with its WAL and index, or a PostgreSQL pool and
/// listener), the API's socket and connections, storage uploads, its own log.
pub const FDS_BASE: u64 = 128;
/// Descriptors held per running task: its log file, the read end of its
/// output pipe, the write end of its stdin, its pidfd. (A spawn in progress
/// holds four more for a moment, the result file one more at the end.)
pub const FDS_PER_TASK: u64 = 4;

/// Prepares this process to run up to `slots` tasks at once, at `jobslot run`
/// start: raises the open-files soft limit to the hard limit (warning when
/// `slots` tasks would need more; tasks that find no descriptor wait and run
/// later), registers as a child subreaper and starts the reaper of what tasks
/// leave behind (see `reaper.rs`).
pub fn prepare_process(slots: u32) {
    let needed = FDS_BASE + FDS_PER_TASK * u64::from(slots);
    match sys::raise_open_files_limit() {
        Ok(limit) if limit < needed => tracing::warn!(
            limit,
            needed,
            slots,
            "the open-files limit (ulimit -n, hard) is below what {slots} running tasks need (about {FDS_BASE} + {FDS_PER_TASK} per task); tasks that find no descriptor go back to pending and run when others end. Raise the hard limit (LimitNOFILE=, ulimit -Hn) or lower --slots"
        ),
        Ok(limit) => tracing::debug!(limit, needed, "open-files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-files limit"),
    }
    reaper::start();
}

/// Everything needed to start one task's process.
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    /// Absolute path of the executable; run directly, without a shell or argv.
    pub program: PathBuf,
    /// Working directory (the project directory).
    pub cwd: PathBuf,
    /// Written to the child's stdin, which is then closed (the args as JSON).
    pub stdin: Vec<u8>,
    /// Variables added to the inherited environment (they win over removals).
    pub env: Vec<(String, String)>,
    /// Variables removed from the inherited environment (e.g. secrets).
    pub env_remove: Vec<String>,
    /// Log file; parent directories are created, output is appended.
    pub log_path: PathBuf,
    /// At most this many bytes of output are kept in the log.
    pub log_cap: u64,
    /// When the task is stopped as timed out.
    pub deadline: Instant,
    /// Time between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// The user the child switches to before its exec (a job's `user`), with
    /// that user's `HOME`, `USER`, `LOGNAME` and `SHELL`; `None`: it runs as
    /// the scheduler does.
    pub run_as: Option<Arc<RunAs>>,
    /// Only with `run_as`: files created empty (mode 0600, replacing whatever
    /// was at the path) and given to that user before the spawn, so the job
    /// can write them in a directory it cannot write (its result file).
    /// Removed again when the spawn ends in a [`Started::Shortage`].
    pub owned_files: Vec<PathBuf>,
}

/// The result of [`Runner::start`].
#[derive(Debug)]
pub enum Started {
    /// The process runs; its owner reports its end through the handle.
    Running(RunHandle),
    /// The process could not be started: the OS error text, such as
    /// `No such file or directory (os error 2)`, or why its log file could not
    /// be opened. The job's fault: the task fails with `spawn-error`.
    Failed(String),
    /// The machine is short of what a spawn needs (descriptors, memory,
    /// processes: EMFILE, ENFILE, EAGAIN, ENOMEM), whether the pipe, the log
    /// file, the clone or the child's exec failed. Not the job's fault: the
    /// task should run again later.
    Shortage(String),
}

/// Why jobslot stops a running task before its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// A user canceled it: ends as [`Outcome::Canceled`].
    Cancel,
    /// The instance shuts down: ends as [`Outcome::Shutdown`].
    Shutdown,
    /// An operator expired it (`jobslot admin expire-stuck`): ends as
    /// [`Outcome::Expired`].
    Expire,
}

/// Stops a running task from anywhere; cheap to clone. Stopping a task that
/// already ended, or is already being stopped, does nothing.
#[derive(Debug, Clone)]
pub struct StopHandle {
    control: mpsc::Sender<StopReason>,
}

impl StopHandle {
    /// Starts the stop sequence: SIGTERM to the group, SIGKILL after the grace.
    pub fn stop(&self, why: StopReason) {
        // Full means a stop is already queued; closed means the task ended.
        let _ = self.control.try_send(why);
    }
}

/// A running task's process. Dropping it does not stop the process: its owner
/// still ends it at the deadline.
#[derive(Debug)]
pub struct RunHandle {
    /// The leader's pid.
    pub pid: i32,
    /// The task's process group id (equal to `pid`).
    pub pgid: i32,
    /// The leader's start time (`/proc/<pid>/stat` field 22), which with the
    /// pid names the process for good; 0 if it could not be read.
    pub start_ticks: u64,
    stopper: StopHandle,
    done: oneshot::Receiver<RunReport>,
}

impl RunHandle {
    /// Starts the stop sequence (see [`StopHandle::stop`]).
    pub fn stop(&self, why: StopReason) {
        self.stopper.stop(why);
    }

    /// A handle that stops this task while another task awaits [`Self::wait`].
    pub fn stop_handle(&self) -> StopHandle {
        self.stopper.clone()
    }

    /// Waits until the leader has exited, its group is gone, it is reaped and
    /// its log copy has finished. Should the owner be lost (a bug, or the
    /// runtime shutting down) the group has been killed and the report says
    /// `Signaled(SIGKILL)`.
    pub async fn wait(self) -> RunReport {
        match self.done.await {
            Ok(report) => report,
            Err(_) => {
                tracing::error!(pid = self.pid, "the owner of a task's process was lost");
                RunReport {
                    outcome: Outcome::Signaled(libc::SIGKILL),
                    ended: SystemTime::now(),
                    signaled_at: None,
                    exited_at: Instant::now(),
                    log_bytes: 0,
                    log_truncated: false,
                }
            }
        }
    }
}

/// How a task's process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// Exit code or signal, and whether jobslot stopped it and why.
    pub outcome: Outcome,
    /// Wall-clock time the leader's exit was seen.
    pub ended: SystemTime,
    /// When jobslot sent SIGTERM, if it did.
    pub signaled_at: Option<Instant>,
    /// When the leader's exit was seen.
    pub exited_at: Instant,
    /// Bytes of output written to the log (at most the cap).
    pub log_bytes: u64,
    /// Whether output past the cap was discarded.
    pub log_truncated: bool,
}

/// Starts tasks' processes and owns them until they end. Cheap to clone.
///
/// The runtime behind the handle must have I/O and time enabled.
#[derive(Debug, Clone)]
pub struct Runner {
    inner: Arc<Inner>,
}

/// Shared by the runner and every owner, so the spawner threads (which exit
/// once all of these are gone) outlive every child they forked.
#[derive(Debug)]
struct Inner {
    /// One channel per spawner thread; requests go round-robin.
    requests: Vec<std::sync::mpsc::Sender<spawn::Request>>,
    next: std::sync::atomic::AtomicUsize,
}

/// Spawner threads: forks overlap their wait for the child's exec.
const SPAWNERS: usize = 2;

impl Runner {
    /// Starts the spawner thread; owners run on `handle`'s runtime.
    pub fn new(handle: Handle) -> std::io::Result<Runner> {
        let requests = (0..SPAWNERS)
            .map(|_| spawn::start_thread(handle.clone()))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Runner {
            inner: Arc::new(Inner {
                requests,
                next: std::sync::atomic::AtomicUsize::new(0),
            }),
        })
    }

    /// Spawns a task's process. Spawn errors come back as [`Started::Failed`]
    /// or [`Started::Shortage`].
    /// The owner's events are recorded in the caller's current span.
    pub async fn start(&self, spec: SpawnSpec) -> Started {
        // Creating the log file can take a while on a busy file system: do it
        // here, in parallel, rather than on a spawner thread.
        let path = spec.log_path.clone();
        let log_file = match tokio::task::spawn_blocking(move || spawn::open_log(&path)).await {
            Ok(Ok(file)) => file,
            Ok(Err(e)) => {
                return spawn::failure(
                    format!("cannot open log file {}: {e}", spec.log_path.display()),
                    &e,
                );
            }
            Err(e) => return Started::Failed(format!("cannot open log file: {e}")),
        };
        if let Some(run_as) = spec.run_as.clone()
            && !spec.owned_files.is_empty()
        {
            let files = spec.owned_files.clone();
            let given = tokio::task::spawn_blocking(move || {
                files
                    .iter()
                    .try_for_each(|f| spawn::give_file(f, run_as.uid, run_as.gid))
            })
            .await;
            match given {
                Ok(Ok(())) => {}
                Ok(Err((path, e))) => {
                    let why = format!("cannot prepare {} for the job: {e}", path.display());
                    return spawn::failure(why, &e);
                }
                Err(e) => return Started::Failed(format!("cannot prepare the job's files: {e}")),
            }
        }
        let owned = spec.owned_files.clone();
        let (reply, started) = oneshot::channel();
        let request = spawn::Request {
            spec,
            log_file,
            reply,
            keep_alive: Arc::clone(&self.inner),
            span: tracing::Span::current(),
        };
        let i = self
            .inner
            .next
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % self.inner.requests.len();
        if self.inner.requests[i].send(request).is_err() {
            return Started::Failed("the runner's spawner thread is gone".to_string());
        }
        let started = started
            .await
            .unwrap_or_else(|_| Started::Failed("the runner's spawner thread failed".to_string()));
        if matches!(started, Started::Shortage(_)) {
            // The task goes back to pending: leave none of its files behind.
            for file in owned {
                let _ = tokio::fs::remove_file(file).await;
            }
        }
        started
    }
}
