//! Process trees from `/proc`: find a process's descendants, pause and resume
//! them like a paused machine, count a job's live processes, and kill whatever
//! a test left running.
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// What `/proc/PID/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: i32,
    pub ppid: i32,
    pub pgrp: i32,
    /// `R`, `S`, `D`, `T` (stopped), `t` (traced), `Z` (zombie), …
    pub state: char,
}

impl ProcStat {
    /// Neither a zombie nor gone.
    pub fn exists(&self) -> bool {
        self.state != 'Z' && self.state != 'X'
    }

    /// Stopped by a signal (or a tracer): it does no work until resumed.
    pub fn stopped(&self) -> bool {
        self.state == 'T' || self.state == 't'
    }
}

/// The stat of one process, if it exists.
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold anything: the fields
    // start after the last ')'.
    let (_, rest) = text.rsplit_once(')')?;
    let mut f = rest.split_ascii_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    let pgrp = f.next()?.parse().ok()?;
    Some(ProcStat {
        pid,
        ppid,
        pgrp,
        state,
    })
}

/// Every process's stat.
pub fn all_procs() -> Vec<ProcStat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(proc_stat)
        .collect()
}

/// The descendants of `root` (not `root` itself), at this moment.
pub fn descendants(root: i32) -> BTreeSet<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for p in all_procs() {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let mut out = BTreeSet::new();
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        for &c in children.get(&pid).into_iter().flatten() {
            if out.insert(c) {
                todo.push(c);
            }
        }
    }
    out
}

/// Whether the process's environment holds exactly `entry` (`KEY=VALUE`).
pub fn has_env(pid: i32, entry: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .is_ok_and(|env| env.split(|b| *b == 0).any(|e| e == entry.as_bytes()))
}

/// Whether the process's working directory is `dir`.
pub fn cwd_is(pid: i32, dir: &Path) -> bool {
    std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|d| d == dir)
}

fn signal(pid: i32, sig: Signal) {
    let _ = kill(Pid::from_raw(pid), sig);
}

/// Pauses `root` and all its descendants (SIGSTOP), as a machine that stops
/// running: `root` first so it forks no more, then its descendants, again
/// until no new one shows up. Returns every process stopped, `root` first.
pub fn freeze_tree(root: i32) -> Vec<i32> {
    signal(root, Signal::SIGSTOP);
    let mut stopped = vec![root];
    let mut seen = BTreeSet::from([root]);
    for _ in 0..20 {
        let new: Vec<i32> = descendants(root)
            .into_iter()
            .filter(|p| !seen.contains(p))
            .collect();
        if new.is_empty() {
            break;
        }
        for pid in new {
            signal(pid, Signal::SIGSTOP);
            seen.insert(pid);
            stopped.push(pid);
        }
    }
    stopped
}

/// Resumes what `freeze_tree` stopped (descendants first, `root` last), and
/// any descendant of `root` that is still stopped.
pub fn thaw(frozen: &[i32]) {
    let Some(&root) = frozen.first() else {
        return;
    };
    for &pid in frozen.iter().skip(1) {
        signal(pid, Signal::SIGCONT);
    }
    for pid in descendants(root) {
        signal(pid, Signal::SIGCONT);
    }
    signal(root, Signal::SIGCONT);
}

/// SIGKILLs `root` and every descendant (a stopped process dies too).
pub fn kill_tree(root: i32) {
    let all = freeze_tree(root);
    for pid in all {
        signal(pid, Signal::SIGKILL);
    }
}

/// SIGKILLs every process (of this user) whose working directory is `dir`,
/// which is where task processes run: what killed instances left behind.
pub fn kill_all_in(dir: &Path) {
    let me = std::process::id() as i32;
    for p in all_procs() {
        if p.pid != me && p.exists() && cwd_is(p.pid, dir) {
            signal(p.pid, Signal::SIGKILL);
        }
    }
}

/// Process-group leaders (the task processes jobslot starts) with
/// `JOBSLOT_JOB=<job>` in their environment, running in `project`, that are
/// neither zombies nor gone:
/// `(live, of which stopped)`.
pub fn job_leaders(job: &str, project: &Path) -> (Vec<i32>, usize) {
    let entry = format!("JOBSLOT_JOB={job}");
    let mut live = Vec::new();
    let mut stopped = 0;
    for p in all_procs() {
        // Tasks run in their project's directory: other tests' processes
        // of a job with the same name are not counted.
        if p.pid == p.pgrp && p.exists() && has_env(p.pid, &entry) && cwd_is(p.pid, project) {
            // Read again: it may have died while its environment was read.
            if let Some(again) = proc_stat(p.pid).filter(ProcStat::exists) {
                live.push(p.pid);
                if again.stopped() {
                    stopped += 1;
                }
            }
        }
    }
    (live, stopped)
}
