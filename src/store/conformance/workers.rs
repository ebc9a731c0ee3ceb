//! Workers: applying the schema's entries (generations, scaling, removal),
//! stop/start/restart, live replicas by unique key, and the guarded step of a
//! rolling restart.

use super::Harness;
use super::support::{Worker, claim, end, finish, insert, new_task, now_ms, secs};
use crate::model::TaskStatus;
use crate::store::{NewTask, WorkerControl, WorkerSpec, WorkerState, replica_key};
use serde_json::json;
use std::time::Duration;

/// A worker of job `consume` with short backoffs, for the cases.
#[doc(hidden)]
pub fn worker_spec(name: &str, replicas: u32) -> WorkerSpec {
    WorkerSpec {
        name: name.to_string(),
        job: "consume".to_string(),
        replicas,
        args: json!({"topic": "orders"}),
        queue: "default".to_string(),
        priority: 0,
        slots: 1,
        max_execution_time: None,
        kill_grace: Duration::from_secs(2),
        backoff_initial: Duration::from_millis(100),
        backoff_max: Duration::from_secs(5),
        healthy_after: Duration::from_secs(10),
    }
}

fn replica(name: &str, i: u32, due: chrono::DateTime<chrono::Utc>) -> NewTask {
    NewTask {
        unique_key: Some(replica_key(name, i)),
        recurrence: Some(json!({"worker": name, "replica": i, "generation": 1})),
        ..new_task("consume", due)
    }
}

/// Apply adds, changes (new generation), scales (same generation) and removes;
/// a stopped worker stays stopped across applies; control answers `None` for
/// an unknown worker.
#[doc(hidden)]
pub async fn worker_apply_tracks_generations_and_state(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let t0 = now_ms();
    let r = s
        .worker_apply(vec![worker_spec("a", 2), worker_spec("b", 1)], t0)
        .await
        .expect("apply");
    assert_eq!(r.added, vec!["a", "b"]);
    let a = s.worker_get("a").await.expect("get").expect("a");
    assert_eq!(
        (a.generation, a.state, a.spec.clone()),
        (1, WorkerState::Active, worker_spec("a", 2))
    );
    // The same again: nothing changes.
    let r = s
        .worker_apply(vec![worker_spec("a", 2), worker_spec("b", 1)], t0)
        .await
        .expect("apply");
    assert!(
        r.added.is_empty() && r.changed.is_empty() && r.scaled.is_empty() && r.removed.is_empty(),
        "{r:?}"
    );
    // Args change: a new generation. Replicas alone: scaled, same generation.
    let changed = WorkerSpec {
        args: json!({"topic": "refunds"}),
        ..worker_spec("a", 2)
    };
    let r = s
        .worker_apply(vec![changed.clone(), worker_spec("b", 3)], t0 + secs(1))
        .await
        .expect("apply");
    assert_eq!(
        (r.changed.clone(), r.scaled.clone()),
        (vec!["a".to_string()], vec!["b".to_string()])
    );
    let rows = s.worker_list().await.expect("list");
    assert_eq!(
        rows.iter()
            .map(|w| (w.spec.name.as_str(), w.generation, w.spec.replicas))
            .collect::<Vec<_>>(),
        vec![("a", 2, 2), ("b", 1, 3)]
    );
    assert_eq!(rows[0].spec.args, json!({"topic": "refunds"}));
    // Stop; an apply keeps it stopped; start; restart bumps the generation.
    let w = s
        .worker_control("a", WorkerControl::Stop("by hand".into()), t0)
        .await
        .expect("stop")
        .expect("a exists");
    assert_eq!(
        (w.state, w.state_reason.as_deref()),
        (WorkerState::Stopped, Some("by hand"))
    );
    s.worker_apply(vec![changed.clone(), worker_spec("b", 3)], t0 + secs(2))
        .await
        .expect("apply");
    let w = s.worker_get("a").await.expect("get").expect("a");
    assert_eq!(
        w.state,
        WorkerState::Stopped,
        "apply does not restart a stopped worker"
    );
    let w = s
        .worker_control("a", WorkerControl::Start, t0)
        .await
        .expect("start")
        .expect("a");
    assert_eq!(
        (w.state, w.state_reason, w.generation),
        (WorkerState::Active, None, 2)
    );
    let w = s
        .worker_control("a", WorkerControl::Restart, t0)
        .await
        .expect("restart")
        .expect("a");
    assert_eq!(w.generation, 3);
    assert_eq!(
        s.worker_control("nope", WorkerControl::Start, t0)
            .await
            .expect("control"),
        None
    );
    // Removed from the schema: deleted.
    let r = s
        .worker_apply(vec![worker_spec("b", 3)], t0)
        .await
        .expect("apply");
    assert_eq!(r.removed, vec!["a"]);
    assert!(s.worker_get("a").await.expect("get").is_none());
}

/// Live replicas are listed by unique key, per worker or all; a second live
/// task of one replica is refused; the rolling step only stops a replica when
/// all are running and none is being stopped.
#[doc(hidden)]
pub async fn worker_replicas_and_rolling_step(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let t0 = now_ms();
    let me = Worker::new("replica-host");
    s.worker_apply(vec![worker_spec("w", 2), worker_spec("w2", 1)], t0)
        .await
        .expect("apply");
    let r0 = insert(s, replica("w", 0, t0 - secs(1))).await;
    let r1 = insert(s, replica("w", 1, t0 + secs(3600))).await;
    let other = insert(s, replica("w2", 0, t0 + secs(3600))).await;
    // `w` and `w2` do not mix (w2's keys sort after w's).
    insert(s, new_task("unrelated", t0 + secs(7200))).await;
    let dup = s.task_insert(replica("w", 0, t0)).await;
    assert!(dup.is_err(), "replica 0 is already live: {dup:?}");
    let ids = |v: Vec<crate::model::Task>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.worker_replicas(Some("w".into())).await.expect("w")),
        vec![r0.id, r1.id]
    );
    assert_eq!(
        ids(s.worker_replicas(Some("w2".into())).await.expect("w2")),
        vec![other.id]
    );
    assert_eq!(s.worker_replicas(None).await.expect("all").len(), 3);

    // Only r0 runs: rolling it would leave fewer than 1 of 2 running.
    let running = claim(s, &me, t0, 10, 10).await;
    assert_eq!(
        running.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![r0.id]
    );
    assert!(
        !s.worker_roll("w", r0.id, 2).await.expect("roll"),
        "r1 is not running"
    );
    // Both run: one may be stopped, then no other until it has ended.
    let later = t0 + secs(3601);
    let running = claim(s, &me, later, 10, 10).await;
    assert_eq!(running.len(), 2, "r1 and w2's replica");
    assert!(s.worker_roll("w", r0.id, 2).await.expect("roll"));
    let flagged = s
        .task_cancel_requests(me.id)
        .await
        .expect("cancel requests");
    assert_eq!(flagged, vec![r0.id], "the instance is asked to stop r0");
    assert!(
        !s.worker_roll("w", r1.id, 2).await.expect("roll"),
        "r0 is being stopped"
    );
    assert!(
        !s.worker_roll("w", other.id, 2).await.expect("roll"),
        "not a replica of w"
    );
    // r0 ends: r1 can go, once a new replica 0 runs.
    let r0_run = s.task_get(r0.id).await.expect("get").expect("r0");
    assert!(finish(s, end(&r0_run, &me, TaskStatus::Canceled, later)).await);
    let new0 = insert(s, replica("w", 0, later)).await;
    assert!(
        !s.worker_roll("w", r1.id, 2).await.expect("roll"),
        "the new replica 0 is pending"
    );
    claim(s, &me, later, 10, 10).await;
    assert_eq!(
        s.task_get(new0.id).await.expect("get").map(|t| t.status),
        Some(TaskStatus::Running)
    );
    assert!(s.worker_roll("w", r1.id, 2).await.expect("roll"));
}
