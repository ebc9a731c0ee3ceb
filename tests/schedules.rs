//! Schedules: `catch_up` after downtime and `catch_up` changes in the schema.

mod common;
use chrono::{DateTime, Utc};
use common::*;
use jobslot::model::{Task, TaskStatus};
use jobslot::store::TaskListParams;
use serde_json::json;
use std::time::Duration;

/// The tasks of schedule `name`, by due time.
async fn schedule_tasks(store: &dyn jobslot::store::Store, name: &str) -> Vec<Task> {
    let mut v = store
        .task_list(TaskListParams {
            schedule: Some(name.into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("list");
    v.sort_by_key(|t| t.start_at);
    v
}

/// Runs an `every = "500ms"` schedule with `catch_up` on instance `a`, stops it
/// for 2.2 s (four or more occurrences pass), then runs it on instance `b` until
/// `b` completed two occurrences. Returns the schedule's tasks and the time `b`
/// was started.
async fn through_downtime(backend: Backend, catch_up: &str) -> (Vec<Task>, DateTime<Utc>) {
    let p = Project::on(backend);
    p.job("m", "true");
    p.schema(
        "s.toml",
        &format!(
            "[[schedules]]\nname = \"m\"\njob = \"m\"\nevery = \"500ms\"\ncatch_up = \"{catch_up}\"\n"
        ),
    );
    let store = p.store().await;
    let inst = p.start("a", 1, &[]);
    wait_for("a first run", Duration::from_secs(10), || async {
        let v = schedule_tasks(store.as_ref(), "m").await;
        (count(&v, TaskStatus::Completed) >= 1).then_some(())
    })
    .await;
    assert!(inst.stop().success());
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let restart_at = Utc::now();
    let inst = p.start("b", 1, &[]);
    wait_for(
        "two runs after the restart",
        Duration::from_secs(15),
        || async {
            let v = schedule_tasks(store.as_ref(), "m").await;
            let by_b = v
                .iter()
                .filter(|t| t.instance.as_deref() == Some("b"))
                .filter(|t| t.status == TaskStatus::Completed);
            (by_b.count() >= 2).then_some(())
        },
    )
    .await;
    assert!(inst.stop().success());
    (schedule_tasks(store.as_ref(), "m").await, restart_at)
}

fn due(t: &Task) -> DateTime<Utc> {
    t.start_at.expect("due time")
}

on_both!(catch_up_one_runs_one_missed_occurrence_after_downtime);
async fn catch_up_one_runs_one_missed_occurrence_after_downtime(backend: Backend) {
    let (tasks, restart_at) = through_downtime(backend, "one").await;
    let ran: Vec<&Task> = tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Completed)
        .collect();
    let by_b: Vec<&Task> = ran
        .iter()
        .copied()
        .filter(|t| t.instance.as_deref() == Some("b"))
        .collect();
    // Exactly one occurrence due during the downtime ran, on b, at its restart.
    let caught: Vec<&Task> = by_b
        .iter()
        .copied()
        .filter(|t| due(t) < restart_at)
        .collect();
    assert_eq!(caught.len(), 1, "caught-up runs: {caught:#?}");
    let caught = caught[0];
    assert!(
        restart_at - due(caught) > chrono::Duration::milliseconds(1000),
        "the caught-up occurrence (due {}) was not missed (restart {restart_at})",
        due(caught)
    );
    let ended = caught.ended_at.expect("ended");
    // The next occurrence is the first grid point after that run's end: the
    // other missed ones are skipped.
    let next = by_b
        .iter()
        .find(|t| due(t) > due(caught))
        .expect("an occurrence after the caught-up one");
    assert!(
        due(next) > ended && due(next) <= ended + chrono::Duration::milliseconds(500),
        "next due {} is not the first grid point after {ended}",
        due(next)
    );
    assert_eq!(
        (due(next) - due(caught)).num_milliseconds() % 500,
        0,
        "off the grid"
    );
    let between = ran
        .iter()
        .filter(|t| due(t) > due(caught) && due(t) < due(next))
        .count();
    assert_eq!(between, 0, "a skipped occurrence ran");
}

on_both!(catch_up_skip_runs_no_missed_occurrence_after_downtime);
async fn catch_up_skip_runs_no_missed_occurrence_after_downtime(backend: Backend) {
    let (tasks, restart_at) = through_downtime(backend, "skip").await;
    let last_before = tasks
        .iter()
        .filter(|t| t.instance.as_deref() == Some("a") && t.status == TaskStatus::Completed)
        .map(due)
        .max()
        .expect("a ran");
    // Nothing due between a's last run and b's start ran: the occurrence that was
    // pending moved to the first due time after b claimed it.
    let in_downtime: Vec<&Task> = tasks
        .iter()
        .filter(|t| t.status.is_terminal() && due(t) > last_before && due(t) < restart_at)
        .collect();
    assert!(
        in_downtime.is_empty(),
        "missed occurrences ran: {in_downtime:#?}"
    );
    let by_b: Vec<&Task> = tasks
        .iter()
        .filter(|t| t.instance.as_deref() == Some("b") && t.status == TaskStatus::Completed)
        .collect();
    assert!(by_b.len() >= 2);
    let first = by_b[0];
    assert!(due(first) > restart_at, "b's first run due {}", due(first));
    assert_eq!((due(first) - last_before).num_milliseconds() % 500, 0);
}

on_both!(changing_only_catch_up_updates_the_schedule);
async fn changing_only_catch_up_updates_the_schedule(backend: Backend) {
    let p = Project::on(backend);
    p.job("m", "true");
    let schema = |catch_up: &str| {
        p.schema(
            "s.toml",
            &format!("[[schedules]]\nname = \"m\"\njob = \"m\"\ncron = \"0 3 * * *\"\n{catch_up}"),
        );
        p.cli_json(&["schema", "apply"])
    };
    let pending_recurrence = || {
        let v = p.cli_json(&["tasks", "--schedule", "m", "--status", "pending"]);
        let list = v.as_array().expect("array");
        assert_eq!(list.len(), 1, "{v}");
        list[0]["recurrence"].clone()
    };
    assert_eq!(schema("")["created"], json!(["m"]));
    // An explicit default is the same schedule.
    assert_eq!(schema("catch_up = \"skip\"\n")["unchanged"], json!(["m"]));
    let applied = schema("catch_up = \"one\"\n");
    assert_eq!(applied["updated"], json!(["m"]), "{applied}");
    assert_eq!(pending_recurrence()["catch_up"], json!("one"));
    assert_eq!(schema("catch_up = \"one\"\n")["unchanged"], json!(["m"]));
    assert_eq!(schema("")["updated"], json!(["m"]));
    assert_eq!(
        pending_recurrence(),
        json!({"cron": "0 3 * * *", "timezone": "UTC"})
    );
    // A bad value names the schedule and the key; nothing is applied.
    p.schema(
        "s.toml",
        "[[schedules]]\nname = \"m\"\njob = \"m\"\ncron = \"0 3 * * *\"\ncatch_up = \"twice\"\n",
    );
    let out = p.cli(&["schema", "apply"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "schema/s.toml:5: schedules[0].catch_up: schedule \"m\": unknown value \"twice\""
        ),
        "{err}"
    );
}

on_both!(enqueue_takes_catch_up_with_every_or_cron);
async fn enqueue_takes_catch_up_with_every_or_cron(backend: Backend) {
    let p = Project::on(backend);
    p.job("r", "true");
    let t = p.cli_json(&["enqueue", "r", "--every", "1h", "--catch-up", "one"]);
    assert_eq!(t["recurrence"]["catch_up"], json!("one"));
    let t = p.cli_json(&["enqueue", "r", "--cron", "0 3 * * *", "--catch-up", "skip"]);
    assert_eq!(
        t["recurrence"],
        json!({"cron": "0 3 * * *", "timezone": "UTC"})
    );
    let out = p.cli(&["enqueue", "r", "--catch-up", "one"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--every or --cron"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
