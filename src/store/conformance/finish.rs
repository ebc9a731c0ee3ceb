//! Finishing: compare-and-set ends, the next occurrence inserted with the
//! end, and the process recorded while a task runs.

use super::Harness;
use super::support::{
    Worker, claim_one, end, ended_task, every, finish, get, insert, new_task, now_ms, secs,
};
use crate::model::TaskStatus;
use crate::store::{NewTask, TaskFinishParams, TaskSpawnedParams};
use serde_json::json;

/// Finishing applies once, only over the state and instance the writer saw.
#[doc(hidden)]
pub async fn finish_is_compare_and_set(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let w = Worker::new("holder");
    let other = Worker::new("other");
    let t = insert(s, new_task("cas", now - secs(1))).await;
    let running = claim_one(s, &w, now, t.id).await;

    let wrong_instance = TaskFinishParams {
        retry_at: None,
        needs_review: false,
        expect_instance: Some(other.id),
        ..end(&running, &w, TaskStatus::Completed, now + secs(1))
    };
    assert!(
        !finish(s, wrong_instance).await,
        "expecting another instance must not apply"
    );
    assert_eq!(
        get(s, t.id).await,
        running,
        "unchanged after a refused finish"
    );
    let wrong_state = TaskFinishParams {
        retry_at: None,
        needs_review: false,
        expect: TaskStatus::Pending,
        expect_instance: None,
        ..end(&running, &w, TaskStatus::Canceled, now + secs(1))
    };
    assert!(
        !finish(s, wrong_state).await,
        "expecting pending must not apply to a running task"
    );
    assert_eq!(
        get(s, t.id).await,
        running,
        "unchanged after a refused finish"
    );

    let ok = TaskFinishParams {
        retry_at: None,
        needs_review: false,
        exit_code: Some(0),
        result: Some(json!({ "rows": 3 })),
        log: Some("s3://bucket/logs/x.log".to_string()),
        ..end(&running, &w, TaskStatus::Completed, now + secs(2))
    };
    assert!(finish(s, ok).await, "finishing the running task applies");
    let done = get(s, t.id).await;
    assert_eq!(done.status, TaskStatus::Completed);
    assert_eq!(done.exit_code, Some(0));
    assert_eq!(done.signal, None);
    assert_eq!(done.reason, None);
    assert_eq!(done.ended_at, Some(now + secs(2)));
    assert_eq!(done.result, Some(json!({ "rows": 3 })));
    assert_eq!(done.log.as_deref(), Some("s3://bucket/logs/x.log"));
    assert_eq!(done.started_at, running.started_at, "started_at is kept");

    let again = TaskFinishParams {
        retry_at: None,
        needs_review: false,
        reason: Some("exit 1".to_string()),
        exit_code: Some(1),
        ..end(&running, &w, TaskStatus::Failed, now + secs(3))
    };
    assert!(!finish(s, again).await, "a second finish must not apply");
    assert_eq!(get(s, t.id).await, done, "unchanged after a second finish");

    let t2 = insert(s, new_task("cas-2", now - secs(1))).await;
    let running2 = claim_one(s, &w, now, t2.id).await;
    let failed = TaskFinishParams {
        retry_at: None,
        needs_review: false,
        reason: Some("signal 9".to_string()),
        signal: Some(9),
        ..end(&running2, &w, TaskStatus::Failed, now + secs(4))
    };
    let flags = s
        .task_finish_many(vec![failed, end(&running, &w, TaskStatus::Failed, now)])
        .await
        .expect("task_finish_many");
    assert_eq!(
        flags,
        vec![Some(TaskStatus::Failed), None],
        "one status per task, in order"
    );
    let f = get(s, t2.id).await;
    assert_eq!(
        (f.status, f.reason.as_deref(), f.signal, f.exit_code),
        (TaskStatus::Failed, Some("signal 9"), Some(9), None)
    );
    assert_eq!(
        get(s, t.id).await,
        done,
        "the refused one in a batch is unchanged"
    );

    let pending = insert(s, new_task("pending", now + secs(60))).await;
    let cancel_pending = TaskFinishParams {
        retry_at: None,
        needs_review: false,
        id: pending.id,
        expect: TaskStatus::Pending,
        expect_instance: None,
        reason: Some("canceled".to_string()),
        ..end(&running, &w, TaskStatus::Canceled, now)
    };
    assert!(
        finish(s, cancel_pending).await,
        "a pending task finishes over pending"
    );
    assert_eq!(get(s, pending.id).await.status, TaskStatus::Canceled);
}

/// No finish overwrites a terminal state, even one expecting that very state.
#[doc(hidden)]
pub async fn finish_never_overwrites_terminal_state(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let w = Worker::new("terminal");
    for first in [
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::Canceled,
    ] {
        let t = ended_task(s, &w, now, first).await;
        for then in [
            TaskStatus::Completed,
            TaskStatus::Failed,
            TaskStatus::Canceled,
        ] {
            for expect_instance in [None, Some(w.id)] {
                let p = TaskFinishParams {
                    retry_at: None,
                    needs_review: false,
                    expect: first,
                    expect_instance,
                    reason: Some("overwrite".to_string()),
                    ..end(&t, &w, then, now + secs(5))
                };
                assert!(
                    !finish(s, p).await,
                    "a {first} task must not become {then} (expect {first}, instance {expect_instance:?})"
                );
                assert_eq!(get(s, t.id).await, t, "a {first} task is unchanged");
            }
        }
    }
}

/// The next occurrence is inserted with the end, and only if the end applies.
#[doc(hidden)]
pub async fn finish_inserts_next_occurrence_atomically(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let w = Worker::new("recurring");
    let t = insert(
        s,
        NewTask {
            recurrence: Some(every("30s")),
            ..new_task("recurring", now - secs(1))
        },
    )
    .await;
    let running = claim_one(s, &w, now, t.id).await;
    let next = |due| NewTask {
        recurrence: Some(every("30s")),
        metadata: json!({ "lastCompletedAt": "x" }),
        ..new_task("recurring", due)
    };

    let refused_next = next(now + secs(30));
    let refused = TaskFinishParams {
        retry_at: None,
        needs_review: false,
        expect_instance: Some(Worker::new("other").id),
        next: Some(refused_next.clone()),
        ..end(&running, &w, TaskStatus::Completed, now + secs(1))
    };
    assert!(!finish(s, refused).await);
    assert!(
        s.task_get(refused_next.id)
            .await
            .expect("task_get")
            .is_none(),
        "no next occurrence when the end does not apply"
    );

    let n = next(now + secs(30));
    let ok = TaskFinishParams {
        retry_at: None,
        needs_review: false,
        next: Some(n.clone()),
        ..end(&running, &w, TaskStatus::Completed, now + secs(1))
    };
    assert!(finish(s, ok).await);
    let inserted = get(s, n.id).await;
    assert_eq!(
        inserted.status,
        TaskStatus::Pending,
        "next occurrence is pending"
    );
    assert_eq!(
        inserted.start_at,
        Some(now + secs(30)),
        "next occurrence's due time"
    );
    assert_eq!(inserted.recurrence, Some(every("30s")));
    assert_eq!(inserted.metadata, json!({ "lastCompletedAt": "x" }));

    let late_next = next(now + secs(60));
    let late = TaskFinishParams {
        retry_at: None,
        needs_review: false,
        next: Some(late_next.clone()),
        ..end(&running, &w, TaskStatus::Failed, now + secs(2))
    };
    assert!(!finish(s, late).await, "a second end does not apply");
    assert!(
        s.task_get(late_next.id).await.expect("task_get").is_none(),
        "nor does its next occurrence"
    );
}

/// The process group and log of a running task are recorded; the group is
/// forgotten when it ends; an ended task gets none.
#[doc(hidden)]
pub async fn mark_spawned_records_process_while_running(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let w = Worker::new("spawner");
    let t = insert(s, new_task("spawned", now - secs(1))).await;
    let running = claim_one(s, &w, now, t.id).await;
    let ended = ended_task(s, &w, now, TaskStatus::Completed).await;
    s.task_mark_spawned(vec![
        TaskSpawnedParams {
            id: t.id,
            pgid: 4242,
            log: "/tmp/jobslot/t.log".to_string(),
        },
        TaskSpawnedParams {
            id: ended.id,
            pgid: 4343,
            log: "/tmp/jobslot/e.log".to_string(),
        },
    ])
    .await
    .expect("task_mark_spawned");
    let got = get(s, t.id).await;
    assert_eq!(got.pgid, Some(4242), "pgid of the running task");
    assert_eq!(got.log.as_deref(), Some("/tmp/jobslot/t.log"));
    assert_eq!(
        get(s, ended.id).await,
        ended,
        "an ended task is not marked spawned"
    );

    assert!(finish(s, end(&running, &w, TaskStatus::Completed, now + secs(1))).await);
    let done = get(s, t.id).await;
    assert_eq!(done.pgid, None, "an ended task has no process group");
    assert_eq!(
        done.log.as_deref(),
        Some("/tmp/jobslot/t.log"),
        "a finish without a log keeps the recorded one"
    );
}

/// A retried end records the attempt and returns the task to pending, one
/// attempt further, only over the state the writer saw, and not when a cancel
/// was asked for (then the task ends as the end says). Exhaustion flags it.
#[doc(hidden)]
pub async fn finish_with_retry_records_the_attempt(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let w = Worker::new("retrier");
    let t = insert(s, new_task("flaky", now - secs(1))).await;
    let running = claim_one(s, &w, now, t.id).await;
    let retry = TaskFinishParams {
        reason: Some("exit 75".into()),
        exit_code: Some(75),
        log: Some("/tmp/jobslot/flaky.log".into()),
        retry_at: Some(now + secs(30)),
        ..end(&running, &w, TaskStatus::Failed, now + secs(1))
    };
    let refused = TaskFinishParams {
        expect_instance: Some(Worker::new("other").id),
        ..retry.clone()
    };
    assert!(!finish(s, refused).await, "another instance's retry");
    assert!(finish(s, retry.clone()).await);
    let back = get(s, t.id).await;
    assert_eq!(back.status, TaskStatus::Pending);
    assert_eq!(back.attempt, 2);
    assert_eq!(back.start_at, Some(now + secs(30)));
    assert_eq!((back.instance_id, back.instance.as_deref()), (None, None));
    assert_eq!((back.reason, back.exit_code, back.log), (None, None, None));
    assert!(!finish(s, retry).await, "the same end twice");
    let attempts = s.task_attempts(t.id).await.expect("attempts");
    assert_eq!(attempts.len(), 1);
    let a = &attempts[0];
    assert_eq!((a.attempt, a.status), (1, TaskStatus::Failed));
    assert_eq!(a.reason.as_deref(), Some("exit 75"));
    assert_eq!(a.exit_code, Some(75));
    assert_eq!(a.instance_id, Some(w.id));
    assert_eq!(a.instance.as_deref(), Some("retrier"));
    assert_eq!(a.started_at, Some(now));
    assert_eq!(a.ended_at, now + secs(1));
    assert_eq!(a.log.as_deref(), Some("/tmp/jobslot/flaky.log"));

    // The second attempt, with a cancel asked for while it ran: no retry.
    let second = claim_one(s, &w, now + secs(30), t.id).await;
    assert_eq!(second.attempt, 2);
    s.task_cancel(t.id, now + secs(31)).await.expect("cancel");
    let retry = TaskFinishParams {
        reason: Some("exit 75 (attempts exhausted: 2 of 2)".into()),
        retry_at: Some(now + secs(60)),
        needs_review: true,
        ..end(&second, &w, TaskStatus::Failed, now + secs(32))
    };
    assert!(finish(s, retry).await);
    let done = get(s, t.id).await;
    assert_eq!(
        done.status,
        TaskStatus::Failed,
        "a cancel wins over a retry"
    );
    assert_eq!(done.attempt, 2);
    assert!(done.needs_review);
    assert_eq!(s.task_attempts(t.id).await.expect("attempts").len(), 1);
}
