//! The HTTP API on a live socket: `jobslot serve` (API only, runs nothing)
//! beside a `jobslot run` instance (runs jobs) on one database; the token
//! rule; the loopback rule.

mod common;
use common::http::*;
use common::*;
use jobslot::model::TaskStatus;
use serde_json::{Value, json};
use std::time::Duration;

on_both!(tasks_created_through_the_api_process_are_run_by_the_job_process);
async fn tasks_created_through_the_api_process_are_run_by_the_job_process(backend: Backend) {
    let p = Project::on(backend);
    p.job("hello", "echo \"hello $(cat)\"");
    p.set_env("JOBSLOT_API_TOKEN", "t0ken");
    let port = free_port();
    let mut api = serve(&p, port);
    // The API process runs nothing: with no instance, the task waits.
    let (s, t) = http(
        port,
        "POST",
        "/api/tasks",
        Some(&json!({"job": "hello", "args": {"n": 1}})),
        Some("t0ken"),
    );
    assert_eq!(s, 201, "{t}");
    let id = t["id"].as_str().expect("id").to_string();
    std::thread::sleep(Duration::from_millis(700));
    let (_, shown) = http(
        port,
        "GET",
        &format!("/api/tasks/{id}"),
        None,
        Some("t0ken"),
    );
    assert_eq!(shown["status"], "pending", "{shown}");
    // A job-running instance on the same database runs it.
    let _worker = p.start("worker", 2, &[]);
    let store = p.store().await;
    let t = wait_terminal(
        store.as_ref(),
        id.parse().expect("uuid"),
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(t.status, jobslot::model::TaskStatus::Completed);
    let (s, shown) = http(
        port,
        "GET",
        &format!("/api/tasks/{id}"),
        None,
        Some("t0ken"),
    );
    assert_eq!(
        (s, shown["instance"].as_str()),
        (200, Some("worker")),
        "{shown}"
    );
    // Without the token: 401, except health.
    let (s, v) = http(port, "GET", "/api/tasks", None, None);
    assert_eq!(s, 401, "{v}");
    assert_eq!(http(port, "GET", "/api/health", None, None).0, 200);
    let (s, list) = http(port, "GET", "/api/instances", None, Some("t0ken"));
    assert_eq!(s, 200);
    assert_eq!(list[0]["name"], "worker", "{list}");
    stop_api(&mut api);
}

#[test]
fn the_api_refuses_a_public_address_without_a_token() {
    let p = Project::new();
    let out = p.cli(&["serve", "--api-addr", "0.0.0.0:7999"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to serve the API on 0.0.0.0:7999 without a token"),
        "{err}"
    );
}

on_both!(a_run_instance_serves_the_api_and_follows_a_running_tasks_log);
async fn a_run_instance_serves_the_api_and_follows_a_running_tasks_log(backend: Backend) {
    let p = Project::on(backend);
    p.job(
        "ticker",
        "for i in 1 2 3 4 5; do echo \"tick $i\"; sleep 0.3; done",
    );
    p.job("fail", "echo bad; exit 1");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let inst = p.start("both", 2, &["--api-addr", &addr]);
    wait_listening(port, Duration::from_secs(20));
    let store = p.store().await;
    let (s, t) = http(
        port,
        "POST",
        "/api/tasks",
        Some(&json!({"job": "ticker"})),
        None,
    );
    assert_eq!(s, 201, "{t}");
    let id: uuid::Uuid = t["id"].as_str().and_then(|i| i.parse().ok()).expect("id");
    wait_running(store.as_ref(), id, Duration::from_secs(20)).await;
    // The log arrives while the task runs, then the end.
    let mut events = Events::open(port, &format!("/api/tasks/{id}/log/stream"), None);
    let mut text = String::new();
    let mut seen_while_running = false;
    let end = loop {
        let (name, data) = events.next().expect("the stream ends with an end event");
        match name.as_str() {
            "log" => {
                text.push_str(data["text"].as_str().expect("text"));
                let now = store.task_get(id).await.expect("get").expect("task");
                if now.status == TaskStatus::Running && text.contains("tick 1") {
                    seen_while_running = true;
                }
            }
            "end" => break data,
            other => panic!("unexpected event {other}: {data}"),
        }
    };
    assert!(seen_while_running, "the log came only after the end");
    assert_eq!(text, "tick 1\ntick 2\ntick 3\ntick 4\ntick 5\n");
    assert_eq!(end["status"], "completed", "{end}");
    assert_eq!(end["exit_code"], 0, "{end}");
    assert!(events.next().is_none(), "the stream closes after the end");
    let (s, whole) = http_raw(port, "GET", &format!("/api/tasks/{id}/log"), None, None);
    assert_eq!((s, whole.as_str()), (200, text.as_str()));
    // A failed task retried through the API runs again as a new task.
    let (_, f) = http(
        port,
        "POST",
        "/api/tasks",
        Some(&json!({"job": "fail"})),
        None,
    );
    let failed: uuid::Uuid = f["id"].as_str().and_then(|i| i.parse().ok()).expect("id");
    let t = wait_terminal(store.as_ref(), failed, Duration::from_secs(20)).await;
    assert_eq!(t.status, TaskStatus::Failed);
    let (s, r) = http(
        port,
        "POST",
        &format!("/api/tasks/{failed}/retry"),
        None,
        None,
    );
    assert_eq!(s, 201, "{r}");
    let again: uuid::Uuid = r["id"].as_str().and_then(|i| i.parse().ok()).expect("id");
    let t = wait_terminal(store.as_ref(), again, Duration::from_secs(20)).await;
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(t.metadata["retryOf"], json!(failed.to_string()));
    // History filters, in the CLI and the API.
    let count = |v: &Value| v.as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(count(&p.cli_json(&["tasks", "--instance", "both"])), 3);
    assert_eq!(count(&p.cli_json(&["tasks", "--instance", "nobody"])), 0);
    assert_eq!(
        count(&p.cli_json(&["tasks", "--instance", "both", "--status", "failed"])),
        2
    );
    assert_eq!(count(&p.cli_json(&["tasks", "--since", "1h"])), 3);
    assert_eq!(count(&p.cli_json(&["tasks", "--until", "1h"])), 0);
    let (_, v) = http(port, "GET", "/api/tasks?instance=both&job=fail", None, None);
    assert_eq!(count(&v), 2, "{v}");
    let bad = p.cli(&["tasks", "--since", "last week"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--since: \"last week\" is neither"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(inst.stop().success());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the API stops with the instance"
    );
}

#[test]
fn an_address_given_that_is_taken_stops_the_instance() {
    let p = Project::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = p.cli(&["run", "--slots", "1", "--api-addr", &addr]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on {addr} for the HTTP API")),
        "{err}"
    );
    let out = p
        .cmd()
        .args(["run", "--no-api"])
        .env("JOBSLOT_SCHEDULER_DISABLED", "true")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("leave nothing to run"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
