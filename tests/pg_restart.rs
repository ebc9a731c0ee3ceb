//! PostgreSQL restarted in the middle of a run: no task lost, none run twice, the
//! instances carry on. It restarts the shared server, so it is ignored in the
//! normal run and run alone by .ci/run:
//! `cargo test --test pg_restart -- --ignored`.

mod common;
use common::*;
use jobslot::model::TaskStatus;
use std::time::Duration;

fn restart_postgres() {
    let versions = std::fs::read_dir("/etc/postgresql")
        .expect("/etc/postgresql")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    let version = versions.first().expect("a PostgreSQL cluster");
    let st = std::process::Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", version, "main", "restart"])
        .status()
        .expect("pg_ctlcluster");
    assert!(st.success(), "restart failed");
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
