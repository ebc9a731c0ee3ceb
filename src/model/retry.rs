//! Retries: which failures are transient, and how long to wait before the
//! next attempt. Pure arithmetic; the scheduler decides with it and the store
//! records the attempt.

use super::status::{EXIT_TEMPFAIL, Outcome};
use std::time::Duration;

/// Default first delay before a retry.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(30);
/// Default longest delay between attempts.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Default jitter: each delay is moved by up to ±10 %.
pub const DEFAULT_JITTER: f64 = 0.1;

/// A job's retry settings (`retry = { max_attempts, backoff, max_backoff,
/// jitter }` and the transient-failure keys beside it).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts, the first included. 1 means no retry.
    pub max_attempts: u32,
    /// Delay before the second attempt; it doubles at each attempt after.
    pub backoff: Duration,
    /// The delay never grows past this.
    pub max_backoff: Duration,
    /// Fraction (0 to 1) by which each delay is moved at random, up or down,
    /// so that tasks failing together do not all come back together.
    pub jitter: f64,
    /// Exit codes that mean a transient failure (default: 75, EX_TEMPFAIL).
    pub transient_exit_codes: Vec<i32>,
    /// Whether a timeout is transient (default true).
    pub retry_on_timeout: bool,
    /// Whether a signal jobslot did not send is transient (default true).
    pub retry_on_signal: bool,
    /// Whether a task orphaned by its instance's death is transient (default true).
    pub retry_on_orphan: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 1,
            backoff: DEFAULT_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            jitter: DEFAULT_JITTER,
            transient_exit_codes: vec![EXIT_TEMPFAIL],
            retry_on_timeout: true,
            retry_on_signal: true,
            retry_on_orphan: true,
        }
    }
}

/// How a failed attempt ended, as far as retrying goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The process ended as its outcome says.
    Outcome,
    /// Its instance died (the orphan rule).
    Orphaned,
}

impl RetryPolicy {
    /// Whether `outcome` is a transient failure under this policy. Completions,
    /// cancellations, shutdowns and spawn errors never are; exit 1 and other
    /// codes not listed are permanent.
    pub fn is_transient(&self, outcome: &Outcome) -> bool {
        match outcome {
            Outcome::Exited(code) => self.transient_exit_codes.contains(code),
            Outcome::Signaled(_) => self.retry_on_signal,
            Outcome::TimedOut { .. } => self.retry_on_timeout,
            Outcome::Canceled { .. }
            | Outcome::Shutdown { .. }
            | Outcome::Expired { .. }
            | Outcome::SpawnError(_) => false,
        }
    }

    /// Whether a failure of attempt `attempt` may be retried: it is transient
    /// and attempts remain.
    pub fn retries(&self, attempt: u32, transient: bool) -> bool {
        transient && attempt < self.max_attempts
    }

    /// The delay after failed attempt `attempt` (1-based), before jitter:
    /// `backoff × 2^(attempt-1)`, at most `max_backoff`.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(62);
        let factor = 1u64 << doublings;
        let ms = (self.backoff.as_millis() as u64).saturating_mul(factor);
        Duration::from_millis(ms).min(self.max_backoff.max(self.backoff))
    }

    /// The delay after failed attempt `attempt`, with jitter from `unit`, a
    /// number in [0, 1) (random in use; fixed in tests).
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let base = self.base_delay(attempt).as_secs_f64();
        let spread = self.jitter.clamp(0.0, 1.0) * (unit.clamp(0.0, 1.0) * 2.0 - 1.0);
        Duration::from_secs_f64((base * (1.0 + spread)).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(10),
            jitter: 0.0,
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn delays_double_up_to_the_maximum() {
        let p = policy();
        let secs: Vec<u64> = (1..=5).map(|a| p.delay(a, 0.5).as_secs()).collect();
        assert_eq!(secs, [2, 4, 8, 10, 10]);
        assert_eq!(p.base_delay(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let p = RetryPolicy {
            jitter: 0.5,
            ..policy()
        };
        assert_eq!(p.delay(1, 0.0), Duration::from_secs(1));
        assert_eq!(p.delay(1, 0.5), Duration::from_secs(2));
        assert!(p.delay(1, 0.999) < Duration::from_secs(3));
    }

    #[test]
    fn transient_and_permanent_failures() {
        let p = policy();
        assert!(p.is_transient(&Outcome::Exited(75)));
        assert!(!p.is_transient(&Outcome::Exited(1)));
        assert!(!p.is_transient(&Outcome::Exited(0)));
        assert!(p.is_transient(&Outcome::Signaled(9)));
        let timeout = Outcome::TimedOut {
            exit_code: None,
            signal: Some(15),
        };
        assert!(p.is_transient(&timeout));
        assert!(!p.is_transient(&Outcome::SpawnError("x".into())));
        let strict = RetryPolicy {
            retry_on_timeout: false,
            retry_on_signal: false,
            transient_exit_codes: vec![3],
            ..policy()
        };
        assert!(!strict.is_transient(&timeout));
        assert!(!strict.is_transient(&Outcome::Signaled(9)));
        assert!(strict.is_transient(&Outcome::Exited(3)));
        assert!(!strict.is_transient(&Outcome::Exited(75)));
    }

    #[test]
    fn attempts_are_counted_from_one() {
        let p = policy();
        assert!(p.retries(4, true));
        assert!(!p.retries(5, true));
        assert!(!p.retries(1, false));
        assert!(!RetryPolicy::default().retries(1, true));
    }
}
