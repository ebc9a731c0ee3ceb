//! Benchmark: `scripts/bench.sh` (or `cargo run --release --example bench`).
//!
//! Prints, for 1000 trivial tasks on one instance with 8 slots: tasks per second
//! end to end, dispatch latency p50/p99 (due time → child running), timeout-kill
//! overshoot p50/p99 (deadline → process group gone), the same 1000 spawns with
//! per-task log files done by `xargs -P8` as the baseline and the ratio, and the
//! end-to-end rate again with a million pending tasks that are not yet due.
//! The end-to-end rate, dispatch latency and claim throughput are measured on
//! SQLite and PostgreSQL alike. Figures compared with each other are measured
//! round by round in turn, so that the machine's changing load falls on both.

use jobslot::model::TaskStatus;
use jobslot::store::{AfterLink, NewTask, Store, TaskListParams};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

const TASKS: usize = 1000;
const SLOTS: u32 = 8;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn exe_dir() -> Res<PathBuf> {
    // target/release/examples/bench → target/release
    let me = std::env::current_exe()?;
    Ok(me
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot locate target dir")?
        .to_path_buf())
}

fn write_exec(path: &Path, text: &str) -> Res<()> {
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

fn setup(dir: &Path) -> Res<()> {
    std::fs::create_dir_all(dir.join("jobs"))?;
    std::fs::create_dir_all(dir.join("schema"))?;
    write_exec(&dir.join("jobs/noop.sh"), "#!/bin/sh\necho ok\n")?;
    write_exec(&dir.join("jobs/sleeper.sh"), "#!/bin/sh\nexec sleep 10\n")?;
    let stamp = exe_dir()?.join("examples/bench_stamp");
    std::fs::copy(&stamp, dir.join("jobs/stamp")).map_err(|e| {
        format!(
            "{}: {e} (build it: cargo build --release --examples)",
            stamp.display()
        )
    })?;
    std::fs::write(
        dir.join("schema/bench.toml"),
        "[jobs.sleeper]\nmax_execution_time = \"200ms\"\nkill_grace = \"1s\"\n",
    )?;
    Ok(())
}

fn start_instance(dir: &Path, url: &str) -> Res<Child> {
    let bin = exe_dir()?.join("jobslot");
    Ok(Command::new(&bin)
        .arg("--project")
        .arg(dir)
        .arg("--database")
        .arg(url)
        .args(["run", "--slots", &SLOTS.to_string(), "--name", "bench"])
        .env("JOBSLOT_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("{}: {e} (build it: cargo build --release)", bin.display()))?)
}

fn task(job: &str, due: chrono::DateTime<chrono::Utc>, max: Duration) -> NewTask {
    NewTask {
        id: Uuid::now_v7(),
        job: job.to_string(),
        queue: "default".into(),
        priority: 0,
        slots: 1,
        max_execution_time: max,
        kill_grace: Duration::from_secs(1),
        schedule: None,
        recurrence: None,
        after: AfterLink::None,
        parent: None,
        args: serde_json::json!({}),
        metadata: serde_json::json!({}),
        due_at: due,
        created_at: chrono::Utc::now(),
        attempt: 1,
        unique_key: None,
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

/// Waits until the tasks `ids` have all ended, and returns the newest `n`
/// tasks of `job`. Polls cheaply, by id, the task claimed last (claims go in
/// due-time then id order), so that watching costs the machine little.
async fn wait_done(
    store: &dyn Store,
    job: &str,
    ids: &[Uuid],
    limit: Duration,
) -> Res<Vec<jobslot::model::Task>> {
    let start = Instant::now();
    let last = *ids.iter().max().ok_or("no tasks")?;
    loop {
        let ended = store
            .task_get(last)
            .await?
            .is_some_and(|t| t.status.is_terminal());
        if ended {
            let all = store
                .task_list(TaskListParams {
                    job: Some(job.into()),
                    limit: ids.len(),
                    ..Default::default()
                })
                .await?;
            let done = all.iter().filter(|t| t.status.is_terminal()).count();
            if done >= ids.len() {
                return Ok(all);
            }
        }
        if start.elapsed() > limit {
            return Err(format!("{job}: tasks still unfinished after {limit:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn rounds() -> usize {
    std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(1)
}

/// Enqueues `TASKS` noop tasks due together and measures due → last end.
async fn end_to_end_once(store: &dyn Store) -> Res<f64> {
    let due_ms = chrono::Utc::now().timestamp_millis() + 1500;
    let due = chrono::DateTime::from_timestamp_millis(due_ms).ok_or("time")?;
    let mut ids = Vec::with_capacity(TASKS);
    for _ in 0..TASKS {
        ids.push(
            store
                .task_insert(task("noop", due, Duration::from_secs(60)))
                .await?
                .id,
        );
    }
    let tasks = wait_done(store, "noop", &ids, Duration::from_secs(120)).await?;
    let recent: Vec<_> = tasks.iter().filter(|t| t.start_at == Some(due)).collect();
    let failed = recent
        .iter()
        .filter(|t| t.status != TaskStatus::Completed)
        .count();
    for t in recent
        .iter()
        .filter(|t| t.status != TaskStatus::Completed)
        .take(3)
    {
        eprintln!("not completed: {} {:?}", t.status, t.reason);
    }
    let last = recent
        .iter()
        .filter_map(|t| t.ended_at)
        .max()
        .ok_or("no ends")?;
    let secs = (last - due).num_microseconds().unwrap_or(0) as f64 / 1e6;
    if failed > 0 {
        return Err(format!("{failed} of {TASKS} tasks did not complete").into());
    }
    Ok(TASKS as f64 / secs)
}

/// The median of `rounds()` runs of [`baseline_once`].
fn baseline(dir: &Path) -> Res<f64> {
    let mut rates = Vec::new();
    for i in 0..rounds() {
        rates.push(baseline_once(&dir.join(format!("xargs-logs-{i}")))?);
    }
    let shown: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
    let rate = pct(&mut rates, 0.5);
    println!(
        "{:<44} {rate:>8.0} tasks/s  (median of {} rounds of {TASKS}: {})",
        "baseline: xargs -P8 with per-task log files",
        shown.len(),
        shown.join(", ")
    );
    Ok(rate)
}

fn baseline_once(logs: &Path) -> Res<f64> {
    let dir = logs.parent().ok_or("no parent")?;
    std::fs::create_dir_all(logs)?;
    let input: String = (0..TASKS).map(|i| format!("{i}\n")).collect();
    let start = Instant::now();
    let mut child = Command::new("xargs")
        .args(["-P8", "-I{}", "sh", "-c"])
        .arg(format!(
            "exec {}/jobs/noop.sh > {}/$1.log 2>&1",
            dir.display(),
            logs.display()
        ))
        .args(["_", "{}"])
        .stdin(Stdio::piped())
        .spawn()?;
    use std::io::Write;
    child
        .stdin
        .take()
        .ok_or("stdin")?
        .write_all(input.as_bytes())?;
    let st = child.wait()?;
    let secs = start.elapsed().as_secs_f64();
    if !st.success() {
        return Err("xargs failed".into());
    }
    Ok(TASKS as f64 / secs)
}

async fn dispatch_latency(label: &str, store: &dyn Store, dir: &Path) -> Res<()> {
    let mut lat = Vec::new();
    for _ in 0..200 {
        let t = task("stamp", chrono::Utc::now(), Duration::from_secs(60));
        let id = t.id;
        let due = t.due_at;
        store.task_insert(t).await?;
        let start = Instant::now();
        let done = loop {
            if let Some(t) = store.task_get(id).await?.filter(|t| t.status.is_terminal()) {
                break t;
            }
            if start.elapsed() > Duration::from_secs(10) {
                return Err("stamp task did not end".into());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let log =
            std::fs::read_to_string(dir.join(".jobslot/logs").join(format!("{}.log", done.id)))?;
        let ns: i128 = log.trim().parse()?;
        let due_ns = due.timestamp_nanos_opt().ok_or("time")? as i128;
        lat.push((ns - due_ns) as f64 / 1e6);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "{:<44} p50 {:.2} ms  p99 {:.2} ms  (200 tasks, one at a time, idle instance)",
        format!("{label} dispatch latency (due → child running)"),
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99)
    );
    Ok(())
}

async fn kill_overshoot(store: &dyn Store) -> Res<()> {
    let due = chrono::Utc::now();
    let mut ids = Vec::new();
    for _ in 0..80 {
        ids.push(
            store
                .task_insert(task("sleeper", due, Duration::from_millis(200)))
                .await?
                .id,
        );
    }
    let tasks = wait_done(store, "sleeper", &ids, Duration::from_secs(60)).await?;
    let mut over: Vec<f64> = tasks
        .iter()
        .filter(|t| t.reason.as_deref() == Some("timeout"))
        .filter_map(|t| Some((t.ended_at? - t.deadline_at?).num_microseconds()? as f64 / 1e3))
        .collect();
    println!(
        "{:<44} p50 {:.2} ms  p99 {:.2} ms  ({} timeouts)",
        "timeout-kill overshoot (deadline → ended)",
        pct(&mut over, 0.5),
        pct(&mut over, 0.99),
        over.len()
    );
    Ok(())
}

/// Adds `n` pending tasks due in a day, straight through SQL in one transaction.
fn add_not_due(db: &Path, n: usize) -> Res<()> {
    let mut conn = rusqlite::Connection::open(db)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare(
            "INSERT INTO tasks (id, job, status, attempt, queue, priority, slots, max_execution_ms,
                kill_grace_ms, args, metadata, created_at, due_at)
             VALUES (?1, 'later', 'pending', 1, 'default', 0, 1, 60000, 1000, '{}', '{}', ?2, ?3)",
        )?;
        let now = chrono::Utc::now().timestamp_millis();
        for i in 0..n {
            stmt.execute(rusqlite::params![
                Uuid::now_v7().to_string(),
                now,
                now + 86_400_000 + i as i64
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Claims per second from `instances` store handles (each its own connection)
/// claiming batches of 8 from 5,000 due tasks until none is left.
async fn claim_throughput(label: &str, url_for: impl Fn(usize) -> String) -> Res<()> {
    const N: usize = 5_000;
    let mut figures = Vec::new();
    for (run, instances) in [1usize, 2, 4].into_iter().enumerate() {
        let url = url_for(run);
        let store = jobslot::store::open(&url).await?;
        let due = chrono::Utc::now() - chrono::Duration::seconds(1);
        for _ in 0..N {
            store
                .task_insert(task("noop", due, Duration::from_secs(60)))
                .await?;
        }
        let start = Instant::now();
        let mut workers = Vec::new();
        for i in 0..instances {
            let handle = jobslot::store::open(&url).await?;
            workers.push(tokio::spawn(async move {
                let mut claimed = 0usize;
                loop {
                    let got = handle
                        .task_claim(jobslot::store::TaskClaimParams {
                            instance_id: Uuid::now_v7(),
                            instance_name: format!("bench-{i}"),
                            host: "bench".into(),
                            queues: vec![],
                            free_slots: 8,
                            limit: 8,
                            now: chrono::Utc::now(),
                            starvation_after: None,
                            log_prefix: None,
                        })
                        .await;
                    match got {
                        Ok(v) if v.is_empty() => return Ok::<usize, String>(claimed),
                        Ok(v) => claimed += v.len(),
                        Err(e) => return Err(e.to_string()),
                    }
                }
            }));
        }
        let mut total = 0;
        for w in workers {
            total += w.await.map_err(|e| e.to_string())??;
        }
        let secs = start.elapsed().as_secs_f64();
        if total != N {
            return Err(format!("{label}: {total} claims for {N} tasks").into());
        }
        figures.push(format!("{instances}: {:.0}/s", N as f64 / secs));
    }
    println!(
        "{:<44} {}",
        format!("{label} claim throughput (instances: claims/s)"),
        figures.join(", ")
    );
    Ok(())
}

fn stop_instance(mut inst: Child) -> Res<()> {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(inst.id().to_string())
        .status();
    inst.wait()?;
    Ok(())
}

/// One backend under test: a store handle and its running instance.
struct Backend {
    label: &'static str,
    store: Arc<dyn Store>,
    inst: Child,
    rates: Vec<f64>,
}

impl Backend {
    async fn start(label: &'static str, dir: &Path, url: &str) -> Res<Self> {
        Ok(Self {
            label,
            store: jobslot::store::open(url).await?,
            inst: start_instance(dir, url)?,
            rates: Vec::new(),
        })
    }

    /// Prints the median end-to-end rate and returns it.
    fn report(&mut self) -> f64 {
        let shown: Vec<String> = self.rates.iter().map(|r| format!("{r:.0}")).collect();
        let rate = pct(&mut self.rates.clone(), 0.5);
        println!(
            "{:<44} {rate:>8.0} tasks/s  (median of {} rounds of {TASKS}: {})",
            format!("{} end to end", self.label),
            shown.len(),
            shown.join(", ")
        );
        rate
    }
}

/// End-to-end rates of every backend, round by round in turn (so that the
/// machine's changing load falls on all of them alike), then dispatch latency.
/// Returns the median rates in order.
async fn compare_backends(dir: &Path, backends: &mut [Backend]) -> Res<Vec<f64>> {
    tokio::time::sleep(Duration::from_millis(800)).await;
    for _ in 0..rounds() {
        for b in backends.iter_mut() {
            let rate = end_to_end_once(b.store.as_ref()).await?;
            b.rates.push(rate);
        }
    }
    let medians: Vec<f64> = backends.iter_mut().map(Backend::report).collect();
    for b in backends.iter() {
        dispatch_latency(b.label, b.store.as_ref(), dir).await?;
    }
    Ok(medians)
}

fn postgres_url(schema: &str) -> String {
    let base = std::env::var("JOBSLOT_TEST_POSTGRES")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let sep = if base.contains('?') { '&' } else { '?' };
    // BENCH_PG_ASYNC_COMMIT=1: synchronous_commit=off, the durability SQLite has
    // with WAL and synchronous=NORMAL (recent commits may roll back on a crash).
    let extra = if std::env::var("BENCH_PG_ASYNC_COMMIT").is_ok_and(|v| v == "1") {
        "%20-csynchronous_commit%3Doff"
    } else {
        ""
    };
    format!("{base}{sep}options=-csearch_path%3D{schema}{extra}")
}

#[tokio::main]
async fn main() -> Res<()> {
    let dir = tempfile::tempdir()?;
    let dir = dir.path().to_path_buf();
    setup(&dir)?;
    println!("jobslot benchmark: {TASKS} trivial tasks, one instance, {SLOTS} slots");
    let db = dir.join(".jobslot/jobslot.db");
    let sqlite_url = format!("sqlite://{}", db.display());
    if std::env::var("BENCH_ONLY").is_ok_and(|v| v == "not-due") {
        return not_due_phase(&dir, &db, &sqlite_url).await;
    }
    let base = baseline(&dir)?;
    let with_pg = !std::env::var("BENCH_POSTGRES").is_ok_and(|v| v == "0");
    let tag = Uuid::now_v7().simple().to_string();
    let pg_url = postgres_url(&format!("bench_{tag}"));
    let mut backends = vec![Backend::start("SQLite", &dir, &sqlite_url).await?];
    if with_pg {
        backends.push(Backend::start("PostgreSQL", &dir, &pg_url).await?);
    }
    let medians = compare_backends(&dir, &mut backends).await?;
    let rate = medians[0];
    println!(
        "{:<44} {:>8.2}",
        "SQLite ratio end to end / baseline",
        rate / base
    );
    if let [sqlite, pg] = &backends[..] {
        let mut ratios: Vec<f64> = sqlite
            .rates
            .iter()
            .zip(&pg.rates)
            .map(|(s, p)| p / s * 100.0)
            .collect();
        let shown: Vec<String> = ratios.iter().map(|r| format!("{r:.0}")).collect();
        println!(
            "{:<44} {:>8.1} %  (medians; round by round: {} %)",
            "PostgreSQL end to end / SQLite",
            medians[1] / rate * 100.0,
            shown.join(", ")
        );
        println!(
            "{:<44} {:>8.1} %",
            "  median of the round-by-round ratios",
            pct(&mut ratios, 0.5)
        );
    }
    for b in backends {
        stop_instance(b.inst)?;
    }
    if std::env::var("BENCH_ONLY").is_ok_and(|v| v == "e2e") {
        return Ok(());
    }
    {
        let store = jobslot::store::open(&sqlite_url).await?;
        let inst = start_instance(&dir, &sqlite_url)?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        kill_overshoot(store.as_ref()).await?;
        stop_instance(inst)?;
    }
    let claims_dir = dir.join("claims");
    claim_throughput("SQLite", |run| {
        format!(
            "sqlite://{}",
            claims_dir.join(format!("claims-{run}.db")).display()
        )
    })
    .await?;

    if with_pg {
        claim_throughput("PostgreSQL", |run| {
            postgres_url(&format!("bench_{tag}_claims{run}"))
        })
        .await?;
        let _ = Command::new("psql")
            .arg(postgres_url("public").split('?').next().unwrap_or_default())
            .args(["-q", "-c"])
            .arg(format!(
                "DROP SCHEMA IF EXISTS bench_{tag} CASCADE; DROP SCHEMA IF EXISTS bench_{tag}_claims0 CASCADE; DROP SCHEMA IF EXISTS bench_{tag}_claims1 CASCADE; DROP SCHEMA IF EXISTS bench_{tag}_claims2 CASCADE"
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    } else {
        println!("PostgreSQL skipped (BENCH_POSTGRES=0)");
    }

    not_due_phase(&dir, &db, &sqlite_url).await
}

/// The end-to-end rate with a million pending tasks not yet due, against the
/// rate without them.
async fn not_due_phase(dir: &Path, db: &Path, sqlite_url: &str) -> Res<()> {
    jobslot::store::open(sqlite_url).await?; // creates and migrates it
    let million: usize = std::env::var("BENCH_NOT_DUE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let t0 = Instant::now();
    add_not_due(db, million)?;
    println!(
        "{:<44} {:.1} s",
        format!("inserted {million} pending tasks not yet due"),
        t0.elapsed().as_secs_f64()
    );
    // Against a fresh database, round by round in turn, so that both meet the
    // same machine (and the same number of log files in one directory).
    let plain_url = format!("sqlite://{}", dir.join(".jobslot/plain.db").display());
    let mut pair = vec![
        Backend::start("SQLite with them", dir, sqlite_url).await?,
        Backend::start("SQLite without", dir, &plain_url).await?,
    ];
    tokio::time::sleep(Duration::from_millis(1000)).await;
    for _ in 0..rounds() {
        for b in pair.iter_mut() {
            let rate = end_to_end_once(b.store.as_ref()).await?;
            b.rates.push(rate);
        }
    }
    let medians: Vec<f64> = pair.iter_mut().map(Backend::report).collect();
    println!(
        "{:<44} {:>8.1} %",
        format!("rate with {million} not-due pending / without"),
        medians[0] / medians[1] * 100.0
    );
    for b in pair {
        stop_instance(b.inst)?;
    }
    Ok(())
}
