//! The owner of one task's process: a tokio task that selects on the leader's
//! exit (through its pidfd), the deadline and stop requests. Stopping sends
//! SIGTERM to the group, arms the kill grace, and sends SIGKILL when it ends. The
//! leader is only reaped once its group is empty or killed, so its pid and group
//! id stay reserved for as long as we may signal them.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use super::log::LogStats;
use super::sys::{self, ExitStatus};
use super::{Inner, RunReport, StopReason, group};
use crate::model::Outcome;

/// How often a stopped task's group is checked for members that outlive the
/// leader during the kill grace.
const GROUP_POLL: Duration = Duration::from_millis(20);
/// How long the log copy may go on after the leader's exit and the group's end
/// (only a process that left the group can still hold the pipe by then).
const LOG_DRAIN: Duration = Duration::from_millis(200);

/// Why the stop sequence began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopCause {
    Deadline,
    Asked(StopReason),
}

/// Everything the owner task holds.
pub(super) struct Owner {
    pub pid: i32,
    pub pidfd: AsyncFd<OwnedFd>,
    pub deadline: Instant,
    pub kill_grace: Duration,
    pub control: mpsc::Receiver<StopReason>,
    pub log: JoinHandle<LogStats>,
    pub log_finish: oneshot::Sender<Instant>,
    pub stdin: Option<JoinHandle<()>>,
    pub done: oneshot::Sender<RunReport>,
    pub keep_alive: Arc<Inner>,
}

/// Kills the group if the owner is dropped before it reaped the leader (a
/// panic, or the runtime shutting down), so no task runs unsupervised.
struct KillOnDrop {
    pid: i32,
    armed: bool,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let pid = self.pid;
            let _ = sys::killpg(pid, libc::SIGKILL);
            // Reaping blocks until the kill lands; keep that off the runtime.
            let _ = std::thread::Builder::new()
                .name("jobslot-reaper".to_string())
                .spawn(move || sys::reap(pid));
        }
    }
}

impl Owner {
    /// Supervises the child until it is reaped, then sends the report.
    pub async fn run(mut self) {
        let pid = self.pid;
        let mut guard = KillOnDrop { pid, armed: true };
        let mut stop: Option<(StopCause, Instant)> = None; // (cause, SIGKILL time)
        let mut signaled_at = None;
        let mut killed = false;
        let mut control_open = true;
        let exit = loop {
            let kill_at = stop.map(|(_, at)| at);
            tokio::select! {
                biased;
                exit = wait_exit(pid, &self.pidfd) => break exit,
                _ = sleep_until(self.deadline), if stop.is_none() => {
                    signaled_at = Some(self.terminate(&mut stop, StopCause::Deadline));
                }
                asked = self.control.recv(), if stop.is_none() && control_open => match asked {
                    Some(why) => signaled_at = Some(self.terminate(&mut stop, StopCause::Asked(why))),
                    None => control_open = false,
                },
                _ = sleep_until(kill_at.unwrap_or(self.deadline)), if kill_at.is_some() && !killed => {
                    tracing::info!(pid, "kill grace over; sending SIGKILL to the task's group");
                    kill_group(pid, libc::SIGKILL);
                    killed = true;
                }
            }
        };
        let exited_at = Instant::now();
        let ended = SystemTime::now();
        tracing::debug!(pid, ?exit, "task leader exited");

        if let Some((_, kill_at)) = stop
            && !killed
        {
            wait_group_gone(pid, kill_at).await;
        }
        // A task's end ends its process group.
        kill_group(pid, libc::SIGKILL);
        sys::reap(pid);
        guard.armed = false;

        if let Some(stdin) = self.stdin.take() {
            stdin.abort();
        }
        let _ = self.log_finish.send(Instant::now() + LOG_DRAIN);
        let log = (&mut self.log).await.unwrap_or_default();

        let report = RunReport {
            outcome: outcome(exit, stop.map(|(cause, _)| cause), pid),
            ended,
            signaled_at,
            exited_at,
            log_bytes: log.bytes,
            log_truncated: log.truncated,
        };
        let _ = self.done.send(report);
        drop(self.keep_alive);
    }

    /// Sends SIGTERM to the group and arms the kill grace; returns when.
    fn terminate(&self, stop: &mut Option<(StopCause, Instant)>, cause: StopCause) -> Instant {
        let now = Instant::now();
        tracing::info!(
            pid = self.pid,
            ?cause,
            "stopping task: SIGTERM to its group"
        );
        kill_group(self.pid, libc::SIGTERM);
        *stop = Some((cause, now + self.kill_grace));
        now
    }
}

/// Signals the group; failure (the group is already empty) is only logged.
fn kill_group(pgid: i32, signal: i32) {
    if let Err(error) = sys::killpg(pgid, signal) {
        tracing::debug!(pgid, signal, %error, "killpg failed");
    }
}

/// Waits until the leader has exited and returns its status, leaving it
/// unreaped.
async fn wait_exit(pid: i32, pidfd: &AsyncFd<OwnedFd>) -> std::io::Result<ExitStatus> {
    loop {
        let _ready = pidfd.readable().await?;
        if let Some(status) = sys::exit_status_nowait(pid)? {
            return Ok(status);
        }
        // A pidfd is readable once the process has exited, so this is a rare
        // race with the kernel's bookkeeping: look again shortly (readiness is
        // not cleared, so the next `readable` returns at once).
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// After a stopped leader exited within the grace, waits until no other live
/// process is left in its group, or until the grace ends.
async fn wait_group_gone(pgid: i32, kill_at: Instant) {
    loop {
        let members = tokio::task::spawn_blocking(move || group::live_members(pgid, pgid))
            .await
            .unwrap_or_default();
        if members.is_empty() {
            return;
        }
        let now = Instant::now();
        if now >= kill_at {
            tracing::info!(pgid, ?members, "group outlived the kill grace; killing it");
            return;
        }
        sleep_until((now + GROUP_POLL).min(kill_at)).await;
    }
}

/// The outcome for an exit status, given whether and why jobslot stopped it.
fn outcome(exit: std::io::Result<ExitStatus>, cause: Option<StopCause>, pid: i32) -> Outcome {
    let exit = match exit {
        Ok(exit) => exit,
        Err(error) => {
            tracing::error!(pid, %error, "lost track of a task's process");
            return Outcome::SpawnError(format!("lost track of the process: {error}"));
        }
    };
    let (exit_code, signal) = match exit {
        ExitStatus::Code(code) => (Some(code), None),
        ExitStatus::Signal(sig) => (None, Some(sig)),
    };
    match cause {
        None => match exit {
            ExitStatus::Code(code) => Outcome::Exited(code),
            ExitStatus::Signal(sig) => Outcome::Signaled(sig),
        },
        Some(StopCause::Deadline) => Outcome::TimedOut { exit_code, signal },
        Some(StopCause::Asked(StopReason::Cancel)) => Outcome::Canceled { exit_code, signal },
        Some(StopCause::Asked(StopReason::Shutdown)) => Outcome::Shutdown { exit_code, signal },
        Some(StopCause::Asked(StopReason::Expire)) => Outcome::Expired { exit_code, signal },
    }
}
