//! Thin, safe wrappers over the Linux calls the runner needs to follow a child
//! without PID races: `pidfd_open`, `pidfd_send_signal`, `waitid(…WNOWAIT)` to
//! read an exit status while leaving the leader an unreaped zombie (so its pid and
//! process group id cannot be reused while we still signal the group), `waitpid`
//! to reap it at last, and `killpg`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// How a process ended, as `waitid` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitStatus {
    /// It called `exit` with this code.
    Code(i32),
    /// A signal with this number ended it.
    Signal(i32),
}

/// Opens a pidfd for `pid`. The caller must make sure `pid` still names the
/// process it means (e.g. an unreaped child of ours), or re-check after opening.
pub(crate) fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and a flags word and returns a new file
    // descriptor or -1; no memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("pidfd out of range"))?;
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends `signal` to the process behind `pidfd` (never to a reused pid).
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: i32) -> io::Result<()> {
    // SAFETY: a valid descriptor, a signal number, a null siginfo pointer (allowed:
    // the kernel fills in the default info) and zero flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads the exit status of our child `pid` if it has exited, without reaping it.
/// `Ok(None)` means it is still running.
pub(crate) fn exit_status_nowait(pid: i32) -> io::Result<Option<ExitStatus>> {
    loop {
        // SAFETY: siginfo_t is plain old data; all-zero is a valid value and is
        // what lets us tell "no child has changed state" (si_pid stays 0).
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, writable siginfo_t that outlives the call.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT | libc::WNOHANG,
            )
        };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        // SAFETY: after a successful waitid with WEXITED the kernel filled the
        // SIGCHLD member of the union (or left it zero, meaning no change).
        let (si_pid, si_status) = unsafe { (info.si_pid(), info.si_status()) };
        if si_pid == 0 {
            return Ok(None);
        }
        return Ok(Some(match info.si_code {
            libc::CLD_EXITED => ExitStatus::Code(si_status),
            _ => ExitStatus::Signal(si_status),
        }));
    }
}

/// Reaps our exited child `pid` (a zombie by now, so this does not block),
/// and forgets it as an owned leader.
pub(crate) fn reap(pid: i32) {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid, writable int for the duration of the call.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if rc < 0 {
            tracing::warn!(pid, error = %io::Error::last_os_error(), "could not reap child");
        }
        super::reaper::disown(pid);
        return;
    }
}

/// Sends `signal` to every process in group `pgid`. Errors (typically ESRCH: the
/// group is already empty) are returned for logging only.
pub(crate) fn killpg(pgid: i32, signal: i32) -> io::Result<()> {
    if pgid <= 1 {
        // killpg(0) / killpg(1) would hit our own group or everything: never.
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: killpg takes two integers and touches no memory of ours.
    let rc = unsafe { libc::killpg(pgid, signal) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether a failed system call failed for want of the machine's resources
/// (descriptors, memory, processes) rather than because of the job: EMFILE,
/// ENFILE, EAGAIN, ENOMEM.
pub(crate) fn is_shortage(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::EAGAIN | libc::ENOMEM)
    )
}

/// Raises the soft limit on open files to the hard limit; returns the limit
/// now in force.
pub(crate) fn raise_open_files_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit that outlives the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(io::Error::last_os_error());
        }
        lim.rlim_cur = lim.rlim_max;
    }
    Ok(lim.rlim_cur)
}

/// Makes this process non-dumpable (`PR_SET_DUMPABLE` 0), first thing in
/// `main`, for every command: its `/proc/<pid>/environ`, `mem`, `fd/`, `maps`
/// and the like then belong to root, so a job running as the same user cannot
/// read the scheduler's secrets (storage keys, API token) from its
/// environment or memory, nor attach a debugger. It also turns off core dumps
/// of jobslot. Tasks are not affected: their `exec` makes them dumpable again.
/// See `docs/decisions.md`, "jobslot is not dumpable".
pub fn make_non_dumpable() -> std::io::Result<()> {
    // SAFETY: prctl with PR_SET_DUMPABLE takes integers only; it changes a
    // flag of this process's memory map and nothing Rust relies on.
    let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0 as libc::c_ulong, 0, 0, 0) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
