//! Isolating jobs from the scheduler, and running jobs as another user
//! (issue 16), with real `jobslot` processes. Most cases need root (to switch
//! users and to run jobslot as `nobody`): without it they fail under
//! `CI=true` and are skipped elsewhere.

mod common;
use common::*;
use jobslot::model::TaskStatus;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

const NOBODY: u32 = 65534;

/// Whether the tests run as root. Under `CI=true` not being root fails the
/// test; elsewhere the test is skipped with a message.
fn root_or_skip() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("these tests switch users and need root (CI=true: they fail rather than skip)");
    }
    eprintln!("skipping: these tests switch users and need root");
    false
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Lets other users reach the project (whatever the umask made of it).
fn open_to_all(p: &Project) {
    for dir in [p.path(), &p.path().join("jobs"), &p.path().join("schema")] {
        chmod(dir, 0o755);
    }
}

/// A `jobslot` command run as `uid`:`gid` with no supplementary groups.
fn jobslot_as(uid: u32, gid: u32, p: &Project) -> Command {
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .args(["--clear-groups", "--"])
        .arg(bin())
        .arg("--project")
        .arg(p.path())
        .env_remove("JOBSLOT_DATABASE")
        .env("JOBSLOT_LOG", "info");
    c
}

/// `jobslot show ID --json`, as `uid`, once the task has ended.
async fn ended_as(uid: u32, p: &Project, id: &str) -> Value {
    wait_for(
        &format!("task {id} to end"),
        Duration::from_secs(20),
        || {
            let out = jobslot_as(uid, uid, p)
                .args(["--json", "show", id])
                .output()
                .expect("show");
            let task: Option<Value> = serde_json::from_slice(&out.stdout).ok();
            let done = task.filter(|t| {
                matches!(
                    t["status"].as_str(),
                    Some("completed" | "failed" | "canceled")
                )
            });
            async move { done }
        },
    )
    .await
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A job with `user = "nobody"` runs as nobody (uid, primary group, no
/// supplementary groups of root, nobody's HOME/USER, no capabilities, no new
/// privileges), its log (written by the scheduler) holds its output, and the
/// result file it writes is read and stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_with_user_nobody_runs_as_nobody_and_its_result_is_stored() {
    if !root_or_skip() {
        return;
    }
    let p = Project::new();
    p.job(
        "whoami",
        r#"echo "uid=$(id -u) gid=$(id -g) groups=$(id -G) user=$USER logname=$LOGNAME home=$HOME"
grep -E '^(NoNewPrivs|CapEff):' /proc/self/status
printf '{"uid": %s}' "$(id -u)" > "$JOBSLOT_RESULT_FILE""#,
    )
    .job("empty", "exit 0")
    .schema(
        "a.toml",
        "[jobs.whoami]\nuser = \"nobody\"\n\n[jobs.empty]\nuser = \"nobody\"\n",
    );
    open_to_all(&p);
    let nobody = nix::unistd::User::from_name("nobody")
        .expect("lookup")
        .expect("nobody exists");
    let _inst = p.start("a", 2, &[]);
    let id = enqueue(&p, &["whoami"]).to_string();
    let empty = enqueue(&p, &["empty"]).to_string();
    let t = ended_as(0, &p, &id).await;
    assert_eq!(t["status"], "completed", "{t}");
    assert_eq!(t["result"], serde_json::json!({ "uid": NOBODY }), "{t}");
    let log = std::fs::read_to_string(t["log"].as_str().expect("a local log")).expect("log");
    let gid = nobody.gid.as_raw();
    let home = nobody.dir.display();
    assert!(
        log.contains(&format!(
            "uid={NOBODY} gid={gid} groups={gid} user=nobody logname=nobody home={home}\n"
        )),
        "{log}"
    );
    assert!(log.contains("NoNewPrivs:\t1"), "{log}");
    assert!(log.contains("CapEff:\t0000000000000000"), "{log}");
    let result_file = p.path().join(format!(".jobslot/logs/{id}.result.json"));
    assert!(!result_file.exists(), "the result file is removed");
    // The file made for the job but left empty means no result.
    let t = ended_as(0, &p, &empty).await;
    assert_eq!(t["status"], "completed", "{t}");
    assert_eq!(t["result"], Value::Null, "{t}");
}

/// Every child starts with `no_new_privs`: a set-user-ID-root program run by
/// a job as nobody does not become root. The control runs the same program
/// as nobody outside jobslot and does become root, so the file system
/// honours set-user-ID here and the check means something.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_new_privs_keeps_a_setuid_program_from_raising_a_job() {
    if !root_or_skip() {
        return;
    }
    let p = Project::new();
    let suid = p.path().join("suid-id");
    std::fs::copy("/usr/bin/id", &suid).expect("copy id");
    chmod(&suid, 0o4755);
    p.job(
        "raise",
        &format!(
            "grep NoNewPrivs /proc/self/status\necho \"euid=$({} -u)\"",
            suid.display()
        ),
    )
    .job("plain", "grep NoNewPrivs /proc/self/status")
    .schema("a.toml", "[jobs.raise]\nuser = \"nobody\"\n");
    open_to_all(&p);
    let control = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&suid)
        .arg("-u")
        .output()
        .expect("setpriv");
    assert_eq!(
        String::from_utf8_lossy(&control.stdout).trim(),
        "0",
        "control: set-user-ID works here"
    );
    let _inst = p.start("a", 2, &[]);
    let store = p.store().await;
    for (job, wanted) in [("raise", "euid=65534"), ("plain", "NoNewPrivs:\t1")] {
        let id = enqueue(&p, &[job]);
        let t = wait_terminal(store.as_ref(), id, Duration::from_secs(20)).await;
        assert_eq!(t.status, TaskStatus::Completed, "{job}: {t:?}");
        let log = std::fs::read_to_string(t.log.as_deref().expect("log")).expect("log");
        assert!(log.contains("NoNewPrivs:\t1"), "{job}: {log}");
        assert!(log.contains(wanted), "{job}: {log}");
    }
}

/// What a job can learn of a process of its own user through `/proc`: it
/// reads `environ`, `cmdline`, `fd/`, and `mem` at the `[stack]` and `[heap]`
/// ranges of `maps` (the environment strings live at the top of the stack),
/// and prints, for each, either `denied` or the `NAME=value` strings it found
/// for the names in argv. `probe.py PID LABEL NAME…`.
const PROBE: &str = r#"#!/usr/bin/python3
import os, re, sys

def found_in(data, names):
    hits = set()
    for name in names:
        for m in re.finditer(re.escape(name.encode()) + rb"=([A-Za-z0-9_-]+)", data):
            hits.add(name + "=" + m.group(1).decode())
    return " ".join(sorted(hits)) or "nothing"

def probe(pid, label, names):
    for what in ("environ", "cmdline"):
        try:
            with open(f"/proc/{pid}/{what}", "rb") as f:
                print(f"{label} {what}: read, found {found_in(f.read(), names)}")
        except OSError as e:
            print(f"{label} {what}: denied ({e.strerror})")
    try:
        print(f"{label} fd: read, {len(os.listdir(f'/proc/{pid}/fd'))} entries")
    except OSError as e:
        print(f"{label} fd: denied ({e.strerror})")
    try:
        with open(f"/proc/{pid}/maps") as f:
            maps = f.read()
        data = b""
        with open(f"/proc/{pid}/mem", "rb") as mem:
            for line in maps.splitlines():
                if line.endswith("[stack]") or line.endswith("[heap]"):
                    lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                    mem.seek(lo)
                    data += mem.read(hi - lo)
        print(f"{label} mem: read {len(data)} bytes, found {found_in(data, names)}")
    except OSError as e:
        print(f"{label} mem: denied ({e.strerror})")
"#;

/// `jobslot run` as a non-root user (nobody) with secrets in its environment:
/// a job of the same user gets none of them from `/proc/$PPID` (environ, mem,
/// fd are denied; cmdline holds none). The control, the same probe on a
/// dumpable process of the same user (a `sleep` the job starts with other
/// values under the same names), finds them in environ and in mem, so the
/// probe would have seen the scheduler's had they been readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_the_same_user_reads_no_secret_of_the_scheduler_through_proc() {
    if !root_or_skip() {
        return;
    }
    let p = Project::new();
    let names = [
        "JOBSLOT_API_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "JOBSLOT_S3_SECRET_ACCESS_KEY",
    ];
    let secrets: Vec<String> = names
        .iter()
        .map(|_| format!("sEcReT{}", uuid::Uuid::new_v4().simple()))
        .collect();
    let controls: Vec<String> = names
        .iter()
        .map(|_| format!("cOnTrOl{}", uuid::Uuid::new_v4().simple()))
        .collect();
    let probe = p.path().join("jobs/probe.py");
    std::fs::write(&probe, PROBE).expect("write probe");
    chmod(&probe, 0o755);
    let control_env = names
        .iter()
        .zip(&controls)
        .map(|(n, v)| format!("{n:?}: {v:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let names_py = names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>();
    p.job(
        "spy",
        &format!(
            r#"exec /usr/bin/python3 -c '
import os, subprocess, time
tools = {{}}
exec(open("jobs/probe.py").read(), tools)
probe = tools["probe"]
names = [{names}]
print("scheduler pid", os.getppid(), "my uid", os.getuid(), flush=True)
probe(os.getppid(), "scheduler", names)
env = dict(os.environ, **{{{control_env}}})
sleeper = subprocess.Popen(["sleep", "30"], env=env)
# The exec may not have laid out its environment yet.
for _ in range(500):
    if open(f"/proc/{{sleeper.pid}}/environ", "rb").read():
        break
    time.sleep(0.01)
probe(sleeper.pid, "control", names)
sleeper.kill()
sleeper.wait()
'"#,
            names = names_py.join(", "),
        ),
    );
    open_to_all(&p);
    let owner = Some(nix::unistd::Uid::from_raw(NOBODY));
    let group = Some(nix::unistd::Gid::from_raw(NOBODY));
    for entry in walk(p.path()) {
        nix::unistd::chown(&entry, owner, group).expect("chown");
    }
    let stderr = std::fs::File::create(p.path().join("a.stderr")).expect("stderr file");
    let mut run = jobslot_as(NOBODY, NOBODY, &p);
    run.args([
        "run",
        "--name",
        "a",
        "--slots",
        "2",
        "--poll-interval",
        "200ms",
    ])
    .args(["--no-api", "--heartbeat-interval", "100ms"])
    .stderr(stderr);
    for (n, v) in names.iter().zip(&secrets) {
        run.env(n, v);
    }
    let mut instance = run.spawn().expect("start jobslot as nobody");
    let enqueued = jobslot_as(NOBODY, NOBODY, &p)
        .args(["enqueue", "spy"])
        .output()
        .expect("enqueue");
    assert!(enqueued.status.success(), "{}", text(&enqueued));
    let id = String::from_utf8_lossy(&enqueued.stdout).trim().to_string();
    let t = ended_as(NOBODY, &p, &id).await;
    let _ = instance.kill();
    let _ = instance.wait();
    let log = std::fs::read_to_string(t["log"].as_str().expect("a local log")).expect("log");
    eprintln!("the spy's log:\n{log}");
    assert_eq!(t["status"], "completed", "{t}\n{log}");
    assert!(log.contains(&format!("my uid {NOBODY}")), "{log}");
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "a secret leaked:\n{log}");
    }
    for denied in ["environ", "mem", "fd"] {
        assert!(
            log.contains(&format!("scheduler {denied}: denied")),
            "{denied}:\n{log}"
        );
    }
    assert!(
        log.contains("scheduler cmdline: read, found nothing"),
        "{log}"
    );
    // The control: the same probe finds the same names in a dumpable process.
    for what in ["environ", "mem"] {
        let line = log
            .lines()
            .find(|l| l.starts_with(&format!("control {what}: read")))
            .unwrap_or_else(|| panic!("control {what} was not read:\n{log}"));
        for (n, v) in names.iter().zip(&controls) {
            assert!(line.contains(&format!("{n}={v}")), "control {what}: {line}");
        }
    }
}

/// Every file and directory under `dir`, `dir` included.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// `schema check` reports, with file, line and key: a user that does not
/// exist, a group that does not exist, `group` without `user`, and (run by a
/// user that is not root) a user other than its own. As root, or as nobody
/// itself, `user = "nobody"` passes. `jobslot run` refuses to start with the
/// same message; `enqueue` does not check users (it may run elsewhere).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_check_reports_unknown_users_and_users_that_need_root() {
    if !root_or_skip() {
        return;
    }
    let p = Project::new();
    p.job("a", "exit 0").job("b", "exit 0").job("c", "exit 0");
    p.schema(
        "a.toml",
        "[jobs.a]\nslots = 1\nuser = \"no-such-user-xyz\"\n\n[jobs.b]\nuser = \"nobody\"\ngroup = \"no-such-group-xyz\"\n\n[jobs.c]\ngroup = \"nogroup\"\n",
    );
    let out = p.cli(&["schema", "check"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // `group` without `user` is wrong anywhere: it comes first, with the load.
    assert!(
        stderr.contains("schema/a.toml:10: jobs.c.group: `group` needs `user`"),
        "{stderr}"
    );
    p.schema(
        "a.toml",
        "[jobs.a]\nslots = 1\nuser = \"no-such-user-xyz\"\n\n[jobs.b]\nuser = \"nobody\"\ngroup = \"no-such-group-xyz\"\n",
    );
    let out = p.cli(&["schema", "check"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr
            .contains("schema/a.toml:3: jobs.a.user: no user \"no-such-user-xyz\" on this machine"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "schema/a.toml:7: jobs.b.group: no group \"no-such-group-xyz\" on this machine"
        ),
        "{stderr}"
    );
    let json = p
        .cmd()
        .args(["--json", "schema", "check"])
        .output()
        .expect("check");
    let v: Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(v["errors"][0]["key"], "jobs.a.user", "{v}");
    assert_eq!(v["errors"][0]["line"], 3, "{v}");
    // `run` refuses to start, with the same lines; `enqueue` does not mind.
    let out = p
        .cmd()
        .args(["run", "--no-api", "--slots", "1"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let all = text(&out);
    assert!(
        all.contains("jobs.a.user: no user \"no-such-user-xyz\" on this machine")
            && all.contains("a job's user or group cannot be used on this machine"),
        "{all}"
    );
    enqueue(&p, &["a"]);
    // `schema apply` may run from anywhere: it warns.
    let out = p.cli(&["schema", "apply"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "warning: schema/a.toml:3: jobs.a.user: no user \"no-such-user-xyz\" on this machine"
        ),
        "{}",
        text(&out)
    );

    // A user other than its own, checked by a jobslot that is not root.
    p.schema("a.toml", "[jobs.b]\nuser = \"nobody\"\n");
    open_to_all(&p);
    chmod(&p.path().join("schema/a.toml"), 0o644);
    let out = p.cli(&["schema", "check"]);
    assert!(out.status.success(), "as root: {}", text(&out));
    let out = jobslot_as(4242, 4242, &p)
        .args(["schema", "check"])
        .output()
        .expect("check as uid 4242");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr.contains("schema/a.toml:2: jobs.b.user: running jobs as user \"nobody\" needs jobslot to run as root; it runs as uid 4242"),
        "{stderr}"
    );
    // As nobody itself: nothing to switch, nothing to report.
    let out = jobslot_as(NOBODY, NOBODY, &p)
        .args(["schema", "check"])
        .output()
        .expect("check as nobody");
    assert!(out.status.success(), "as nobody: {}", text(&out));
}

/// A job whose user cannot reach the project directory, or cannot execute
/// its file, fails with a `spawn-error` that says so; and a job that runs as
/// another user still dies with its instance (the parent-death signal is
/// armed after the switch, which would clear it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_files_fail_clearly_and_a_switched_job_dies_with_its_instance() {
    if !root_or_skip() {
        return;
    }
    let p = Project::new();
    let out = p.path().join("out");
    std::fs::create_dir(&out).expect("out dir");
    chmod(&out, 0o777);
    p.job("private", "exit 0")
        .job("sleeper", "echo $$ > out/pid\nexec sleep 60")
        .schema(
            "a.toml",
            "[jobs.private]\nuser = \"nobody\"\n\n[jobs.sleeper]\nuser = \"nobody\"\n",
        );
    // The project directory is closed to nobody first.
    chmod(p.path(), 0o700);
    let store = p.store().await;
    let inst = p.start("a", 2, &[]);
    let id = enqueue(&p, &["private"]);
    let t = wait_terminal(store.as_ref(), id, Duration::from_secs(20)).await;
    assert_eq!(t.status, TaskStatus::Failed, "{t:?}");
    let reason = t.reason.unwrap_or_default();
    let wanted = format!(
        "spawn-error: cannot enter the project directory {} as user nobody (uid 65534): Permission denied (os error 13)",
        p.path().display()
    );
    assert_eq!(reason, wanted);
    // Open, but the job's file is root's alone.
    open_to_all(&p);
    chmod(&p.path().join("jobs/private.sh"), 0o700);
    let id = enqueue(&p, &["private"]);
    let t = wait_terminal(store.as_ref(), id, Duration::from_secs(20)).await;
    let reason = t.reason.unwrap_or_default();
    assert!(
        reason.starts_with("spawn-error: Permission denied (os error 13): cannot execute ")
            && reason.contains("jobs/private.sh as user nobody (uid 65534)"),
        "{reason}"
    );

    let id = enqueue(&p, &["sleeper"]);
    wait_running(store.as_ref(), id, Duration::from_secs(20)).await;
    let pid: i32 = wait_for("the sleeper's pid", Duration::from_secs(10), || {
        let read = std::fs::read_to_string(out.join("pid")).ok();
        async move { read.and_then(|s| s.trim().parse().ok()) }
    })
    .await;
    assert!(pid_alive(pid));
    inst.signal(nix::sys::signal::Signal::SIGKILL);
    wait_for(
        "the sleeper to die with its instance",
        Duration::from_secs(5),
        || {
            let gone = !pid_alive(pid);
            async move { gone.then_some(()) }
        },
    )
    .await;
}
