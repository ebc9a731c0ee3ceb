//! `jobslot init`: a new project with an example job and schedule.

use super::Ctx;
use anyhow::{Context, Result};
use clap::Args;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// Options of `jobslot init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to initialize (default: the project directory).
    pub dir: Option<PathBuf>,
}

const HELLO: &str = r#"#!/bin/sh
# An example job: prints its args and when its schedule last succeeded.
echo "hello from task $JOBSLOT_TASK_ID (attempt $JOBSLOT_ATTEMPT)"
echo "args: $JOBSLOT_ARGS"
echo "last completed: ${JOBSLOT_LAST_COMPLETED_AT:-never}"
"#;

const SCHEMA: &str = r#"# Job settings and schedules. See `jobslot schema check`.
[jobs.hello]
max_execution_time = "1m"

[[schedules]]
name = "hello-every-minute"
job = "hello"
every = "1m"
args = { greeting = "hi" }
"#;

/// Creates the folders and example files, never overwriting.
pub fn run(ctx: &Ctx, a: InitArgs) -> Result<i32> {
    let dir = a.dir.unwrap_or_else(|| ctx.project.clone());
    let jobs = dir.join("jobs");
    let schema = dir.join("schema");
    for d in [&jobs, &schema] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let hello = jobs.join("hello.sh");
    if !hello.exists() {
        std::fs::write(&hello, HELLO)
            .with_context(|| format!("cannot write {}", hello.display()))?;
        std::fs::set_permissions(&hello, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot make {} executable", hello.display()))?;
    }
    let toml = schema.join("jobs.toml");
    if !toml.exists() {
        std::fs::write(&toml, SCHEMA)
            .with_context(|| format!("cannot write {}", toml.display()))?;
    }
    println!(
        "initialized {} (jobs/hello.sh, schema/jobs.toml); start it with: jobslot --project {} run",
        dir.display(),
        dir.display()
    );
    Ok(0)
}
