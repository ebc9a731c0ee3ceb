//! Starting a child with `clone(CLONE_VM | CLONE_VFORK)`, the way `posix_spawn`
//! does, plus the one thing `posix_spawn` cannot do: arm `PR_SET_PDEATHSIG`.
//!
//! A plain `fork` of a multi-threaded scheduler copies its page tables and
//! write-protects its memory, which costs every thread TLB shootdowns and stalls
//! page faults on the address-space lock; at hundreds of spawns a second that
//! dominated the scheduler's CPU time. The vfork-style child shares the parent's
//! memory until it calls `execve`, so it must only make async-signal-safe system
//! calls on data prepared beforehand: everything it touches is built here, in
//! the parent, before the clone.
//!
//! Every child starts with `no_new_privs` (no set-user-ID or file-capability
//! gain at `exec`). A job with a `user` switches to it here, with the raw
//! `setgroups`, `setresgid` and `setresuid` system calls: glibc's wrappers of
//! those broadcast the change to every thread of the process ("setxid"
//! signals), and this child shares the scheduler's memory and so glibc's list
//! of the scheduler's threads: the wrapper would change the scheduler's own
//! credentials, or deadlock waiting for threads that are not ours.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use super::SpawnSpec;
use super::child_error::{SpawnError, Step, child_error};

/// Everything the child needs, as raw pointers into memory the parent keeps
/// alive (and does not touch) until the child has exec'd or exited.
struct ChildArgs {
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cwd: *const libc::c_char,
    stdin: libc::c_int,
    output: libc::c_int,
    parent: libc::pid_t,
    /// Whether to switch to `uid`, `gid` and `groups` (a job with a `user`).
    switch: bool,
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: *const libc::gid_t,
    ngroups: usize,
    /// Set by the child to the errno of the step that failed.
    error: libc::c_int,
    /// Set by the child to the step that failed.
    step: Step,
}

const CHILD_STACK: usize = 64 * 1024;

/// The child side: runs on its own stack in the parent's memory. Only system
/// calls; no allocation, no locks.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` points to the ChildArgs the parent keeps alive while it is
    // suspended by CLONE_VFORK, and `groups` to `ngroups` gids of the RunAs
    // that the borrowed SpawnSpec holds. Every call below is an
    // async-signal-safe system call wrapper (`syscall` included: it only moves
    // its arguments into registers and traps); none allocates or locks, and
    // the credential calls change this task alone (no setxid broadcast to the
    // threads whose memory we share). Failures record errno and `_exit`.
    unsafe {
        let a = &mut *(arg as *mut ChildArgs);
        let fail = |a: &mut ChildArgs, step: Step| -> ! {
            a.error = *libc::__errno_location();
            if a.error == 0 {
                a.error = libc::EINVAL;
            }
            a.step = step;
            libc::_exit(127)
        };
        // Handlers installed by the parent must not run in this child: reset
        // every caught signal to its default, and SIGPIPE (ignored by Rust) too.
        for sig in 1..libc::SIGRTMAX() {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                && (old.sa_sigaction != libc::SIG_IGN || sig == libc::SIGPIPE)
                && old.sa_sigaction != libc::SIG_DFL
            {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
        if libc::setpgid(0, 0) != 0 {
            fail(a, Step::ProcessGroup);
        }
        // No exec of this task or its descendants gains privileges (set-user-ID
        // or set-group-ID files, file capabilities). Inherited and permanent.
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0) != 0 {
            fail(a, Step::NoNewPrivs);
        }
        // Raw system calls, never glibc's setgroups/setgid/setuid, which would
        // signal the scheduler's threads (see the module's documentation). Each
        // changes the credentials of this task only. Groups first, while we
        // still may; the uid last, as it drops the right to change the others.
        if a.switch {
            let (uid, gid) = (a.uid as libc::c_long, a.gid as libc::c_long);
            if libc::syscall(libc::SYS_setgroups, a.ngroups as libc::c_long, a.groups) != 0 {
                fail(a, Step::Groups);
            }
            if libc::syscall(libc::SYS_setresgid, gid, gid, gid) != 0 {
                fail(a, Step::Gid);
            }
            if libc::syscall(libc::SYS_setresuid, uid, uid, uid) != 0 {
                fail(a, Step::Uid);
            }
        }
        // Armed after the switch: a change of credentials clears the
        // parent-death signal.
        if libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        ) != 0
        {
            fail(a, Step::DeathSignal);
        }
        // The scheduler may have died before the death signal was armed.
        if libc::getppid() != a.parent {
            libc::_exit(1);
        }
        if libc::dup2(a.stdin, 0) < 0 || libc::dup2(a.output, 1) < 0 || libc::dup2(a.output, 2) < 0
        {
            fail(a, Step::Stdio);
        }
        if libc::chdir(a.cwd) != 0 {
            fail(a, Step::Chdir);
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::execve(a.path, a.argv, a.envp);
        fail(a, Step::Exec)
    }
}

fn cstring(bytes: &[u8], what: &str) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} contains a NUL byte"),
        )
    })
}

/// The child's environment: ours, minus `env_remove`, plus the `HOME`,
/// `USER`, `LOGNAME` and `SHELL` of `run_as` (if any), plus `env`.
fn environment(spec: &SpawnSpec) -> io::Result<Vec<CString>> {
    let user_env = spec.run_as.as_ref().map(|r| r.env()).unwrap_or_default();
    let added: Vec<&(String, String)> = user_env
        .iter()
        .filter(|(k, _)| !spec.env.iter().any(|(a, _)| a == k))
        .chain(&spec.env)
        .collect();
    let mut vars: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| {
            !spec
                .env_remove
                .iter()
                .any(|r| OsStr::new(r) == k.as_os_str())
                && !added.iter().any(|(a, _)| OsStr::new(a) == k.as_os_str())
        })
        .collect();
    vars.extend(added.into_iter().map(|(k, v)| (k.into(), v.into())));
    vars.into_iter()
        .map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend(v.into_vec());
            cstring(&kv, "an environment variable")
        })
        .collect()
}

/// Starts `spec.program` as the leader of a new process group, with `stdin`
/// and `output` (stdout and stderr), and returns its pid. Exec errors (a
/// missing file, no execute permission, a bad interpreter) are returned here,
/// as are failures to switch to `spec.run_as`.
pub(super) fn spawn(
    spec: &SpawnSpec,
    stdin: &OwnedFd,
    output: &OwnedFd,
) -> Result<i32, SpawnError> {
    // The child dup2()s these onto 0, 1 and 2: keep them clear of those numbers
    // (possible when the scheduler itself runs with a standard stream closed).
    let stdin = above_stdio(stdin)?;
    let output = above_stdio(output)?;
    let path = cstring(spec.program.as_os_str().as_bytes(), "the program path")?;
    let cwd = cstring(spec.cwd.as_os_str().as_bytes(), "the working directory")?;
    let env = environment(spec)?;
    let argv: [*const libc::c_char; 2] = [path.as_ptr(), std::ptr::null()];
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());
    let mut args = ChildArgs {
        path: path.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        cwd: cwd.as_ptr(),
        stdin: stdin.as_raw_fd(),
        output: output.as_raw_fd(),
        // SAFETY: getpid has no preconditions.
        parent: unsafe { libc::getpid() },
        switch: spec.run_as.is_some(),
        uid: spec.run_as.as_ref().map_or(0, |r| r.uid),
        gid: spec.run_as.as_ref().map_or(0, |r| r.gid),
        groups: spec
            .run_as
            .as_ref()
            .map_or(std::ptr::null(), |r| r.groups.as_ptr()),
        ngroups: spec.run_as.as_ref().map_or(0, |r| r.groups.len()),
        error: 0,
        step: Step::Exec,
    };
    let mut stack = vec![0u8; CHILD_STACK];
    // From before the clone until the pid is registered, the reaper cannot
    // look at our children: it never mistakes this leader for a stray.
    let gate = super::reaper::spawn_gate();
    // SAFETY: the stack grows down on x86_64 and aarch64: pass its (aligned)
    // top. All signals are blocked around the clone so no handler runs on the
    // child's stack before it resets them; CLONE_VFORK suspends this thread
    // until the child has exec'd or exited, so `args`, `stack` and every
    // pointer in them stay valid and unaliased for the child's whole life.
    let pid = unsafe {
        let top = stack.as_mut_ptr().add(CHILD_STACK);
        let top = (top as usize & !15) as *mut libc::c_void;
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let pid = libc::clone(
            child_main,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            &mut args as *mut ChildArgs as *mut libc::c_void,
        );
        let clone_error = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if pid < 0 {
            return Err(clone_error.into());
        }
        pid
    };
    super::reaper::own(pid);
    drop(gate);
    drop(stack);
    if args.error != 0 {
        super::sys::reap(pid);
        return Err(child_error(args.step, args.error, spec));
    }
    Ok(pid)
}

/// `fd` itself, or a close-on-exec duplicate numbered 3 or above.
fn above_stdio(fd: &OwnedFd) -> io::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor that we then own.
    let dup = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `dup` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}
