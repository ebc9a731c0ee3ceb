//! Several instances claiming, ending, canceling and applying the schema at
//! once on PostgreSQL: no error reaches them (conflicts are retried inside the
//! backend) and the recurrence invariants SQLite's write lock guarantees hold.

use super::test_support::TestSchema;
use crate::model::{Task, TaskStatus};
use crate::store::conformance::{after_schedule, every_schedule, now_ms};
use crate::store::{
    AfterLink, NewTask, ScheduleApplyParams, ScheduleSpec, Store, TaskClaimParams,
    TaskFinishParams, TaskListParams,
};
use chrono::TimeDelta;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

fn specs(now: chrono::DateTime<chrono::Utc>) -> Vec<ScheduleSpec> {
    vec![
        after_schedule("a0", "down", "e0", now),
        every_schedule("e0", "up", "1s", now, json!({})),
        every_schedule("e1", "up", "1s", now, json!({})),
        after_schedule("a1", "down", "e1", now),
        after_schedule("a2", "down", "a0", now),
        every_schedule("e2", "up", "1s", now, json!({})),
    ]
}

/// The next occurrence the scheduler would write for `t`.
fn next_of(t: &Task, now: chrono::DateTime<chrono::Utc>) -> Option<NewTask> {
    t.schedule.as_ref()?;
    let after = match t.recurrence.as_ref().and_then(|r| r.get("after")) {
        Some(up) => AfterLink::Schedule(up.as_str().unwrap_or_default().to_string()),
        None => AfterLink::None,
    };
    Some(NewTask {
        schedule: t.schedule.clone(),
        recurrence: t.recurrence.clone(),
        after,
        ..crate::store::conformance::new_task(&t.job, now)
    })
}

async fn apply(s: &dyn Store, now: chrono::DateTime<chrono::Utc>) {
    s.schedule_apply(ScheduleApplyParams {
        schedules: specs(now),
        jobs: Vec::new(),
        now,
    })
    .await
    .expect("schedule_apply");
}

async fn work(s: Arc<dyn Store>, n: usize) {
    let me = Uuid::now_v7();
    let later = now_ms() + TimeDelta::hours(1);
    for round in 0..40usize {
        let claimed = s
            .task_claim(TaskClaimParams {
                instance_id: me,
                instance_name: format!("w{n}"),
                host: "h".to_string(),
                queues: Vec::new(),
                free_slots: 4,
                limit: 3,
                now: later,
                starvation_after: None,
                log_prefix: None,
            })
            .await
            .expect("claim");
        let ends = claimed
            .iter()
            .enumerate()
            .map(|(i, t)| TaskFinishParams {
                callback: None,
                retry_at: None,
                needs_review: false,
                id: t.id,
                expect: TaskStatus::Running,
                expect_instance: Some(me),
                status: if (round + i + n).is_multiple_of(4) {
                    TaskStatus::Failed
                } else {
                    TaskStatus::Completed
                },
                reason: None,
                exit_code: None,
                signal: None,
                ended_at: later,
                result: None,
                log: None,
                next: next_of(t, later),
            })
            .collect::<Vec<_>>();
        s.task_finish_many(ends).await.expect("finish");
        if round % 9 == n {
            apply(&*s, now_ms()).await;
        }
        if round % 7 == n {
            let pending = s
                .task_list(TaskListParams {
                    status: Some(TaskStatus::Pending),
                    limit: 3,
                    ..TaskListParams::default()
                })
                .await
                .expect("list");
            if let Some(t) = pending.get(round % 3) {
                s.task_cancel(t.id, later).await.expect("cancel");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_instances_keep_schedules_live_and_links_released() {
    let Some(schema) = TestSchema::fresh().await else {
        return;
    };
    let mut stores: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..4 {
        stores.push(crate::store::open(&schema.url).await.expect("open"));
    }
    apply(&*stores[0], now_ms()).await;
    let workers: Vec<_> = (0..4)
        .map(|n| tokio::spawn(work(stores[n].clone(), n)))
        .collect();
    for w in workers {
        w.await.expect("worker");
    }
    // Canceled occurrences come back with the next apply.
    apply(&*stores[0], now_ms()).await;

    let all = stores[0]
        .task_list(TaskListParams {
            limit: 100_000,
            ..TaskListParams::default()
        })
        .await
        .expect("list");
    let by_id: BTreeMap<Uuid, &Task> = all.iter().map(|t| (t.id, t)).collect();
    let mut live: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &all {
        if let (Some(s), false) = (&t.schedule, t.status.is_terminal()) {
            *live.entry(s.as_str()).or_default() += 1;
        }
        if let (TaskStatus::Pending, None, Some(pred)) = (t.status, t.start_at, t.after) {
            // Held: its predecessor must still be live (released or
            // canceled in the same transaction as the predecessor's end).
            let p = by_id.get(&pred).map(|p| p.status);
            assert!(
                p.is_some_and(|s| !s.is_terminal()),
                "task {} is held by {pred}, which is {p:?}",
                t.id
            );
        }
    }
    for spec in specs(now_ms()) {
        assert_eq!(
            live.get(spec.name.as_str()),
            Some(&1),
            "schedule {} has one live occurrence ({} tasks in all)",
            spec.name,
            all.len()
        );
    }
}
