//! Workers with real processes: replicas kept at N across two instances when
//! killed from outside, the restart backoff growing under a crash loop and
//! resetting after a healthy run, exit 100 stopping the worker, a rolling
//! restart that never leaves fewer than N-1 replicas running, a schema change
//! rolling the worker, and the replicas of an instance killed with -9
//! replaced on the other instance.

mod common;
use common::*;
use jobslot::model::{Task, TaskStatus};
use jobslot::store::Store;
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

/// A long-running consumer: says it is up (with its args), then idles; on
/// SIGTERM it takes `$STOP_MS` ms to shut down (graceful stop).
const CONSUMER: &str = r#"echo "up $JOBSLOT_TASK_ID $(cat)"
trap 'sleep 0.3; echo "bye"; exit 0' TERM
while true; do sleep 0.05; done"#;

fn worker(name: &str, job: &str, replicas: u32, extra: &str) -> String {
    format!(
        "[[workers]]\nname = \"{name}\"\njob = \"{job}\"\nreplicas = {replicas}\n\
         restart_backoff = {{ initial = \"100ms\", max = \"5s\" }}\n{extra}\n"
    )
}

async fn replicas(store: &dyn Store, name: &str) -> Vec<Task> {
    store
        .worker_replicas(Some(name.to_string()))
        .await
        .expect("worker_replicas")
}

fn running(tasks: &[Task]) -> Vec<&Task> {
    tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Running && t.pgid.is_some())
        .collect()
}

/// Waits until `n` replicas run (with a recorded process group).
async fn wait_replicas(store: &dyn Store, name: &str, n: usize) -> Vec<Task> {
    wait_for(&format!("{n} running replicas of {name}"), WAIT, || async {
        let live = replicas(store, name).await;
        (running(&live).len() == n && live.len() == n).then_some(live)
    })
    .await
}

fn workers_json(p: &Project, name: &str) -> Value {
    let all = p.cli_json(&["workers"]);
    all.as_array()
        .into_iter()
        .flatten()
        .find(|w| w["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Waits until no process is left in the group.
async fn wait_group_gone(pgid: Option<i32>) {
    let pgid = pgid.expect("a recorded process group");
    wait_for(
        &format!("process group {pgid} to be gone"),
        Duration::from_secs(5),
        || async { (!group_alive(pgid)).then_some(()) },
    )
    .await;
}

fn ids(tasks: &[Task]) -> BTreeSet<Uuid> {
    tasks.iter().map(|t| t.id).collect()
}

on_both!(replicas_are_kept_at_n_across_two_instances);
async fn replicas_are_kept_at_n_across_two_instances(backend: Backend) {
    let p = Project::on(backend);
    p.job("consume", CONSUMER);
    p.schema(
        "w.toml",
        &worker("orders", "consume", 3, "args = { topic = \"orders\" }"),
    );
    let _a = p.start("a", 2, &[]);
    let _b = p.start("b", 2, &[]);
    let store = p.store().await;
    let first = wait_replicas(store.as_ref(), "orders", 3).await;
    let hosts: BTreeSet<_> = first.iter().filter_map(|t| t.instance.clone()).collect();
    assert_eq!(
        hosts.len(),
        2,
        "3 replicas on 2 instances of 2 slots use both"
    );
    assert!(first.iter().all(|t| t.args == json!({"topic": "orders"})));

    // Two replicas killed with -9 from outside: both come back.
    for t in first.iter().take(2) {
        let pgid = t.pgid.expect("pgid");
        nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), Signal::SIGKILL)
            .expect("kill -9");
    }
    let again = wait_for("2 replacements running", WAIT, || async {
        let live = replicas(store.as_ref(), "orders").await;
        let new = ids(&live).difference(&ids(&first)).count();
        (running(&live).len() == 3 && new == 2).then_some(live)
    })
    .await;
    assert_eq!(again.len(), 3, "exactly 3 live replicas");
    let shown = workers_json(&p, "orders");
    assert_eq!(
        (
            &shown["replicas_wanted"],
            &shown["replicas_running"],
            &shown["restarts"]
        ),
        (&json!(3), &json!(3), &json!(2)),
        "{shown}"
    );
    assert_eq!(shown["state"], "running", "{shown}");
    let reasons = shown["last_reasons"].to_string();
    assert!(reasons.contains("signal 9"), "{reasons}");
    for t in first.iter().take(2) {
        let ended = store.task_get(t.id).await.expect("get").expect("task");
        assert_eq!(ended.status, TaskStatus::Failed);
        wait_group_gone(t.pgid).await;
    }
}

on_both!(backoff_grows_in_a_crash_loop_and_resets_after_a_healthy_run);
async fn backoff_grows_in_a_crash_loop_and_resets_after_a_healthy_run(backend: Backend) {
    let p = Project::on(backend);
    let runs = p.path().join("runs.log");
    // Runs 1-5 crash at once, run 6 is healthy (1.2 s, past healthy_after),
    // runs 7-8 crash again; then it is stopped by exiting 100.
    p.job(
        "flaky",
        &format!(
            r#"log={runs}
n=$(( $(wc -l < "$log" 2>/dev/null || echo 0) / 2 + 1 ))
echo "start $n $(date +%s%N)" >> "$log"
[ "$n" -eq 6 ] && sleep 1.2
[ "$n" -ge 9 ] && {{ echo "end $n $(date +%s%N)" >> "$log"; exit 100; }}
echo "end $n $(date +%s%N)" >> "$log"
exit 1"#,
            runs = runs.display()
        ),
    );
    p.schema(
        "w.toml",
        &worker("flaky", "flaky", 1, "healthy_after = \"1s\""),
    );
    let _a = p.start("a", 2, &[]);
    wait_for("nine runs", WAIT, || async {
        let text = std::fs::read_to_string(&runs).unwrap_or_default();
        text.contains("end 9 ").then_some(())
    })
    .await;
    let text = std::fs::read_to_string(&runs).expect("runs");
    let at = |what: &str, n: usize| -> f64 {
        text.lines()
            .find_map(|l| {
                let mut f = l.split(' ');
                (f.next() == Some(what) && f.next() == Some(&n.to_string()))
                    .then(|| f.next().and_then(|t| t.parse::<f64>().ok()))
                    .flatten()
            })
            .unwrap_or_else(|| panic!("no {what} {n} in {text}"))
            / 1e6
    };
    // Gap between run n's end and run n+1's start, in ms.
    let gap = |n: usize| at("start", n + 1) - at("end", n);
    let gaps: Vec<f64> = (1..=8).map(gap).collect();
    eprintln!("gaps (ms): {gaps:?}");
    // 100, 200, 400, 800, 1600 ms after quick exits 1-5 (each plus claim latency).
    for (i, want) in [100.0, 200.0, 400.0, 800.0, 1600.0].iter().enumerate() {
        assert!(
            gaps[i] >= want - 5.0 && gaps[i] < want + 600.0,
            "gap after run {}: {} ms, want about {want} (all: {gaps:?})",
            i + 1,
            gaps[i]
        );
    }
    // After the healthy run 6: back to the initial 100 ms, then growing again.
    assert!(
        gaps[5] >= 95.0 && gaps[5] < 700.0,
        "after the healthy run: {} (all: {gaps:?})",
        gaps[5]
    );
    assert!(gaps[6] >= 95.0 && gaps[7] >= 195.0, "{gaps:?}");
    assert!(gaps[5] < gaps[4] / 2.0, "reset: {gaps:?}");
}

on_both!(exit_100_stops_the_worker_until_started_again);
async fn exit_100_stops_the_worker_until_started_again(backend: Backend) {
    let p = Project::on(backend);
    let flag = p.path().join("done");
    p.job(
        "drain",
        &format!(
            "echo up\nwhile [ ! -e {flag} ]; do sleep 0.05; done\nexit 100",
            flag = flag.display()
        ),
    );
    p.schema("w.toml", &worker("drain", "drain", 2, ""));
    let _a = p.start("a", 4, &[]);
    let store = p.store().await;
    let first = wait_replicas(store.as_ref(), "drain", 2).await;
    std::fs::write(&flag, "").expect("flag");
    wait_for("the worker to stop", WAIT, || async {
        let shown = workers_json(&p, "drain");
        (shown["state"] == "stopped" && shown["replicas_live"] == 0).then_some(())
    })
    .await;
    let shown = workers_json(&p, "drain");
    assert!(
        shown["stopped_reason"]
            .as_str()
            .is_some_and(|r| r.contains("exited 100")),
        "{shown}"
    );
    for t in &first {
        let t = store.task_get(t.id).await.expect("get").expect("task");
        assert_eq!(t.status, TaskStatus::Canceled, "{t:?}");
    }
    // It stays stopped.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(replicas(store.as_ref(), "drain").await.is_empty());
    // Started again: two new replicas.
    std::fs::remove_file(&flag).expect("unflag");
    let out = p.cli(&["worker", "start", "drain"]);
    assert!(out.status.success(), "{out:?}");
    let second = wait_replicas(store.as_ref(), "drain", 2).await;
    assert!(ids(&second).is_disjoint(&ids(&first)));
    // Stopped by hand: SIGTERM, and nothing more starts.
    let out = p.cli(&["worker", "stop", "drain"]);
    assert!(out.status.success(), "{out:?}");
    wait_for("replicas stopped by hand", WAIT, || async {
        replicas(store.as_ref(), "drain")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    for t in &second {
        wait_group_gone(t.pgid).await;
    }
    let out = p.cli(&["worker", "restart", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no worker \"nope\""));
}

/// Samples running replicas every 10 ms until every replica is of a new
/// task and runs; returns the lowest count seen.
async fn lowest_during_roll(
    store: &dyn Store,
    name: &str,
    old: &[Task],
    n: usize,
) -> (usize, Vec<Task>) {
    let start = Instant::now();
    let mut lowest = usize::MAX;
    loop {
        let live = replicas(store, name).await;
        let up = running(&live).len();
        lowest = lowest.min(up);
        if up == n && ids(&live).is_disjoint(&ids(old)) {
            return (lowest, live);
        }
        assert!(start.elapsed() < WAIT, "the roll did not finish: {live:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

on_both!(rolling_restart_keeps_n_minus_1_running);
async fn rolling_restart_keeps_n_minus_1_running(backend: Backend) {
    let p = Project::on(backend);
    p.job("consume", CONSUMER);
    p.schema("w.toml", &worker("orders", "consume", 3, ""));
    let _a = p.start("a", 2, &[]);
    let _b = p.start("b", 2, &[]);
    let store = p.store().await;
    let first = wait_replicas(store.as_ref(), "orders", 3).await;
    let out = p.cli(&["worker", "restart", "orders"]);
    assert!(out.status.success(), "{out:?}");
    let (lowest, after) = lowest_during_roll(store.as_ref(), "orders", &first, 3).await;
    assert!(lowest >= 2, "a rolling restart left {lowest} of 3 running");
    for t in &first {
        let t = store.task_get(t.id).await.expect("get").expect("task");
        assert_eq!(t.status, TaskStatus::Canceled);
        let log =
            std::fs::read_to_string(p.path().join(".jobslot/logs").join(format!("{}.log", t.id)))
                .unwrap_or_default();
        assert!(
            log.contains("bye"),
            "stopped gracefully (SIGTERM first): {log}"
        );
    }
    assert_eq!(after.len(), 3);
    assert_eq!(workers_json(&p, "orders")["state"], "running");
}

on_both!(a_schema_change_rolls_the_worker);
async fn a_schema_change_rolls_the_worker(backend: Backend) {
    let p = Project::on(backend);
    p.job("consume", CONSUMER);
    p.schema(
        "w.toml",
        &worker("orders", "consume", 2, "args = { v = 1 }"),
    );
    let _a = p.start("a", 3, &[]);
    let store = p.store().await;
    let first = wait_replicas(store.as_ref(), "orders", 2).await;
    p.schema(
        "w.toml",
        &worker("orders", "consume", 2, "args = { v = 2 }"),
    );
    let out = p.cli(&["schema", "apply"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("orders"));
    let (lowest, after) = lowest_during_roll(store.as_ref(), "orders", &first, 2).await;
    assert!(lowest >= 1, "left {lowest} of 2 running");
    assert!(after.iter().all(|t| t.args == json!({"v": 2})), "{after:?}");
    // Replicas alone: one more is added, none restarted.
    p.schema(
        "w.toml",
        &worker("orders", "consume", 3, "args = { v = 2 }"),
    );
    let out = p.cli(&["schema", "apply"]);
    assert!(out.status.success(), "{out:?}");
    let scaled = wait_replicas(store.as_ref(), "orders", 3).await;
    assert!(
        ids(&after).is_subset(&ids(&scaled)),
        "scaling up restarts nothing"
    );
}

on_both!(replicas_of_an_instance_killed_with_9_move_to_the_other);
async fn replicas_of_an_instance_killed_with_9_move_to_the_other(backend: Backend) {
    let p = Project::on(backend);
    p.job("consume", CONSUMER);
    p.schema("w.toml", &worker("orders", "consume", 2, ""));
    let a = p.start("a", 2, &[]);
    let store = p.store().await;
    let on_a = wait_replicas(store.as_ref(), "orders", 2).await;
    assert!(on_a.iter().all(|t| t.instance.as_deref() == Some("a")));
    let _b = p.start("b", 2, &[]);
    a.signal(Signal::SIGKILL);
    let _ = a.stop();
    let moved = wait_for("both replicas running on b", WAIT, || async {
        let live = replicas(store.as_ref(), "orders").await;
        let on_b = running(&live)
            .iter()
            .filter(|t| t.instance.as_deref() == Some("b"))
            .count();
        (on_b == 2 && live.len() == 2).then_some(live)
    })
    .await;
    assert!(ids(&moved).is_disjoint(&ids(&on_a)));
    for old in &on_a {
        let t = store.task_get(old.id).await.expect("get").expect("task");
        assert_eq!(t.status, TaskStatus::Failed);
        assert!(
            t.reason.as_deref().is_some_and(|r| r.contains("orphaned")),
            "{t:?}"
        );
        // The old replica's processes are gone: never two copies.
        wait_group_gone(old.pgid).await;
    }
}

on_both!(max_execution_time_restarts_replicas_gracefully);
async fn max_execution_time_restarts_replicas_gracefully(backend: Backend) {
    let p = Project::on(backend);
    p.job("consume", CONSUMER);
    p.schema(
        "w.toml",
        &worker("leaky", "consume", 1, "max_execution_time = \"700ms\""),
    );
    let _a = p.start("a", 2, &[]);
    let store = p.store().await;
    let first = wait_replicas(store.as_ref(), "leaky", 1).await;
    let shown = wait_for("two time-limit restarts", WAIT, || async {
        let shown = workers_json(&p, "leaky");
        (shown["restarts"].as_u64() >= Some(2)).then_some(shown)
    })
    .await;
    // A planned restart is no crash: back at once, no backoff, no crash loop.
    assert_ne!(shown["state"], "crash-looping", "{shown}");
    assert!(
        shown["last_reasons"].to_string().contains("timeout after"),
        "{shown}"
    );
    let old = store
        .task_get(first[0].id)
        .await
        .expect("get")
        .expect("task");
    assert_eq!(
        (old.status, old.reason.as_deref()),
        (TaskStatus::Failed, Some("timeout"))
    );
    let log = std::fs::read_to_string(
        p.path()
            .join(".jobslot/logs")
            .join(format!("{}.log", old.id)),
    )
    .unwrap_or_default();
    assert!(log.contains("bye"), "SIGTERM first, then its grace: {log}");
    let next = store
        .task_list(jobslot::store::TaskListParams {
            job: Some("consume".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    // Each replacement was due when its predecessor ended.
    for pair in next.windows(2) {
        let (newer, older) = (&pair[0], &pair[1]);
        if let (Some(due), Some(ended)) = (newer.start_at, older.ended_at) {
            let gap = (due - ended).num_milliseconds();
            assert!(gap.abs() < 50, "replacement due {gap} ms after the end");
        }
    }
}
