//! Timeouts, the orphan rule and graceful shutdown, with real processes.

mod common;
use common::*;
use jobslot::model::TaskStatus;
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

/// A job whose grandchild ignores SIGTERM and writes its pid to a file.
fn stubborn_job(p: &Project) {
    p.job(
        "stubborn",
        "(trap '' TERM; exec sleep 60) &\necho $! > \"$JOBSLOT_PROJECT/grandchild-$JOBSLOT_TASK_ID.pid\"\nwait",
    );
}

fn read_pid(p: &Project, task: uuid::Uuid) -> Option<i32> {
    std::fs::read_to_string(p.path().join(format!("grandchild-{task}.pid")))
        .ok()?
        .trim()
        .parse()
        .ok()
}

on_both!(timeout_kills_a_grandchild_that_ignores_sigterm);
async fn timeout_kills_a_grandchild_that_ignores_sigterm(backend: Backend) {
    let p = Project::on(backend);
    stubborn_job(&p);
    p.schema(
        "jobs.toml",
        "[jobs.stubborn]\nmax_execution_time = \"500ms\"\nkill_grace = \"300ms\"\n",
    );
    let inst = p.start("a", 2, &[]);
    let store = p.store().await;
    let id = enqueue(&p, &["stubborn"]);
    let gc = wait_for("grandchild pid", Duration::from_secs(10), || async {
        read_pid(&p, id)
    })
    .await;
    assert!(pid_alive(gc));
    let t = wait_terminal(store.as_ref(), id, Duration::from_secs(10)).await;
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(t.reason.as_deref(), Some("timeout"));
    let deadline = t.deadline_at.expect("deadline");
    let ended = t.ended_at.expect("ended");
    // SIGTERM at the deadline, SIGKILL after the grace: the end is within that window.
    assert!(
        ended >= deadline,
        "ended {ended} before deadline {deadline}"
    );
    assert!(
        ended <= deadline + chrono::Duration::milliseconds(300 + 400),
        "ended {ended}, deadline {deadline}"
    );
    assert!(
        !pid_alive(gc),
        "the grandchild that ignores SIGTERM survived"
    );
    assert!(inst.stop().success());
}

on_both!(the_kill_comes_before_the_orphan_deadline_even_with_a_long_kill_grace);
/// An instance kills on its own clock, with or without the database; a kill
/// grace longer than the orphan grace is cut to half of it, so no task still
/// runs when another instance may declare it orphaned.
async fn the_kill_comes_before_the_orphan_deadline_even_with_a_long_kill_grace(backend: Backend) {
    let p = Project::on(backend);
    stubborn_job(&p);
    p.schema(
        "jobs.toml",
        "[jobs.stubborn]\nmax_execution_time = \"400ms\"\nkill_grace = \"30s\"\n",
    );
    let inst = p.start("a", 1, &["--orphan-grace", "1s"]);
    let store = p.store().await;
    let id = enqueue(&p, &["stubborn"]);
    let gc = wait_for("grandchild pid", Duration::from_secs(10), || async {
        read_pid(&p, id)
    })
    .await;
    let t = wait_terminal(store.as_ref(), id, Duration::from_secs(10)).await;
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(t.reason.as_deref(), Some("timeout"));
    let deadline = t.deadline_at.expect("deadline");
    let ended = t.ended_at.expect("ended");
    assert!(
        ended >= deadline + chrono::Duration::milliseconds(500),
        "SIGKILL came before the capped grace: ended {ended}, deadline {deadline}"
    );
    assert!(
        ended < deadline + chrono::Duration::seconds(1),
        "still running at the orphan deadline: ended {ended}, deadline {deadline}"
    );
    assert!(!pid_alive(gc), "the grandchild survived");
    assert!(inst.stop().success());
}

on_both!(orphan_rule_after_kill_9_fails_the_task_after_deadline_plus_grace_and_kills_leftovers);
async fn orphan_rule_after_kill_9_fails_the_task_after_deadline_plus_grace_and_kills_leftovers(
    backend: Backend,
) {
    let p = Project::on(backend);
    stubborn_job(&p);
    p.schema(
        "jobs.toml",
        "[jobs.stubborn]\nmax_execution_time = \"1500ms\"\nkill_grace = \"200ms\"\n",
    );
    let store = p.store().await;
    let a = p.start("a", 1, &["--orphan-grace", "1s"]);
    let id = enqueue(&p, &["stubborn"]);
    let gc = wait_for("grandchild pid", Duration::from_secs(10), || async {
        read_pid(&p, id)
    })
    .await;
    let running = wait_for(
        "task recorded as running",
        Duration::from_secs(5),
        || async {
            store
                .task_get(id)
                .await
                .ok()
                .flatten()
                .filter(|t| t.pgid.is_some())
        },
    )
    .await;
    a.signal(Signal::SIGKILL);
    drop(a);
    // The task's own process dies with its instance (parent-death signal) at once;
    // its grandchild lives on in the group until another instance deals with it.
    let leader = running.pgid.expect("pgid");
    let start = Instant::now();
    while pid_alive(leader) && start.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        !pid_alive(leader),
        "the task's process outlived its instance"
    );
    assert!(
        pid_alive(gc),
        "the grandchild should still be there before the orphan rule"
    );
    // Another instance on the same host, with a 1 s orphan grace.
    let b = p.start("b", 1, &["--orphan-grace", "1s"]);
    let deadline = running.deadline_at.expect("deadline");
    let orphan_at = deadline + chrono::Duration::seconds(1);
    // Not before the deadline plus the grace.
    while chrono::Utc::now() < orphan_at - chrono::Duration::milliseconds(150) {
        let t = store.task_get(id).await.expect("get").expect("task");
        assert_eq!(
            t.status,
            TaskStatus::Running,
            "failed too early at {}",
            chrono::Utc::now()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t = wait_terminal(store.as_ref(), id, Duration::from_secs(10)).await;
    assert_eq!(t.status, TaskStatus::Failed);
    let reason = t.reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("orphaned") && reason.contains("instance a"),
        "{reason}"
    );
    let ended = t.ended_at.expect("ended");
    assert!(ended >= orphan_at, "ended {ended} before {orphan_at}");
    assert!(
        ended <= orphan_at + chrono::Duration::milliseconds(700),
        "ended {ended}, not promptly after {orphan_at}"
    );
    // The grandchild (which ignored SIGTERM and outlived its parent) is gone.
    let start = Instant::now();
    while pid_alive(gc) && start.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !pid_alive(gc),
        "a leftover of the dead instance's task survived"
    );
    assert!(b.stop().success());
}

on_both!(graceful_shutdown_lets_short_tasks_finish_and_stops_the_rest);
async fn graceful_shutdown_lets_short_tasks_finish_and_stops_the_rest(backend: Backend) {
    let p = Project::on(backend);
    p.job("short", "sleep 0.4").job("long", "sleep 30");
    let store = p.store().await;
    let inst = p.start("a", 4, &["--shutdown-timeout", "1s"]);
    let short = enqueue(&p, &["short"]);
    let long = enqueue(&p, &["long"]);
    for id in [short, long] {
        wait_running(store.as_ref(), id, Duration::from_secs(10)).await;
    }
    let t0 = Instant::now();
    inst.signal(Signal::SIGTERM);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Nothing new is claimed once shutdown began.
    let late = enqueue(&p, &["short"]);
    let status = {
        let mut inst = inst;
        let s = wait_child(&mut inst.child, Duration::from_secs(20));
        std::mem::forget(inst);
        s
    };
    assert!(status.success(), "exit status {status:?}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    let s = store.task_get(short).await.expect("get").expect("short");
    assert_eq!(s.status, TaskStatus::Completed);
    let l = store.task_get(long).await.expect("get").expect("long");
    assert_eq!(l.status, TaskStatus::Failed);
    assert_eq!(l.reason.as_deref(), Some("shutdown"));
    let late = store.task_get(late).await.expect("get").expect("late");
    assert_eq!(late.status, TaskStatus::Pending);
}

on_both!(a_second_signal_stops_running_tasks_at_once);
async fn a_second_signal_stops_running_tasks_at_once(backend: Backend) {
    let p = Project::on(backend);
    p.job("long", "sleep 30");
    let store = p.store().await;
    let inst = p.start("a", 2, &["--shutdown-timeout", "60s"]);
    let id = enqueue(&p, &["long"]);
    wait_running(store.as_ref(), id, Duration::from_secs(10)).await;
    let t0 = Instant::now();
    inst.signal(Signal::SIGINT);
    tokio::time::sleep(Duration::from_millis(200)).await;
    inst.signal(Signal::SIGINT);
    let mut inst = inst;
    let status = wait_child(&mut inst.child, Duration::from_secs(15));
    std::mem::forget(inst);
    assert!(status.success());
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t0.elapsed()
    );
    let t = store.task_get(id).await.expect("get").expect("task");
    assert_eq!(t.reason.as_deref(), Some("shutdown"));
}
