//! The command line and the child's view: environment, logs, --json fields,
//! cross-process wake-ups, schema apply, init.

mod common;
use common::*;
use jobslot::model::TaskStatus;
use std::io::Read;
use std::time::{Duration, Instant};

on_both!(a_task_enqueued_by_another_process_starts_within_milliseconds);
async fn a_task_enqueued_by_another_process_starts_within_milliseconds(backend: Backend) {
    let p = Project::on(backend);
    p.job("quick", "true");
    // A 30 s fallback poll: only the change signal can explain a fast start.
    let inst = p.start("a", 2, &["--poll-interval", "30s"]);
    let store = p.store().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut worst = 0i64;
    for _ in 0..5 {
        let id = enqueue(&p, &["quick"]);
        let t = wait_terminal(store.as_ref(), id, Duration::from_secs(10)).await;
        let lag = (t.started_at.expect("started") - t.created_at).num_milliseconds();
        worst = worst.max(lag);
    }
    assert!(
        worst < 250,
        "a cross-process enqueue took {worst} ms to start"
    );
    assert!(inst.stop().success());
}

on_both!(the_child_gets_its_environment_args_on_stdin_and_no_storage_secrets);
async fn the_child_gets_its_environment_args_on_stdin_and_no_storage_secrets(backend: Backend) {
    let p = Project::on(backend);
    p.job("env", "env | sort\necho \"stdin=$(cat)\"");
    let inst = p
        .cmd()
        .args(["run", "--name", "a", "--slots", "1", "--no-api"])
        .env("AWS_SECRET_ACCESS_KEY", "s3cr3t-value")
        .env("JOBSLOT_API_TOKEN", "api-t0ken-value")
        .env("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
        .env("JOBSLOT_S3_SECRET_ACCESS_KEY", "other-secret")
        .env("JOBSLOT_API_TOKENS_FILE", "/etc/jobslot/tokens-file-path")
        .env("SOME_SETTING", "kept")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start");
    let inst = Instance {
        child: inst,
        name: "a".into(),
    };
    let store = p.store().await;
    let id = enqueue(&p, &["env", "--args", r#"{"x": 1}"#]);
    let t = wait_terminal(store.as_ref(), id, Duration::from_secs(10)).await;
    assert_eq!(t.status, TaskStatus::Completed);
    let log = std::fs::read_to_string(t.log.expect("log path")).expect("log");
    for needle in [
        format!("JOBSLOT_TASK_ID={id}"),
        "JOBSLOT_JOB=env".to_string(),
        "JOBSLOT_ATTEMPT=1".to_string(),
        r#"JOBSLOT_ARGS={"x":1}"#.to_string(),
        "JOBSLOT_METADATA={}".to_string(),
        "JOBSLOT_LAST_COMPLETED_AT=".to_string(),
        "JOBSLOT_DEADLINE=".to_string(),
        "JOBSLOT_RESULT_FILE=".to_string(),
        format!("JOBSLOT_DATABASE={}", p.db_url()),
        "SOME_SETTING=kept".to_string(),
        r#"stdin={"x":1}"#.to_string(),
    ] {
        assert!(log.contains(&needle), "missing {needle} in\n{log}");
    }
    for secret in [
        "s3cr3t-value",
        "api-t0ken-value",
        "AKIAEXAMPLE",
        "other-secret",
        "AWS_SECRET_ACCESS_KEY",
        "tokens-file-path",
    ] {
        assert!(!log.contains(secret), "the task saw {secret}");
    }
    assert!(inst.stop().success());
}

on_both!(logs_are_capped_and_followed_until_the_task_ends);
async fn logs_are_capped_and_followed_until_the_task_ends(backend: Backend) {
    let p = Project::on(backend);
    p.job(
        "chatty",
        "i=0; while [ $i -lt 2000 ]; do echo \"line $i of a chatty job\"; i=$((i+1)); done",
    );
    p.job(
        "slowprint",
        "for i in 1 2 3 4 5; do echo \"tick $i\"; sleep 0.2; done",
    );
    let inst = p.start("a", 2, &["--log-cap", "1K"]);
    let store = p.store().await;
    let id = enqueue(&p, &["chatty"]);
    let t = wait_terminal(store.as_ref(), id, Duration::from_secs(20)).await;
    assert_eq!(t.status, TaskStatus::Completed);
    let out = p.cli(&["logs", &id.to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("line 0 of a chatty job"), "{text}");
    assert!(
        text.contains("[jobslot] log truncated at 1024 bytes"),
        "{text}"
    );
    assert!(text.len() < 1024 + 100, "log is {} bytes", text.len());

    let id = enqueue(&p, &["slowprint"]);
    wait_running(store.as_ref(), id, Duration::from_secs(10)).await;
    let t0 = Instant::now();
    let mut follow = p
        .cmd()
        .args(["logs", "--follow", &id.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("follow");
    let mut text = String::new();
    follow
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut text)
        .expect("read");
    let status = wait_child(&mut follow, Duration::from_secs(10));
    assert!(status.success());
    assert!(
        t0.elapsed() >= Duration::from_millis(400),
        "follow ended before the task did"
    );
    for i in 1..=5 {
        assert!(text.contains(&format!("tick {i}")), "{text}");
    }
    assert!(inst.stop().success());
}

on_both!(show_json_has_the_contract_fields_and_prefixes_work);
async fn show_json_has_the_contract_fields_and_prefixes_work(backend: Backend) {
    let p = Project::on(backend);
    p.job("a", "exit 3");
    let inst = p.start("a", 1, &[]);
    let store = p.store().await;
    let id = enqueue(&p, &["a", "--args", r#"{"k":"v"}"#, "--priority", "4"]);
    wait_terminal(store.as_ref(), id, Duration::from_secs(10)).await;
    let full = id.to_string();
    let v = p.cli_json(&["show", &full[..13]]);
    for field in [
        "id",
        "job",
        "status",
        "reason",
        "exit_code",
        "signal",
        "attempt",
        "queue",
        "priority",
        "schedule",
        "instance",
        "parent",
        "after",
        "args",
        "metadata",
        "result",
        "created_at",
        "start_at",
        "started_at",
        "ended_at",
        "log",
    ] {
        assert!(v.get(field).is_some(), "missing {field} in {v}");
    }
    assert_eq!(v["id"], full);
    assert_eq!(v["status"], "failed");
    assert_eq!(v["reason"], "exit 3");
    assert_eq!(v["exit_code"], 3);
    assert_eq!(v["signal"], serde_json::Value::Null);
    assert_eq!(v["priority"], 4);
    assert_eq!(v["instance"], "a");
    assert_eq!(v["args"], serde_json::json!({"k": "v"}));
    assert!(v["created_at"].as_str().is_some_and(|s| s.ends_with('Z')));
    let list = p.cli_json(&["tasks", "--status", "failed"]);
    assert_eq!(list.as_array().map(|a| a.len()), Some(1));
    let e = p.cli_json(&["enqueue", "a", "--in", "1h"]);
    assert_eq!(e["status"], "pending");
    assert!(inst.stop().success());
}

on_both!(schema_apply_moves_a_changed_schedule_and_cancels_a_removed_one);
async fn schema_apply_moves_a_changed_schedule_and_cancels_a_removed_one(backend: Backend) {
    let p = Project::on(backend);
    p.job("a", "true");
    p.schema("s.toml", "[[schedules]]\nname = \"one\"\njob = \"a\"\nevery = \"1h\"\nstart_at = \"2030-01-01T00:00:00Z\"\n\n[[schedules]]\nname = \"two\"\njob = \"a\"\ncron = \"0 3 * * *\"\n");
    let v = p.cli_json(&["schema", "apply"]);
    assert_eq!(v["created"], serde_json::json!(["one", "two"]));
    let again = p.cli_json(&["schema", "apply"]);
    assert_eq!(again["unchanged"], serde_json::json!(["one", "two"]));
    let store = p.store().await;
    let before = tasks_of(store.as_ref(), "a").await;
    assert_eq!(before.len(), 2);
    let one = before
        .iter()
        .find(|t| t.schedule.as_deref() == Some("one"))
        .expect("one")
        .clone();
    p.schema("s.toml", "[[schedules]]\nname = \"one\"\njob = \"a\"\nevery = \"1h\"\nstart_at = \"2031-01-01T00:00:00Z\"\nargs = { v = 2 }\n");
    let v = p.cli_json(&["schema", "apply"]);
    assert_eq!(v["updated"], serde_json::json!(["one"]));
    assert_eq!(v["removed"], serde_json::json!(["two"]));
    let after = tasks_of(store.as_ref(), "a").await;
    let moved = after
        .iter()
        .find(|t| t.id == one.id)
        .expect("same occurrence");
    assert_eq!(moved.status, TaskStatus::Pending);
    assert_eq!(moved.args, serde_json::json!({"v": 2}));
    assert_eq!(
        moved.start_at.map(|t| t.to_rfc3339()),
        Some("2031-01-01T00:00:00+00:00".into())
    );
    let two = after
        .iter()
        .find(|t| t.schedule.as_deref() == Some("two"))
        .expect("two");
    assert_eq!(two.status, TaskStatus::Canceled);
}

#[test]
fn init_creates_a_project_that_checks() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = std::process::Command::new(bin())
        .arg("init")
        .arg(dir.path())
        .output()
        .expect("init");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(bin())
        .args(["--project"])
        .arg(dir.path())
        .args(["schema", "check"])
        .output()
        .expect("check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 jobs, 1 schedules"));
}

on_both!(migrate_reports_the_same_version_on_both_backends);
async fn migrate_reports_the_same_version_on_both_backends(backend: Backend) {
    let p = Project::on(backend);
    p.job("a", "true");
    let v = p.cli_json(&["migrate"]);
    assert_eq!(v["version"], 8, "{v}");
    let again = p.cli_json(&["migrate"]);
    assert_eq!(again["version"], 8);
}
