//! The capped copy of a task's output into its log file. stdout and stderr share
//! one pipe, so their lines land in the order they were written. Past the cap a
//! one-line notice is written once and the rest is read and discarded, so the
//! child never blocks on a full pipe. The copy does not decide when a task ends:
//! the owner tells it to finish, and it then drains for a bounded time only,
//! because a process that escaped the group may hold the pipe open forever.

use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// What the copy wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LogStats {
    /// Bytes of the child's output written to the log (at most the cap).
    pub bytes: u64,
    /// Whether output past the cap was discarded.
    pub truncated: bool,
}

/// Writes up to `cap` bytes of output to `out`, then the truncation notice once.
struct CappedSink {
    out: Option<File>,
    cap: u64,
    stats: LogStats,
    last_byte: u8,
}

impl CappedSink {
    async fn write(&mut self, chunk: &[u8]) {
        let room = self.cap.saturating_sub(self.stats.bytes);
        let keep = chunk.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        if keep > 0 {
            self.put(&chunk[..keep]).await;
            self.stats.bytes += keep as u64;
            self.last_byte = chunk[keep - 1];
        }
        if keep < chunk.len() && !self.stats.truncated {
            self.stats.truncated = true;
            let newline = if self.stats.bytes > 0 && self.last_byte != b'\n' {
                "\n"
            } else {
                ""
            };
            let notice = format!("{newline}[jobslot] log truncated at {} bytes\n", self.cap);
            self.put(notice.as_bytes()).await;
        }
    }

    /// Appends to the file; after a write error the log is abandoned (the
    /// child's output is still drained).
    async fn put(&mut self, bytes: &[u8]) {
        let Some(out) = self.out.as_mut() else {
            return;
        };
        if let Err(error) = out.write_all(bytes).await {
            tracing::warn!(%error, "task log write failed; discarding the rest of its output");
            self.out = None;
        }
    }

    async fn close(mut self) -> LogStats {
        if let Some(out) = self.out.as_mut()
            && let Err(error) = out.flush().await
        {
            tracing::warn!(%error, "task log flush failed");
        }
        self.stats
    }
}

/// Copies `pipe` into `out` until end of file, or until the instant sent on
/// `finish` has passed (sent once the task's leader has exited).
pub(crate) async fn copy(
    mut pipe: pipe::Receiver,
    out: File,
    cap: u64,
    mut finish: oneshot::Receiver<Instant>,
) -> LogStats {
    let mut sink = CappedSink {
        out: Some(out),
        cap,
        stats: LogStats::default(),
        last_byte: b'\n',
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut drain_until: Option<Instant> = None;
    loop {
        let read = match drain_until {
            None => tokio::select! {
                read = pipe.read(&mut buf) => read,
                until = &mut finish => {
                    // A dropped sender means the owner is gone: stop draining now.
                    drain_until = Some(until.unwrap_or_else(|_| Instant::now()));
                    continue;
                }
            },
            Some(until) => match tokio::time::timeout_at(until, pipe.read(&mut buf)).await {
                Ok(read) => read,
                Err(_elapsed) => {
                    tracing::debug!("task output pipe still open after the drain; closing it");
                    break;
                }
            },
        };
        match read {
            Ok(0) => break,
            Ok(n) => sink.write(&buf[..n]).await,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => {
                tracing::warn!(%error, "reading task output failed");
                break;
            }
        }
    }
    sink.close().await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sink_into(path: &std::path::Path, cap: u64) -> CappedSink {
        CappedSink {
            out: Some(File::create(path).await.expect("create log")),
            cap,
            stats: LogStats::default(),
            last_byte: b'\n',
        }
    }

    #[tokio::test]
    async fn cap_cuts_mid_chunk_and_notes_it_once_on_its_own_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.log");
        let mut sink = sink_into(&path, 5).await;
        sink.write(b"abc").await;
        sink.write(b"defgh").await;
        sink.write(b"ijk").await;
        let stats = sink.close().await;
        assert_eq!(
            stats,
            LogStats {
                bytes: 5,
                truncated: true
            }
        );
        let text = std::fs::read_to_string(&path).expect("read log");
        assert_eq!(text, "abcde\n[jobslot] log truncated at 5 bytes\n");
    }

    #[tokio::test]
    async fn output_exactly_at_the_cap_is_not_truncated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.log");
        let mut sink = sink_into(&path, 4).await;
        sink.write(b"abc\n").await;
        let stats = sink.close().await;
        assert!(!stats.truncated);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "abc\n");
    }
}
