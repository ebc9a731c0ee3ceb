//! Chaos: three `jobslot run` instances on one database run 1000 short tasks
//! and a 2-replica worker while, at random, an instance is killed with -9 (and
//! replaced after a moment) or paused like a stopped machine (SIGSTOP of the
//! instance and every process under it, SIGCONT after 0.5-3 s), for
//! `JOBSLOT_CHAOS_SECS` seconds (default 60). Then, with everything resumed:
//! every task completed (none lost, none failed), no attempt ran twice at the
//! same time (the job's own lock tells), and outside the fencing window that
//! follows each fault the worker never had more live replica processes than
//! its count. On PostgreSQL each instance runs under a host name of its own,
//! as a fleet does (`JOBSLOT_CHAOS_HOSTS`, see `hosts`). It prints its figures
//! (`cargo test --test chaos -- --nocapture`; `JOBSLOT_CHAOS_TRACE=1` adds a
//! timeline of faults and replica counts); `JOBSLOT_CHAOS_SEED` replays a run's
//! choices.

mod common;
use common::procs::{freeze_tree, job_leaders, kill_all_in, kill_tree, proc_stat, thaw};
use common::*;
use jobslot::model::{Task, TaskStatus};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const TASKS: usize = 1000;
const INSTANCES: usize = 3;
const SLOTS: u32 = 4;
const REPLICAS: usize = 2;
/// The job every task runs, and the worker's job.
const JOB: &str = "chaos";
const WORKER_JOB: &str = "forever";
const HEARTBEAT: Duration = Duration::from_millis(200);
const KILL_GRACE: Duration = Duration::from_millis(200);
/// After an instance resumes, dies or starts, the worker may briefly run more
/// than its replicas: a resumed instance that went two heartbeats without
/// recording one stops its own replicas, which it notices within one heartbeat
/// (`HEARTBEAT`), and they are gone at the latest `KILL_GRACE` after the
/// SIGTERM; plus 1 s of margin for a loaded machine. Outside this window the
/// count must hold.
const FENCE_WINDOW: Duration = HEARTBEAT
    .saturating_add(KILL_GRACE)
    .saturating_add(Duration::from_secs(1));
/// How long every task has to end once the chaos is over.
const SETTLE: Duration = Duration::from_secs(120);

/// Each task's run: an exclusive, non-blocking lock on a file named after its
/// attempt, held by the shell (not by `sleep`, so a killed run releases it at
/// once) for the whole run. Finding it taken means two runs of one attempt at
/// the same time: a line in `violations`. Then it sleeps `ms` (its args) and
/// exits 0.
const TASK_SCRIPT: &str = r#"ms=$(tr -dc 0-9)
pause=$(printf '%d.%03d' $(( ${ms:-100} / 1000 )) $(( ${ms:-100} % 1000 )))
echo "$JOBSLOT_TASK_ID $JOBSLOT_ATTEMPT" >> runs
exec 9>>"locks/$JOBSLOT_TASK_ID.$JOBSLOT_ATTEMPT"
if ! flock -n 9; then
  echo "$JOBSLOT_TASK_ID $JOBSLOT_ATTEMPT pid $$" >> violations
fi
sleep "$pause" 9>&-
exit 0"#;

/// The worker's replica: runs until told to stop.
const WORKER_SCRIPT: &str = "trap 'exit 0' TERM\nwhile true; do sleep 0.1; done";

fn schema() -> String {
    format!(
        "[jobs.{JOB}]\nmax_execution_time = \"5s\"\nkill_grace = \"{}ms\"\n\
         retry = {{ max_attempts = 50, backoff = \"100ms\", max_backoff = \"1s\" }}\n\
         # an orphaned task (its instance died) is retried: the default, said here\n\
         retry_on_orphan = true\n\n\
         # replicas first, so a replacement never waits behind the backlog\n\
         [jobs.{WORKER_JOB}]\nkill_grace = \"{}ms\"\npriority = 10\n\n\
         [[workers]]\nname = \"spin\"\njob = \"{WORKER_JOB}\"\nreplicas = {REPLICAS}\n\
         restart_backoff = {{ initial = \"100ms\", max = \"1s\" }}\n",
        KILL_GRACE.as_millis(),
        KILL_GRACE.as_millis()
    )
}

fn project(backend: Backend) -> Project {
    let p = Project::on(backend);
    p.job(JOB, TASK_SCRIPT).job(WORKER_JOB, WORKER_SCRIPT);
    p.schema("chaos.toml", &schema());
    std::fs::create_dir_all(p.path().join("locks")).expect("locks dir");
    p
}

/// SplitMix64: small, deterministic, good enough to pick faults.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }

    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }
}

fn env_u64(key: &str) -> Option<u64> {
    std::env::var(key).ok().and_then(|v| v.trim().parse().ok())
}

/// Milliseconds since `t0`, shared by the fault loop and the sampler.
fn ms_since(t0: Instant) -> u64 {
    t0.elapsed().as_millis() as u64
}

/// What the replica sampler saw.
#[derive(Debug, Default)]
struct Replicas {
    samples: u64,
    /// Live (existing, not a zombie, not stopped) replica processes, at most.
    max_live: usize,
    /// The same outside the fencing window.
    max_outside: usize,
    /// Counting stopped ones too (a paused instance's frozen replicas).
    max_with_stopped: usize,
    /// Samples outside the window above `REPLICAS`: (ms since start, count).
    excess: Vec<(u64, usize)>,
    /// The last sample's live count.
    last: usize,
    /// Samples that found exactly `REPLICAS`.
    full: u64,
    /// Each change of the counts: (ms since start, live, stopped, pids).
    changes: Vec<(u64, usize, usize, Vec<i32>)>,
}

/// Counts the worker's live replica processes every ~25 ms on a thread of its
/// own, and whether each count fell outside the fencing window.
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<Replicas>>,
}

impl Sampler {
    fn start(t0: Instant, window_until: Arc<AtomicU64>, project: PathBuf) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut r = Replicas::default();
            while !flag.load(Ordering::Relaxed) {
                let (live, stopped) = job_leaders(WORKER_JOB, &project);
                // Read after counting: a fault marks its window before it acts.
                let outside = ms_since(t0) >= window_until.load(Ordering::SeqCst);
                let running = live.len() - stopped;
                r.samples += 1;
                r.last = running;
                r.full += u64::from(running == REPLICAS);
                if r.changes
                    .last()
                    .is_none_or(|c| (c.1, c.2) != (running, stopped))
                    && r.changes.len() < 2000
                {
                    r.changes
                        .push((ms_since(t0), running, stopped, live.clone()));
                }
                r.max_live = r.max_live.max(running);
                r.max_with_stopped = r.max_with_stopped.max(live.len());
                if outside {
                    r.max_outside = r.max_outside.max(running);
                    if running > REPLICAS && r.excess.len() < 50 {
                        r.excess.push((ms_since(t0), running));
                    }
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            r
        });
        Self {
            stop,
            handle: Some(handle),
        }
    }

    fn finish(mut self) -> Replicas {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Where the instances run. On one host (SQLite's only setting), a
/// replacement kills what is left of a gone instance's replica there; on
/// several (a PostgreSQL fleet), nobody can, and a paused machine's replicas
/// resume beside their replacements. `Distinct` gives each instance a host name
/// of its own in a UTS namespace (`unshare --uts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hosts {
    Same,
    Distinct,
}

/// `JOBSLOT_CHAOS_HOSTS` (`same` or `distinct`), else one host for SQLite and
/// one per instance for PostgreSQL. Without `unshare --uts`: one host, or
/// under `CI=true` a failure.
fn hosts(backend: Backend) -> Hosts {
    let wanted = match std::env::var("JOBSLOT_CHAOS_HOSTS").ok().as_deref() {
        Some("same") => Hosts::Same,
        Some("distinct") => Hosts::Distinct,
        Some(other) => panic!("JOBSLOT_CHAOS_HOSTS={other}: want same or distinct"),
        None if backend == Backend::Postgres => Hosts::Distinct,
        None => Hosts::Same,
    };
    if wanted == Hosts::Same {
        return wanted;
    }
    let works = unshare()
        .args(["sh", "-c", "hostname chaos-probe"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if works {
        return wanted;
    }
    assert!(
        !std::env::var("CI").is_ok_and(|v| v == "true"),
        "unshare --uts does not work here (CI=true: fail rather than test one host only)"
    );
    eprintln!("unshare --uts does not work here: all instances on one host");
    Hosts::Same
}

/// `unshare --uts`, in a user namespace of its own unless root.
fn unshare() -> Command {
    let mut c = Command::new("unshare");
    c.arg("--uts");
    // SAFETY: geteuid takes nothing, touches no memory and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        c.arg("--map-root-user");
    }
    c
}

/// As `Project::start`, on a host named `host`: `unshare` and `sh` exec
/// jobslot in turn, so the child's pid is the instance's.
fn start_on_host(p: &Project, name: &str, host: &str, extra: &[&str]) -> Instance {
    let log = std::fs::File::create(p.path().join(format!("{name}.stderr"))).expect("log");
    let inner = p.cmd();
    let mut cmd = unshare();
    cmd.args(["sh", "-c", "hostname \"$0\" && exec \"$@\"", host])
        .arg(inner.get_program())
        .args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let child = cmd
        .args(["run", "--name", name, "--slots", &SLOTS.to_string()])
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

/// One of the three places an instance runs in.
#[derive(Default)]
struct Slot {
    inst: Option<Instance>,
    /// Paused: the processes stopped, and when to resume them.
    frozen: Option<(Vec<i32>, Instant)>,
    /// Killed: when to start its successor.
    restart_at: Option<Instant>,
    generation: u32,
}

#[derive(Debug, Default)]
struct Faults {
    kills: u32,
    /// Kills whose instance was seen to die of SIGKILL.
    kills_seen: u32,
    pauses: u32,
    /// Pauses whose instance was seen stopped (state T).
    pauses_seen: u32,
    /// Processes stopped by all pauses together.
    frozen_procs: usize,
    /// Worker replicas among them.
    replicas_frozen: usize,
    starts: u32,
    /// Instances that exited on their own: (name, status).
    exited: Vec<(String, String)>,
    /// What happened when: (ms since start, what).
    events: Vec<(u64, String)>,
}

/// The instances, and what the faults did to them. Dropping it (even in a
/// panic) resumes and kills every process the test started.
struct Cluster<'a> {
    p: &'a Project,
    dir: PathBuf,
    slots: Vec<Slot>,
    t0: Instant,
    window_until: Arc<AtomicU64>,
    hosts: Hosts,
    faults: Faults,
}

impl<'a> Cluster<'a> {
    fn new(p: &'a Project, t0: Instant, window_until: Arc<AtomicU64>, hosts: Hosts) -> Self {
        let dir = std::fs::canonicalize(p.path()).expect("project dir");
        Self {
            p,
            dir,
            slots: (0..INSTANCES).map(|_| Slot::default()).collect(),
            t0,
            window_until,
            hosts,
            faults: Faults::default(),
        }
    }

    fn event(&mut self, what: String) {
        self.faults.events.push((ms_since(self.t0), what));
    }

    /// Opens the fencing window from now on (before the fault acts).
    fn open_window(&self) {
        let until = ms_since(self.t0) + FENCE_WINDOW.as_millis() as u64;
        self.window_until.fetch_max(until, Ordering::SeqCst);
    }

    fn start(&mut self, i: usize) {
        self.open_window();
        let slot = &mut self.slots[i];
        slot.generation += 1;
        let name = format!("i{i}g{}", slot.generation);
        let hb = format!("{}ms", HEARTBEAT.as_millis());
        let args = [
            "--heartbeat-interval",
            &hb,
            "--orphan-grace",
            "1s",
            "--poll-interval",
            "100ms",
            "--shutdown-timeout",
            "1s",
            "--no-api",
        ];
        slot.inst = Some(match self.hosts {
            Hosts::Same => self.p.start(&name, SLOTS, &args),
            // A successor runs on the host of the instance it replaces, as
            // a machine restarted.
            Hosts::Distinct => start_on_host(self.p, &name, &format!("chaos-host-{i}"), &args),
        });
        slot.restart_at = None;
        let pid = slot.inst.as_ref().map(Instance::pid);
        self.faults.starts += 1;
        self.event(format!("start {name} pid {pid:?}"));
    }

    fn kill(&mut self, i: usize, rng: &mut Rng) {
        let Some(mut inst) = self.slots[i].inst.take() else {
            return;
        };
        self.open_window();
        let _ = inst.child.kill();
        self.event(format!("kill -9 {}", inst.name));
        self.faults.kills += 1;
        if inst
            .child
            .wait()
            .is_ok_and(|s| s.signal() == Some(libc::SIGKILL))
        {
            self.faults.kills_seen += 1;
        }
        self.slots[i].restart_at = Some(Instant::now() + rng.millis(200, 1000));
    }

    fn pause(&mut self, i: usize, rng: &mut Rng) {
        let Some(pid) = self.slots[i].inst.as_ref().map(Instance::pid) else {
            return;
        };
        let at = ms_since(self.t0);
        let frozen = freeze_tree(pid);
        let replicas = job_leaders(WORKER_JOB, &self.dir).0;
        let caught = frozen.iter().filter(|p| replicas.contains(p)).count();
        self.faults.replicas_frozen += caught;
        let name = self.slots[i].inst.as_ref().map(|i| i.name.clone());
        self.faults.events.push((
            at,
            format!(
                "pause {name:?}: {} processes, replicas {:?}",
                frozen.len(),
                frozen
                    .iter()
                    .filter(|p| replicas.contains(p))
                    .collect::<Vec<_>>()
            ),
        ));
        self.faults.pauses += 1;
        self.faults.frozen_procs += frozen.len();
        let seen = Instant::now();
        while seen.elapsed() < Duration::from_millis(200) {
            if proc_stat(pid).is_some_and(|s| s.stopped()) {
                self.faults.pauses_seen += 1;
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        self.slots[i].frozen = Some((frozen, Instant::now() + rng.millis(500, 3000)));
    }

    fn resume(&mut self, i: usize) {
        if let Some((frozen, _)) = self.slots[i].frozen.take() {
            self.open_window();
            thaw(&frozen);
            let name = self.slots[i].inst.as_ref().map(|i| i.name.clone());
            self.event(format!("resume {name:?}"));
        }
    }

    /// Resumes and starts what is due; notes (and replaces) an instance that
    /// exited on its own.
    fn tick(&mut self, now: Instant) {
        for i in 0..self.slots.len() {
            let slot = &mut self.slots[i];
            if let Some(inst) = slot.inst.as_mut()
                && let Ok(Some(status)) = inst.child.try_wait()
            {
                let name = inst.name.clone();
                eprintln!(
                    "instance {name} exited on its own ({status}); its log ends:\n{}",
                    tail(&self.p.stderr_of(&name), 10)
                );
                self.faults.exited.push((name, status.to_string()));
                slot.inst = None;
                slot.frozen = None;
                slot.restart_at = Some(now);
            }
            if self.slots[i].frozen.as_ref().is_some_and(|f| f.1 <= now) {
                self.resume(i);
            }
            if self.slots[i].restart_at.is_some_and(|at| at <= now) {
                self.start(i);
            }
        }
    }

    /// Faults at random every 1-3 s for `secs` (the first within 1 s): the
    /// first a kill, the second a pause, then either at even odds, each on an
    /// instance that is up.
    fn chaos(&mut self, secs: Duration, rng: &mut Rng) {
        let end = Instant::now() + secs;
        // The first soon, so that even a short run has a kill and a pause.
        let mut next = Instant::now() + rng.millis(300, 1000);
        let mut n = 0u32;
        while Instant::now() < end {
            let now = Instant::now();
            self.tick(now);
            if now >= next {
                let up: Vec<usize> = (0..self.slots.len())
                    .filter(|&i| {
                        let s = &self.slots[i];
                        s.inst.is_some() && s.frozen.is_none()
                    })
                    .collect();
                if !up.is_empty() {
                    let i = up[rng.range(0, up.len() as u64) as usize];
                    let kill = match n {
                        0 => true,
                        1 => false,
                        _ => rng.next().is_multiple_of(2),
                    };
                    if kill {
                        self.kill(i, rng);
                    } else {
                        self.pause(i, rng);
                    }
                    n += 1;
                }
                next = now + rng.millis(1000, 3000);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Everything back: resumed, and three instances running.
        for i in 0..self.slots.len() {
            self.resume(i);
            if self.slots[i].inst.is_none() {
                self.start(i);
            }
        }
    }
}

impl Drop for Cluster<'_> {
    fn drop(&mut self) {
        for slot in &mut self.slots {
            if let Some((frozen, _)) = slot.frozen.take() {
                thaw(&frozen);
            }
            if let Some(inst) = slot.inst.take() {
                kill_tree(inst.pid());
                drop(inst);
            }
        }
        // What killed instances left behind runs in the project directory.
        for _ in 0..3 {
            kill_all_in(&self.dir);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn tail(text: &str, n: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(n)..].join("\n")
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn histogram<'t>(tasks: impl Iterator<Item = &'t Task>, key: impl Fn(&Task) -> String) -> String {
    let mut h: BTreeMap<String, usize> = BTreeMap::new();
    for t in tasks {
        *h.entry(key(t)).or_default() += 1;
    }
    format!("{h:?}")
}

on_both!(faults_never_lose_a_task_run_an_attempt_twice_or_overrun_the_worker);
async fn faults_never_lose_a_task_run_an_attempt_twice_or_overrun_the_worker(backend: Backend) {
    let secs = Duration::from_secs(env_u64("JOBSLOT_CHAOS_SECS").unwrap_or(60));
    assert!(
        secs >= Duration::from_secs(5),
        "JOBSLOT_CHAOS_SECS: at least 5, for a kill and a pause"
    );
    let seed = env_u64("JOBSLOT_CHAOS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    eprintln!("chaos {backend:?}: seed {seed} (JOBSLOT_CHAOS_SEED={seed} replays it), {secs:?}");
    let mut rng = Rng(seed);
    let p = project(backend);
    let store = p.store().await;

    // The tasks, due one after another over most of the chaos, so faults hit
    // them all along (each sleeps 20-300 ms).
    let base = chrono::Utc::now() + chrono::Duration::seconds(3);
    let spread = secs.mul_f64(0.9).as_millis() as i64;
    let inserting = Instant::now();
    let mut batches: Vec<Vec<_>> = (0..8).map(|_| Vec::new()).collect();
    for i in 0..TASKS {
        let mut t = new_task(JOB, json!({ "ms": rng.range(20, 300) }));
        t.max_execution_time = Duration::from_secs(5);
        t.kill_grace = KILL_GRACE;
        t.due_at = base + chrono::Duration::milliseconds(spread * i as i64 / TASKS as i64);
        batches[i % 8].push(t);
    }
    let mut inserts = tokio::task::JoinSet::new();
    for batch in batches {
        let store = store.clone();
        inserts.spawn(async move {
            for t in batch {
                store.task_insert(t).await.expect("insert");
            }
        });
    }
    while let Some(done) = inserts.join_next().await {
        done.expect("insert batch");
    }
    eprintln!("inserted {TASKS} tasks in {:?}", inserting.elapsed());

    let t0 = Instant::now();
    let window_until = Arc::new(AtomicU64::new(0));
    let dir = std::fs::canonicalize(p.path()).expect("project dir");
    let sampler = Sampler::start(t0, window_until.clone(), dir);
    let hosts = hosts(backend);
    eprintln!("instances on {hosts:?} hosts");
    let mut cluster = Cluster::new(&p, t0, window_until, hosts);
    for i in 0..INSTANCES {
        cluster.start(i);
    }
    wait_for("the worker's replicas", Duration::from_secs(30), || async {
        (job_leaders(WORKER_JOB, &cluster.dir).0.len() == REPLICAS).then_some(())
    })
    .await;

    let chaos_start = Instant::now();
    tokio::task::block_in_place(|| cluster.chaos(secs, &mut rng));
    let chaos_took = chaos_start.elapsed();

    // Every task ends, or the deadline passes (then the figures say which not).
    let settling = Instant::now();
    let tasks = loop {
        let tasks = tasks_of(store.as_ref(), JOB).await;
        let open = tasks.iter().filter(|t| !t.status.is_terminal()).count();
        if (tasks.len() == TASKS && open == 0) || settling.elapsed() > SETTLE {
            break tasks;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let settle_took = settling.elapsed();
    // The worker comes back to its count: exactly REPLICAS for 1 s in a row.
    let back = Instant::now();
    let mut steady_since: Option<Instant> = None;
    let mut replicas_back = false;
    while back.elapsed() < Duration::from_secs(30) {
        if job_leaders(WORKER_JOB, &cluster.dir).0.len() == REPLICAS {
            let since = *steady_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_secs(1) {
                replicas_back = true;
                break;
            }
        } else {
            steady_since = None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let replicas = sampler.finish();

    let completed = count(&tasks, TaskStatus::Completed);
    let failed: Vec<&Task> = tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Failed)
        .collect();
    let canceled = count(&tasks, TaskStatus::Canceled);
    let open: Vec<&Task> = tasks.iter().filter(|t| !t.status.is_terminal()).collect();
    let extra_attempts: u64 = tasks.iter().map(|t| u64::from(t.attempt - 1)).sum();
    let runs = lines(&p.path().join("runs"));
    let violations = lines(&p.path().join("violations"));
    let f = &cluster.faults;
    // What the instances' logs say they did.
    let logs: String = (0..INSTANCES)
        .flat_map(|i| (1..=cluster.slots[i].generation).map(move |g| format!("i{i}g{g}")))
        .map(|name| p.stderr_of(&name))
        .collect();
    // Kept for a look after a failure.
    let keep = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("chaos-{backend:?}"));
    let _ = std::fs::remove_dir_all(&keep);
    let _ = std::fs::create_dir_all(&keep);
    for i in 0..INSTANCES {
        for g in 1..=cluster.slots[i].generation {
            let name = format!("i{i}g{g}");
            let _ = std::fs::write(keep.join(format!("{name}.stderr")), p.stderr_of(&name));
        }
    }
    eprintln!("instance logs kept in {}", keep.display());
    let said = |what: &str| logs.lines().filter(|l| l.contains(what)).count();
    eprintln!(
        "chaos {backend:?} figures (seed {seed}, {hosts:?} hosts):\n\
         \x20 tasks {} of {TASKS}: completed {completed}, failed {}, canceled {canceled}, \
         not ended {} (settled in {settle_took:?})\n\
         \x20 attempts beyond the first {extra_attempts}, runs started {}, \
         concurrent runs of one attempt {}\n\
         \x20 faults in {chaos_took:?}: kills {} (seen dead {}), pauses {} (seen stopped {}, \
         {} processes frozen, {} of them replicas), instance starts {}, exited on their own {:?}\n\
         \x20 logs: tasks failed as orphaned {}, replicas of gone instances replaced {}, \
         errors {}; tasks ran on hosts {}\n\
         \x20 worker ({REPLICAS} replicas, fencing window {FENCE_WINDOW:?}): max live {} \
         (counting stopped {}), max outside the window {}, {} samples ({}% at {REPLICAS}), back at {REPLICAS}: {}",
        tasks.len(),
        failed.len(),
        open.len(),
        runs.len(),
        violations.len(),
        f.kills,
        f.kills_seen,
        f.pauses,
        f.pauses_seen,
        f.frozen_procs,
        f.replicas_frozen,
        f.starts,
        f.exited,
        said("task failed as orphaned"),
        said("replica of a gone instance replaced"),
        said(" ERROR "),
        histogram(tasks.iter(), |t| t.host.clone().unwrap_or_default()),
        replicas.max_live,
        replicas.max_with_stopped,
        replicas.max_outside,
        replicas.samples,
        replicas.full * 100 / replicas.samples.max(1),
        replicas_back
    );
    if !failed.is_empty() {
        eprintln!(
            "  failed by reason: {}",
            histogram(failed.iter().copied(), |t| t
                .reason
                .clone()
                .unwrap_or_default())
        );
    }
    if !open.is_empty() {
        eprintln!(
            "  not ended, by status and instance: {}",
            histogram(open.iter().copied(), |t| format!(
                "{:?} on {}",
                t.status,
                t.instance.clone().unwrap_or_default()
            ))
        );
        for t in open.iter().take(5) {
            eprintln!(
                "    {} {:?} attempt {} instance {:?} pgid {:?}",
                t.id, t.status, t.attempt, t.instance, t.pgid
            );
        }
    }
    for v in violations.iter().take(10) {
        eprintln!("  concurrent run: {v}");
    }
    if !replicas.excess.is_empty() {
        eprintln!(
            "  replicas above {REPLICAS} outside the window (ms since start, count): {:?}",
            replicas.excess
        );
    }

    if std::env::var_os("JOBSLOT_CHAOS_TRACE").is_some() || replicas.max_outside > REPLICAS {
        let mut timeline: Vec<(u64, String)> = f.events.clone();
        timeline.extend(replicas.changes.iter().map(|(ms, live, stopped, pids)| {
            (
                *ms,
                format!("replicas: {live} live, {stopped} stopped {pids:?}"),
            )
        }));
        timeline.sort_by_key(|e| e.0);
        eprintln!("  timeline (ms since start):");
        for (ms, what) in timeline {
            eprintln!("    {ms:>6} {what}");
        }
    }

    // The test's own faults happened, and it saw the worker.
    assert!(
        f.kills > 0 && f.kills_seen == f.kills,
        "every kill seen: {f:?}"
    );
    assert!(
        f.pauses > 0 && f.pauses_seen == f.pauses,
        "every pause seen: {f:?}"
    );
    assert!(replicas.max_live >= REPLICAS, "{replicas:?}");
    // The promises.
    assert!(
        violations.is_empty(),
        "{} concurrent runs of one attempt",
        violations.len()
    );
    assert_eq!(
        (tasks.len(), completed, failed.len(), canceled, open.len()),
        (TASKS, TASKS, 0, 0, 0),
        "0 lost: (tasks, completed, failed, canceled, not ended)"
    );
    assert!(
        replicas.max_outside <= REPLICAS,
        "the worker ran {} replicas outside the fencing window",
        replicas.max_outside
    );
    assert!(
        replicas_back,
        "the worker is back at {REPLICAS} replicas (last seen {})",
        replicas.last
    );
    drop(cluster);
}

/// The detector itself: two runs of one attempt at the same time leave a line
/// in `violations`; two attempts of one task at once, or one attempt run again
/// after the first ended, do not.
#[test]
fn the_job_reports_two_runs_of_one_attempt_at_once() {
    let p = project(Backend::Sqlite);
    let run = |id: &str, attempt: &str, ms: u32| {
        let mut child = Command::new(p.path().join("jobs").join(format!("{JOB}.sh")))
            .current_dir(p.path())
            .env("JOBSLOT_TASK_ID", id)
            .env("JOBSLOT_ATTEMPT", attempt)
            .stdin(Stdio::piped())
            .spawn()
            .expect("run the job");
        if let Some(mut stdin) = child.stdin.take() {
            let _ = write!(stdin, "{}", json!({ "ms": ms }));
        }
        child
    };
    let violations = p.path().join("violations");
    let wait = |c: &mut std::process::Child| {
        assert!(wait_child(c, Duration::from_secs(10)).success());
    };

    // Two attempts of one task at once: no violation.
    let mut a = run("t1", "1", 300);
    std::thread::sleep(Duration::from_millis(100));
    let mut b = run("t1", "2", 50);
    wait(&mut b);
    wait(&mut a);
    assert_eq!(lines(&violations), Vec::<String>::new());

    // The same attempt again after it ended: no violation.
    wait(&mut run("t1", "1", 20));
    assert_eq!(lines(&violations), Vec::<String>::new());

    // The same attempt twice at once: one violation, by the second.
    let mut a = run("t2", "1", 400);
    std::thread::sleep(Duration::from_millis(150));
    let mut b = run("t2", "1", 20);
    wait(&mut b);
    wait(&mut a);
    let found = lines(&violations);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("t2 1 pid "), "{found:?}");

    // A run killed with -9 leaves the lock free at once (its sleep does not
    // hold it), so no false alarm after a kill.
    let mut a = run("t3", "1", 2000);
    std::thread::sleep(Duration::from_millis(150));
    let _ = a.kill();
    let _ = a.wait();
    wait(&mut run("t3", "1", 20));
    assert_eq!(lines(&violations).len(), 1);
    assert_eq!(lines(&p.path().join("runs")).len(), 7, "every run recorded");
}
