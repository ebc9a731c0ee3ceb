//! Shutdown with open streams (issue 15, case 6): log streams open on a
//! pending task and on a running one end when shutdown starts, so SIGTERM
//! stops `jobslot run` and `jobslot serve` within the shutdown timeout plus
//! 1 s; a second signal always stops the process at once.
mod common;

use common::http::{Events, free_port, wait_listening};
use common::*;
use nix::sys::signal::Signal;
use std::process::Child;
use std::time::{Duration, Instant};

/// The shutdown timeout the tests give.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(500);

fn project() -> Project {
    let p = Project::new();
    p.job("sleeper", "echo started; exec sleep 30");
    p.job(
        "stubborn",
        "trap '' TERM; echo started; while :; do sleep 1; done",
    );
    p.schema(
        "s.toml",
        "[jobs.sleeper]\nkill_grace = \"200ms\"\n\n[jobs.stubborn]\nkill_grace = \"1h\"\n",
    );
    p
}

/// Opens log streams on a task that is not due yet and on a running one;
/// each has sent its headers (and the running one its first line).
async fn open_streams(p: &Project, port: u16, job: &str) -> Vec<Events> {
    let store = p.store().await;
    let pending = enqueue(p, &["sleeper", "--in", "1h"]);
    let running = enqueue(p, &[job]);
    wait_running(store.as_ref(), running, Duration::from_secs(20)).await;
    let waiting = Events::open(port, &format!("/api/tasks/{pending}/log/stream"), None);
    let mut following = Events::open(port, &format!("/api/tasks/{running}/log/stream"), None);
    let (name, data) = following.next().expect("the running task's log");
    assert_eq!(name, "log", "{data}");
    vec![waiting, following]
}

/// Sends `sig` and waits for the exit; returns the status and how long it took.
fn stop(child: &mut Child, sig: Signal) -> (std::process::ExitStatus, Duration) {
    let start = Instant::now();
    signal(child, sig);
    let status = wait_child(child, Duration::from_secs(60));
    (status, start.elapsed())
}

fn signal(child: &Child, sig: Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig);
}

/// What is left of a stream once its server is gone: it ended with an
/// `error` event saying the server is shutting down.
fn assert_ended_by_shutdown(mut events: Events) {
    let mut last = None;
    while let Some(event) = events.next() {
        last = Some(event);
    }
    let (name, data) = last.expect("an event before the end");
    assert_eq!(name, "error", "{data}");
    assert_eq!(data["code"], "shutdown", "{data}");
}

fn start_run(p: &Project, name: &str, port: u16, shutdown_timeout: &str) -> Instance {
    let addr = format!("127.0.0.1:{port}");
    let args = ["--api-addr", &addr, "--shutdown-timeout", shutdown_timeout];
    let i = p.start(name, 2, &args);
    wait_listening(port, Duration::from_secs(20));
    i
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_stops_within_its_shutdown_timeout_with_streams_open() {
    let p = project();
    let port = free_port();
    let timeout = format!("{}ms", SHUTDOWN_TIMEOUT.as_millis());
    let mut i = start_run(&p, "a", port, &timeout);
    let streams = open_streams(&p, port, "sleeper").await;
    let (status, took) = stop(&mut i.child, Signal::SIGTERM);
    assert!(status.success(), "exit {status}: {}", p.stderr_of("a"));
    assert!(
        took < SHUTDOWN_TIMEOUT + Duration::from_secs(1),
        "stopped in {took:?}"
    );
    for s in streams {
        assert_ended_by_shutdown(s);
    }
}

fn start_serve(p: &Project, port: u16) -> Child {
    let timeout = format!("{}ms", SHUTDOWN_TIMEOUT.as_millis());
    common::http::serve_with(p, port, &["--shutdown-timeout", &timeout])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_stops_within_its_shutdown_timeout_with_streams_open() {
    let p = project();
    let runner = p.start("runner", 2, &["--no-api", "--shutdown-timeout", "500ms"]);
    let port = free_port();
    let mut api = start_serve(&p, port);
    let streams = open_streams(&p, port, "sleeper").await;
    let (status, took) = stop(&mut api, Signal::SIGTERM);
    assert!(status.success(), "serve exited {status}");
    assert!(
        took < SHUTDOWN_TIMEOUT + Duration::from_secs(1),
        "stopped in {took:?}"
    );
    for s in streams {
        assert_ended_by_shutdown(s);
    }
    assert!(runner.stop().success());
}

/// A task that ignores SIGTERM, with an hour of kill grace, holds a graceful
/// shutdown; the second signal stops the process at once all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_stops_run_at_once() {
    let p = project();
    let port = free_port();
    let mut i = start_run(&p, "b", port, "1h");
    let _streams = open_streams(&p, port, "stubborn").await;
    signal(&i.child, Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        i.child.try_wait().expect("wait").is_none(),
        "still finishing its task after the first signal"
    );
    let (_, took) = stop(&mut i.child, Signal::SIGINT);
    assert!(took < Duration::from_secs(3), "stopped in {took:?}");
}
