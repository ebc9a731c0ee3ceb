//! Mistakes in `jobs/`, in `[jobs.X]` settings and in TOML itself.

use super::{Project, assert_error};
use crate::schema::load;
use std::path::Path;

#[test]
fn missing_jobs_dir_is_an_error() {
    let p = Project::new();
    std::fs::remove_dir(p.path().join("jobs")).expect("remove jobs/");
    let errors = p.load_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].file, Path::new("jobs"));
    assert!(
        errors[0].message.starts_with("jobs/ not found in "),
        "{errors:#?}"
    );
}

#[test]
fn two_files_giving_one_job_name_are_an_error_naming_both() {
    let p = Project::new();
    p.job("x.sh").job("x.py");
    let errors = p.load_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let shown = errors[0].to_string();
    assert!(
        shown.contains("jobs/x.py") && shown.contains("jobs/x.sh"),
        "{shown}"
    );
    assert!(shown.contains(r#""x""#), "{shown}");
}

#[test]
fn a_file_name_that_is_not_a_job_name_is_an_error() {
    let p = Project::new();
    p.job("my job.sh").job("-x");
    let errors = p.load_err();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_eq!(errors[0].file, Path::new("jobs/-x"));
    assert_eq!(errors[1].file, Path::new("jobs/my job.sh"));
    assert!(
        errors[1].message.contains("not a valid job name"),
        "{errors:#?}"
    );
}

#[test]
fn unknown_keys_are_errors_at_their_line() {
    let p = Project::new();
    p.job("a");
    p.write(
        "schema/a.toml",
        "[jobs.a]\nslots = 1\nslot = 2\n\n[job.b]\nslots = 1\n",
    );
    let errors = p.load_err();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_error(
        &errors,
        "schema/a.toml",
        3,
        "jobs.a.slot",
        "unknown field `slot`",
    );
    assert_error(&errors, "schema/a.toml", 5, "job", "unknown key `job`");
}

#[test]
fn unknown_keys_inside_retry_name_the_nested_key() {
    let p = Project::new();
    p.job("a");
    p.write(
        "schema/a.toml",
        "[jobs.a]\n\nretry = { max_attempts = 2, wait = \"1s\" }\n",
    );
    let errors = p.load_err();
    assert_error(
        &errors,
        "schema/a.toml",
        3,
        "jobs.a.retry.wait",
        "unknown field `wait`",
    );
}

#[test]
fn a_value_of_the_wrong_type_is_an_error_at_its_key() {
    let p = Project::new();
    p.job("a");
    p.write("schema/a.toml", "[jobs.a]\n\nslots = \"two\"\n");
    let errors = p.load_err();
    assert_error(
        &errors,
        "schema/a.toml",
        3,
        "jobs.a.slots",
        "expected an integer",
    );
}

#[test]
fn a_bad_duration_names_file_line_key_and_input() {
    let p = Project::new();
    p.job("send-report.sh");
    let text = "# reports\n[jobs.send-report]\nslots = 2\nmax_execution_time = \"10 minutes\"\n";
    p.write("schema/reports.toml", text);
    let errors = p.load_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let shown = errors[0].to_string();
    let expected = "schema/reports.toml:4: jobs.send-report.max_execution_time: invalid duration \"10 minutes\": ";
    assert!(shown.starts_with(expected), "{shown}");
}

#[test]
fn out_of_range_settings_are_errors_at_their_keys() {
    let p = Project::new();
    p.job("a");
    p.write(
        "schema/a.toml",
        r#"[jobs.a]
slots = 0
max_execution_time = "0s"
kill_grace = "soon"
queue = ""
priority = 9999999999
retry = { max_attempts = 0, backoff = "1x" }
"#,
    );
    let errors = p.load_err();
    assert_eq!(errors.len(), 7, "{errors:#?}");
    let f = "schema/a.toml";
    assert_error(&errors, f, 2, "jobs.a.slots", "must be an integer from 1");
    assert_error(&errors, f, 3, "jobs.a.max_execution_time", "more than 0");
    assert_error(
        &errors,
        f,
        4,
        "jobs.a.kill_grace",
        "invalid duration \"soon\"",
    );
    assert_error(&errors, f, 5, "jobs.a.queue", "invalid queue name \"\"");
    assert_error(&errors, f, 6, "jobs.a.priority", "out of range");
    assert_error(&errors, f, 7, "jobs.a.retry.max_attempts", "from 1");
    assert_error(
        &errors,
        f,
        7,
        "jobs.a.retry.backoff",
        "invalid duration \"1x\"",
    );
}

#[test]
fn bad_retry_settings_are_errors_at_their_keys() {
    let p = Project::new();
    p.job("a");
    p.write(
        "schema/a.toml",
        r#"[jobs.a]
retry = { max_attempts = 3, backoff = "1m", max_backoff = "10s", jitter = 1.5 }
transient_exit_codes = [75, 100, 0]
"#,
    );
    let errors = p.load_err();
    assert_eq!(errors.len(), 4, "{errors:#?}");
    let f = "schema/a.toml";
    assert_error(
        &errors,
        f,
        2,
        "jobs.a.retry.jitter",
        "fraction from 0 to 1, got 1.5",
    );
    assert_error(
        &errors,
        f,
        2,
        "jobs.a.retry.max_backoff",
        "\"10s\" is shorter than backoff (1m)",
    );
    assert_error(
        &errors,
        f,
        3,
        "jobs.a.transient_exit_codes",
        "100 cannot mean",
    );
    assert_error(
        &errors,
        f,
        3,
        "jobs.a.transient_exit_codes",
        "0 cannot mean",
    );
}

#[test]
fn settings_for_a_job_without_executable_are_an_error() {
    let p = Project::new();
    p.job("a");
    p.write(
        "schema/a.toml",
        "[jobs.a]\nslots = 1\n\n[jobs.ghost]\nslots = 1\n",
    );
    let errors = p.load_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_error(
        &errors,
        "schema/a.toml",
        4,
        "jobs.ghost",
        "unknown job \"ghost\"",
    );
}

#[test]
fn a_job_defined_in_two_files_is_an_error_naming_both() {
    let p = Project::new();
    p.job("a");
    p.write("schema/1.toml", "\n[jobs.a]\nslots = 1\n")
        .write("schema/2.toml", "[jobs.a]\nslots = 2\n");
    let errors = p.load_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let e = assert_error(&errors, "schema/2.toml", 1, "jobs.a", "already defined");
    assert!(e.message.contains("schema/1.toml:2"), "{e}");
}

#[test]
fn syntax_errors_name_the_line() {
    let p = Project::new();
    p.job("a");
    p.write("schema/a.toml", "[jobs.a]\nslots = 1\nqueue = fast\n")
        .write("schema/b.toml", "[jobs.a]\n[jobs.a]\n");
    let errors = p.load_err();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_eq!(errors[0].file, Path::new("schema/a.toml"));
    assert_eq!(errors[0].line, Some(3));
    assert_eq!(errors[1].file, Path::new("schema/b.toml"));
    assert_eq!(errors[1].line, Some(2));
    assert!(errors[1].message.contains("duplicate key"), "{errors:#?}");
}

#[test]
fn problems_in_several_files_are_all_reported_in_order() {
    let p = Project::new();
    p.job("a");
    p.write("schema/b.toml", "[jobs.a]\nslots = 0\n").write(
        "schema/a.toml",
        "[jobs.x]\n\n[[schedules]]\nname = \"s\"\njob = \"a\"\nevery = \"1\"\n",
    );
    let errors = match load(p.path()) {
        Ok(set) => panic!("expected errors, got {set:?}"),
        Err(e) => e,
    };
    let lines: Vec<String> = errors.to_string().lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 3, "{errors}");
    assert!(
        lines[0].starts_with("schema/a.toml:1: jobs.x: unknown job"),
        "{errors}"
    );
    assert!(
        lines[1].starts_with("schema/a.toml:6: schedules[0].every: invalid duration"),
        "{errors}"
    );
    assert!(
        lines[2].starts_with("schema/b.toml:2: jobs.a.slots: "),
        "{errors}"
    );
}

#[test]
fn on_children_done_must_name_a_job() {
    let p = Project::new();
    p.job("a").job("b");
    p.write(
        "schema/a.toml",
        "[jobs.a]\non_children_done = \"nope\"\n\n[jobs.b]\non_children_done = \"../x\"\n",
    );
    let errors = p.load_err();
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert_error(
        &errors,
        "schema/a.toml",
        2,
        "jobs.a.on_children_done",
        "unknown job \"nope\" in on_children_done",
    );
    assert_error(
        &errors,
        "schema/a.toml",
        5,
        "jobs.b.on_children_done",
        "invalid job name \"../x\"",
    );
}
