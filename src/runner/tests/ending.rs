//! How tasks end: the deadline's SIGTERM and SIGKILL, stops from elsewhere,
//! and proof (via `/proc`) that no process of a task's group survives its end.

use std::time::Duration;

use tokio::time::Instant;

use super::{Fixture, eventually, group_of};
use crate::model::Outcome;
use crate::runner::{StopReason, group, kill_leftover_group, process_start_ticks};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_at_the_deadline_is_prompt() {
    let fx = Fixture::new();
    let mut spec = fx.spec(&fx.script("sleeper", "exec sleep 60"));
    spec.deadline = Instant::now() + Duration::from_millis(300);
    let (report, _) = fx.run(&spec).await;
    let expected = Outcome::TimedOut {
        exit_code: None,
        signal: Some(libc::SIGTERM),
    };
    assert_eq!(report.outcome, expected);
    let signaled = report.signaled_at.expect("SIGTERM sent");
    assert!(signaled >= spec.deadline);
    assert!(signaled - spec.deadline < Duration::from_millis(200));
    assert!(report.exited_at - spec.deadline < Duration::from_millis(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_kills_a_group_that_ignores_sigterm() {
    let fx = Fixture::new();
    let mut spec = fx.spec(&fx.script("stubborn", "trap '' TERM; sleep 60 & wait"));
    spec.deadline = Instant::now() + Duration::from_millis(300);
    spec.kill_grace = Duration::from_millis(500);
    let handle = fx.start(&spec).await;
    let pgid = handle.pgid;
    assert!(eventually(Duration::from_secs(5), || group_of(pgid).len() == 2).await);
    let report = handle.wait().await;
    let deadline_ends = spec.deadline + spec.kill_grace;
    assert!(Instant::now() < deadline_ends + Duration::from_millis(500));
    assert!(report.exited_at >= deadline_ends);
    let expected = Outcome::TimedOut {
        exit_code: None,
        signal: Some(libc::SIGKILL),
    };
    assert_eq!(report.outcome, expected);
    assert!(group_of(pgid).is_empty(), "{:?}", group_of(pgid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grandchild_ignoring_sigterm_is_killed_when_the_grace_ends() {
    let fx = Fixture::new();
    let body = "trap '' TERM; sleep 60 & trap - TERM; wait";
    let mut spec = fx.spec(&fx.script("leaves-one", body));
    spec.deadline = Instant::now() + Duration::from_millis(300);
    spec.kill_grace = Duration::from_millis(700);
    let handle = fx.start(&spec).await;
    let pgid = handle.pgid;
    assert!(eventually(Duration::from_secs(5), || group_of(pgid).len() == 2).await);
    let report = handle.wait().await;
    let grace_end = spec.deadline + spec.kill_grace;
    assert!(Instant::now() >= grace_end);
    assert!(Instant::now() < grace_end + Duration::from_millis(500));
    let expected = Outcome::TimedOut {
        exit_code: None,
        signal: Some(libc::SIGTERM),
    };
    assert_eq!(report.outcome, expected);
    assert!(report.exited_at - spec.deadline < Duration::from_millis(200));
    assert!(group_of(pgid).is_empty(), "{:?}", group_of(pgid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_stdout_does_not_end_the_task() {
    let fx = Fixture::new();
    let mut spec = fx.spec(&fx.script("mute", "exec >&- 2>&-; sleep 60"));
    spec.deadline = Instant::now() + Duration::from_millis(500);
    let (report, _) = fx.run(&spec).await;
    assert!(
        matches!(report.outcome, Outcome::TimedOut { .. }),
        "{report:?}"
    );
    assert!(report.exited_at >= spec.deadline);
    assert!(Instant::now() - spec.deadline < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_exit_ends_the_background_work_it_left() {
    let fx = Fixture::new();
    let spec = fx.spec(&fx.script("bg", "sleep 60 & echo started"));
    let began = Instant::now();
    let handle = fx.start(&spec).await;
    let pgid = handle.pgid;
    let report = handle.wait().await;
    assert_eq!(report.outcome, Outcome::Exited(0));
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
    assert!(group_of(pgid).is_empty(), "{:?}", group_of(pgid));
    assert_eq!(
        std::fs::read_to_string(&spec.log_path).expect("log"),
        "started\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escaped_process_holding_the_log_pipe_does_not_delay_the_end() {
    let fx = Fixture::new();
    // The script waits until the background process has left the group.
    let body = "setsid sleep 60 & p=$!
while [ \"$(cut -d' ' -f5 /proc/$p/stat)\" != \"$p\" ]; do :; done
echo $p > escaped.pid";
    let spec = fx.spec(&fx.script("escape", body));
    let began = Instant::now();
    let (report, _) = fx.run(&spec).await;
    assert_eq!(report.outcome, Outcome::Exited(0));
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
    let pid: i32 = std::fs::read_to_string(fx.dir.path().join("escaped.pid"))
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert_eq!(kill_leftover_group(Some(pid), "test-escape"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_from_elsewhere_cancels_or_shuts_down_and_empties_the_group() {
    let fx = Fixture::new();
    let spec = fx.spec(&fx.script("long", "sleep 60 & sleep 60"));
    for (why, name) in [
        (StopReason::Cancel, "cancel"),
        (StopReason::Shutdown, "shutdown"),
        (StopReason::Expire, "expire"),
    ] {
        let handle = fx.start(&spec).await;
        let pgid = handle.pgid;
        assert_eq!(process_start_ticks(handle.pid), Some(handle.start_ticks));
        assert!(eventually(Duration::from_secs(5), || group_of(pgid).len() == 3).await);
        let stopper = handle.stop_handle();
        let waiter = tokio::spawn(handle.wait());
        stopper.stop(why);
        let report = tokio::time::timeout(Duration::from_secs(3), waiter)
            .await
            .expect("stopped in time")
            .expect("waiter");
        let (exit_code, signal) = (None, Some(libc::SIGTERM));
        let expected = match why {
            StopReason::Cancel => Outcome::Canceled { exit_code, signal },
            StopReason::Shutdown => Outcome::Shutdown { exit_code, signal },
            StopReason::Expire => Outcome::Expired { exit_code, signal },
        };
        assert_eq!(report.outcome, expected, "{name}");
        assert!(report.signaled_at.is_some());
        assert!(group_of(pgid).is_empty(), "{name}: {:?}", group_of(pgid));
        stopper.stop(why); // after the end: harmless
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_runner_does_not_kill_running_children() {
    let fx = Fixture::new();
    let spec = fx.spec(&fx.script("outlive", "sleep 0.3; exit 7"));
    let handle = fx.start(&spec).await;
    drop(fx.runner);
    assert_eq!(handle.wait().await.outcome, Outcome::Exited(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftover_cleanup_kills_only_processes_of_that_task() {
    use std::os::unix::process::CommandExt;
    let mut leader = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg("JOBSLOT_TASK_ID=t-left sleep 60 & JOBSLOT_TASK_ID=t-unrecorded sleep 60 & exec sleep 61")
        .env_remove("JOBSLOT_TASK_ID")
        .process_group(0)
        .spawn()
        .expect("spawn group");
    let pgid = leader.id() as i32;
    // Both background processes have exec'd with their tag (until then
    // they are forked shells, in the group but without it).
    let tagged = || {
        ["t-left", "t-unrecorded"].iter().all(|tag| {
            group_of(pgid).iter().any(|pid| {
                let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
                group::environ_has(&env, "JOBSLOT_TASK_ID", tag)
            })
        })
    };
    assert!(eventually(Duration::from_secs(5), tagged).await);
    assert!(eventually(Duration::from_secs(5), || group_of(pgid).len() == 3).await);
    assert_eq!(kill_leftover_group(Some(pgid), "t-other"), 0);
    assert_eq!(kill_leftover_group(None, "t-other"), 0);
    assert_eq!(kill_leftover_group(Some(pgid), "t-left"), 1);
    assert_eq!(kill_leftover_group(Some(pgid), "t-left"), 0);
    // A group never recorded: found by the task id alone.
    assert_eq!(kill_leftover_group(None, "t-unrecorded"), 1);
    assert!(eventually(Duration::from_secs(5), || group_of(pgid) == vec![pgid]).await);
    leader.kill().expect("kill leader");
    leader.wait().expect("reap leader");
}
