//! The spawners: long-lived std threads that perform every fork, so the
//! children's parent-death signal (which follows the forking *thread*) only
//! fires when the instance really dies. For each request (its log file already
//! opened by the caller) a spawner wires stdin and one shared stdout/stderr pipe, spawns the child as a new
//! process-group leader, pins it with a pidfd and hands it to its owner task.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, mpsc};

use tokio::io::AsyncWriteExt;
use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tracing::Instrument;

use super::child::Owner;
use super::{Inner, RunHandle, SpawnSpec, Started, StopHandle, group, log, sys};

/// One spawn, sent from [`super::Runner::start`] to the spawner thread.
#[derive(Debug)]
pub(super) struct Request {
    pub spec: SpawnSpec,
    /// The log file, already open for appending.
    pub log_file: std::fs::File,
    pub reply: oneshot::Sender<Started>,
    /// Handed to the owner: keeps the spawner alive while the child lives.
    pub keep_alive: Arc<Inner>,
    /// The caller's span, for the events of this child's tasks.
    pub span: tracing::Span,
}

/// Starts the spawner thread. It exits when every sender is gone, i.e. when the
/// runner and all owners (hence all children it forked) are gone.
pub(super) fn start_thread(handle: Handle) -> io::Result<mpsc::Sender<Request>> {
    let (tx, rx) = mpsc::channel::<Request>();
    std::thread::Builder::new()
        .name("jobslot-spawner".to_string())
        .spawn(move || {
            while let Ok(request) = rx.recv() {
                let span = request.span;
                let started = span.in_scope(|| {
                    spawn_one(
                        request.spec,
                        request.log_file,
                        &handle,
                        request.keep_alive,
                        &span,
                    )
                });
                // A caller that went away drops the handle; the owner still ends
                // the child at its deadline.
                let _ = request.reply.send(started);
            }
        })?;
    Ok(tx)
}

/// Opens `path` for appending, creating it and its parent directories.
pub(super) fn open_log(path: &std::path::Path) -> io::Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

/// Creates `path` afresh, empty, mode 0600, owned by `uid`:`gid`: whatever was
/// there is removed first (only jobslot's user can write the directory). The
/// open refuses links (`O_EXCL | O_NOFOLLOW`) and the owner is set on the
/// opened descriptor (`fchown`), so no path is followed twice.
pub(super) fn give_file(
    path: &std::path::Path,
    uid: u32,
    gid: u32,
) -> Result<(), (std::path::PathBuf, io::Error)> {
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: io::Error| (path.to_path_buf(), e);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).map_err(fail)?,
        Ok(_) => std::fs::remove_file(path).map_err(fail)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e)),
    }
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(fail)?;
    std::os::unix::fs::fchown(&file, Some(uid), Some(gid)).map_err(fail)
}

/// Spawns one child and gives it to an owner; never panics on OS errors.
fn spawn_one(
    spec: SpawnSpec,
    log_file: std::fs::File,
    handle: &Handle,
    keep_alive: Arc<Inner>,
    span: &tracing::Span,
) -> Started {
    let (output_r, output_w) = match io::pipe() {
        Ok(ends) => ends,
        Err(e) => return failure(format!("cannot create output pipe: {e}"), &e),
    };
    let (stdin_r, stdin_w) = match io::pipe() {
        Ok((r, w)) => (OwnedFd::from(r), OwnedFd::from(w)),
        Err(e) => return failure(format!("cannot create input pipe: {e}"), &e),
    };
    let spawned = super::vfork::spawn(&spec, &stdin_r, &OwnedFd::from(output_w));
    // Our copies of the child's ends are closed here, so the log copy sees end
    // of file once the task's processes close theirs.
    drop(stdin_r);
    let pid = match spawned {
        Ok(pid) => pid,
        Err(e) => return failure(e.message, &e.error),
    };
    let stdin = Some(stdin_w);

    let pidfd = match sys::pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) => return abandon(pid, format!("pidfd_open: {e}"), &e),
    };
    let start_ticks = group::process_start_ticks(pid).unwrap_or_else(|| {
        tracing::warn!(pid, "could not read the start time of a new child");
        0
    });

    let _runtime = handle.enter();
    // SAFETY: the AsyncFd takes ownership of the OwnedFd, which stays open and
    // names the same pidfd until the AsyncFd drops it.
    let registered =
        unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) };
    let pidfd = match registered {
        Ok(fd) => fd,
        Err(e) => {
            let e = io::Error::from(e);
            return abandon(pid, format!("cannot watch the child: {e}"), &e);
        }
    };
    let output = match pipe::Receiver::from_owned_fd(OwnedFd::from(output_r)) {
        Ok(rx) => rx,
        Err(e) => return abandon(pid, format!("cannot read the child's output: {e}"), &e),
    };
    let (log_finish, finish_rx) = oneshot::channel();
    let log_file = tokio::fs::File::from_std(log_file);
    let log = log::copy(output, log_file, spec.log_cap, finish_rx);
    let log = handle.spawn(log.instrument(span.clone()));
    let stdin = stdin.map(|fd| handle.spawn(feed_stdin(fd, spec.stdin).instrument(span.clone())));

    let (control_tx, control) = tokio::sync::mpsc::channel(2);
    let (done_tx, done) = oneshot::channel();
    tracing::debug!(pid, program = %spec.program.display(), "task process started");
    let owner = Owner {
        pid,
        pidfd,
        deadline: spec.deadline,
        kill_grace: spec.kill_grace,
        control,
        log,
        log_finish,
        stdin,
        done: done_tx,
        keep_alive,
    };
    handle.spawn(owner.run().instrument(span.clone()));
    Started::Running(RunHandle {
        pid,
        pgid: pid,
        start_ticks,
        stopper: StopHandle {
            control: control_tx,
        },
        done,
    })
}

/// Kills and reaps a child we cannot supervise, and reports why.
fn abandon(pid: i32, why: String, error: &io::Error) -> Started {
    tracing::error!(pid, %why, "cannot supervise a new child; killing it");
    let _ = sys::killpg(pid, libc::SIGKILL);
    sys::reap(pid);
    failure(why, error)
}

/// A spawn that failed: a [`Started::Shortage`] when the machine ran short
/// (see [`sys::is_shortage`]), else [`Started::Failed`].
pub(super) fn failure(why: String, error: &io::Error) -> Started {
    if sys::is_shortage(error) {
        Started::Shortage(why)
    } else {
        Started::Failed(why)
    }
}

/// Writes the args to the child's stdin, then closes it. The write is
/// asynchronous (never on a spawner thread): a child that never reads only
/// leaves this task pending until the child has exited (EPIPE) or its owner
/// aborts it once the leader is reaped.
async fn feed_stdin(fd: OwnedFd, bytes: Vec<u8>) {
    if bytes.is_empty() {
        return;
    }
    match pipe::Sender::from_owned_fd(fd) {
        Ok(mut tx) => {
            if let Err(error) = tx.write_all(&bytes).await {
                tracing::debug!(%error, "the task did not read all of its stdin");
            }
        }
        Err(error) => tracing::warn!(%error, "cannot write the task's stdin"),
    }
}
