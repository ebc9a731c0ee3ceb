//! Test helpers: temporary projects, real `jobslot` processes, waits with deadlines.
#![allow(dead_code)]
pub mod http;
pub mod procs;
pub mod s3;

use jobslot::model::{Task, TaskStatus};
use jobslot::store::{AfterLink, NewTask, Store, TaskListParams};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The jobslot binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_jobslot"))
}

/// The database a test project uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `.jobslot/jobslot.db` in the project.
    Sqlite,
    /// A schema of its own in the test PostgreSQL database.
    Postgres,
}

/// The PostgreSQL database tests use (`JOBSLOT_TEST_POSTGRES`, default the local one).
pub fn postgres_base() -> String {
    std::env::var("JOBSLOT_TEST_POSTGRES")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// Whether PostgreSQL answers. Under `CI=true` an unreachable server fails the
/// test; elsewhere the test is skipped with a message.
pub fn postgres_or_skip() -> bool {
    let base = postgres_base();
    let hostport = base
        .split('@')
        .next_back()
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("127.0.0.1:5432")
        .to_string();
    let addr = if hostport.contains(':') {
        hostport
    } else {
        format!("{hostport}:5432")
    };
    let reachable = std::net::ToSocketAddrs::to_socket_addrs(&addr.as_str())
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok());
    if reachable {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "PostgreSQL is unreachable at {addr} (CI=true: tests that need it fail rather than skip)"
        );
    }
    eprintln!("skipping: PostgreSQL is unreachable at {addr}");
    false
}

/// Defines `$case::sqlite` and `$case::postgres` tests running
/// `async fn $case(backend: Backend)` on each backend.
#[macro_export]
macro_rules! on_both {
    ($case:ident) => {
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$case($crate::common::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::common::postgres_or_skip() {
                    super::$case($crate::common::Backend::Postgres).await
                }
            }
        }
    };
}

/// A temporary project directory with jobs/ and schema/.
pub struct Project {
    pub dir: tempfile::TempDir,
    /// Environment given to every `jobslot` command of this project.
    pub env: std::sync::Mutex<Vec<(String, String)>>,
    /// The PostgreSQL schema of this project, when it uses PostgreSQL.
    pub pg_schema: Option<String>,
}

impl Project {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("jobs")).expect("jobs dir");
        std::fs::create_dir_all(dir.path().join("schema")).expect("schema dir");
        Self {
            dir,
            env: std::sync::Mutex::new(Vec::new()),
            pg_schema: None,
        }
    }

    /// A project on the given backend (PostgreSQL: a fresh schema).
    pub fn on(backend: Backend) -> Self {
        let mut p = Self::new();
        if backend == Backend::Postgres {
            let schema = format!("js_{}", Uuid::now_v7().simple());
            let base = postgres_base();
            let sep = if base.contains('?') { '&' } else { '?' };
            p.set_env(
                "JOBSLOT_DATABASE",
                &format!("{base}{sep}options=-csearch_path%3D{schema}"),
            );
            p.pg_schema = Some(schema);
        }
        p
    }

    /// Sets an environment variable for every later `jobslot` command.
    pub fn set_env(&self, key: &str, value: &str) {
        let mut env = self.env.lock().expect("env lock");
        env.retain(|(k, _)| k != key);
        env.push((key.to_string(), value.to_string()));
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn db_url(&self) -> String {
        let env = self.env.lock().expect("env lock");
        match env.iter().find(|(k, _)| k == "JOBSLOT_DATABASE") {
            Some((_, url)) => url.clone(),
            None => format!(
                "sqlite://{}",
                self.path().join(".jobslot/jobslot.db").display()
            ),
        }
    }

    /// Writes an executable shell job.
    pub fn job(&self, name: &str, body: &str) -> &Self {
        let p = self.path().join("jobs").join(format!("{name}.sh"));
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write job");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        self
    }

    /// Writes a schema file.
    pub fn schema(&self, file: &str, text: &str) -> &Self {
        std::fs::write(self.path().join("schema").join(file), text).expect("write schema");
        self
    }

    /// A `jobslot` command for this project.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.arg("--project").arg(self.path());
        c.env_remove("JOBSLOT_DATABASE");
        c.env("JOBSLOT_LOG", "info");
        for (k, v) in self.env.lock().expect("env lock").iter() {
            c.env(k, v);
        }
        c
    }

    /// Runs a CLI command to completion.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run jobslot")
    }

    /// Runs a CLI command with --json and parses its output.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let out = self
            .cmd()
            .arg("--json")
            .args(args)
            .output()
            .expect("run jobslot");
        assert!(
            out.status.success(),
            "jobslot {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("json output")
    }

    /// Starts `jobslot run` with fast test settings plus `extra` args.
    pub fn start(&self, name: &str, slots: u32, extra: &[&str]) -> Instance {
        let log = std::fs::File::create(self.path().join(format!("{name}.stderr"))).expect("log");
        let mut defaults = vec![];
        for (flag, value) in [
            ("--poll-interval", "200ms"),
            ("--heartbeat-interval", "100ms"),
        ] {
            if !extra.contains(&flag) {
                defaults.extend([flag, value]);
            }
        }
        let mut cmd = self.cmd();
        // Tests start many instances; only those given an address serve the API.
        if !extra.contains(&"--api-addr") && !extra.contains(&"--no-api") {
            cmd.env("JOBSLOT_API_DISABLED", "true");
        }
        let child = cmd
            .args(["run", "--name", name, "--slots", &slots.to_string()])
            .args(defaults)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start instance");
        Instance {
            child,
            name: name.to_string(),
        }
    }

    pub async fn store(&self) -> Arc<dyn Store> {
        jobslot::store::open(&self.db_url())
            .await
            .expect("open store")
    }

    pub fn stderr_of(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join(format!("{name}.stderr"))).unwrap_or_default()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if let Some(schema) = &self.pg_schema {
            let _ = Command::new("psql")
                .arg(postgres_base())
                .args([
                    "-q",
                    "-c",
                    &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A running `jobslot run` process.
pub struct Instance {
    pub child: Child,
    pub name: String,
}

impl Instance {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig);
    }

    /// SIGTERM, then waits for the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let status = wait_child(&mut self.child, Duration::from_secs(30));
        std::mem::forget(self);
        status
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_child(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return s;
        }
        assert!(
            start.elapsed() < limit,
            "process did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until `f` returns Some, polling; panics with `what` after `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A task to insert with defaults.
pub fn new_task(job: &str, args: Value) -> NewTask {
    let now = chrono::Utc::now();
    NewTask {
        id: Uuid::now_v7(),
        job: job.to_string(),
        queue: "default".into(),
        priority: 0,
        slots: 1,
        max_execution_time: Duration::from_secs(60),
        kill_grace: Duration::from_secs(1),
        schedule: None,
        recurrence: None,
        after: AfterLink::None,
        parent: None,
        args,
        metadata: json!({}),
        due_at: now,
        created_at: now,
        attempt: 1,
        unique_key: None,
    }
}

/// Enqueues through the CLI and returns the id.
pub fn enqueue(p: &Project, args: &[&str]) -> Uuid {
    let out = p.cli(&[&["enqueue"], args].concat());
    assert!(
        out.status.success(),
        "enqueue failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Uuid::parse_str(String::from_utf8_lossy(&out.stdout).trim()).expect("id printed")
}

/// Waits for a task to reach a terminal state.
pub async fn wait_terminal(store: &dyn Store, id: Uuid, limit: Duration) -> Task {
    wait_for(&format!("task {id} to end"), limit, || async {
        store
            .task_get(id)
            .await
            .ok()
            .flatten()
            .filter(|t| t.status.is_terminal())
    })
    .await
}

/// Waits for a task to be running.
pub async fn wait_running(store: &dyn Store, id: Uuid, limit: Duration) -> Task {
    wait_for(&format!("task {id} to run"), limit, || async {
        store
            .task_get(id)
            .await
            .ok()
            .flatten()
            .filter(|t| t.status == TaskStatus::Running)
    })
    .await
}

/// Every task of a job.
pub async fn tasks_of(store: &dyn Store, job: &str) -> Vec<Task> {
    store
        .task_list(TaskListParams {
            job: Some(job.into()),
            limit: 100_000,
            ..Default::default()
        })
        .await
        .expect("list")
}

/// Counts tasks in a status.
pub fn count(tasks: &[Task], s: TaskStatus) -> usize {
    tasks.iter().filter(|t| t.status == s).count()
}

/// Whether any process is in process group `pgid`.
pub fn group_alive(pgid: i32) -> bool {
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), None).is_ok()
}

/// Whether a process with this pid exists (and is not a zombie).
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Proof from the jobs' own output (one task id per line in `out`): every task in
/// `ids` ran exactly once, and nothing else ran.
pub fn assert_each_ran_once(out: &Path, ids: &[Uuid]) {
    let text = std::fs::read_to_string(out).expect("output");
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for line in text.lines() {
        *seen.entry(line.trim()).or_default() += 1;
    }
    assert_eq!(seen.len(), ids.len(), "distinct task ids in the output");
    assert!(seen.values().all(|n| *n == 1), "a task ran twice");
    for id in ids {
        assert_eq!(seen.get(id.to_string().as_str()), Some(&1), "task {id}");
    }
}

/// Waits until a task's log is recorded as uploaded; returns the URL.
pub async fn wait_uploaded(store: &dyn jobslot::store::Store, id: Uuid, limit: Duration) -> String {
    wait_for(&format!("log of {id} uploaded"), limit, || async {
        store
            .task_get(id)
            .await
            .ok()
            .flatten()
            .and_then(|t| t.log)
            .filter(|l| l.starts_with("s3://"))
    })
    .await
}
