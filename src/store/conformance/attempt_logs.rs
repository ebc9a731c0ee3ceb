//! Logs of retried attempts: the ones a host still has to upload, and
//! recording an upload (compare-and-set), apart from the task's own log.

use super::Harness;
use super::support::{Worker, claim_one, end, get, insert, new_task, now_ms, secs, sorted_ids};
use crate::model::{Task, TaskStatus};
use crate::store::{
    LocalAttemptLog, LocalLog, NewTask, Store, TaskFinishParams, TaskSpawnedParams,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Ends running `t` (held by `w`) as a transient failure at `at`, recording
/// `log`, to be tried again at `again`; the retry must apply.
async fn retry(
    s: &dyn Store,
    t: &Task,
    w: &Worker,
    at: DateTime<Utc>,
    again: DateTime<Utc>,
    log: Option<&str>,
) {
    let p = TaskFinishParams {
        reason: Some("exit 75".into()),
        exit_code: Some(75),
        log: log.map(str::to_string),
        retry_at: Some(again),
        ..end(t, w, TaskStatus::Failed, at)
    };
    let applied = s
        .task_finish_many(vec![p])
        .await
        .unwrap_or_else(|e| panic!("task_finish_many {}: {e}", t.id));
    assert_eq!(
        applied,
        vec![Some(TaskStatus::Pending)],
        "attempt {} of {} retried",
        t.attempt,
        t.id
    );
}

async fn spawned(s: &dyn Store, id: Uuid, log: &str) {
    s.task_mark_spawned(vec![TaskSpawnedParams {
        id,
        pgid: 4242,
        log: log.to_string(),
    }])
    .await
    .unwrap_or_else(|e| panic!("task_mark_spawned {id}: {e}"));
}

async fn attempt_logs(s: &dyn Store, host: &str, limit: usize) -> Vec<LocalAttemptLog> {
    s.task_attempt_logs_local(host, limit)
        .await
        .unwrap_or_else(|e| panic!("task_attempt_logs_local {host} {limit}: {e}"))
}

async fn uploaded(s: &dyn Store, id: Uuid, attempt: u32, url: &str) -> bool {
    s.task_attempt_log_uploaded(id, attempt, url)
        .await
        .unwrap_or_else(|e| panic!("task_attempt_log_uploaded {id} {attempt} {url}: {e}"))
}

/// The `log` of each earlier attempt of `id`, oldest first.
async fn attempt_locations(s: &dyn Store, id: Uuid) -> Vec<Option<String>> {
    s.task_attempts(id)
        .await
        .unwrap_or_else(|e| panic!("task_attempts {id}: {e}"))
        .into_iter()
        .map(|a| a.log)
        .collect()
}

fn local(id: Uuid, attempt: u32, w: &Worker, path: &str) -> LocalAttemptLog {
    LocalAttemptLog {
        id,
        attempt,
        instance: Some(w.id),
        path: path.to_string(),
    }
}

/// A retried attempt whose log is a local file is listed for the host that ran
/// it (each attempt its own host and instance), by task then attempt, until
/// its upload is recorded; attempts whose log is in storage, or that have
/// none, are not; the task's own last log is listed as a task log only.
#[doc(hidden)]
pub async fn attempt_logs_local_lists_retried_attempts_with_local_logs_on_a_host(h: &dyn Harness) {
    let store = h.open().await;
    let s = &*store;
    let now = now_ms();
    let a = Worker::new("attempts-a");
    let a2 = Worker {
        host: a.host.clone(),
        ..Worker::new("attempts-a2")
    };
    let b = Worker::new("attempts-b");
    let ids = sorted_ids(2);
    let (x, y) = (ids[0], ids[1]);
    let at = |n: i64| now + secs(10 * n);

    let t = insert(
        s,
        NewTask {
            id: x,
            ..new_task("flaky", now - secs(1))
        },
    )
    .await;
    // Attempt 1 on host A, its log given at the end.
    let run = claim_one(s, &a, at(0), t.id).await;
    retry(s, &run, &a, at(0) + secs(1), at(1), Some("/logs/x.log")).await;
    // Attempt 2 on host B, its log recorded at spawn and kept by the end.
    let run = claim_one(s, &b, at(1), t.id).await;
    spawned(s, x, "/logs/x.attempt-2.log").await;
    retry(s, &run, &b, at(1) + secs(1), at(2), None).await;
    // Attempt 3 on host A, its log already in storage.
    let run = claim_one(s, &a, at(2), t.id).await;
    spawned(s, x, "/logs/x.attempt-3.log").await;
    let stored = "s3://bucket/logs/x.attempt-3.log";
    retry(s, &run, &a, at(2) + secs(1), at(3), Some(stored)).await;
    // Attempt 4 on host A (another instance), no log at all.
    let run = claim_one(s, &a2, at(3), t.id).await;
    retry(s, &run, &a2, at(3) + secs(1), at(4), None).await;
    // Attempt 5 completes on host A: the task's own log.
    let run = claim_one(s, &a, at(4), t.id).await;
    assert_eq!(run.attempt, 5);
    let last = TaskFinishParams {
        log: Some("/logs/x.attempt-5.log".into()),
        ..end(&run, &a, TaskStatus::Completed, at(4) + secs(1))
    };
    assert_eq!(
        s.task_finish_many(vec![last]).await.expect("finish"),
        vec![Some(TaskStatus::Completed)]
    );
    // Task y: its first attempt retried on host A by a2, still pending.
    let t = insert(
        s,
        NewTask {
            id: y,
            ..new_task("flaky", at(5))
        },
    )
    .await;
    let run = claim_one(s, &a2, at(5), t.id).await;
    retry(s, &run, &a2, at(5) + secs(1), at(9), Some("/logs/y.log")).await;

    assert_eq!(
        attempt_locations(s, x).await,
        vec![
            Some("/logs/x.log".to_string()),
            Some("/logs/x.attempt-2.log".to_string()),
            Some(stored.to_string()),
            None
        ]
    );
    let want_a = vec![
        local(x, 1, &a, "/logs/x.log"),
        local(y, 1, &a2, "/logs/y.log"),
    ];
    assert_eq!(
        attempt_logs(s, &a.host, 100).await,
        want_a,
        "host A's retried attempts with local logs, by task then attempt, with their instance"
    );
    assert_eq!(
        attempt_logs(s, &a.host, 1).await,
        want_a[..1].to_vec(),
        "the limit keeps the oldest"
    );
    assert_eq!(
        attempt_logs(s, &b.host, 100).await,
        vec![local(x, 2, &b, "/logs/x.attempt-2.log")],
        "an attempt is listed for the host that ran it"
    );
    assert_eq!(attempt_logs(s, "no-such-host", 100).await, vec![]);
    assert_eq!(
        s.task_logs_local(&a.host, 100)
            .await
            .expect("task_logs_local"),
        vec![LocalLog {
            id: x,
            instance: Some(a.id),
            path: "/logs/x.attempt-5.log".to_string(),
        }],
        "the last attempt's log is the task's, not an attempt's"
    );

    // Recorded uploads leave the list; the task's own log is untouched.
    assert!(uploaded(s, x, 1, "s3://bucket/logs/x.log").await);
    assert!(uploaded(s, y, 1, "s3://bucket/logs/y.log").await);
    assert_eq!(attempt_logs(s, &a.host, 100).await, vec![]);
    assert_eq!(
        attempt_logs(s, &b.host, 100).await,
        vec![local(x, 2, &b, "/logs/x.attempt-2.log")]
    );
    assert_eq!(
        get(s, x).await.log.as_deref(),
        Some("/logs/x.attempt-5.log")
    );
}

/// Recording an attempt's upload applies once (two uploaders racing: one
/// wins, its URL stays), only to that attempt, only while its log is local,
/// and never to the task's own log; recording the local path itself (a file
/// that is gone) takes it off the list and keeps the path.
#[doc(hidden)]
pub async fn attempt_log_uploaded_is_compare_and_set(h: &dyn Harness) {
    let (one, two) = (h.open().await, h.open().await);
    let s = &*one;
    let now = now_ms();
    let w = Worker::new("attempt-uploader");
    let t = insert(s, new_task("flaky", now - secs(1))).await;
    let run = claim_one(s, &w, now, t.id).await;
    retry(s, &run, &w, now + secs(1), now + secs(10), Some("/l/1.log")).await;
    let run = claim_one(s, &w, now + secs(10), t.id).await;
    retry(
        s,
        &run,
        &w,
        now + secs(11),
        now + secs(20),
        Some("/l/2.log"),
    )
    .await;
    let run = claim_one(s, &w, now + secs(20), t.id).await;
    spawned(s, t.id, "/l/3.log").await;

    let (first, second) = tokio::join!(
        one.task_attempt_log_uploaded(t.id, 1, "s3://b/one"),
        two.task_attempt_log_uploaded(t.id, 1, "s3://b/two"),
    );
    let (first, second) = (first.expect("upload one"), second.expect("upload two"));
    assert!(
        first ^ second,
        "exactly one uploader records: {first} {second}"
    );
    let winner = if first { "s3://b/one" } else { "s3://b/two" };
    assert!(
        !uploaded(s, t.id, 1, "s3://b/late").await,
        "already recorded"
    );
    assert!(!uploaded(s, t.id, 3, "s3://b/3").await, "no attempt 3 yet");
    assert!(
        !uploaded(s, Uuid::now_v7(), 1, "s3://b/x").await,
        "no such task"
    );
    assert_eq!(
        attempt_locations(s, t.id).await,
        vec![Some(winner.to_string()), Some("/l/2.log".to_string())],
        "only attempt 1 moved"
    );
    let running = get(s, t.id).await;
    assert_eq!(running.status, TaskStatus::Running);
    assert_eq!(
        running.log.as_deref(),
        Some("/l/3.log"),
        "the task's own log"
    );

    // A log file that is gone: its path is recorded as final.
    assert!(uploaded(s, t.id, 2, "/l/2.log").await);
    assert!(!uploaded(s, t.id, 2, "s3://b/2").await);
    assert_eq!(attempt_logs(s, &w.host, 100).await, vec![]);
    assert_eq!(
        attempt_locations(s, t.id).await,
        vec![Some(winner.to_string()), Some("/l/2.log".to_string())]
    );

    // The task's end and its own upload leave the attempts as they are.
    let done = TaskFinishParams {
        log: None,
        ..end(&run, &w, TaskStatus::Completed, now + secs(21))
    };
    assert_eq!(
        s.task_finish_many(vec![done]).await.expect("finish"),
        vec![Some(TaskStatus::Completed)]
    );
    assert!(
        s.task_log_uploaded(t.id, "s3://b/3")
            .await
            .expect("task_log_uploaded")
    );
    assert_eq!(get(s, t.id).await.log.as_deref(), Some("s3://b/3"));
    assert_eq!(
        attempt_locations(s, t.id).await,
        vec![Some(winner.to_string()), Some("/l/2.log".to_string())]
    );
}
