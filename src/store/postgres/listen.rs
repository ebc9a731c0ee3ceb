//! Wake-ups across instances through LISTEN/NOTIFY.
//!
//! Writes that can make work for another instance send `NOTIFY` on the
//! schema's channel inside their transaction ([`notify`]), so it is delivered
//! at commit. [`spawn_listener`] keeps one dedicated connection (outside the
//! pool) that LISTENs on that channel and calls `notify_one()` for each
//! notification. A lost connection is re-established with backoff, with a
//! wake-up after each reconnection for anything missed meanwhile; a connection
//! that stops answering is noticed by a periodic ping. Nothing here panics:
//! failures are logged and the scheduler's poll remains the fallback.

use super::conn::{Connect, message, quote_ident};
use super::rows::execute;
use crate::store::{StoreError, StoreResult};
use deadpool_postgres::Transaction;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;

/// First wait before reconnecting; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often the listening connection is checked.
const PING_EVERY: Duration = Duration::from_secs(30);
/// How long a ping may take before the connection counts as lost.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends a notification on `channel`, delivered when the transaction commits.
pub async fn notify(c: &Transaction<'_>, channel: &str) -> StoreResult<()> {
    execute(c, "SELECT pg_notify($1, '')", &[&channel]).await?;
    Ok(())
}

/// Starts listening on `channel` in a background task of the current runtime.
pub fn spawn_listener(
    config: Connect,
    channel: String,
    notify: Arc<Notify>,
) -> StoreResult<tokio::task::AbortHandle> {
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|e| StoreError::Worker(format!("cannot watch for changes: {e}")))?;
    Ok(runtime
        .spawn(listen_forever(config, channel, notify))
        .abort_handle())
}

async fn listen_forever(config: Connect, channel: String, notify: Arc<Notify>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let mut listening = false;
        let outcome = session(&config, &channel, &notify, &mut listening).await;
        if listening {
            backoff = MIN_BACKOFF;
        }
        match outcome {
            Ok(()) => tracing::warn!(
                channel = %channel,
                "change listener's connection closed; reconnecting in {backoff:?}"
            ),
            Err(e) => tracing::warn!(
                channel = %channel,
                error = %e,
                "change listener lost its connection; reconnecting in {backoff:?}"
            ),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: LISTEN, then relay notifications until it ends.
async fn session(
    config: &Connect,
    channel: &str,
    notify: &Arc<Notify>,
    listening: &mut bool,
) -> Result<(), String> {
    let (client, mut connection) = (config.config)
        .connect(config.tls.clone())
        .await
        .map_err(|e| message(&e))?;
    let relayed = notify.clone();
    // Drives the connection; ends when it fails or when `client` is dropped.
    let mut driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => relayed.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(message(&e)),
                None => return Ok(()),
            }
        }
    });
    let result = relay(&client, &mut driver, channel, notify, listening).await;
    // A connection that stopped answering would keep its driver waiting.
    driver.abort();
    result
}

/// LISTENs, then waits until the connection ends or stops answering pings.
async fn relay(
    client: &tokio_postgres::Client,
    driver: &mut tokio::task::JoinHandle<Result<(), String>>,
    channel: &str,
    notify: &Arc<Notify>,
    listening: &mut bool,
) -> Result<(), String> {
    let listen = format!("LISTEN {}", quote_ident(channel));
    client
        .batch_execute(&listen)
        .await
        .map_err(|e| message(&e))?;
    *listening = true;
    tracing::debug!(channel, "listening for changes");
    // Whatever was committed while no connection listened.
    notify.notify_one();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            ended = &mut *driver => {
                return ended.unwrap_or_else(|e| Err(format!("connection task: {e}")));
            }
            _ = ping.tick() => {
                match tokio::time::timeout(PING_TIMEOUT, client.simple_query("")).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(message(&e)),
                    Err(_) => return Err(format!("no answer to a ping within {PING_TIMEOUT:?}")),
                }
            }
        }
    }
}
