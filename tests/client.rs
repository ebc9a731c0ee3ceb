//! The library API against a running instance: `jobslot::Client` from this
//! process, and `examples/enqueue.rs` run as the README shows.

mod common;
use common::*;
use jobslot::client::{Client, ClientError, Enqueue};
use jobslot::model::TaskStatus;
use jobslot::store::{CancelOutcome, StoreError};
use std::time::Duration;

on_both!(a_program_enqueues_waits_and_cancels_through_the_client);
async fn a_program_enqueues_waits_and_cancels_through_the_client(backend: Backend) {
    let p = Project::on(backend);
    p.job(
        "square",
        "n=$(sed 's/[^0-9]//g')\nprintf '{\"square\": %d}' $((n*n)) > \"$JOBSLOT_RESULT_FILE\"",
    );
    p.job("nap", "sleep 30");
    p.schema("jobs.toml", "[jobs.nap]\nqueue = \"slow\"\npriority = 3\n");
    let _a = p.start("a", 2, &[]);
    let client = Client::open(p.path(), Some(&p.db_url()))
        .await
        .expect("client");

    let t = client
        .enqueue(Enqueue::new("square").args(serde_json::json!({"n": 12})))
        .await
        .expect("enqueue");
    assert_eq!(t.status, TaskStatus::Pending);
    let ended = tokio::time::timeout(Duration::from_secs(20), client.wait(t.id))
        .await
        .expect("in time")
        .expect("wait");
    assert_eq!(ended.status, TaskStatus::Completed);
    assert_eq!(ended.result, Some(serde_json::json!({"square": 144})));

    // The job's defaults apply; a unique key is held while the task lives.
    let nap = client
        .enqueue(Enqueue::new("nap").unique_key("only-one"))
        .await
        .expect("enqueue nap");
    assert_eq!((nap.queue.as_str(), nap.priority), ("slow", 3));
    match client
        .enqueue(Enqueue::new("nap").unique_key("only-one"))
        .await
    {
        Err(ClientError::Store(StoreError::Conflict(why))) => {
            assert!(why.contains(&nap.id.to_string()), "{why}")
        }
        other => panic!("a second live task with the key was not refused: {other:?}"),
    }
    wait_running(client.store().as_ref(), nap.id, Duration::from_secs(20)).await;
    assert_eq!(
        client.cancel(nap.id).await.expect("cancel"),
        CancelOutcome::StopRequested
    );
    let ended = tokio::time::timeout(Duration::from_secs(20), client.wait(nap.id))
        .await
        .expect("in time")
        .expect("wait");
    assert_eq!(ended.status, TaskStatus::Canceled);

    // Mistakes are named.
    let err = client
        .enqueue(Enqueue::new("nope"))
        .await
        .expect_err("unknown job");
    assert!(err.to_string().contains("unknown job \"nope\""), "{err}");
}

on_both!(the_enqueue_example_runs_a_task_on_a_running_instance);
async fn the_enqueue_example_runs_a_task_on_a_running_instance(backend: Backend) {
    let example = bin()
        .parent()
        .expect("target dir")
        .join("examples")
        .join("enqueue");
    assert!(
        example.exists(),
        "{} is missing: `cargo test` builds the examples (a single `--test` does not)",
        example.display()
    );
    let p = Project::on(backend);
    p.job(
        "hello",
        "who=$(sed 's/.*\"who\": *\"\\([^\"]*\\)\".*/\\1/')\necho \"hello $who\"\nprintf '{\"greeted\": \"%s\"}' \"$who\" > \"$JOBSLOT_RESULT_FILE\"",
    );
    let _a = p.start("a", 1, &[]);
    let mut cmd = std::process::Command::new(&example);
    cmd.args(["hello", r#"{"who": "Rust"}"#])
        .env("JOBSLOT_PROJECT", p.path())
        .env("JOBSLOT_DATABASE", p.db_url());
    let out = cmd.output().expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("enqueued "), "{stdout}");
    assert!(stdout.contains(" completed"), "{stdout}");
    assert!(stdout.contains(r#"result: {"greeted":"Rust"}"#), "{stdout}");
}
