//! Human durations as written in schema files and on the command line:
//! `500ms`, `30s`, `10m`, `1h`, `2d`, or combined (`1h30m`), at most
//! [`MAX_DURATION`]; and time arithmetic with them that saturates instead of
//! panicking.

use chrono::{DateTime, TimeDelta, Utc};
use std::time::Duration;

/// The longest duration jobslot accepts anywhere (schema, command line, API):
/// 3650 days. Times a duration away from any RFC 3339 time stay within
/// chrono's range, so no arithmetic on them can overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(3650 * 86_400);

/// [`MAX_DURATION`] as written (`3650d`), for messages.
pub const MAX_DURATION_TEXT: &str = "3650d";

/// A duration that could not be parsed, with the text that was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {why} (write e.g. 500ms, 30s, 10m, 1h, 2d or 1h30m)")]
pub struct DurationError {
    /// What the user wrote.
    pub input: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// Parses `500ms`, `30s`, `10m`, `1h`, `2d`, `1h30m`, `1m30s500ms`.
///
/// ```
/// use std::time::Duration;
/// use jobslot::model::parse_duration;
///
/// assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
/// assert!(parse_duration("10 minutes").is_err());
/// ```
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let err = |why| DurationError {
        input: input.to_string(),
        why,
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("it is empty"));
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total: u128 = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(err("expected a number"));
        }
        let n: u128 = s[start..i]
            .parse()
            .map_err(|_| err("the number is too large"))?;
        let ustart = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit_ms: u128 = match &s[ustart..i] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(err("a unit is missing")),
            _ => return Err(err("unknown unit")),
        };
        total = n
            .checked_mul(unit_ms)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| err("the duration is too large"))?;
    }
    let ms = u64::try_from(total).map_err(|_| err("the duration is too large"))?;
    let d = Duration::from_millis(ms);
    if d > MAX_DURATION {
        return Err(err(
            "it is longer than 3650d, the longest duration jobslot accepts",
        ));
    }
    Ok(d)
}

/// `d` as a chrono delta, [`TimeDelta::MAX`] when it does not fit.
fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// `t + d`, or the latest representable time when that would overflow.
pub fn time_after(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t.checked_add_signed(delta(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `t - d`, or the earliest representable time when that would overflow.
pub fn time_before(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t.checked_sub_signed(delta(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Formats a duration the way [`parse_duration`] reads it (`1h30m`, `250ms`).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{}", ms / size, unit));
            ms %= size;
        }
    }
    out
}

/// A point in time written as RFC 3339 (`2026-01-01T02:00:00Z`) or as a
/// duration meaning that long before `now` (`90m`, `2h`, `1d`): the form of
/// history filters such as `--since`.
pub fn parse_time_or_ago(
    input: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let s = input.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let bad = || {
        format!(
            "{input:?} is neither an RFC 3339 time (2026-01-01T02:00:00Z) nor a duration ago (90m, 2h, 1d)"
        )
    };
    let d = parse_duration(s).map_err(|_| bad())?;
    Ok(time_before(now, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit_and_combinations() {
        assert_eq!(
            parse_duration("500ms").ok(),
            Some(Duration::from_millis(500))
        );
        assert_eq!(parse_duration("30s").ok(), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m").ok(), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h").ok(), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_duration("2d").ok(),
            Some(Duration::from_secs(172_800))
        );
        assert_eq!(
            parse_duration("1h30m").ok(),
            Some(Duration::from_secs(5400))
        );
        assert_eq!(
            parse_duration("1m30s500ms").ok(),
            Some(Duration::from_millis(90_500))
        );
    }

    #[test]
    fn rejects_bad_durations_naming_the_input() {
        for bad in [
            "",
            "10",
            "ten",
            "10x",
            "m5",
            "1h-5m",
            "99999999999999999999999d",
            "100000000d",
            "3650d1ms",
        ] {
            let e = parse_duration(bad).expect_err(bad);
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn the_longest_duration_is_3650_days() {
        assert_eq!(parse_duration(MAX_DURATION_TEXT), Ok(MAX_DURATION));
        let e = parse_duration("100000000d").expect_err("too long");
        assert!(e.to_string().contains("longer than 3650d"), "{e}");
    }

    #[test]
    fn time_arithmetic_saturates() {
        let now = Utc::now();
        let forever = Duration::from_secs(u64::MAX);
        assert_eq!(time_after(now, forever), DateTime::<Utc>::MAX_UTC);
        assert_eq!(time_before(now, forever), DateTime::<Utc>::MIN_UTC);
        assert_eq!(
            time_after(DateTime::<Utc>::MAX_UTC, Duration::from_millis(1)),
            DateTime::<Utc>::MAX_UTC
        );
        assert_eq!(
            time_after(now, Duration::from_secs(2)) - now,
            TimeDelta::seconds(2)
        );
    }

    #[test]
    fn format_round_trips() {
        for s in ["1h30m", "250ms", "2d", "1m30s500ms"] {
            let d = parse_duration(s).expect("valid");
            assert_eq!(format_duration(d), s);
        }
    }

    #[test]
    fn times_are_rfc3339_or_a_duration_ago() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .map(|t| t.with_timezone(&chrono::Utc))
            .expect("now");
        let at = |s| super::parse_time_or_ago(s, now).map(|t| t.to_rfc3339());
        assert_eq!(at("2h").as_deref(), Ok("2026-12-01T08:00:00+00:00"));
        assert_eq!(
            at("2026-11-30T23:00:00+01:00").as_deref(),
            Ok("2026-11-30T22:00:00+00:00")
        );
        let e = at("yesterday").expect_err("not a time");
        assert!(e.contains("\"yesterday\" is neither"), "{e}");
    }
}
