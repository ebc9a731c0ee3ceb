//! The scheduler: the one place that joins the store, the runner and logs.
//!
//! An instance registers itself, then runs three loops: the dispatcher (claims
//! due tasks while slots are free and hands each to the runner), the finisher
//! (batches spawn records and task ends into store transactions, with the next
//! occurrence of recurring tasks) and the heartbeat. The dispatcher sleeps until
//! the next due time, the next orphan deadline, a wake-up from this process (a
//! slot freed) or from another (the store's change signal), with a short poll
//! only as the fallback.

mod children;
pub mod clock;
mod dispatch;
mod ends;
mod finish;
mod identity;
mod ownership;
pub mod prune;
pub mod recurrence;
mod replica;
mod result_file;
mod supervise;
pub mod uploads;
pub mod workers;

use crate::model::Job;
use crate::runner::Runner;
use crate::schema::SchemaSet;
use crate::store::{Instance, Store, StoreResult};
use chrono::Utc;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};
use uuid::Uuid;

pub use dispatch::apply_schema;
pub use ends::end_abandoned;
pub use identity::{Identities, resolve_identities};

/// Settings of one `jobslot run` instance.
#[derive(Debug, Clone)]
pub struct InstanceConfig {
    /// The project directory (holds `jobs/`, `schema/`, `.jobslot/`).
    pub project: PathBuf,
    /// The database URL, given to tasks as `JOBSLOT_DATABASE`.
    pub database_url: String,
    /// Instance name.
    pub name: String,
    /// Slot count.
    pub slots: u32,
    /// Queues served; empty means all.
    pub queues: Vec<String>,
    /// Time past a task's deadline before another instance fails it as orphaned.
    pub orphan_grace: Duration,
    /// The anti-starvation rule: a task due for longer than this is claimed
    /// before higher-priority ones (see [`crate::store::TaskClaimParams`]).
    pub starvation_after: Option<Duration>,
    /// How long running tasks may finish after a shutdown signal.
    pub shutdown_timeout: Duration,
    /// Fallback poll interval.
    pub poll_interval: Duration,
    /// Heartbeat interval.
    pub heartbeat_interval: Duration,
    /// Per-task log size cap in bytes.
    pub log_cap: u64,
    /// Where task logs are written.
    pub log_dir: PathBuf,
    /// Storage finished tasks' logs are uploaded to (none: they stay local).
    pub storage: Option<Arc<crate::logs::Storage>>,
    /// Backoff of failed uploads.
    pub upload_backoff: uploads::Backoff,
    /// Prune finished tasks and their logs older than this, continuously.
    pub prune_after: Option<Duration>,
    /// The credentials of the jobs that run as another user
    /// ([`resolve_identities`], at start).
    pub identities: Identities,
}

/// A task this instance claimed, from the claim until its end is handed to the
/// finisher. Its process may not have started yet: a stop asked for before then
/// is kept and applied as soon as it has.
struct Running {
    /// The attempt claimed.
    attempt: u32,
    /// Whether it is a worker's replica (stopped when the instance fences itself).
    replica: bool,
    stop: Option<crate::runner::StopHandle>,
    requested: Option<crate::runner::StopReason>,
    /// The database no longer says this instance holds it: it is stopped and
    /// nothing is written for it.
    lost: bool,
}

impl Running {
    fn new(task: &crate::model::Task) -> Running {
        Running {
            attempt: task.attempt,
            replica: workers::ReplicaState::of(task).is_some(),
            stop: None,
            requested: None,
            lost: false,
        }
    }
}

/// What the instances of this process count of their own bookkeeping
/// (served by this process's `/metrics`).
pub static COUNTERS: Counters = Counters {
    released: std::sync::atomic::AtomicU64::new(0),
    lost: std::sync::atomic::AtomicU64::new(0),
    unheld_stopped: std::sync::atomic::AtomicU64::new(0),
    fenced: std::sync::atomic::AtomicU64::new(0),
};

/// Ownership and fencing counts (see [`COUNTERS`]).
#[derive(Debug, Default)]
pub struct Counters {
    /// Tasks the database said this instance held but it did not run, put
    /// back to pending (they never got a process).
    pub released: std::sync::atomic::AtomicU64,
    /// Tasks the database said this instance held, whose process was lost,
    /// ended as `lost (instance NAME)`.
    pub lost: std::sync::atomic::AtomicU64,
    /// Processes stopped because the database no longer said this instance
    /// held their task.
    pub unheld_stopped: std::sync::atomic::AtomicU64,
    /// Times the instance fenced itself (no heartbeat for two intervals).
    pub fenced: std::sync::atomic::AtomicU64,
}

/// State shared by the instance's loops.
struct Shared {
    store: Arc<dyn Store>,
    runner: Runner,
    config: InstanceConfig,
    instance: Instance,
    jobs: BTreeMap<String, Job>,
    used_slots: Mutex<u32>,
    /// When the first slot freed since the last claim was freed: the claim
    /// that follows waits for more to free up, counting from then.
    freed_at: Mutex<Option<tokio::time::Instant>>,
    running: Mutex<HashMap<Uuid, Running>>,
    /// Wakes the dispatcher: a slot freed or a task ended in this process.
    wake: Arc<Notify>,
    /// Wakes the dispatcher: another process committed to the database.
    external: Arc<Notify>,
    /// When the last claim applied the anti-starvation rule.
    aged_claim_at: Mutex<Option<tokio::time::Instant>>,
    /// When the earliest running task of another instance becomes an orphan.
    orphan_deadline: Mutex<Option<chrono::DateTime<Utc>>>,
    finisher: mpsc::UnboundedSender<finish::Event>,
    /// True once shutdown began: claim nothing more.
    stopping: watch::Sender<bool>,
    /// The log upload queue, when storage is configured.
    uploads: Option<uploads::Uploads>,
    /// The database's clock (see [`clock`]).
    clock: clock::Clock,
    /// Held by a claim until its tasks are registered in `running`, and by
    /// the ownership check while it compares the database with `running`.
    claim_lock: tokio::sync::Mutex<()>,
    /// Tasks whose end was handed to the finisher and is not written yet.
    unwritten: Mutex<std::collections::HashSet<Uuid>>,
    /// True while the instance could not record a heartbeat for two
    /// intervals: its replicas are stopped and it claims nothing.
    fenced: std::sync::atomic::AtomicBool,
    /// When the last heartbeat that was recorded was sent.
    heartbeat_ok: Mutex<tokio::time::Instant>,
    /// Claims pause for a moment after a spawn found the machine short.
    shortage: supervise::ShortagePause,
    /// Faults injected by tests (`JOBSLOT_TEST_FAULTS`).
    faults: Faults,
}

/// Faults a test can inject through `JOBSLOT_TEST_FAULTS` (comma-separated):
/// `drop-claimed=N` forgets the first N tasks claimed, as if the claim's
/// answer had been lost after its commit; `panic-dispatcher` makes the
/// dispatcher panic at its first step.
#[derive(Debug, Default)]
struct Faults {
    drop_claimed: std::sync::atomic::AtomicU32,
    panic_dispatcher: bool,
}

impl Faults {
    fn from_env() -> Faults {
        let mut f = Faults::default();
        let spec = std::env::var("JOBSLOT_TEST_FAULTS").unwrap_or_default();
        for part in spec.split(',').filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some(("drop-claimed", n)) => {
                    if let Ok(n) = n.parse() {
                        f.drop_claimed
                            .store(n, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                None if part == "panic-dispatcher" => f.panic_dispatcher = true,
                _ => tracing::warn!(fault = part, "unknown JOBSLOT_TEST_FAULTS entry"),
            }
        }
        f
    }

    /// Whether to forget this claimed task.
    fn drop_claimed(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.drop_claimed
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }
}

impl Shared {
    fn free_slots(&self) -> u32 {
        let used = *self.used_slots.lock().unwrap_or_else(|p| p.into_inner());
        self.config.slots.saturating_sub(used)
    }

    /// Forgets when a slot was last freed (a claim is about to use it).
    fn clear_freed_at(&self) {
        *self.freed_at.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The time the first slot freed since the last claim was freed.
    fn peek_freed_at(&self) -> Option<tokio::time::Instant> {
        *self.freed_at.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The anti-starvation age for the claim about to run: the rule applies
    /// to at most one claim a second (or per `starvation_after`, if shorter),
    /// so the common claim stays a single statement.
    fn starvation_after(&self) -> Option<Duration> {
        let age = self.config.starvation_after?;
        let now = tokio::time::Instant::now();
        let mut last = self.aged_claim_at.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| now < t + age.min(Duration::from_secs(1))) {
            return None;
        }
        *last = Some(now);
        Some(age)
    }

    fn running_count(&self) -> usize {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The current time by the database's clock.
    fn now(&self) -> chrono::DateTime<Utc> {
        self.clock.now()
    }

    fn is_fenced(&self) -> bool {
        self.fenced.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops a claimed task now, or as soon as its process has started.
    fn request_stop(&self, id: Uuid, why: crate::runner::StopReason) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = running.get_mut(&id) {
            match &r.stop {
                Some(stop) => stop.stop(why),
                None => r.requested = Some(why),
            }
        }
    }
}

/// How the instance should stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopRequest {
    /// Stop claiming, let tasks finish up to the shutdown timeout.
    Graceful,
    /// Stop tasks now.
    Immediate,
}

/// Runs one instance until `stop` asks it to end; returns once every task has
/// ended and its outcome is written.
pub async fn run_instance(
    store: Arc<dyn Store>,
    config: InstanceConfig,
    schema: SchemaSet,
    mut stop: mpsc::UnboundedReceiver<StopRequest>,
) -> anyhow::Result<()> {
    let clock = clock::Clock::for_store(store.as_ref());
    let offset = clock.measure(store.as_ref()).await?;
    warn_offset(offset);
    let now = clock.now();
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".to_string());
    let instance = Instance {
        id: Uuid::now_v7(),
        name: config.name.clone(),
        host,
        pid: std::process::id(),
        slots: config.slots,
        queues: config.queues.clone(),
        started_at: now,
        heartbeat_at: now,
        stopped_at: None,
        heartbeat_interval: config.heartbeat_interval,
        clock_offset_ms: offset,
    };
    let registered_at = tokio::time::Instant::now();
    store.instance_register(instance.clone()).await?;
    apply_schema(store.as_ref(), &schema.jobs, &schema.schedules).await?;
    workers::apply_workers(store.as_ref(), &schema.jobs, &schema.workers).await?;
    let wake = Arc::new(Notify::new());
    let external = Arc::new(Notify::new());
    if let Err(e) = store.watch_changes(external.clone()) {
        tracing::warn!(error = %e, "no change signal from the database; polling every {:?}", config.poll_interval);
    }
    let (finisher_tx, finisher_rx) = mpsc::unbounded_channel();
    let uploads = config
        .storage
        .clone()
        .map(|s| uploads::Uploads::start(store.clone(), s, config.upload_backoff));
    let (stopping, _) = watch::channel(false);
    let shared = Arc::new(Shared {
        store: store.clone(),
        runner: Runner::new(tokio::runtime::Handle::current())?,
        config,
        instance,
        jobs: schema.jobs,
        used_slots: Mutex::new(0),
        freed_at: Mutex::new(None),
        running: Mutex::new(HashMap::new()),
        wake,
        external,
        orphan_deadline: Mutex::new(None),
        aged_claim_at: Mutex::new(None),
        finisher: finisher_tx,
        stopping,
        uploads,
        clock,
        claim_lock: tokio::sync::Mutex::new(()),
        unwritten: Mutex::new(std::collections::HashSet::new()),
        fenced: std::sync::atomic::AtomicBool::new(false),
        heartbeat_ok: Mutex::new(registered_at),
        faults: Faults::from_env(),
        shortage: Default::default(),
    });
    tracing::info!(
        instance = %shared.instance.name, id = %shared.instance.id, slots = shared.config.slots,
        queues = ?shared.config.queues, "instance started"
    );
    let finisher = supervised(
        &shared,
        "finisher",
        finish::run(shared.clone(), finisher_rx),
    );
    let dispatcher = supervised(&shared, "dispatcher", dispatch::run(shared.clone()));
    let heartbeat = supervised(&shared, "heartbeat", heartbeat(shared.clone()));
    let fence = supervised(&shared, "fence", fence_loop(shared.clone()));
    let maintenance = supervised(&shared, "maintenance", maintain_loop(shared.clone()));
    let supervisor = supervised(&shared, "workers", workers_loop(shared.clone()));
    let recovery = shared
        .uploads
        .clone()
        .map(|u| supervised(&shared, "log recovery", recover_uploads(shared.clone(), u)));
    let pruner = shared
        .config
        .prune_after
        .map(|d| supervised(&shared, "prune", prune_loop(shared.clone(), d)));

    // Two-phase shutdown: stop claiming, give running tasks a deadline, then stop them.
    let first = stop.recv().await.unwrap_or(StopRequest::Graceful);
    shared.stopping.send_replace(true);
    shared.wake.notify_one();
    // Let the dispatcher finish the step it is in, so every task it claimed is
    // registered (and will be stopped or awaited) before shutdown goes on.
    if let Err(e) = dispatcher.await {
        tracing::error!(error = %e, "the dispatcher ended abnormally");
    }
    tracing::info!(
        running = shared.running_count(),
        "shutting down: no new tasks will be claimed"
    );
    if first == StopRequest::Graceful {
        let deadline = tokio::time::Instant::now() + shared.config.shutdown_timeout;
        loop {
            if shared.running_count() == 0 {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                Some(_) = stop.recv() => break,
            }
        }
    }
    let ids: Vec<Uuid> = shared
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .keys()
        .copied()
        .collect();
    if !ids.is_empty() {
        tracing::info!(tasks = ids.len(), "stopping tasks still running");
    }
    for id in ids {
        shared.request_stop(id, crate::runner::StopReason::Shutdown);
    }
    while shared.running_count() > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    heartbeat.abort();
    fence.abort();
    maintenance.abort();
    supervisor.abort();
    // The finisher ends when every sender is gone; the last sender is in `shared`.
    let _ = shared.finisher.send(finish::Event::Flush);
    let done = tokio::sync::oneshot::channel::<()>();
    let _ = shared.finisher.send(finish::Event::Shutdown(done.0));
    let _ = done.1.await;
    finisher.abort();
    for task in [recovery, pruner].into_iter().flatten() {
        task.abort();
    }
    if let Some(uploads) = &shared.uploads {
        // Upload what is pending, but do not hang on a storage that is down:
        // whatever is left stays local and is uploaded by the next instance.
        let limit = shared.config.shutdown_timeout.min(Duration::from_secs(10));
        let left = uploads.drain(limit).await;
        if left > 0 {
            tracing::warn!(
                logs = left,
                "storage unreachable: logs stay local; the next instance on this host uploads them"
            );
        }
    }
    store
        .instance_stop(shared.instance.id, shared.now())
        .await?;
    tracing::info!("instance stopped");
    Ok(())
}

/// Finds logs left on this host by instances that are gone (and this one's),
/// at start and then now and then, and queues them for upload.
async fn recover_uploads(shared: Arc<Shared>, uploads: uploads::Uploads) {
    let every = (shared.config.heartbeat_interval * 4).max(Duration::from_millis(500));
    loop {
        let stale = shared.now() - chrono::Duration::milliseconds(every.as_millis() as i64);
        let live_others: Vec<Uuid> = match shared.store.instance_list().await {
            Ok(list) => list
                .into_iter()
                .filter(|i| {
                    i.id != shared.instance.id && i.stopped_at.is_none() && i.heartbeat_at > stale
                })
                .map(|i| i.id)
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list instances");
                tokio::time::sleep(every).await;
                continue;
            }
        };
        let found = uploads
            .recover(shared.store.as_ref(), &shared.instance.host, &live_others)
            .await;
        if found > 0 {
            tracing::info!(logs = found, "queued local logs for upload");
        }
        tokio::time::sleep(
            every
                .max(Duration::from_secs(2))
                .min(Duration::from_secs(30)),
        )
        .await;
    }
}

/// Prunes finished tasks older than `after`, continuously.
async fn prune_loop(shared: Arc<Shared>, after: Duration) {
    let every = (after / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    loop {
        let before = crate::model::time_before(shared.now(), after);
        match prune::prune(
            shared.store.as_ref(),
            shared.config.storage.as_deref(),
            before,
            &[],
            1000,
        )
        .await
        {
            Ok(r) if r.tasks > 0 => tracing::info!(
                tasks = r.tasks,
                local_logs = r.local_logs,
                stored_logs = r.stored_logs,
                "pruned"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "prune failed"),
        }
        tokio::time::sleep(every).await;
    }
}

/// How often an instance checks whether the tasks table needs maintenance.
const MAINTAIN_EVERY: Duration = Duration::from_secs(1);

/// Keeps the tasks table fast under churn (see [`Store::task_table_maintain`]).
async fn maintain_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(MAINTAIN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        ends::sweep(&shared).await;
        match shared.store.task_table_maintain().await {
            Ok(crate::store::TableMaintenance::Vacuumed) => {
                tracing::debug!("vacuumed the tasks table")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "table maintenance failed"),
        }
    }
}

/// Keeps every worker at its replica count (see [`workers::reconcile`]),
/// once per poll interval (at most a second), until shutdown begins.
async fn workers_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.config.poll_interval.min(Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping = shared.stopping.subscribe();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopping.changed() => {}
        }
        if *stopping.borrow() {
            return;
        }
        if let Err(e) = workers::reconcile(&shared).await {
            tracing::warn!(error = %e, "keeping workers at their replica count failed; trying again");
        }
    }
}

/// Records a heartbeat every interval, with the clock's offset from the
/// database's; after each one, checks what this instance owns (see
/// [`ownership`]). A heartbeat that takes longer than three intervals (at
/// least 2 s) is given up and tried again.
async fn heartbeat(shared: Arc<Shared>) {
    let every = shared.config.heartbeat_interval;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned_offset = false;
    loop {
        tick.tick().await;
        let sent = tokio::time::Instant::now();
        let beat = async {
            let offset = shared.clock.measure(shared.store.as_ref()).await?;
            shared
                .store
                .instance_heartbeat(shared.instance.id, shared.now(), offset)
                .await?;
            Ok::<i64, crate::store::StoreError>(offset)
        };
        match tokio::time::timeout((every * 3).max(Duration::from_secs(2)), beat).await {
            Ok(Ok(offset)) => {
                *shared
                    .heartbeat_ok
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = sent;
                let far = offset.unsigned_abs() > clock::OFFSET_WARNING.as_millis() as u64;
                if far && !warned_offset {
                    warn_offset(offset);
                }
                warned_offset = far;
                if shared
                    .fenced
                    .swap(false, std::sync::atomic::Ordering::SeqCst)
                {
                    tracing::warn!("heartbeat recorded again: the instance claims again");
                    shared.wake.notify_one();
                }
                if let Err(e) = ownership::check(&shared).await {
                    tracing::warn!(error = %e, "cannot compare the tasks held with those running; trying at the next heartbeat");
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "heartbeat failed"),
            Err(_) => tracing::warn!("heartbeat timed out"),
        }
    }
}

/// Logs a clock offset beyond [`clock::OFFSET_WARNING`].
fn warn_offset(offset_ms: i64) {
    if offset_ms.unsigned_abs() > clock::OFFSET_WARNING.as_millis() as u64 {
        tracing::warn!(
            offset_ms,
            "this host's clock is {:.1} s {} the database's; jobslot dates everything by the database's clock, but check the host's time service",
            offset_ms.unsigned_abs() as f64 / 1000.0,
            if offset_ms > 0 { "ahead of" } else { "behind" }
        );
    }
}

/// Self-fencing: once no heartbeat was recorded for two intervals
/// ([`Instance::fence_after`]), the instance stops its worker replicas (SIGTERM, SIGKILL after
/// their grace) and claims nothing until a heartbeat is recorded again, so
/// that when others replace those replicas (after three intervals) the old
/// copies are already stopping. Ordinary tasks keep running; their ends are
/// written once the database is back.
async fn fence_loop(shared: Arc<Shared>) {
    let every = shared.config.heartbeat_interval;
    let limit = Instance::fence_after(every);
    let mut tick = tokio::time::interval((every / 4).max(Duration::from_millis(5)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let last = *shared
            .heartbeat_ok
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if last.elapsed() < limit || shared.is_fenced() {
            continue;
        }
        shared
            .fenced
            .store(true, std::sync::atomic::Ordering::SeqCst);
        COUNTERS
            .fenced
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let replicas: Vec<Uuid> = shared
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, r)| r.replica)
            .map(|(id, _)| *id)
            .collect();
        tracing::error!(
            silent = ?last.elapsed(),
            replicas = replicas.len(),
            "no heartbeat recorded for {limit:?}: stopping this instance's worker replicas before others replace them, and claiming nothing until the database answers"
        );
        for id in replicas {
            shared.request_stop(id, crate::runner::StopReason::Shutdown);
        }
    }
}

/// Spawns one of the instance's long-lived loops. If it panics, or ends
/// while the instance is not stopping, the instance cannot do its work any
/// more: it logs why and exits with status 70 at once (its tasks' processes
/// die with it, by their parent-death signal, and go through the orphan
/// rule), rather than heartbeat on while doing nothing.
fn supervised<F>(shared: &Arc<Shared>, name: &'static str, fut: F) -> tokio::task::JoinHandle<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    use futures_util::FutureExt;
    let stopping = shared.stopping.subscribe();
    tokio::spawn(async move {
        match std::panic::AssertUnwindSafe(fut).catch_unwind().await {
            Err(panic) => fatal(name, &format!("panicked: {}", panic_text(&*panic))),
            Ok(()) if !*stopping.borrow() => fatal(name, "ended unexpectedly"),
            Ok(()) => {}
        }
    })
}

/// The message a panic carried.
pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}

/// Ends the process: a part of the instance it cannot work without failed.
pub(crate) fn fatal(part: &str, why: &str) -> ! {
    let line = format!(
        "jobslot: fatal: the instance's {part} {why}; stopping the instance (exit 70) so that its tasks go to other instances by the orphan rule"
    );
    tracing::error!("{line}");
    // The log writer may be buffered: say it on stderr too.
    eprintln!("{line}");
    std::process::exit(70)
}

/// Retries a store operation until it succeeds (outcomes must not be lost).
async fn persist<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StoreResult<T>>,
{
    let mut delay = Duration::from_millis(50);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) => {
                tracing::error!(error = %e, "{what} failed; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
