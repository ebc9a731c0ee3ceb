//! `jobslot run`: one scheduler instance in the foreground.

use super::Ctx;
use crate::model::parse_duration;
use crate::scheduler::{InstanceConfig, run_instance};
use anyhow::{Context, Result};
use clap::Args;
use std::net::SocketAddr;
use std::time::Duration;

/// Options of `jobslot run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Slot count (default: the number of CPUs).
    #[arg(long, env = "JOBSLOT_SLOTS")]
    pub slots: Option<u32>,
    /// Serve only these queues (comma-separated); default all.
    #[arg(long, env = "JOBSLOT_QUEUES", value_delimiter = ',')]
    pub queues: Vec<String>,
    /// Instance name (default HOST-PID).
    #[arg(long, env = "JOBSLOT_NAME")]
    pub name: Option<String>,
    /// Time past a task's deadline before another instance fails it as orphaned.
    #[arg(long, env = "JOBSLOT_ORPHAN_GRACE", default_value = "60s", value_parser = parse_duration)]
    pub orphan_grace: Duration,
    /// A task due for longer than this is claimed before higher-priority
    /// ones (one per claim, at most once a second); `off` (or 0) turns the
    /// rule off.
    #[arg(long, env = "JOBSLOT_STARVATION_AFTER", default_value = "5m", value_parser = parse_duration_or_off)]
    pub starvation_after: Duration,
    /// How long running tasks may finish after SIGINT/SIGTERM.
    #[arg(long, env = "JOBSLOT_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
    /// Fallback poll interval (work is normally noticed at once).
    #[arg(long, env = "JOBSLOT_POLL_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// Heartbeat interval.
    #[arg(long, env = "JOBSLOT_HEARTBEAT_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,
    /// First delay before retrying a failed log upload.
    #[arg(long, env = "JOBSLOT_UPLOAD_RETRY_INITIAL", default_value = "500ms", value_parser = parse_duration)]
    pub upload_retry_initial: Duration,
    /// Largest delay between retries of a failed log upload.
    #[arg(long, env = "JOBSLOT_UPLOAD_RETRY_MAX", default_value = "1m", value_parser = parse_duration)]
    pub upload_retry_max: Duration,
    /// Delete finished tasks and their logs once they are older than this.
    #[arg(long, env = "JOBSLOT_PRUNE_AFTER", value_parser = parse_duration)]
    pub prune_after: Option<Duration>,
    /// Per-task log cap, in bytes (suffixes K, M, G: 100M).
    #[arg(long, env = "JOBSLOT_LOG_CAP", default_value = "100M", value_parser = parse_size)]
    pub log_cap: u64,
    /// Address of the HTTP API this instance serves (default 127.0.0.1:7474;
    /// when that default is taken, by another instance on this machine, the
    /// instance runs without it).
    #[arg(long, env = "JOBSLOT_API_ADDR")]
    pub api_addr: Option<SocketAddr>,
    /// Run jobs only: serve no HTTP API.
    #[arg(long, env = "JOBSLOT_API_DISABLED", action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new())]
    pub no_api: bool,
    /// Serve the HTTP API only and run no task, as `jobslot serve` does.
    #[arg(long, env = "JOBSLOT_SCHEDULER_DISABLED", action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new())]
    pub no_scheduler: bool,
    /// Who may call the API, from where, and over what.
    #[command(flatten)]
    pub api_security: super::serve::ApiSecurityArgs,
}

/// How long the orderly stop a second signal asks for may take before the
/// process exits anyway (tasks not stopped by then die with it, by their
/// parent-death signal, and are failed as orphaned later).
const FORCED_EXIT_AFTER: Duration = Duration::from_secs(1);

/// A duration, or `0` / `off` for none.
fn parse_duration_or_off(s: &str) -> Result<Duration, String> {
    match s.trim() {
        "0" | "off" => Ok(Duration::ZERO),
        other => parse_duration(other).map_err(|e| e.to_string()),
    }
}

/// Parses `1048576`, `64K`, `100M`, `1G` (binary units).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s
        .trim()
        .trim_end_matches(['B', 'b'])
        .trim_end_matches(['i']);
    let (num, mul) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 1 << 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("invalid size {s:?} (write e.g. 1048576, 64K, 100M or 1G)"))
}

/// Runs the instance until a signal.
pub async fn run(ctx: &Ctx, a: RunArgs) -> Result<i32> {
    if a.no_scheduler {
        if a.no_api {
            anyhow::bail!(
                "--no-api (JOBSLOT_API_DISABLED) and --no-scheduler (JOBSLOT_SCHEDULER_DISABLED) together leave nothing to run"
            );
        }
        let api_addr = match a.api_addr {
            Some(addr) => addr,
            None => default_api_addr()?,
        };
        let shutdown_timeout = a.shutdown_timeout;
        let serve = super::serve::ServeArgs {
            api_addr,
            shutdown_timeout,
            security: a.api_security,
        };
        return super::serve::run(ctx, serve).await;
    }
    let _guard = init_tracing(ctx)?;
    let schema = match crate::schema::load(&ctx.project) {
        Ok(s) => s,
        Err(errors) => {
            eprintln!("{errors}");
            anyhow::bail!("the schema has errors; fix them and start again (jobslot schema check)");
        }
    };
    for w in &schema.warnings {
        tracing::warn!("{w}");
    }
    // Users and groups are checked here, once, rather than failing each task.
    let identities = match crate::scheduler::resolve_identities(&schema) {
        Ok(found) => found,
        Err(errors) => {
            eprintln!("{errors}");
            anyhow::bail!(
                "a job's user or group cannot be used on this machine; fix the schema or run jobslot as root (jobslot schema check)"
            );
        }
    };
    let slots = a.slots.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1)
    });
    if slots == 0 {
        anyhow::bail!("--slots must be at least 1");
    }
    // Open-files limit raised to the hard limit; subreaper of tasks' leftovers.
    crate::runner::prepare_process(slots);
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into());
    let config = InstanceConfig {
        project: ctx.project.clone(),
        database_url: ctx.database.clone(),
        name: a
            .name
            .unwrap_or_else(|| format!("{host}-{}", std::process::id())),
        slots,
        queues: a.queues.into_iter().filter(|q| !q.is_empty()).collect(),
        orphan_grace: a.orphan_grace,
        starvation_after: Some(a.starvation_after).filter(|d| !d.is_zero()),
        shutdown_timeout: a.shutdown_timeout,
        poll_interval: a.poll_interval.max(Duration::from_millis(1)),
        heartbeat_interval: a.heartbeat_interval.max(Duration::from_millis(10)),
        log_cap: a.log_cap,
        log_dir: ctx.log_dir(),
        storage: match ctx.storage.bucket {
            Some(_) => Some(ctx.storage().await),
            None => None,
        },
        upload_backoff: crate::scheduler::uploads::Backoff {
            initial: a.upload_retry_initial.max(Duration::from_millis(1)),
            max: a.upload_retry_max.max(a.upload_retry_initial),
        },
        prune_after: a.prune_after.filter(|d| !d.is_zero()),
        identities,
    };
    match &config.storage {
        Some(s) => tracing::info!(storage = ?s.config(), "task logs are uploaded to storage"),
        None => tracing::info!(
            "no JOBSLOT_S3_BUCKET: task logs stay in {}",
            config.log_dir.display()
        ),
    }
    let api_config = if a.no_api {
        None
    } else {
        Some(super::serve::ApiConfig::load(&a.api_security)?)
    };
    let store = ctx.store().await?;
    let listener = match &api_config {
        None => None,
        Some(api) => api_listener(a.api_addr, api).await?,
    };
    // Signals first stop claiming, then stop tasks; log streams end at the
    // first one, while the API goes on serving until the instance has stopped.
    let (trigger, shutdown) = crate::api::Shutdown::channel();
    let stop_rx = super::signals::install(trigger.clone(), FORCED_EXIT_AFTER)?;
    let (api_stop, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let api = match listener.zip(api_config) {
        Some((listener, api_config)) => {
            let (ctx, store, schema) = (ctx.clone(), store.clone(), schema.clone());
            let stopping = super::serve::ApiShutdown {
                begun: shutdown,
                stop: Box::pin(async move {
                    let _ = api_stopped.await;
                }),
                drain: config.shutdown_timeout,
            };
            Some(tokio::spawn(async move {
                if let Err(e) =
                    super::serve::serve(&ctx, listener, &api_config, store, schema, stopping).await
                {
                    tracing::error!("the HTTP API stopped: {e:#}");
                }
            }))
        }
        None => None,
    };
    let result = run_instance(store, config, schema, stop_rx).await;
    trigger.start();
    let _ = api_stop.send(());
    if let Some(api) = api {
        let _ = api.await;
    }
    result?;
    Ok(0)
}

fn default_api_addr() -> Result<SocketAddr> {
    super::serve::DEFAULT_API_ADDR
        .parse()
        .context("the default API address does not parse")
}

/// The API's socket: on the address given (failing if it cannot be had), or
/// on the default one when it is free. Several instances on one machine all
/// default to the same port: the first serves the API and the others run
/// without it, saying so.
async fn api_listener(
    addr: Option<SocketAddr>,
    api: &super::serve::ApiConfig,
) -> Result<Option<tokio::net::TcpListener>> {
    if let Some(addr) = addr {
        return super::serve::bind(addr, api).await.map(Some);
    }
    let addr = default_api_addr()?;
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => Ok(Some(l)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            tracing::warn!(
                "the HTTP API is not served by this instance: {addr} is in use (by another instance?); pass --api-addr to serve it elsewhere, or --no-api to say it is not wanted"
            );
            Ok(None)
        }
        Err(e) => Err(e).with_context(|| format!("cannot listen on {addr} for the HTTP API")),
    }
}

/// Scheduler log: stderr and a daily file in `.jobslot/`.
pub fn init_tracing(ctx: &Ctx) -> Result<tracing_appender::non_blocking::WorkerGuard> {
    use tracing_subscriber::prelude::*;
    let dir = ctx.project.join(".jobslot");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let file = tracing_appender::rolling::daily(&dir, "jobslot.log");
    let (file, guard) = tracing_appender::non_blocking(file);
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_env("JOBSLOT_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(filter()),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(file)
                .with_filter(filter()),
        )
        .try_init();
    Ok(guard)
}
