//! Recurrence: every, cron, after, skipped missed occurrences, lastCompletedAt.

mod common;
use common::*;
use jobslot::model::{TaskStatus, fmt_time};
use jobslot::store::TaskListParams;
use std::time::Duration;

async fn schedule_tasks(
    store: &dyn jobslot::store::Store,
    name: &str,
) -> Vec<jobslot::model::Task> {
    let mut v = store
        .task_list(TaskListParams {
            schedule: Some(name.into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("list");
    v.reverse(); // oldest first
    v
}

on_both!(every_runs_on_its_grid_without_overlap_and_passes_last_completed_at);
async fn every_runs_on_its_grid_without_overlap_and_passes_last_completed_at(backend: Backend) {
    let p = Project::on(backend);
    let out = p.path().join("seen.txt");
    p.job(
        "tick",
        &format!(
            "echo \"$JOBSLOT_TASK_ID $JOBSLOT_LAST_COMPLETED_AT\" >> {}",
            out.display()
        ),
    );
    p.schema(
        "s.toml",
        "[[schedules]]\nname = \"t\"\njob = \"tick\"\nevery = \"300ms\"\n",
    );
    let inst = p.start("a", 2, &[]);
    let store = p.store().await;
    let done = wait_for(
        "4 completed occurrences",
        Duration::from_secs(10),
        || async {
            let v = schedule_tasks(store.as_ref(), "t").await;
            (count(&v, TaskStatus::Completed) >= 4).then_some(v)
        },
    )
    .await;
    assert!(inst.stop().success());
    let completed: Vec<_> = done
        .iter()
        .filter(|t| t.status == TaskStatus::Completed)
        .collect();
    for w in completed.windows(2) {
        let (a, b) = (w[0], w[1]);
        let step = (b.start_at.expect("due") - a.start_at.expect("due")).num_milliseconds();
        assert_eq!(step % 300, 0, "occurrences off the grid: {step} ms");
        assert!(b.started_at >= a.ended_at, "occurrences overlap");
        // lastCompletedAt reaches the next occurrence: in its metadata and its environment.
        let last = fmt_time(a.ended_at.expect("ended"));
        assert_eq!(b.metadata["lastCompletedAt"], serde_json::json!(last));
    }
    let text = std::fs::read_to_string(&out).expect("output");
    let second = completed[1];
    let line = text
        .lines()
        .find(|l| l.starts_with(&second.id.to_string()))
        .expect("second occurrence ran");
    assert!(
        line.ends_with(&fmt_time(completed[0].ended_at.expect("ended"))),
        "{line}"
    );
    let first_line = text
        .lines()
        .find(|l| l.starts_with(&completed[0].id.to_string()))
        .expect("first");
    assert_eq!(
        first_line.trim(),
        completed[0].id.to_string(),
        "first run has no lastCompletedAt"
    );
}

on_both!(cron_with_seconds_fires_on_whole_seconds);
async fn cron_with_seconds_fires_on_whole_seconds(backend: Backend) {
    let p = Project::on(backend);
    p.job("c", "true");
    p.schema("s.toml", "[[schedules]]\nname = \"c\"\njob = \"c\"\ncron = \"* * * * * *\"\ntimezone = \"Europe/Paris\"\n");
    let inst = p.start("a", 2, &[]);
    let store = p.store().await;
    let v = wait_for("2 cron runs", Duration::from_secs(10), || async {
        let v = schedule_tasks(store.as_ref(), "c").await;
        (count(&v, TaskStatus::Completed) >= 2).then_some(v)
    })
    .await;
    assert!(inst.stop().success());
    for t in v.iter().filter(|t| t.status == TaskStatus::Completed) {
        let due = t.start_at.expect("due");
        assert_eq!(
            due.timestamp_subsec_millis(),
            0,
            "cron due time {due} not on a second"
        );
        let started = t.started_at.expect("started");
        assert!(
            started >= due && started - due < chrono::Duration::milliseconds(500),
            "late start"
        );
    }
}

on_both!(after_runs_on_completion_and_is_canceled_on_failure);
async fn after_runs_on_completion_and_is_canceled_on_failure(backend: Backend) {
    let p = Project::on(backend);
    let flag = p.path().join("fail-now");
    p.job(
        "up",
        &format!("test -e {} && exit 1; exit 0", flag.display()),
    );
    p.job("down", "true");
    p.schema(
        "s.toml",
        "[[schedules]]\nname = \"up\"\njob = \"up\"\nevery = \"400ms\"\n\n[[schedules]]\nname = \"down\"\njob = \"down\"\nafter = \"up\"\n",
    );
    let inst = p.start("a", 2, &[]);
    let store = p.store().await;
    let downs = wait_for(
        "2 completed downstream runs",
        Duration::from_secs(10),
        || async {
            let v = schedule_tasks(store.as_ref(), "down").await;
            (count(&v, TaskStatus::Completed) >= 2).then_some(v)
        },
    )
    .await;
    let ups = schedule_tasks(store.as_ref(), "up").await;
    for d in downs.iter().filter(|t| t.status == TaskStatus::Completed) {
        let pred = ups
            .iter()
            .find(|u| Some(u.id) == d.after)
            .expect("linked to an upstream occurrence");
        assert_eq!(pred.status, TaskStatus::Completed);
        assert!(
            d.started_at >= pred.ended_at,
            "downstream started before upstream ended"
        );
    }
    // Upstream failures cancel the waiting downstream occurrence; the schedule goes on.
    std::fs::write(&flag, "").expect("flag");
    let canceled = wait_for(
        "a canceled downstream occurrence",
        Duration::from_secs(10),
        || async {
            schedule_tasks(store.as_ref(), "down")
                .await
                .into_iter()
                .find(|t| t.status == TaskStatus::Canceled)
        },
    )
    .await;
    assert!(
        canceled.reason.as_deref().unwrap_or("").contains("failed"),
        "{:?}",
        canceled.reason
    );
    std::fs::remove_file(&flag).expect("unflag");
    let before = count(
        &schedule_tasks(store.as_ref(), "down").await,
        TaskStatus::Completed,
    );
    wait_for("downstream runs again", Duration::from_secs(10), || async {
        let v = schedule_tasks(store.as_ref(), "down").await;
        (count(&v, TaskStatus::Completed) > before).then_some(())
    })
    .await;
    assert!(inst.stop().success());
}

on_both!(missed_occurrences_are_skipped_after_downtime);
async fn missed_occurrences_are_skipped_after_downtime(backend: Backend) {
    let p = Project::on(backend);
    p.job("m", "true");
    p.schema(
        "s.toml",
        "[[schedules]]\nname = \"m\"\njob = \"m\"\nevery = \"500ms\"\n",
    );
    let store = p.store().await;
    let inst = p.start("a", 1, &[]);
    wait_for("first run", Duration::from_secs(10), || async {
        let v = schedule_tasks(store.as_ref(), "m").await;
        (count(&v, TaskStatus::Completed) >= 1).then_some(())
    })
    .await;
    assert!(inst.stop().success());
    let down_at = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let restart_at = chrono::Utc::now();
    let inst = p.start("b", 1, &[]);
    wait_for(
        "a run after the restart",
        Duration::from_secs(10),
        || async {
            let v = schedule_tasks(store.as_ref(), "m").await;
            v.iter()
                .any(|t| t.instance.as_deref() == Some("b") && t.status == TaskStatus::Completed)
                .then_some(())
        },
    )
    .await;
    assert!(inst.stop().success());
    let v = schedule_tasks(store.as_ref(), "m").await;
    // No occurrence due during the downtime ran: the first run after the restart is
    // due at the first grid point in the future.
    for t in v.iter().filter(|t| t.instance.as_deref() == Some("b")) {
        let due = t.start_at.expect("due");
        assert!(
            due >= restart_at - chrono::Duration::milliseconds(500),
            "missed occurrence due {due} ran (down at {down_at}, restarted {restart_at})"
        );
    }
    assert_eq!(
        v.iter()
            .filter(|t| t.status.is_terminal()
                && t.start_at.expect("due") > down_at
                && t.start_at.expect("due") < restart_at - chrono::Duration::milliseconds(500))
            .count(),
        0
    );
}

on_both!(enqueue_every_and_after_from_the_command_line);
async fn enqueue_every_and_after_from_the_command_line(backend: Backend) {
    let p = Project::on(backend);
    p.job("r", "true")
        .job("first", "true")
        .job("second", "true")
        .job("bad", "exit 1");
    let inst = p.start("a", 2, &[]);
    let store = p.store().await;
    let r = enqueue(&p, &["r", "--every", "200ms"]);
    let first = enqueue(&p, &["first", "--in", "300ms"]);
    let second = enqueue(&p, &["second", "--after", &first.to_string()]);
    let bad = enqueue(&p, &["bad", "--in", "100ms"]);
    let never = enqueue(&p, &["second", "--after", &bad.to_string()]);
    let s = wait_terminal(store.as_ref(), second, Duration::from_secs(10)).await;
    let f = store.task_get(first).await.expect("get").expect("first");
    assert_eq!(s.status, TaskStatus::Completed);
    assert!(s.started_at >= f.ended_at);
    let n = wait_terminal(store.as_ref(), never, Duration::from_secs(10)).await;
    assert_eq!(n.status, TaskStatus::Canceled);
    wait_for(
        "3 runs of the --every task",
        Duration::from_secs(10),
        || async {
            (count(&tasks_of(store.as_ref(), "r").await, TaskStatus::Completed) >= 3).then_some(())
        },
    )
    .await;
    assert!(store.task_get(r).await.expect("get").is_some());
    assert!(inst.stop().success());
}
