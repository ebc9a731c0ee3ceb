//! The HTTP API on a live socket: `jobslot serve` (API only, runs nothing)
//! beside a `jobslot run` instance (runs jobs) on one database; the token
//! rule; the loopback rule.

mod common;
use common::*;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::process::{Child, Stdio};
use std::time::Duration;

/// A free local port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One HTTP/1.1 request; returns the status code and the JSON body.
fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> (u16, Value) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let status: u16 = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let json = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

/// Starts `jobslot serve` on `port` and waits until it answers.
fn serve(p: &Project, port: u16) -> Child {
    let child = p
        .cmd()
        .args(["serve", "--api-addr", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the API never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

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
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(api.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let st = wait_child(&mut api, Duration::from_secs(10));
    assert!(st.success(), "serve exits 0 on SIGTERM");
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
