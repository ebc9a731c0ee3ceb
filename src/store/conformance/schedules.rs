//! Applying schedules and job settings: create, move, remove, and concurrent
//! applies.

use super::Harness;
use super::support::{
    Worker, apply, claim_one, every, every_schedule, get, insert, live, names, new_task, now_ms,
    secs, sole_live,
};
use crate::model::TaskStatus;
use crate::store::{JobSettings, ScheduleApplyParams};
use serde_json::json;
use std::time::Duration;

/// The first apply creates one occurrence per schedule; the same apply again
/// changes nothing.
#[doc(hidden)]
pub async fn schedule_apply_creates_once_then_is_a_no_op(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let specs = || {
        vec![
            every_schedule("tick", "ping", "30s", now + secs(30), json!({ "n": 1 })),
            every_schedule("tock", "pong", "1m", now + secs(60), json!({})),
        ]
    };
    let first = specs();
    let report = apply(s, first.clone(), now).await;
    assert_eq!(
        names(&report.created),
        ["tick", "tock"],
        "first apply creates both: {report:?}"
    );
    assert!(report.updated.is_empty() && report.removed.is_empty() && report.unchanged.is_empty());

    let mut occurrences = Vec::new();
    for spec in &first {
        let occ = sole_live(s, &spec.name).await;
        assert_eq!(
            occ.id, spec.first.id,
            "the occurrence is the spec's first task"
        );
        assert_eq!(occ.status, TaskStatus::Pending);
        assert_eq!(occ.job, spec.job);
        assert_eq!(occ.schedule.as_deref(), Some(spec.name.as_str()));
        assert_eq!(occ.start_at, Some(spec.first.due_at));
        assert_eq!(occ.args, spec.args);
        assert_eq!(occ.recurrence.as_ref(), Some(&spec.recurrence));
        occurrences.push(occ);
        let row = s
            .schedule_get(&spec.name)
            .await
            .expect("schedule_get")
            .unwrap_or_else(|| panic!("schedule {} applied", spec.name));
        assert_eq!(
            (
                row.job.as_str(),
                &row.recurrence,
                &row.args,
                row.last_completed_at
            ),
            (spec.job.as_str(), &spec.recurrence, &spec.args, None),
            "schedule row {}",
            spec.name
        );
    }
    let rows = s.schedule_list().await.expect("schedule_list");
    let row_names: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
    assert_eq!(names(&row_names), ["tick", "tock"]);
    assert_eq!(s.schedule_get("nope").await.expect("schedule_get"), None);

    let report = apply(s, specs(), now + secs(1)).await;
    assert_eq!(
        names(&report.unchanged),
        ["tick", "tock"],
        "second apply: {report:?}"
    );
    assert!(report.created.is_empty() && report.updated.is_empty() && report.removed.is_empty());
    for occ in occurrences {
        let name = occ.schedule.clone().unwrap_or_default();
        assert_eq!(
            sole_live(s, &name).await,
            occ,
            "occurrence of {name} untouched"
        );
    }
}

/// A changed schedule moves its pending occurrence (same task, new due time and
/// args); a running occurrence is left alone.
#[doc(hidden)]
pub async fn schedule_apply_moves_changed_pending_occurrence(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    apply(
        s,
        vec![every_schedule(
            "tick",
            "ping",
            "30s",
            now + secs(30),
            json!({ "n": 1 }),
        )],
        now,
    )
    .await;
    let before = sole_live(s, "tick").await;

    let changed = every_schedule("tick", "ping", "45s", now + secs(45), json!({ "n": 2 }));
    let report = apply(s, vec![changed.clone()], now).await;
    assert_eq!(names(&report.updated), ["tick"], "{report:?}");
    let moved = sole_live(s, "tick").await;
    assert_eq!(moved.id, before.id, "the same occurrence moves");
    assert_eq!(moved.status, TaskStatus::Pending);
    assert_eq!(moved.start_at, Some(now + secs(45)), "new due time");
    assert_eq!(moved.args, json!({ "n": 2 }), "new args");
    assert_eq!(moved.recurrence, Some(every("45s")), "new recurrence");
    let row = s
        .schedule_get("tick")
        .await
        .expect("schedule_get")
        .expect("tick applied");
    assert_eq!(
        (row.recurrence, row.args),
        (every("45s"), json!({ "n": 2 }))
    );

    let w = Worker::new("runner");
    let running = claim_one(s, &w, now + secs(45), before.id).await;
    let report = apply(
        s,
        vec![every_schedule(
            "tick",
            "ping",
            "1m",
            now + secs(60),
            json!({ "n": 3 }),
        )],
        now + secs(46),
    )
    .await;
    assert!(
        report.created.is_empty(),
        "a running occurrence is live: nothing created: {report:?}"
    );
    assert_eq!(
        sole_live(s, "tick").await,
        running,
        "a running occurrence is left alone"
    );
}

/// A removed schedule's pending occurrence is canceled and the schedule is gone.
#[doc(hidden)]
pub async fn schedule_apply_removes_schedule(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let tick = every_schedule("tick", "ping", "30s", now + secs(30), json!({}));
    let tock = every_schedule("tock", "pong", "30s", now + secs(30), json!({}));
    apply(s, vec![tick.clone(), tock], now).await;
    let tock_occ = sole_live(s, "tock").await;

    let report = apply(s, vec![tick], now + secs(1)).await;
    assert_eq!(names(&report.removed), ["tock"], "{report:?}");
    assert_eq!(names(&report.unchanged), ["tick"], "{report:?}");
    let gone = get(s, tock_occ.id).await;
    assert_eq!(
        gone.status,
        TaskStatus::Canceled,
        "the removed schedule's occurrence is canceled"
    );
    assert!(live(s, "tock").await.is_empty());
    let rows = s.schedule_list().await.expect("schedule_list");
    assert_eq!(
        rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["tick"]
    );
    assert_eq!(s.schedule_get("tock").await.expect("schedule_get"), None);
    sole_live(s, "tick").await;
}

/// Two handles applying at once still leave one live occurrence per schedule.
#[doc(hidden)]
pub async fn schedule_apply_concurrently_keeps_one_live_occurrence(h: &dyn Harness) {
    let a = h.open().await;
    let b = h.open().await;
    let now = now_ms();
    let names_ = ["s1", "s2", "s3"];
    for round in 0..4 {
        let specs = || {
            names_
                .iter()
                .map(|n| {
                    every_schedule(
                        n,
                        "job",
                        "30s",
                        now + secs(30 + round),
                        json!({ "round": round }),
                    )
                })
                .collect::<Vec<_>>()
        };
        let p = |schedules| ScheduleApplyParams {
            schedules,
            jobs: Vec::new(),
            now,
        };
        let (ra, rb) = tokio::join!(a.schedule_apply(p(specs())), b.schedule_apply(p(specs())));
        let (ra, rb) = (ra.expect("apply from a"), rb.expect("apply from b"));
        for n in names_ {
            if round == 0 {
                let created = [&ra, &rb]
                    .iter()
                    .filter(|r| r.created.iter().any(|c| c == n))
                    .count();
                assert_eq!(
                    created, 1,
                    "schedule {n} created by exactly one apply: {ra:?} {rb:?}"
                );
            }
            let occ = sole_live(&*a, n).await;
            assert_eq!(
                occ.args,
                json!({ "round": round }),
                "schedule {n} follows round {round}"
            );
        }
    }
}

/// Changed job settings apply to the job's pending tasks, not to running ones.
#[doc(hidden)]
pub async fn job_settings_apply_to_pending_tasks(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let w = Worker::new("settings");
    let settings = |slots, met, grace| JobSettings {
        name: "heavy".to_string(),
        slots,
        max_execution_time: Duration::from_secs(met),
        kill_grace: Duration::from_secs(grace),
    };
    let apply_jobs = |jobs| ScheduleApplyParams {
        schedules: Vec::new(),
        jobs,
        now,
    };
    s.schedule_apply(apply_jobs(vec![settings(1, 60, 10)]))
        .await
        .expect("apply jobs");
    let running = insert(s, new_task("heavy", now - secs(1))).await;
    let running = claim_one(s, &w, now, running.id).await;
    let pending = insert(s, new_task("heavy", now + secs(60))).await;
    let unrelated = insert(s, new_task("light", now + secs(60))).await;

    s.schedule_apply(apply_jobs(vec![settings(2, 300, 5)]))
        .await
        .expect("apply changed jobs");
    let p = get(s, pending.id).await;
    assert_eq!(
        (p.slots, p.max_execution_time, p.kill_grace),
        (2, Duration::from_secs(300), Duration::from_secs(5)),
        "a pending task follows its job's new settings"
    );
    assert_eq!(
        get(s, running.id).await,
        running,
        "a running task keeps its settings"
    );
    assert_eq!(
        get(s, unrelated.id).await,
        unrelated,
        "another job's task is untouched"
    );
}
