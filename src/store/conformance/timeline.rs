//! The timeline: tasks ended per minute and pending at each minute's end,
//! rebuilt from the tasks' own times.

use super::Harness;
use super::support::{Worker, claim_one, end, finish, insert, new_task, now_ms, secs};
use crate::model::TaskStatus;
use crate::store::{NewTask, TimelineParams};

/// Five one-minute buckets ending now: a task pending from before the window
/// until bucket 1 then completed in bucket 2, one pending from bucket 0 that
/// failed in bucket 3, one still pending since bucket 1 in queue `b`, one
/// canceled now, a future task and one that ended before the window.
#[doc(hidden)]
pub async fn timeline_counts_ended_and_pending_per_minute(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let t0 = now_ms();
    let p = TimelineParams::last(t0, 5, 60_000);
    let at = |i: i64| p.from + secs(60 * i);
    let w = Worker::new("timeline-worker");

    let empty = s.task_timeline(p).await.expect("task_timeline");
    assert_eq!(empty.starts.len(), 5);
    assert_eq!(empty.total.depth, vec![0; 5]);
    assert!(empty.queues.is_empty());

    // Ended before the window: left out.
    let old = insert(s, new_task("old", p.from - secs(1200))).await;
    let running = claim_one(s, &w, p.from - secs(1140), old.id).await;
    assert!(
        finish(
            s,
            end(&running, &w, TaskStatus::Completed, p.from - secs(1139))
        )
        .await
    );
    // Pending from before the window, started in bucket 1, completed in 2.
    let a = insert(s, new_task("a", p.from - secs(600))).await;
    let running = claim_one(s, &w, at(1) + secs(1), a.id).await;
    assert!(finish(s, end(&running, &w, TaskStatus::Completed, at(2) + secs(1))).await);
    // Due in bucket 0, started and failed in bucket 3.
    let c = insert(s, new_task("c", at(0) + secs(1))).await;
    let b = insert(
        s,
        NewTask {
            queue: "b".into(),
            ..new_task("b", at(1) + secs(5))
        },
    )
    .await;
    let running = claim_one(s, &w, at(3) + secs(1), c.id).await;
    assert!(finish(s, end(&running, &w, TaskStatus::Failed, at(3) + secs(2))).await);
    // Due in bucket 2, canceled now; and one due in an hour.
    let f = insert(s, new_task("f", at(2) + secs(1))).await;
    s.task_cancel(f.id, t0).await.expect("cancel");
    insert(s, new_task("later", t0 + secs(3600))).await;

    let t = s.task_timeline(p).await.expect("task_timeline");
    assert_eq!(t.starts, (0..5).map(at).collect::<Vec<_>>());
    assert_eq!(t.total.completed, vec![0, 0, 1, 0, 0], "completed");
    assert_eq!(t.total.failed, vec![0, 0, 0, 1, 0], "failed");
    assert_eq!(t.total.canceled, vec![0, 0, 0, 0, 1], "canceled");
    assert_eq!(t.total.depth, vec![2, 2, 3, 2, 1], "depth");
    assert_eq!(
        t.queues["b"].depth,
        vec![0, 1, 1, 1, 1],
        "queue b ({})",
        b.id
    );
    assert_eq!(t.queues["default"].depth, vec![2, 1, 2, 1, 0]);
    assert_eq!(t.queues["default"].failed, vec![0, 0, 0, 1, 0]);
    assert_eq!(t.queues.len(), 2);
}
