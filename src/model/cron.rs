//! Cron expressions as users write them: 5 fields (crontab: minute hour
//! day-of-month month day-of-week) or 6 (seconds first), evaluated in a time zone.
//!
//! The `cron` crate numbers days of the week 1–7 from Sunday; crontab numbers them
//! 0–7 with 0 and 7 both Sunday. Numeric day-of-week items are rewritten to names
//! here so `1-5` means Monday to Friday, as in crontab.
//!
//! Daylight-saving transitions are handled here, not by the crate: asked for the
//! next time after an instant, it skips a wall-clock time that does not exist and
//! returns the first occurrence of a repeated one, even when asked from inside the
//! second (a time in the past). Here the crate only lists matching wall-clock
//! times, and [`CronExpr::next_after`] maps them to instants by the rule in its doc.

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::{GapInfo, Tz};
use cron::TimeUnitSpec;
use std::str::FromStr;

/// A cron expression that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cron expression {input:?}: {why}")]
pub struct CronError {
    /// What the user wrote.
    pub input: String,
    /// What is wrong with it.
    pub why: String,
}

/// A parsed cron expression together with its time zone.
#[derive(Debug, Clone)]
pub struct CronExpr {
    source: String,
    timezone: Tz,
    schedule: cron::Schedule,
    /// The hour field matches all 24 hours: the expression follows the clock
    /// hour by hour through daylight-saving transitions (see `next_after`).
    every_hour: bool,
}

const DAY_NAMES: [&str; 8] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];

impl CronExpr {
    /// Parses a 5- or 6-field expression evaluated in `timezone`.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use jobslot::model::CronExpr;
    ///
    /// // 09:00 on weekdays, Paris time (crontab numbering: 1-5 is Monday to Friday).
    /// let c = CronExpr::parse("0 9 * * 1-5", chrono_tz::Europe::Paris).unwrap();
    /// let friday_noon = Utc.with_ymd_and_hms(2026, 1, 2, 12, 0, 0).unwrap();
    /// let monday_9_paris = Utc.with_ymd_and_hms(2026, 1, 5, 8, 0, 0).unwrap();
    /// assert_eq!(c.next_after(friday_noon), Some(monday_9_paris));
    /// ```
    pub fn parse(input: &str, timezone: Tz) -> Result<Self, CronError> {
        let err = |why: String| CronError {
            input: input.to_string(),
            why,
        };
        let fields: Vec<&str> = input.split_whitespace().collect();
        let mut six: Vec<String> = match fields.len() {
            5 => std::iter::once("0")
                .chain(fields.iter().copied())
                .map(str::to_string)
                .collect(),
            6 => fields.iter().map(|f| f.to_string()).collect(),
            n => {
                return Err(err(format!(
                    "expected 5 fields (minute hour day month weekday) or 6 (with seconds first), found {n}"
                )));
            }
        };
        six[5] = translate_weekdays(&six[5]).map_err(err)?;
        let schedule = cron::Schedule::from_str(&six.join(" ")).map_err(|e| err(e.to_string()))?;
        let expr = Self {
            source: input.trim().to_string(),
            timezone,
            every_hour: schedule.hours().is_all(),
            schedule,
        };
        // By the daylight-saving rule: `30 2 29 3 0` fires in Paris (at 03:00),
        // although 02:30 never exists on such a day.
        if expr.next_after(Utc::now()).is_none() {
            return Err(err("it never fires".to_string()));
        }
        Ok(expr)
    }

    /// The expression as the user wrote it.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The time zone the expression is evaluated in.
    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// The first firing time strictly after `after`.
    ///
    /// Daylight-saving transitions in the expression's time zone:
    ///
    /// - An expression whose hour field matches every hour (`*`, `0-23`) follows
    ///   the clock as it shows: wall-clock times skipped when the clocks go forward
    ///   do not happen, and wall-clock times repeated when they go back happen
    ///   twice, once in each real hour. An hourly job keeps running every real hour.
    /// - Any other expression (fixed hours: `30 2 * * *`, `0 1-3 * * *`) runs each
    ///   of its wall-clock times once. A time that does not exist runs at the
    ///   instant the clocks jump (02:30 on a night when 02:00 becomes 03:00 runs at
    ///   03:00:00, whatever the seconds field); several such times make one run. A
    ///   time that occurs twice runs at its first occurrence only.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let tz = self.timezone;
        let wall = after.with_timezone(&tz).naive_local();
        // In the first pass through a repeated hour, the second pass of wall-clock
        // times already passed is still to come (every-hour expressions only): the
        // first match at most one repetition back, if it is repeated.
        let mut second_pass = None;
        if self.every_hour
            && let LocalResult::Ambiguous(first, second) = tz.from_local_datetime(&wall)
            && first.with_timezone(&Utc) == after
        {
            let repetition = second.with_timezone(&Utc) - first.with_timezone(&Utc);
            for n in self.wall_times_after(wall - repetition) {
                if n > wall {
                    break;
                }
                if let LocalResult::Ambiguous(_, second) = tz.from_local_datetime(&n) {
                    second_pass = Some(second.with_timezone(&Utc));
                    break;
                }
            }
        }
        // Matches after `wall` map to instants that grow with them (a repeated
        // time maps to its first pass, or to its second when the first is past),
        // so the first one strictly after `after` is the answer, unless the
        // second pass found above comes sooner.
        let next = self.wall_times_after(wall).find_map(|n| {
            let at = match tz.from_local_datetime(&n) {
                LocalResult::Single(t) => t.with_timezone(&Utc),
                LocalResult::Ambiguous(first, _) if first.with_timezone(&Utc) > after => {
                    first.with_timezone(&Utc)
                }
                LocalResult::Ambiguous(_, second) if self.every_hour => second.with_timezone(&Utc),
                LocalResult::Ambiguous(..) => return None,
                LocalResult::None if self.every_hour => return None,
                // The first instant after the gap: when the clocks jump.
                LocalResult::None => GapInfo::new(&n, &tz)?.end?.with_timezone(&Utc),
            };
            (at > after).then_some(at)
        });
        match (next, second_pass) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The wall-clock times (in no time zone) that match, strictly after `wall`.
    fn wall_times_after(&self, wall: NaiveDateTime) -> impl Iterator<Item = NaiveDateTime> + '_ {
        self.schedule.after(&wall.and_utc()).map(|t| t.naive_utc())
    }
}

/// Rewrites numeric crontab weekdays (0–7, Sunday = 0 or 7) as names.
fn translate_weekdays(field: &str) -> Result<String, String> {
    let day = |s: &str| -> Result<Option<usize>, String> {
        if s.chars().all(|c| c.is_ascii_digit()) {
            let n: usize = s.parse().map_err(|_| format!("bad day of week {s:?}"))?;
            if n > 7 {
                return Err(format!("day of week {n} is out of range 0-7"));
            }
            Ok(Some(n))
        } else {
            Ok(None)
        }
    };
    let mut items = Vec::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        if range == "*" || range == "?" {
            items.push(item.to_string());
            continue;
        }
        let (lo, hi) = match range.split_once('-') {
            Some((a, b)) => (a, Some(b)),
            None => (range, None),
        };
        let (Some(lo_n), hi_n) = (day(lo)?, hi.map(day).transpose()?.flatten()) else {
            items.push(item.to_string());
            continue;
        };
        let step: usize = match step {
            Some(s) => s
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("bad step {s:?} in day of week"))?,
            None => 1,
        };
        let hi_n = match (hi, hi_n) {
            (None, _) if step > 1 => 7,
            (None, _) => lo_n,
            (Some(_), Some(h)) => h,
            (Some(h), None) => return Err(format!("bad day of week range end {h:?}")),
        };
        if hi_n < lo_n {
            return Err(format!("day of week range {range} goes backwards"));
        }
        let mut d = lo_n;
        while d <= hi_n {
            items.push(DAY_NAMES[d].to_string());
            d += step;
        }
    }
    items.dedup();
    Ok(items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .expect("valid time")
    }

    #[test]
    fn five_fields_fire_on_the_minute() {
        let c = CronExpr::parse("*/15 * * * *", Tz::UTC).expect("valid");
        assert_eq!(
            c.next_after(utc(2026, 1, 1, 0, 7, 3)),
            Some(utc(2026, 1, 1, 0, 15, 0))
        );
    }

    #[test]
    fn six_fields_have_seconds() {
        let c = CronExpr::parse("*/10 * * * * *", Tz::UTC).expect("valid");
        assert_eq!(
            c.next_after(utc(2026, 1, 1, 0, 0, 3)),
            Some(utc(2026, 1, 1, 0, 0, 10))
        );
    }

    #[test]
    fn weekdays_are_numbered_as_in_crontab() {
        // 2026-01-02 is a Friday; "1-5" is Monday..Friday, so Saturday and Sunday are skipped.
        let c = CronExpr::parse("0 9 * * 1-5", Tz::UTC).expect("valid");
        assert_eq!(
            c.next_after(utc(2026, 1, 2, 10, 0, 0)),
            Some(utc(2026, 1, 5, 9, 0, 0))
        );
        let sunday0 = CronExpr::parse("0 9 * * 0", Tz::UTC).expect("valid");
        let sunday7 = CronExpr::parse("0 9 * * 7", Tz::UTC).expect("valid");
        assert_eq!(
            sunday0.next_after(utc(2026, 1, 2, 0, 0, 0)),
            Some(utc(2026, 1, 4, 9, 0, 0))
        );
        assert_eq!(
            sunday7.next_after(utc(2026, 1, 2, 0, 0, 0)),
            Some(utc(2026, 1, 4, 9, 0, 0))
        );
    }

    #[test]
    fn time_zone_is_applied() {
        let c = CronExpr::parse("0 2 * * *", chrono_tz::Europe::Paris).expect("valid");
        // 02:00 in Paris in January is 01:00 UTC.
        assert_eq!(
            c.next_after(utc(2026, 1, 1, 12, 0, 0)),
            Some(utc(2026, 1, 2, 1, 0, 0))
        );
    }

    /// The firing times strictly after `from` up to `until`, in UTC.
    fn runs(c: &CronExpr, from: DateTime<Utc>, until: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut t = from;
        while let Some(next) = c.next_after(t) {
            assert!(next > t, "{} went back: {next} after {t}", c.source());
            if next > until {
                break;
            }
            out.push(next);
            t = next;
        }
        out
    }

    // 2026 transitions: Europe/Paris goes 02:00 CET -> 03:00 CEST on 03-29 at 01:00
    // UTC and 03:00 CEST -> 02:00 CET on 10-25 at 01:00 UTC; America/New_York goes
    // 02:00 EST -> 03:00 EDT on 03-08 at 07:00 UTC and 02:00 EDT -> 01:00 EST on
    // 11-01 at 06:00 UTC.
    const PARIS: Tz = chrono_tz::Europe::Paris;
    const NEW_YORK: Tz = chrono_tz::America::New_York;

    #[test]
    fn a_fixed_time_that_does_not_exist_runs_when_the_clocks_jump() {
        // 02:30 on 2026-03-29 does not exist in Paris: it runs at 03:00 CEST.
        let c = CronExpr::parse("30 2 * * *", PARIS).expect("valid");
        assert_eq!(
            runs(&c, utc(2026, 3, 28, 12, 0, 0), utc(2026, 3, 30, 12, 0, 0)),
            [utc(2026, 3, 29, 1, 0, 0), utc(2026, 3, 30, 0, 30, 0)]
        );
        let c = CronExpr::parse("30 2 * * *", NEW_YORK).expect("valid");
        assert_eq!(
            runs(&c, utc(2026, 3, 7, 12, 0, 0), utc(2026, 3, 9, 12, 0, 0)),
            [utc(2026, 3, 8, 7, 0, 0), utc(2026, 3, 9, 6, 30, 0)]
        );
        // Seconds too: the run is at the jump itself, 03:00:00.
        let c = CronExpr::parse("15 30 2 * * *", PARIS).expect("valid");
        assert_eq!(
            c.next_after(utc(2026, 3, 28, 12, 0, 0)),
            Some(utc(2026, 3, 29, 1, 0, 0))
        );
        // 02:00 itself is the first missing minute.
        let c = CronExpr::parse("0 2 * * *", NEW_YORK).expect("valid");
        assert_eq!(
            c.next_after(utc(2026, 3, 8, 0, 0, 0)),
            Some(utc(2026, 3, 8, 7, 0, 0))
        );
    }

    #[test]
    fn several_missing_times_make_one_run_at_the_jump() {
        // 02:00, 02:15, 02:30 and 02:45 all fall in the gap: one run at 03:00 CEST.
        let c = CronExpr::parse("*/15 2 * * *", PARIS).expect("valid");
        assert_eq!(
            runs(&c, utc(2026, 3, 29, 0, 0, 0), utc(2026, 3, 30, 0, 20, 0)),
            [
                utc(2026, 3, 29, 1, 0, 0),
                utc(2026, 3, 30, 0, 0, 0),
                utc(2026, 3, 30, 0, 15, 0)
            ]
        );
        // 02:00 (missing) and 03:00 (the first minute after the jump) are one instant.
        let c = CronExpr::parse("0 1-3 * * *", PARIS).expect("valid");
        assert_eq!(
            runs(&c, utc(2026, 3, 28, 22, 0, 0), utc(2026, 3, 29, 23, 30, 0)),
            [
                utc(2026, 3, 29, 0, 0, 0),
                utc(2026, 3, 29, 1, 0, 0),
                utc(2026, 3, 29, 23, 0, 0)
            ]
        );
    }

    #[test]
    fn a_fixed_time_that_occurs_twice_runs_once_at_its_first_occurrence() {
        // 02:30 happens at 00:30 UTC (CEST) and 01:30 UTC (CET) on 2026-10-25.
        let c = CronExpr::parse("30 2 * * *", PARIS).expect("valid");
        assert_eq!(
            runs(&c, utc(2026, 10, 24, 12, 0, 0), utc(2026, 10, 26, 12, 0, 0)),
            [utc(2026, 10, 25, 0, 30, 0), utc(2026, 10, 26, 1, 30, 0)]
        );
        // Seen from the second pass (02:10 CET), the first 02:30 is past: tomorrow.
        assert_eq!(
            c.next_after(utc(2026, 10, 25, 1, 10, 0)),
            Some(utc(2026, 10, 26, 1, 30, 0))
        );
        // 01:30 happens at 05:30 UTC (EDT) and 06:30 UTC (EST) on 2026-11-01.
        let c = CronExpr::parse("30 1 * * *", NEW_YORK).expect("valid");
        assert_eq!(
            runs(&c, utc(2026, 10, 31, 12, 0, 0), utc(2026, 11, 2, 12, 0, 0)),
            [utc(2026, 11, 1, 5, 30, 0), utc(2026, 11, 2, 6, 30, 0)]
        );
        // Times at the edges of the repeated hour: 02:00 is repeated in Paris, 03:00
        // is not; 01:00 is repeated in New York, 02:00 is not.
        let c = CronExpr::parse("0 2,3 * * *", PARIS).expect("valid");
        assert_eq!(
            runs(&c, utc(2026, 10, 24, 12, 0, 0), utc(2026, 10, 25, 12, 0, 0)),
            [utc(2026, 10, 25, 0, 0, 0), utc(2026, 10, 25, 2, 0, 0)]
        );
        let c = CronExpr::parse("0 0 1,2 * * *", NEW_YORK).expect("valid");
        assert_eq!(
            runs(&c, utc(2026, 11, 1, 0, 0, 0), utc(2026, 11, 1, 12, 0, 0)),
            [utc(2026, 11, 1, 5, 0, 0), utc(2026, 11, 1, 7, 0, 0)]
        );
    }

    #[test]
    fn every_hour_expressions_run_every_real_hour_through_transitions() {
        // Spring forward: 02:30 does not exist; 01:30 CET and 03:30 CEST are one
        // real hour apart, so nothing runs in its place.
        let c = CronExpr::parse("30 * * * *", PARIS).expect("valid");
        assert_eq!(
            runs(&c, utc(2026, 3, 28, 23, 0, 0), utc(2026, 3, 29, 2, 59, 0)),
            [
                utc(2026, 3, 28, 23, 30, 0),
                utc(2026, 3, 29, 0, 30, 0),
                utc(2026, 3, 29, 1, 30, 0),
                utc(2026, 3, 29, 2, 30, 0)
            ]
        );
        // Fall back: 02:30 happens twice and runs twice, an hour apart.
        assert_eq!(
            runs(&c, utc(2026, 10, 24, 23, 0, 0), utc(2026, 10, 25, 2, 59, 0)),
            [
                utc(2026, 10, 24, 23, 30, 0),
                utc(2026, 10, 25, 0, 30, 0),
                utc(2026, 10, 25, 1, 30, 0),
                utc(2026, 10, 25, 2, 30, 0)
            ]
        );
        // Seen from the first pass after 02:30 CEST, the next is the second 02:30.
        assert_eq!(
            c.next_after(utc(2026, 10, 25, 0, 45, 0)),
            Some(utc(2026, 10, 25, 1, 30, 0))
        );
        // New York, every 20 minutes: the repeated hour 01:00-01:59 runs twice.
        let c = CronExpr::parse("*/20 * * * *", NEW_YORK).expect("valid");
        let fall = runs(&c, utc(2026, 11, 1, 4, 50, 0), utc(2026, 11, 1, 7, 0, 0));
        let expected: Vec<_> = (0..7)
            .map(|i| utc(2026, 11, 1, 5, 0, 0) + chrono::Duration::minutes(20 * i))
            .collect();
        assert_eq!(fall, expected);
        // New York spring forward, hourly with seconds: 01:00 EST then 03:00 EDT.
        let c = CronExpr::parse("0 0 * * * *", NEW_YORK).expect("valid");
        assert_eq!(
            runs(&c, utc(2026, 3, 8, 5, 30, 0), utc(2026, 3, 8, 8, 0, 0)),
            [
                utc(2026, 3, 8, 6, 0, 0),
                utc(2026, 3, 8, 7, 0, 0),
                utc(2026, 3, 8, 8, 0, 0)
            ]
        );
    }

    #[test]
    fn transition_days_have_the_runs_the_rule_says() {
        let day = |tz: Tz, y, m, d| {
            let start = tz
                .with_ymd_and_hms(y, m, d, 0, 0, 0)
                .single()
                .expect("midnight exists")
                .with_timezone(&Utc);
            let end = tz
                .with_ymd_and_hms(y, m, d + 1, 0, 0, 0)
                .single()
                .expect("midnight exists")
                .with_timezone(&Utc);
            (
                start - chrono::Duration::seconds(1),
                end - chrono::Duration::seconds(1),
            )
        };
        for (tz, spring, fall) in [
            (PARIS, (2026, 3, 29), (2026, 10, 25)),
            (NEW_YORK, (2026, 3, 8), (2026, 11, 1)),
        ] {
            let (s0, s1) = day(tz, spring.0, spring.1, spring.2);
            let (f0, f1) = day(tz, fall.0, fall.1, fall.2);
            // A 23-hour day and a 25-hour day: hourly runs follow real hours.
            let hourly = CronExpr::parse("30 * * * *", tz).expect("valid");
            assert_eq!(runs(&hourly, s0, s1).len(), 23, "{tz} spring");
            assert_eq!(runs(&hourly, f0, f1).len(), 25, "{tz} fall");
            // Fixed times run once a day, whatever the day.
            for expr in [
                "0 1 * * *",
                "30 1 * * *",
                "0 2 * * *",
                "30 2 * * *",
                "0 3 * * *",
            ] {
                let c = CronExpr::parse(expr, tz).expect("valid");
                assert_eq!(runs(&c, s0, s1).len(), 1, "{tz} spring {expr}");
                assert_eq!(runs(&c, f0, f1).len(), 1, "{tz} fall {expr}");
            }
        }
    }

    #[test]
    fn an_expression_firing_only_in_gaps_is_valid() {
        // 29 March on a Sunday is always the last Sunday of March, the night Paris
        // skips 02:00-03:00: each run is at 03:00 CEST.
        let c = CronExpr::parse("30 2 29 3 0", PARIS).expect("valid");
        assert_eq!(
            c.next_after(utc(2026, 1, 1, 0, 0, 0)),
            Some(utc(2026, 3, 29, 1, 0, 0))
        );
    }

    #[test]
    fn bad_expressions_name_the_input() {
        for bad in [
            "* * *",
            "61 * * * *",
            "* * * * 9",
            "0 0 31 2 *",
            "a b c d e",
        ] {
            let e = CronExpr::parse(bad, Tz::UTC).expect_err(bad);
            assert!(e.to_string().contains(bad), "{e}");
        }
    }
}
