//! Every instance knows what it owns: tasks the database says it holds but
//! it does not run go back, processes of tasks it no longer holds stop, the
//! log location survives a crash right after the spawn, a host clock far
//! ahead fails nothing early, and a loop that dies takes the instance down.

mod common;
use common::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use common::*;
use jobslot::model::TaskStatus;
use jobslot::store::TaskFinishParams;
use nix::sys::signal::Signal;
use serde_json::json;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// A claim committed whose answer never reached the dispatcher (injected:
/// the dispatcher forgets the first 3 tasks it claims) is put back within
/// about a heartbeat, same attempt, and runs once.
async fn a_lost_claim_answer_is_put_back_at_the_next_heartbeat(backend: Backend) {
    let p = Project::on(backend);
    let out = p.path().join("ran.txt");
    p.job(
        "record",
        &format!("echo \"$JOBSLOT_TASK_ID\" >> {}", out.display()),
    );
    p.set_env("JOBSLOT_TEST_FAULTS", "drop-claimed=3");
    let store = p.store().await;
    let port = common::http::free_port();
    let addr = format!("127.0.0.1:{port}");
    let inst = p.start(
        "a",
        4,
        &["--heartbeat-interval", "200ms", "--api-addr", &addr],
    );
    common::http::wait_listening(port, Duration::from_secs(15));
    let started = Instant::now();
    let ids: Vec<Uuid> = (0..5).map(|_| enqueue(&p, &["record"])).collect();
    for id in &ids {
        let t = wait_terminal(store.as_ref(), *id, Duration::from_secs(15)).await;
        assert_eq!(t.status, TaskStatus::Completed, "{t:?}");
        assert_eq!(t.attempt, 1, "no attempt is used up: {t:?}");
    }
    let took = started.elapsed();
    eprintln!("5 tasks, 3 claims forgotten: all completed after {took:?}");
    // Held but not run for at most about one heartbeat (200 ms), plus the
    // time to enqueue and run; without the check they stay held forever.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_each_ran_once(&out, &ids);
    let log = p.stderr_of("a");
    assert_eq!(
        log.matches("put back to pending").count(),
        3,
        "three releases logged:\n{log}"
    );
    let (status, metrics) = common::http::http_raw(port, "GET", "/metrics", None, None);
    assert_eq!(status, 200, "{metrics}");
    assert!(
        metrics.contains("jobslot_ownership_released_total 3"),
        "the releases are counted in /metrics:\n{metrics}"
    );
    assert!(metrics.contains("jobslot_ownership_stopped_total 0"));
    assert!(metrics.contains("jobslot_instance_clock_offset_seconds{"));
    assert!(inst.stop().success());
}
on_both!(a_lost_claim_answer_is_put_back_at_the_next_heartbeat);

/// A task this instance runs, failed by someone else meanwhile (an orphan
/// rescue across a partition, an operator): its process group is stopped at
/// the next heartbeat and the end written elsewhere stays as it is.
async fn a_task_no_longer_held_is_stopped_and_nothing_is_written(backend: Backend) {
    let p = Project::on(backend);
    let pidfile = p.path().join("pid");
    p.job(
        "long",
        &format!("echo $$ > {}; sleep 30 & wait", pidfile.display()),
    );
    let store = p.store().await;
    let inst = p.start("a", 2, &["--heartbeat-interval", "100ms"]);
    let id = enqueue(&p, &["long"]);
    let t = wait_running(store.as_ref(), id, Duration::from_secs(10)).await;
    let pgid = wait_for("the job's pid", Duration::from_secs(10), || async {
        std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
    })
    .await;
    assert!(group_alive(pgid));
    let applied = store
        .task_finish_many(vec![TaskFinishParams {
            id,
            expect: TaskStatus::Running,
            expect_instance: t.instance_id,
            status: TaskStatus::Failed,
            reason: Some("orphaned (instance a)".into()),
            exit_code: None,
            signal: None,
            ended_at: chrono::Utc::now(),
            result: None,
            log: None,
            next: None,
            retry_at: None,
            needs_review: false,
            callback: None,
        }])
        .await
        .expect("fail it from outside");
    assert_eq!(applied, vec![Some(TaskStatus::Failed)]);
    wait_for(
        "its process group gone",
        Duration::from_secs(10),
        || async { (!group_alive(pgid)).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = store.task_get(id).await.expect("get").expect("task");
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(t.reason.as_deref(), Some("orphaned (instance a)"));
    let log = p.stderr_of("a");
    assert!(
        log.contains("no longer says this instance holds"),
        "the stop is logged:\n{log}"
    );
    assert!(inst.stop().success());
}
on_both!(a_task_no_longer_held_is_stopped_and_nothing_is_written);

/// kill -9 of an instance moments after a spawn: the log location was
/// recorded by the claim, so the instance that fails the task as orphaned
/// uploads its log.
async fn a_crash_right_after_a_spawn_keeps_the_log(backend: Backend) {
    let root = tempfile::tempdir().expect("tmp");
    let server = S3Server::start(root.path(), None).await;
    let p = Project::on(backend);
    server.create_bucket("logs");
    for (k, v) in [
        ("JOBSLOT_S3_BUCKET", "logs"),
        ("JOBSLOT_S3_ENDPOINT", &server.endpoint()),
        ("JOBSLOT_S3_PATH_STYLE", "true"),
        ("JOBSLOT_S3_REGION", "us-east-1"),
        ("JOBSLOT_S3_ACCESS_KEY_ID", ACCESS_KEY),
        ("JOBSLOT_S3_SECRET_ACCESS_KEY", SECRET_KEY),
    ] {
        p.set_env(k, v);
    }
    let marker = p.path().join("started");
    p.job(
        "t",
        &format!(
            "echo \"output of $JOBSLOT_TASK_ID\"; touch {}; sleep 30",
            marker.display()
        ),
    );
    p.schema("s.toml", "[jobs.t]\nmax_execution_time = \"1s\"\n");
    let store = p.store().await;
    let fast = ["--orphan-grace", "1s", "--upload-retry-initial", "50ms"];
    let a = p.start("a", 1, &fast);
    // Let a start before the task exists, so the spawn is what we race.
    wait_for("a registered", Duration::from_secs(10), || async {
        (!store.instance_list().await.ok()?.is_empty()).then_some(())
    })
    .await;
    let id = enqueue(&p, &["t"]);
    wait_for("the job started", Duration::from_secs(10), || async {
        marker.exists().then_some(())
    })
    .await;
    a.signal(Signal::SIGKILL);
    drop(a);
    let b = p.start("b", 1, &fast);
    let t = wait_terminal(store.as_ref(), id, Duration::from_secs(20)).await;
    assert_eq!(t.status, TaskStatus::Failed);
    assert!(
        t.reason.as_deref().unwrap_or("").starts_with("orphaned"),
        "{t:?}"
    );
    let url = wait_uploaded(store.as_ref(), id, Duration::from_secs(20)).await;
    assert_eq!(url, format!("s3://logs/logs/{id}.log"));
    let object = server
        .object("logs", &format!("logs/{id}.log"))
        .expect("object");
    assert!(
        String::from_utf8_lossy(&object).contains(&format!("output of {id}")),
        "the object holds the output"
    );
    assert!(b.stop().success());
}
on_both!(a_crash_right_after_a_spawn_keeps_the_log);

/// On PostgreSQL an instance whose host clock runs 90 s ahead (libfaketime)
/// dates claims and judges deadlines by the database's clock: it fails
/// nothing early, and `jobslot instances` shows its offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_clock_far_ahead_fails_nothing_early() {
    if !postgres_or_skip() {
        return;
    }
    let lib = ["/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(lib) = lib else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "libfaketime is needed (Debian's faketime package)"
        );
        eprintln!("skipping: libfaketime is not installed");
        return;
    };
    let p = Project::on(Backend::Postgres);
    p.job("work", "sleep 3");
    p.schema("s.toml", "[jobs.work]\nmax_execution_time = \"6s\"\n");
    let store = p.store().await;
    let grace = ["--orphan-grace", "1s", "--heartbeat-interval", "200ms"];
    let a = p.start("a", 2, &grace);
    p.set_env("LD_PRELOAD", lib);
    p.set_env("FAKETIME", "+90s");
    p.set_env("FAKETIME_DONT_RESET", "1");
    let b = p.start("b", 2, &grace);
    p.set_env("LD_PRELOAD", "");
    p.set_env("FAKETIME", "");
    wait_for("both registered", Duration::from_secs(15), || async {
        (store.instance_list().await.ok()?.len() == 2).then_some(())
    })
    .await;
    let ids: Vec<Uuid> = (0..4)
        .map(|i| enqueue(&p, &["work", "--args", &json!({ "i": i }).to_string()]))
        .collect();
    let mut instances = std::collections::BTreeSet::new();
    for id in &ids {
        let t = wait_terminal(store.as_ref(), *id, Duration::from_secs(30)).await;
        assert_eq!(
            t.status,
            TaskStatus::Completed,
            "nothing fails early: {t:?}"
        );
        instances.extend(t.instance);
    }
    assert_eq!(
        instances.len(),
        2,
        "both instances ran tasks: {instances:?}"
    );
    let list = p.cli_json(&["instances"]);
    let offset_of = |name: &str| {
        list.as_array()
            .and_then(|a| a.iter().find(|i| i["name"] == name))
            .and_then(|i| i["clock_offset_ms"].as_i64())
            .unwrap_or_else(|| panic!("clock_offset_ms of {name} in {list}"))
    };
    let ob = offset_of("b");
    assert!((85_000..95_000).contains(&ob), "b is 90 s ahead: {ob}");
    assert!(offset_of("a").abs() < 1000);
    assert!(
        p.stderr_of("b").contains("ahead of the database"),
        "b warns about its clock"
    );
    assert!(a.stop().success());
    assert!(b.stop().success());
}

/// A long-lived loop that panics ends the instance with status 70 and a
/// clear line, instead of leaving it heartbeating without working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_that_panics_stops_the_instance() {
    let p = Project::new();
    p.job("t", "true");
    p.set_env("JOBSLOT_TEST_FAULTS", "panic-dispatcher");
    let mut inst = p.start("a", 1, &[]);
    let status = wait_child(&mut inst.child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(70), "exit status 70");
    let log = p.stderr_of("a");
    assert!(
        log.contains("fatal: the instance's dispatcher panicked"),
        "a clear line:\n{log}"
    );
}
