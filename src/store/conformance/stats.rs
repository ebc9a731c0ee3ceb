//! The stats snapshot: known counts, durations, retries, locks and instances
//! come back exactly.

use super::Harness;
use super::support::{Worker, claim_one, end, finish, get, insert, millis, new_task, now_ms, secs};
use crate::model::TaskStatus;
use crate::store::{
    DURATION_BUCKETS, Instance, NewTask, PendingGroup, StatsSnapshot, TaskFinishParams,
};
use std::time::Duration;

fn instance(
    w: &Worker,
    slots: u32,
    queues: &[&str],
    heartbeat: chrono::DateTime<chrono::Utc>,
) -> Instance {
    Instance {
        id: w.id,
        name: w.name.clone(),
        host: w.host.clone(),
        pid: 1,
        slots,
        queues: queues.iter().map(|q| q.to_string()).collect(),
        started_at: heartbeat,
        heartbeat_at: heartbeat,
        stopped_at: None,
        heartbeat_interval: Duration::from_secs(1),
        clock_offset_ms: 0,
    }
}

/// Counts per queue and status, finished counts, duration histograms and
/// retries per job, the oldest running task per queue, slots used per
/// instance, pending groups and paused queues.
#[doc(hidden)]
pub async fn stats_snapshot_counts_what_the_database_holds(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let t0 = now_ms();
    let w = Worker::new("stats-worker");
    let empty = s.stats_snapshot(t0).await.expect("stats_snapshot");
    assert_eq!(
        (empty.queues.len(), empty.jobs.len(), empty.instances.len()),
        (0, 0, 0),
        "an empty database has no figures"
    );

    // `ok`: three completed tasks that ran 2 ms, 1 s and 90 s.
    for ran in [millis(2), secs(1), secs(90)] {
        let t = insert(s, new_task("ok", t0 - secs(1))).await;
        let running = claim_one(s, &w, t0, t.id).await;
        assert!(finish(s, end(&running, &w, TaskStatus::Completed, t0 + ran)).await);
    }
    // `bad`: one failed after 50 ms, one canceled before it ran.
    let t = insert(s, new_task("bad", t0 - secs(1))).await;
    let running = claim_one(s, &w, t0, t.id).await;
    assert!(finish(s, end(&running, &w, TaskStatus::Failed, t0 + millis(50))).await);
    let t = insert(s, new_task("bad", t0 + secs(3600))).await;
    s.task_cancel(t.id, t0).await.expect("cancel");
    // `flaky`: retried once, then completed in 10 ms.
    let t = insert(s, new_task("flaky", t0 - secs(1))).await;
    let running = claim_one(s, &w, t0, t.id).await;
    let retry = TaskFinishParams {
        retry_at: Some(t0 + secs(2)),
        ..end(&running, &w, TaskStatus::Failed, t0 + secs(1))
    };
    assert!(finish(s, retry).await);
    let second = claim_one(s, &w, t0 + secs(2), t.id).await;
    assert_eq!(second.attempt, 2);
    let done = end(
        &second,
        &w,
        TaskStatus::Completed,
        t0 + secs(2) + millis(10),
    );
    assert!(finish(s, done).await);
    // `long`: running in queue a for 30 s, 30 s before its deadline.
    let long = insert(
        s,
        NewTask {
            queue: "a".into(),
            max_execution_time: Duration::from_secs(60),
            ..new_task("long", t0 - secs(60))
        },
    )
    .await;
    claim_one(s, &w, t0 - secs(30), long.id).await;
    // Pending: two `wide` (8 slots) in a, one `small` in b, one `held` in
    // paused queue p.
    for (job, queue, slots) in [
        ("wide", "a", 8),
        ("wide", "a", 8),
        ("small", "b", 1),
        ("held", "p", 1),
    ] {
        insert(
            s,
            NewTask {
                queue: queue.into(),
                slots,
                ..new_task(job, t0 + secs(3600))
            },
        )
        .await;
    }
    assert!(s.queue_pause("p", t0).await.expect("pause"));
    // Instances: w alive, one gone 10 s ago, one stopped 2 h ago.
    s.instance_register(instance(&w, 4, &["a", "default"], t0))
        .await
        .expect("register");
    let gone = Worker::new("gone");
    s.instance_register(instance(&gone, 2, &[], t0 - secs(10)))
        .await
        .expect("register gone");
    let stopped = Worker::new("stopped");
    s.instance_register(Instance {
        stopped_at: Some(t0 - secs(7200)),
        ..instance(&stopped, 2, &[], t0 - secs(7200))
    })
    .await
    .expect("register stopped");

    let snap: StatsSnapshot = s.stats_snapshot(t0).await.expect("stats_snapshot");
    assert_eq!(snap.at, t0);
    let queue = |name: &str| {
        snap.queues
            .iter()
            .find(|q| q.name == name)
            .unwrap_or_else(|| panic!("queue {name} in {:?}", snap.queues))
    };
    let counts = |name: &str| -> Vec<u64> {
        TaskStatus::ALL
            .iter()
            .map(|st| queue(name).tasks.get(st).copied().unwrap_or(0))
            .collect()
    };
    let names: Vec<&str> = snap.queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "default", "p"], "queues by name");
    // pending, running, waiting, completed, failed, canceled
    assert_eq!(counts("default"), [0, 0, 0, 4, 1, 1]);
    assert_eq!(counts("a"), [2, 1, 0, 0, 0, 0]);
    assert_eq!(counts("b"), [1, 0, 0, 0, 0, 0]);
    assert_eq!(counts("p"), [1, 0, 0, 0, 0, 0]);
    assert!(snap.is_paused("p") && !snap.is_paused("a"));
    assert_eq!(snap.count(TaskStatus::Completed), 4);

    let oldest = queue("a")
        .oldest_running
        .clone()
        .expect("a running task in a");
    assert_eq!(oldest.id, long.id);
    assert_eq!((oldest.age, oldest.deadline_in), (30.0, Some(30.0)));
    assert_eq!(queue("default").oldest_running, None);

    let job = |name: &str| {
        snap.jobs
            .iter()
            .find(|j| j.name == name)
            .unwrap_or_else(|| panic!("job {name} in {:?}", snap.jobs))
    };
    let names: Vec<&str> = snap.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(
        names,
        ["bad", "flaky", "held", "long", "ok", "small", "wide"]
    );
    let ok = job("ok");
    assert_eq!(
        (ok.completed, ok.failed, ok.canceled, ok.retries),
        (3, 0, 0, 0)
    );
    assert_eq!(ok.duration.count, 3);
    assert!(
        (ok.duration.sum - 91.002).abs() < 1e-9,
        "{}",
        ok.duration.sum
    );
    assert_eq!(ok.duration.buckets.len(), DURATION_BUCKETS.len());
    // 0.005 … 0.5: the 2 ms one; 1 … 60: also the 1 s one; 300 on: all three.
    assert_eq!(
        ok.duration.buckets,
        [1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 3, 3, 3]
    );
    assert_eq!(ok.failure_ratio(), Some(0.0));
    let bad = job("bad");
    assert_eq!((bad.completed, bad.failed, bad.canceled), (0, 1, 1));
    assert_eq!(bad.duration.count, 1, "the canceled task never ran");
    assert_eq!(
        bad.duration.buckets[3], 1,
        "50 ms is within the 0.05 bucket"
    );
    assert_eq!(bad.duration.buckets[2], 0);
    assert_eq!(bad.failure_ratio(), Some(1.0));
    let flaky = job("flaky");
    assert_eq!((flaky.completed, flaky.retries), (1, 1));
    assert_eq!((flaky.duration.count, flaky.duration.buckets[1]), (1, 1));
    assert_eq!(
        job("long").duration.count,
        0,
        "a running task has no duration"
    );
    assert_eq!(job("wide").failure_ratio(), None);

    assert_eq!(
        snap.pending,
        [
            PendingGroup {
                job: "held".into(),
                queue: "p".into(),
                slots: 1,
                count: 1
            },
            PendingGroup {
                job: "small".into(),
                queue: "b".into(),
                slots: 1,
                count: 1
            },
            PendingGroup {
                job: "wide".into(),
                queue: "a".into(),
                slots: 8,
                count: 2
            },
        ]
    );

    let reported: Vec<(&str, &str, u32, u64)> = snap
        .instances
        .iter()
        .map(|f| (f.instance.name.as_str(), f.state, f.slots_used, f.running))
        .collect();
    assert_eq!(
        reported,
        [("stats-worker", "alive", 1, 1), ("gone", "gone", 0, 0)],
        "newest first; the one stopped two hours ago is left out"
    );
    assert_eq!(snap.instances[1].heartbeat_age, 10.0);
    assert_eq!(
        snap.all_instances.len(),
        3,
        "capacity checks see every instance"
    );
    assert_eq!(get(s, long.id).await.status, TaskStatus::Running);
}
