//! Retries with real processes: transient failures come back after their
//! backoff, permanent ones do not, exhaustion flags the task for review, every
//! attempt keeps its record and log, and `jobslot retry` runs a task again.

mod common;
use common::*;
use jobslot::model::TaskStatus;
use nix::sys::signal::Signal;
use std::time::Duration;

/// The instants (ns since the epoch) at which each attempt's process started,
/// as the job itself wrote them.
fn starts(p: &Project, file: &str) -> Vec<(u32, i128)> {
    let text = std::fs::read_to_string(p.path().join(file)).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (a, t) = l.split_once(' ')?;
            Some((a.parse().ok()?, t.parse().ok()?))
        })
        .collect()
}

on_both!(transient_failures_come_back_after_a_growing_backoff);
async fn transient_failures_come_back_after_a_growing_backoff(backend: Backend) {
    let p = Project::on(backend);
    // Exit 75 on the first two attempts, then succeed.
    p.job(
        "flaky",
        "echo \"$JOBSLOT_ATTEMPT $(date +%s%N)\" >> starts.txt\n\
         echo \"output of attempt $JOBSLOT_ATTEMPT\"\n\
         [ \"$JOBSLOT_ATTEMPT\" -ge 3 ] && exit 0\nexit 75",
    );
    p.schema(
        "jobs.toml",
        "[jobs.flaky]\nretry = { max_attempts = 4, backoff = \"400ms\", max_backoff = \"5s\", jitter = 0 }\n",
    );
    let _inst = p.start("a", 2, &[]);
    let store = p.store().await;
    let id = enqueue(&p, &["flaky"]);
    let t = wait_terminal(store.as_ref(), id, Duration::from_secs(30)).await;
    assert_eq!(t.status, TaskStatus::Completed, "{t:?}");
    assert_eq!(t.attempt, 3);
    assert!(!t.needs_review);
    let attempts = store.task_attempts(id).await.expect("attempts");
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    for (i, a) in attempts.iter().enumerate() {
        assert_eq!(a.attempt, i as u32 + 1);
        assert_eq!(a.status, TaskStatus::Failed);
        assert_eq!(a.reason.as_deref(), Some("exit 75"));
        assert_eq!(a.exit_code, Some(75));
        assert_eq!(a.instance.as_deref(), Some("a"));
        assert!(a.started_at.is_some_and(|s| s <= a.ended_at));
        // Each attempt keeps its own log.
        let log = std::fs::read_to_string(a.log.as_deref().expect("attempt log")).expect("read");
        assert_eq!(log.trim(), format!("output of attempt {}", a.attempt));
    }
    let last = std::fs::read_to_string(t.log.as_deref().expect("log")).expect("read");
    assert_eq!(last.trim(), "output of attempt 3");
    // Backoff: 400 ms after the first failure, 800 ms after the second,
    // measured from the attempt's end to the next start (tolerance for a busy
    // machine on the late side only).
    let s = starts(&p, "starts.txt");
    assert_eq!(s.iter().map(|x| x.0).collect::<Vec<_>>(), [1, 2, 3]);
    for (i, want_ms) in [(0usize, 400i128), (1, 800)] {
        let ended = attempts[i].ended_at.timestamp_nanos_opt().expect("time") as i128;
        let gap_ms = (s[i + 1].1 - ended) / 1_000_000;
        assert!(
            gap_ms >= want_ms - 5 && gap_ms < want_ms + 1500,
            "gap before attempt {}: {gap_ms} ms, want {want_ms} ms",
            i + 2
        );
    }
    // show --json carries the attempts; logs --attempt prints an earlier one.
    let shown = p.cli_json(&["show", &id.to_string()]);
    assert_eq!(shown["attempt"], 3);
    assert_eq!(shown["attempts"].as_array().map(Vec::len), Some(2));
    assert_eq!(shown["attempts"][0]["reason"], "exit 75");
    let out = p.cli(&["logs", &id.to_string(), "--attempt", "1"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "output of attempt 1"
    );
}

on_both!(exhausted_attempts_fail_with_a_review_flag_and_permanent_failures_are_not_retried);
async fn exhausted_attempts_fail_with_a_review_flag_and_permanent_failures_are_not_retried(
    backend: Backend,
) {
    let p = Project::on(backend);
    p.job("always75", "exit 75")
        .job("broken", "exit 1")
        .job("custom", "exit 3")
        .job("slow", "sleep 30")
        .job("killed", "kill -9 $$")
        .job("ok", "exit 0");
    p.schema(
        "jobs.toml",
        r#"
[jobs.always75]
retry = { max_attempts = 3, backoff = "100ms", jitter = 0 }
[jobs.broken]
retry = { max_attempts = 3, backoff = "100ms" }
[jobs.custom]
transient_exit_codes = [3]
retry = { max_attempts = 2, backoff = "100ms" }
[jobs.slow]
max_execution_time = "300ms"
kill_grace = "100ms"
retry = { max_attempts = 2, backoff = "100ms" }
[jobs.killed]
retry_on_signal = false
retry = { max_attempts = 3, backoff = "100ms" }
"#,
    );
    let _inst = p.start("a", 4, &[]);
    let store = p.store().await;
    let always = enqueue(&p, &["always75"]);
    let broken = enqueue(&p, &["broken"]);
    let custom = enqueue(&p, &["custom"]);
    let slow = enqueue(&p, &["slow"]);
    let killed = enqueue(&p, &["killed"]);
    // (id, attempts made, final reason, flagged)
    let cases = [
        (always, 3, "exit 75 (attempts exhausted: 3 of 3)", true),
        (broken, 1, "exit 1", false),
        (custom, 2, "exit 3 (attempts exhausted: 2 of 2)", true),
        (slow, 2, "timeout (attempts exhausted: 2 of 2)", true),
        (killed, 1, "signal 9", false),
    ];
    for (id, attempts, reason, flagged) in cases {
        let t = wait_terminal(store.as_ref(), id, Duration::from_secs(30)).await;
        assert_eq!(t.status, TaskStatus::Failed, "{t:?}");
        assert_eq!(t.attempt, attempts, "{t:?}");
        assert_eq!(t.reason.as_deref(), Some(reason));
        assert_eq!(t.needs_review, flagged, "{t:?}");
        let past = store.task_attempts(id).await.expect("attempts");
        assert_eq!(past.len() as u32, attempts - 1, "{past:?}");
    }
    let review = p.cli_json(&["tasks", "--needs-review"]);
    let mut flagged: Vec<String> = review
        .as_array()
        .expect("array")
        .iter()
        .map(|t| t["id"].as_str().unwrap_or_default().to_string())
        .collect();
    flagged.sort();
    let mut want = vec![always.to_string(), custom.to_string(), slow.to_string()];
    want.sort();
    assert_eq!(flagged, want);

    // jobslot retry: a new task of the same job and args, linked to the old one.
    let again = p.cli_json(&["retry", &always.to_string()]);
    let new_id: uuid::Uuid = again["id"].as_str().expect("id").parse().expect("uuid");
    assert_ne!(new_id, always);
    assert_eq!(again["metadata"]["retryOf"], always.to_string());
    let t = wait_terminal(store.as_ref(), new_id, Duration::from_secs(30)).await;
    assert_eq!(t.job, "always75");
    assert_eq!(t.attempt, 3, "the new task has its own attempts");
    // Only failed or canceled tasks.
    let ok = enqueue(&p, &["ok"]);
    wait_terminal(store.as_ref(), ok, Duration::from_secs(10)).await;
    let out = p.cli(&["retry", &ok.to_string()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("only failed or canceled tasks"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

on_both!(an_orphaned_task_is_retried_on_another_instance);
async fn an_orphaned_task_is_retried_on_another_instance(backend: Backend) {
    let p = Project::on(backend);
    // The first attempt hangs (its instance will die), the second succeeds.
    p.job(
        "resilient",
        "[ \"$JOBSLOT_ATTEMPT\" -ge 2 ] && exit 0\nexec sleep 30",
    );
    p.schema(
        "jobs.toml",
        "[jobs.resilient]\nmax_execution_time = \"1s\"\nkill_grace = \"100ms\"\nretry = { max_attempts = 2, backoff = \"100ms\" }\n",
    );
    let store = p.store().await;
    let a = p.start("a", 1, &["--orphan-grace", "500ms"]);
    let id = enqueue(&p, &["resilient"]);
    wait_running(store.as_ref(), id, Duration::from_secs(10)).await;
    a.signal(Signal::SIGKILL);
    drop(a);
    let _b = p.start("b", 1, &["--orphan-grace", "500ms"]);
    let t = wait_terminal(store.as_ref(), id, Duration::from_secs(20)).await;
    assert_eq!(t.status, TaskStatus::Completed, "{t:?}");
    assert_eq!(t.attempt, 2);
    assert_eq!(t.instance.as_deref(), Some("b"));
    let past = store.task_attempts(id).await.expect("attempts");
    assert_eq!(past.len(), 1);
    assert_eq!(past[0].reason.as_deref(), Some("orphaned (instance a)"));
    assert_eq!(past[0].instance.as_deref(), Some("a"));
}

on_both!(timeouts_and_foreign_signals_come_back_after_their_backoff);
async fn timeouts_and_foreign_signals_come_back_after_their_backoff(backend: Backend) {
    let p = Project::on(backend);
    // First attempt: runs past its 300 ms limit / is killed by a signal
    // jobslot did not send. Second attempt: succeeds.
    p.job(
        "overrun",
        "echo \"$JOBSLOT_ATTEMPT $(date +%s%N)\" >> overrun.txt\n\
         [ \"$JOBSLOT_ATTEMPT\" -ge 2 ] && exit 0\nsleep 30",
    );
    p.job(
        "shot",
        "echo \"$JOBSLOT_ATTEMPT $(date +%s%N)\" >> shot.txt\n\
         [ \"$JOBSLOT_ATTEMPT\" -ge 2 ] && exit 0\nkill -9 $$",
    );
    p.schema(
        "jobs.toml",
        r#"
[jobs.overrun]
max_execution_time = "300ms"
kill_grace = "100ms"
retry = { max_attempts = 2, backoff = "600ms", jitter = 0 }
[jobs.shot]
retry = { max_attempts = 2, backoff = "600ms", jitter = 0 }
"#,
    );
    let _inst = p.start("a", 2, &[]);
    let store = p.store().await;
    for (job, reason) in [("overrun", "timeout"), ("shot", "signal 9")] {
        let id = enqueue(&p, &[job]);
        let t = wait_terminal(store.as_ref(), id, Duration::from_secs(30)).await;
        assert_eq!((t.status, t.attempt), (TaskStatus::Completed, 2), "{t:?}");
        let attempts = store.task_attempts(id).await.expect("attempts");
        assert_eq!(attempts.len(), 1, "{attempts:?}");
        assert_eq!(attempts[0].reason.as_deref(), Some(reason));
        let s = starts(&p, &format!("{job}.txt"));
        assert_eq!(s.iter().map(|x| x.0).collect::<Vec<_>>(), [1, 2], "{job}");
        let ended = attempts[0].ended_at.timestamp_nanos_opt().expect("time") as i128;
        let gap_ms = (s[1].1 - ended) / 1_000_000;
        assert!(
            (595..2100).contains(&gap_ms),
            "{job}: second attempt {gap_ms} ms after the first ended, want 600 ms"
        );
    }
}
