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
mod dispatch;
mod finish;
pub mod prune;
pub mod recurrence;
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
pub use finish::end_abandoned;

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
}

/// A task this instance claimed, from the claim until its end is handed to the
/// finisher. Its process may not have started yet: a stop asked for before then
/// is kept and applied as soon as it has.
#[derive(Default)]
struct Running {
    stop: Option<crate::runner::StopHandle>,
    requested: Option<crate::runner::StopReason>,
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
    let now = Utc::now();
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
    };
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
    });
    tracing::info!(
        instance = %shared.instance.name, id = %shared.instance.id, slots = shared.config.slots,
        queues = ?shared.config.queues, "instance started"
    );
    let finisher = tokio::spawn(finish::run(shared.clone(), finisher_rx));
    let dispatcher = tokio::spawn(dispatch::run(shared.clone()));
    let heartbeat = tokio::spawn(heartbeat(shared.clone()));
    let maintenance = tokio::spawn(maintain_loop(shared.clone()));
    let supervisor = tokio::spawn(workers_loop(shared.clone()));
    let recovery = shared
        .uploads
        .clone()
        .map(|u| tokio::spawn(recover_uploads(shared.clone(), u)));
    let pruner = shared
        .config
        .prune_after
        .map(|d| tokio::spawn(prune_loop(shared.clone(), d)));

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
    store.instance_stop(shared.instance.id, Utc::now()).await?;
    tracing::info!("instance stopped");
    Ok(())
}

/// Finds logs left on this host by instances that are gone (and this one's),
/// at start and then now and then, and queues them for upload.
async fn recover_uploads(shared: Arc<Shared>, uploads: uploads::Uploads) {
    let every = (shared.config.heartbeat_interval * 4).max(Duration::from_millis(500));
    loop {
        let stale = Utc::now() - chrono::Duration::milliseconds(every.as_millis() as i64);
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
        let before = crate::model::time_before(Utc::now(), after);
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
        children::sweep(&shared).await;
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

async fn heartbeat(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.config.heartbeat_interval);
    loop {
        tick.tick().await;
        if let Err(e) = shared
            .store
            .instance_heartbeat(shared.instance.id, Utc::now())
            .await
        {
            tracing::warn!(error = %e, "heartbeat failed");
        }
    }
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
