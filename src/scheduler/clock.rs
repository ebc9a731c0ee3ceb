//! One clock for every instance sharing a database.
//!
//! Claims, deadlines, heartbeats and the orphan and gone checks compare times
//! written by one host with times read by another. On PostgreSQL an instance
//! therefore never dates anything by its host's wall clock: at start and at
//! every heartbeat it reads the database's clock (halfway through the round
//! trip), and in between it extrapolates from that reading with the kernel's
//! boot-time clock, which counts suspended time and is never stepped. A host
//! whose clock is off by minutes, or a VM whose clock jumped when it
//! resumed, still dates its claims and judges others' deadlines by the
//! database's time. The error is half a round trip plus the drift of the
//! boot-time clock over one heartbeat interval; readings within 25 ms of the
//! running clock leave it as it runs, so intervals measured on it do not
//! wobble with the round trip's jitter.
//!
//! On SQLite the database is on this host and its clock is the host's: the
//! clock is `Utc::now()`.

use crate::store::{Store, StoreResult};
use chrono::{DateTime, Utc};
use std::sync::Mutex;
use std::time::Duration;

/// Offsets beyond this are reported (log, `jobslot instances`, `/metrics`).
pub const OFFSET_WARNING: Duration = Duration::from_secs(1);

/// How far a new reading may be from the running clock and leave it as it
/// runs (the jitter of half a round trip).
const STEADY_WITHIN: Duration = Duration::from_millis(25);

/// A reading of the database's clock.
#[derive(Debug, Clone, Copy)]
struct Reading {
    /// The database's time at `at`.
    db: DateTime<Utc>,
    /// The boot-time clock then.
    at: Duration,
    /// How far the host's wall clock was ahead of the database's.
    offset_ms: i64,
}

/// The instance's clock (see the module documentation).
#[derive(Debug)]
pub struct Clock {
    /// Whether the database's clock is this host's (SQLite).
    local: bool,
    last: Mutex<Option<Reading>>,
}

/// The boot-time clock: monotonic, counting suspended time.
fn boottime() -> Duration {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME) {
        Ok(t) => Duration::new(t.tv_sec().max(0) as u64, t.tv_nsec().max(0) as u32),
        // Every Linux since 2.6.39 has it; fall back to the monotonic clock.
        Err(_) => {
            let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
                .unwrap_or_else(|_| nix::sys::time::TimeSpec::new(0, 0));
            Duration::new(t.tv_sec().max(0) as u64, t.tv_nsec().max(0) as u32)
        }
    }
}

impl Clock {
    /// The clock of an instance of `store`.
    pub fn for_store(store: &dyn Store) -> Clock {
        Clock {
            local: store.clock_is_local(),
            last: Mutex::new(None),
        }
    }

    /// The current time, by the database's clock.
    pub fn now(&self) -> DateTime<Utc> {
        if self.local {
            return Utc::now();
        }
        let last = *self.last.lock().unwrap_or_else(|p| p.into_inner());
        match last {
            None => Utc::now(),
            Some(r) => {
                let since = boottime().saturating_sub(r.at);
                r.db + chrono::Duration::from_std(since).unwrap_or_default()
            }
        }
    }

    /// The host's offset from the database's clock at the last reading, in
    /// milliseconds (positive: the host runs ahead).
    pub fn offset_ms(&self) -> i64 {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map_or(0, |r| r.offset_ms)
    }

    /// Reads the database's clock and returns the host's offset from it.
    pub async fn measure(&self, store: &dyn Store) -> StoreResult<i64> {
        if self.local {
            return Ok(0);
        }
        let before = boottime();
        let db = store.db_now().await?;
        let after = boottime();
        let mid = before + (after - before) / 2;
        let host = Utc::now() - chrono::Duration::from_std(after - mid).unwrap_or_default();
        let offset_ms = (host - db).num_milliseconds();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        // A steady clock: a reading within the jitter of the round trip of
        // what the clock says keeps the clock as it runs (so intervals
        // measured on it are the boot clock's), and only a real difference
        // (drift, a jump of the database's clock) moves it.
        let keep = last.as_ref().is_some_and(|r| {
            let ours =
                r.db + chrono::Duration::from_std(mid.saturating_sub(r.at)).unwrap_or_default();
            (ours - db).num_milliseconds().abs() <= STEADY_WITHIN.as_millis() as i64
        });
        match last.as_mut() {
            Some(r) if keep => r.offset_ms = offset_ms,
            _ => {
                *last = Some(Reading {
                    db,
                    at: mid,
                    offset_ms,
                })
            }
        }
        Ok(offset_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boot_time_clock_moves_forward() {
        let a = boottime();
        std::thread::sleep(Duration::from_millis(5));
        assert!(boottime() >= a + Duration::from_millis(5));
    }
}
