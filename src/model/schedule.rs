//! Schedules and next-occurrence arithmetic.

use super::cron::CronExpr;
use super::duration::{format_duration, parse_duration};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};
use std::time::Duration;

/// A named recurring definition from `schema/`.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Unique across the schema.
    pub name: String,
    /// The job each occurrence runs.
    pub job: String,
    /// When occurrences are due.
    pub recurrence: Recurrence,
    /// Args given to every occurrence.
    pub args: Value,
    /// The unique key every occurrence holds while it is live.
    pub unique_key: Option<String>,
}

/// How a recurring task's occurrences follow each other.
#[derive(Debug, Clone)]
pub enum Recurrence {
    /// Every `interval`, on the grid `start_at + k * interval` when `start_at` is
    /// given, else on the grid of the first occurrence.
    Every {
        /// Time between occurrences.
        interval: Duration,
        /// Anchor of the grid and earliest first occurrence.
        start_at: Option<DateTime<Utc>>,
    },
    /// At each firing time of a cron expression.
    Cron(Box<CronExpr>),
    /// After each completed occurrence of another schedule.
    After {
        /// The schedule waited for.
        schedule: String,
    },
}

/// A stored recurrence that no longer parses.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid stored recurrence {0}")]
pub struct BadRecurrence(pub String);

impl Recurrence {
    /// The due time of a schedule's first occurrence, applied at `now`.
    /// `None` for `after`, whose occurrences wait for their predecessor.
    pub fn first_due(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Every {
                start_at: Some(start),
                interval,
            } if *start < now => Some(next_on_grid(
                *start,
                *interval,
                now - ChronoDuration::milliseconds(1),
            )),
            Self::Every {
                start_at: Some(start),
                ..
            } => Some(*start),
            Self::Every { start_at: None, .. } => Some(now),
            Self::Cron(c) => c.next_after(now),
            Self::After { .. } => None,
        }
    }

    /// The due time of the occurrence after one due at `due`, as seen at `now`:
    /// the first due time strictly in the future, so missed occurrences are skipped.
    pub fn next_due(
        &self,
        due: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match self {
            Self::Every { interval, start_at } => {
                let anchor = start_at.or(due).unwrap_or(now);
                Some(next_on_grid(anchor, *interval, now))
            }
            Self::Cron(c) => c.next_after(now.max(due.unwrap_or(now))),
            Self::After { .. } => None,
        }
    }

    /// The occurrence following one due at `due`, without regard to now.
    pub fn following(&self, due: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Every { interval, .. } => {
                Some(due + ChronoDuration::milliseconds(interval.as_millis().max(1) as i64))
            }
            Self::Cron(c) => c.next_after(due),
            Self::After { .. } => None,
        }
    }

    /// Whether an occurrence due at `due` was missed by `now`: the occurrence
    /// after it is already due too. Missed occurrences are skipped, not run.
    pub fn is_missed(&self, due: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        self.following(due).is_some_and(|next| next <= now)
    }

    /// The stored form (JSON).
    pub fn to_json(&self) -> Value {
        match self {
            Self::Every { interval, start_at } => json!({
                "every": format_duration(*interval),
                "start_at": start_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            }),
            Self::Cron(c) => json!({"cron": c.source(), "timezone": c.timezone().name()}),
            Self::After { schedule } => json!({"after": schedule}),
        }
    }

    /// Reads the stored form back.
    pub fn from_json(v: &Value) -> Result<Self, BadRecurrence> {
        let bad = || BadRecurrence(v.to_string());
        if let Some(every) = v.get("every").and_then(Value::as_str) {
            let interval = parse_duration(every).map_err(|_| bad())?;
            let start_at = match v.get("start_at").and_then(Value::as_str) {
                Some(s) => Some(
                    DateTime::parse_from_rfc3339(s)
                        .map_err(|_| bad())?
                        .with_timezone(&Utc),
                ),
                None => None,
            };
            return Ok(Self::Every { interval, start_at });
        }
        if let Some(expr) = v.get("cron").and_then(Value::as_str) {
            let tz: Tz = v
                .get("timezone")
                .and_then(Value::as_str)
                .unwrap_or("UTC")
                .parse()
                .map_err(|_| bad())?;
            return CronExpr::parse(expr, tz)
                .map(|c| Self::Cron(Box::new(c)))
                .map_err(|_| bad());
        }
        if let Some(s) = v.get("after").and_then(Value::as_str) {
            return Ok(Self::After {
                schedule: s.to_string(),
            });
        }
        Err(bad())
    }
}

/// The first point `anchor + k * interval` (k ≥ 0) strictly after `after`.
fn next_on_grid(anchor: DateTime<Utc>, interval: Duration, after: DateTime<Utc>) -> DateTime<Utc> {
    let step = interval.as_millis().max(1) as i64;
    if anchor > after {
        return anchor;
    }
    let elapsed = (after - anchor).num_milliseconds();
    let k = elapsed / step + 1;
    anchor + ChronoDuration::milliseconds(k * step)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0)
            .single()
            .expect("valid")
    }

    #[test]
    fn every_stays_on_its_grid_and_skips_missed_slots() {
        let r = Recurrence::Every {
            interval: Duration::from_secs(30),
            start_at: None,
        };
        // Ran from t(0) to t(2): next is t(30), not t(32).
        assert_eq!(r.next_due(Some(t(0)), t(2)), Some(t(30)));
        // Down from t(0) to t(95): the next is t(120), the missed ones are skipped.
        assert_eq!(r.next_due(Some(t(0)), t(95)), Some(t(120)));
        assert!(r.is_missed(t(0), t(30)));
        assert!(!r.is_missed(t(0), t(29)));
    }

    #[test]
    fn every_with_start_at() {
        let r = Recurrence::Every {
            interval: Duration::from_secs(10),
            start_at: Some(t(100)),
        };
        assert_eq!(r.first_due(t(0)), Some(t(100)));
        assert_eq!(r.first_due(t(100)), Some(t(100)));
        assert_eq!(r.first_due(t(101)), Some(t(110)));
    }

    #[test]
    fn stored_form_round_trips() {
        let every = Recurrence::Every {
            interval: Duration::from_millis(1500),
            start_at: Some(t(5)),
        };
        let cron = Recurrence::Cron(Box::new(
            CronExpr::parse("0 2 * * *", chrono_tz::Europe::Paris).expect("valid"),
        ));
        let after = Recurrence::After {
            schedule: "x".into(),
        };
        for r in [every, cron, after] {
            let back = Recurrence::from_json(&r.to_json()).expect("round trip");
            assert_eq!(back.to_json(), r.to_json());
        }
    }
}
