//! Parents and children, unique keys, paused queues and the anti-starvation
//! pick.

use super::Harness;
use super::support::*;
use crate::model::TaskStatus;
use crate::store::{CancelOutcome, NewTask, StoreError, TaskFinishParams, TaskListParams};
use std::time::Duration;

/// Ends (from running or waiting) with one call and returns the status written.
async fn finish_status(s: &dyn crate::store::Store, p: TaskFinishParams) -> Option<TaskStatus> {
    let id = p.id;
    let out = s
        .task_finish_many(vec![p])
        .await
        .unwrap_or_else(|e| panic!("task_finish_many {id}: {e}"));
    out.first().copied().flatten()
}

#[doc(hidden)]
pub async fn parent_with_children_waits_then_settles_with_its_callback(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let w = Worker::new("w");
    let now = now_ms();
    let parent = insert(s, new_task("parent", now - secs(1))).await;
    let running = claim_one(s, &w, now, parent.id).await;
    let child = insert(
        s,
        NewTask {
            parent: Some(parent.id),
            ..new_task("child", now + secs(60))
        },
    )
    .await;
    // Exit 0 with a child: waiting, not completed; its result is kept.
    let done = TaskFinishParams {
        exit_code: Some(0),
        result: Some(serde_json::json!({"parts": 1})),
        ..end(&running, &w, TaskStatus::Completed, now + secs(1))
    };
    assert_eq!(
        finish_status(s, done).await,
        Some(TaskStatus::Waiting),
        "a task with children waits for them"
    );
    let waiting = get(s, parent.id).await;
    assert_eq!(waiting.status, TaskStatus::Waiting);
    assert_eq!(waiting.ended_at, None);
    assert_eq!(waiting.exit_code, Some(0));
    assert_eq!(waiting.result, Some(serde_json::json!({"parts": 1})));
    let children = list(
        s,
        TaskListParams {
            parent: Some(parent.id),
            limit: 10,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&children), vec![child.id], "children by parent");
    // A child completes; the parent is then settled from waiting, with its
    // callback inserted in the same write.
    let c = claim_one(s, &w, now + secs(61), child.id).await;
    assert_eq!(
        finish_status(s, end(&c, &w, TaskStatus::Completed, now + secs(62))).await,
        Some(TaskStatus::Completed),
        "a task without children completes"
    );
    let callback = new_task("report", now + secs(63));
    let settle = TaskFinishParams {
        expect: TaskStatus::Waiting,
        expect_instance: None,
        exit_code: Some(0),
        result: waiting.result.clone(),
        callback: Some(callback.clone()),
        ..end(&waiting, &w, TaskStatus::Completed, now + secs(63))
    };
    assert_eq!(
        finish_status(s, settle.clone()).await,
        Some(TaskStatus::Completed),
        "settling from waiting completes the parent"
    );
    let ended = get(s, parent.id).await;
    assert_eq!(ended.status, TaskStatus::Completed);
    assert_eq!(ended.ended_at, Some(now + secs(63)));
    assert_eq!(ended.result, Some(serde_json::json!({"parts": 1})));
    assert_eq!(get(s, callback.id).await.status, TaskStatus::Pending);
    // A second settler changes nothing and inserts no second callback.
    let again = TaskFinishParams {
        callback: Some(new_task("report", now + secs(64))),
        ..settle
    };
    let second = again.callback.as_ref().map(|c| c.id);
    assert_eq!(finish_status(s, again).await, None);
    if let Some(id) = second {
        assert!(s.task_get(id).await.expect("get").is_none());
    }
    // A parent that has ended takes no more children.
    match s
        .task_insert(NewTask {
            parent: Some(parent.id),
            ..new_task("child", now)
        })
        .await
    {
        Err(StoreError::Conflict(why)) => assert!(why.contains("has already ended"), "{why}"),
        other => panic!("a child of an ended parent was not refused: {other:?}"),
    }
}

#[doc(hidden)]
pub async fn ending_a_parent_failed_or_canceled_cancels_its_open_children(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let w = Worker::new("w");
    let now = now_ms();
    // A running parent with a pending child, a running child and a
    // grandchild under the pending one.
    let parent = insert(s, new_task("parent", now - secs(5))).await;
    let running = claim_one(s, &w, now, parent.id).await;
    let child = |job: &str, p, due| NewTask {
        parent: Some(p),
        ..new_task(job, due)
    };
    let busy = insert(s, child("busy", parent.id, now - secs(1))).await;
    let busy = claim_one(s, &w, now, busy.id).await;
    let idle = insert(s, child("idle", parent.id, now + secs(60))).await;
    let grand = insert(s, child("grand", idle.id, now + secs(60))).await;
    assert!(finish(s, end(&running, &w, TaskStatus::Failed, now + secs(1))).await);
    let reason = format!("parent {} failed", parent.id);
    let idle = get(s, idle.id).await;
    assert_eq!(
        (idle.status, idle.reason.as_deref()),
        (TaskStatus::Canceled, Some(reason.as_str()))
    );
    let grand = get(s, grand.id).await;
    assert_eq!(grand.status, TaskStatus::Canceled, "transitively");
    // The running child is asked to stop, not ended behind its instance's back.
    assert_eq!(get(s, busy.id).await.status, TaskStatus::Running);
    assert_eq!(
        s.task_cancel_requests(w.id).await.expect("requests"),
        vec![busy.id]
    );

    // Canceling a waiting parent cancels its pending children.
    let parent = insert(s, new_task("parent2", now - secs(5))).await;
    let running = claim_one(s, &w, now, parent.id).await;
    let kid = insert(s, child("kid", parent.id, now + secs(60))).await;
    assert_eq!(
        finish_status(s, end(&running, &w, TaskStatus::Completed, now)).await,
        Some(TaskStatus::Waiting)
    );
    assert_eq!(
        s.task_cancel(parent.id, now + secs(2))
            .await
            .expect("cancel"),
        CancelOutcome::Canceled
    );
    let kid = get(s, kid.id).await;
    assert_eq!(
        (kid.status, kid.reason),
        (
            TaskStatus::Canceled,
            Some(format!("parent {} canceled", parent.id))
        )
    );
}

#[doc(hidden)]
pub async fn unique_key_admits_one_live_task(h: &dyn Harness) {
    let a = h.open().await;
    let b = h.open().await;
    let w = Worker::new("w");
    let now = now_ms();
    let keyed = |job: &str| NewTask {
        unique_key: Some("nightly-export".to_string()),
        ..new_task(job, now - secs(1))
    };
    // Concurrent inserts through two handles: exactly one gets in.
    let (x, y) = tokio::join!(a.task_insert(keyed("x")), b.task_insert(keyed("y")));
    let (held, refused) = match (x, y) {
        (Ok(t), Err(e)) | (Err(e), Ok(t)) => (t, e),
        other => panic!("exactly one insert must win: {other:?}"),
    };
    match refused {
        StoreError::Conflict(why) => {
            assert!(why.contains("nightly-export"), "{why}");
        }
        e => panic!("the loser must get a conflict, got {e}"),
    }
    assert_eq!(held.unique_key.as_deref(), Some("nightly-export"));
    // Still held while running; free once ended.
    let s = &*a;
    let running = claim_one(s, &w, now, held.id).await;
    assert!(
        s.task_insert(keyed("z")).await.is_err(),
        "held while running"
    );
    assert!(finish(s, end(&running, &w, TaskStatus::Completed, now)).await);
    let next = insert(s, keyed("z")).await;
    assert_eq!(next.status, TaskStatus::Pending);
    // Other keys and tasks without a key are not affected.
    insert(
        s,
        NewTask {
            unique_key: Some("other".to_string()),
            ..new_task("o", now)
        },
    )
    .await;
    insert(s, new_task("plain", now)).await;
    insert(s, new_task("plain", now)).await;
}

#[doc(hidden)]
pub async fn paused_queues_are_not_claimed_until_resumed(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let in_queue = |q: &str| NewTask {
        queue: q.to_string(),
        ..new_task("q", now - secs(1))
    };
    let a = insert(s, in_queue("a")).await;
    let b = insert(s, in_queue("b")).await;
    assert!(s.queue_pause("a", now).await.expect("pause"));
    assert!(!s.queue_pause("a", now).await.expect("pause again"));
    let all = Worker::new("all");
    let only_a = Worker::serving("only-a", &["a"]);
    assert!(claim(s, &only_a, now, 10, 10).await.is_empty());
    assert_eq!(ids(&claim(s, &all, now, 10, 10).await), vec![b.id]);
    let stats = s.queue_stats(now).await.expect("stats");
    let qa = stats.iter().find(|q| q.name == "a").expect("queue a");
    assert_eq!(
        (qa.pending, qa.due, qa.paused_at),
        (1, 1, Some(now)),
        "{stats:?}"
    );
    let qb = stats.iter().find(|q| q.name == "b").expect("queue b");
    assert_eq!((qb.pending, qb.running, qb.paused_at), (0, 1, None));
    assert!(s.queue_resume("a").await.expect("resume"));
    assert!(!s.queue_resume("a").await.expect("resume again"));
    assert_eq!(ids(&claim(s, &only_a, now, 10, 10).await), vec![a.id]);
}

#[doc(hidden)]
pub async fn starved_task_is_claimed_before_higher_priorities(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let w = Worker::new("w");
    let low = insert(s, new_task("low", now - secs(600))).await;
    let mut high = Vec::new();
    for i in 0..3 {
        let t = NewTask {
            priority: 10,
            ..new_task("high", now - secs(10 - i))
        };
        high.push(insert(s, t).await.id);
    }
    // Strict order without the rule.
    let mut p = w.claim_params(now, 1, 1);
    assert_eq!(
        ids(&s.task_claim(p.clone()).await.expect("claim")),
        vec![high[0]]
    );
    // With it, the task due for longer than the limit goes first, then priority.
    p.free_slots = 2;
    p.limit = 2;
    p.starvation_after = Some(Duration::from_secs(300));
    assert_eq!(
        ids(&s.task_claim(p.clone()).await.expect("claim")),
        vec![low.id, high[1]]
    );
    // Nothing has waited that long any more: priority order.
    assert_eq!(ids(&s.task_claim(p).await.expect("claim")), vec![high[2]]);
}

#[doc(hidden)]
pub async fn expire_requests_reach_the_instance_holding_the_task(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let w = Worker::new("w");
    let other = Worker::new("other");
    let now = now_ms();
    let t = insert(s, new_task("stuck", now - secs(1))).await;
    let pending = insert(s, new_task("later", now + secs(60))).await;
    assert!(
        !s.task_request_expire(pending.id).await.expect("expire"),
        "only a running task can be expired"
    );
    claim_one(s, &w, now, t.id).await;
    assert!(s.task_expire_requests(w.id).await.expect("list").is_empty());
    assert!(s.task_request_expire(t.id).await.expect("expire"));
    assert_eq!(
        s.task_expire_requests(w.id).await.expect("list"),
        vec![t.id]
    );
    assert!(
        s.task_expire_requests(other.id)
            .await
            .expect("list")
            .is_empty()
    );
    // Not a cancel request.
    assert!(s.task_cancel_requests(w.id).await.expect("list").is_empty());
}
