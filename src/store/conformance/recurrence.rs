//! Recurrence: how one occurrence of a schedule follows another: `after`
//! schedules, completion times, and removed schedules.

use super::Harness;
use super::support::{
    Worker, after_schedule, apply, claim, claim_one, end, every_schedule, finish, get, id_set,
    live, millis, names, next_of, now_ms, secs, sole_live,
};
use crate::model::TaskStatus;
use crate::store::TaskFinishParams;
use serde_json::json;

/// An `after` schedule's occurrence waits for the live occurrence of its
/// upstream schedule, wherever the two stand in the spec list.
#[doc(hidden)]
pub async fn schedule_after_links_to_upstream_occurrence(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let w = Worker::new("after-schedules");
    apply(
        s,
        vec![
            after_schedule("down-before", "publish", "up", now),
            every_schedule("up", "report", "30s", now - secs(1), json!({})),
            after_schedule("down-after", "publish", "up", now),
        ],
        now,
    )
    .await;
    let up = sole_live(s, "up").await;
    let mut downs = Vec::new();
    for name in ["down-before", "down-after"] {
        let d = sole_live(s, name).await;
        assert_eq!(d.after, Some(up.id), "{name} waits for up's occurrence");
        assert_eq!(d.start_at, None, "{name} is held");
        downs.push(d.id);
    }
    let running = claim_one(s, &w, now, up.id).await;
    let ended_at = now + secs(1);
    let next = next_of(&running, now + secs(30));
    let p = TaskFinishParams {
        retry_at: None,
        needs_review: false,
        next: Some(next.clone()),
        ..end(&running, &w, TaskStatus::Completed, ended_at)
    };
    assert!(finish(s, p).await);
    assert_eq!(sole_live(s, "up").await.id, next.id, "up's next occurrence");
    let got = claim(s, &w, ended_at, 100, 10).await;
    assert_eq!(
        id_set(&got),
        downs.into_iter().collect(),
        "both after occurrences are due once up's occurrence completed"
    );
}

/// When the upstream occurrence fails, the `after` occurrence is canceled and
/// replaced by one waiting for the upstream's next occurrence.
#[doc(hidden)]
pub async fn schedule_after_occurrence_replaced_when_upstream_fails(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let w = Worker::new("after-fail");
    apply(
        s,
        vec![
            every_schedule("up", "report", "30s", now - secs(1), json!({})),
            after_schedule("down", "publish", "up", now),
        ],
        now,
    )
    .await;
    let down = sole_live(s, "down").await;
    let up = sole_live(s, "up").await;
    let running = claim_one(s, &w, now, up.id).await;
    let next = next_of(&running, now + secs(30));
    let p = TaskFinishParams {
        retry_at: None,
        needs_review: false,
        next: Some(next.clone()),
        reason: Some("exit 1".to_string()),
        exit_code: Some(1),
        ..end(&running, &w, TaskStatus::Failed, now + secs(1))
    };
    assert!(finish(s, p).await);
    let old = get(s, down.id).await;
    assert_eq!(
        old.status,
        TaskStatus::Canceled,
        "the after occurrence is canceled"
    );
    assert!(
        old.reason
            .as_deref()
            .is_some_and(|r| r.contains(&up.id.to_string())),
        "its reason names the failed occurrence: {:?}",
        old.reason
    );
    let fresh = sole_live(s, "down").await;
    assert_ne!(fresh.id, down.id, "a fresh occurrence replaces it");
    assert_eq!(
        fresh.after,
        Some(next.id),
        "waiting for up's next occurrence"
    );
    assert_eq!((fresh.status, fresh.start_at), (TaskStatus::Pending, None));
}

/// A completed occurrence sets its schedule's last_completed_at; a failed one
/// does not.
#[doc(hidden)]
pub async fn schedule_completion_sets_last_completed_at(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let w = Worker::new("completer");
    apply(
        s,
        vec![every_schedule(
            "tick",
            "ping",
            "10s",
            now - secs(1),
            json!({}),
        )],
        now,
    )
    .await;
    let occ = sole_live(s, "tick").await;
    let running = claim_one(s, &w, now, occ.id).await;
    let next = next_of(&running, now + secs(10));
    let p = TaskFinishParams {
        retry_at: None,
        needs_review: false,
        next: Some(next.clone()),
        ..end(&running, &w, TaskStatus::Failed, now + secs(1))
    };
    assert!(finish(s, p).await);
    let row = s
        .schedule_get("tick")
        .await
        .expect("schedule_get")
        .expect("tick");
    assert_eq!(
        row.last_completed_at, None,
        "a failed occurrence does not count"
    );

    let running = claim_one(s, &w, now + secs(10), next.id).await;
    let done_at = now + secs(12) + millis(345);
    let p = TaskFinishParams {
        retry_at: None,
        needs_review: false,
        next: Some(next_of(&running, now + secs(20))),
        ..end(&running, &w, TaskStatus::Completed, done_at)
    };
    assert!(finish(s, p).await);
    let row = s
        .schedule_get("tick")
        .await
        .expect("schedule_get")
        .expect("tick");
    assert_eq!(
        row.last_completed_at,
        Some(done_at),
        "the completed occurrence's end time"
    );
}

/// A schedule removed while its occurrence runs gets no next occurrence.
#[doc(hidden)]
pub async fn finish_skips_next_of_removed_schedule(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let w = Worker::new("remover");
    apply(
        s,
        vec![every_schedule(
            "tick",
            "ping",
            "10s",
            now - secs(1),
            json!({}),
        )],
        now,
    )
    .await;
    let occ = sole_live(s, "tick").await;
    let running = claim_one(s, &w, now, occ.id).await;
    let report = apply(s, Vec::new(), now + secs(1)).await;
    assert_eq!(names(&report.removed), ["tick"]);
    assert_eq!(
        get(s, occ.id).await,
        running,
        "a running occurrence runs on"
    );

    let next = next_of(&running, now + secs(10));
    let p = TaskFinishParams {
        retry_at: None,
        needs_review: false,
        next: Some(next.clone()),
        ..end(&running, &w, TaskStatus::Completed, now + secs(2))
    };
    assert!(finish(s, p).await, "the end applies");
    assert!(
        s.task_get(next.id).await.expect("task_get").is_none(),
        "no next occurrence for a removed schedule"
    );
    assert!(live(s, "tick").await.is_empty());
}
