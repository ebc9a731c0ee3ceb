//! The HTTP API as a process role: `jobslot serve` (the API without a
//! scheduler: an application-facing process that creates and reads tasks
//! while `jobslot run` instances sharing the database run them), and the API
//! that `jobslot run` serves beside its scheduler unless `--no-api`.

use super::Ctx;
use crate::api::{ApiState, router};
use crate::client::Client;
use crate::schema::SchemaSet;
use crate::store::Store;
use anyhow::{Context, Result, bail};
use clap::Args;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

/// Where the API listens when no address is given.
pub const DEFAULT_API_ADDR: &str = "127.0.0.1:7474";

/// Options of `jobslot serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address the API listens on.
    #[arg(long, env = "JOBSLOT_API_ADDR", default_value = DEFAULT_API_ADDR)]
    pub api_addr: SocketAddr,
}

/// Serves the API until SIGINT or SIGTERM.
pub async fn run(ctx: &Ctx, a: ServeArgs) -> Result<i32> {
    let _guard = super::run::init_tracing(ctx)?;
    let schema = crate::schema::load(&ctx.project).map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = ctx.store().await?;
    let listener = bind(a.api_addr).await?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    serve(ctx, listener, store, schema, async move {
        tokio::select! {
            _ = sigint.recv() => {}
            _ = sigterm.recv() => {}
        }
    })
    .await?;
    Ok(0)
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

/// Serves the API on `listener` until `shutdown` resolves, then finishes the
/// requests under way.
pub async fn serve(
    ctx: &Ctx,
    listener: TcpListener,
    store: Arc<dyn Store>,
    schema: SchemaSet,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let client = Client::with_store(store, schema, ctx.project.clone());
    let app = router(Arc::new(ApiState {
        client,
        token: token(),
        log_dir: ctx.log_dir(),
        storage: ctx.storage().await,
    }));
    let addr = listener
        .local_addr()
        .context("the API socket has no address")?;
    eprintln!("jobslot API listening on http://{addr}");
    tracing::info!(%addr, "API listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("the API server failed")
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
