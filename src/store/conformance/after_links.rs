//! After-links: a task waiting for another to complete, and the chain
//! canceled when it does not.

use super::Harness;
use super::support::{
    Worker, claim, claim_one, end, ended_task, finish, get, id_set, ids, insert, new_task, now_ms,
    secs,
};
use crate::model::{Task, TaskStatus};
use crate::store::{AfterLink, CancelOutcome, NewTask};
use std::collections::BTreeSet;
use uuid::Uuid;

/// A task after X has no due time until X completes, then is due.
#[doc(hidden)]
pub async fn after_link_waits_for_completion(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let w = Worker::new("after");
    let x = insert(s, new_task("x", now - secs(1))).await;
    let y = insert(
        s,
        NewTask {
            after: AfterLink::Task(x.id),
            ..new_task("y", now - secs(1))
        },
    )
    .await;
    assert_eq!(y.status, TaskStatus::Pending);
    assert_eq!(y.after, Some(x.id), "after is recorded");
    assert_eq!(
        y.start_at, None,
        "held: no due time while X has not completed"
    );

    let running = claim_one(s, &w, now, x.id).await;
    assert_eq!(
        s.task_next_due(now - secs(3600))
            .await
            .expect("task_next_due"),
        None,
        "a held task has no due time"
    );
    assert!(
        claim(s, &w, now + secs(3600), 100, 10).await.is_empty(),
        "held task not claimed"
    );

    let ended_at = now + secs(5);
    assert!(finish(s, end(&running, &w, TaskStatus::Completed, ended_at)).await);
    let released = get(s, y.id).await;
    assert_eq!(released.status, TaskStatus::Pending);
    assert!(
        released.start_at.is_some_and(|d| d <= ended_at),
        "due once X completed, got {:?}",
        released.start_at
    );
    assert_eq!(
        ids(&claim(s, &w, ended_at, 100, 10).await),
        vec![y.id],
        "then claimable"
    );
}

/// When X fails or is canceled, the tasks after it are canceled, transitively,
/// each with a reason naming its predecessor.
#[doc(hidden)]
pub async fn after_link_cancels_chain_when_predecessor_fails_or_is_canceled(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let w = Worker::new("chain");
    let after = |job: &str, pred: Uuid| NewTask {
        after: AfterLink::Task(pred),
        ..new_task(job, now)
    };
    let check = |t: Task, pred: Uuid| {
        assert_eq!(
            t.status,
            TaskStatus::Canceled,
            "task {} after {pred}",
            t.job
        );
        assert!(
            t.reason
                .as_deref()
                .is_some_and(|r| r.contains(&pred.to_string())),
            "the reason of {} names its predecessor {pred}: {:?}",
            t.job,
            t.reason
        );
        assert!(t.ended_at.is_some(), "a canceled task has an end time");
    };

    // Failed by its instance: a chain of three below it.
    let a = insert(s, new_task("a", now - secs(1))).await;
    let b = insert(s, after("b", a.id)).await;
    let c = insert(s, after("c", b.id)).await;
    let d = insert(s, after("d", c.id)).await;
    let running = claim_one(s, &w, now, a.id).await;
    assert!(finish(s, end(&running, &w, TaskStatus::Failed, now + secs(1))).await);
    check(get(s, b.id).await, a.id);
    check(get(s, c.id).await, b.id);
    check(get(s, d.id).await, c.id);

    // Ended as canceled by its instance (exit 100).
    let p = insert(s, new_task("p", now - secs(1))).await;
    let q = insert(s, after("q", p.id)).await;
    let running = claim_one(s, &w, now, p.id).await;
    assert!(finish(s, end(&running, &w, TaskStatus::Canceled, now + secs(1))).await);
    check(get(s, q.id).await, p.id);

    // Canceled by a user while pending.
    let u = insert(s, new_task("u", now + secs(60))).await;
    let v = insert(s, after("v", u.id)).await;
    let x = insert(s, after("x", v.id)).await;
    let out = s.task_cancel(u.id, now).await.expect("task_cancel");
    assert_eq!(out, CancelOutcome::Canceled);
    check(get(s, v.id).await, u.id);
    check(get(s, x.id).await, v.id);
}

/// An after-link to an ended task resolves at insert; to an unknown one is an error.
#[doc(hidden)]
pub async fn after_link_resolves_at_insert(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let w = Worker::new("resolver");
    let after = |job: &str, pred: Uuid| NewTask {
        after: AfterLink::Task(pred),
        ..new_task(job, now)
    };

    let done = ended_task(s, &w, now, TaskStatus::Completed).await;
    let y = insert(s, after("after-completed", done.id)).await;
    assert_eq!(y.status, TaskStatus::Pending);
    assert_eq!(y.start_at, Some(now), "after a completed task: due at once");

    let failed = ended_task(s, &w, now, TaskStatus::Failed).await;
    let canceled = insert(s, new_task("canceled", now + secs(60))).await;
    assert_eq!(
        s.task_cancel(canceled.id, now).await.expect("task_cancel"),
        CancelOutcome::Canceled
    );
    for pred in [failed.id, canceled.id] {
        let z = insert(s, after("after-ended-badly", pred)).await;
        assert_eq!(
            z.status,
            TaskStatus::Canceled,
            "after {pred}: canceled at once"
        );
        assert!(
            z.reason
                .as_deref()
                .is_some_and(|r| r.contains(&pred.to_string())),
            "reason names {pred}: {:?}",
            z.reason
        );
        assert!(z.ended_at.is_some(), "canceled at once: has an end time");
    }

    let held = insert(s, new_task("held", now - secs(1))).await;
    assert_eq!(
        id_set(&claim(s, &w, now, 100, 10).await),
        BTreeSet::from([y.id, held.id]),
        "the task after a completed one is claimable at once"
    );
    let r = insert(s, after("after-running", held.id)).await;
    assert_eq!(
        (r.status, r.start_at),
        (TaskStatus::Pending, None),
        "after a running task: held"
    );

    let unknown = Uuid::now_v7();
    let orphan = after("after-unknown", unknown);
    let id = orphan.id;
    let res = s.task_insert(orphan).await;
    assert!(
        res.is_err(),
        "after an unknown task must be an error, got {res:?}"
    );
    assert!(
        s.task_get(id).await.expect("task_get").is_none(),
        "nothing inserted after an error"
    );
}
