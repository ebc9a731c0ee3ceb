//! Plain task storage and queries: migrations, insert and get, id prefixes,
//! listing, and the next due time.

use super::Harness;
use super::support::{
    Worker, claim_one, get, id_set, ids, insert, list, millis, new_task, now_ms, secs, sorted_ids,
};
use crate::model::{Task, TaskStatus};
use crate::store::{AfterLink, NewTask, TaskListParams};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;
use uuid::Uuid;

/// Migrating twice returns the same version and keeps the data.
#[doc(hidden)]
pub async fn migrate_is_idempotent(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let v1 = s.migrate().await.expect("first migrate");
    let v2 = s.migrate().await.expect("second migrate");
    assert!(v1 >= 1, "a migrated database has a version ≥ 1, got {v1}");
    assert_eq!(v1, v2, "migrating twice must return the same version");
    let t = insert(s, new_task("kept", now_ms())).await;
    let other = h.open().await;
    assert_eq!(
        other.migrate().await.expect("migrate from another handle"),
        v1,
        "another handle on the same database sees the same version"
    );
    assert_eq!(
        get(&*other, t.id).await,
        t,
        "migrating must keep existing rows"
    );
}

/// Every field of a new task comes back as inserted.
#[doc(hidden)]
pub async fn task_insert_round_trips_every_field(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let parent = insert(s, new_task("parent", now)).await;
    let new = NewTask {
        id: Uuid::now_v7(),
        job: "round-trip".to_string(),
        queue: "reports".to_string(),
        priority: -7,
        slots: 3,
        max_execution_time: Duration::from_millis(90_500),
        kill_grace: Duration::from_millis(1_250),
        schedule: Some("nightly".to_string()),
        recurrence: Some(json!({ "cron": "0 2 * * *", "timezone": "Europe/Paris" })),
        after: AfterLink::None,
        parent: Some(parent.id),
        args: json!({ "format": "pdf", "pages": [1, 2, 3], "nested": { "ok": true, "x": 1.5 }, "text": "é – ✓" }),
        metadata: json!({ "lastCompletedAt": "2026-01-01T00:00:00.000Z", "n": null }),
        due_at: now + millis(1_234),
        created_at: now - millis(17),
        attempt: 2,
        unique_key: Some("round-trip é".to_string()),
    };
    let inserted = insert(s, new.clone()).await;
    let want = Task {
        id: new.id,
        job: new.job.clone(),
        status: TaskStatus::Pending,
        reason: None,
        exit_code: None,
        signal: None,
        attempt: 2,
        queue: new.queue.clone(),
        priority: -7,
        slots: 3,
        max_execution_time: new.max_execution_time,
        kill_grace: new.kill_grace,
        schedule: new.schedule.clone(),
        recurrence: new.recurrence.clone(),
        instance_id: None,
        instance: None,
        parent: Some(parent.id),
        after: None,
        args: new.args.clone(),
        metadata: new.metadata.clone(),
        result: None,
        created_at: new.created_at,
        start_at: Some(new.due_at),
        started_at: None,
        ended_at: None,
        deadline_at: None,
        log: None,
        host: None,
        pgid: None,
        needs_review: false,
        unique_key: Some("round-trip é".to_string()),
    };
    assert_eq!(inserted, want, "task_insert must return the task as stored");
    assert_eq!(
        get(s, new.id).await,
        want,
        "task_get must return every field"
    );
}

/// An unknown id is not an error, just absent.
#[doc(hidden)]
pub async fn task_get_unknown_is_none(h: &dyn Harness) {
    let store = h.open().await;
    insert(&*store, new_task("other", now_ms())).await;
    let got = store.task_get(Uuid::now_v7()).await.expect("task_get");
    assert!(
        got.is_none(),
        "task_get of an unknown id must be None, got {got:?}"
    );
}

/// `task_find_prefix` finds tasks by an id prefix (any case), up to `limit`.
#[doc(hidden)]
pub async fn task_find_prefix_matches_id_prefixes(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let a = insert(s, new_task("a", now_ms())).await;
    let mut bytes = *a.id.as_bytes();
    bytes[15] ^= 1;
    let b = insert(
        s,
        NewTask {
            id: Uuid::from_bytes(bytes),
            ..new_task("b", now_ms())
        },
    )
    .await;
    let text = a.id.to_string();
    let find = |prefix: String, limit: usize| async move {
        let found = s
            .task_find_prefix(&prefix, limit)
            .await
            .unwrap_or_else(|e| panic!("task_find_prefix {prefix}: {e}"));
        (prefix, found)
    };

    let (p, found) = find(text[..13].to_string(), 10).await;
    assert_eq!(id_set(&found), BTreeSet::from([a.id, b.id]), "prefix {p}");
    let (p, found) = find(text[..13].to_uppercase(), 10).await;
    assert_eq!(
        id_set(&found),
        BTreeSet::from([a.id, b.id]),
        "upper-case prefix {p}"
    );
    let (p, found) = find(text.clone(), 10).await;
    assert_eq!(
        ids(&found),
        vec![a.id],
        "the full id {p} finds only its task"
    );
    let (p, found) = find(text[..13].to_string(), 1).await;
    assert_eq!(found.len(), 1, "prefix {p} with limit 1");

    let mut other = text[..13].to_string();
    let last = other.pop().unwrap_or('0');
    other.push(if last == '0' { '1' } else { '0' });
    let (p, found) = find(other, 10).await;
    assert!(
        found.is_empty(),
        "prefix {p} matches no task, got {:?}",
        ids(&found)
    );
}

/// `task_next_due` gives the earliest due time after now of a pending task.
#[doc(hidden)]
pub async fn next_due_is_earliest_future_due_time(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    assert_eq!(
        s.task_next_due(now).await.expect("next due"),
        None,
        "empty store"
    );
    insert(s, new_task("past", now - secs(1))).await;
    let in5 = insert(s, new_task("in-5s", now + secs(5))).await;
    insert(s, new_task("in-2s", now + secs(2))).await;
    insert(
        s,
        NewTask {
            after: AfterLink::Task(in5.id),
            ..new_task("held", now + secs(1))
        },
    )
    .await;
    let canceled = insert(s, new_task("canceled", now + secs(1))).await;
    s.task_cancel(canceled.id, now).await.expect("cancel");
    let next = |at| async move { s.task_next_due(at).await.expect("next due") };
    assert_eq!(
        next(now).await,
        Some(now + secs(2)),
        "held and canceled tasks do not count"
    );
    assert_eq!(next(now + secs(3)).await, Some(now + secs(5)));
    assert_eq!(next(now + secs(10)).await, None, "nothing due later");
}

/// `task_list` filters by status, job, queue, schedule, instance, page and
/// time range, newest first, up to `limit`.
#[doc(hidden)]
pub async fn task_list_filters_newest_first(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let w = Worker::new("lister");
    let ids_ = sorted_ids(6);
    let make = |i: usize, job: &str, queue: &str| NewTask {
        id: ids_[i],
        queue: queue.to_string(),
        created_at: now + millis(i as i64),
        ..new_task(job, now + secs(60))
    };
    // Inserted out of order: the order listed comes from the tasks, not the inserts.
    insert(
        s,
        NewTask {
            schedule: Some("sched".to_string()),
            ..make(3, "a", "q1")
        },
    )
    .await;
    insert(s, make(5, "a", "q1")).await;
    insert(s, make(0, "a", "q1")).await;
    insert(s, make(4, "b", "q1")).await;
    insert(s, make(1, "b", "q2")).await;
    insert(
        s,
        NewTask {
            priority: 5,
            due_at: now - secs(1),
            ..make(2, "a", "q2")
        },
    )
    .await;
    claim_one(s, &w, now, ids_[2]).await;
    s.task_cancel(ids_[4], now).await.expect("cancel");

    let check = |p: TaskListParams, want: &[usize]| {
        let want: Vec<Uuid> = want.iter().map(|i| ids_[*i]).collect();
        async move {
            let got = ids(&list(s, p.clone()).await);
            assert_eq!(got, want, "task_list {p:?}");
        }
    };
    let all = |limit| TaskListParams {
        limit,
        ..TaskListParams::default()
    };
    check(all(100), &[5, 4, 3, 2, 1, 0]).await;
    check(all(2), &[5, 4]).await;
    check(
        TaskListParams {
            status: Some(TaskStatus::Pending),
            ..all(100)
        },
        &[5, 3, 1, 0],
    )
    .await;
    check(
        TaskListParams {
            status: Some(TaskStatus::Running),
            ..all(100)
        },
        &[2],
    )
    .await;
    check(
        TaskListParams {
            job: Some("a".to_string()),
            ..all(100)
        },
        &[5, 3, 2, 0],
    )
    .await;
    check(
        TaskListParams {
            queue: Some("q2".to_string()),
            ..all(100)
        },
        &[2, 1],
    )
    .await;
    check(
        TaskListParams {
            schedule: Some("sched".to_string()),
            ..all(100)
        },
        &[3],
    )
    .await;
    check(
        TaskListParams {
            job: Some("a".to_string()),
            queue: Some("q1".to_string()),
            status: Some(TaskStatus::Pending),
            ..all(2)
        },
        &[5, 3],
    )
    .await;
    // History filters: the instance that ran it, pages, a time range.
    check(
        TaskListParams {
            instance: Some(w.name.clone()),
            ..all(100)
        },
        &[2],
    )
    .await;
    check(
        TaskListParams {
            before: Some(ids_[3]),
            ..all(2)
        },
        &[2, 1],
    )
    .await;
    check(
        TaskListParams {
            until: Some(now + millis(3)),
            ..all(100)
        },
        &[2, 1, 0],
    )
    .await;
    // Task 4 was canceled (ended) at `now`: not live a second later.
    check(
        TaskListParams {
            since: Some(now + secs(1)),
            ..all(100)
        },
        &[5, 3, 2, 1, 0],
    )
    .await;
    check(
        TaskListParams {
            since: Some(now),
            until: Some(now + millis(5)),
            ..all(100)
        },
        &[4, 3, 2, 1, 0],
    )
    .await;
    // A filter no stored value can hold (PostgreSQL text has no NUL)
    // matches nothing rather than failing.
    check(
        TaskListParams {
            queue: Some("q\0".to_string()),
            ..all(100)
        },
        &[],
    )
    .await;
}
