//! Schemas that load, and what they load into.

use super::Project;
use crate::model::{CatchUp, Job, Recurrence, RetryPolicy};
use chrono::{TimeZone, Utc};
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

const REPORTS: &str = r#"
[jobs.send-report]
slots = 2
max_execution_time = "10m"
kill_grace = "5s"
queue = "notifications"
priority = 5
retry = { max_attempts = 3, backoff = "1m30s", max_backoff = "10m", jitter = 0.25 }
transient_exit_codes = [75, 69]
retry_on_timeout = false

[[schedules]]
name = "nightly-report"
job = "send-report"
cron = "0 2 * * *"
timezone = "Europe/Paris"
args = { format = "pdf", copies = 2, ratio = 0.5, tags = ["a", "b"], since = 2026-01-01T00:00:00Z }

[[schedules]]
name = "publish"
job = "publish-report"
after = "nightly-report"
"#;

const PING: &str = r#"
[[schedules]]
name = "heartbeat"
job = "ping"
every = "30s"
start_at = "2026-01-01T00:00:00Z"

[[schedules]]
name = "every-second"
job = "ping"
cron = "*/1 * * * * *"
"#;

#[test]
fn a_schema_using_every_feature_loads_into_jobs_and_schedules() {
    let p = Project::new();
    p.job("send-report.sh").job("publish-report").job("ping.py");
    p.write("schema/reports.toml", REPORTS)
        .write("schema/ping.toml", PING);
    let set = p.load_ok();

    assert_eq!(
        set.jobs.keys().collect::<Vec<_>>(),
        ["ping", "publish-report", "send-report"]
    );
    assert_eq!(
        set.jobs["send-report"],
        Job {
            name: "send-report".into(),
            program: Some(PathBuf::from("jobs/send-report.sh")),
            slots: 2,
            max_execution_time: Duration::from_secs(600),
            kill_grace: Duration::from_secs(5),
            queue: "notifications".into(),
            priority: 5,
            retry: RetryPolicy {
                max_attempts: 3,
                backoff: Duration::from_secs(90),
                max_backoff: Duration::from_secs(600),
                jitter: 0.25,
                transient_exit_codes: vec![75, 69],
                retry_on_timeout: false,
                ..RetryPolicy::default()
            },
            on_children_done: None,
            user: None,
            group: None,
        }
    );
    assert_eq!(
        set.jobs["ping"],
        Job::with_defaults("ping", Some(PathBuf::from("jobs/ping.py")))
    );

    // Files are read in name order: ping.toml, then reports.toml.
    let names: Vec<_> = set.schedules.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["heartbeat", "every-second", "nightly-report", "publish"]
    );
    let by_name = |n: &str| {
        set.schedules
            .iter()
            .find(|s| s.name == n)
            .expect("schedule present")
    };

    let heartbeat = by_name("heartbeat");
    assert_eq!(heartbeat.job, "ping");
    assert_eq!(heartbeat.args, json!({}));
    match &heartbeat.recurrence {
        Recurrence::Every {
            interval, start_at, ..
        } => {
            assert_eq!(*interval, Duration::from_secs(30));
            let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single();
            assert_eq!(*start_at, start);
        }
        other => panic!("expected every, got {other:?}"),
    }

    let nightly = by_name("nightly-report");
    assert_eq!(
        nightly.args,
        json!({"format": "pdf", "copies": 2, "ratio": 0.5, "tags": ["a", "b"], "since": "2026-01-01T00:00:00Z"})
    );
    match &nightly.recurrence {
        Recurrence::Cron { expr, .. } => {
            assert_eq!(expr.source(), "0 2 * * *");
            assert_eq!(expr.timezone(), chrono_tz::Europe::Paris);
        }
        other => panic!("expected cron, got {other:?}"),
    }

    match &by_name("publish").recurrence {
        Recurrence::After { schedule } => assert_eq!(schedule, "nightly-report"),
        other => panic!("expected after, got {other:?}"),
    }
    assert!(set.warnings.is_empty(), "{:?}", set.warnings);
}

#[test]
fn five_and_six_field_cron_are_both_accepted_and_default_to_utc() {
    let p = Project::new();
    p.job("ping");
    p.write(
        "schema/cron.toml",
        r#"
[[schedules]]
name = "five"
job = "ping"
cron = "*/5 * * * *"

[[schedules]]
name = "six"
job = "ping"
cron = "30 */5 * * * *"
"#,
    );
    let set = p.load_ok();
    let after = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 1, 0)
        .single()
        .expect("valid");
    let next = |i: usize| match &set.schedules[i].recurrence {
        Recurrence::Cron { expr, .. } => {
            assert_eq!(expr.timezone(), chrono_tz::Tz::UTC);
            expr.next_after(after)
        }
        other => panic!("expected cron, got {other:?}"),
    };
    assert_eq!(next(0), Utc.with_ymd_and_hms(2026, 1, 1, 0, 5, 0).single());
    assert_eq!(next(1), Utc.with_ymd_and_hms(2026, 1, 1, 0, 5, 30).single());
}

#[test]
fn catch_up_defaults_to_skip_and_reaches_the_recurrence() {
    let p = Project::new();
    p.job("ping");
    p.write(
        "schema/c.toml",
        r#"
[[schedules]]
name = "plain"
job = "ping"
every = "1m"

[[schedules]]
name = "skip"
job = "ping"
cron = "0 2 * * *"
catch_up = "skip"

[[schedules]]
name = "every-one"
job = "ping"
every = "1m"
catch_up = "one"

[[schedules]]
name = "cron-one"
job = "ping"
cron = "0 2 * * *"
timezone = "Europe/Paris"
catch_up = "one"
"#,
    );
    let set = p.load_ok();
    let catch_up: Vec<_> = set
        .schedules
        .iter()
        .map(|s| (s.name.as_str(), s.recurrence.catch_up()))
        .collect();
    assert_eq!(
        catch_up,
        [
            ("plain", CatchUp::Skip),
            ("skip", CatchUp::Skip),
            ("every-one", CatchUp::One),
            ("cron-one", CatchUp::One)
        ]
    );
    // The stored form carries it to the dispatcher.
    assert_eq!(
        set.schedules[3].recurrence.to_json()["catch_up"],
        json!("one")
    );
    assert!(
        set.schedules[1]
            .recurrence
            .to_json()
            .get("catch_up")
            .is_none()
    );
}

#[test]
fn job_names_drop_only_the_last_extension() {
    let p = Project::new();
    p.job("send-report.sh").job("a.b.py").job("plain");
    let set = p.load_ok();
    assert_eq!(
        set.jobs.keys().collect::<Vec<_>>(),
        ["a.b", "plain", "send-report"]
    );
    assert_eq!(set.jobs["a.b"].program, Some(PathBuf::from("jobs/a.b.py")));
    assert_eq!(set.jobs["plain"].program, Some(PathBuf::from("jobs/plain")));
}

#[test]
fn missing_schema_dir_means_jobs_with_defaults() {
    let p = Project::new();
    p.job("ping");
    std::fs::remove_dir(p.path().join("schema")).expect("remove schema/");
    let set = p.load_ok();
    assert_eq!(
        set.jobs["ping"],
        Job::with_defaults("ping", Some("jobs/ping".into()))
    );
    assert!(set.schedules.is_empty());
}

#[test]
fn a_job_file_that_is_not_executable_is_only_a_warning() {
    let p = Project::new();
    p.write("jobs/x.sh", "#!/bin/sh\n");
    let set = p.load_ok();
    assert!(set.jobs.contains_key("x"));
    assert_eq!(set.warnings, ["jobs/x.sh is not executable (chmod +x)"]);
}

#[test]
fn notes_hidden_files_and_subdirectories_are_not_jobs() {
    let p = Project::new();
    p.job("ping");
    p.write("jobs/README.md", "docs")
        .write("jobs/notes.txt", "notes")
        .write("jobs/.env", "X=1")
        .write("schema/README.md", "docs");
    std::fs::create_dir(p.path().join("jobs/lib")).expect("mkdir");
    let set = p.load_ok();
    assert_eq!(set.jobs.keys().collect::<Vec<_>>(), ["ping"]);
    assert_eq!(set.warnings.len(), 1, "{:?}", set.warnings);
    assert!(set.warnings[0].contains("jobs/lib/ is a directory"));
}
