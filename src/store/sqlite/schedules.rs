//! Schema application for SQLite: schedules and job settings.

use super::rows::{ms, schedule_from_row};
use super::tasks;
use crate::model::TaskStatus;
use crate::store::{AfterLink, ApplyReport, ScheduleApplyParams, ScheduleRow, StoreResult};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::BTreeMap;

/// Every applied schedule.
pub fn list(c: &Connection) -> StoreResult<Vec<ScheduleRow>> {
    let mut stmt = c.prepare_cached(
        "SELECT name, job, recurrence, args, last_completed_at FROM schedules ORDER BY name",
    )?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(schedule_from_row(r)?);
    }
    Ok(out)
}

/// One applied schedule.
pub fn get(c: &Connection, name: &str) -> StoreResult<Option<ScheduleRow>> {
    let mut stmt = c.prepare_cached(
        "SELECT name, job, recurrence, args, last_completed_at FROM schedules WHERE name = ?1",
    )?;
    let mut rows = stmt.query(params![name])?;
    match rows.next()? {
        Some(r) => Ok(Some(schedule_from_row(r)?)),
        None => Ok(None),
    }
}

/// Applies schedules and job settings (caller holds the write lock).
pub fn apply(c: &Connection, p: &ScheduleApplyParams) -> StoreResult<ApplyReport> {
    let mut report = ApplyReport::default();
    for j in &p.jobs {
        let stored: Option<(u32, i64, i64)> = c
            .prepare_cached(
                "SELECT slots, max_execution_ms, kill_grace_ms FROM jobs WHERE name = ?1",
            )?
            .query_row(params![j.name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let want = (
            j.slots,
            j.max_execution_time.as_millis() as i64,
            j.kill_grace.as_millis() as i64,
        );
        if stored != Some(want) {
            c.prepare_cached(
                "INSERT INTO jobs (name, slots, max_execution_ms, kill_grace_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET slots = ?2, max_execution_ms = ?3, kill_grace_ms = ?4",
            )?
            .execute(params![j.name, want.0, want.1, want.2])?;
            if stored.is_some() {
                c.prepare_cached(
                    "UPDATE tasks SET slots = ?2, max_execution_ms = ?3, kill_grace_ms = ?4
                     WHERE job = ?1 AND status = ?5",
                )?
                .execute(params![
                    j.name,
                    want.0,
                    want.1,
                    want.2,
                    TaskStatus::Pending.as_str()
                ])?;
            }
        }
    }

    let existing: BTreeMap<String, ScheduleRow> =
        list(c)?.into_iter().map(|s| (s.name.clone(), s)).collect();
    for spec in &p.schedules {
        let old = existing.get(&spec.name);
        let changed = old.is_none_or(|o| {
            o.job != spec.job || o.recurrence != spec.recurrence || o.args != spec.args
        });
        c.prepare_cached(
            "INSERT INTO schedules (name, job, recurrence, args) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO UPDATE SET job = ?2, recurrence = ?3, args = ?4",
        )?
        .execute(params![
            spec.name,
            spec.job,
            spec.recurrence.to_string(),
            spec.args.to_string()
        ])?;
        let live: Option<(String, String)> = c
            .prepare_cached(
                "SELECT id, status FROM tasks WHERE schedule = ?1 AND status IN (?2, ?3, ?4)",
            )?
            .query_row(
                params![
                    spec.name,
                    TaskStatus::Pending.as_str(),
                    TaskStatus::Running.as_str(),
                    TaskStatus::Waiting.as_str()
                ],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match live {
            None => {
                // A schedule that starts again (after a cancel, or a removal and
                // re-add) keeps its lastCompletedAt.
                let mut first = spec.first.clone();
                if let Some(last) = old.and_then(|o| o.last_completed_at) {
                    first.metadata["lastCompletedAt"] =
                        serde_json::Value::String(crate::model::fmt_time(last));
                }
                tasks::insert(c, &first)?;
                report.created.push(spec.name.clone());
            }
            Some((id, status)) if changed && status == TaskStatus::Pending.as_str() => {
                let f = &spec.first;
                let (after_schedule, after_id, due) = match &f.after {
                    AfterLink::Schedule(u) => (
                        Some(u.clone()),
                        tasks::live_of(c, u)?.map(|x| x.to_string()),
                        None,
                    ),
                    _ => (None, None, Some(ms(f.due_at))),
                };
                c.prepare_cached(
                    "UPDATE tasks SET job = ?2, queue = ?3, priority = ?4, slots = ?5,
                        max_execution_ms = ?6, kill_grace_ms = ?7, recurrence = ?8, args = ?9,
                        after_schedule = ?10, after_id = ?11, due_at = ?12, unique_key = ?13
                     WHERE id = ?1",
                )?
                .execute(params![
                    id,
                    f.job,
                    f.queue,
                    f.priority,
                    f.slots,
                    f.max_execution_time.as_millis() as i64,
                    f.kill_grace.as_millis() as i64,
                    f.recurrence.as_ref().map(|v| v.to_string()),
                    f.args.to_string(),
                    after_schedule,
                    after_id,
                    due,
                    f.unique_key,
                ])?;
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
        if let Some(id) = tasks::live_of(c, name)? {
            tasks::cancel_pending(c, id, TaskStatus::Pending, p.now, "schedule removed")?;
        }
        c.prepare_cached("DELETE FROM schedules WHERE name = ?1")?
            .execute(params![name])?;
        report.removed.push(name.clone());
    }
    Ok(report)
}
