//! `jobslot serve`: the HTTP API without a scheduler (an application-facing
//! process that creates and reads tasks; `jobslot run` instances sharing the
//! database run them).

use super::Ctx;
use crate::api::{ApiState, router};
use crate::client::Client;
use anyhow::{Context, Result, bail};
use clap::Args;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::signal::unix::{SignalKind, signal};

/// Options of `jobslot serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address the API listens on.
    #[arg(long, env = "JOBSLOT_API_ADDR", default_value = "127.0.0.1:7474")]
    pub api_addr: SocketAddr,
}

/// Serves the API until SIGINT or SIGTERM.
pub async fn run(ctx: &Ctx, a: ServeArgs) -> Result<i32> {
    let token = std::env::var("JOBSLOT_API_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty());
    check_exposure(a.api_addr, token.is_some())?;
    let schema = crate::schema::load(&ctx.project).map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = ctx.store().await?;
    let client = Client::with_store(store, schema, ctx.project.clone());
    let app = router(Arc::new(ApiState { client, token }));
    let listener = tokio::net::TcpListener::bind(a.api_addr)
        .await
        .with_context(|| format!("cannot listen on {}", a.api_addr))?;
    let addr = listener.local_addr().unwrap_or(a.api_addr);
    eprintln!("jobslot API listening on http://{addr}");
    tracing::info!(%addr, "API listening");
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = sigint.recv() => {}
                _ = sigterm.recv() => {}
            }
        })
        .await
        .context("the API server failed")?;
    Ok(0)
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
