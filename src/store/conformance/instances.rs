//! Instances: registration, heartbeats and stops, and the orphans left by
//! instances that went away.

use super::Harness;
use super::support::{Worker, claim_one, ended_task, ids, insert, millis, new_task, now_ms, secs};
use crate::model::TaskStatus;
use crate::store::{Instance, NewTask, OrphanParams};
use std::collections::BTreeSet;
use std::time::Duration;
use uuid::Uuid;

/// Orphans are running tasks of other instances past deadline + grace.
#[doc(hidden)]
pub async fn orphans_are_foreign_tasks_past_deadline_and_grace(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let t0 = now_ms();
    let me = Worker::new("me");
    let other = Worker::new("other");
    let grace = Duration::from_secs(60);
    assert_eq!(
        s.task_next_foreign_deadline(me.id)
            .await
            .expect("next foreign deadline"),
        None,
        "no running task, no deadline"
    );
    let met = |job: &str, secs_: u64| NewTask {
        max_execution_time: Duration::from_secs(secs_),
        ..new_task(job, t0 - secs(1))
    };
    let own = insert(s, met("own", 1)).await;
    claim_one(s, &me, t0, own.id).await;
    let o10 = insert(s, met("o10", 10)).await;
    claim_one(s, &other, t0, o10.id).await;
    let o5 = insert(s, met("o5", 5)).await;
    claim_one(s, &other, t0, o5.id).await;
    ended_task(s, &other, t0, TaskStatus::Completed).await;

    let orphans = |who: &Worker, now| {
        let p = OrphanParams {
            me: who.id,
            now,
            grace,
        };
        async move { ids(&s.task_list_orphans(p).await.expect("task_list_orphans")) }
    };
    assert!(
        orphans(&me, t0 + secs(65) - millis(1)).await.is_empty(),
        "not before deadline + grace"
    );
    assert_eq!(
        orphans(&me, t0 + secs(65)).await,
        vec![o5.id],
        "at deadline + grace"
    );
    let later: BTreeSet<Uuid> = orphans(&me, t0 + secs(3600)).await.into_iter().collect();
    assert_eq!(
        later,
        BTreeSet::from([o5.id, o10.id]),
        "foreign running tasks only: never my own, never an ended one"
    );
    assert_eq!(
        orphans(&other, t0 + secs(3600)).await,
        vec![own.id],
        "the other instance sees mine, never its own"
    );

    assert_eq!(
        s.task_next_foreign_deadline(me.id)
            .await
            .expect("next foreign deadline"),
        Some(t0 + secs(5)),
        "earliest deadline among the other's tasks"
    );
    assert_eq!(
        s.task_next_foreign_deadline(other.id)
            .await
            .expect("next foreign deadline"),
        Some(t0 + secs(1)),
        "the other instance sees my task's deadline"
    );
}

/// Instances are registered, heartbeat, stop, and are listed newest first.
#[doc(hidden)]
pub async fn instances_register_heartbeat_stop_list(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let older = Instance {
        id: Uuid::now_v7(),
        name: "older".to_string(),
        host: "host-a".to_string(),
        pid: 1234,
        slots: 4,
        queues: vec!["a".to_string(), "b".to_string()],
        started_at: now - secs(10),
        heartbeat_at: now - secs(10),
        stopped_at: None,
        heartbeat_interval: std::time::Duration::from_millis(2500),
        clock_offset_ms: 0,
    };
    let newer = Instance {
        id: Uuid::now_v7(),
        name: "newer".to_string(),
        host: "host-b".to_string(),
        pid: 99,
        slots: 2,
        queues: Vec::new(),
        started_at: now - secs(5),
        heartbeat_at: now - secs(5),
        stopped_at: None,
        heartbeat_interval: std::time::Duration::from_secs(5),
        clock_offset_ms: -1500,
    };
    s.instance_register(older.clone())
        .await
        .expect("register older");
    s.instance_register(newer.clone())
        .await
        .expect("register newer");
    let listed = s.instance_list().await.expect("instance_list");
    assert_eq!(
        listed,
        vec![newer.clone(), older.clone()],
        "every field, newest first"
    );

    s.instance_heartbeat(older.id, now, 2500)
        .await
        .expect("heartbeat");
    s.instance_stop(newer.id, now + secs(1))
        .await
        .expect("stop");
    let listed = s.instance_list().await.expect("instance_list");
    assert_eq!(listed.len(), 2);
    let find = |id| {
        listed
            .iter()
            .find(|i| i.id == id)
            .unwrap_or_else(|| panic!("instance {id} listed"))
    };
    assert_eq!(find(older.id).heartbeat_at, now, "the heartbeat moves");
    assert_eq!(
        find(older.id).clock_offset_ms,
        2500,
        "the heartbeat records the clock offset"
    );
    assert_eq!(find(older.id).stopped_at, None);
    assert_eq!(
        find(newer.id).stopped_at,
        Some(now + secs(1)),
        "stopped_at is set"
    );
    assert_eq!(
        (&find(newer.id).name, find(newer.id).started_at),
        (&newer.name, newer.started_at),
        "a stop keeps the rest"
    );
}
