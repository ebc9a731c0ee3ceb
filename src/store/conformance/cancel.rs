//! Cancel and reschedule: a task taken off its course other than by finishing.

use super::Harness;
use super::support::{
    Worker, claim, claim_one, end, ended_task, finish, get, ids, insert, new_task, now_ms, secs,
};
use crate::model::TaskStatus;
use crate::store::{CancelOutcome, TaskRescheduleParams};
use uuid::Uuid;

/// Each outcome of `task_cancel`.
#[doc(hidden)]
pub async fn cancel_outcomes(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let w = Worker::new("canceler");
    let other = Worker::new("bystander");

    let p = insert(s, new_task("pending", now + secs(60))).await;
    assert_eq!(
        s.task_cancel(p.id, now).await.expect("cancel"),
        CancelOutcome::Canceled
    );
    let canceled = get(s, p.id).await;
    assert_eq!(canceled.status, TaskStatus::Canceled);
    assert_eq!(canceled.ended_at, Some(now), "ended when canceled");
    assert!(
        claim(s, &w, now + secs(60), 100, 10).await.is_empty(),
        "a canceled task is not claimed"
    );

    let r = insert(s, new_task("running", now - secs(1))).await;
    let running = claim_one(s, &w, now, r.id).await;
    assert!(
        s.task_cancel_requests(w.id)
            .await
            .expect("cancel requests")
            .is_empty(),
        "no request before a cancel"
    );
    for _ in 0..2 {
        assert_eq!(
            s.task_cancel(r.id, now).await.expect("cancel"),
            CancelOutcome::StopRequested
        );
    }
    assert_eq!(
        get(s, r.id).await.status,
        TaskStatus::Running,
        "still running until stopped"
    );
    assert_eq!(
        s.task_cancel_requests(w.id).await.expect("cancel requests"),
        vec![r.id]
    );
    assert!(
        s.task_cancel_requests(other.id)
            .await
            .expect("cancel requests")
            .is_empty(),
        "requests go to the holding instance only"
    );
    assert!(finish(s, end(&running, &w, TaskStatus::Canceled, now + secs(1))).await);
    assert!(
        s.task_cancel_requests(w.id)
            .await
            .expect("cancel requests")
            .is_empty(),
        "an ended task is no longer a request"
    );

    assert_eq!(
        s.task_cancel(r.id, now).await.expect("cancel"),
        CancelOutcome::AlreadyEnded(TaskStatus::Canceled)
    );
    for status in [TaskStatus::Completed, TaskStatus::Failed] {
        let t = ended_task(s, &w, now, status).await;
        assert_eq!(
            s.task_cancel(t.id, now).await.expect("cancel"),
            CancelOutcome::AlreadyEnded(status)
        );
        assert_eq!(
            get(s, t.id).await,
            t,
            "an ended task is unchanged by a cancel"
        );
    }
    assert_eq!(
        s.task_cancel(Uuid::now_v7(), now).await.expect("cancel"),
        CancelOutcome::NotFound
    );
}

/// A claimed task goes back to pending at a new due time, only for its holder.
#[doc(hidden)]
pub async fn reschedule_returns_claimed_task_to_pending(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let w = Worker::new("holder");
    let other = Worker::new("other");
    let t = insert(s, new_task("missed", now - secs(1))).await;
    let running = claim_one(s, &w, now, t.id).await;
    let later = now + secs(60);
    let by = |who: &Worker, id| TaskRescheduleParams {
        id,
        instance_id: who.id,
        due_at: later,
    };

    assert!(
        !s.task_reschedule(by(&other, t.id))
            .await
            .expect("reschedule"),
        "another instance cannot reschedule it"
    );
    assert_eq!(get(s, t.id).await, running, "unchanged");
    let pending = insert(s, new_task("pending", now + secs(5))).await;
    assert!(
        !s.task_reschedule(by(&w, pending.id))
            .await
            .expect("reschedule"),
        "a pending task is not rescheduled"
    );
    assert_eq!(get(s, pending.id).await, pending, "unchanged");

    assert!(s.task_reschedule(by(&w, t.id)).await.expect("reschedule"));
    let back = get(s, t.id).await;
    assert_eq!(back.status, TaskStatus::Pending);
    assert_eq!(back.start_at, Some(later), "new due time");
    assert_eq!(
        (
            back.instance_id,
            back.instance.as_deref(),
            back.host.as_deref()
        ),
        (None, None, None),
        "no longer held"
    );
    assert_eq!(
        (back.started_at, back.deadline_at),
        (None, None),
        "not started"
    );
    assert_eq!(
        ids(&claim(s, &w, now, 100, 10).await),
        Vec::<Uuid>::new(),
        "not due before its new due time"
    );
    assert_eq!(
        ids(&claim(s, &other, later, 1, 1).await),
        vec![pending.id],
        "the earlier task first"
    );
    assert_eq!(
        ids(&claim(s, &other, later, 1, 1).await),
        vec![t.id],
        "claimable again"
    );
}
