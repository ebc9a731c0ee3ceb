//! Cases for what an instance owns: the claim records the log location, the
//! tasks held by an instance are listed, a release clears the claim, and the
//! database's clock is readable.

use super::Harness;
use super::support::*;
use crate::model::TaskStatus;
use crate::store::{TaskFinishParams, TaskRescheduleParams, TaskSpawnedParams};

/// The claim records where each attempt's log goes; `task_held` lists the
/// running tasks of one instance, with their attempts; a reschedule (a task
/// that never got its process) clears the process group and log location.
pub async fn claim_records_log_location_and_held_tasks(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let w = Worker::new("holder");
    let other = Worker::new("other");
    let a = insert(s, new_task("a", now - secs(2))).await;
    let b = insert(s, new_task("b", now - secs(1))).await;
    let mut p = w.claim_params(now, 1, 1);
    p.log_prefix = Some("/var/logs/".to_string());
    let claimed = s.task_claim(p.clone()).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    let want = format!("/var/logs/{}.log", a.id);
    assert_eq!(
        claimed[0].log.as_deref(),
        Some(want.as_str()),
        "as returned"
    );
    assert_eq!(
        get(s, a.id).await.log.as_deref(),
        Some(want.as_str()),
        "as stored"
    );
    let mut q = other.claim_params(now, 1, 1);
    q.log_prefix = Some("/other/".to_string());
    let b_claimed = s.task_claim(q).await.expect("claim b");
    assert_eq!(b_claimed.first().map(|t| t.id), Some(b.id));

    let held = s.task_held(w.id).await.expect("held");
    assert_eq!(
        held.iter().map(|t| (t.id, t.attempt)).collect::<Vec<_>>(),
        vec![(a.id, 1)],
        "only this instance's running task"
    );

    // A retried attempt is claimed with its own file name.
    let retried = s
        .task_finish_many(vec![TaskFinishParams {
            id: a.id,
            expect: TaskStatus::Running,
            expect_instance: Some(w.id),
            status: TaskStatus::Failed,
            reason: Some("exit 75".into()),
            exit_code: Some(75),
            signal: None,
            ended_at: now,
            result: None,
            log: None,
            next: None,
            retry_at: Some(now - secs(1)),
            needs_review: false,
            callback: None,
        }])
        .await
        .expect("retry");
    assert_eq!(retried, vec![Some(TaskStatus::Pending)]);
    let again = s.task_claim(p).await.expect("claim again");
    assert_eq!(again.len(), 1);
    let want = format!("/var/logs/{}.attempt-2.log", a.id);
    assert_eq!(again[0].log.as_deref(), Some(want.as_str()));
    assert_eq!(
        s.task_held(w.id)
            .await
            .expect("held")
            .iter()
            .map(|t| (t.id, t.attempt))
            .collect::<Vec<_>>(),
        vec![(a.id, 2)]
    );

    s.task_mark_spawned(vec![TaskSpawnedParams {
        id: a.id,
        pgid: 4242,
        log: want.clone(),
    }])
    .await
    .expect("spawned");
    assert!(
        s.task_reschedule(TaskRescheduleParams {
            id: a.id,
            instance_id: w.id,
            due_at: now,
        })
        .await
        .expect("release")
    );
    let back = get(s, a.id).await;
    assert_eq!(back.status, TaskStatus::Pending);
    assert_eq!(back.attempt, 2, "the attempt is not used up");
    assert_eq!((back.pgid, back.log.as_deref()), (None, None), "{back:?}");
    assert!(s.task_held(w.id).await.expect("held").is_empty());

    let db = s.db_now().await.expect("db clock");
    let skew = (db - chrono::Utc::now()).num_milliseconds().abs();
    assert!(
        skew < 5_000,
        "the test database's clock is near ours: {skew} ms"
    );
}
