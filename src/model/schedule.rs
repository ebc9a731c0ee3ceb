//! Schedules and next-occurrence arithmetic.

use super::cron::CronExpr;
use super::duration::{format_duration, parse_duration, time_after, time_before};
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

/// What happens to an `every` or `cron` occurrence that was missed: claimed only
/// once the occurrence after it was due too (no instance ran, or none had slots).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CatchUp {
    /// It does not run: it is moved to the first due time in the future.
    #[default]
    Skip,
    /// It runs once, at once; the next occurrence is the first due time after
    /// that run's end, so the other missed ones are skipped (like systemd's
    /// `Persistent=`).
    One,
}

impl CatchUp {
    /// The name used in the schema and the stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skip => "skip",
            Self::One => "one",
        }
    }

    /// Reads `skip` or `one`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "skip" => Some(Self::Skip),
            "one" => Some(Self::One),
            _ => None,
        }
    }
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
        /// What a missed occurrence does.
        catch_up: CatchUp,
    },
    /// At each firing time of a cron expression.
    Cron {
        /// The expression and its time zone.
        expr: Box<CronExpr>,
        /// What a missed occurrence does.
        catch_up: CatchUp,
    },
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
                ..
            } if *start < now => Some(next_on_grid(
                *start,
                *interval,
                time_before(now, Duration::from_millis(1)),
            )),
            Self::Every {
                start_at: Some(start),
                ..
            } => Some(*start),
            Self::Every { start_at: None, .. } => Some(now),
            Self::Cron { expr, .. } => expr.next_after(now),
            Self::After { .. } => None,
        }
    }

    /// What a missed occurrence does (`after` occurrences are never missed).
    pub fn catch_up(&self) -> CatchUp {
        match self {
            Self::Every { catch_up, .. } | Self::Cron { catch_up, .. } => *catch_up,
            Self::After { .. } => CatchUp::Skip,
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
            Self::Every {
                interval, start_at, ..
            } => {
                let anchor = start_at.or(due).unwrap_or(now);
                Some(next_on_grid(anchor, *interval, now))
            }
            Self::Cron { expr, .. } => expr.next_after(now.max(due.unwrap_or(now))),
            Self::After { .. } => None,
        }
    }

    /// The occurrence following one due at `due`, without regard to now.
    pub fn following(&self, due: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Every { interval, .. } => {
                Some(time_after(due, (*interval).max(Duration::from_millis(1))))
            }
            Self::Cron { expr, .. } => expr.next_after(due),
            Self::After { .. } => None,
        }
    }

    /// Whether an occurrence due at `due` was missed by `now`: the occurrence
    /// after it is already due too. What then happens is [`Self::catch_up`]'s.
    pub fn is_missed(&self, due: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        self.following(due).is_some_and(|next| next <= now)
    }

    /// The stored form (JSON). `catch_up` is written only when it is not the
    /// default, so the stored form of a schedule without it is the same as before
    /// the setting existed (applying the schema compares stored forms).
    pub fn to_json(&self) -> Value {
        let mut v = match self {
            Self::Every {
                interval, start_at, ..
            } => json!({
                "every": format_duration(*interval),
                "start_at": start_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            }),
            Self::Cron { expr, .. } => {
                json!({"cron": expr.source(), "timezone": expr.timezone().name()})
            }
            Self::After { schedule } => json!({"after": schedule}),
        };
        if self.catch_up() != CatchUp::Skip {
            v["catch_up"] = json!(self.catch_up().as_str());
        }
        v
    }

    /// Reads the stored form back.
    pub fn from_json(v: &Value) -> Result<Self, BadRecurrence> {
        let bad = || BadRecurrence(v.to_string());
        let catch_up = match v.get("catch_up") {
            None | Some(Value::Null) => CatchUp::Skip,
            Some(c) => c.as_str().and_then(CatchUp::parse).ok_or_else(bad)?,
        };
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
            return Ok(Self::Every {
                interval,
                start_at,
                catch_up,
            });
        }
        if let Some(expr) = v.get("cron").and_then(Value::as_str) {
            let tz: Tz = v
                .get("timezone")
                .and_then(Value::as_str)
                .unwrap_or("UTC")
                .parse()
                .map_err(|_| bad())?;
            return CronExpr::parse(expr, tz)
                .map(|c| Self::Cron {
                    expr: Box::new(c),
                    catch_up,
                })
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

/// The first point `anchor + k * interval` (k ≥ 0) strictly after `after`;
/// the latest representable time when that point is past chrono's range.
fn next_on_grid(anchor: DateTime<Utc>, interval: Duration, after: DateTime<Utc>) -> DateTime<Utc> {
    let step = i64::try_from(interval.as_millis().max(1)).unwrap_or(i64::MAX);
    if anchor > after {
        return anchor;
    }
    let elapsed = (after - anchor).num_milliseconds();
    let k = elapsed / step + 1;
    k.checked_mul(step)
        .and_then(ChronoDuration::try_milliseconds)
        .and_then(|d| anchor.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
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
            catch_up: CatchUp::Skip,
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
            catch_up: CatchUp::Skip,
        };
        assert_eq!(r.first_due(t(0)), Some(t(100)));
        assert_eq!(r.first_due(t(100)), Some(t(100)));
        assert_eq!(r.first_due(t(101)), Some(t(110)));
    }

    #[test]
    fn catch_up_one_runs_the_missed_occurrence_then_follows_the_grid() {
        let r = Recurrence::Every {
            interval: Duration::from_secs(30),
            start_at: None,
            catch_up: CatchUp::One,
        };
        // Due at t(0), claimed at t(95): missed (t(30), t(60), t(90) were due too).
        // It runs; the occurrence after a run ending at t(97) is t(120), so the
        // other missed ones are skipped.
        assert!(r.is_missed(t(0), t(95)));
        assert_eq!(r.catch_up(), CatchUp::One);
        assert_eq!(r.next_due(Some(t(0)), t(97)), Some(t(120)));
        let cron = Recurrence::Cron {
            expr: Box::new(CronExpr::parse("0 * * * *", Tz::UTC).expect("valid")),
            catch_up: CatchUp::One,
        };
        assert_eq!(cron.catch_up(), CatchUp::One);
        let after = Recurrence::After {
            schedule: "x".into(),
        };
        assert_eq!(after.catch_up(), CatchUp::Skip);
    }

    #[test]
    fn stored_form_round_trips() {
        let every = Recurrence::Every {
            interval: Duration::from_millis(1500),
            start_at: Some(t(5)),
            catch_up: CatchUp::Skip,
        };
        let every_one = Recurrence::Every {
            interval: Duration::from_secs(1),
            start_at: None,
            catch_up: CatchUp::One,
        };
        let cron = Recurrence::Cron {
            expr: Box::new(CronExpr::parse("0 2 * * *", chrono_tz::Europe::Paris).expect("valid")),
            catch_up: CatchUp::Skip,
        };
        let cron_one = Recurrence::Cron {
            expr: Box::new(CronExpr::parse("0 2 * * *", Tz::UTC).expect("valid")),
            catch_up: CatchUp::One,
        };
        let after = Recurrence::After {
            schedule: "x".into(),
        };
        for r in [every, every_one, cron, cron_one, after] {
            let back = Recurrence::from_json(&r.to_json()).expect("round trip");
            assert_eq!(back.to_json(), r.to_json());
            assert_eq!(back.catch_up(), r.catch_up());
        }
    }

    #[test]
    fn catch_up_is_stored_only_when_it_is_one() {
        // Stored forms written before catch_up existed read as skip, and a skip
        // schedule's stored form is unchanged, so applying the schema after an
        // upgrade does not see every schedule as changed.
        let old_every = json!({"every": "30s", "start_at": null});
        let old_cron = json!({"cron": "0 2 * * *", "timezone": "Europe/Paris"});
        for old in [old_every, old_cron] {
            let r = Recurrence::from_json(&old).expect("old form");
            assert_eq!(r.catch_up(), CatchUp::Skip);
            assert_eq!(r.to_json(), old);
        }
        let explicit_skip = json!({"every": "30s", "start_at": null, "catch_up": "skip"});
        let r = Recurrence::from_json(&explicit_skip).expect("explicit skip");
        assert_eq!(r.to_json(), json!({"every": "30s", "start_at": null}));
        let one = json!({"cron": "0 2 * * *", "timezone": "UTC", "catch_up": "one"});
        let r = Recurrence::from_json(&one).expect("one");
        assert_eq!(r.catch_up(), CatchUp::One);
        assert_eq!(r.to_json(), one);
        for bad in [
            json!({"every": "30s", "catch_up": "all"}),
            json!({"every": "30s", "catch_up": 1}),
        ] {
            assert!(Recurrence::from_json(&bad).is_err(), "{bad}");
        }
    }

    /// Intervals and start times at the edges of chrono's range give the
    /// latest representable time, never a panic (issue 15, case 8).
    #[test]
    fn huge_intervals_saturate_instead_of_panicking() {
        let latest = DateTime::<Utc>::MAX_UTC;
        for interval in [Duration::from_secs(100_000_000 * 86_400), Duration::MAX] {
            for start_at in [None, Some(t(0)), Some(latest)] {
                let r = Recurrence::Every {
                    interval,
                    start_at,
                    catch_up: CatchUp::Skip,
                };
                let first = r.first_due(t(10)).expect("a first due time");
                let next = r.next_due(Some(first), t(20)).expect("a next due time");
                assert!(next >= first, "{next} < {first}");
                assert_eq!(r.following(first), Some(latest));
                assert!(!r.is_missed(first, t(20)));
            }
        }
        let far = Recurrence::Every {
            interval: Duration::from_secs(3650 * 86_400),
            start_at: Some(t(0)),
            catch_up: CatchUp::Skip,
        };
        assert_eq!(far.next_due(Some(t(0)), latest), Some(latest));
    }
}
