//! The HTTP API as a process role: `jobslot serve` (the API without a
//! scheduler: an application-facing process that creates and reads tasks
//! while `jobslot run` instances sharing the database run them), and the API
//! that `jobslot run` serves beside its scheduler unless `--no-api`.

use super::Ctx;
use crate::api::access::Tokens;
use crate::api::{Access, ApiState, Shutdown, router};
use crate::client::Client;
use crate::model::parse_duration;
use crate::schema::SchemaSet;
use crate::store::Store;
use anyhow::{Context, Result, bail};
use clap::Args;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
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
    /// Who may call the API, from where, and over what.
    #[command(flatten)]
    pub security: ApiSecurityArgs,
}

/// Who may call the API, from where, and over what (`serve` and `run`).
#[derive(Debug, Clone, Default, Args)]
pub struct ApiSecurityArgs {
    /// Host names the API answers to (comma-separated), besides its own
    /// address and, on loopback, `localhost`; `*` for any (behind a proxy
    /// that checks them).
    #[arg(long, env = "JOBSLOT_API_ALLOWED_HOSTS", value_delimiter = ',')]
    pub api_allowed_hosts: Vec<String>,
    /// TOML file of named tokens, stored as SHA-256 hashes, each with a role
    /// (read, operate, admin); see `jobslot token new`.
    #[arg(long, env = "JOBSLOT_API_TOKENS_FILE")]
    pub api_tokens_file: Option<PathBuf>,
    /// PEM certificate chain: serve the API over HTTPS (with --api-tls-key).
    #[arg(long, env = "JOBSLOT_API_TLS_CERT", requires = "api_tls_key")]
    pub api_tls_cert: Option<PathBuf>,
    /// PEM private key of --api-tls-cert.
    #[arg(long, env = "JOBSLOT_API_TLS_KEY", requires = "api_tls_cert")]
    pub api_tls_key: Option<PathBuf>,
}

/// The API's security settings, read and checked before anything listens.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    tokens: Tokens,
    allowed_hosts: Vec<String>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl ApiConfig {
    /// Reads the tokens (`JOBSLOT_API_TOKEN`, `JOBSLOT_API_TOKEN_FILE`, the
    /// tokens file) and the TLS certificate and key.
    pub fn load(a: &ApiSecurityArgs) -> Result<ApiConfig> {
        let mut tokens = match crate::api::access::env_token()? {
            Some(t) => Tokens::single_admin(&t),
            None => Tokens::none(),
        };
        if let Some(path) = &a.api_tokens_file {
            tokens.add_file(path)?;
        }
        let tls = match (&a.api_tls_cert, &a.api_tls_key) {
            (Some(cert), Some(key)) => Some(crate::api::tls::server_config(cert, key)?),
            _ => None,
        };
        Ok(ApiConfig {
            tokens,
            allowed_hosts: a.api_allowed_hosts.clone(),
            tls,
        })
    }
}

/// Serves the API until SIGINT or SIGTERM; a second signal stops at once.
pub async fn run(ctx: &Ctx, a: ServeArgs) -> Result<i32> {
    let _guard = super::run::init_tracing(ctx)?;
    let (trigger, shutdown) = Shutdown::channel();
    let _requests = super::signals::install(trigger, Duration::ZERO)?;
    let schema = crate::schema::load(&ctx.project).map_err(|e| anyhow::anyhow!("{e}"))?;
    let api = ApiConfig::load(&a.security)?;
    let store = ctx.store().await?;
    let listener = bind(a.api_addr, &api).await?;
    let stop = shutdown.clone();
    let stopping = ApiShutdown {
        begun: shutdown,
        stop: Box::pin(async move {
            stop.started().await;
        }),
        drain: a.shutdown_timeout,
    };
    serve(ctx, listener, &api, store, schema, stopping).await?;
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

/// Checks the exposure rule, then listens on `addr`.
pub async fn bind(addr: SocketAddr, api: &ApiConfig) -> Result<TcpListener> {
    check_exposure(addr, api.tokens.required())?;
    if !addr.ip().is_loopback() && api.tls.is_none() {
        tracing::warn!(
            %addr,
            "the API listens beyond loopback without TLS: tokens, args and logs cross the network in clear; give --api-tls-cert and --api-tls-key"
        );
    }
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for the HTTP API"))
}

/// Serves the API on `listener` until `shutdown.stop` resolves, then
/// finishes the requests under way within `shutdown.drain`.
pub async fn serve(
    ctx: &Ctx,
    listener: TcpListener,
    api: &ApiConfig,
    store: Arc<dyn Store>,
    schema: SchemaSet,
    shutdown: ApiShutdown,
) -> Result<()> {
    let addr = listener
        .local_addr()
        .context("the API socket has no address")?;
    let client = Client::with_store(store, schema, ctx.project.clone());
    let app = router(Arc::new(ApiState {
        client,
        access: Access {
            tokens: api.tokens.clone(),
            hosts: crate::api::origin::AllowedHosts::new(Some(addr), &api.allowed_hosts),
            tls: api.tls.is_some(),
        },
        log_dir: ctx.log_dir(),
        storage: ctx.storage().await,
        shutdown: shutdown.begun.clone(),
    }));
    let scheme = if api.tls.is_some() { "https" } else { "http" };
    eprintln!("jobslot API listening on {scheme}://{addr}");
    tracing::info!(%addr, scheme, "API listening");
    match &api.tls {
        None => serve_on(listener, app, shutdown).await,
        Some(config) => {
            let listener = crate::api::tls::TlsListener::new(listener, config.clone())
                .context("cannot serve the API over TLS")?;
            serve_on(listener, app, shutdown).await
        }
    }
}

/// Serves `app` on `listener` with the graceful stop of [`serve`].
async fn serve_on<L>(listener: L, app: axum::Router, shutdown: ApiShutdown) -> Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
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
