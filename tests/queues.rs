//! Queues and priority with real processes: instances serve only their
//! queues, a pause holds a queue on every instance until it is resumed,
//! priority orders due tasks, and the anti-starvation rule lets a
//! low-priority task through a high-priority flood.

mod common;
use common::*;
use jobslot::model::TaskStatus;
use serde_json::Value;
use std::time::Duration;
use uuid::Uuid;

/// The queue named `name` in `jobslot queues --json` (a queue with no live
/// task that is neither paused nor used by a job of the schema is not listed).
fn queue(p: &Project, name: &str) -> Option<Value> {
    let all = p.cli_json(&["queues"]);
    all.as_array()
        .and_then(|a| a.iter().find(|q| q["queue"] == name).cloned())
}

on_both!(queues_are_served_by_their_instances_and_pause_on_every_instance);
async fn queues_are_served_by_their_instances_and_pause_on_every_instance(backend: Backend) {
    let p = Project::on(backend);
    p.job("work", "sleep 0.05");
    let _a = p.start("a", 2, &["--queues", "a"]);
    let _b = p.start("b", 2, &[]);
    let store = p.store().await;

    // Filtering: queue b's tasks only ever run on instance b.
    let in_b: Vec<Uuid> = (0..4)
        .map(|_| enqueue(&p, &["work", "--queue", "b"]))
        .collect();
    for id in &in_b {
        let t = wait_terminal(store.as_ref(), *id, Duration::from_secs(20)).await;
        assert_eq!(t.instance.as_deref(), Some("b"), "{t:?}");
    }

    let out = p.cli_json(&["queue", "pause", "a"]);
    assert_eq!(out["state"], "paused");
    assert_eq!(out["changed"], true);
    assert_eq!(p.cli_json(&["queue", "pause", "a"])["changed"], false);
    let held: Vec<Uuid> = (0..3)
        .map(|_| enqueue(&p, &["work", "--queue", "a"]))
        .collect();
    let other = enqueue(&p, &["work", "--queue", "b"]);
    // Work in other queues goes on...
    let t = wait_terminal(store.as_ref(), other, Duration::from_secs(20)).await;
    assert_eq!(t.status, TaskStatus::Completed);
    // ...while the paused queue's wait, on both instances (b serves every
    // queue, a only this one).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for id in &held {
        let t = store.task_get(*id).await.expect("get").expect("task");
        assert_eq!(t.status, TaskStatus::Pending, "{t:?}");
    }
    let a = queue(&p, "a").expect("queue a is listed");
    assert_eq!(a["state"], "paused", "{a}");
    assert_eq!(a["depth"], 3, "{a}");
    assert_eq!(a["running"], 0, "{a}");
    assert_eq!(queue(&p, "b"), None, "queue b has no live task");
    let c = enqueue(&p, &["work", "--queue", "c", "--in", "1h"]);
    let q = queue(&p, "c").expect("queue c is listed");
    assert_eq!(
        (q["state"].as_str(), q["depth"].as_u64(), q["due"].as_u64()),
        (Some("active"), Some(1), Some(0)),
        "{q}"
    );
    p.cli(&["cancel", &c.to_string()]);

    let out = p.cli_json(&["queue", "resume", "a"]);
    assert_eq!(out["state"], "active");
    let mut ran_on = std::collections::HashSet::new();
    for id in &held {
        let t = wait_terminal(store.as_ref(), *id, Duration::from_secs(20)).await;
        assert_eq!(t.status, TaskStatus::Completed);
        ran_on.insert(t.instance.unwrap_or_default());
    }
    assert!(ran_on.is_subset(&["a".to_string(), "b".to_string()].into()));
    assert_eq!(queue(&p, "a"), None, "resumed and empty");

    // Bad names are refused with the rule.
    let out = p.cli(&["queue", "pause", "no such"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid queue name"));
}

/// The ids the job wrote, in the order the tasks ran.
fn run_order(p: &Project) -> Vec<Uuid> {
    std::fs::read_to_string(p.path().join("order.txt"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| Uuid::parse_str(l.trim()).ok())
        .collect()
}

on_both!(due_tasks_run_by_priority_then_due_time);
async fn due_tasks_run_by_priority_then_due_time(backend: Backend) {
    let p = Project::on(backend);
    p.job("step", "echo $JOBSLOT_TASK_ID >> order.txt");
    let zero = enqueue(&p, &["step"]);
    let five = enqueue(&p, &["step", "--priority", "5"]);
    let minus = enqueue(&p, &["step", "--priority", "-1"]);
    let ten = enqueue(&p, &["step", "--priority", "10"]);
    let five_later = enqueue(&p, &["step", "--priority", "5"]);
    let _a = p.start("a", 1, &[]);
    let store = p.store().await;
    for id in [zero, five, minus, ten, five_later] {
        wait_terminal(store.as_ref(), id, Duration::from_secs(20)).await;
    }
    assert_eq!(run_order(&p), vec![ten, five, five_later, zero, minus]);
}

/// Enqueues one low-priority task, then a flood of `n` high-priority ones,
/// all on one slot; returns where the low one ran (0-based) among all.
async fn low_task_position(backend: Backend, starvation_after: &str, n: usize) -> usize {
    let p = Project::on(backend);
    p.job("step", "echo $JOBSLOT_TASK_ID >> order.txt\nsleep 0.1");
    let low = enqueue(&p, &["step"]);
    let flood: Vec<Uuid> = (0..n)
        .map(|_| enqueue(&p, &["step", "--priority", "10"]))
        .collect();
    // The low task has been due for a while before the instance starts.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let _a = p.start("a", 1, &["--starvation-after", starvation_after]);
    let store = p.store().await;
    for id in flood.iter().chain([&low]) {
        wait_terminal(store.as_ref(), *id, Duration::from_secs(60)).await;
    }
    let order = run_order(&p);
    assert_eq!(order.len(), n + 1);
    order.iter().position(|id| *id == low).expect("low ran")
}

on_both!(a_task_due_for_long_gets_through_a_high_priority_flood);
async fn a_task_due_for_long_gets_through_a_high_priority_flood(backend: Backend) {
    // Strict priority: the low task waits for the whole flood.
    assert_eq!(low_task_position(backend, "off", 12).await, 12);
    // With the rule, it has waited long enough before the first claim.
    let pos = low_task_position(backend, "300ms", 12).await;
    assert!(pos <= 2, "the low task ran at position {pos} of 13");
}
