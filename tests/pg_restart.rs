//! PostgreSQL restarted in the middle of a run: no task lost, none run twice, the
//! instances carry on. It restarts the shared server, so it is ignored in the
//! normal run and run alone by .ci/run:
//! `cargo test --test pg_restart -- --ignored`.

mod common;
use common::*;
use jobslot::model::TaskStatus;
use std::time::Duration;

fn restart_postgres() {
    pg_ctl("restart");
}

fn pg_ctl(action: &str) {
    let versions = std::fs::read_dir("/etc/postgresql")
        .expect("/etc/postgresql")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    let version = versions.first().expect("a PostgreSQL cluster");
    let st = std::process::Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", version, "main", action])
        .status()
        .expect("pg_ctlcluster");
    assert!(st.success(), "{action} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "restarts the shared PostgreSQL server; .ci/run runs it alone"]
async fn postgres_restart_loses_no_task_and_runs_none_twice() {
    assert!(postgres_or_skip(), "PostgreSQL is needed");
    let p = Project::on(Backend::Postgres);
    let out = p.path().join("ran.txt");
    p.job(
        "record",
        &format!("sleep 0.05; echo \"$JOBSLOT_TASK_ID\" >> {}", out.display()),
    );
    let store = p.store().await;
    let mut a = p.start("a", 4, &[]);
    let mut b = p.start("b", 2, &[]);
    let mut ids = Vec::new();
    for i in 0..400 {
        let t = new_task("record", serde_json::json!({ "i": i }));
        ids.push(t.id);
        store.task_insert(t).await.expect("insert");
    }
    wait_for("some tasks done", Duration::from_secs(60), || async {
        let done = count(
            &tasks_of(store.as_ref(), "record").await,
            TaskStatus::Completed,
        );
        (done >= 50).then_some(())
    })
    .await;
    restart_postgres();
    wait_for(
        "all 400 tasks to complete after the restart",
        Duration::from_secs(180),
        || async {
            let tasks = store
                .task_list(jobslot::store::TaskListParams {
                    job: Some("record".into()),
                    limit: 1000,
                    ..Default::default()
                })
                .await
                .ok()?;
            (count(&tasks, TaskStatus::Completed) == 400).then_some(())
        },
    )
    .await;
    assert_each_ran_once(&out, &ids);
    // Both instances are still alive and still take work.
    assert!(
        a.child.try_wait().expect("wait").is_none(),
        "instance a died"
    );
    assert!(
        b.child.try_wait().expect("wait").is_none(),
        "instance b died"
    );
    let id = enqueue(&p, &["record"]);
    let t = wait_terminal(store.as_ref(), id, Duration::from_secs(20)).await;
    assert_eq!(t.status, TaskStatus::Completed);
    assert!(a.stop().success());
    assert!(b.stop().success());
}

/// Live (not zombie) process-group leaders (a task's main process, not its
/// children) whose environment names `job` as their job.
fn processes_of_job(job: &str) -> usize {
    let needle = format!("JOBSLOT_JOB={job}");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|e| e.ok())
        .filter(|e| {
            let pid = e.file_name().to_string_lossy().into_owned();
            if pid.parse::<u32>().is_err() {
                return false;
            }
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            // After the command's closing parenthesis: state, ppid, pgrp, …
            let fields: Vec<String> = stat
                .rsplit(')')
                .next()
                .map(|r| r.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default();
            let (Some(state), Some(pgrp)) = (fields.first(), fields.get(2)) else {
                return false;
            };
            if state == "Z" || *pgrp != pid {
                return false;
            }
            std::fs::read(e.path().join("environ"))
                .map(|env| env.split(|b| *b == 0).any(|v| v == needle.as_bytes()))
                .unwrap_or(false)
        })
        .count()
}

/// PostgreSQL stopped for 20 s under two instances running a 3-replica
/// worker: every instance fences itself (stops its replicas) before any may
/// replace another's, so there are never more than 3 replica processes, and
/// 3 run again within 10 s of the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "stops the shared PostgreSQL server; .ci/run runs it alone"]
async fn a_database_outage_never_runs_more_replicas_than_wanted() {
    assert!(postgres_or_skip(), "PostgreSQL is needed");
    let p = Project::on(Backend::Postgres);
    let job = format!("rep{}", uuid::Uuid::now_v7().simple());
    p.job(&job, "trap 'exit 0' TERM; while true; do sleep 0.1; done");
    p.schema(
        "w.toml",
        &format!(
            "[jobs.{job}]\nkill_grace = \"200ms\"\n\n[[workers]]\nname = \"w\"\njob = \"{job}\"\nreplicas = 3\n"
        ),
    );
    let fast = ["--heartbeat-interval", "500ms", "--shutdown-timeout", "2s"];
    let a = p.start("a", 2, &fast);
    let b = p.start("b", 2, &fast);
    let sample_until = |limit: Duration, want: Option<usize>| {
        let job = job.clone();
        async move {
            let start = std::time::Instant::now();
            let mut max = 0;
            while start.elapsed() < limit {
                let n = processes_of_job(&job);
                max = max.max(n);
                if want == Some(n) {
                    return (max, Some(start.elapsed()));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (max, None)
        }
    };
    let (_, up) = sample_until(Duration::from_secs(30), Some(3)).await;
    assert!(up.is_some(), "3 replicas run before the outage");
    // Let the count settle, then cut the database for 20 s.
    let (max_before, _) = sample_until(Duration::from_secs(2), None).await;
    assert!(max_before <= 3, "{max_before} replicas before the outage");
    pg_ctl("stop");
    let (max_down, _) = sample_until(Duration::from_secs(20), None).await;
    let down_now = processes_of_job(&job);
    pg_ctl("start");
    // The instances fenced themselves: their replicas are stopped.
    assert_eq!(down_now, 0, "replicas stopped during the outage");
    let (_, back) = sample_until(Duration::from_secs(10), Some(3)).await;
    let (max_after, _) = sample_until(Duration::from_secs(5), None).await;
    eprintln!(
        "replicas: at most {max_before} before, {max_down} during the outage, 3 again {back:?} after the restart, at most {max_after} then"
    );
    assert!(max_down <= 3, "{max_down} replicas during the outage");
    assert!(
        back.is_some(),
        "3 replicas again within 10 s of the restart"
    );
    assert!(max_after <= 3, "{max_after} replicas after the restart");
    assert!(a.stop().success());
    assert!(b.stop().success());
}
