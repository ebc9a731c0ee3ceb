//! Task logs shipped to a real S3-protocol server (s3s-fs, in this process):
//! after every outcome, multipart, outages, restarts, wrong credentials, prune,
//! and the logs of retried attempts.

mod common;
use common::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use common::*;
use jobslot::model::TaskStatus;
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};
use uuid::Uuid;

const BUCKET: &str = "jobslot-logs";

fn key(id: Uuid) -> String {
    format!("logs/{id}.log")
}

/// The key of attempt `n`'s log (`key(id)` for the first).
fn attempt_key(id: Uuid, n: u32) -> String {
    format!("logs/{}", jobslot::model::log_file_name(id, n))
}

/// A job that fails transiently (exit 75) until attempt `succeed_at`, saying
/// which attempt it is.
const FLAKY: &str = "echo \"output of attempt $JOBSLOT_ATTEMPT\"\n\
    [ \"$JOBSLOT_ATTEMPT\" -ge \"${SUCCEED_AT:-99}\" ] && exit 0\nexit 75";

/// Waits until every earlier attempt of a task has its log in storage;
/// returns their URLs, oldest first.
async fn wait_attempts_uploaded(
    store: &dyn jobslot::store::Store,
    id: Uuid,
    count: usize,
    limit: Duration,
) -> Vec<String> {
    wait_for(
        &format!("{count} attempt logs of {id} uploaded"),
        limit,
        || async {
            let logs: Vec<String> = store
                .task_attempts(id)
                .await
                .ok()?
                .into_iter()
                .filter_map(|a| a.log)
                .filter(|l| l.starts_with("s3://"))
                .collect();
            (logs.len() == count).then_some(logs)
        },
    )
    .await
}

/// A project whose commands all talk to `server`.
fn project_with_storage(server: &S3Server) -> Project {
    let p = Project::new();
    server.create_bucket(BUCKET);
    p.set_env("JOBSLOT_S3_BUCKET", BUCKET);
    p.set_env("JOBSLOT_S3_ENDPOINT", &server.endpoint());
    p.set_env("JOBSLOT_S3_PATH_STYLE", "true");
    p.set_env("JOBSLOT_S3_REGION", "us-east-1");
    p.set_env("JOBSLOT_S3_ACCESS_KEY_ID", ACCESS_KEY);
    p.set_env("JOBSLOT_S3_SECRET_ACCESS_KEY", SECRET_KEY);
    p
}

const FAST_RETRY: &[&str] = &[
    "--upload-retry-initial",
    "50ms",
    "--upload-retry-max",
    "300ms",
];

/// The uploader records the object's address and then removes the local
/// file, so a reader can see the address a moment before the file is gone.
async fn wait_local_gone(local: &std::path::Path, what: &str) {
    wait_for(what, Duration::from_secs(5), || async {
        (!local.exists()).then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outcome_uploads_its_log_once_and_logs_reads_it_from_the_bucket() {
    let root = tempfile::tempdir().expect("tmp");
    let server = S3Server::start(root.path(), None).await;
    let p = project_with_storage(&server);
    p.job("ok", "echo completed-output")
        .job("bad", "echo failed-output; exit 1")
        .job("skip", "echo canceled-output; exit 100")
        .job("slow", "echo timeout-output; sleep 30");
    p.schema(
        "jobs.toml",
        "[jobs.slow]\nmax_execution_time = \"300ms\"\nkill_grace = \"100ms\"\n",
    );
    let inst = p.start("a", 4, FAST_RETRY);
    let store = p.store().await;
    let cases = [
        ("ok", TaskStatus::Completed, "completed-output"),
        ("bad", TaskStatus::Failed, "failed-output"),
        ("skip", TaskStatus::Canceled, "canceled-output"),
        ("slow", TaskStatus::Failed, "timeout-output"),
    ];
    let ids: Vec<Uuid> = cases.iter().map(|(job, ..)| enqueue(&p, &[job])).collect();
    for (id, (job, status, text)) in ids.iter().zip(cases) {
        let t = wait_terminal(store.as_ref(), *id, Duration::from_secs(10)).await;
        assert_eq!(t.status, status, "{job}");
        let url = wait_uploaded(store.as_ref(), *id, Duration::from_secs(10)).await;
        assert_eq!(url, format!("s3://{BUCKET}/{}", key(*id)));
        let object = server.object(BUCKET, &key(*id)).expect("object stored");
        assert_eq!(String::from_utf8_lossy(&object).trim(), text, "{job}");
        assert_eq!(
            server.writes(BUCKET, &key(*id)),
            1,
            "{job} uploaded more than once"
        );
        let local = p.path().join(".jobslot/logs").join(format!("{id}.log"));
        wait_local_gone(&local, &format!("{job}: local log removed after upload")).await;
        // `jobslot logs` reads it back from the bucket.
        let out = p.cli(&["logs", &id.to_string()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), text);
        // `show --json` says where it is.
        let v = p.cli_json(&["show", &id.to_string()]);
        assert_eq!(v["log"], serde_json::json!(url));
    }
    assert!(inst.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_over_16_mib_goes_up_as_a_multipart_upload() {
    let root = tempfile::tempdir().expect("tmp");
    let server = S3Server::start(root.path(), None).await;
    let p = project_with_storage(&server);
    let size = 17 * 1024 * 1024 + 123;
    p.job("big", &format!("head -c {size} /dev/zero | tr '\\0' 'x'"));
    let inst = p.start("a", 1, FAST_RETRY);
    let store = p.store().await;
    let id = enqueue(&p, &["big"]);
    let t = wait_terminal(store.as_ref(), id, Duration::from_secs(30)).await;
    assert_eq!(t.status, TaskStatus::Completed);
    wait_uploaded(store.as_ref(), id, Duration::from_secs(60)).await;
    let object = server.object(BUCKET, &key(id)).expect("object");
    assert_eq!(object.len(), size);
    assert!(object.iter().all(|b| *b == b'x'));
    assert_eq!(
        server.multipart_completions(BUCKET, &key(id)),
        1,
        "not a multipart upload"
    );
    assert_eq!(server.writes(BUCKET, &key(id)), 1);
    assert!(inst.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_outage_delays_no_task_and_loses_no_log() {
    let root = tempfile::tempdir().expect("tmp");
    let server = S3Server::start(root.path(), None).await;
    let p = project_with_storage(&server);
    p.job("t", "echo \"log of $JOBSLOT_TASK_ID\"");
    let inst = p.start("a", 4, FAST_RETRY);
    let store = p.store().await;
    // A first task proves storage works, then storage goes away.
    let first = enqueue(&p, &["t"]);
    wait_uploaded(store.as_ref(), first, Duration::from_secs(10)).await;
    let counters = server.counters();
    let port = server.stop().await;
    let mut ids = Vec::new();
    for _ in 0..12 {
        ids.push(enqueue(&p, &["t"]));
    }
    for id in &ids {
        let t = wait_terminal(store.as_ref(), *id, Duration::from_secs(10)).await;
        assert_eq!(t.status, TaskStatus::Completed);
        let lag = (t.started_at.expect("started") - t.created_at).num_milliseconds();
        assert!(lag < 1000, "task {id} was delayed {lag} ms by the outage");
        assert!(
            t.log.as_deref().is_some_and(|l| !l.starts_with("s3://")),
            "uploaded during the outage?"
        );
    }
    tokio::time::sleep(Duration::from_millis(800)).await; // some retries fail meanwhile
    let server = S3Server::start_with(root.path(), Some(port), counters).await;
    for id in &ids {
        wait_uploaded(store.as_ref(), *id, Duration::from_secs(20)).await;
        let object = server.object(BUCKET, &key(*id)).expect("object");
        assert_eq!(
            String::from_utf8_lossy(&object).trim(),
            format!("log of {id}")
        );
        assert_eq!(
            server.writes(BUCKET, &key(*id)),
            1,
            "log of {id} written twice"
        );
        let local = p.path().join(".jobslot/logs").join(format!("{id}.log"));
        wait_local_gone(&local, &format!("local log of {id} removed")).await;
    }
    assert!(inst.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_left_by_a_killed_instance_are_uploaded_by_the_next_one() {
    let root = tempfile::tempdir().expect("tmp");
    let server = S3Server::start(root.path(), None).await;
    let p = project_with_storage(&server);
    p.job("t", "echo \"log of $JOBSLOT_TASK_ID\"");
    let store = p.store().await;
    // Storage is down while instance a runs the tasks; then a is killed.
    let counters = server.counters();
    let port = server.stop().await;
    let a = p.start("a", 4, FAST_RETRY);
    let ids: Vec<Uuid> = (0..5).map(|_| enqueue(&p, &["t"])).collect();
    for id in &ids {
        wait_terminal(store.as_ref(), *id, Duration::from_secs(10)).await;
    }
    a.signal(Signal::SIGKILL);
    drop(a);
    for id in &ids {
        assert!(
            p.path()
                .join(".jobslot/logs")
                .join(format!("{id}.log"))
                .exists()
        );
    }
    let server = S3Server::start_with(root.path(), Some(port), counters).await;
    let b = p.start("b", 1, FAST_RETRY);
    for id in &ids {
        wait_uploaded(store.as_ref(), *id, Duration::from_secs(20)).await;
        let object = server.object(BUCKET, &key(*id)).expect("object");
        assert_eq!(
            String::from_utf8_lossy(&object).trim(),
            format!("log of {id}")
        );
        assert_eq!(server.writes(BUCKET, &key(*id)), 1);
    }
    assert!(b.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_give_a_clear_error_keep_the_log_and_retry() {
    let root = tempfile::tempdir().expect("tmp");
    let server = S3Server::start(root.path(), None).await;
    let p = project_with_storage(&server);
    p.set_env("JOBSLOT_S3_SECRET_ACCESS_KEY", "wrong-secret-value-42");
    p.job("t", "echo hello");
    let mut args = FAST_RETRY.to_vec();
    args.extend(["--shutdown-timeout", "1s"]);
    let inst = p.start("a", 1, &args);
    let store = p.store().await;
    let id = enqueue(&p, &["t"]);
    let t = wait_terminal(store.as_ref(), id, Duration::from_secs(10)).await;
    assert_eq!(t.status, TaskStatus::Completed);
    // Retried, and the storage's answer is in the log. (The test server may
    // also close the connection before the client has written the body: that
    // attempt logs a broken pipe instead, and a later one gets the answer.)
    let stderr = wait_for("upload errors logged", Duration::from_secs(15), || async {
        let s = p.stderr_of("a");
        (s.matches("log upload failed").count() >= 2
            && (s.contains("SignatureDoesNotMatch") || s.contains("403")))
        .then_some(s)
    })
    .await;
    assert!(
        !stderr.contains("wrong-secret-value-42"),
        "the secret leaked into the log"
    );
    let local = p.path().join(".jobslot/logs").join(format!("{id}.log"));
    assert!(local.exists(), "the log must stay local");
    assert_eq!(server.keys(BUCKET, ""), Vec::<String>::new());
    let t0 = Instant::now();
    assert!(inst.stop().success());
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "shutdown hung on the failing storage"
    );
    // Fixed credentials: the next instance uploads it.
    p.set_env("JOBSLOT_S3_SECRET_ACCESS_KEY", SECRET_KEY);
    let inst = p.start("b", 1, FAST_RETRY);
    wait_uploaded(store.as_ref(), id, Duration::from_secs(20)).await;
    assert_eq!(server.object(BUCKET, &key(id)).map(|o| o.len()), Some(6));
    wait_local_gone(&local, "local log removed after the upload").await;
    assert!(inst.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_environment_holds_no_storage_credential() {
    let root = tempfile::tempdir().expect("tmp");
    let server = S3Server::start(root.path(), None).await;
    let p = project_with_storage(&server);
    p.set_env("AWS_ACCESS_KEY_ID", "AKIAOTHERKEY");
    p.set_env("AWS_SECRET_ACCESS_KEY", "aws-secret-should-not-leak");
    p.set_env("AWS_SESSION_TOKEN", "session-token-should-not-leak");
    p.job("env", "env");
    let inst = p.start("a", 1, FAST_RETRY);
    let store = p.store().await;
    let id = enqueue(&p, &["env"]);
    wait_uploaded(store.as_ref(), id, Duration::from_secs(10)).await;
    let env = String::from_utf8(server.object(BUCKET, &key(id)).expect("object")).expect("utf8");
    assert!(env.contains(&format!("JOBSLOT_TASK_ID={id}")), "{env}");
    for secret in [
        SECRET_KEY,
        ACCESS_KEY,
        "AKIAOTHERKEY",
        "aws-secret-should-not-leak",
        "session-token-should-not-leak",
    ] {
        assert!(!env.contains(secret), "the task saw {secret}");
    }
    for name in [
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SESSION_TOKEN",
        "JOBSLOT_S3_SECRET_ACCESS_KEY",
        "JOBSLOT_S3_ACCESS_KEY_ID",
    ] {
        assert!(!env.contains(&format!("{name}=")), "the task saw {name}");
    }
    assert!(inst.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_key_can_come_from_a_file_tasks_do_not_see() {
    let root = tempfile::tempdir().expect("tmp");
    let server = S3Server::start(root.path(), None).await;
    let p = project_with_storage(&server);
    let file = p.path().join("s3-secret");
    std::fs::write(&file, format!("{SECRET_KEY}\n")).expect("secret file");
    let file = file.display().to_string();
    p.set_env("JOBSLOT_S3_SECRET_ACCESS_KEY", "");
    p.set_env("JOBSLOT_S3_SECRET_ACCESS_KEY_FILE", &file);
    p.job("env", "env");
    let inst = p.start("a", 1, FAST_RETRY);
    let store = p.store().await;
    let id = enqueue(&p, &["env"]);
    // Uploaded: signed with the key from the file (its newline dropped).
    wait_uploaded(store.as_ref(), id, Duration::from_secs(10)).await;
    let env = String::from_utf8(server.object(BUCKET, &key(id)).expect("object")).expect("utf8");
    assert!(env.contains(&format!("JOBSLOT_TASK_ID={id}")), "{env}");
    assert!(!env.contains("JOBSLOT_S3_SECRET_ACCESS_KEY_FILE="), "{env}");
    assert!(!env.contains(SECRET_KEY), "{env}");
    assert!(inst.stop().success());
    // A file that cannot be read is an error naming the variable and the path.
    p.set_env(
        "JOBSLOT_S3_SECRET_ACCESS_KEY_FILE",
        "/nonexistent/s3-secret",
    );
    let out = p.cli(&["tasks"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("JOBSLOT_S3_SECRET_ACCESS_KEY_FILE") && err.contains("/nonexistent/s3-secret"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_removes_rows_local_logs_and_objects() {
    let root = tempfile::tempdir().expect("tmp");
    let server = S3Server::start(root.path(), None).await;
    let p = project_with_storage(&server);
    p.job("ok", "echo ok").job("bad", "echo bad; exit 1");
    let inst = p.start("a", 2, FAST_RETRY);
    let store = p.store().await;
    let oks: Vec<Uuid> = (0..3).map(|_| enqueue(&p, &["ok"])).collect();
    let bads: Vec<Uuid> = (0..2).map(|_| enqueue(&p, &["bad"])).collect();
    for id in oks.iter().chain(&bads) {
        wait_uploaded(store.as_ref(), *id, Duration::from_secs(10)).await;
    }
    assert!(inst.stop().success());
    let later = enqueue(&p, &["ok", "--in", "1h"]);
    // Failed ones only, first.
    let v = p.cli_json(&["prune", "--older-than", "0s", "--status", "failed"]);
    assert_eq!(v["tasks"], 2);
    assert_eq!(v["stored_logs"], 2);
    for id in &bads {
        assert!(store.task_get(*id).await.expect("get").is_none());
        assert!(server.object(BUCKET, &key(*id)).is_none());
    }
    for id in &oks {
        assert!(server.object(BUCKET, &key(*id)).is_some());
    }
    // Then everything finished, in batches of 2; a local log goes too.
    let local_task = oks[0];
    let v = p.cli_json(&["prune", "--older-than", "0s", "--batch", "2"]);
    assert_eq!(v["tasks"], 3, "{v}");
    assert_eq!(server.keys(BUCKET, "logs/"), Vec::<String>::new());
    assert!(store.task_get(local_task).await.expect("get").is_none());
    // The pending task is untouched; nothing is left to prune.
    assert!(store.task_get(later).await.expect("get").is_some());
    let out = p.cli(&["prune", "--older-than", "30d"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("pruned 0 tasks"));
    let bad = p.cli(&["prune", "--older-than", "1d", "--status", "running"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("only finished tasks"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_tails_a_running_task_and_ends_with_it_across_the_upload() {
    let root = tempfile::tempdir().expect("tmp");
    let server = S3Server::start(root.path(), None).await;
    let p = project_with_storage(&server);
    p.job(
        "talk",
        "for i in 1 2 3 4 5 6; do echo \"line $i\"; sleep 0.15; done",
    );
    let inst = p.start("a", 1, FAST_RETRY);
    let store = p.store().await;
    let id = enqueue(&p, &["talk"]);
    wait_running(store.as_ref(), id, Duration::from_secs(10)).await;
    let out = p
        .cmd()
        .args(["logs", "--follow", &id.to_string()])
        .output()
        .expect("follow");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let expected: String = (1..=6).map(|i| format!("line {i}\n")).collect();
    assert_eq!(text, expected, "follow printed a different log");
    let url = wait_uploaded(store.as_ref(), id, Duration::from_secs(10)).await;
    assert!(url.starts_with("s3://"));
    // After the upload, the same command reads it from the bucket.
    let again = p.cli(&["logs", "--follow", &id.to_string()]);
    assert_eq!(String::from_utf8_lossy(&again.stdout), expected);
    assert!(inst.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_after_removes_old_tasks_continuously() {
    let root = tempfile::tempdir().expect("tmp");
    let server = S3Server::start(root.path(), None).await;
    let p = project_with_storage(&server);
    p.job("ok", "echo ok");
    let mut args = FAST_RETRY.to_vec();
    args.extend(["--prune-after", "2s"]);
    let inst = p.start("a", 1, &args);
    let store = p.store().await;
    let id = enqueue(&p, &["ok"]);
    wait_uploaded(store.as_ref(), id, Duration::from_secs(10)).await;
    assert!(server.object(BUCKET, &key(id)).is_some());
    wait_for("the old task pruned", Duration::from_secs(15), || async {
        store
            .task_get(id)
            .await
            .ok()
            .flatten()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        server.object(BUCKET, &key(id)).is_none(),
        "its stored log was kept"
    );
    assert!(inst.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attempt_of_a_retried_task_keeps_its_log_in_the_bucket_until_pruned() {
    let root = tempfile::tempdir().expect("tmp");
    let server = S3Server::start(root.path(), None).await;
    let p = project_with_storage(&server);
    p.job("flaky", &format!("SUCCEED_AT=3\n{FLAKY}"));
    p.schema(
        "jobs.toml",
        "[jobs.flaky]\nretry = { max_attempts = 3, backoff = \"100ms\", jitter = 0 }\n",
    );
    let inst = p.start("a", 1, FAST_RETRY);
    let store = p.store().await;
    let id = enqueue(&p, &["flaky"]);
    let t = wait_terminal(store.as_ref(), id, Duration::from_secs(20)).await;
    assert_eq!((t.status, t.attempt), (TaskStatus::Completed, 3), "{t:?}");
    let last = wait_uploaded(store.as_ref(), id, Duration::from_secs(10)).await;
    let earlier = wait_attempts_uploaded(store.as_ref(), id, 2, Duration::from_secs(10)).await;

    // Three objects, one per attempt, each written once, under its file name.
    let keys: Vec<String> = (1..=3).map(|n| attempt_key(id, n)).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(server.keys(BUCKET, "logs/"), sorted);
    for (n, k) in (1..=3).zip(&keys) {
        let object = server.object(BUCKET, k).expect("object stored");
        assert_eq!(
            String::from_utf8_lossy(&object).trim(),
            format!("output of attempt {n}")
        );
        assert_eq!(server.writes(BUCKET, k), 1, "{k} written more than once");
    }
    assert_eq!(last, format!("s3://{BUCKET}/{}", keys[2]));
    assert_eq!(
        earlier,
        [
            format!("s3://{BUCKET}/{}", keys[0]),
            format!("s3://{BUCKET}/{}", keys[1])
        ]
    );
    // No local file is left.
    let dir = p.path().join(".jobslot/logs");
    for n in 1..=3 {
        let local = dir.join(jobslot::model::log_file_name(id, n));
        wait_local_gone(&local, &format!("local log of attempt {n} removed")).await;
    }
    // `show --json` names the stored objects; `logs` reads them back.
    let v = p.cli_json(&["show", &id.to_string()]);
    assert_eq!(v["log"], serde_json::json!(last));
    let shown: Vec<&str> = v["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .filter_map(|a| a["log"].as_str())
        .collect();
    assert_eq!(shown, earlier, "{v}");
    for n in 1..=3 {
        let out = p.cli(&["logs", &id.to_string(), "--attempt", &n.to_string()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("output of attempt {n}")
        );
    }
    assert!(inst.stop().success());

    // Prune deletes every attempt's object with the task.
    let v = p.cli_json(&["prune", "--older-than", "0s"]);
    assert_eq!(
        (&v["tasks"], &v["stored_logs"]),
        (&1.into(), &3.into()),
        "{v}"
    );
    assert_eq!(server.keys(BUCKET, "logs/"), Vec::<String>::new());
    assert!(store.task_get(id).await.expect("get").is_none());
    assert!(store.task_attempts(id).await.expect("attempts").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempt_logs_left_by_a_killed_instance_are_uploaded_by_the_next_one() {
    let root = tempfile::tempdir().expect("tmp");
    let server = S3Server::start(root.path(), None).await;
    let p = project_with_storage(&server);
    // Never succeeds: two attempts, then failed for review.
    p.job("flaky", FLAKY);
    p.schema(
        "jobs.toml",
        "[jobs.flaky]\nretry = { max_attempts = 2, backoff = \"100ms\", jitter = 0 }\n",
    );
    let store = p.store().await;
    // Storage is down while instance a runs both attempts; then a is killed.
    let counters = server.counters();
    let port = server.stop().await;
    let a = p.start("a", 1, FAST_RETRY);
    let id = enqueue(&p, &["flaky"]);
    let t = wait_terminal(store.as_ref(), id, Duration::from_secs(20)).await;
    assert_eq!((t.status, t.attempt), (TaskStatus::Failed, 2), "{t:?}");
    a.signal(Signal::SIGKILL);
    drop(a);
    let attempts = store.task_attempts(id).await.expect("attempts");
    let first = attempts[0].log.clone().expect("attempt 1 log");
    assert!(!first.starts_with("s3://"), "uploaded during the outage?");
    assert!(std::path::Path::new(&first).exists());

    let server = S3Server::start_with(root.path(), Some(port), counters).await;
    let b = p.start("b", 1, FAST_RETRY);
    wait_uploaded(store.as_ref(), id, Duration::from_secs(20)).await;
    let urls = wait_attempts_uploaded(store.as_ref(), id, 1, Duration::from_secs(20)).await;
    assert_eq!(urls, [format!("s3://{BUCKET}/{}", attempt_key(id, 1))]);
    for n in 1..=2 {
        let k = attempt_key(id, n);
        let object = server.object(BUCKET, &k).expect("object");
        assert_eq!(
            String::from_utf8_lossy(&object).trim(),
            format!("output of attempt {n}")
        );
        assert_eq!(server.writes(BUCKET, &k), 1);
    }
    wait_local_gone(
        std::path::Path::new(&first),
        "attempt 1's local log removed",
    )
    .await;
    assert!(b.stop().success());
}
