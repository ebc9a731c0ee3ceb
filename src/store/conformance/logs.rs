//! Logs and pruning: the local logs a host still has to upload, recording an
//! upload, and the finished tasks that may be pruned and deleted.

use super::Harness;
use super::support::{
    Worker, claim_one, end, finish, get, insert, new_task, now_ms, secs, sorted_ids,
};
use crate::model::{Task, TaskStatus};
use crate::store::{
    AfterLink, CancelOutcome, LocalLog, NewTask, PrunableTask, Store, TaskFinishParams,
    TaskPruneParams, TaskSpawnedParams,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Inserts task `id` of `job`, due a second before `now`, and claims it for `w`
/// (it must be the only due task).
async fn started(s: &dyn Store, w: &Worker, id: Uuid, job: &str, now: DateTime<Utc>) -> Task {
    let t = insert(
        s,
        NewTask {
            id,
            ..new_task(job, now - secs(1))
        },
    )
    .await;
    claim_one(s, w, now, t.id).await
}

/// Ends running `t`, held by `w`, with `status` at `at`, recording `log`.
async fn end_with_log(
    s: &dyn Store,
    t: &Task,
    w: &Worker,
    status: TaskStatus,
    at: DateTime<Utc>,
    log: Option<&str>,
) -> Task {
    let p = TaskFinishParams {
        retry_at: None,
        needs_review: false,
        log: log.map(str::to_string),
        ..end(t, w, status, at)
    };
    assert!(finish(s, p).await, "ending task {} as {status}", t.id);
    get(s, t.id).await
}

/// Records the process of running task `id` with its log at `log`.
async fn spawned(s: &dyn Store, id: Uuid, log: &str) {
    s.task_mark_spawned(vec![TaskSpawnedParams {
        id,
        pgid: 4242,
        log: log.to_string(),
    }])
    .await
    .unwrap_or_else(|e| panic!("task_mark_spawned {id}: {e}"));
}

/// Inserts a pending task due in the future and cancels it at `at`.
async fn canceled_pending(s: &dyn Store, id: Uuid, at: DateTime<Utc>) -> Task {
    let t = insert(
        s,
        NewTask {
            id,
            ..new_task("canceled", at + secs(600))
        },
    )
    .await;
    assert_eq!(
        s.task_cancel(t.id, at).await.expect("task_cancel"),
        CancelOutcome::Canceled
    );
    get(s, t.id).await
}

async fn local_logs(s: &dyn Store, host: &str, limit: usize) -> Vec<LocalLog> {
    s.task_logs_local(host, limit)
        .await
        .unwrap_or_else(|e| panic!("task_logs_local {host} {limit}: {e}"))
}

async fn uploaded(s: &dyn Store, id: Uuid, url: &str) -> bool {
    s.task_log_uploaded(id, url)
        .await
        .unwrap_or_else(|e| panic!("task_log_uploaded {id} {url}: {e}"))
}

async fn prunable(
    s: &dyn Store,
    ended_before: DateTime<Utc>,
    statuses: &[TaskStatus],
    limit: usize,
) -> Vec<PrunableTask> {
    let p = TaskPruneParams {
        ended_before,
        statuses: statuses.to_vec(),
        limit,
    };
    s.task_list_prunable(p.clone())
        .await
        .unwrap_or_else(|e| panic!("task_list_prunable {p:?}: {e}"))
}

/// The prunable entries sorted by id, for comparisons that ignore order.
fn by_id(mut v: Vec<PrunableTask>) -> Vec<PrunableTask> {
    v.sort_by_key(|p| p.id);
    v
}

async fn delete(s: &dyn Store, ids: Vec<Uuid>) -> usize {
    s.task_delete_finished(ids.clone())
        .await
        .unwrap_or_else(|e| panic!("task_delete_finished {ids:?}: {e}"))
}

/// What `task_logs_local` lists for finished task `t`.
fn local(t: &Task) -> LocalLog {
    LocalLog {
        id: t.id,
        instance: t.instance_id,
        path: t.log.clone().unwrap_or_default(),
    }
}

/// What `task_list_prunable` lists for finished task `t`.
fn prune_entry(t: &Task) -> PrunableTask {
    PrunableTask {
        id: t.id,
        log: t.log.clone(),
    }
}

/// Finished tasks whose log is still a local file are listed for the host that
/// ran them, oldest first, with the instance that ran them; running tasks and
/// tasks whose log is in storage, or that have none, are not.
#[doc(hidden)]
pub async fn logs_local_lists_finished_tasks_with_local_logs_on_a_host(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let a = Worker::new("uploader-a");
    let a2 = Worker {
        host: a.host.clone(),
        ..Worker::new("uploader-a2")
    };
    let b = Worker::new("uploader-b");
    let id = sorted_ids(9);

    // A log given when the task ends.
    let t = started(s, &a, id[0], "local-1", now).await;
    let l1 = end_with_log(
        s,
        &t,
        &a,
        TaskStatus::Completed,
        now + secs(1),
        Some("/var/log/jobslot/l1.log"),
    )
    .await;
    // A log recorded at spawn, kept by an end without one; another instance
    // of the same host.
    let t = started(s, &a2, id[1], "local-2", now).await;
    spawned(s, t.id, "/var/log/jobslot/l2.log").await;
    let l2 = end_with_log(s, &t, &a2, TaskStatus::Failed, now + secs(2), None).await;
    assert_eq!(l2.log.as_deref(), Some("/var/log/jobslot/l2.log"));
    let t = started(s, &a, id[2], "local-3", now).await;
    let l3 = end_with_log(
        s,
        &t,
        &a,
        TaskStatus::Canceled,
        now + secs(3),
        Some("/var/log/jobslot/l3.log"),
    )
    .await;
    // Already in storage: at the end, or replacing a local path from the spawn.
    let t = started(s, &a, id[3], "in-storage", now).await;
    end_with_log(
        s,
        &t,
        &a,
        TaskStatus::Completed,
        now + secs(4),
        Some("s3://bucket/logs/s3.log"),
    )
    .await;
    let t = started(s, &a, id[4], "moved-to-storage", now).await;
    spawned(s, t.id, "/var/log/jobslot/moved.log").await;
    end_with_log(
        s,
        &t,
        &a,
        TaskStatus::Completed,
        now + secs(5),
        Some("s3://bucket/logs/moved.log"),
    )
    .await;
    // No log at all.
    let t = started(s, &a, id[5], "no-log", now).await;
    end_with_log(s, &t, &a, TaskStatus::Failed, now + secs(6), None).await;
    // Another host.
    let t = started(s, &b, id[6], "local-b", now).await;
    let lb = end_with_log(
        s,
        &t,
        &b,
        TaskStatus::Completed,
        now + secs(7),
        Some("/var/log/jobslot/lb.log"),
    )
    .await;
    // Still running, its log being written.
    let running = started(s, &a, id[7], "running", now).await;
    spawned(s, running.id, "/var/log/jobslot/running.log").await;
    // Canceled before it ran: no host, no log.
    canceled_pending(s, id[8], now + secs(8)).await;

    assert_eq!(l1.instance_id, Some(a.id));
    assert_eq!(l2.instance_id, Some(a2.id));
    let want_a = vec![local(&l1), local(&l2), local(&l3)];
    assert_eq!(
        local_logs(s, &a.host, 100).await,
        want_a,
        "host A's finished tasks with local logs, oldest first, with their instance"
    );
    assert_eq!(
        local_logs(s, &a.host, 2).await,
        want_a[..2].to_vec(),
        "the limit keeps the oldest"
    );
    assert_eq!(
        local_logs(s, &b.host, 100).await,
        vec![local(&lb)],
        "host B sees only its own"
    );
    assert!(
        local_logs(s, "nowhere-host", 100).await.is_empty(),
        "a host that ran nothing has no local logs"
    );

    // Once it ends, the running task's log (recorded at spawn) is local too.
    let r = end_with_log(s, &running, &a, TaskStatus::Completed, now + secs(9), None).await;
    assert_eq!(
        local_logs(s, &a.host, 100).await,
        vec![local(&l1), local(&l2), local(&l3), local(&r)],
        "a task that ends joins its host's list"
    );
}

/// Recording an upload applies once: the log moves to its URL and leaves the
/// local list; a second record, or one for a log that is not local, changes
/// nothing.
#[doc(hidden)]
pub async fn log_uploaded_is_compare_and_set(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let w = Worker::new("uploader");
    let id = sorted_ids(5);

    let t = started(s, &w, id[0], "upload-1", now).await;
    let first = end_with_log(
        s,
        &t,
        &w,
        TaskStatus::Completed,
        now + secs(1),
        Some("/var/log/jobslot/1.log"),
    )
    .await;
    let t = started(s, &w, id[1], "upload-2", now).await;
    let second = end_with_log(
        s,
        &t,
        &w,
        TaskStatus::Failed,
        now + secs(2),
        Some("/var/log/jobslot/2.log"),
    )
    .await;
    let t = started(s, &w, id[2], "in-storage", now).await;
    let stored = end_with_log(
        s,
        &t,
        &w,
        TaskStatus::Completed,
        now + secs(3),
        Some("s3://bucket/logs/stored.log"),
    )
    .await;
    let t = started(s, &w, id[3], "no-log", now).await;
    let no_log = end_with_log(s, &t, &w, TaskStatus::Completed, now + secs(4), None).await;
    let running = started(s, &w, id[4], "running", now).await;
    spawned(s, running.id, "/var/log/jobslot/running.log").await;
    let running = get(s, running.id).await;
    assert_eq!(
        local_logs(s, &w.host, 100).await,
        vec![local(&first), local(&second)]
    );

    let url = "s3://bucket/logs/1.log";
    assert!(uploaded(s, first.id, url).await, "the first record applies");
    assert_eq!(
        get(s, first.id).await,
        Task {
            log: Some(url.to_string()),
            ..first.clone()
        },
        "the log now names the URL; nothing else changes"
    );
    assert_eq!(
        local_logs(s, &w.host, 100).await,
        vec![local(&second)],
        "an uploaded log leaves the local list"
    );

    assert!(
        !uploaded(s, first.id, "s3://other/logs/1.log").await,
        "a second record does not apply"
    );
    assert_eq!(
        get(s, first.id).await.log.as_deref(),
        Some(url),
        "a second record keeps the first URL"
    );

    for t in [&stored, &no_log] {
        assert!(
            !uploaded(s, t.id, "s3://other/logs/x.log").await,
            "no record for a task whose log is not local ({:?})",
            t.log
        );
        assert_eq!(&get(s, t.id).await, t, "unchanged by a refused record");
    }
    assert!(
        !uploaded(s, running.id, "s3://other/logs/running.log").await,
        "no record while the task runs"
    );
    assert_eq!(
        get(s, running.id).await,
        running,
        "a running task is unchanged by a refused record"
    );
    assert!(
        !uploaded(s, Uuid::now_v7(), "s3://other/logs/none.log").await,
        "no record for an unknown task"
    );

    assert!(uploaded(s, second.id, "s3://bucket/logs/2.log").await);
    assert!(
        local_logs(s, &w.host, 100).await.is_empty(),
        "every local log recorded as uploaded"
    );
    let r = end_with_log(s, &running, &w, TaskStatus::Completed, now + secs(5), None).await;
    assert_eq!(
        local_logs(s, &w.host, 100).await,
        vec![local(&r)],
        "the refused record left the running task's log to upload when it ends"
    );
}

/// Only finished tasks that ended strictly before the time are prunable, in the
/// terminal states asked for (all three when none is), with their log.
#[doc(hidden)]
pub async fn prunable_lists_only_finished_tasks_ended_before(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let w = Worker::new("pruner");
    let id = sorted_ids(9);

    let t = started(s, &w, id[0], "c1", now - secs(100)).await;
    let c1 = end_with_log(
        s,
        &t,
        &w,
        TaskStatus::Completed,
        now - secs(50),
        Some("s3://bucket/logs/c1.log"),
    )
    .await;
    let t = started(s, &w, id[1], "f1", now - secs(100)).await;
    let f1 = end_with_log(
        s,
        &t,
        &w,
        TaskStatus::Failed,
        now - secs(40),
        Some("/var/log/jobslot/f1.log"),
    )
    .await;
    let x1 = canceled_pending(s, id[2], now - secs(30)).await;
    let t = started(s, &w, id[3], "c2", now - secs(100)).await;
    let c2 = end_with_log(s, &t, &w, TaskStatus::Completed, now - secs(20), None).await;
    // Ended at the cutoff, and after it.
    let t = started(s, &w, id[4], "at-cutoff", now - secs(100)).await;
    end_with_log(s, &t, &w, TaskStatus::Completed, now, None).await;
    let t = started(s, &w, id[5], "after-cutoff", now - secs(100)).await;
    end_with_log(s, &t, &w, TaskStatus::Failed, now + secs(10), None).await;
    // Live: running (long past its start) and pending (long past due).
    let running = started(s, &w, id[6], "running", now - secs(100)).await;
    spawned(s, running.id, "/var/log/jobslot/running.log").await;
    insert(
        s,
        NewTask {
            id: id[7],
            ..new_task("pending", now - secs(100))
        },
    )
    .await;
    insert(
        s,
        NewTask {
            id: id[8],
            after: AfterLink::Task(running.id),
            ..new_task("waiting-on-running", now - secs(100))
        },
    )
    .await;

    let all = by_id(vec![
        prune_entry(&c1),
        prune_entry(&f1),
        prune_entry(&x1),
        prune_entry(&c2),
    ]);
    assert_eq!(
        by_id(prunable(s, now, &[], 100).await),
        all,
        "no status given: every finished task ended before the time, with its log"
    );
    assert_eq!(
        by_id(
            prunable(
                s,
                now,
                &[
                    TaskStatus::Completed,
                    TaskStatus::Failed,
                    TaskStatus::Canceled
                ],
                100
            )
            .await
        ),
        all,
        "all three states named are the same as none"
    );
    assert_eq!(
        prunable(s, now, &[TaskStatus::Completed], 100).await,
        vec![prune_entry(&c1), prune_entry(&c2)],
        "completed only, oldest first"
    );
    assert_eq!(
        prunable(s, now, &[TaskStatus::Completed], 1).await,
        vec![prune_entry(&c1)],
        "the limit keeps the oldest"
    );
    assert_eq!(
        by_id(prunable(s, now, &[TaskStatus::Failed, TaskStatus::Canceled], 100).await),
        by_id(vec![prune_entry(&f1), prune_entry(&x1)]),
        "failed and canceled"
    );
    assert_eq!(
        prunable(s, now, &[], 2).await.len(),
        2,
        "the limit holds across states"
    );
    assert_eq!(
        by_id(prunable(s, now - secs(30), &[], 100).await),
        by_id(vec![prune_entry(&c1), prune_entry(&f1)]),
        "ended strictly before the time"
    );
    assert_eq!(
        prunable(s, now + secs(3600), &[TaskStatus::Failed], 100).await,
        vec![prune_entry(&f1), prune_entry(&get(s, id[5]).await),],
        "a later time takes in later ends"
    );
    for live in [
        TaskStatus::Pending,
        TaskStatus::Running,
        TaskStatus::Waiting,
    ] {
        assert!(
            prunable(s, now + secs(3600), &[live], 100).await.is_empty(),
            "a {live} task is never prunable"
        );
    }
    let listed = prunable(s, now + secs(3600), &[], 100).await;
    for live in [running.id, id[7], id[8]] {
        assert!(
            !listed.iter().any(|p| p.id == live),
            "live task {live} is never prunable"
        );
    }
    assert_eq!(listed.len(), 6, "every finished task, whenever it ended");
}

/// Prunable tasks come as one list, oldest end first across states, each once.
#[doc(hidden)]
pub async fn prunable_is_oldest_first_across_statuses(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let w = Worker::new("pruner");
    let id = sorted_ids(4);

    // Ids and end times in different orders, so neither stands for the other.
    let t = started(s, &w, id[0], "c-late", now - secs(100)).await;
    let c_late = end_with_log(s, &t, &w, TaskStatus::Completed, now - secs(10), None).await;
    let t = started(s, &w, id[1], "f-mid", now - secs(100)).await;
    let f_mid = end_with_log(s, &t, &w, TaskStatus::Failed, now - secs(30), None).await;
    let x_old = canceled_pending(s, id[2], now - secs(50)).await;
    let t = started(s, &w, id[3], "c-old", now - secs(100)).await;
    let c_old = end_with_log(s, &t, &w, TaskStatus::Completed, now - secs(40), None).await;

    let oldest_first = vec![
        prune_entry(&x_old),
        prune_entry(&c_old),
        prune_entry(&f_mid),
        prune_entry(&c_late),
    ];
    assert_eq!(
        prunable(s, now, &[], 100).await,
        oldest_first,
        "oldest end first, whatever the state"
    );
    assert_eq!(
        prunable(s, now, &[], 2).await,
        oldest_first[..2].to_vec(),
        "the limit keeps the oldest across states"
    );
    assert_eq!(
        prunable(s, now, &[TaskStatus::Completed, TaskStatus::Completed], 100).await,
        vec![prune_entry(&c_old), prune_entry(&c_late)],
        "a state named twice lists its tasks once"
    );
}

/// Deleting finished tasks leaves live ones (and unknown ids) alone and counts
/// only the rows deleted.
#[doc(hidden)]
pub async fn delete_finished_leaves_live_tasks(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let w = Worker::new("deleter");
    let id = sorted_ids(7);

    let t = started(s, &w, id[0], "completed", now).await;
    let c = end_with_log(s, &t, &w, TaskStatus::Completed, now + secs(1), None).await;
    let t = started(s, &w, id[1], "failed", now).await;
    let f = end_with_log(
        s,
        &t,
        &w,
        TaskStatus::Failed,
        now + secs(2),
        Some("/var/log/jobslot/f.log"),
    )
    .await;
    let x = canceled_pending(s, id[2], now + secs(3)).await;
    let t = started(s, &w, id[3], "kept", now).await;
    let kept = end_with_log(
        s,
        &t,
        &w,
        TaskStatus::Completed,
        now + secs(4),
        Some("/var/log/jobslot/kept.log"),
    )
    .await;
    let running = started(s, &w, id[4], "running", now).await;
    spawned(s, running.id, "/var/log/jobslot/running.log").await;
    let running = get(s, running.id).await;
    let pending = insert(
        s,
        NewTask {
            id: id[5],
            ..new_task("pending", now - secs(60))
        },
    )
    .await;
    let waiting = insert(
        s,
        NewTask {
            id: id[6],
            after: AfterLink::Task(running.id),
            ..new_task("waiting-on-running", now - secs(60))
        },
    )
    .await;
    assert_eq!(
        local_logs(s, &w.host, 100).await,
        vec![local(&f), local(&kept)]
    );

    let unknown = Uuid::now_v7();
    let mix = vec![
        c.id, pending.id, f.id, running.id, x.id, waiting.id, unknown,
    ];
    assert_eq!(
        delete(s, mix.clone()).await,
        3,
        "only the three finished tasks are deleted"
    );
    for gone in [c.id, f.id, x.id] {
        assert!(
            s.task_get(gone).await.expect("task_get").is_none(),
            "finished task {gone} is deleted"
        );
    }
    for live in [&running, &pending, &waiting, &kept] {
        assert_eq!(
            &get(s, live.id).await,
            live,
            "task {} ({}) is left as it was",
            live.id,
            live.status
        );
    }
    assert_eq!(
        local_logs(s, &w.host, 100).await,
        vec![local(&kept)],
        "a deleted task's log is no longer listed"
    );
    assert_eq!(
        prunable(s, now + secs(3600), &[], 100).await,
        vec![prune_entry(&kept)],
        "a deleted task is no longer prunable"
    );
    assert_eq!(delete(s, mix).await, 0, "deleting again deletes nothing");
    assert_eq!(delete(s, Vec::new()).await, 0, "no ids, nothing deleted");
}
