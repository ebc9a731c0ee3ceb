//! Reaping what is re-parented to jobslot, without touching what it owns.
//!
//! `jobslot run` registers as a child subreaper (`PR_SET_CHILD_SUBREAPER`), and
//! may be PID 1 of a container: either way the processes a task leaves behind
//! when its leader exits (a daemon that called `setsid`, a background process)
//! become *our* children when they are orphaned, and nobody else will ever
//! wait for them. A reaper thread sweeps our children every
//! [`SWEEP_EVERY`] and reaps, one pid at a time with `waitpid(pid, WNOHANG)`
//! (never `waitpid(-1)`), those that are zombies, are not task leaders the
//! runner owns, and were already zombies [`ZOMBIE_GRACE`] earlier (so a child
//! some other part of the process started and waits for itself, such as a
//! credential helper, is left to its waiter).
//!
//! A leader is owned from its `clone` to its reap by the runner: the runner
//! deliberately keeps an exited leader as a zombie (`waitid(…WNOWAIT)`) so
//! that its pid and process group id stay reserved while it may still signal
//! the group. Spawners hold [`spawn_gate`] (shared) from before the `clone`
//! until the new pid is registered with [`own`]; the reaper takes it
//! exclusively while it checks and reaps, so it never sees a leader that
//! exists but is not registered yet. Ownership is counted, so a pid reused by
//! a new leader between a reap and its [`disown`] stays owned.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use super::group;

/// How often the reaper looks at our children.
pub const SWEEP_EVERY: Duration = Duration::from_millis(200);
/// How long a zombie child is left to whoever may be waiting for it.
pub const ZOMBIE_GRACE: Duration = Duration::from_millis(200);

/// Held shared by spawners around `clone` + [`own`], exclusively by a sweep.
static GATE: RwLock<()> = RwLock::new(());
/// Pids of leaders the runner owns (spawned and not yet reaped), counted.
static OWNED: Mutex<BTreeMap<i32, u32>> = Mutex::new(BTreeMap::new());

/// Taken by a spawner before it clones, released once the child is [`own`]ed.
pub(super) fn spawn_gate() -> RwLockReadGuard<'static, ()> {
    GATE.read().unwrap_or_else(|p| p.into_inner())
}

/// Registers a just-cloned leader (call while holding [`spawn_gate`]).
pub(super) fn own(pid: i32) {
    *OWNED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(pid)
        .or_default() += 1;
}

/// Forgets a leader once the runner has reaped it.
pub(super) fn disown(pid: i32) {
    let mut owned = OWNED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(n) = owned.get_mut(&pid) {
        *n -= 1;
        if *n == 0 {
            owned.remove(&pid);
        }
    }
}

fn is_owned(pid: i32) -> bool {
    OWNED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains_key(&pid)
}

/// Registers this process as a child subreaper and starts the reaper thread
/// (once). Without the subreaper flag (an old kernel) the thread still runs:
/// as PID 1 the kernel gives us the orphans anyway.
pub fn start() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer flag and
        // touches no memory of ours.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        if rc != 0 {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                "cannot become a child subreaper; processes that tasks leave behind are reaped only when jobslot is PID 1"
            );
        }
        let spawned = std::thread::Builder::new()
            .name("jobslot-reaper".to_string())
            .spawn(|| {
                let mut seen = HashMap::new();
                loop {
                    std::thread::sleep(SWEEP_EVERY);
                    let reaped = sweep(children(), &mut seen, Instant::now());
                    if reaped > 0 {
                        tracing::debug!(reaped, "reaped processes left behind by tasks");
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the reaper thread; zombies of tasks' leftovers will pile up");
        }
    });
}

/// Our child processes: from `/proc/self/task/*/children` (children are
/// listed under the thread that created or inherited them), or, on a kernel
/// without that file, by scanning `/proc` for our pid as parent.
fn children() -> Vec<i32> {
    let mut out = Vec::new();
    let mut have_files = false;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
                have_files = true;
                out.extend(
                    text.split_ascii_whitespace()
                        .filter_map(|p| p.parse::<i32>().ok()),
                );
            }
        }
    }
    if !have_files {
        let me = std::process::id() as i32;
        out = group::all_processes()
            .filter(|(_, st)| st.ppid == me)
            .map(|(pid, _)| pid)
            .collect();
    }
    out
}

/// One sweep over `children` (ours): reaps the zombies that are not owned
/// leaders and that were zombies already `ZOMBIE_GRACE` before `now`. `seen`
/// keeps when each zombie (pid, start time) was first seen. Returns how many
/// were reaped.
fn sweep(children: Vec<i32>, seen: &mut HashMap<(i32, u64), Instant>, now: Instant) -> usize {
    let zombies: Vec<(i32, u64)> = children
        .into_iter()
        .filter_map(|pid| {
            let st = group::read_stat(pid)?;
            (st.state == b'Z').then_some((pid, st.start_ticks))
        })
        .collect();
    seen.retain(|k, _| zombies.contains(k));
    let mut due = Vec::new();
    for z in zombies {
        let first = *seen.entry(z).or_insert(now);
        if now.duration_since(first) >= ZOMBIE_GRACE {
            due.push(z);
        }
    }
    if due.is_empty() {
        return 0;
    }
    let _exclusive = GATE.write().unwrap_or_else(|p| p.into_inner());
    let mut reaped = 0;
    for (pid, ticks) in due {
        seen.remove(&(pid, ticks));
        // Checked under the gate: a leader is owned from its clone on.
        if is_owned(pid) || group::read_stat(pid).is_none_or(|st| st.start_ticks != ticks) {
            continue;
        }
        let mut status = 0;
        // SAFETY: `status` is a valid, writable int for the duration of the call.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if rc == pid {
            reaped += 1;
        }
    }
    reaped
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zombie child of ours that nobody owns is reaped after the grace; an
    /// owned one is never reaped.
    #[test]
    fn only_unowned_zombies_are_reaped_and_only_after_the_grace() {
        let spawn_exited = || {
            let child = std::process::Command::new("/bin/true")
                .spawn()
                .expect("spawn true");
            let pid = child.id() as i32;
            // Forget the handle: nothing in std will wait for it now.
            std::mem::forget(child);
            assert!(
                (0..500).any(|_| {
                    std::thread::sleep(Duration::from_millis(2));
                    group::read_stat(pid).is_some_and(|s| s.state == b'Z')
                }),
                "child {pid} did not become a zombie"
            );
            pid
        };
        let stray = spawn_exited();
        let leader = spawn_exited();
        own(leader);
        // Only these two: other tests' children are not this test's to reap.
        let mine = || vec![stray, leader];
        let mut seen = HashMap::new();
        let t0 = Instant::now();
        assert_eq!(sweep(mine(), &mut seen, t0), 0);
        assert!(
            group::read_stat(stray).is_some(),
            "not reaped before the grace"
        );
        assert_eq!(sweep(mine(), &mut seen, t0 + ZOMBIE_GRACE), 1);
        assert!(group::read_stat(stray).is_none(), "reaped after the grace");
        assert_eq!(sweep(mine(), &mut seen, t0 + ZOMBIE_GRACE * 3), 0);
        assert!(
            group::read_stat(leader).is_some_and(|s| s.state == b'Z'),
            "an owned leader stays a zombie"
        );
        // Reaping through the runner disowns it.
        super::super::sys::reap(leader);
        assert!(!is_owned(leader));
    }
}
