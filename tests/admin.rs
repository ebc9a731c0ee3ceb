//! Administration with real instances, some killed with -9: `jobslot
//! instances` tells alive from gone, `admin clear-stale-locks` fails (or
//! retries) a dead instance's tasks without waiting for the orphan rule, and
//! `admin expire-stuck` stops and fails tasks that run too long.

mod common;
use common::*;
use jobslot::model::TaskStatus;
use nix::sys::signal::Signal;
use serde_json::Value;
use std::time::Duration;

/// The instance named `name` in `jobslot instances --json`.
fn instance(p: &Project, name: &str) -> Value {
    let all = p.cli_json(&["instances"]);
    all.as_array()
        .and_then(|a| a.iter().find(|i| i["name"] == name).cloned())
        .unwrap_or_else(|| panic!("no instance {name} in {all}"))
}

on_both!(stale_locks_of_a_killed_instance_are_cleared_without_the_orphan_wait);
async fn stale_locks_of_a_killed_instance_are_cleared_without_the_orphan_wait(backend: Backend) {
    let p = Project::on(backend);
    // An hour before the orphan rule would act.
    p.job("long", "sleep 60");
    p.job(
        "resumable",
        "[ \"$JOBSLOT_ATTEMPT\" -ge 2 ] && exit 0\nsleep 60",
    );
    p.schema(
        "jobs.toml",
        "[jobs.long]\nmax_execution_time = \"1h\"\n[jobs.resumable]\nmax_execution_time = \"1h\"\nretry = { max_attempts = 2, backoff = \"100ms\" }\n",
    );
    let a = p.start("a", 2, &["--queues", "work"]);
    let store = p.store().await;
    let long = enqueue(&p, &["long", "--queue", "work"]);
    let resumable = enqueue(&p, &["resumable", "--queue", "work"]);
    wait_running(store.as_ref(), long, Duration::from_secs(20)).await;
    wait_running(store.as_ref(), resumable, Duration::from_secs(20)).await;
    let shown = instance(&p, "a");
    assert_eq!(shown["state"], "alive", "{shown}");
    assert_eq!(
        (shown["used_slots"].as_u64(), shown["slots"].as_u64()),
        (Some(2), Some(2))
    );

    a.signal(Signal::SIGKILL);
    let _ = a.stop();
    wait_for(
        "instance a to count as gone",
        Duration::from_secs(10),
        || async { (instance(&p, "a")["state"] == "gone").then_some(()) },
    )
    .await;
    let b = p.start("b", 2, &[]);
    let cleared = p.cli_json(&["admin", "clear-stale-locks"]);
    let actions: Vec<(String, String)> = cleared
        .as_array()
        .expect("array")
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap_or_default().to_string(),
                c["action"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(actions.len(), 2, "{cleared}");
    let t = store.task_get(long).await.expect("get").expect("task");
    assert_eq!(t.status, TaskStatus::Failed);
    let reason = t.reason.unwrap_or_default();
    assert!(
        reason.starts_with("orphaned (instance a: no heartbeat since"),
        "{reason}"
    );
    // The retryable one comes back and completes on instance b.
    let r = wait_terminal(store.as_ref(), resumable, Duration::from_secs(20)).await;
    assert_eq!((r.status, r.attempt), (TaskStatus::Completed, 2), "{r:?}");
    assert_eq!(r.instance.as_deref(), Some("b"));
    // Nothing left to clear.
    assert_eq!(
        p.cli_json(&["admin", "clear-stale-locks"]),
        serde_json::json!([])
    );
    drop(b);
}

on_both!(expire_stuck_stops_live_tasks_and_fails_those_of_dead_instances);
async fn expire_stuck_stops_live_tasks_and_fails_those_of_dead_instances(backend: Backend) {
    let p = Project::on(backend);
    p.job("stuck", "echo $$ > pid-$JOBSLOT_TASK_ID.txt\nsleep 60");
    p.job("fresh", "sleep 60");
    let dead = p.start("dead", 1, &["--queues", "d"]);
    let live = p.start("live", 2, &["--queues", "l"]);
    let store = p.store().await;
    let on_dead = enqueue(&p, &["stuck", "--queue", "d"]);
    let on_live = enqueue(&p, &["stuck", "--queue", "l"]);
    wait_running(store.as_ref(), on_dead, Duration::from_secs(20)).await;
    wait_running(store.as_ref(), on_live, Duration::from_secs(20)).await;
    dead.signal(Signal::SIGKILL);
    let _ = dead.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // A task younger than the limit is left alone.
    let young = enqueue(&p, &["fresh", "--queue", "l"]);
    wait_running(store.as_ref(), young, Duration::from_secs(20)).await;
    let out = p.cli_json(&["admin", "expire-stuck", "--older-than", "1s"]);
    let acted = out.as_array().expect("array");
    assert_eq!(acted.len(), 2, "{out}");
    let action_of = |id: uuid::Uuid| {
        acted
            .iter()
            .find(|a| a["id"] == id.to_string())
            .map(|a| a["action"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    assert_eq!(action_of(on_dead), "failed");
    assert!(action_of(on_live).starts_with("stop requested"), "{out}");
    let d = store.task_get(on_dead).await.expect("get").expect("task");
    assert_eq!(d.status, TaskStatus::Failed);
    assert!(
        d.reason
            .as_deref()
            .is_some_and(|r| r.starts_with("expired (stuck; instance dead")),
        "{d:?}"
    );
    let l = wait_terminal(store.as_ref(), on_live, Duration::from_secs(20)).await;
    assert_eq!(l.status, TaskStatus::Failed);
    assert_eq!(
        l.reason.as_deref(),
        Some(jobslot::model::status::EXPIRED_REASON)
    );
    assert_eq!(l.signal, Some(15), "stopped with SIGTERM: {l:?}");
    let pid: i32 = std::fs::read_to_string(p.path().join(format!("pid-{on_live}.txt")))
        .expect("pid")
        .trim()
        .parse()
        .expect("pid number");
    assert!(!pid_alive(pid), "the expired task's process is gone");
    let y = store.task_get(young).await.expect("get").expect("task");
    assert_eq!(y.status, TaskStatus::Running, "a young task is not touched");
    drop(live);
}
