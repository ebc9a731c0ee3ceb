//! Tests with real processes: exit codes, spawn errors, stdin/env/cwd and the
//! shared log and its cap here; deadlines, stops and group cleanup in
//! [`ending`]. Waits poll with a deadline, never a bare sleep.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;
use tokio::runtime::Handle;
use tokio::time::Instant;

use super::*;

mod cost;
mod ending;

/// A runner and a scratch directory for scripts and logs.
struct Fixture {
    dir: TempDir,
    runner: Runner,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().expect("tempdir"),
            runner: Runner::new(Handle::current()).expect("runner"),
        }
    }

    /// Writes an executable `#!/bin/sh` script.
    fn script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    fn spec(&self, program: &Path) -> SpawnSpec {
        let name = program.file_name().and_then(|n| n.to_str()).unwrap_or("x");
        SpawnSpec {
            program: program.to_path_buf(),
            cwd: self.dir.path().to_path_buf(),
            stdin: b"{\"n\":1}".to_vec(),
            env: vec![("JOBSLOT_TASK_ID".to_string(), format!("test-{name}"))],
            env_remove: Vec::new(),
            log_path: self.dir.path().join("logs").join(format!("{name}.log")),
            log_cap: 1 << 20,
            deadline: Instant::now() + Duration::from_secs(30),
            kill_grace: Duration::from_secs(5),
            run_as: None,
            owned_files: Vec::new(),
        }
    }

    /// Starts `spec`, retrying the rare ETXTBSY caused by a concurrent test's
    /// fork still holding a just-written script open.
    async fn start(&self, spec: &SpawnSpec) -> RunHandle {
        for _ in 0..20 {
            match self.runner.start(spec.clone()).await {
                Started::Running(handle) => return handle,
                Started::Failed(e) if e.contains("os error 26") => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Started::Failed(e) | Started::Shortage(e) => {
                    panic!("{} failed to start: {e}", spec.program.display())
                }
            }
        }
        panic!("{} stayed busy", spec.program.display());
    }

    /// Runs `spec` to its end; returns the report and the log's text.
    async fn run(&self, spec: &SpawnSpec) -> (RunReport, String) {
        let report = self.start(spec).await.wait().await;
        let log = std::fs::read_to_string(&spec.log_path).expect("read log");
        (report, log)
    }

    async fn run_script(&self, name: &str, body: &str) -> (RunReport, String) {
        let spec = self.spec(&self.script(name, body));
        self.run(&spec).await
    }
}

/// Polls `check` every 10 ms until it holds or `within` passes.
async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn group_of(pgid: i32) -> Vec<i32> {
    group::live_members(pgid, 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_and_self_inflicted_signals_are_reported_as_such() {
    let fx = Fixture::new();
    for code in [0, 1, 100, 75, 3] {
        let (report, _) = fx
            .run_script(&format!("exit{code}"), &format!("exit {code}"))
            .await;
        assert_eq!(report.outcome, Outcome::Exited(code));
        assert_eq!(report.signaled_at, None);
    }
    let (report, _) = fx.run_script("suicide", "kill -9 $$").await;
    assert_eq!(report.outcome, Outcome::Signaled(9));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_env_and_cwd_reach_the_child() {
    let fx = Fixture::new();
    let (report, log) = fx.run_script("cat", "cat").await;
    assert_eq!(report.outcome, Outcome::Exited(0));
    assert_eq!(log, "{\"n\":1}");

    let mut spec = fx.spec(Path::new("/usr/bin/env"));
    spec.env
        .push(("JOBSLOT_TEST_ADDED".to_string(), "yes".to_string()));
    spec.env_remove.push("PATH".to_string());
    let (report, log) = fx.run(&spec).await;
    assert_eq!(report.outcome, Outcome::Exited(0));
    assert!(log.lines().any(|l| l == "JOBSLOT_TEST_ADDED=yes"), "{log}");
    assert!(!log.lines().any(|l| l.starts_with("PATH=")), "{log}");

    let spec = fx.spec(Path::new("/bin/pwd"));
    let (_, log) = fx.run(&spec).await;
    let here = fx.dir.path().canonicalize().expect("canonical");
    assert_eq!(log.trim_end(), here.to_str().expect("utf-8 path"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_errors_carry_the_os_error() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    let failed = |started: Started| match started {
        Started::Failed(e) => e,
        Started::Shortage(e) => panic!("not a shortage: {e}"),
        Started::Running(h) => panic!("pid {} should not have started", h.pid),
    };
    let missing = fx.spec(&fx.dir.path().join("missing"));
    let e = failed(fx.runner.start(missing).await);
    assert_eq!(e, "No such file or directory (os error 2)");

    let plain = fx.dir.path().join("plain");
    std::fs::write(&plain, "#!/bin/sh\nexit 0\n").expect("write");
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let e = failed(fx.runner.start(fx.spec(&plain)).await);
    assert_eq!(e, "Permission denied (os error 13)");

    let bad = fx.dir.path().join("bad-interpreter");
    std::fs::write(&bad, "#!/nonexistent/interpreter\n").expect("write");
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let e = failed(fx.runner.start(fx.spec(&bad)).await);
    assert_eq!(e, "No such file or directory (os error 2)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_and_stderr_share_the_log_in_order() {
    let fx = Fixture::new();
    let body = "echo out1; echo err1 >&2; echo out2; echo err2 >&2";
    let (report, log) = fx.run_script("both", body).await;
    assert_eq!(report.outcome, Outcome::Exited(0));
    assert_eq!(log, "out1\nerr1\nout2\nerr2\n");
    assert_eq!(report.log_bytes, log.len() as u64);
    assert!(!report.log_truncated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_cap_truncates_once_and_a_flooding_child_still_finishes() {
    let fx = Fixture::new();
    let mut spec = fx.spec(&fx.script("flood", "yes x | head -c 20000000; echo done"));
    spec.log_cap = 1000;
    let began = Instant::now();
    let (report, log) = fx.run(&spec).await;
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(report.outcome, Outcome::Exited(0));
    assert!(report.log_truncated);
    assert_eq!(report.log_bytes, 1000);
    assert_eq!(
        log.len(),
        1000 + "[jobslot] log truncated at 1000 bytes\n".len()
    );
    assert!(
        log.ends_with("x\n[jobslot] log truncated at 1000 bytes\n"),
        "{log}"
    );
}

#[test]
fn the_machines_errors_are_shortages_and_the_jobs_are_failures() {
    for errno in [libc::EMFILE, libc::ENFILE, libc::EAGAIN, libc::ENOMEM] {
        let e = std::io::Error::from_raw_os_error(errno);
        assert!(
            matches!(spawn::failure(e.to_string(), &e), Started::Shortage(_)),
            "{e}"
        );
    }
    for errno in [libc::ENOENT, libc::EACCES, libc::ENOEXEC, libc::E2BIG] {
        let e = std::io::Error::from_raw_os_error(errno);
        assert!(
            matches!(spawn::failure(e.to_string(), &e), Started::Failed(_)),
            "{e}"
        );
    }
}

/// 2 MiB of stdin is written off the spawner thread: the spawn returns while
/// the child has not read yet, the child gets every byte, and a child that
/// never reads ends all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_mib_of_stdin_neither_blocks_the_spawner_nor_a_child_that_never_reads() {
    let fx = Fixture::new();
    let big = vec![b'x'; 2 * 1024 * 1024];
    let mut spec = fx.spec(&fx.script("late_reader", "sleep 1; wc -c"));
    spec.stdin = big.clone();
    let begun = Instant::now();
    let handle = fx.start(&spec).await;
    assert!(
        begun.elapsed() < Duration::from_millis(900),
        "the spawn waited for the child to read: {:?}",
        begun.elapsed()
    );
    let report = handle.wait().await;
    assert_eq!(report.outcome, Outcome::Exited(0));
    let log = std::fs::read_to_string(&spec.log_path).expect("log");
    assert_eq!(log.trim(), "2097152");

    let mut spec = fx.spec(&fx.script("never_reads", "sleep 0.2"));
    spec.stdin = big;
    let (report, _) = tokio::time::timeout(Duration::from_secs(10), fx.run(&spec))
        .await
        .expect("a child that never reads its stdin still ends");
    assert_eq!(report.outcome, Outcome::Exited(0));
}
