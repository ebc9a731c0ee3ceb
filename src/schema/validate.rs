//! Raw entries to validated model values, one entry at a time: `[jobs.X]`
//! settings applied to a [`Job`], a `[[schedules]]` table turned into a
//! [`Schedule`]. Checks that need several entries (unknown jobs, duplicate
//! names, `after` cycles) live in `links`.

use super::error::SchemaError;
use super::location::{KeyPath, SourceFile};
use super::raw::{RawJob, ScheduleEntry, WorkerEntry};
use crate::model::status::EXIT_SELF_CANCELED;
use crate::model::{
    CatchUp, CronExpr, Job, Recurrence, Schedule, Worker, is_valid_name, parse_duration,
};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;
use std::time::Duration;
use toml::Spanned;

/// The rule names follow, said once for every message that needs it.
pub(crate) const NAME_RULE: &str =
    "use letters, digits, '.', '_' and '-', starting with a letter or digit";

/// Records problems of one entry: knows its file and key.
struct Checker<'a> {
    source: &'a SourceFile,
    key: &'a KeyPath,
    errors: &'a mut Vec<SchemaError>,
    failed: bool,
}

impl Checker<'_> {
    fn fail<T>(&mut self, value: &Spanned<T>, field: &str, message: impl Into<String>) {
        let key = self.key.key(field);
        self.errors
            .push(self.source.at(value.span(), &key, message.into()));
        self.failed = true;
    }

    fn duration(&mut self, v: &Spanned<String>, field: &str, positive: bool) -> Option<Duration> {
        match parse_duration(v.get_ref()) {
            Ok(d) if positive && d.is_zero() => {
                self.fail(
                    v,
                    field,
                    format!("must be more than 0, got {:?}", v.get_ref()),
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.fail(v, field, e.to_string());
                None
            }
        }
    }

    /// `name` (valid) and `job`, which every `kind` entry needs.
    fn name_and_job(
        &mut self,
        whole: &Spanned<()>,
        kind: &str,
        name: &Option<Spanned<String>>,
        job: &Option<Spanned<String>>,
    ) {
        for (field, value) in [("name", name), ("job", job)] {
            if value.is_none() {
                let message = format!("missing: every {kind} needs a `{field}`");
                self.fail(whole, field, message);
            }
        }
        if let Some(name) = name
            && !is_valid_name(name.get_ref())
        {
            let message = format!("invalid {kind} name {:?}: {NAME_RULE}", name.get_ref());
            self.fail(name, "name", message);
        }
    }

    /// `args` as JSON (`{}` when absent).
    fn args(&mut self, args: &Option<Spanned<toml::Value>>) -> Value {
        match args {
            Some(v) => toml_to_json(v.get_ref()).unwrap_or_else(|why| {
                self.fail(v, "args", why);
                Value::Null
            }),
            None => Value::Object(Default::default()),
        }
    }

    fn at_least_one(&mut self, v: &Spanned<i64>, field: &str) -> Option<u32> {
        match u32::try_from(*v.get_ref()) {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                let message = format!("must be an integer from 1 to {}, got {}", u32::MAX, v);
                self.fail(v, field, message);
                None
            }
        }
    }
}

/// Applies the settings of one `[jobs.X]` entry to `job`.
pub(crate) fn apply_job_settings(
    job: &mut Job,
    raw: &RawJob,
    source: &SourceFile,
    key: &KeyPath,
    errors: &mut Vec<SchemaError>,
) {
    let mut c = Checker {
        source,
        key,
        errors,
        failed: false,
    };
    if let Some(v) = &raw.slots {
        job.slots = c.at_least_one(v, "slots").unwrap_or(job.slots);
    }
    if let Some(v) = &raw.max_execution_time {
        let d = c.duration(v, "max_execution_time", true);
        job.max_execution_time = d.unwrap_or(job.max_execution_time);
    }
    if let Some(v) = &raw.kill_grace {
        job.kill_grace = c.duration(v, "kill_grace", false).unwrap_or(job.kill_grace);
    }
    if let Some(v) = &raw.queue {
        if is_valid_name(v.get_ref()) {
            job.queue = v.get_ref().clone();
        } else {
            c.fail(
                v,
                "queue",
                format!("invalid queue name {:?}: {NAME_RULE}", v.get_ref()),
            );
        }
    }
    if let Some(v) = &raw.priority {
        match i32::try_from(*v.get_ref()) {
            Ok(p) => job.priority = p,
            Err(_) => c.fail(
                v,
                "priority",
                format!("{v} is out of range (32-bit integer)"),
            ),
        }
    }
    if let Some(retry) = &raw.retry {
        let key = key.key("retry");
        let mut c = Checker {
            source,
            key: &key,
            errors: &mut *c.errors,
            failed: false,
        };
        if let Some(v) = &retry.get_ref().max_attempts {
            let n = c.at_least_one(v, "max_attempts");
            job.retry.max_attempts = n.unwrap_or(job.retry.max_attempts);
        }
        if let Some(v) = &retry.get_ref().backoff {
            job.retry.backoff = c.duration(v, "backoff", false).unwrap_or(job.retry.backoff);
        }
        if let Some(v) = &retry.get_ref().max_backoff {
            job.retry.max_backoff = c
                .duration(v, "max_backoff", false)
                .unwrap_or(job.retry.max_backoff);
        }
        if let Some(v) = &retry.get_ref().jitter {
            if (0.0..=1.0).contains(v.get_ref()) {
                job.retry.jitter = *v.get_ref();
            } else {
                c.fail(
                    v,
                    "jitter",
                    format!("must be a fraction from 0 to 1, got {}", v.get_ref()),
                );
            }
        }
        if job.retry.max_backoff < job.retry.backoff {
            if let Some(v) = &retry.get_ref().max_backoff {
                c.fail(
                    v,
                    "max_backoff",
                    format!(
                        "{:?} is shorter than backoff ({})",
                        v.get_ref(),
                        crate::model::format_duration(job.retry.backoff)
                    ),
                );
            } else {
                job.retry.max_backoff = job.retry.backoff;
            }
        }
    }
    if let Some(codes) = &raw.transient_exit_codes {
        let mut list = Vec::new();
        for v in codes.get_ref() {
            match i32::try_from(*v.get_ref()) {
                Ok(code) if (1..=255).contains(&code) && code != EXIT_SELF_CANCELED => {
                    list.push(code)
                }
                _ => c.fail(
                    v,
                    "transient_exit_codes",
                    format!(
                        "{} cannot mean a transient failure (codes 1 to 255, but not 100, which cancels)",
                        v.get_ref()
                    ),
                ),
            }
        }
        job.retry.transient_exit_codes = list;
    }
    if let Some(v) = &raw.retry_on_timeout {
        job.retry.retry_on_timeout = *v.get_ref();
    }
    if let Some(v) = &raw.retry_on_signal {
        job.retry.retry_on_signal = *v.get_ref();
    }
    if let Some(v) = &raw.retry_on_orphan {
        job.retry.retry_on_orphan = *v.get_ref();
    }
    if let Some(v) = &raw.on_children_done {
        // Whether the job exists is for `links`.
        if is_valid_name(v.get_ref()) {
            job.on_children_done = Some(v.get_ref().clone());
        } else {
            c.fail(
                v,
                "on_children_done",
                format!("invalid job name {:?}: {NAME_RULE}", v.get_ref()),
            );
        }
    }
    super::identity::apply(job, raw, source, key, c.errors);
}

/// Turns one `[[schedules]]` entry into a [`Schedule`], or records why not.
/// Only the entry itself is checked here: whether its job and the schedule it
/// runs after exist is for `links`.
pub(crate) fn check_schedule(
    entry: &ScheduleEntry,
    source: &SourceFile,
    errors: &mut Vec<SchemaError>,
) -> Option<Schedule> {
    let raw = &entry.raw;
    let mut c = Checker {
        source,
        key: &entry.key,
        errors,
        failed: false,
    };
    let whole = Spanned::new(entry.span.clone(), ());
    c.name_and_job(&whole, "schedule", &raw.name, &raw.job);
    let recurrence = recurrence(&mut c, entry, &whole);
    let args = c.args(&raw.args);
    if let Some(k) = &raw.unique_key
        && (k.get_ref().trim().is_empty() || k.get_ref().len() > 200)
    {
        c.fail(k, "unique_key", "must be 1 to 200 characters, not blank");
    }
    match (&raw.name, &raw.job, recurrence) {
        (Some(name), Some(job), Some(recurrence)) if !c.failed => Some(Schedule {
            name: name.get_ref().clone(),
            job: job.get_ref().clone(),
            recurrence,
            args,
            unique_key: raw.unique_key.as_ref().map(|k| k.get_ref().clone()),
        }),
        _ => None,
    }
}

/// Exactly one of `every`, `cron`, `after`, with the options that go with it.
fn recurrence(
    c: &mut Checker<'_>,
    entry: &ScheduleEntry,
    whole: &Spanned<()>,
) -> Option<Recurrence> {
    let raw = &entry.raw;
    let given: Vec<(&str, &Spanned<String>)> = [
        ("every", &raw.every),
        ("cron", &raw.cron),
        ("after", &raw.after),
    ]
    .into_iter()
    .filter_map(|(field, v)| v.as_ref().map(|v| (field, v)))
    .collect();
    if let Some(tz) = &raw.timezone
        && raw.cron.is_none()
    {
        c.fail(tz, "timezone", "only applies to `cron` schedules");
    }
    if let Some(start) = &raw.start_at
        && raw.every.is_none()
    {
        c.fail(start, "start_at", "only applies to `every` schedules");
    }
    let catch_up = catch_up(c, entry);
    let (field, value) = match given.as_slice() {
        [] => {
            let message = "missing: a schedule needs one of `every`, `cron` or `after`";
            c.errors
                .push(c.source.at(whole.span(), &entry.key, message));
            c.failed = true;
            return None;
        }
        [one] => *one,
        [(first, _), rest @ ..] => {
            for (other, v) in rest {
                c.fail(
                    v,
                    other,
                    format!("give only one of `every`, `cron` or `after` (`{first}` is given too)"),
                );
            }
            return None;
        }
    };
    match field {
        "every" => {
            let interval = c.duration(value, "every", true)?;
            let start_at = match &raw.start_at {
                Some(v) => Some(start_at(v).map_err(|why| c.fail(v, "start_at", why)).ok()?),
                None => None,
            };
            Some(Recurrence::Every {
                interval,
                start_at,
                catch_up: catch_up?,
            })
        }
        "cron" => {
            let timezone = match &raw.timezone {
                Some(v) => v
                    .get_ref()
                    .parse::<Tz>()
                    .map_err(|_| {
                        let message = format!(
                            "unknown time zone {:?} (use an IANA name such as Europe/Paris)",
                            v.get_ref()
                        );
                        c.fail(v, "timezone", message);
                    })
                    .ok()?,
                None => Tz::UTC,
            };
            let catch_up = catch_up?;
            CronExpr::parse(value.get_ref(), timezone)
                .map(|expr| Recurrence::Cron {
                    expr: Box::new(expr),
                    catch_up,
                })
                .map_err(|e| c.fail(value, "cron", e.to_string()))
                .ok()
        }
        _ => Some(Recurrence::After {
            schedule: value.get_ref().clone(),
        }),
    }
}

/// `catch_up`: `skip` (the default) or `one`, for `every` and `cron` schedules.
/// `None` when it is wrong (the error is recorded).
fn catch_up(c: &mut Checker<'_>, entry: &ScheduleEntry) -> Option<CatchUp> {
    let raw = &entry.raw;
    let Some(v) = &raw.catch_up else {
        return Some(CatchUp::Skip);
    };
    let schedule = raw
        .name
        .as_ref()
        .map(|n| format!("schedule {:?}: ", n.get_ref()))
        .unwrap_or_default();
    let Some(catch_up) = CatchUp::parse(v.get_ref()) else {
        let message = format!(
            "{schedule}unknown value {:?}: write \"skip\" (the default: missed occurrences do not run) or \"one\" (one missed occurrence runs after downtime)",
            v.get_ref()
        );
        c.fail(v, "catch_up", message);
        return None;
    };
    if raw.after.is_some() && raw.every.is_none() && raw.cron.is_none() {
        let message = format!(
            "{schedule}only applies to `every` and `cron` schedules (an `after` occurrence runs when its predecessor completes, it is never missed)"
        );
        c.fail(v, "catch_up", message);
        return None;
    }
    Some(catch_up)
}

/// `start_at`, written as a string or a TOML date-time, with a UTC offset.
fn start_at(v: &Spanned<toml::Value>) -> Result<DateTime<Utc>, String> {
    let text = match v.get_ref() {
        toml::Value::String(s) => s.clone(),
        toml::Value::Datetime(d) => d.to_string(),
        other => {
            return Err(format!("expected an RFC 3339 time string, got {other}"));
        }
    };
    DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("invalid time {text:?}: {e} (write an RFC 3339 time with an offset, e.g. 2026-01-01T00:00:00Z)")
        })
}

/// TOML args as the JSON a task receives; date-times become RFC 3339 strings.
pub(crate) fn toml_to_json(v: &toml::Value) -> Result<Value, String> {
    Ok(match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .ok_or_else(|| format!("{f} cannot be written in JSON"))?,
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(
            items
                .iter()
                .map(toml_to_json)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| Ok((k.clone(), toml_to_json(v)?)))
                .collect::<Result<serde_json::Map<_, _>, String>>()?,
        ),
    })
}

/// Turns one `[[workers]]` entry into a [`Worker`], or records why not.
/// Whether its job exists and its name is unique is for `load`.
pub(crate) fn check_worker(
    entry: &WorkerEntry,
    source: &SourceFile,
    errors: &mut Vec<SchemaError>,
) -> Option<Worker> {
    let raw = &entry.raw;
    let mut c = Checker {
        source,
        key: &entry.key,
        errors,
        failed: false,
    };
    let whole = Spanned::new(entry.span.clone(), ());
    c.name_and_job(&whole, "worker", &raw.name, &raw.job);
    let replicas = match &raw.replicas {
        Some(v) => match u32::try_from(*v.get_ref()) {
            Ok(n) if n <= 10_000 => Some(n),
            _ => {
                c.fail(v, "replicas", format!("must be from 0 to 10000, got {v}"));
                None
            }
        },
        None => Some(1),
    };
    let slots = raw.slots.as_ref().and_then(|v| c.at_least_one(v, "slots"));
    let mut backoff_initial = Worker::BACKOFF_INITIAL;
    let mut backoff_max = Worker::BACKOFF_MAX;
    if let Some(b) = &raw.restart_backoff {
        let (b, key) = (b.get_ref(), entry.key.key("restart_backoff"));
        let mut bc = Checker {
            source,
            key: &key,
            errors: &mut *c.errors,
            failed: false,
        };
        if let Some(v) = &b.initial {
            let d = bc.duration(v, "initial", false);
            backoff_initial = d.unwrap_or(backoff_initial);
        }
        if let Some(v) = &b.max {
            backoff_max = bc.duration(v, "max", false).unwrap_or(backoff_max);
            if backoff_max < backoff_initial {
                let message = format!(
                    "must be at least restart_backoff.initial ({})",
                    crate::model::format_duration(backoff_initial)
                );
                bc.fail(v, "max", message);
            }
        } else {
            backoff_max = backoff_max.max(backoff_initial);
        }
        c.failed |= bc.failed;
    }
    let healthy_after = match &raw.healthy_after {
        Some(v) => c.duration(v, "healthy_after", false),
        None => Some(Worker::HEALTHY_AFTER),
    };
    let max_execution_time = match &raw.max_execution_time {
        Some(v) => c.duration(v, "max_execution_time", true).map(Some),
        None => Some(None),
    };
    let args = c.args(&raw.args);
    match (
        &raw.name,
        &raw.job,
        replicas,
        healthy_after,
        max_execution_time,
    ) {
        (Some(name), Some(job), Some(replicas), Some(healthy_after), Some(max_execution_time))
            if !c.failed =>
        {
            Some(Worker {
                name: name.get_ref().clone(),
                job: job.get_ref().clone(),
                replicas,
                args,
                slots,
                backoff_initial,
                backoff_max,
                healthy_after,
                max_execution_time,
            })
        }
        _ => None,
    }
}
