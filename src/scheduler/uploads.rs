//! Shipping finished tasks' logs to storage. A task's end never waits for it:
//! the finisher queues the log once the end is written. Workers upload with
//! retries and backoff while storage is down; the database (`log_local`) is the
//! durable queue, so logs left by a stopped or crashed instance are found and
//! uploaded by the next instance on the same host. Once the storage has a log,
//! its URL is recorded, then the local file is removed.

use super::persist;
use crate::logs::Storage;
use crate::store::{LocalLog, Store};
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

/// The upload queue of one instance.
#[derive(Clone)]
pub struct Uploads {
    tx: mpsc::UnboundedSender<LocalLog>,
    queued: Arc<Mutex<HashSet<Uuid>>>,
    pending: Arc<AtomicUsize>,
    idle: Arc<Notify>,
}

const WORKERS: usize = 4;

impl Uploads {
    /// Starts the upload workers.
    pub fn start(store: Arc<dyn Store>, storage: Arc<Storage>, backoff: Backoff) -> Uploads {
        let (tx, rx) = mpsc::unbounded_channel::<LocalLog>();
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
                        .remove(&log.id);
                    if me.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
                        me.idle.notify_waiters();
                    }
                }
            });
        }
        uploads
    }

    /// Queues a log unless it is already queued.
    pub fn push(&self, log: LocalLog) {
        if !self
            .queued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(log.id)
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

    /// Queues the logs left on this host by instances that are gone (a previous
    /// run, a crash) and by this one. Logs of other live instances are theirs to
    /// upload.
    pub async fn recover(&self, store: &dyn Store, host: &str, live_others: &[Uuid]) -> usize {
        let mut found = 0;
        let logs = persist("listing logs to upload", || {
            store.task_logs_local(host, 10_000)
        })
        .await;
        for log in logs {
            if log.instance.is_some_and(|i| live_others.contains(&i)) {
                continue;
            }
            found += 1;
            self.push(log);
        }
        found
    }
}

async fn upload_one(store: &dyn Store, storage: &Storage, log: &LocalLog, backoff: Backoff) {
    let path = std::path::Path::new(&log.path);
    let mut delay = backoff.initial;
    let mut failures = 0u32;
    loop {
        if !path.exists() {
            // Nothing to ship (the task never produced a file, or it is gone):
            // stop looking for it, keep the recorded location.
            tracing::warn!(task = %log.id, path = %log.path, "log file missing; not uploaded");
            let _ = persist("recording a missing log", || {
                store.task_log_uploaded(log.id, &log.path)
            })
            .await;
            return;
        }
        match storage.upload(log.id, path).await {
            Ok(url) => {
                if failures > 0 {
                    tracing::info!(task = %log.id, %url, failures, "log uploaded after retries");
                } else {
                    tracing::debug!(task = %log.id, %url, "log uploaded");
                }
                persist("recording an uploaded log", || {
                    store.task_log_uploaded(log.id, &url)
                })
                .await;
                if let Err(e) = tokio::fs::remove_file(path).await {
                    tracing::warn!(task = %log.id, error = %e, "cannot remove the uploaded local log");
                }
                return;
            }
            Err(e) => {
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!(task = %log.id, error = %e, retry_in = ?delay, failures, "log upload failed; the log stays local and is retried");
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(backoff.max);
            }
        }
    }
}
