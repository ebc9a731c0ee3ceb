//! Claims: order, free slots, queues, and exactly-once under contention.

use super::Harness;
use super::support::{
    Worker, claim, claim_one, get, id_set, ids, insert, millis, new_task, now_ms, secs, sorted_ids,
};
use crate::model::TaskStatus;
use crate::store::NewTask;
use std::collections::BTreeSet;
use std::time::Duration;

/// Higher priority first, then earlier due time, then lower id; never a task
/// not yet due; never more than `limit`.
#[doc(hidden)]
pub async fn claim_orders_by_priority_then_due_then_id(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let w = Worker::new("orderer");
    let task = |job: &str, priority: i32, due| NewTask {
        priority,
        ..new_task(job, due)
    };
    let tie = sorted_ids(2);
    let a = insert(s, task("a", 0, now - secs(10))).await;
    let b = insert(s, task("b", 5, now - secs(1))).await;
    let c = insert(s, task("c", 5, now - secs(5))).await;
    // Same priority and due time: the lower id first, whatever the insert order.
    let e = insert(
        s,
        NewTask {
            id: tie[1],
            ..task("e", 0, now - secs(20))
        },
    )
    .await;
    let d = insert(
        s,
        NewTask {
            id: tie[0],
            ..task("d", 0, now - secs(20))
        },
    )
    .await;
    let future = insert(s, task("future", 10, now + secs(1))).await;
    let g = insert(s, task("g", -1, now - secs(100))).await;

    let first = claim(s, &w, now, 100, 2).await;
    assert_eq!(
        ids(&first),
        vec![c.id, b.id],
        "limit 2 claims the two priority-5 tasks, earlier due first"
    );
    for (want, why) in [
        (&d, "priority 0, due earliest, lower id"),
        (&e, "priority 0, same due, higher id"),
        (&a, "priority 0, due later"),
        (&g, "priority -1"),
    ] {
        let got = claim(s, &w, now, 100, 1).await;
        assert_eq!(
            ids(&got),
            vec![want.id],
            "next claim: task {} ({why})",
            want.job
        );
    }
    let got = claim(s, &w, now, 100, 10).await;
    assert!(
        got.is_empty(),
        "a task not yet due is never claimed, got {:?}",
        ids(&got)
    );
    let got = claim(s, &w, now + secs(1), 100, 10).await;
    assert_eq!(ids(&got), vec![future.id], "due at now + 1s, claimed then");
}

/// A claimed task is running, held by the instance, started now, with its deadline.
#[doc(hidden)]
pub async fn claim_marks_task_running(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let w = Worker::new("runner");
    let t = insert(
        s,
        NewTask {
            max_execution_time: Duration::from_millis(90_500),
            ..new_task("run", now - secs(3))
        },
    )
    .await;
    let c = claim_one(s, &w, now, t.id).await;
    assert_eq!(c.status, TaskStatus::Running);
    assert_eq!(c.instance_id, Some(w.id), "instance id");
    assert_eq!(
        c.instance.as_deref(),
        Some(w.name.as_str()),
        "instance name"
    );
    assert_eq!(c.host.as_deref(), Some(w.host.as_str()), "host");
    assert_eq!(c.started_at, Some(now), "started_at is the claim's now");
    assert_eq!(
        c.deadline_at,
        Some(now + millis(90_500)),
        "deadline_at is now + max_execution_time"
    );
    assert_eq!(
        get(s, t.id).await,
        c,
        "the claimed task returned is the task as stored"
    );
    let again = claim(s, &Worker::new("second"), now + secs(1), 100, 10).await;
    assert!(again.is_empty(), "a running task is not claimed again");
}

/// A task needing more slots than free is skipped for smaller ones behind it;
/// the slots claimed never exceed the free slots.
#[doc(hidden)]
pub async fn claim_respects_free_slots(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let w = Worker::new("slots");
    let big = insert(
        s,
        NewTask {
            slots: 3,
            priority: 1,
            ..new_task("big", now - secs(3))
        },
    )
    .await;
    let y = insert(s, new_task("y", now - secs(2))).await;
    let z = insert(s, new_task("z", now - secs(1))).await;

    assert!(
        claim(s, &w, now, 0, 10).await.is_empty(),
        "no free slot, no claim"
    );
    let got = claim(s, &w, now, 2, 10).await;
    assert_eq!(
        id_set(&got),
        BTreeSet::from([y.id, z.id]),
        "with 2 free slots the 3-slot task is skipped and the two 1-slot tasks behind it claimed"
    );
    assert!(
        claim(s, &w, now, 2, 10).await.is_empty(),
        "3 slots never fit in 2"
    );
    assert_eq!(ids(&claim(s, &w, now, 3, 10).await), vec![big.id]);

    let mut all = BTreeSet::new();
    for i in 0..30u32 {
        let t = insert(
            s,
            NewTask {
                slots: 1 + i % 3,
                priority: (i % 2) as i32,
                ..new_task("mix", now - secs(i64::from(i)))
            },
        )
        .await;
        all.insert(t.id);
    }
    let mut claimed = BTreeSet::new();
    loop {
        let got = claim(s, &w, now, 4, 10).await;
        if got.is_empty() {
            break;
        }
        let sum: u32 = got.iter().map(|t| t.slots).sum();
        assert!(sum <= 4, "claimed {sum} slots with 4 free: {:?}", ids(&got));
        claimed.extend(ids(&got));
    }
    assert_eq!(
        claimed, all,
        "every task fitting in 4 slots is claimed eventually"
    );
}

/// Within one claim, a task that no longer fits once others are taken does not
/// stop smaller tasks behind it from being claimed.
#[doc(hidden)]
pub async fn claim_fills_slots_past_tasks_that_no_longer_fit(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let w = Worker::new("filler");
    let two = |job: &str, due| NewTask {
        slots: 2,
        ..new_task(job, due)
    };
    let a = insert(s, two("a", now - secs(4))).await;
    insert(s, two("b", now - secs(3))).await;
    insert(s, two("b2", now - secs(2))).await;
    let c = insert(s, new_task("c", now - secs(1))).await;
    let got = claim(s, &w, now, 3, 3).await;
    assert_eq!(
        id_set(&got),
        BTreeSet::from([a.id, c.id]),
        "3 free slots: the first 2-slot task, then (past two 2-slot tasks that no longer fit) the 1-slot task"
    );
}

/// An instance claims only from the queues it serves; no queues means all.
#[doc(hidden)]
pub async fn claim_filters_queues(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let in_queue = |queue: &str| NewTask {
        queue: queue.to_string(),
        ..new_task(queue, now - secs(1))
    };
    let a = insert(s, in_queue("a")).await;
    let aa = insert(s, in_queue("aa")).await;
    let b = insert(s, in_queue("b")).await;
    let d = insert(s, in_queue("default")).await;

    let wa = Worker::serving("serves-a", &["a"]);
    assert_eq!(
        ids(&claim(s, &wa, now, 100, 10).await),
        vec![a.id],
        "[a] claims queue a only"
    );
    assert!(
        claim(s, &wa, now, 100, 10).await.is_empty(),
        "[a] never claims queues aa, b or default"
    );
    let wbc = Worker::serving("serves-b-c", &["b", "c"]);
    assert_eq!(
        ids(&claim(s, &wbc, now, 100, 10).await),
        vec![b.id],
        "[b, c] claims queue b"
    );
    let all = Worker::new("serves-all");
    assert_eq!(
        id_set(&claim(s, &all, now, 100, 10).await),
        BTreeSet::from([aa.id, d.id]),
        "no queues: every queue"
    );
}

/// Several handles claiming at once never claim one task twice.
#[doc(hidden)]
pub async fn claim_is_exactly_once_under_contention(h: &dyn Harness) {
    const HANDLES: usize = 4;
    const TASKS: usize = 300;
    let mut handles = Vec::new();
    for _ in 0..HANDLES {
        handles.push(h.open().await);
    }
    let now = now_ms();
    for i in 0..TASKS {
        let t = NewTask {
            priority: (i % 3) as i32,
            ..new_task("contended", now - millis(i as i64))
        };
        insert(&*handles[i % HANDLES], t).await;
    }
    let mut joins = Vec::new();
    for (n, store) in handles.iter().enumerate() {
        let store = store.clone();
        joins.push(tokio::spawn(async move {
            let w = Worker::new(&format!("contender-{n}"));
            let mut mine = Vec::new();
            let mut round = 0usize;
            loop {
                let got = claim(&*store, &w, now, 8, 1 + (round + n) % 5).await;
                if got.is_empty() {
                    return (w, mine);
                }
                mine.extend(ids(&got));
                round += 1;
            }
        }));
    }
    let mut seen = BTreeSet::new();
    let mut total = 0;
    for j in joins {
        let (w, mine) = j.await.expect("claiming task panicked");
        total += mine.len();
        for id in mine {
            assert!(seen.insert(id), "task {id} claimed twice");
            let t = get(&*handles[0], id).await;
            assert_eq!(t.status, TaskStatus::Running, "task {id}");
            assert_eq!(
                t.instance_id,
                Some(w.id),
                "task {id} is held by its claimer"
            );
        }
    }
    assert_eq!(total, TASKS, "every task claimed exactly once");
}
