//! Starting together (issue 15, case 11): ten `jobslot run` / `jobslot serve`
//! processes released at the same instant on a new database (and again on the
//! same, now existing, database) all come up, and none exits with an error.
mod common;

use common::http::{free_port, request};
use common::{Backend, Project, bin, wait_child};
use jobslot::model::TaskStatus;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Processes per round: `RUNS` instances, the rest `jobslot serve`.
const PROCESSES: usize = 10;
const RUNS: usize = 5;

/// One process of a round.
struct Started {
    child: Child,
    label: String,
    /// The API port it serves, if any.
    port: Option<u16>,
    stderr: std::path::PathBuf,
}

impl Started {
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn project(backend: Backend) -> Project {
    let p = Project::on(backend);
    p.job("noop", "exit 0");
    p.schema(
        "race.toml",
        r#"
[jobs.noop]
max_execution_time = "5s"

[[schedules]]
name = "hourly"
job = "noop"
every = "1h"
start_at = "2999-01-01T00:00:00Z"
"#,
    );
    p
}

/// Spawns the round's processes, each blocked on a line of `fifo`, then
/// releases them all with one write.
fn start_together(p: &Project, round: usize) -> Vec<Started> {
    let fifo = p.path().join(format!("go-{round}"));
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    // Held open for writing (and reading), so the processes' opens return at
    // once and their reads wait for the release.
    let mut gate = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .expect("open fifo");
    let mut started = Vec::new();
    for i in 0..PROCESSES {
        let label = format!("r{round}p{i}");
        let (args, port): (Vec<String>, Option<u16>) = if i < RUNS {
            let mut args: Vec<String> = [
                "run",
                "--name",
                &label,
                "--slots",
                "1",
                "--poll-interval",
                "200ms",
                "--heartbeat-interval",
                "100ms",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            if i % 2 == 0 {
                args.push("--no-api".into());
                (args, None)
            } else {
                let port = free_port();
                args.extend(["--api-addr".into(), format!("127.0.0.1:{port}")]);
                (args, Some(port))
            }
        } else {
            let port = free_port();
            (
                vec![
                    "serve".into(),
                    "--api-addr".into(),
                    format!("127.0.0.1:{port}"),
                ],
                Some(port),
            )
        };
        let stderr = p.path().join(format!("{label}.stderr"));
        let mut cmd = Command::new("sh");
        cmd.args(["-c", r#"read _ < "$0" && exec "$@""#])
            .arg(&fifo)
            .arg(bin())
            .arg("--project")
            .arg(p.path())
            .args(&args)
            .env_remove("JOBSLOT_DATABASE")
            .env("JOBSLOT_LOG", "info");
        for (k, v) in p.env.lock().expect("env lock").iter() {
            cmd.env(k, v);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn");
        started.push(Started {
            child,
            label,
            port,
            stderr,
        });
    }
    // Let every shell reach its read, then release them with one write.
    std::thread::sleep(Duration::from_millis(300));
    gate.write_all(&[b'\n'; PROCESSES]).expect("release");
    started
}

/// Whether the process is up: an instance has logged its start (registered,
/// schema applied), an API answers its health route.
fn is_up(s: &Started) -> bool {
    if let Some(port) = s.port {
        let listening = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if !listening || request(port, "GET", "/api/health", None, None).status != 200 {
            return false;
        }
    }
    !is_run(s) || s.stderr().contains("instance started")
}

fn is_run(s: &Started) -> bool {
    s.label
        .rsplit_once('p')
        .and_then(|(_, i)| i.parse::<usize>().ok())
        .is_some_and(|i| i < RUNS)
}

/// Releases one round on `p` and checks that every process comes up and
/// stops cleanly.
async fn round(p: &Project, round: usize) {
    let mut started = start_together(p, round);
    let limit = Duration::from_secs(30);
    let begin = Instant::now();
    let mut up = vec![false; started.len()];
    while up.iter().any(|u| !u) {
        for (i, s) in started.iter_mut().enumerate() {
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!(
                    "round {round}: {} exited with {status} before coming up:\n{}",
                    s.label,
                    s.stderr()
                );
            }
            if !up[i] {
                up[i] = is_up(s);
            }
        }
        assert!(
            begin.elapsed() < limit,
            "round {round}: not up within {limit:?}: {:?}",
            started
                .iter()
                .zip(&up)
                .filter(|(_, u)| !**u)
                .map(|(s, _)| format!("{}: {}", s.label, s.stderr()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every instance registered, and the schedule has one live occurrence.
    let store = p.store().await;
    let instances = store.instance_list().await.expect("instances");
    for s in started.iter().filter(|s| is_run(s)) {
        assert!(
            instances
                .iter()
                .any(|i| i.name == s.label && i.stopped_at.is_none()),
            "round {round}: {} is registered",
            s.label
        );
    }
    let live: Vec<_> = common::tasks_of(store.as_ref(), "noop")
        .await
        .into_iter()
        .filter(|t| t.status == TaskStatus::Pending)
        .collect();
    assert_eq!(live.len(), 1, "round {round}: one live occurrence");
    for s in &started {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(s.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    for s in &mut started {
        let status = wait_child(&mut s.child, Duration::from_secs(20));
        assert!(
            status.success(),
            "round {round}: {} exited with {status}:\n{}",
            s.label,
            s.stderr()
        );
    }
}

/// Rounds on new databases, then one more on the last (existing) one. A
/// round of ten on a new SQLite file failed about once in fifteen before the
/// fix, hence more rounds there.
async fn processes_started_together_all_come_up(backend: Backend) {
    let rounds = match backend {
        Backend::Sqlite => 12,
        Backend::Postgres => 3,
    };
    let mut last = None;
    for r in 0..rounds {
        let p = project(backend);
        round(&p, r).await;
        last = Some(p);
    }
    if let Some(p) = last {
        round(&p, rounds).await;
    }
}

on_both!(processes_started_together_all_come_up);
