//! Durations past the longest jobslot accepts (3650 days): errors naming
//! file, line and key, never a value that overflows time arithmetic later.

use super::{Project, assert_error};

const F: &str = "schema/long.toml";
const NEEDLE: &str = "longer than 3650d";

#[test]
fn an_every_of_a_hundred_million_days_is_an_error() {
    let p = Project::new();
    p.job("ping.sh");
    p.write(
        F,
        "[[schedules]]\nname = \"a\"\njob = \"ping\"\nevery = \"100000000d\"\n",
    );
    let errors = p.load_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_error(&errors, F, 4, "schedules[0].every", NEEDLE);
}

#[test]
fn job_durations_past_the_bound_are_errors_at_their_keys() {
    let p = Project::new();
    p.job("a.sh");
    p.write(
        F,
        "[jobs.a]\n\
         max_execution_time = \"3651d\"\n\
         kill_grace = \"87601h\"\n\
         retry = { max_attempts = 3, backoff = \"100000000d\", max_backoff = \"5256001m\" }\n",
    );
    let errors = p.load_err();
    assert_error(&errors, F, 2, "jobs.a.max_execution_time", NEEDLE);
    assert_error(&errors, F, 3, "jobs.a.kill_grace", NEEDLE);
    assert_error(&errors, F, 4, "jobs.a.retry.backoff", NEEDLE);
    assert_error(&errors, F, 4, "jobs.a.retry.max_backoff", NEEDLE);
}

#[test]
fn worker_durations_past_the_bound_are_errors_at_their_keys() {
    let p = Project::new();
    p.job("consume.sh");
    p.write(
        F,
        "[[workers]]\n\
         name = \"w\"\n\
         job = \"consume\"\n\
         restart_backoff = { initial = \"100000000d\", max = \"100000001d\" }\n\
         healthy_after = \"4000d\"\n\
         max_execution_time = \"99999999999s\"\n",
    );
    let errors = p.load_err();
    assert_error(&errors, F, 4, "workers[0].restart_backoff.initial", NEEDLE);
    assert_error(&errors, F, 4, "workers[0].restart_backoff.max", NEEDLE);
    assert_error(&errors, F, 5, "workers[0].healthy_after", NEEDLE);
    assert_error(&errors, F, 6, "workers[0].max_execution_time", NEEDLE);
}

#[test]
fn the_bound_itself_is_accepted() {
    let p = Project::new();
    p.job("ping.sh");
    p.write(
        F,
        "[jobs.ping]\nmax_execution_time = \"3650d\"\n\n\
         [[schedules]]\nname = \"a\"\njob = \"ping\"\nevery = \"3650d\"\n",
    );
    let set = p.load_ok();
    assert_eq!(set.schedules.len(), 1);
}
