//! How driver errors become [`StoreError`]s, which of them deserve another
//! attempt, and the waits between attempts: serialization failures and
//! deadlocks are retried many times (SQLite retries a busy database forever),
//! lost connections a few times and only while nothing may have been
//! committed; longer outages reach the caller, which retries later.

use super::conn::message;
use crate::store::{StoreError, StoreResult};
use std::error::Error as _;
use std::time::Duration;
use tokio_postgres::error::SqlState;

/// SQLSTATE given to a lost connection that carried no code (as JDBC does).
const CONNECTION_FAILURE: &str = "08006";

/// Whether a driver error means the connection is gone (or never came). A
/// TLS handshake that failed (a certificate refused) is not: it would fail
/// the same way again.
fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    if super::verify::tls_error(e).is_some() {
        return false;
    }
    e.is_closed()
        || e.source()
            .is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some())
        || e.to_string().starts_with("timeout")
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        let code = match e.code() {
            Some(c) => Some(c.code().to_string()),
            None if is_connection_error(&e) => Some(CONNECTION_FAILURE.to_string()),
            None => None,
        };
        StoreError::Postgres {
            code,
            message: message(&e),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        use deadpool_postgres::PoolError;
        match e {
            PoolError::Backend(e) => e.into(),
            PoolError::Timeout(t) => StoreError::Postgres {
                code: Some(CONNECTION_FAILURE.to_string()),
                message: format!("no database connection available ({t:?} timeout)"),
            },
            other => StoreError::Postgres {
                code: None,
                message: format!("connection pool: {other}"),
            },
        }
    }
}

/// What kind of retry an error calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transient {
    /// Not transient: report it.
    No,
    /// A serialization failure or deadlock: the transaction was rolled back.
    Conflict,
    /// The connection was lost or refused, or the server is restarting.
    Connection,
}

/// Classifies a store error.
pub fn transient(e: &StoreError) -> Transient {
    let StoreError::Postgres {
        code: Some(code), ..
    } = e
    else {
        return Transient::No;
    };
    let conflict = [
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
    ];
    let restarting = [
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
    ];
    if conflict.iter().any(|c| c.code() == code) {
        Transient::Conflict
    } else if code.starts_with("08") || restarting.iter().any(|c| c.code() == code) {
        Transient::Connection
    } else {
        Transient::No
    }
}

/// Attempts and waits between them for one store call.
pub struct Retry {
    conflicts: u32,
    connections: u32,
}

/// Conflicts are retried this often (SQLite retries a busy database forever).
const MAX_CONFLICT_RETRIES: u32 = 100;
/// Lost connections are retried this often; longer outages reach the caller.
const MAX_CONNECTION_RETRIES: u32 = 4;

impl Retry {
    /// A fresh budget.
    pub fn new() -> Self {
        Self {
            conflicts: 0,
            connections: 0,
        }
    }

    /// Waits before the next attempt if `e` deserves one (`connection_ok`:
    /// whether a lost connection may be retried, i.e. nothing may have been
    /// committed); returns `Err(e)` when it does not.
    pub async fn again(&mut self, e: StoreError, connection_ok: bool) -> StoreResult<()> {
        let delay = match transient(&e) {
            Transient::Conflict if self.conflicts < MAX_CONFLICT_RETRIES => {
                self.conflicts += 1;
                let base = 1u64 << self.conflicts.min(7);
                Duration::from_millis(base + jitter(base))
            }
            Transient::Connection if connection_ok && self.connections < MAX_CONNECTION_RETRIES => {
                self.connections += 1;
                Duration::from_millis(100 << self.connections)
            }
            _ => return Err(e),
        };
        tracing::debug!(error = %e, ?delay, "transient database error, retrying");
        tokio::time::sleep(delay).await;
        Ok(())
    }
}

/// A pseudo-random number of milliseconds below `below`, so that conflicting
/// transactions do not retry in lockstep.
fn jitter(below: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    u64::from(nanos) % below.max(1)
}
