//! Every row of DESIGN's exit-code table, with real processes.

mod common;
use common::*;
use jobslot::model::TaskStatus;
use std::time::Duration;

on_both!(every_exit_code_gives_its_outcome);
async fn every_exit_code_gives_its_outcome(backend: Backend) {
    let p = Project::on(backend);
    p.job("ok", "echo fine")
        .job("cancel_me", "exit 100")
        .job("tempfail", "exit 75")
        .job("fail", "exit 1")
        .job("three", "exit 3")
        .job("killed", "kill -9 $$")
        .job("slow", "sleep 30")
        .job("long", "sleep 30")
        .job("vanishing", "exit 0")
        .job("badshebang", "exit 0");
    std::fs::write(
        p.path().join("jobs/badshebang.sh"),
        "#!/nonexistent/interpreter\nexit 0\n",
    )
    .expect("write");
    std::fs::write(p.path().join("jobs/noexec.sh"), "#!/bin/sh\nexit 0\n").expect("write");
    p.schema(
        "jobs.toml",
        "[jobs.slow]\nmax_execution_time = \"300ms\"\nkill_grace = \"200ms\"\n",
    );
    let inst = p.start("a", 8, &[]);
    let store = p.store().await;

    // (job, status, reason, exit code, signal)
    type Row = (
        &'static str,
        TaskStatus,
        Option<&'static str>,
        Option<i32>,
        Option<i32>,
    );
    let cases: &[Row] = &[
        ("ok", TaskStatus::Completed, None, Some(0), None),
        (
            "cancel_me",
            TaskStatus::Canceled,
            Some("self-canceled"),
            Some(100),
            None,
        ),
        (
            "tempfail",
            TaskStatus::Failed,
            Some("exit 75"),
            Some(75),
            None,
        ),
        ("fail", TaskStatus::Failed, Some("exit 1"), Some(1), None),
        ("three", TaskStatus::Failed, Some("exit 3"), Some(3), None),
        (
            "killed",
            TaskStatus::Failed,
            Some("signal 9"),
            None,
            Some(9),
        ),
        ("slow", TaskStatus::Failed, Some("timeout"), None, Some(15)),
    ];
    let mut ids = Vec::new();
    for (job, ..) in cases {
        ids.push(enqueue(&p, &[job]));
    }
    for (id, (job, status, reason, code, signal)) in ids.iter().zip(cases) {
        let t = wait_terminal(store.as_ref(), *id, Duration::from_secs(20)).await;
        assert_eq!(t.status, *status, "{job}: {t:?}");
        assert_eq!(t.reason.as_deref(), *reason, "{job}");
        assert_eq!(t.exit_code, *code, "{job}");
        assert_eq!(t.signal, *signal, "{job}");
        assert_eq!(t.instance.as_deref(), Some("a"), "{job}");
        assert!(t.started_at.is_some() && t.ended_at.is_some(), "{job}");
    }

    // Spawn errors: a missing file, a file that is not executable, a bad #! line.
    // The missing one is enqueued while its file exists, then removed before it runs.
    let vanishing = enqueue(&p, &["vanishing", "--in", "1s"]);
    std::fs::remove_file(p.path().join("jobs/vanishing.sh")).expect("rm");
    for (job, needle) in [
        ("vanishing", "No such file"),
        ("noexec", "Permission denied"),
        ("badshebang", "No such file"),
    ] {
        let id = if job == "vanishing" {
            vanishing
        } else {
            enqueue(&p, &[job])
        };
        let t = wait_terminal(store.as_ref(), id, Duration::from_secs(10)).await;
        assert_eq!(t.status, TaskStatus::Failed, "{job}");
        let reason = t.reason.unwrap_or_default();
        assert!(reason.starts_with("spawn-error: "), "{job}: {reason}");
        assert!(reason.contains(needle), "{job}: {reason}");
    }

    // A user cancel of a running task: SIGTERM to the group, canceled.
    let id = enqueue(&p, &["long"]);
    wait_for("long to run", Duration::from_secs(10), || async {
        store
            .task_get(id)
            .await
            .ok()
            .flatten()
            .filter(|t| t.status == TaskStatus::Running && t.pgid.is_some())
    })
    .await;
    let out = p.cli(&["cancel", &id.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = wait_terminal(store.as_ref(), id, Duration::from_secs(10)).await;
    assert_eq!(t.status, TaskStatus::Canceled);
    assert_eq!(t.reason.as_deref(), Some("canceled"));

    // The instance is still alive after all of that.
    let st = inst.stop();
    assert!(st.success(), "instance exit status {st:?}");
}
