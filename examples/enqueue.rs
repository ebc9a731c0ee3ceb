//! Enqueue a task from a Rust program with `jobslot::Client`, wait for it to
//! end and print its outcome and result. No scheduler runs here: a
//! `jobslot run` instance sharing the database runs the task.
//!
//! ```sh
//! cargo run --example enqueue -- hello '{"who": "Rust"}'
//! JOBSLOT_DATABASE=postgres://… cargo run --example enqueue -- hello
//! ```
//!
//! The project is the current directory (or `JOBSLOT_PROJECT`); the database
//! is the project's SQLite file (or `JOBSLOT_DATABASE`).

use jobslot::client::{Client, Enqueue};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("enqueue: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let Some(job) = args.next() else {
        return Err("usage: enqueue JOB [ARGS_JSON]".into());
    };
    let task_args: serde_json::Value = match args.next() {
        Some(text) => {
            serde_json::from_str(&text).map_err(|e| format!("ARGS_JSON is not JSON: {e}"))?
        }
        None => serde_json::json!({}),
    };
    let project = std::env::var("JOBSLOT_PROJECT").unwrap_or_else(|_| ".".to_string());
    let database = std::env::var("JOBSLOT_DATABASE").ok();
    let client = Client::open(&project, database.as_deref()).await?;

    let task = client.enqueue(Enqueue::new(&job).args(task_args)).await?;
    println!("enqueued {} ({job})", task.id);
    let ended = client.wait(task.id).await?;
    println!(
        "{} {}{}",
        ended.id,
        ended.status,
        ended
            .reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    if let Some(result) = &ended.result {
        println!("result: {result}");
    }
    Ok(if ended.status == jobslot::model::TaskStatus::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
