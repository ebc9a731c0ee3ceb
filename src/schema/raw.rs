//! The raw form of a schema file: serde structs that mirror the TOML exactly
//! (`deny_unknown_fields`, every field optional, every value `Spanned`), read
//! entry by entry so one bad `[jobs.X]` or `[[schedules]]` does not hide the
//! problems of the others. Nothing here judges values; `validate` does.

use super::error::SchemaError;
use super::location::{KeyPath, SourceFile, path_at};
use serde::Deserialize;
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

/// `[jobs.NAME]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of job settings")]
pub(crate) struct RawJob {
    pub slots: Option<Spanned<i64>>,
    pub max_execution_time: Option<Spanned<String>>,
    pub kill_grace: Option<Spanned<String>>,
    pub queue: Option<Spanned<String>>,
    pub priority: Option<Spanned<i64>>,
    pub retry: Option<Spanned<RawRetry>>,
    pub transient_exit_codes: Option<Spanned<Vec<Spanned<i64>>>>,
    pub retry_on_timeout: Option<Spanned<bool>>,
    pub retry_on_signal: Option<Spanned<bool>>,
    pub retry_on_orphan: Option<Spanned<bool>>,
    pub on_children_done: Option<Spanned<String>>,
    pub user: Option<Spanned<String>>,
    pub group: Option<Spanned<String>>,
}

/// `retry = { max_attempts, backoff, max_backoff, jitter }` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table such as { max_attempts = 3, backoff = \"30s\" }"
)]
pub(crate) struct RawRetry {
    pub max_attempts: Option<Spanned<i64>>,
    pub backoff: Option<Spanned<String>>,
    pub max_backoff: Option<Spanned<String>>,
    pub jitter: Option<Spanned<f64>>,
}

/// One `[[schedules]]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a schedule table ([[schedules]])")]
pub(crate) struct RawSchedule {
    pub name: Option<Spanned<String>>,
    pub job: Option<Spanned<String>>,
    pub cron: Option<Spanned<String>>,
    pub timezone: Option<Spanned<String>>,
    pub every: Option<Spanned<String>>,
    /// A string or a TOML offset date-time.
    pub start_at: Option<Spanned<toml::Value>>,
    pub after: Option<Spanned<String>>,
    /// `skip` or `one`.
    pub catch_up: Option<Spanned<String>>,
    pub args: Option<Spanned<toml::Value>>,
    pub unique_key: Option<Spanned<String>>,
}

/// One `[[workers]]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a worker table ([[workers]])")]
pub(crate) struct RawWorker {
    pub name: Option<Spanned<String>>,
    pub job: Option<Spanned<String>>,
    pub replicas: Option<Spanned<i64>>,
    pub args: Option<Spanned<toml::Value>>,
    pub slots: Option<Spanned<i64>>,
    pub restart_backoff: Option<Spanned<RawBackoff>>,
    pub healthy_after: Option<Spanned<String>>,
    pub max_execution_time: Option<Spanned<String>>,
}

/// `restart_backoff = { initial, max }` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table such as { initial = \"1s\", max = \"5m\" }"
)]
pub(crate) struct RawBackoff {
    pub initial: Option<Spanned<String>>,
    pub max: Option<Spanned<String>>,
}

/// A `[[workers]]` entry with where it is.
#[derive(Debug)]
pub(crate) struct WorkerEntry {
    /// The `[[workers]]` header (or the inline table).
    pub span: Range<usize>,
    /// `workers[i]`.
    pub key: KeyPath,
    pub raw: RawWorker,
}

/// A `[jobs.NAME]` entry with where it is.
#[derive(Debug)]
pub(crate) struct JobEntry {
    /// The job's name, spanning the key in the header.
    pub name: Spanned<String>,
    /// `jobs.NAME`.
    pub key: KeyPath,
    pub raw: RawJob,
}

/// A `[[schedules]]` entry with where it is.
#[derive(Debug)]
pub(crate) struct ScheduleEntry {
    /// The `[[schedules]]` header (or the inline table).
    pub span: Range<usize>,
    /// `schedules[i]`.
    pub key: KeyPath,
    pub raw: RawSchedule,
}

/// One schema file read into raw entries.
#[derive(Debug)]
pub(crate) struct RawFile {
    pub source: SourceFile,
    pub jobs: Vec<JobEntry>,
    pub schedules: Vec<ScheduleEntry>,
    pub workers: Vec<WorkerEntry>,
}

/// Reads `source` into raw entries, pushing every syntax, unknown-key and
/// wrong-type problem to `errors`. Entries with such problems are left out.
pub(crate) fn parse_file(source: SourceFile, errors: &mut Vec<SchemaError>) -> RawFile {
    let (jobs, schedules, workers) = read_entries(&source, errors);
    RawFile {
        source,
        jobs,
        schedules,
        workers,
    }
}

fn read_entries(
    source: &SourceFile,
    errors: &mut Vec<SchemaError>,
) -> (Vec<JobEntry>, Vec<ScheduleEntry>, Vec<WorkerEntry>) {
    let (doc, syntax) = DeTable::parse_recoverable(&source.text);
    if !syntax.is_empty() {
        for e in syntax {
            errors.push(source.error(e.span(), None, syntax_message(source, &e)));
        }
        return (Vec::new(), Vec::new(), Vec::new());
    }
    let mut jobs = Vec::new();
    let mut schedules = Vec::new();
    let mut workers = Vec::new();
    for (top, value) in doc.get_ref().iter() {
        let key = KeyPath::root(top.get_ref());
        match (top.get_ref().as_ref(), value.get_ref()) {
            ("jobs", DeValue::Table(table)) => {
                for (name, entry) in table.iter() {
                    let key = key.key(name.get_ref());
                    if let Some(raw) = deserialize::<RawJob>(source, entry, &key, errors) {
                        let name = Spanned::new(name.span(), name.get_ref().to_string());
                        jobs.push(JobEntry { name, key, raw });
                    }
                }
            }
            ("jobs", _) => errors.push(source.at(
                value.span(),
                &key,
                "must be a table of jobs: write [jobs.NAME] sections",
            )),
            ("schedules", DeValue::Array(items)) => {
                for (i, entry) in items.iter().enumerate() {
                    let key = key.index(i);
                    if let Some(raw) = deserialize::<RawSchedule>(source, entry, &key, errors) {
                        let span = entry.span();
                        schedules.push(ScheduleEntry { span, key, raw });
                    }
                }
            }
            ("schedules", _) => errors.push(source.at(
                value.span(),
                &key,
                "must be an array of tables: write [[schedules]] (two brackets) for each schedule",
            )),
            ("workers", DeValue::Array(items)) => {
                for (i, entry) in items.iter().enumerate() {
                    let key = key.index(i);
                    if let Some(raw) = deserialize::<RawWorker>(source, entry, &key, errors) {
                        let span = entry.span();
                        workers.push(WorkerEntry { span, key, raw });
                    }
                }
            }
            ("workers", _) => errors.push(source.at(
                value.span(),
                &key,
                "must be an array of tables: write [[workers]] (two brackets) for each worker",
            )),
            (other, _) => errors.push(source.at(
                top.span(),
                &key,
                format!("unknown key `{other}`, expected `jobs`, `schedules` or `workers`"),
            )),
        }
    }
    (jobs, schedules, workers)
}

/// Deserializes one entry; on failure records the problem under the key that
/// toml's error points at (`jobs.x.retry.foo`), or under `key` itself.
fn deserialize<'de, T: Deserialize<'de>>(
    source: &SourceFile,
    entry: &Spanned<DeValue<'de>>,
    key: &KeyPath,
    errors: &mut Vec<SchemaError>,
) -> Option<T> {
    match T::deserialize(ValueDeserializer::from(entry.clone())) {
        Ok(raw) => Some(raw),
        Err(e) => {
            let span = e.span().unwrap_or_else(|| entry.span());
            let key = path_at(entry.get_ref(), span.start)
                .map(|below| key.join(&below))
                .unwrap_or_else(|| key.clone());
            errors.push(source.at(span, &key, friendly(e.message())));
            None
        }
    }
}

/// toml's message, naming the offending text where toml only says "duplicate key".
fn syntax_message(source: &SourceFile, e: &toml::de::Error) -> String {
    let message = e.message().trim().to_string();
    let text = e
        .span()
        .and_then(|s| source.text.get(s))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    match text {
        Some(t) if message == "duplicate key" => format!("duplicate key `{t}`"),
        _ => message,
    }
}

/// serde's type names as a user would say them.
fn friendly(message: &str) -> String {
    message
        .trim()
        .replace("expected i64", "expected an integer")
        .replace("expected a string", "expected a quoted string")
}
