//! Faults on the process side (issue 15): result files that are not files,
//! args too big for the environment, jobslot as PID 1, and a machine short of
//! descriptors. Real `jobslot run` processes throughout.

mod common;
use common::*;
use jobslot::model::TaskStatus;
use std::time::{Duration, Instant};

/// A job that leaves a FIFO or a link to `/dev/zero` at its result path ends
/// (completed: it exits 0) without a result and with a warning in its log,
/// and the instance still shuts down promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_or_a_link_to_dev_zero_as_result_file_neither_hangs_nor_floods() {
    let p = Project::new();
    p.job("fifo", "mkfifo \"$JOBSLOT_RESULT_FILE\"")
        .job("zero", "ln -s /dev/zero \"$JOBSLOT_RESULT_FILE\"");
    let inst = p.start("a", 4, &[]);
    let store = p.store().await;
    let fifo = enqueue(&p, &["fifo"]);
    let zero = enqueue(&p, &["zero"]);
    for (id, why) in [(fifo, "is a FIFO"), (zero, "is a symbolic link")] {
        let t = wait_terminal(store.as_ref(), id, Duration::from_secs(10)).await;
        assert_eq!(t.status, TaskStatus::Completed, "{t:?}");
        assert_eq!(t.result, None);
        let log = std::fs::read_to_string(t.log.as_deref().expect("a local log")).expect("log");
        assert!(
            log.contains("[jobslot] warning: the result file ($JOBSLOT_RESULT_FILE)")
                && log.contains(why),
            "log of {id}: {log:?}"
        );
        let path = p.path().join(format!(".jobslot/logs/{id}.result.json"));
        assert!(
            std::fs::symlink_metadata(&path).is_err(),
            "{} is removed",
            path.display()
        );
    }
    let begun = Instant::now();
    let status = inst.stop();
    assert!(status.success(), "{status:?}");
    assert!(
        begun.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        begun.elapsed()
    );
}

/// Args of `n` bytes of compact JSON: `{"blob":"xxx…"}`.
fn args_of(n: usize) -> serde_json::Value {
    let overhead = r#"{"blob":""}"#.len();
    serde_json::json!({ "blob": "x".repeat(n - overhead) })
}

on_both!(one_mib_of_args_reaches_the_job_on_stdin);
async fn one_mib_of_args_reaches_the_job_on_stdin(backend: Backend) {
    let p = Project::on(backend);
    // What the job read on stdin, and how long its JOBSLOT_ARGS was.
    p.job(
        "echo_args",
        "cat > \"$JOBSLOT_PROJECT/got-$JOBSLOT_TASK_ID.json\"\nprintf '{\"env\": %d}' \"${#JOBSLOT_ARGS}\" > \"$JOBSLOT_RESULT_FILE\"",
    );
    let _inst = p.start("a", 4, &[]);
    let store = p.store().await;
    let big = args_of(1 << 20);
    let inserted = store
        .task_insert(new_task("echo_args", big.clone()))
        .await
        .expect("insert")
        .id;
    let check = |id, args: &serde_json::Value, env: usize| {
        let (store, p, args) = (store.clone(), &p, args.clone());
        async move {
            let t = wait_terminal(store.as_ref(), id, Duration::from_secs(30)).await;
            assert_eq!(t.status, TaskStatus::Completed, "{:?}", t.reason);
            let got = std::fs::read(p.path().join(format!("got-{id}.json"))).expect("stdin copy");
            let got: serde_json::Value = serde_json::from_slice(&got).expect("stdin was JSON");
            assert!(got == args, "task {id} read other args on stdin");
            assert_eq!(t.result, Some(serde_json::json!({ "env": env })), "{id}");
        }
    };
    check(inserted, &big, 0).await;
    // Through the CLI: a command-line argument cannot hold 1 MiB, a file can.
    let file = p.path().join("big-args.json");
    std::fs::write(&file, big.to_string()).expect("write args");
    let from_cli = enqueue(
        &p,
        &["echo_args", "--args", &format!("@{}", file.display())],
    );
    check(from_cli, &big, 0).await;
    // Small args are in JOBSLOT_ARGS too.
    let small = enqueue(&p, &["echo_args", "--args", r#"{"n": 1}"#]);
    check(small, &serde_json::json!({"n": 1}), 7).await;
}

/// Over 2 MiB of args is refused with a clear message by the CLI and the
/// API; exactly 2 MiB is accepted by both (the API's body limit has room).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn args_over_two_mib_are_refused_at_enqueue_by_the_cli_and_the_api() {
    let p = Project::new();
    p.job("noop", "exit 0");
    let limit = 2 * 1024 * 1024;
    let at_limit = p.path().join("at-limit.json");
    let over = p.path().join("over.json");
    std::fs::write(&at_limit, args_of(limit).to_string()).expect("write");
    std::fs::write(&over, args_of(limit + 1).to_string()).expect("write");

    let out = p.cli(&["enqueue", "noop", "--args", &format!("@{}", over.display())]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("args are 2097153 bytes of JSON, over the limit of 2097152 bytes"),
        "{stderr}"
    );
    enqueue(&p, &["noop", "--args", &format!("@{}", at_limit.display())]);
    // From stdin too.
    let mut child = p
        .cmd()
        .args(["enqueue", "noop", "--args", "@-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("enqueue");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(args_of(limit + 1).to_string().as_bytes())
            .expect("write stdin");
    }
    let out = child.wait_with_output().expect("enqueue ends");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("over the limit of 2097152 bytes"));

    let port = common::http::free_port();
    let mut api = common::http::serve(&p, port);
    let body = |args| serde_json::json!({"job": "noop", "args": args});
    let (status, answer) = common::http::http(
        port,
        "POST",
        "/api/tasks",
        Some(&body(args_of(limit + 1))),
        None,
    );
    assert_eq!(status, 400, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("args are 2097153 bytes of JSON, over the limit of 2097152 bytes"),
        "{answer}"
    );
    let (status, answer) = common::http::http(
        port,
        "POST",
        "/api/tasks",
        Some(&body(args_of(limit))),
        None,
    );
    assert_eq!(status, 201, "{answer}");
    common::http::stop_api(&mut api);
}

on_both!(a_callback_with_large_childrens_results_is_created_and_runs);
async fn a_callback_with_large_childrens_results_is_created_and_runs(backend: Backend) {
    let p = Project::on(backend);
    // Three children, each with a result of about 900 KB: 2.7 MB together.
    p.job(
        "fan",
        &format!(
            "for i in 1 2 3; do '{}' enqueue big_result --parent \"$JOBSLOT_TASK_ID\" > /dev/null || exit 3; done",
            bin().display()
        ),
    );
    p.job(
        "big_result",
        "head -c 900000 /dev/zero | tr '\\0' x | sed 's/.*/\"&\"/' > \"$JOBSLOT_RESULT_FILE\"",
    );
    p.job("report", "cat > \"$JOBSLOT_PROJECT/callback-args.json\"");
    p.schema("jobs.toml", "[jobs.fan]\non_children_done = \"report\"\n");
    let _inst = p.start("a", 4, &[]);
    let store = p.store().await;
    let parent = enqueue(&p, &["fan"]);
    let t = wait_terminal(store.as_ref(), parent, Duration::from_secs(60)).await;
    assert_eq!(t.status, TaskStatus::Completed, "{t:?}");
    let callback = wait_for("the callback", Duration::from_secs(30), || async {
        tasks_of(store.as_ref(), "report")
            .await
            .into_iter()
            .find(|c| c.status.is_terminal())
    })
    .await;
    assert_eq!(
        callback.status,
        TaskStatus::Completed,
        "{:?}",
        callback.reason
    );
    let text = std::fs::read_to_string(p.path().join("callback-args.json")).expect("args");
    assert!(text.len() <= 2 * 1024 * 1024, "{} bytes", text.len());
    let args: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(args["results_truncated"], true);
    let children = args["children"].as_array().expect("children");
    assert_eq!(children.len(), 3);
    let cut = children
        .iter()
        .filter(|c| c["result_truncated"] == true && c["result"].is_null())
        .count();
    let kept = children
        .iter()
        .filter(|c| c["result"].as_str().is_some_and(|r| r.len() == 900_000))
        .count();
    assert_eq!(
        (cut, kept),
        (1, 2),
        "{:?}",
        children
            .iter()
            .map(|c| &c["result_truncated"])
            .collect::<Vec<_>>()
    );
}

/// Whether a tool needed by a test is installed. Under `CI=true` a missing
/// tool fails the test; elsewhere it is skipped with a message.
fn tool_or_skip(tool: &str) -> bool {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{tool} is not installed (CI=true: tests that need it fail rather than skip)");
    }
    if !found {
        eprintln!("skipping: {tool} is not installed");
    }
    found
}

/// (pid, parent pid, state) of every process on the host.
fn host_processes() -> Vec<(i32, i32, u8)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let mut rest = stat[stat.rfind(')')? + 1..].split_ascii_whitespace();
            let state = *rest.next()?.as_bytes().first()?;
            let ppid = rest.next()?.parse().ok()?;
            Some((pid, ppid, state))
        })
        .collect()
}

/// The zombies among the descendants of `root`, seen from the host's /proc.
fn zombie_descendants(root: i32) -> Vec<i32> {
    let all = host_processes();
    let mut tree = vec![root];
    let mut zombies = Vec::new();
    while let Some(parent) = tree.pop() {
        for (pid, ppid, state) in &all {
            if *ppid == parent {
                tree.push(*pid);
                if *state == b'Z' {
                    zombies.push(*pid);
                }
            }
        }
    }
    zombies
}

/// jobslot as PID 1 of a PID namespace (a container without an init): 200
/// tasks that each leave a daemonized grandchild behind leave no zombie, and
/// each task still gets its own outcome (no leader is reaped by mistake).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_pid_1_jobslot_reaps_what_tasks_leave_behind_and_only_that() {
    if !tool_or_skip("unshare") || !tool_or_skip("setsid") {
        return;
    }
    let p = Project::new();
    let daemon = "setsid sleep 0.3 </dev/null >/dev/null 2>&1 &";
    p.job("leave_ok", &format!("{daemon}\nexit 0"));
    p.job("leave_fail", &format!("{daemon}\nexit 3"));
    let store = p.store().await;
    let mut ids = Vec::new();
    for i in 0..200 {
        let job = if i % 2 == 0 { "leave_ok" } else { "leave_fail" };
        ids.push((
            job,
            store
                .task_insert(new_task(job, serde_json::json!({})))
                .await
                .expect("insert")
                .id,
        ));
    }
    let log = std::fs::File::create(p.path().join("pid1.stderr")).expect("log");
    let mut unshare = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(bin())
        .arg("--project")
        .arg(p.path())
        .args(["run", "--name", "pid1", "--slots", "16"])
        .args(["--poll-interval", "200ms", "--heartbeat-interval", "100ms"])
        .env_remove("JOBSLOT_DATABASE")
        .env("JOBSLOT_API_DISABLED", "true")
        .env("JOBSLOT_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start unshare");
    let upid = unshare.id() as i32;
    let guard = KillOnDrop(upid);
    let jobslot = wait_for(
        "jobslot to start as PID 1",
        Duration::from_secs(10),
        || async {
            host_processes()
                .into_iter()
                .find(|(_, ppid, _)| *ppid == upid)
                .map(|(pid, _, _)| pid)
        },
    )
    .await;
    let status = std::fs::read_to_string(format!("/proc/{jobslot}/status")).expect("status");
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("NSpid:") && l.trim_end().ends_with("\t1")),
        "jobslot is PID 1 in its namespace: {status}"
    );
    for (job, id) in &ids {
        let t = wait_terminal(store.as_ref(), *id, Duration::from_secs(60)).await;
        match *job {
            "leave_ok" => assert_eq!(t.status, TaskStatus::Completed, "{t:?}"),
            _ => {
                assert_eq!(t.status, TaskStatus::Failed, "{t:?}");
                assert_eq!(t.reason.as_deref(), Some("exit 3"), "{t:?}");
            }
        }
    }
    // The grandchildren sleep 0.3 s, then are reaped within a sweep or two.
    let left = Instant::now();
    loop {
        let zombies = zombie_descendants(jobslot);
        if zombies.is_empty() {
            break;
        }
        assert!(
            left.elapsed() < Duration::from_secs(5),
            "{} zombies left among jobslot's descendants: {zombies:?}\n{}",
            zombies.len(),
            p.stderr_of("pid1")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(jobslot),
        nix::sys::signal::Signal::SIGTERM,
    );
    assert!(wait_child(&mut unshare, Duration::from_secs(20)).success());
    drop(guard);
}

/// Kills a process (and with it, for `unshare`, its PID namespace) if the
/// test fails before stopping it.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

on_both!(a_shortage_of_descriptors_delays_tasks_and_fails_none);
async fn a_shortage_of_descriptors_delays_tasks_and_fails_none(backend: Backend) {
    let p = Project::on(backend);
    p.job("nap", "sleep 1");
    let store = p.store().await;
    let mut ids = Vec::new();
    for _ in 0..400 {
        ids.push(
            store
                .task_insert(new_task("nap", serde_json::json!({})))
                .await
                .expect("insert")
                .id,
        );
    }
    let log = std::fs::File::create(p.path().join("short.stderr")).expect("log");
    let mut cmd = p.cmd();
    cmd.args(["run", "--name", "short", "--slots", "400"])
        .args(["--poll-interval", "200ms", "--heartbeat-interval", "100ms"])
        .env("JOBSLOT_API_DISABLED", "true")
        .stdout(std::process::Stdio::null())
        .stderr(log);
    // 256 open files, soft and hard: raising the soft limit cannot help.
    // SAFETY: setrlimit is async-signal-safe and touches only its argument,
    // which lives on the child's stack.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            let lim = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 256,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let _inst = Instance {
        child: cmd.spawn().expect("start instance"),
        name: "short".into(),
    };
    let mut ended = Vec::new();
    for id in &ids {
        ended.push(wait_terminal(store.as_ref(), *id, Duration::from_secs(180)).await);
    }
    let failed: Vec<_> = ended
        .iter()
        .filter(|t| t.status != TaskStatus::Completed)
        .map(|t| format!("{} {:?}", t.status, t.reason))
        .collect();
    assert!(
        failed.is_empty(),
        "{} did not complete: {failed:?}",
        failed.len()
    );
    assert!(
        ended.iter().all(|t| t.attempt == 1),
        "a shortage uses up no attempt"
    );
    let short = ended
        .iter()
        .filter(|t| {
            t.log
                .as_deref()
                .and_then(|l| std::fs::read_to_string(l).ok())
                .is_some_and(|l| l.contains("the machine is short of resources"))
        })
        .count();
    assert!(short > 0, "no task's log tells of the shortage");
    let stderr = p.stderr_of("short");
    assert!(
        stderr.contains("the open-files limit"),
        "the instance warns that 400 slots need more descriptors: {stderr}"
    );
    eprintln!("{short} of 400 tasks went back to pending at least once");
}
