//! Claiming: exactly once across instances, and slot-aware routing.

mod common;
use common::*;
use jobslot::model::TaskStatus;
use std::collections::HashMap;
use std::time::Duration;

on_both!(three_instances_run_500_tasks_exactly_once);
async fn three_instances_run_500_tasks_exactly_once(backend: Backend) {
    let p = Project::on(backend);
    let out = p.path().join("ran.txt");
    p.job(
        "record",
        &format!("echo \"$JOBSLOT_TASK_ID\" >> {}", out.display()),
    );
    let store = p.store().await;
    let mut ids = Vec::new();
    for i in 0..500 {
        let t = new_task("record", serde_json::json!({ "i": i }));
        ids.push(t.id);
        store.task_insert(t).await.expect("insert");
    }
    let a = p.start("a", 4, &[]);
    let b = p.start("b", 4, &[]);
    let c = p.start("c", 4, &[]);
    wait_for(
        "all 500 tasks to complete",
        Duration::from_secs(120),
        || async {
            let done = count(
                &tasks_of(store.as_ref(), "record").await,
                TaskStatus::Completed,
            );
            (done == 500).then_some(())
        },
    )
    .await;
    // Proof from the jobs' own output: every id exactly once.
    assert_each_ran_once(&out, &ids);
    // All three instances took part.
    let tasks = tasks_of(store.as_ref(), "record").await;
    let mut per: HashMap<String, usize> = HashMap::new();
    for t in &tasks {
        *per.entry(t.instance.clone().unwrap_or_default())
            .or_default() += 1;
    }
    assert_eq!(per.values().sum::<usize>(), 500);
    for inst in [a, b, c] {
        assert!(inst.stop().success());
    }
}

on_both!(a_job_needing_three_slots_never_runs_on_a_two_slot_instance);
async fn a_job_needing_three_slots_never_runs_on_a_two_slot_instance(backend: Backend) {
    let p = Project::on(backend);
    p.job("big", "sleep 0.05").job("small", "sleep 0.05");
    p.schema("jobs.toml", "[jobs.big]\nslots = 3\n");
    let store = p.store().await;
    let two = p.start("two", 2, &[]);
    let four = p.start("four", 4, &[]);
    let mut big = Vec::new();
    for _ in 0..12 {
        big.push(enqueue(&p, &["big"]));
        enqueue(&p, &["small"]);
    }
    for id in &big {
        let t = wait_terminal(store.as_ref(), *id, Duration::from_secs(30)).await;
        assert_eq!(t.status, TaskStatus::Completed);
        assert_eq!(t.slots, 3);
        assert_eq!(
            t.instance.as_deref(),
            Some("four"),
            "3-slot task ran on {:?}",
            t.instance
        );
    }
    let small = tasks_of(store.as_ref(), "small").await;
    wait_for("small tasks", Duration::from_secs(30), || async {
        let s = tasks_of(store.as_ref(), "small").await;
        (count(&s, TaskStatus::Completed) == 12).then_some(())
    })
    .await;
    assert_eq!(small.len(), 12);
    assert!(two.stop().success());
    assert!(four.stop().success());
}

on_both!(a_big_task_waits_while_smaller_ones_pass_it);
async fn a_big_task_waits_while_smaller_ones_pass_it(backend: Backend) {
    let p = Project::on(backend);
    p.job("hold", "sleep 1")
        .job("big", "true")
        .job("small", "true");
    p.schema("jobs.toml", "[jobs.big]\nslots = 2\n");
    let store = p.store().await;
    let inst = p.start("x", 2, &[]);
    let hold = enqueue(&p, &["hold"]);
    wait_running(store.as_ref(), hold, Duration::from_secs(10)).await;
    // One slot is busy: the 2-slot task waits, the 1-slot task behind it runs.
    let big = enqueue(&p, &["big"]);
    let small = enqueue(&p, &["small"]);
    let s = wait_terminal(store.as_ref(), small, Duration::from_secs(10)).await;
    let b = store.task_get(big).await.expect("get").expect("exists");
    assert_eq!(s.status, TaskStatus::Completed);
    assert_eq!(
        b.status,
        TaskStatus::Pending,
        "big must wait for two free slots"
    );
    let b = wait_terminal(store.as_ref(), big, Duration::from_secs(10)).await;
    assert_eq!(b.status, TaskStatus::Completed);
    assert!(
        b.started_at
            >= store
                .task_get(hold)
                .await
                .expect("get")
                .expect("hold")
                .ended_at
    );
    assert!(inst.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_instances_run_2000_tasks_exactly_once_on_postgres() {
    if !postgres_or_skip() {
        return;
    }
    let p = Project::on(Backend::Postgres);
    let out = p.path().join("ran.txt");
    p.job(
        "record",
        &format!("echo \"$JOBSLOT_TASK_ID\" >> {}", out.display()),
    );
    let store = p.store().await;
    let instances: Vec<_> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| p.start(n, 4, &[]))
        .collect();
    let mut ids = Vec::new();
    for i in 0..2000 {
        let t = new_task("record", serde_json::json!({ "i": i }));
        ids.push(t.id);
        store.task_insert(t).await.expect("insert");
    }
    wait_for(
        "all 2000 tasks to complete",
        Duration::from_secs(180),
        || async {
            let done = count(
                &tasks_of(store.as_ref(), "record").await,
                TaskStatus::Completed,
            );
            (done == 2000).then_some(())
        },
    )
    .await;
    assert_each_ran_once(&out, &ids);
    let tasks = tasks_of(store.as_ref(), "record").await;
    let mut per: HashMap<String, usize> = HashMap::new();
    for t in &tasks {
        *per.entry(t.instance.clone().unwrap_or_default())
            .or_default() += 1;
    }
    assert!(per.len() >= 2, "only {per:?} took part");
    for inst in instances {
        assert!(inst.stop().success());
    }
}
