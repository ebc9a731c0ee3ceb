//! Mistakes in `[[schedules]]`: each an error naming file, line and key.

use super::{Project, assert_error};
use crate::model::is_valid_name;

/// A project with job `ping` and `text` as `schema/s.toml`; its errors.
fn errors_of(text: &str) -> Vec<crate::schema::SchemaError> {
    let p = Project::new();
    p.job("ping.sh");
    p.write("schema/s.toml", text);
    p.load_err()
}

const F: &str = "schema/s.toml";

#[test]
fn an_unknown_key_in_a_schedule_is_an_error() {
    let errors =
        errors_of("[[schedules]]\nname = \"a\"\njob = \"ping\"\nevery = \"1s\"\npriority = 3\n");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_error(
        &errors,
        F,
        5,
        "schedules[0].priority",
        "unknown field `priority`",
    );
}

#[test]
fn name_and_job_are_required() {
    let errors =
        errors_of("[[schedules]]\nevery = \"1s\"\n\n[[schedules]]\nname = \"b\"\nevery = \"1s\"\n");
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert_error(&errors, F, 1, "schedules[0].name", "missing");
    assert_error(&errors, F, 1, "schedules[0].job", "missing");
    assert_error(&errors, F, 4, "schedules[1].job", "missing");
}

#[test]
fn an_invalid_schedule_name_is_an_error() {
    assert!(!is_valid_name("../x"));
    let errors = errors_of("[[schedules]]\nname = \"../x\"\njob = \"ping\"\nevery = \"1s\"\n");
    assert_error(&errors, F, 2, "schedules[0].name", "invalid schedule name");
}

#[test]
fn a_bad_cron_expression_is_an_error_at_its_key() {
    let errors =
        errors_of("[[schedules]]\nname = \"a\"\njob = \"ping\"\n\ncron = \"61 * * * *\"\n");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_error(
        &errors,
        F,
        5,
        "schedules[0].cron",
        "invalid cron expression \"61 * * * *\"",
    );
}

#[test]
fn time_zones_must_exist_and_go_with_cron() {
    let errors = errors_of(
        "[[schedules]]\nname = \"a\"\njob = \"ping\"\ncron = \"0 2 * * *\"\ntimezone = \"Mars/Olympus\"\n\n\
         [[schedules]]\nname = \"b\"\njob = \"ping\"\nevery = \"1h\"\ntimezone = \"Europe/Paris\"\n",
    );
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_error(
        &errors,
        F,
        5,
        "schedules[0].timezone",
        "unknown time zone \"Mars/Olympus\"",
    );
    assert_error(
        &errors,
        F,
        11,
        "schedules[1].timezone",
        "only applies to `cron`",
    );
}

#[test]
fn start_at_must_be_a_time_and_go_with_every() {
    let errors = errors_of(
        "[[schedules]]\nname = \"a\"\njob = \"ping\"\nevery = \"1h\"\nstart_at = \"tomorrow\"\n\n\
         [[schedules]]\nname = \"b\"\njob = \"ping\"\ncron = \"0 2 * * *\"\nstart_at = 2026-01-01T00:00:00Z\n\n\
         [[schedules]]\nname = \"c\"\njob = \"ping\"\nevery = \"1h\"\nstart_at = 2026-01-01T00:00:00\n",
    );
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert_error(
        &errors,
        F,
        5,
        "schedules[0].start_at",
        "invalid time \"tomorrow\"",
    );
    assert_error(
        &errors,
        F,
        11,
        "schedules[1].start_at",
        "only applies to `every`",
    );
    assert_error(&errors, F, 17, "schedules[2].start_at", "RFC 3339");
}

#[test]
fn catch_up_must_be_skip_or_one_and_go_with_every_or_cron() {
    let errors = errors_of(
        "[[schedules]]\nname = \"a\"\njob = \"ping\"\nevery = \"1h\"\ncatch_up = \"all\"\n\n\
         [[schedules]]\nname = \"b\"\njob = \"ping\"\nafter = \"a\"\ncatch_up = \"one\"\n\n\
         [[schedules]]\nname = \"c\"\njob = \"ping\"\ncron = \"0 2 * * *\"\ncatch_up = true\n",
    );
    assert_eq!(errors.len(), 3, "{errors:#?}");
    let e = assert_error(
        &errors,
        F,
        5,
        "schedules[0].catch_up",
        "schedule \"a\": unknown value \"all\"",
    );
    assert!(
        e.message.contains("\"skip\"") && e.message.contains("\"one\""),
        "{e}"
    );
    assert_error(
        &errors,
        F,
        11,
        "schedules[1].catch_up",
        "schedule \"b\": only applies to `every` and `cron` schedules",
    );
    assert_error(&errors, F, 17, "schedules[2].catch_up", "invalid type");
}

#[test]
fn exactly_one_of_every_cron_after_is_required() {
    let errors = errors_of(
        "[[schedules]]\nname = \"a\"\njob = \"ping\"\n\n\
         [[schedules]]\nname = \"b\"\njob = \"ping\"\nevery = \"1h\"\ncron = \"0 2 * * *\"\n",
    );
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_error(
        &errors,
        F,
        1,
        "schedules[0]",
        "one of `every`, `cron` or `after`",
    );
    assert_error(&errors, F, 9, "schedules[1].cron", "only one of");
}

#[test]
fn every_must_be_a_positive_duration() {
    let errors = errors_of(
        "[[schedules]]\nname = \"a\"\njob = \"ping\"\nevery = \"0s\"\n\n\
         [[schedules]]\nname = \"b\"\njob = \"ping\"\nevery = \"often\"\n",
    );
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_error(&errors, F, 4, "schedules[0].every", "more than 0");
    assert_error(
        &errors,
        F,
        9,
        "schedules[1].every",
        "invalid duration \"often\"",
    );
}

#[test]
fn args_that_json_cannot_hold_are_an_error() {
    let errors = errors_of(
        "[[schedules]]\nname = \"a\"\njob = \"ping\"\nevery = \"1s\"\nargs = { x = nan }\n",
    );
    assert_error(&errors, F, 5, "schedules[0].args", "JSON");
}

#[test]
fn a_schedule_for_an_unknown_job_is_an_error() {
    let errors = errors_of("[[schedules]]\nname = \"a\"\njob = \"pong\"\nevery = \"1s\"\n");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_error(&errors, F, 3, "schedules[0].job", "unknown job \"pong\"");
}

#[test]
fn duplicate_schedule_names_across_files_name_both_places() {
    let p = Project::new();
    p.job("ping");
    let s = "[[schedules]]\nname = \"beat\"\njob = \"ping\"\nevery = \"1s\"\n";
    p.write("schema/1.toml", s)
        .write("schema/2.toml", &format!("[jobs.ping]\n\n{s}"));
    let errors = p.load_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let e = assert_error(
        &errors,
        "schema/2.toml",
        4,
        "schedules[0].name",
        "duplicate schedule name \"beat\"",
    );
    assert!(e.message.contains("schema/1.toml:2"), "{e}");
}

#[test]
fn duplicate_schedule_names_in_one_file_are_an_error() {
    let s = "[[schedules]]\nname = \"beat\"\njob = \"ping\"\nevery = \"1s\"\n";
    let errors = errors_of(&format!("{s}{s}"));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let e = assert_error(
        &errors,
        F,
        6,
        "schedules[1].name",
        "duplicate schedule name",
    );
    assert!(e.message.contains("schema/s.toml:2"), "{e}");
}

#[test]
fn after_must_name_a_schedule() {
    let errors = errors_of("[[schedules]]\nname = \"a\"\njob = \"ping\"\nafter = \"nope\"\n");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_error(
        &errors,
        F,
        4,
        "schedules[0].after",
        "unknown schedule \"nope\"",
    );
}

#[test]
fn a_schedule_after_itself_is_a_cycle() {
    let errors = errors_of("[[schedules]]\nname = \"a\"\njob = \"ping\"\nafter = \"a\"\n");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_error(&errors, F, 4, "schedules[0].after", "runs after itself");
}

#[test]
fn a_cycle_through_two_files_is_reported_once_naming_its_members() {
    let p = Project::new();
    p.job("ping");
    p.write(
        "schema/1.toml",
        "[[schedules]]\nname = \"root\"\njob = \"ping\"\nevery = \"1h\"\n\n\
         [[schedules]]\nname = \"a\"\njob = \"ping\"\nafter = \"b\"\n",
    )
    .write(
        "schema/2.toml",
        "[[schedules]]\nname = \"b\"\njob = \"ping\"\nafter = \"a\"\n\n\
         [[schedules]]\nname = \"c\"\njob = \"ping\"\nafter = \"b\"\n",
    );
    let errors = p.load_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let e = assert_error(&errors, "schema/1.toml", 9, "schedules[1].after", "cycle");
    assert!(e.message.contains("a → b (schema/2.toml:2) → a"), "{e}");
}

#[test]
fn a_single_schedules_table_is_an_error() {
    let errors = errors_of("\n[schedules]\nname = \"a\"\n");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_error(&errors, F, 2, "schedules", "[[schedules]]");
}

#[test]
fn two_schedules_cannot_share_a_unique_key_and_it_cannot_be_blank() {
    let errors = errors_of(
        "[[schedules]]\nname = \"a\"\njob = \"ping\"\nevery = \"1s\"\nunique_key = \"k\"\n\n\
         [[schedules]]\nname = \"b\"\njob = \"ping\"\nevery = \"1s\"\nunique_key = \"k\"\n\n\
         [[schedules]]\nname = \"c\"\njob = \"ping\"\nevery = \"1s\"\nunique_key = \" \"\n",
    );
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_error(
        &errors,
        F,
        11,
        "schedules[1].unique_key",
        "unique_key \"k\" is already the key of schedule \"a\"",
    );
    assert_error(
        &errors,
        F,
        17,
        "schedules[2].unique_key",
        "must be 1 to 200 characters, not blank",
    );
}
