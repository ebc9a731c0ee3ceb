//! The three deployment modes on one database: API-only processes
//! (`jobslot serve`, or `jobslot run` with `JOBSLOT_SCHEDULER_DISABLED=true`)
//! create tasks and run none; job-only instances (`--no-api`,
//! `JOBSLOT_API_DISABLED=true`) run them; a default instance does both.

mod common;
use common::http::*;
use common::*;
use jobslot::model::TaskStatus;
use serde_json::json;
use std::collections::BTreeSet;
use std::process::{Child, Stdio};
use std::time::Duration;

/// Starts an API-only process; waits until it answers.
fn api_only(p: &Project, how: &str, port: u16) -> Child {
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = p.cmd();
    match how {
        "serve" => cmd.args(["serve", "--api-addr", &addr]),
        _ => cmd
            .args(["run", "--api-addr", &addr])
            .env("JOBSLOT_SCHEDULER_DISABLED", "true"),
    };
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start an API-only process");
    wait_listening(port, Duration::from_secs(20));
    child
}

on_both!(three_deployment_modes_share_one_database);
async fn three_deployment_modes_share_one_database(backend: Backend) {
    let p = Project::on(backend);
    p.job("work", "echo \"done $(cat)\"");
    p.set_env("JOBSLOT_API_TOKEN", "deploy-token");
    let token = Some("deploy-token");
    // Application side: two API-only processes.
    let (serve_port, env_port) = (free_port(), free_port());
    let mut serve = api_only(&p, "serve", serve_port);
    let mut env_only = api_only(&p, "env", env_port);
    // Before any job instance runs, tasks created through the API wait.
    let mut ids = Vec::new();
    for i in 0..12 {
        let port = if i % 2 == 0 { serve_port } else { env_port };
        let (s, t) = http(
            port,
            "POST",
            "/api/tasks",
            Some(&json!({"job": "work", "args": {"i": i}})),
            token,
        );
        assert_eq!(s, 201, "{t}");
        ids.push(
            t["id"]
                .as_str()
                .expect("id")
                .parse::<uuid::Uuid>()
                .expect("uuid"),
        );
    }
    std::thread::sleep(Duration::from_millis(600));
    let store = p.store().await;
    for id in &ids {
        let t = store.task_get(*id).await.expect("get").expect("task");
        assert_eq!(
            t.status,
            TaskStatus::Pending,
            "API-only processes run nothing"
        );
    }
    // Job side: two job-only instances (flag and environment), one doing both.
    let both_port = free_port();
    let jobs_flag = p.start("jobs-flag", 2, &["--no-api"]);
    let jobs_env = p.start("jobs-env", 2, &[]);
    let both = p.start(
        "both",
        2,
        &["--api-addr", &format!("127.0.0.1:{both_port}")],
    );
    wait_listening(both_port, Duration::from_secs(20));
    for i in 0..4 {
        let (s, t) = http(
            both_port,
            "POST",
            "/api/tasks",
            Some(&json!({"job": "work", "args": {"i": 100 + i}})),
            token,
        );
        assert_eq!(s, 201, "{t}");
        ids.push(t["id"].as_str().expect("id").parse().expect("uuid"));
    }
    let mut ran_on = BTreeSet::new();
    for id in &ids {
        let t = wait_terminal(store.as_ref(), *id, Duration::from_secs(30)).await;
        assert_eq!(t.status, TaskStatus::Completed, "{t:?}");
        ran_on.insert(t.instance.clone().unwrap_or_default());
    }
    let runners: BTreeSet<String> = ["both", "jobs-env", "jobs-flag"]
        .into_iter()
        .map(String::from)
        .collect();
    assert!(ran_on.is_subset(&runners), "{ran_on:?}");
    // Only job-running processes are instances; every API sees them all.
    for port in [serve_port, env_port, both_port] {
        let (s, list) = http(port, "GET", "/api/instances", None, token);
        assert_eq!(s, 200, "{list}");
        let names: BTreeSet<String> = list
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|i| i["name"].as_str().map(String::from))
            .collect();
        assert_eq!(names, runners, "port {port}");
        let (s, done) = http(
            port,
            "GET",
            "/api/tasks?status=completed&limit=100",
            None,
            token,
        );
        assert_eq!((s, done.as_array().map(Vec::len)), (200, Some(16)));
    }
    for inst in [jobs_flag, jobs_env, both] {
        assert!(inst.stop().success());
    }
    stop_api(&mut serve);
    stop_api(&mut env_only);
}
