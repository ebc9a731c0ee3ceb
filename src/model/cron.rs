//! Cron expressions as users write them: 5 fields (crontab: minute hour
//! day-of-month month day-of-week) or 6 (seconds first), evaluated in a time zone.
//!
//! The `cron` crate numbers days of the week 1–7 from Sunday; crontab numbers them
//! 0–7 with 0 and 7 both Sunday. Numeric day-of-week items are rewritten to names
//! here so `1-5` means Monday to Friday, as in crontab.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
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
        if schedule.upcoming(timezone).next().is_none() {
            return Err(err("it never fires".to_string()));
        }
        Ok(Self {
            source: input.trim().to_string(),
            timezone,
            schedule,
        })
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
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.timezone);
        self.schedule
            .after(&local)
            .next()
            .map(|t| t.with_timezone(&Utc))
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
    use chrono::TimeZone;

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
