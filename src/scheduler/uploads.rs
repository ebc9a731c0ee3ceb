//! Shipping finished tasks' logs to storage, and the logs of attempts that
//! were retried. A task's end never waits for it: the finisher queues the log
//! once the end (or the retry) is written. Workers upload with retries and
//! backoff while storage is down; the database (`log_local`, on tasks and on
//! attempts) is the durable queue, so logs left by a stopped or crashed
//! instance are found and uploaded by the next instance on the same host. Once
//! the storage has a log, its URL is recorded (compare-and-set), then the local
//! file is removed. Each log is stored under its file name
//! (`<id>.log`, `<id>.attempt-N.log`), so no attempt overwrites another's.

use super::persist;
use crate::logs::Storage;
use crate::model::{log_file_attempt, log_file_name};
use crate::store::{LocalAttemptLog, LocalLog, Store, StoreResult};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

/// Backoff between failed attempts of one upload.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// First delay.
    pub initial: Duration,
    /// Largest delay.
    pub max: Duration,
}

/// A queued log: its task, and the attempt for an earlier attempt's log.
type ItemKey = (Uuid, Option<u32>);

/// A log to ship.
#[derive(Debug, Clone)]
enum Item {
    /// A task's own log (its current or last attempt's), recorded on the task.
    Task(LocalLog),
    /// The log of an attempt that was retried, recorded on the attempt.
    Attempt(LocalAttemptLog),
}

impl Item {
    /// What the queue knows it by.
    fn key(&self) -> ItemKey {
        (self.id(), self.attempt())
    }

    fn id(&self) -> Uuid {
        match self {
            Item::Task(l) => l.id,
            Item::Attempt(l) => l.id,
        }
    }

    /// The attempt, for an earlier attempt's log.
    fn attempt(&self) -> Option<u32> {
        match self {
            Item::Task(_) => None,
            Item::Attempt(l) => Some(l.attempt),
        }
    }

    fn instance(&self) -> Option<Uuid> {
        match self {
            Item::Task(l) => l.instance,
            Item::Attempt(l) => l.instance,
        }
    }

    fn path(&self) -> &str {
        match self {
            Item::Task(l) => &l.path,
            Item::Attempt(l) => &l.path,
        }
    }

    /// The stored object's name: the attempt's log file name. A task's own
    /// log keeps the name the runner gave its file (which says the attempt);
    /// a file named otherwise is stored as `<id>.log`.
    fn object_name(&self) -> String {
        match self {
            Item::Attempt(l) => log_file_name(l.id, l.attempt),
            Item::Task(l) => std::path::Path::new(&l.path)
                .file_name()
                .and_then(|n| n.to_str())
                .filter(|n| log_file_attempt(l.id, n).is_some())
                .map_or_else(|| log_file_name(l.id, 1), str::to_string),
        }
    }

    /// Records the log's new location, if it is still recorded as local.
    async fn record(&self, store: &dyn Store, location: &str) -> StoreResult<bool> {
        match self {
            Item::Task(l) => store.task_log_uploaded(l.id, location).await,
            Item::Attempt(l) => {
                store
                    .task_attempt_log_uploaded(l.id, l.attempt, location)
                    .await
            }
        }
    }
}

/// The upload queue of one instance.
#[derive(Clone)]
pub struct Uploads {
    tx: mpsc::UnboundedSender<Item>,
    queued: Arc<Mutex<HashSet<ItemKey>>>,
    pending: Arc<AtomicUsize>,
    idle: Arc<Notify>,
}

const WORKERS: usize = 4;

impl Uploads {
    /// Starts the upload workers.
    pub fn start(store: Arc<dyn Store>, storage: Arc<Storage>, backoff: Backoff) -> Uploads {
        let (tx, rx) = mpsc::unbounded_channel::<Item>();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let uploads = Uploads {
            tx,
            queued: Arc::default(),
            pending: Arc::default(),
            idle: Arc::default(),
        };
        for _ in 0..WORKERS {
            let (store, storage, rx, me) =
                (store.clone(), storage.clone(), rx.clone(), uploads.clone());
            tokio::spawn(async move {
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some(log) = next else { return };
                    upload_one(store.as_ref(), &storage, &log, backoff).await;
                    me.queued
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&log.key());
                    if me.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
                        me.idle.notify_waiters();
                    }
                }
            });
        }
        uploads
    }

    /// Queues a task's log unless it is already queued.
    pub fn push(&self, log: LocalLog) {
        self.enqueue(Item::Task(log));
    }

    /// Queues the log of an attempt that was retried unless it is already queued.
    pub fn push_attempt(&self, log: LocalAttemptLog) {
        self.enqueue(Item::Attempt(log));
    }

    fn enqueue(&self, log: Item) {
        if !self
            .queued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(log.key())
        {
            return;
        }
        self.pending.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(log).is_err() {
            self.pending.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Logs queued or being uploaded.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// Waits until the queue is empty or `limit` has passed; returns what is left.
    pub async fn drain(&self, limit: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        while self.pending() > 0 {
            let idle = self.idle.notified();
            tokio::select! {
                _ = idle => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        self.pending()
    }

    /// Queues the logs (of tasks and of retried attempts) left on this host by
    /// instances that are gone (a previous run, a crash) and by this one. Logs
    /// of other live instances are theirs to upload.
    pub async fn recover(&self, store: &dyn Store, host: &str, live_others: &[Uuid]) -> usize {
        let tasks = persist("listing logs to upload", || {
            store.task_logs_local(host, 10_000)
        })
        .await;
        let attempts = persist("listing attempt logs to upload", || {
            store.task_attempt_logs_local(host, 10_000)
        })
        .await;
        let mut found = 0;
        let items =
            (tasks.into_iter().map(Item::Task)).chain(attempts.into_iter().map(Item::Attempt));
        for log in items {
            if log.instance().is_some_and(|i| live_others.contains(&i)) {
                continue;
            }
            found += 1;
            self.enqueue(log);
        }
        found
    }
}

async fn upload_one(store: &dyn Store, storage: &Storage, log: &Item, backoff: Backoff) {
    let (task, attempt) = (log.id(), log.attempt());
    let path = std::path::Path::new(log.path());
    let mut delay = backoff.initial;
    let mut failures = 0u32;
    loop {
        if !path.exists() {
            // Nothing to ship (the task never produced a file, or it is gone):
            // stop looking for it, keep the recorded location.
            tracing::warn!(%task, ?attempt, path = %log.path(), "log file missing; not uploaded");
            let _ = persist("recording a missing log", || log.record(store, log.path())).await;
            return;
        }
        match storage.upload(&log.object_name(), path).await {
            Ok(url) => {
                if failures > 0 {
                    tracing::info!(%task, ?attempt, %url, failures, "log uploaded after retries");
                } else {
                    tracing::debug!(%task, ?attempt, %url, "log uploaded");
                }
                persist("recording an uploaded log", || log.record(store, &url)).await;
                if let Err(e) = tokio::fs::remove_file(path).await {
                    tracing::warn!(%task, ?attempt, error = %e, "cannot remove the uploaded local log");
                }
                return;
            }
            Err(e) => {
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!(%task, ?attempt, error = %e, retry_in = ?delay, failures, "log upload failed; the log stays local and is retried");
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(backoff.max);
            }
        }
    }
}
