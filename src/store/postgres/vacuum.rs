//! Keeping the tasks table fast under churn. On PostgreSQL every claim and
//! every end leaves a dead row version behind, with an entry in each index;
//! the claim's and the next-due scans walk the dead entries of the `pending`
//! range until VACUUM removes them, so without it each claim gets slower with
//! every task run. Autovacuum may be off, and when on it waits for a fifth of
//! the table to be dead: far too late for a queue. So instances vacuum the
//! table themselves once its dead row versions pass a threshold that grows
//! with the table (so that a long history is not rescanned too often), one
//! instance at a time: a session advisory lock is tried, never waited for.

use super::conn::lock_key;
use super::retry::Retry;
use super::{PostgresStore, rows};
use crate::store::{StoreError, StoreResult, TableMaintenance};

/// Dead row versions always tolerated.
const MIN_DEAD: i64 = 1000;
/// And the fraction of live rows tolerated on top (1/20).
const LIVE_DIVISOR: i64 = 20;

/// Whether `dead` row versions among `live` rows call for a vacuum.
pub fn needs_vacuum(dead: i64, live: i64) -> bool {
    dead > MIN_DEAD + live.max(0) / LIVE_DIVISOR
}

impl PostgresStore {
    /// Vacuums `tasks` when its dead row versions (as the statistics
    /// collector counts them, which lags by up to a few seconds) call for it
    /// and no other instance is vacuuming it.
    pub(super) async fn maintain(&self) -> StoreResult<TableMaintenance> {
        let (dead, live) = self
            .read(|c| {
                Box::pin(async move {
                    let row = rows::query_opt(
                        c,
                        "SELECT n_dead_tup, n_live_tup FROM pg_stat_user_tables
                         WHERE relid = 'tasks'::regclass",
                        &[],
                    )
                    .await?;
                    Ok(match row {
                        Some(r) => (r.try_get::<_, i64>(0)?, r.try_get::<_, i64>(1)?),
                        None => (0, 0),
                    })
                })
            })
            .await?;
        if !needs_vacuum(dead, live) {
            return Ok(TableMaintenance::NotNeeded);
        }
        self.vacuum_tasks().await
    }

    /// Vacuums `tasks` on a connection of its own (VACUUM cannot run in a
    /// transaction, and the session lock goes with the connection whatever
    /// happens), if no other instance holds the lock.
    pub(super) async fn vacuum_tasks(&self) -> StoreResult<TableMaintenance> {
        let mut retry = Retry::new();
        let (client, driver) = loop {
            match (self.connect.config)
                .connect(self.connect.tls.clone())
                .await
            {
                Ok(pair) => break pair,
                Err(e) => retry.again(e.into(), true).await?,
            }
        };
        let driver = tokio::spawn(async move {
            if let Err(e) = driver.await {
                tracing::debug!(error = %e, "vacuum connection ended");
            }
        });
        let key = lock_key("vacuum", &self.schema);
        let outcome = async {
            let locked: bool = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
                .await?
                .try_get(0)?;
            if !locked {
                return Ok::<_, StoreError>(TableMaintenance::Busy);
            }
            let started = std::time::Instant::now();
            client.batch_execute("VACUUM (ANALYZE) tasks").await?;
            tracing::debug!(took = ?started.elapsed(), "vacuumed the tasks table");
            Ok(TableMaintenance::Vacuumed)
        }
        .await;
        // Closing the connection releases the lock.
        drop(client);
        let _ = driver.await;
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::TestDatabase;
    use super::super::{PostgresStore, conn::lock_key};
    use super::needs_vacuum;
    use crate::model::TaskStatus;
    use crate::store::conformance::now_ms;
    use crate::store::{Store, TableMaintenance};

    #[test]
    fn the_threshold_grows_with_the_table() {
        assert!(!needs_vacuum(0, 0));
        assert!(!needs_vacuum(1000, 0));
        assert!(needs_vacuum(1001, 0));
        assert!(!needs_vacuum(50_000, 1_000_000));
        assert!(needs_vacuum(52_000, 1_000_000));
        assert!(
            !needs_vacuum(1000, -1),
            "a never-analyzed table counts no live rows"
        );
    }

    /// Buffers read by the next-due scan of pending tasks (the claim's scans
    /// start the same way), from EXPLAIN (ANALYZE, BUFFERS).
    async fn pending_scan_buffers(client: &tokio_postgres::Client) -> u64 {
        let rows = client
            .simple_query(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)
                 SELECT MIN(due_at) FROM tasks WHERE status = 'pending'",
            )
            .await
            .expect("explain");
        let text = rows
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .expect("a plan");
        let plan: serde_json::Value = serde_json::from_str(&text).expect("json plan");
        let p = &plan[0]["Plan"];
        p["Shared Hit Blocks"].as_u64().unwrap_or(0) + p["Shared Read Blocks"].as_u64().unwrap_or(0)
    }

    /// Regression: with autovacuum off (as on the test server) or late, each
    /// task run left dead entries in the pending range that every claim and
    /// next-due scan walked again, and a benchmark's PostgreSQL rate fell
    /// round after round. Maintenance vacuums once they pass the threshold,
    /// one instance at a time, and the scans read a few pages again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn maintenance_vacuums_churned_tasks_once_past_the_threshold() {
        // A database of its own: other tests' open transactions in a shared
        // one would keep VACUUM from removing the dead rows.
        let Some(db) = TestDatabase::fresh().await else {
            return;
        };
        let Some(schema) = db.schema.as_ref() else {
            return;
        };
        let store = PostgresStore::open(&schema.url).await.expect("open");
        let client = schema.connect().await;
        assert_eq!(
            store.task_table_maintain().await.expect("maintain"),
            TableMaintenance::NotNeeded,
            "an empty table needs nothing"
        );
        let now = now_ms().timestamp_millis();
        client
            .execute(
                "INSERT INTO tasks (id, job, status, queue, priority, slots, max_execution_ms,
                    kill_grace_ms, args, metadata, created_at, due_at)
                 SELECT gen_random_uuid(), 'j', $1, 'default', 0, 1, 60000, 10000, '{}', '{}',
                    $2::bigint, $2::bigint + g
                 FROM generate_series(1, 3000) AS g",
                &[&TaskStatus::Pending.as_str(), &now],
            )
            .await
            .expect("fill");
        // Every task claimed then ended: two dead versions each, the first in
        // the pending range of the status indexes.
        for status in [TaskStatus::Running, TaskStatus::Completed] {
            client
                .execute("UPDATE tasks SET status = $1", &[&status.as_str()])
                .await
                .expect("churn");
        }
        // Statistics reach the collector at the end of the next transaction.
        client
            .batch_execute("SELECT pg_stat_force_next_flush(); SELECT 1")
            .await
            .expect("flush statistics");
        let before = pending_scan_buffers(&client).await;
        assert!(before > 10, "dead entries read before: {before} buffers");

        // Another instance vacuuming: this one does not wait for it.
        let key = lock_key("vacuum", &schema.name);
        client
            .execute("SELECT pg_advisory_lock($1)", &[&key])
            .await
            .expect("lock");
        assert_eq!(
            store.task_table_maintain().await.expect("maintain"),
            TableMaintenance::Busy
        );
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&key])
            .await
            .expect("unlock");

        assert_eq!(
            store.task_table_maintain().await.expect("maintain"),
            TableMaintenance::Vacuumed
        );
        let after = pending_scan_buffers(&client).await;
        assert!(
            after <= 3,
            "{after} buffers read after the vacuum (before: {before})"
        );
        let dead: i64 = client
            .query_one(
                "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'tasks'::regclass",
                &[],
            )
            .await
            .expect("stats")
            .get(0);
        assert_eq!(dead, 0);
        assert_eq!(
            store.task_table_maintain().await.expect("maintain"),
            TableMaintenance::NotNeeded,
            "nothing left to do"
        );
    }
}
