//! The command line: clap definitions and one file per command.
//!
//! Every option also reads an environment variable (`JOBSLOT_PROJECT`,
//! `JOBSLOT_DATABASE`, `JOBSLOT_SLOTS`, …). Output is a table for people and
//! JSON with `--json`; errors go to stderr as one sentence.

mod admin;
mod enqueue;
mod init;
mod output;
mod prune_cmd;
mod queues;
mod run;
mod schema_cmd;
mod serve;
mod signals;
mod stats;
mod tasks;
mod token;
mod workers;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::store::Store;

/// jobslot: a process-per-task job scheduler.
#[derive(Debug, Parser)]
#[command(name = "jobslot", version, about)]
pub struct Cli {
    /// Project directory (holds jobs/, schema/ and .jobslot/).
    #[arg(long, global = true, env = "JOBSLOT_PROJECT", default_value = ".")]
    pub project: PathBuf,
    /// Database URL; default sqlite://<project>/.jobslot/jobslot.db.
    #[arg(long, global = true, env = "JOBSLOT_DATABASE")]
    pub database: Option<String>,
    /// Log storage settings.
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Print JSON instead of tables.
    #[arg(long, global = true, env = "JOBSLOT_JSON", action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new())]
    pub json: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Where task logs are stored (S3 or any S3-compatible server). Credentials
/// come from `JOBSLOT_S3_ACCESS_KEY_ID`/`JOBSLOT_S3_SECRET_ACCESS_KEY` (or the
/// secret key from the file `JOBSLOT_S3_SECRET_ACCESS_KEY_FILE` names) or the
/// standard AWS chain (`AWS_ACCESS_KEY_ID`, profiles, instance roles); they are
/// never flags, so they never show in a process list.
#[derive(Debug, clap::Args)]
pub struct StorageArgs {
    /// Bucket for task logs; without one, logs stay in .jobslot/logs/.
    #[arg(long, global = true, env = "JOBSLOT_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// Key prefix of task logs.
    #[arg(
        long,
        global = true,
        env = "JOBSLOT_S3_PREFIX",
        default_value = "logs/"
    )]
    pub s3_prefix: String,
    /// Endpoint URL of an S3-compatible server (e.g. http://127.0.0.1:9000).
    #[arg(long, global = true, env = "JOBSLOT_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// Region (default: AWS_REGION, the profile's, or us-east-1).
    #[arg(long, global = true, env = "JOBSLOT_S3_REGION")]
    pub s3_region: Option<String>,
    /// Path-style addressing (http://host/bucket/key), as MinIO and most
    /// S3-compatible servers want.
    #[arg(long, global = true, env = "JOBSLOT_S3_PATH_STYLE", action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new())]
    pub s3_path_style: bool,
    /// Logs at least this large go up as multipart uploads (K, M, G suffixes).
    #[arg(long, global = true, env = "JOBSLOT_S3_MULTIPART_THRESHOLD", default_value = "8M",
        value_parser = run::parse_size)]
    pub s3_multipart_threshold: u64,
}

impl StorageArgs {
    /// The storage settings, credentials read from the environment (the
    /// secret key possibly from a file: an unreadable or empty one, or a key
    /// given both ways, is an error).
    pub fn config(&self) -> Result<crate::logs::StorageConfig> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let secret_access_key = crate::secret_file::resolve_env(
            "JOBSLOT_S3_SECRET_ACCESS_KEY",
            env("JOBSLOT_S3_SECRET_ACCESS_KEY"),
            "JOBSLOT_S3_SECRET_ACCESS_KEY_FILE",
        )?;
        Ok(crate::logs::StorageConfig {
            bucket: self.s3_bucket.clone().filter(|b| !b.is_empty()),
            prefix: self.s3_prefix.clone(),
            endpoint: self.s3_endpoint.clone().filter(|e| !e.is_empty()),
            region: self.s3_region.clone().filter(|r| !r.is_empty()),
            path_style: self.s3_path_style,
            access_key_id: env("JOBSLOT_S3_ACCESS_KEY_ID"),
            secret_access_key,
            multipart_threshold: self.s3_multipart_threshold,
            part_size: self.s3_multipart_threshold.max(5 << 20),
        })
    }
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create jobs/, schema/ and an example job and schedule.
    Init(init::InitArgs),
    /// Run one scheduler instance in the foreground until SIGINT/SIGTERM.
    Run(run::RunArgs),
    /// Add a task and print its id.
    Enqueue(enqueue::EnqueueArgs),
    /// List tasks, newest first.
    Tasks(tasks::TasksArgs),
    /// Show one task in full (an unambiguous id prefix is enough).
    Show(tasks::IdArg),
    /// Print a task's log.
    Logs(tasks::LogsArgs),
    /// Cancel a pending task, or stop a running one.
    Cancel(tasks::IdArg),
    /// Run a failed or canceled task again (as a new task; prints its id).
    Retry(tasks::IdArg),
    /// Serve the HTTP API without running tasks (default 127.0.0.1:7474).
    Serve(serve::ServeArgs),
    /// Show each queue's depth, running count and state.
    Queues,
    /// Show every instance: alive, gone or stopped, slots in use, heartbeat.
    Instances,
    /// Show queue depths, job outcomes and durations, instances and capacity
    /// warnings (the figures of the API's /metrics).
    Stats,
    /// Unstick work by hand: expire stuck tasks, clear stale locks.
    Admin {
        #[command(subcommand)]
        action: admin::AdminAction,
    },
    /// Pause or resume a queue on every instance.
    Queue {
        #[command(subcommand)]
        action: queues::QueueAction,
    },
    /// Show each worker: replicas wanted and running, restarts, state,
    /// instances and last end reasons.
    Workers,
    /// Stop, start or restart (rolling) a worker on every instance.
    Worker {
        #[command(subcommand)]
        action: workers::WorkerAction,
    },
    /// Delete finished tasks and their logs (local and stored).
    Prune(prune_cmd::PruneArgs),
    /// Create or upgrade the database tables (also done by every command).
    Migrate,
    /// Make API tokens for the tokens file, or hash one.
    Token {
        #[command(subcommand)]
        action: token::TokenAction,
    },
    /// Validate or apply schema/ and jobs/.
    Schema {
        /// check or apply.
        #[command(subcommand)]
        action: schema_cmd::SchemaAction,
    },
}

/// Resolved global settings.
#[derive(Clone)]
pub struct Ctx {
    /// Absolute project directory.
    pub project: PathBuf,
    /// Database URL.
    pub database: String,
    /// JSON output.
    pub json: bool,
    /// Log storage settings.
    pub storage: crate::logs::StorageConfig,
}

impl Ctx {
    fn new(cli: &Cli) -> Result<Self> {
        let project = absolute(&cli.project)?;
        let database = cli.database.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}",
                project.join(".jobslot").join("jobslot.db").display()
            )
        });
        Ok(Self {
            project,
            database,
            json: cli.json,
            storage: cli.storage.config()?,
        })
    }

    /// Opens the store.
    pub async fn store(&self) -> Result<Arc<dyn Store>> {
        match crate::store::open(&self.database).await {
            Ok(store) => Ok(store),
            // Already one sentence naming the URL.
            Err(e @ crate::store::StoreError::Url { .. }) => Err(e.into()),
            Err(e) => {
                // The URL may hold a password: never print it.
                let url = crate::store::postgres::redact_url(&self.database);
                Err(anyhow::Error::new(e).context(format!("cannot open the database {url}")))
            }
        }
    }

    /// The storage client: for uploads only with a bucket; for reading and
    /// deleting stored logs, whatever is configured.
    pub async fn storage(&self) -> std::sync::Arc<crate::logs::Storage> {
        std::sync::Arc::new(crate::logs::Storage::new(self.storage.clone()).await)
    }

    /// Where task logs are written.
    pub fn log_dir(&self) -> PathBuf {
        self.project.join(".jobslot").join("logs")
    }
}

fn absolute(p: &Path) -> Result<PathBuf> {
    let p = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .context("cannot read the current directory")?
            .join(p)
    };
    Ok(std::fs::canonicalize(&p).unwrap_or(p))
}

/// Runs the parsed command; returns the process exit code.
impl Cli {
    /// Whether the command only prints and exits (not `run` or `serve`,
    /// which write to child processes and sockets and must outlive a closed
    /// pipe): such a command may die quietly of SIGPIPE when its reader goes
    /// away (`jobslot show ID | head`), as other Unix tools do.
    pub fn prints_and_exits(&self) -> bool {
        !matches!(self.command, Command::Run(_) | Command::Serve(_))
    }
}

pub async fn run(cli: Cli) -> Result<i32> {
    let ctx = Ctx::new(&cli)?;
    match cli.command {
        Command::Init(a) => init::run(&ctx, a),
        Command::Run(a) => run::run(&ctx, a).await,
        Command::Enqueue(a) => enqueue::run(&ctx, a).await,
        Command::Tasks(a) => tasks::list(&ctx, a).await,
        Command::Show(a) => tasks::show(&ctx, a).await,
        Command::Logs(a) => tasks::logs(&ctx, a).await,
        Command::Cancel(a) => tasks::cancel(&ctx, a).await,
        Command::Retry(a) => tasks::retry(&ctx, a).await,
        Command::Serve(a) => serve::run(&ctx, a).await,
        Command::Queues => queues::list(&ctx).await,
        Command::Instances => admin::instances(&ctx).await,
        Command::Stats => stats::run(&ctx).await,
        Command::Admin { action } => admin::act(&ctx, action).await,
        Command::Queue { action } => queues::act(&ctx, action).await,
        Command::Workers => workers::list(&ctx).await,
        Command::Worker { action } => workers::act(&ctx, action).await,
        Command::Prune(a) => prune_cmd::run(&ctx, a).await,
        Command::Migrate => {
            let store = ctx.store().await?;
            let version = store.migrate().await?;
            if ctx.json {
                output::print_json(&serde_json::json!({ "version": version }));
            } else {
                println!("database at migration version {version}");
            }
            Ok(0)
        }
        Command::Schema { action } => schema_cmd::run(&ctx, action).await,
        Command::Token { action } => token::run(&ctx, action),
    }
}
