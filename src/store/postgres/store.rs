//! [`Store`] for [`PostgresStore`]: each method one transaction (or one read),
//! delegating to the statement modules, and sending a notification from the
//! writes that can make work for another instance.

use super::listen::{notify, spawn_listener};
use super::rows::{execute, instance_columns, ms};
use super::{PostgresStore, migrations, queries, schedules, stats, tasks, workers};
use crate::model::{Task, TaskStatus};
use crate::store::*;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tokio::sync::Notify;
use uuid::Uuid;

/// A transaction (or read) body for the retrying helpers: a closure that
/// clones the named captures for each attempt and returns a boxed future.
macro_rules! body {
    (|$c:ident $(, $v:ident)*| $e:expr) => {
        move |$c| {
            $(let $v = $v.clone();)*
            Box::pin(async move { $e })
        }
    };
}

#[async_trait]
impl Store for PostgresStore {
    async fn migrate(&self) -> StoreResult<u32> {
        let schema: Arc<str> = self.schema.as_str().into();
        self.write_rc(body!(|tx, schema| migrations::migrate(tx, &schema).await))
            .await
    }

    async fn instance_register(&self, p: InstanceRegisterParams) -> StoreResult<()> {
        let p = Arc::new(p);
        self.write_rc(body!(|tx, p| {
            let sql = concat!(
                "INSERT INTO instances (",
                instance_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            );
            execute(
                tx,
                sql,
                &[
                    &p.id,
                    &p.name,
                    &p.host,
                    &i64::from(p.pid),
                    &i64::from(p.slots),
                    &p.queues.join(","),
                    &ms(p.started_at),
                    &ms(p.heartbeat_at),
                    &p.stopped_at.map(ms),
                    &super::rows::dur_ms(p.heartbeat_interval),
                    &p.clock_offset_ms,
                ],
            )
            .await?;
            Ok(())
        }))
        .await
    }

    async fn instance_heartbeat(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        clock_offset_ms: i64,
    ) -> StoreResult<()> {
        self.write_rc(body!(|tx| {
            let sql = "UPDATE instances SET heartbeat_at = $1, clock_offset_ms = $2 WHERE id = $3";
            execute(tx, sql, &[&ms(now), &clock_offset_ms, &id]).await?;
            Ok(())
        }))
        .await
    }

    fn clock_is_local(&self) -> bool {
        false
    }

    async fn db_now(&self) -> StoreResult<DateTime<Utc>> {
        self.read(body!(|c| queries::db_now(c).await)).await
    }

    async fn instance_stop(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<()> {
        self.write_rc(body!(|tx| {
            let sql = "UPDATE instances SET stopped_at = $1, heartbeat_at = $1 WHERE id = $2";
            execute(tx, sql, &[&ms(now), &id]).await?;
            Ok(())
        }))
        .await
    }

    async fn instance_list(&self) -> StoreResult<Vec<Instance>> {
        self.read(body!(|c| queries::instance_list(c).await)).await
    }

    async fn task_insert(&self, p: NewTask) -> StoreResult<Task> {
        let (p, channel) = (Arc::new(p), self.channel.clone());
        self.write(body!(|tx, p, channel| {
            tasks::insert(tx, &p).await?;
            notify(tx, &channel).await?;
            tasks::get(tx, p.id)
                .await?
                .ok_or_else(|| StoreError::NoSuchTask(p.id.to_string()))
        }))
        .await
    }

    async fn task_get(&self, id: Uuid) -> StoreResult<Option<Task>> {
        self.read(body!(|c| tasks::get(c, id).await)).await
    }

    async fn task_attempts(&self, id: Uuid) -> StoreResult<Vec<Attempt>> {
        self.read(body!(|c| tasks::attempts(c, id).await)).await
    }

    async fn task_find_prefix(&self, prefix: &str, limit: usize) -> StoreResult<Vec<Task>> {
        let prefix: Arc<str> = prefix.into();
        self.read(body!(
            |c, prefix| queries::find_prefix(c, &prefix, limit).await
        ))
        .await
    }

    async fn task_list(&self, p: TaskListParams) -> StoreResult<Vec<Task>> {
        let p = Arc::new(p);
        self.read(body!(|c, p| queries::list(c, &p).await)).await
    }

    async fn task_claim(&self, p: TaskClaimParams) -> StoreResult<Vec<Task>> {
        self.claim(p).await
    }

    async fn task_mark_spawned(&self, p: Vec<TaskSpawnedParams>) -> StoreResult<()> {
        // One statement, atomic on its own and idempotent: no transaction.
        let ids: Arc<Vec<Uuid>> = Arc::new(p.iter().map(|s| s.id).collect());
        let pgids: Arc<Vec<i32>> = Arc::new(p.iter().map(|s| s.pgid).collect());
        let logs: Arc<Vec<String>> = Arc::new(p.iter().map(|s| s.log.clone()).collect());
        // The status comes per row: compared with a constant, the planner may
        // walk every running task of a status index instead of the ids.
        let running: Arc<Vec<&str>> = Arc::new(vec![TaskStatus::Running.as_str(); p.len()]);
        self.read(body!(|c, ids, pgids, logs, running| {
            execute(
                c,
                "UPDATE tasks AS t SET pgid = v.pgid, log = v.log
                 FROM unnest($1::uuid[], $2::int4[], $3::text[], $4::text[])
                    AS v(id, pgid, log, status)
                 WHERE t.id = v.id AND t.status = v.status",
                &[&*ids, &*pgids, &*logs, &*running],
            )
            .await?;
            Ok(())
        }))
        .await
    }

    async fn task_held(&self, instance: Uuid) -> StoreResult<Vec<Task>> {
        self.read(body!(|c| queries::held(c, instance).await)).await
    }

    async fn task_reschedule(&self, p: TaskRescheduleParams) -> StoreResult<bool> {
        let (p, channel) = (Arc::new(p), self.channel.clone());
        self.write_rc(body!(|tx, p, channel| {
            let n = execute(
                tx,
                "UPDATE tasks SET status = $1, due_at = $2, instance_id = NULL, instance_name = NULL,
                    host = NULL, started_at = NULL, deadline_at = NULL, pgid = NULL, log = NULL
                 WHERE id = $3 AND status = $4 AND instance_id = $5",
                &[
                    &TaskStatus::Pending.as_str(),
                    &ms(p.due_at),
                    &p.id,
                    &TaskStatus::Running.as_str(),
                    &p.instance_id,
                ],
            )
            .await?;
            if n > 0 {
                notify(tx, &channel).await?;
            }
            Ok(n > 0)
        }))
        .await
    }

    async fn task_finish_many(
        &self,
        p: Vec<TaskFinishParams>,
    ) -> StoreResult<Vec<Option<TaskStatus>>> {
        let mut ids: Vec<Uuid> = p.iter().map(|f| f.id).collect();
        ids.sort_unstable();
        ids.dedup();
        if !p.is_empty() && ids.len() == p.len() && p.iter().all(tasks::finishes_in_bulk) {
            // Plain completions, the common batch: one statement, one round trip.
            let columns = tasks::FinishColumns::new(p.iter());
            let rows = self
                .one_statement_tx(
                    "BEGIN ISOLATION LEVEL SERIALIZABLE",
                    tasks::FINISH_COMPLETED,
                    &columns.params(),
                )
                .await?;
            let (applied, released) = tasks::finish_completed_rows(&rows)?;
            if released {
                self.notify_after_commit().await;
            }
            return Ok(p
                .iter()
                .map(|f| applied.iter().find(|(id, _)| *id == f.id).map(|(_, s)| *s))
                .collect());
        }
        let (p, channel) = (Arc::new(p), self.channel.clone());
        self.write(body!(|tx, p, channel| {
            let mut applied = Vec::with_capacity(p.len());
            let mut made_work = false;
            for f in p.iter() {
                let r = tasks::finish(tx, f).await?;
                applied.push(r.map(|(status, _)| status));
                made_work |= r.is_some_and(|(_, work)| work);
            }
            // Wake other instances only when there is new work for them.
            if made_work {
                notify(tx, &channel).await?;
            }
            Ok(applied)
        }))
        .await
    }

    async fn task_cancel(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<CancelOutcome> {
        let channel = self.channel.clone();
        self.write(body!(|tx, channel| {
            let Some(t) = tasks::get(tx, id).await? else {
                return Ok(CancelOutcome::NotFound);
            };
            let outcome = match t.status {
                TaskStatus::Pending | TaskStatus::Waiting => {
                    tasks::cancel_pending(tx, id, t.status, now, "canceled").await?;
                    CancelOutcome::Canceled
                }
                TaskStatus::Running => {
                    let sql = "UPDATE tasks SET cancel_requested = true WHERE id = $1";
                    execute(tx, sql, &[&id]).await?;
                    CancelOutcome::StopRequested
                }
                s => return Ok(CancelOutcome::AlreadyEnded(s)),
            };
            notify(tx, &channel).await?;
            Ok(outcome)
        }))
        .await
    }

    async fn task_request_expire(&self, id: Uuid) -> StoreResult<bool> {
        self.write_rc(body!(|tx| {
            let n = execute(
                tx,
                "UPDATE tasks SET expire_requested = true WHERE id = $1 AND status = $2",
                &[&id, &TaskStatus::Running.as_str()],
            )
            .await?;
            Ok(n > 0)
        }))
        .await
    }

    async fn task_expire_requests(&self, instance: Uuid) -> StoreResult<Vec<Uuid>> {
        self.read(body!(|c| {
            super::rows::query(
                c,
                "SELECT id FROM tasks WHERE status = $1 AND instance_id = $2 AND expire_requested",
                &[&TaskStatus::Running.as_str(), &instance],
            )
            .await?
            .iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect()
        }))
        .await
    }

    async fn task_cancel_requests(&self, instance: Uuid) -> StoreResult<Vec<Uuid>> {
        self.read(body!(|c| queries::cancel_requests(c, instance).await))
            .await
    }

    async fn task_list_orphans(&self, p: OrphanParams) -> StoreResult<Vec<Task>> {
        let p = Arc::new(p);
        self.read(body!(|c, p| queries::orphans(c, &p).await)).await
    }

    async fn task_next_due(&self, now: DateTime<Utc>) -> StoreResult<Option<DateTime<Utc>>> {
        self.read(body!(|c| tasks::next_due(c, now).await)).await
    }

    async fn task_next_foreign_deadline(&self, me: Uuid) -> StoreResult<Option<DateTime<Utc>>> {
        self.read(body!(|c| queries::next_foreign_deadline(c, me).await))
            .await
    }

    async fn task_logs_local(&self, host: &str, limit: usize) -> StoreResult<Vec<LocalLog>> {
        let host: Arc<str> = host.into();
        self.read(body!(|c, host| queries::logs_local(c, &host, limit).await))
            .await
    }

    async fn task_log_uploaded(&self, id: Uuid, url: &str) -> StoreResult<bool> {
        let url: Arc<str> = url.into();
        self.write_rc(body!(|tx, url| {
            let n = execute(
                tx,
                "UPDATE tasks SET log = $1, log_local = false WHERE id = $2 AND log_local",
                &[&&*url, &id],
            )
            .await?;
            Ok(n > 0)
        }))
        .await
    }

    async fn task_attempt_logs_local(
        &self,
        host: &str,
        limit: usize,
    ) -> StoreResult<Vec<LocalAttemptLog>> {
        let host: Arc<str> = host.into();
        self.read(body!(|c, host| queries::attempt_logs_local(
            c, &host, limit
        )
        .await))
            .await
    }

    async fn task_attempt_log_uploaded(
        &self,
        id: Uuid,
        attempt: u32,
        url: &str,
    ) -> StoreResult<bool> {
        let url: Arc<str> = url.into();
        self.write_rc(body!(|tx, url| {
            let n = execute(
                tx,
                "UPDATE task_attempts SET log = $1, log_local = false
                 WHERE task_id = $2 AND attempt = $3 AND log_local",
                &[&&*url, &id, &i64::from(attempt)],
            )
            .await?;
            Ok(n > 0)
        }))
        .await
    }

    async fn task_list_prunable(&self, p: TaskPruneParams) -> StoreResult<Vec<PrunableTask>> {
        let p = Arc::new(p);
        self.read(body!(|c, p| queries::prunable(c, &p).await))
            .await
    }

    async fn task_delete_finished(&self, ids: Vec<Uuid>) -> StoreResult<usize> {
        let ids = Arc::new(ids);
        self.write_rc(body!(|tx, ids| {
            let finished: Vec<&str> = TaskStatus::ALL
                .iter()
                .filter(|s| s.is_terminal())
                .map(|s| s.as_str())
                .collect();
            let n = execute(
                tx,
                "WITH gone AS (DELETE FROM tasks WHERE id = ANY($1) AND status = ANY($2) RETURNING id),
                      attempts AS (DELETE FROM task_attempts USING gone WHERE task_id = gone.id)
                 SELECT 1 FROM gone",
                &[&*ids, &finished],
            )
            .await?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        }))
        .await
    }

    async fn task_table_maintain(&self) -> StoreResult<TableMaintenance> {
        self.maintain().await
    }

    async fn queue_pause(&self, name: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let name: Arc<str> = name.into();
        self.write_rc(body!(|tx, name| {
            let n = execute(
                tx,
                "INSERT INTO queue_pauses (name, paused_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[&&*name, &ms(now)],
            )
            .await?;
            Ok(n > 0)
        }))
        .await
    }

    async fn queue_resume(&self, name: &str) -> StoreResult<bool> {
        let (name, channel) = (Arc::<str>::from(name), self.channel.clone());
        self.write_rc(body!(|tx, name, channel| {
            let n = execute(tx, "DELETE FROM queue_pauses WHERE name = $1", &[&&*name]).await?;
            // Its tasks may be claimed again: wake the instances.
            notify(tx, &channel).await?;
            Ok(n > 0)
        }))
        .await
    }

    async fn queue_stats(&self, now: DateTime<Utc>) -> StoreResult<Vec<QueueStats>> {
        self.read(body!(|c| queries::queue_stats(c, now).await))
            .await
    }

    async fn stats_snapshot(&self, now: DateTime<Utc>) -> StoreResult<StatsSnapshot> {
        // REPEATABLE READ: every statement sees the same snapshot.
        let level = tokio_postgres::IsolationLevel::RepeatableRead;
        let rows = self.tx(level, body!(|tx| stats::rows(tx).await)).await?;
        Ok(StatsSnapshot::build(now, rows))
    }

    async fn task_timeline(&self, p: TimelineParams) -> StoreResult<Timeline> {
        let level = tokio_postgres::IsolationLevel::RepeatableRead;
        let rows = self
            .tx(level, body!(|tx, p| stats::timeline_rows(tx, &p).await))
            .await?;
        Ok(Timeline::build(p, rows))
    }

    async fn worker_apply(
        &self,
        specs: Vec<WorkerSpec>,
        now: DateTime<Utc>,
    ) -> StoreResult<WorkerApplyReport> {
        let (specs, channel) = (Arc::new(specs), self.channel.clone());
        let schema: Arc<str> = self.schema.as_str().into();
        self.write(body!(|tx, specs, channel, schema| {
            let report = workers::apply(tx, &schema, &specs, now).await?;
            let changed = !(report.added.is_empty()
                && report.changed.is_empty()
                && report.scaled.is_empty()
                && report.removed.is_empty());
            // Other instances' supervisors start, replace or stop replicas.
            if changed {
                notify(tx, &channel).await?;
            }
            Ok(report)
        }))
        .await
    }

    async fn worker_list(&self) -> StoreResult<Vec<WorkerRow>> {
        self.read(body!(|c| workers::list(c).await)).await
    }

    async fn worker_get(&self, name: &str) -> StoreResult<Option<WorkerRow>> {
        let name: Arc<str> = name.into();
        self.read(body!(|c, name| workers::get(c, &name).await))
            .await
    }

    async fn worker_control(
        &self,
        name: &str,
        control: WorkerControl,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<WorkerRow>> {
        let (name, channel) = (Arc::<str>::from(name), self.channel.clone());
        let control = Arc::new(control);
        // One UPDATE … RETURNING: a compare-and-set of one row.
        self.write_rc(body!(|tx, name, control, channel| {
            let row = workers::control(tx, &name, &control, now).await?;
            // The instances running its replicas stop, start or replace them.
            if row.is_some() {
                notify(tx, &channel).await?;
            }
            Ok(row)
        }))
        .await
    }

    async fn worker_replicas(&self, name: Option<String>) -> StoreResult<Vec<Task>> {
        let name: Option<Arc<str>> = name.map(Into::into);
        self.read(body!(|c, name| workers::replicas(c, name.as_deref()).await))
            .await
    }

    async fn worker_roll(&self, name: &str, task: Uuid, replicas: u32) -> StoreResult<bool> {
        let (name, channel) = (Arc::<str>::from(name), self.channel.clone());
        let schema: Arc<str> = self.schema.as_str().into();
        // READ COMMITTED: the guarded UPDATE runs after the worker's lock is
        // granted, on a snapshot that shows any roll that went first.
        self.write_rc(body!(|tx, name, channel, schema| {
            let stopped = workers::roll(tx, &schema, &name, task, replicas).await?;
            // The instance running the replica learns of the stop request
            // now rather than at its next poll (as for task_cancel).
            if stopped {
                notify(tx, &channel).await?;
            }
            Ok(stopped)
        }))
        .await
    }

    async fn schedule_apply(&self, p: ScheduleApplyParams) -> StoreResult<ApplyReport> {
        let (p, channel) = (Arc::new(p), self.channel.clone());
        let schema: Arc<str> = self.schema.as_str().into();
        self.write(body!(|tx, p, channel, schema| {
            let report = schedules::apply(tx, &schema, &p).await?;
            notify(tx, &channel).await?;
            Ok(report)
        }))
        .await
    }

    async fn schedule_list(&self) -> StoreResult<Vec<ScheduleRow>> {
        self.read(body!(|c| schedules::list(c).await)).await
    }

    async fn schedule_get(&self, name: &str) -> StoreResult<Option<ScheduleRow>> {
        let name: Arc<str> = name.into();
        self.read(body!(|c, name| schedules::get(c, &name).await))
            .await
    }

    fn watch_changes(&self, notify: Arc<Notify>) -> StoreResult<()> {
        let handle = spawn_listener(self.connect.clone(), self.channel.to_string(), notify)?;
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(handle);
        Ok(())
    }
}
