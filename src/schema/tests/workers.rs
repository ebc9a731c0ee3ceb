//! `[[workers]]` entries: defaults, and every mistake reported at its line.

use super::{Project, assert_error};
use std::time::Duration;

#[test]
fn a_worker_gets_its_defaults() {
    let p = Project::new();
    p.job("consume.sh");
    p.write(
        "schema/w.toml",
        "[[workers]]\nname = \"orders\"\njob = \"consume\"\nargs = { topic = \"orders\" }\n",
    );
    let set = p.load_ok();
    let w = &set.workers[0];
    assert_eq!(
        (w.name.as_str(), w.job.as_str(), w.replicas),
        ("orders", "consume", 1)
    );
    assert_eq!(w.args, serde_json::json!({"topic": "orders"}));
    assert_eq!(
        (w.backoff_initial, w.backoff_max, w.healthy_after),
        (
            Duration::from_secs(1),
            Duration::from_secs(300),
            Duration::from_secs(10)
        )
    );
    assert_eq!((w.slots, w.max_execution_time), (None, None));
}

#[test]
fn worker_mistakes_are_reported_with_file_line_and_key() {
    let p = Project::new();
    p.job("consume.sh");
    p.write(
        "schema/w.toml",
        "[[workers]]\n\
         name = \"a\"\n\
         job = \"nope\"\n\
         \n\
         [[workers]]\n\
         name = \"b\"\n\
         job = \"consume\"\n\
         replicas = -1\n\
         restart_backoff = { initial = \"10s\", max = \"1s\" }\n\
         max_execution_time = \"0s\"\n\
         \n\
         [[workers]]\n\
         job = \"consume\"\n\
         replica = 2\n\
         \n\
         [[workers]]\n\
         name = \"c\"\n\
         job = \"consume\"\n\
         \n\
         [[workers]]\n\
         name = \"c\"\n\
         job = \"consume\"\n",
    );
    let errors = p.load_err();
    assert_error(
        &errors,
        "schema/w.toml",
        1,
        "workers[0].job",
        "unknown job \"nope\"",
    );
    assert_error(
        &errors,
        "schema/w.toml",
        8,
        "workers[1].replicas",
        "from 0 to 10000",
    );
    assert_error(
        &errors,
        "schema/w.toml",
        9,
        "workers[1].restart_backoff.max",
        "at least restart_backoff.initial",
    );
    assert_error(
        &errors,
        "schema/w.toml",
        10,
        "workers[1].max_execution_time",
        "more than 0",
    );
    assert_error(
        &errors,
        "schema/w.toml",
        14,
        "workers[2].replica",
        "unknown field",
    );
    assert_error(
        &errors,
        "schema/w.toml",
        20,
        "workers[4].name",
        "already defined at schema/w.toml:16",
    );
}
