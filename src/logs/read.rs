//! Reading a task's log back, whole or following it while the task runs:
//! from the local file while it is there, else from storage (a finished
//! task's log moves there once uploaded). Shared by `jobslot logs` and the
//! HTTP API.
//!
//! A [`LogReader`] made [`confined`](LogReader::confined) (the API's) reads
//! only what belongs to the task: the file of that name in the project's log
//! directory, never a path taken from the database, and a stored object of
//! that name in the configured bucket.

use super::{Storage, parse_s3_url};
use crate::model::{Task, TaskStatus, log_file_name};
use crate::store::{Store, StoreError};
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Why a log cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Storage or the file system failed.
    #[error("{0}")]
    Read(String),
    /// The log is not where the task says (or not where this reader may
    /// look).
    #[error("{0}")]
    Missing(String),
}

/// Reads task logs.
#[derive(Clone)]
pub struct LogReader {
    log_dir: PathBuf,
    storage: Arc<Storage>,
    confined: bool,
}

impl LogReader {
    /// A reader that follows the locations tasks record (the CLI's: the
    /// person running it can read those files anyway).
    pub fn new(log_dir: PathBuf, storage: Arc<Storage>) -> Self {
        LogReader {
            log_dir,
            storage,
            confined: false,
        }
    }

    /// A reader that only reads the project's log files and stored logs.
    pub fn confined(log_dir: PathBuf, storage: Arc<Storage>) -> Self {
        LogReader {
            log_dir,
            storage,
            confined: true,
        }
    }

    /// Reads attempt `attempt`'s log of task `id`, recorded at `location`,
    /// from byte `offset` on. `None` when there is nothing there (not written
    /// yet, or moved to storage meanwhile).
    pub async fn read(
        &self,
        id: Uuid,
        attempt: u32,
        location: Option<&str>,
        offset: u64,
    ) -> Result<Option<Vec<u8>>, LogError> {
        let name = log_file_name(id, attempt);
        if let Some(url) = location.filter(|l| l.starts_with("s3://")) {
            if self.confined {
                self.check_stored(url, &name)?;
            }
            return self
                .storage
                .read(url, offset)
                .await
                .map(Some)
                .map_err(|e| LogError::Read(e.to_string()));
        }
        let path = match location {
            Some(l) if !self.confined => PathBuf::from(l),
            _ => self.log_dir.join(&name),
        };
        let confined = self.confined;
        tokio::task::spawn_blocking(move || read_file(&path, offset, confined))
            .await
            .map_err(|e| LogError::Read(format!("log reader stopped: {e}")))?
    }

    /// A stored log the API may read: in the configured bucket (when one is
    /// set), its key ending with the task's log file name.
    fn check_stored(&self, url: &str, name: &str) -> Result<(), LogError> {
        let refuse = || LogError::Missing(format!("the log at {url} is not one this server reads"));
        let (bucket, key) = parse_s3_url(url).ok_or_else(refuse)?;
        if self.storage.bucket().is_some_and(|b| b != bucket) {
            return Err(refuse());
        }
        if key.rsplit('/').next() != Some(name) {
            return Err(refuse());
        }
        Ok(())
    }

    /// Reads a task's current attempt from its start: each call returns the
    /// next bytes; `None` once everything was returned. With `wait`, it
    /// follows the log while the task runs, and ends once the task has
    /// ended; without, it returns what is there now.
    pub fn follow(&self, store: Arc<dyn Store>, task: Task, wait: bool) -> Follower {
        Follower {
            reader: self.clone(),
            store,
            task,
            offset: 0,
            wait,
            done: false,
            poll: Duration::from_millis(100),
        }
    }
}

fn read_file(
    path: &std::path::Path,
    offset: u64,
    confined: bool,
) -> Result<Option<Vec<u8>>, LogError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut open = std::fs::OpenOptions::new();
    open.read(true);
    if confined {
        // A link in the log directory is not a log.
        open.custom_flags(libc::O_NOFOLLOW);
    }
    match open.open(path) {
        Ok(mut f) => {
            let mut buf = Vec::new();
            f.seek(SeekFrom::Start(offset))
                .and_then(|_| f.read_to_end(&mut buf))
                .map_err(|e| LogError::Read(format!("cannot read {}: {e}", path.display())))?;
            Ok(Some(buf))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LogError::Read(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// Follows one task's log; see [`LogReader::follow`].
pub struct Follower {
    reader: LogReader,
    store: Arc<dyn Store>,
    task: Task,
    offset: u64,
    wait: bool,
    done: bool,
    poll: Duration,
}

impl Follower {
    /// The task as last read.
    pub fn task(&self) -> &Task {
        &self.task
    }

    /// The next bytes of the log, waiting for them while the task runs;
    /// `None` once the task has ended and its whole log was returned. A task
    /// that never started has an empty log.
    pub async fn next(&mut self) -> Result<Option<Vec<u8>>, LogError> {
        loop {
            if self.done {
                return Ok(None);
            }
            let ended = !self.wait
                || self.task.status.is_terminal()
                || self.task.status == TaskStatus::Waiting;
            let location = self.task.log.clone();
            let chunk = self
                .reader
                .read(
                    self.task.id,
                    self.task.attempt,
                    location.as_deref(),
                    self.offset,
                )
                .await?;
            match chunk {
                Some(buf) if !buf.is_empty() => {
                    self.offset += buf.len() as u64;
                    return Ok(Some(buf));
                }
                Some(_) => {}
                None => {
                    // Not there: uploaded meanwhile, not started, or gone.
                    if let Some(now) = self.store.task_get(self.task.id).await?
                        && (now.log != self.task.log || now.attempt != self.task.attempt)
                    {
                        if now.attempt != self.task.attempt {
                            self.offset = 0;
                        }
                        self.task = now;
                        continue;
                    }
                    if ended && self.task.started_at.is_some() && self.offset == 0 {
                        return Err(LogError::Missing(format!(
                            "the log of task {} is not at {}",
                            self.task.id,
                            location
                                .unwrap_or_else(|| log_file_name(self.task.id, self.task.attempt))
                        )));
                    }
                }
            }
            if ended {
                self.done = true;
                return Ok(None);
            }
            tokio::time::sleep(self.poll).await;
            if let Some(t) = self.store.task_get(self.task.id).await? {
                if t.attempt != self.task.attempt {
                    // A retry starts a new log.
                    self.offset = 0;
                }
                self.task = t;
            }
        }
    }
}
