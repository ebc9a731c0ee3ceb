//! The PostgreSQL backend: one database shared by instances on several
//! machines, through a pool of `tokio-postgres` connections.
//!
//! The tables live in the schema the URL's search path names (created when
//! missing, e.g. `postgres://host/db?options=-csearch_path%3Djobs`), so several
//! jobslot installations can share one database. Statements are SQLite's,
//! translated; the backend holds no job logic. Claims run at READ COMMITTED
//! with `FOR UPDATE SKIP LOCKED`; other multi-statement writes run at
//! SERIALIZABLE so that concurrent instances see the effects of some serial
//! order, as SQLite's write lock gives. Serialization failures and deadlocks
//! are retried here, like SQLite's busy database; a lost connection is
//! retried a few times before the error reaches the caller, and the pool
//! replaces closed connections, so a PostgreSQL restart does not stop an
//! instance. Other processes' commits are noticed through LISTEN/NOTIFY.
//! Every connection (pool, listener, vacuum) is made with one `conn::Connect`:
//! TLS through rustls as the URL's `sslmode`/`sslrootcert` say, with libpq's
//! meanings (`tls.rs`), and the password possibly from
//! `JOBSLOT_DATABASE_PASSWORD_FILE`.

mod claim;
#[cfg(test)]
mod conformance_tests;
mod conn;
mod listen;
mod migrations;
mod params;
#[cfg(test)]
mod plan_tests;
mod queries;
mod retry;
mod rows;
mod schedules;
mod stats;
mod store;
#[cfg(test)]
mod stress_tests;
mod tasks;
#[cfg(test)]
mod test_support;
mod tls;
mod vacuum;
mod verify;
mod workers;
#[cfg(test)]
mod workers_tests;

pub use conn::redact_url;

use super::*;
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime, Transaction,
};
use retry::Retry;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;
use tokio_postgres::IsolationLevel;

/// Connections per store (per instance).
const POOL_SIZE: usize = 8;

/// The future a transaction body returns.
type Body<'t, T> = Pin<Box<dyn Future<Output = StoreResult<T>> + Send + 't>>;

/// The PostgreSQL store.
pub struct PostgresStore {
    pool: Pool,
    connect: conn::Connect,
    schema: String,
    channel: Arc<str>,
    listeners: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl PostgresStore {
    /// Connects to the database a `postgres://` URL names, creates the schema
    /// its search path names if needed, and migrates it.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let connect = conn::parse_config(url)?;
        let manager = Manager::from_config(
            connect.config.clone(),
            connect.tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(15)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| StoreError::Url {
                url: redact_url(url),
                why: e.to_string(),
            })?;
        let schema = target_schema(&pool).await.map_err(|e| match e {
            StoreError::Url { why, .. } => StoreError::Url {
                url: redact_url(url),
                why,
            },
            other => other,
        })?;
        let store = Self {
            pool,
            connect,
            channel: conn::channel_name(&schema).into(),
            schema,
            listeners: Mutex::new(Vec::new()),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The schema holding this store's tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Runs `f` in a transaction at `level` and commits, retrying on
    /// serialization failures, deadlocks and (unless the commit itself was cut
    /// off) lost connections.
    async fn tx<T, F>(&self, level: IsolationLevel, mut f: F) -> StoreResult<T>
    where
        T: Send,
        F: for<'t> FnMut(&'t Transaction<'t>) -> Body<'t, T> + Send,
    {
        let mut retry = Retry::new();
        loop {
            // The connection goes back to the pool (or, lost, is discarded
            // there) before any wait; a transaction dropped unfinished rolls back.
            let attempt = async {
                let mut client = self.pool.get().await.map_err(|e| (e.into(), false))?;
                let tx = (client.build_transaction())
                    .isolation_level(level)
                    .start()
                    .await
                    .map_err(|e| (e.into(), false))?;
                let out = f(&tx).await.map_err(|e| (e, false))?;
                tx.commit().await.map_err(|e| (e.into(), true))?;
                Ok(out)
            };
            match attempt.await {
                Ok(out) => return Ok(out),
                Err((e, committing)) => retry.again(e, !committing).await?,
            }
        }
    }

    /// A claim (see [`claim`]): the one-statement prefix claim, then, when it
    /// left slots it might have filled, the full claim for what is left; each
    /// retried like [`Self::tx`]. It runs as a task of its own, so that a caller
    /// giving up on it cannot leave a connection inside an open transaction.
    async fn claim(&self, p: TaskClaimParams) -> StoreResult<Vec<crate::model::Task>> {
        let pool = self.pool.clone();
        let run = async move {
            let mut aged = Vec::new();
            if p.starvation_after.is_some() && p.free_slots > 0 && p.limit > 0 {
                let mut retry = Retry::new();
                aged = loop {
                    let attempt = async {
                        let client = pool.get().await?;
                        claim::claim_aged(&client, &p).await
                    };
                    match attempt.await {
                        Ok(out) => break out,
                        Err(e) => retry.again(e, false).await?,
                    }
                };
            }
            let used: u32 = aged.iter().map(|t| t.slots).sum();
            let p = TaskClaimParams {
                free_slots: p.free_slots.saturating_sub(used),
                limit: p.limit.saturating_sub(aged.len()),
                ..p
            };
            if p.free_slots == 0 || p.limit == 0 {
                return Ok(aged);
            }
            match Self::claim_by_priority(pool, p).await {
                Ok(more) => aged.extend(more),
                // What the aged pick took is claimed: it must reach the caller.
                Err(e) if !aged.is_empty() => {
                    tracing::debug!(error = %e, "claim after the aged pick failed");
                }
                Err(e) => return Err(e),
            }
            Ok(aged)
        };
        tokio::spawn(run).await.map_err(|e| StoreError::Postgres {
            code: None,
            message: format!("claim task: {e}"),
        })?
    }

    /// The claim by priority: the prefix claim, then the full one for what
    /// it left.
    async fn claim_by_priority(
        pool: deadpool_postgres::Pool,
        p: TaskClaimParams,
    ) -> StoreResult<Vec<crate::model::Task>> {
        let mut retry = Retry::new();
        let (mut taken, settled) = loop {
            let attempt = async {
                let client = pool.get().await?;
                claim::claim_prefix(&client, &p).await
            };
            match attempt.await {
                Ok(out) => break out,
                // One statement on its own: a lost connection may have
                // committed it, so only conflicts are tried again.
                Err(e) => retry.again(e, false).await?,
            }
        };
        let used: u32 = taken.iter().map(|t| t.slots).sum();
        let rest = TaskClaimParams {
            free_slots: p.free_slots.saturating_sub(used),
            limit: p.limit.saturating_sub(taken.len()),
            ..p
        };
        if settled || rest.free_slots == 0 || rest.limit == 0 {
            return Ok(taken);
        }
        let mut retry = Retry::new();
        let more = loop {
            let attempt = async {
                let client = pool.get().await.map_err(|e| (e.into(), false))?;
                claim::claim(&client, &rest).await
            };
            match attempt.await {
                Ok(out) => break Ok(out),
                Err((e, committing)) => {
                    if let Err(e) = retry.again(e, !committing).await {
                        break Err(e);
                    }
                }
            }
        };
        match more {
            Ok(more) => taken.extend(more),
            // What the prefix took is claimed: it must reach the caller.
            Err(e) if !taken.is_empty() => {
                tracing::debug!(error = %e, "claim after the prefix failed");
            }
            Err(e) => return Err(e),
        }
        Ok(taken)
    }

    /// One statement in a transaction of its own, BEGIN, statement and COMMIT
    /// sent together: one round trip. `begin` sets the isolation level.
    /// Retried like [`Self::tx`].
    async fn one_statement_tx(
        &self,
        begin: &'static str,
        sql: &'static str,
        params: &[rows::Param<'_>],
    ) -> StoreResult<Vec<tokio_postgres::Row>> {
        let mut retry = Retry::new();
        loop {
            let attempt = async {
                let c = self.pool.get().await.map_err(|e| (e.into(), false))?;
                let stmt = c.prepare_cached(sql).await.map_err(|e| (e.into(), false))?;
                // All three requests are queued on the first poll, in order, so
                // the transaction ends even if this future is dropped.
                let (begun, rows, commit) = tokio::join!(
                    biased;
                    c.batch_execute(begin),
                    c.query(&stmt, params),
                    c.batch_execute("COMMIT"),
                );
                begun.map_err(|e| (e.into(), false))?;
                // A failed statement aborts the transaction, and PostgreSQL
                // answers the COMMIT of an aborted transaction by rolling back.
                let rows = rows.map_err(|e| (e.into(), false))?;
                commit.map_err(|e| (e.into(), true))?;
                Ok(rows)
            };
            match attempt.await {
                Ok(rows) => return Ok(rows),
                Err((e, committing)) => retry.again(e, !committing).await?,
            }
        }
    }

    /// Wakes the other instances after a commit that made work. Best effort:
    /// an instance that misses it finds the work at its next poll.
    async fn notify_after_commit(&self) {
        let channel = self.channel.clone();
        let sent = self
            .read(move |c| {
                let channel = channel.clone();
                Box::pin(async move {
                    rows::execute(c, "SELECT pg_notify($1, '')", &[&&*channel]).await
                })
            })
            .await;
        if let Err(e) = sent {
            tracing::debug!(error = %e, "cannot wake the other instances");
        }
    }

    /// A SERIALIZABLE write (see the module documentation).
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send,
        F: for<'t> FnMut(&'t Transaction<'t>) -> Body<'t, T> + Send,
    {
        self.tx(IsolationLevel::Serializable, f).await
    }

    /// A READ COMMITTED write: claims, and compare-and-set updates of single rows.
    async fn write_rc<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send,
        F: for<'t> FnMut(&'t Transaction<'t>) -> Body<'t, T> + Send,
    {
        self.tx(IsolationLevel::ReadCommitted, f).await
    }

    /// Runs read-only statements on a pooled connection, retrying when the
    /// connection was lost.
    async fn read<T, F>(&self, mut f: F) -> StoreResult<T>
    where
        T: Send,
        F: for<'c> FnMut(&'c Object) -> Body<'c, T> + Send,
    {
        let mut retry = Retry::new();
        loop {
            let result = match self.pool.get().await {
                Ok(client) => f(&client).await,
                Err(e) => Err(e.into()),
            };
            match result {
                Ok(out) => return Ok(out),
                Err(e) => retry.again(e, true).await?,
            }
        }
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        let listeners = self.listeners.get_mut().unwrap_or_else(|p| p.into_inner());
        for l in listeners.drain(..) {
            l.abort();
        }
    }
}

/// The schema the connections' search path puts tables in: its first entry,
/// `$user` counting only when that schema exists (as PostgreSQL resolves it).
async fn target_schema(pool: &Pool) -> StoreResult<String> {
    let mut retry = Retry::new();
    let row = loop {
        let result = async {
            let client = pool.get().await?;
            Ok(client
                .query_one(
                    "SELECT current_setting('search_path'), current_user::text,
                        EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = current_user)",
                    &[],
                )
                .await?)
        }
        .await;
        match result {
            Ok(row) => break row,
            Err(e) => retry.again(e, true).await?,
        }
    };
    let path: String = row.try_get(0)?;
    let user: String = row.try_get(1)?;
    let user_schema: bool = row.try_get(2)?;
    for entry in conn::search_path_entries(&path) {
        if entry != "$user" {
            return Ok(entry);
        }
        if user_schema {
            return Ok(user);
        }
    }
    Err(StoreError::Url {
        url: String::new(),
        why: format!("its search_path ({path}) names no schema to hold jobslot's tables"),
    })
}
