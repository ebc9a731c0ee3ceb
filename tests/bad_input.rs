//! Each bad input DESIGN names gets a clear error naming what was wrong.

mod common;
use common::*;

fn check_fails(p: &Project, needles: &[&str]) {
    let out = p.cli(&["schema", "check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "schema check passed but should fail");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in:\n{err}");
    }
    // `run` refuses to start on the same schema, with the same message.
    let out = p.cli(&["run", "--slots", "1"]);
    assert!(!out.status.success());
    let err2 = String::from_utf8_lossy(&out.stderr);
    assert!(err2.contains(needles[0]), "run: {err2}");
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let p = Project::new();
    p.job("a", "true");
    p.schema("x.toml", "[jobs.a]\nslots = 1\nmax_time = \"1s\"\n");
    check_fails(&p, &["schema/x.toml:3", "max_time"]);
}

#[test]
fn bad_duration_names_file_line_and_key() {
    let p = Project::new();
    p.job("a", "true");
    p.schema(
        "x.toml",
        "[jobs.a]\n\nmax_execution_time = \"10 minutes\"\n",
    );
    check_fails(
        &p,
        &["schema/x.toml:3", "jobs.a.max_execution_time", "10 minutes"],
    );
}

#[test]
fn bad_cron_names_file_line_and_key() {
    let p = Project::new();
    p.job("a", "true");
    p.schema(
        "x.toml",
        "[[schedules]]\nname = \"s\"\njob = \"a\"\ncron = \"61 * * * *\"\n",
    );
    check_fails(&p, &["schema/x.toml:4", "cron", "61 * * * *"]);
}

#[test]
fn unknown_job_names_file_line_and_key() {
    let p = Project::new();
    p.job("a", "true");
    p.schema(
        "x.toml",
        "[[schedules]]\nname = \"s\"\njob = \"nope\"\nevery = \"1s\"\n",
    );
    check_fails(&p, &["schema/x.toml:3", "job", "nope"]);
}

#[test]
fn duplicate_schedule_names_across_files() {
    let p = Project::new();
    p.job("a", "true");
    p.schema(
        "1.toml",
        "[[schedules]]\nname = \"s\"\njob = \"a\"\nevery = \"1s\"\n",
    );
    p.schema(
        "2.toml",
        "\n[[schedules]]\nname = \"s\"\njob = \"a\"\nevery = \"2s\"\n",
    );
    check_fails(&p, &["schema/2.toml:3", "name", "schema/1.toml"]);
}

#[test]
fn cycle_in_after_is_an_error() {
    let p = Project::new();
    p.job("a", "true");
    p.schema(
        "x.toml",
        "[[schedules]]\nname = \"s1\"\njob = \"a\"\nafter = \"s2\"\n\n[[schedules]]\nname = \"s2\"\njob = \"a\"\nafter = \"s1\"\n",
    );
    check_fails(&p, &["schema/x.toml:", "after", "s1", "s2"]);
}

#[test]
fn command_line_mistakes_are_one_clear_sentence() {
    let p = Project::new();
    p.job("a", "true");
    let cases: &[(&[&str], &str)] = &[
        (&["enqueue", "nope"], "unknown job \"nope\""),
        (
            &["enqueue", "a", "--args", "{oops"],
            "--args is not valid JSON",
        ),
        (
            &["enqueue", "a", "--at", "tomorrow"],
            "--at \"tomorrow\" is not an RFC 3339 time",
        ),
        (&["enqueue", "a", "--in", "5 minutes"], "invalid duration"),
        (
            &["enqueue", "a", "--cron", "* * *"],
            "invalid cron expression",
        ),
        (
            &[
                "enqueue",
                "a",
                "--cron",
                "* * * * *",
                "--timezone",
                "Mars/Base",
            ],
            "unknown time zone",
        ),
        (&["show", "zzz"], "is not a task id"),
        (&["show", "0190c3e4"], "no task id starts with 0190c3e4"),
        (&["tasks", "--status", "done"], "unknown task status"),
        (
            &["--database", "mysql://x", "tasks"],
            "cannot use database mysql://x",
        ),
    ];
    for (args, needle) in cases {
        let out = p.cli(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            err.contains(needle),
            "{args:?}: expected {needle:?} in {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn schema_check_json_lists_every_error() {
    let p = Project::new();
    p.job("a", "true");
    p.schema(
        "x.toml",
        "[jobs.a]\nslots = 0\n\n[[schedules]]\nname = \"s\"\njob = \"a\"\nevery = \"xx\"\n",
    );
    let out = p
        .cmd()
        .args(["--json", "schema", "check"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["ok"], false);
    let errors = v["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 2, "{v}");
    assert!(
        errors
            .iter()
            .all(|e| e["file"] == "schema/x.toml" && e["line"].is_number())
    );
}

/// Durations past 3650 days, and start times chrono cannot represent, are one
/// clear sentence and exit 1, never a panic (issue 15, case 8).
#[test]
fn durations_past_the_bound_and_impossible_times_are_errors() {
    let p = Project::new();
    p.job("a", "true");
    let cases: &[(&[&str], &str)] = &[
        (
            &["enqueue", "a", "--in", "100000000d"],
            "--in: invalid duration \"100000000d\": it is longer than 3650d",
        ),
        (
            &["enqueue", "a", "--every", "3651d"],
            "--every: invalid duration \"3651d\": it is longer than 3650d",
        ),
        (
            &["enqueue", "a", "--at", "+275760-09-13T00:00:00Z"],
            "is not an RFC 3339 time",
        ),
    ];
    for (args, needle) in cases {
        let out = p.cli(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: expected {needle:?} in {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // Options of `run` are bounded too (clap reports them as usage errors).
    for flag in [
        "--orphan-grace",
        "--shutdown-timeout",
        "--heartbeat-interval",
    ] {
        let out = p.cli(&["run", flag, "100000000d"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag}: {err}");
        assert!(err.contains("longer than 3650d"), "{flag}: {err}");
    }
    let out = p.cli(&["tasks"]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).lines().count() <= 1,
        "nothing was enqueued"
    );
}
