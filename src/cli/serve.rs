//! The HTTP API as a process role: `jobslot serve` (the API without a
//! scheduler: an application-facing process that creates and reads tasks
//! while `jobslot run` instances sharing the database run them), and the API
//! that `jobslot run` serves beside its scheduler unless `--no-api`.

use super::Ctx;
use crate::api::{ApiState, Shutdown, router};
use crate::client::Client;
use crate::model::parse_duration;
use crate::schema::SchemaSet;
use crate::store::Store;
use anyhow::{Context, Result, bail};
use clap::Args;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Where the API listens when no address is given.
pub const DEFAULT_API_ADDR: &str = "127.0.0.1:7474";

/// Options of `jobslot serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address the API listens on.
    #[arg(long, env = "JOBSLOT_API_ADDR", default_value = DEFAULT_API_ADDR)]
    pub api_addr: SocketAddr,
    /// How long requests under way may finish after SIGINT/SIGTERM (log
    /// streams end at once).
    #[arg(long, env = "JOBSLOT_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
}

/// Serves the API until SIGINT or SIGTERM; a second signal stops at once.
pub async fn run(ctx: &Ctx, a: ServeArgs) -> Result<i32> {
    let _guard = super::run::init_tracing(ctx)?;
    let (trigger, shutdown) = Shutdown::channel();
    let _requests = super::signals::install(trigger, Duration::ZERO)?;
    let schema = crate::schema::load(&ctx.project).map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = ctx.store().await?;
    let listener = bind(a.api_addr).await?;
    let stop = shutdown.clone();
    let stopping = ApiShutdown {
        begun: shutdown,
        stop: Box::pin(async move {
            stop.started().await;
        }),
        drain: a.shutdown_timeout,
    };
    serve(ctx, listener, store, schema, stopping).await?;
    Ok(0)
}

/// How the API server stops.
pub struct ApiShutdown {
    /// The start of shutdown: log streams end then.
    pub begun: Shutdown,
    /// Resolves when the server should stop accepting connections.
    pub stop: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
    /// How long after the start of shutdown requests under way may go on
    /// (counted from the start, so the API never makes a shutdown longer);
    /// those still open when the server stops after it are cut at once.
    pub drain: Duration,
}

/// The API token from `JOBSLOT_API_TOKEN`, if one is set.
pub fn token() -> Option<String> {
    std::env::var("JOBSLOT_API_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
}

/// Checks the exposure rule, then listens on `addr`.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    check_exposure(addr, token().is_some())?;
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for the HTTP API"))
}

/// Serves the API on `listener` until `shutdown.stop` resolves, then
/// finishes the requests under way within `shutdown.drain`.
pub async fn serve(
    ctx: &Ctx,
    listener: TcpListener,
    store: Arc<dyn Store>,
    schema: SchemaSet,
    shutdown: ApiShutdown,
) -> Result<()> {
    let client = Client::with_store(store, schema, ctx.project.clone());
    let app = router(Arc::new(ApiState {
        client,
        token: token(),
        log_dir: ctx.log_dir(),
        storage: ctx.storage().await,
        shutdown: shutdown.begun.clone(),
    }));
    let addr = listener
        .local_addr()
        .context("the API socket has no address")?;
    eprintln!("jobslot API listening on http://{addr}");
    tracing::info!(%addr, "API listening");
    let (stopped_tx, stopped) = tokio::sync::oneshot::channel::<()>();
    let stop = shutdown.stop;
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        stop.await;
        let _ = stopped_tx.send(());
    });
    let (begun, drain) = (shutdown.begun, shutdown.drain);
    let cut = async move {
        if stopped.await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep_until(begun.started().await + drain).await;
    };
    tokio::select! {
        served = server.into_future() => served.context("the API server failed"),
        _ = cut => {
            tracing::warn!("API requests still open at the end of the shutdown timeout were cut");
            Ok(())
        }
    }
}

/// Without a token the API may only listen on a loopback address.
pub fn check_exposure(addr: SocketAddr, has_token: bool) -> Result<()> {
    if !has_token && !addr.ip().is_loopback() {
        bail!(
            "refusing to serve the API on {addr} without a token: set JOBSLOT_API_TOKEN, or listen on a loopback address such as 127.0.0.1"
        );
    }
    Ok(())
}
