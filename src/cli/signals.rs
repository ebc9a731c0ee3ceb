//! SIGINT and SIGTERM for the long-running commands (`jobslot run`,
//! `jobslot serve`): the first signal starts a graceful shutdown, the second
//! stops the process at once. Signals are handled for the whole life of the
//! process, so none is ever ignored.

use crate::api::ShutdownTrigger;
use crate::scheduler::StopRequest;
use anyhow::{Context, Result};
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

/// Exit status of a process stopped by a second signal before it had
/// finished stopping.
pub const FORCED_EXIT_STATUS: i32 = 1;

/// Starts handling SIGINT and SIGTERM.
///
/// - The first signal starts `shutdown` (log streams end, `jobslot serve`
///   stops accepting) and sends [`StopRequest::Graceful`].
/// - The second sends [`StopRequest::Immediate`], and the process exits with
///   [`FORCED_EXIT_STATUS`] `force_after` later unless it has ended by then
///   (at once when `force_after` is zero).
/// - Any later signal exits at once.
pub fn install(
    shutdown: ShutdownTrigger,
    force_after: Duration,
) -> Result<mpsc::UnboundedReceiver<StopRequest>> {
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let (stop_tx, stop_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut received = 0u32;
        loop {
            let name = tokio::select! {
                _ = sigint.recv() => "SIGINT",
                _ = sigterm.recv() => "SIGTERM",
            };
            received += 1;
            match received {
                1 => {
                    tracing::info!(
                        "{name} received: finishing running tasks (send again to stop at once)"
                    );
                    shutdown.start();
                    // Nobody listens in `jobslot serve`: not a reason to stop listening.
                    let _ = stop_tx.send(StopRequest::Graceful);
                }
                2 => {
                    tracing::warn!("second signal ({name}): stopping now");
                    let _ = stop_tx.send(StopRequest::Immediate);
                    exit_after(force_after);
                }
                _ => exit_after(Duration::ZERO),
            }
        }
    });
    Ok(stop_rx)
}

/// Exits the process `after` from now, on a thread of its own so that a
/// busy or blocked runtime cannot delay it.
fn exit_after(after: Duration) {
    let exit = move || {
        std::thread::sleep(after);
        // Straight to stderr: the log file's writer may not get to flush.
        eprintln!("jobslot: stopped at once by a second signal");
        std::process::exit(FORCED_EXIT_STATUS);
    };
    if after.is_zero() {
        exit();
    }
    if std::thread::Builder::new()
        .name("forced-exit".into())
        .spawn(exit)
        .is_err()
    {
        std::process::exit(FORCED_EXIT_STATUS);
    }
}
