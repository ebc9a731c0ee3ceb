//! Schema application for PostgreSQL: schedules and job settings, SQLite's
//! `schedules.rs` translated. [`apply`] runs in a SERIALIZABLE transaction
//! that first takes the schema's `apply` advisory lock, so applies from several
//! instances run one after the other (one that waited, and so read before the
//! other committed, fails to serialize and is retried on fresh data).

use super::conn::lock_key;
use super::rows::{Param, dur_ms, execute, ms, query, query_opt, schedule_from_row};
use super::tasks::{self, live_states};
use crate::model::TaskStatus;
use crate::store::{AfterLink, ApplyReport, ScheduleApplyParams, ScheduleRow, StoreResult};
use deadpool_postgres::{GenericClient, Transaction};
use std::collections::BTreeMap;

/// Every applied schedule.
pub async fn list<C: GenericClient>(c: &C) -> StoreResult<Vec<ScheduleRow>> {
    query(
        c,
        "SELECT name, job, recurrence, args, last_completed_at FROM schedules ORDER BY name",
        &[],
    )
    .await?
    .iter()
    .map(schedule_from_row)
    .collect()
}

/// One applied schedule.
pub async fn get<C: GenericClient>(c: &C, name: &str) -> StoreResult<Option<ScheduleRow>> {
    query_opt(
        c,
        "SELECT name, job, recurrence, args, last_completed_at FROM schedules WHERE name = $1",
        &[&name],
    )
    .await?
    .as_ref()
    .map(schedule_from_row)
    .transpose()
}

/// Applies schedules and job settings.
pub async fn apply(
    c: &Transaction<'_>,
    schema: &str,
    p: &ScheduleApplyParams,
) -> StoreResult<ApplyReport> {
    execute(
        c,
        "SELECT pg_advisory_xact_lock($1)",
        &[&lock_key("apply", schema)],
    )
    .await?;
    let pending = TaskStatus::Pending.as_str();
    let mut report = ApplyReport::default();
    for j in &p.jobs {
        let stored = query_opt(
            c,
            "SELECT slots, max_execution_ms, kill_grace_ms FROM jobs WHERE name = $1",
            &[&j.name],
        )
        .await?
        .map(|r| -> StoreResult<(i64, i64, i64)> {
            Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))
        })
        .transpose()?;
        let want = (
            i64::from(j.slots),
            dur_ms(j.max_execution_time),
            dur_ms(j.kill_grace),
        );
        if stored != Some(want) {
            execute(
                c,
                "INSERT INTO jobs (name, slots, max_execution_ms, kill_grace_ms) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO UPDATE SET slots = $2, max_execution_ms = $3, kill_grace_ms = $4",
                &[&j.name, &want.0, &want.1, &want.2],
            )
            .await?;
            if stored.is_some() {
                execute(
                    c,
                    "UPDATE tasks SET slots = $2, max_execution_ms = $3, kill_grace_ms = $4
                     WHERE job = $1 AND status = $5",
                    &[&j.name, &want.0, &want.1, &want.2, &pending],
                )
                .await?;
            }
        }
    }

    let existing: BTreeMap<String, ScheduleRow> = list(c)
        .await?
        .into_iter()
        .map(|s| (s.name.clone(), s))
        .collect();
    for spec in &p.schedules {
        let old = existing.get(&spec.name);
        let changed = old.is_none_or(|o| {
            o.job != spec.job || o.recurrence != spec.recurrence || o.args != spec.args
        });
        execute(
            c,
            "INSERT INTO schedules (name, job, recurrence, args) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET job = $2, recurrence = $3, args = $4",
            &[
                &spec.name,
                &spec.job,
                &spec.recurrence.to_string(),
                &spec.args.to_string(),
            ],
        )
        .await?;
        let live = query_opt(
            c,
            "SELECT id, status FROM tasks WHERE schedule = $1 AND status = ANY($2)",
            &[&spec.name, &live_states()],
        )
        .await?
        .map(|r| -> StoreResult<(uuid::Uuid, String)> { Ok((r.try_get(0)?, r.try_get(1)?)) })
        .transpose()?;
        match live {
            None => {
                // A schedule that starts again (after a cancel, or a removal and
                // re-add) keeps its lastCompletedAt.
                let mut first = spec.first.clone();
                if let Some(last) = old.and_then(|o| o.last_completed_at) {
                    first.metadata["lastCompletedAt"] =
                        serde_json::Value::String(crate::model::fmt_time(last));
                }
                tasks::insert(c, &first).await?;
                report.created.push(spec.name.clone());
            }
            Some((id, status)) if changed && status == pending => {
                let f = &spec.first;
                let (after_schedule, after_id, due) = match &f.after {
                    AfterLink::Schedule(u) => (Some(u.clone()), tasks::live_of(c, u).await?, None),
                    _ => (None, None, Some(ms(f.due_at))),
                };
                let params: [Param; 13] = [
                    &id,
                    &f.job,
                    &f.queue,
                    &f.priority,
                    &i64::from(f.slots),
                    &dur_ms(f.max_execution_time),
                    &dur_ms(f.kill_grace),
                    &f.recurrence.as_ref().map(|v| v.to_string()),
                    &f.args.to_string(),
                    &after_schedule,
                    &after_id,
                    &due,
                    &f.unique_key,
                ];
                execute(
                    c,
                    "UPDATE tasks SET job = $2, queue = $3, priority = $4, slots = $5,
                        max_execution_ms = $6, kill_grace_ms = $7, recurrence = $8, args = $9,
                        after_schedule = $10, after_id = $11, due_at = $12, unique_key = $13
                     WHERE id = $1",
                    &params,
                )
                .await?;
                report.updated.push(spec.name.clone());
            }
            Some(_) if changed => report.updated.push(spec.name.clone()),
            Some(_) => report.unchanged.push(spec.name.clone()),
        }
    }
    for name in existing.keys() {
        if p.schedules.iter().any(|s| &s.name == name) {
            continue;
        }
        if let Some(id) = tasks::live_of(c, name).await? {
            tasks::cancel_pending(c, id, TaskStatus::Pending, p.now, "schedule removed").await?;
        }
        execute(c, "DELETE FROM schedules WHERE name = $1", &[name]).await?;
        report.removed.push(name.clone());
    }
    Ok(report)
}
