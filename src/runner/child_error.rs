//! Why a spawn failed, in words: the step of the vfork child that failed
//! (entering the project directory, switching user, the exec…) and the OS
//! error, which still tells a shortage from the job's fault.

use std::io;

use super::SpawnSpec;
use super::identity::RunAs;

/// The child's steps that can fail, for the spawn error's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub(super) enum Step {
    ProcessGroup,
    NoNewPrivs,
    Groups,
    Gid,
    Uid,
    DeathSignal,
    Stdio,
    Chdir,
    Exec,
}

/// A spawn that failed: what went wrong, for the task's `spawn-error`, and
/// the OS error (whose number tells a shortage from the job's fault).
#[derive(Debug)]
pub(super) struct SpawnError {
    pub message: String,
    pub error: io::Error,
}

impl From<io::Error> for SpawnError {
    fn from(error: io::Error) -> Self {
        Self {
            message: error.to_string(),
            error,
        }
    }
}

/// The message for a child that failed at `step`. An exec error alone is the
/// OS's text (`No such file or directory (os error 2)`), as before.
pub(super) fn child_error(step: Step, errno: i32, spec: &SpawnSpec) -> SpawnError {
    let error = io::Error::from_raw_os_error(errno);
    let who = spec.run_as.as_deref().map(RunAs::describe);
    let as_who = who
        .as_deref()
        .map(|w| format!(" as {w}"))
        .unwrap_or_default();
    let message = match step {
        Step::Exec if who.is_none() => error.to_string(),
        Step::Exec => format!(
            "{error}: cannot execute {}{as_who} (it and every directory above it must be readable and searchable by that user)",
            spec.program.display()
        ),
        Step::Chdir => format!(
            "cannot enter the project directory {}{as_who}: {error}",
            spec.cwd.display()
        ),
        Step::ProcessGroup => format!("cannot start a process group: {error}"),
        Step::NoNewPrivs => format!("cannot set no_new_privs: {error}"),
        Step::Groups | Step::Gid | Step::Uid => {
            format!("cannot switch to {}: {error}", who.unwrap_or_default())
        }
        Step::DeathSignal => format!("cannot arm the parent-death signal: {error}"),
        Step::Stdio => format!("cannot attach stdin, stdout and stderr: {error}"),
    };
    SpawnError { message, error }
}
