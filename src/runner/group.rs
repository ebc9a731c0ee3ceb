//! Process groups seen through `/proc`: who is still in a task's group, when a
//! process started (to tell a pid from its reuse), and the cleanup of groups left
//! behind by an instance that died without reaping them.

use std::fs;
use std::os::fd::AsFd;

use super::sys;

/// The fields of `/proc/<pid>/stat` the runner cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// Field 3: R, S, D, Z, …
    pub state: u8,
    /// Field 4: the parent's pid.
    pub ppid: i32,
    /// Field 5: the process group id.
    pub pgrp: i32,
    /// Field 22: start time in clock ticks since boot.
    pub start_ticks: u64,
}

impl ProcStat {
    /// A zombie (or dead) process runs nothing and holds nothing but its pid.
    pub fn is_dead(&self) -> bool {
        matches!(self.state, b'Z' | b'X' | b'x')
    }
}

/// Parses the text of `/proc/<pid>/stat`. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from its last `)`.
pub(crate) fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    // Fields 6..=21 lie between pgrp (5) and starttime (22).
    let start_ticks = fields.nth(16)?.parse().ok()?;
    Some(ProcStat {
        state,
        ppid,
        pgrp,
        start_ticks,
    })
}

/// Reads and parses `/proc/<pid>/stat`; `None` if the process is gone.
pub(crate) fn read_stat(pid: i32) -> Option<ProcStat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// When process `pid` started, in clock ticks since boot (`/proc/<pid>/stat`
/// field 22). Together with the pid it names one process for good: a reused pid
/// has another start time. `None` if the process does not exist.
pub fn process_start_ticks(pid: i32) -> Option<u64> {
    read_stat(pid).map(|s| s.start_ticks)
}

/// Every process on the host, with its stat. Processes that vanish while we
/// look are skipped.
pub(crate) fn all_processes() -> impl Iterator<Item = (i32, ProcStat)> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            Some((pid, read_stat(pid)?))
        })
}

/// The live (non-zombie) members of process group `pgid`, excluding `except`
/// (the runner's own unreaped leader, which is a zombie anyway).
pub(crate) fn live_members(pgid: i32, except: i32) -> Vec<i32> {
    all_processes()
        .filter(|(pid, st)| *pid != except && st.pgrp == pgid && !st.is_dead())
        .map(|(pid, _)| pid)
        .collect()
}

/// Whether a NUL-separated environment block holds exactly `name=value`.
pub(crate) fn environ_has(environ: &[u8], name: &str, value: &str) -> bool {
    let wanted = format!("{name}={value}");
    environ
        .split(|b| *b == 0)
        .any(|entry| entry == wanted.as_bytes())
}

/// Whether process `pid` is live, in group `pgid` (when known), and started
/// with `JOBSLOT_TASK_ID=<task_id>` in its environment.
fn belongs_to_task(pid: i32, pgid: Option<i32>, task_id: &str) -> bool {
    let Some(st) = read_stat(pid) else {
        return false;
    };
    if pgid.is_some_and(|g| st.pgrp != g) || st.is_dead() {
        return false;
    }
    fs::read(format!("/proc/{pid}/environ"))
        .map(|env| environ_has(&env, "JOBSLOT_TASK_ID", task_id))
        .unwrap_or(false)
}

/// Kills what is left of a dead instance's task: every live process whose
/// process group is `pgid` (any group when the instance died before recording
/// it) and whose environment (as it was at its `exec`) carries
/// `JOBSLOT_TASK_ID=<task_id>`. The variable is the proof that the
/// process belongs to that task and not to an unrelated group that reused the
/// number. Each match is pinned with a pidfd, checked again, and sent SIGKILL
/// through the pidfd, so a pid reused in between is never hit.
///
/// Returns how many processes were killed. Processes that vanish or that we may
/// not inspect or signal are skipped; this never panics. Processes that cleared
/// the variable from their environment before `exec` are not found.
pub fn kill_leftover_group(pgid: Option<i32>, task_id: &str) -> usize {
    if pgid.is_some_and(|g| g <= 1) || task_id.is_empty() {
        return 0;
    }
    let candidates: Vec<i32> = all_processes()
        .filter(|(_, st)| pgid.is_none_or(|g| st.pgrp == g) && !st.is_dead())
        .map(|(pid, _)| pid)
        .filter(|pid| belongs_to_task(*pid, pgid, task_id))
        .collect();
    let mut killed = 0;
    for pid in candidates {
        let Ok(pidfd) = sys::pidfd_open(pid) else {
            continue;
        };
        // The pidfd now pins one process; make sure it is still the one we saw.
        if !belongs_to_task(pid, pgid, task_id) {
            continue;
        }
        match sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL) {
            Ok(()) => {
                tracing::info!(
                    pid,
                    ?pgid,
                    task_id,
                    "killed a leftover process of a dead instance's task"
                );
                killed += 1;
            }
            Err(error) => tracing::debug!(pid, ?pgid, %error, "could not kill leftover process"),
        }
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        let text = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 \
                    18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        let st = parse_stat(text).expect("parses");
        assert_eq!(st.state, b'S');
        assert_eq!(st.ppid, 1);
        assert_eq!(st.pgrp, 4242);
        assert_eq!(st.start_ticks, 987654);
        assert!(parse_stat("12 (truncated) S 1").is_none());
    }

    #[test]
    fn own_start_ticks_are_stable() {
        let me = std::process::id() as i32;
        let a = process_start_ticks(me).expect("we exist");
        assert_eq!(process_start_ticks(me), Some(a));
    }

    #[test]
    fn environ_match_is_exact() {
        let env = b"A=1\0JOBSLOT_TASK_ID=t10\0B=2\0";
        assert!(environ_has(env, "JOBSLOT_TASK_ID", "t10"));
        assert!(!environ_has(env, "JOBSLOT_TASK_ID", "t1"));
        assert!(!environ_has(env, "TASK_ID", "t10"));
    }
}
