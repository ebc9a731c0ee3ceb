//! `jobslot instances` and `jobslot admin …`: see which instances are alive
//! and unstick work by hand.

use super::{Ctx, output};
use crate::model::{Task, TaskStatus, fmt_time, parse_duration};
use crate::store::{Instance, Store, TaskListParams};
use anyhow::Result;
use chrono::Utc;
use clap::Subcommand;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use uuid::Uuid;

/// `jobslot admin …`.
#[derive(Debug, Subcommand)]
pub enum AdminAction {
    /// Stops and fails running tasks that started longer ago than --older-than.
    ExpireStuck {
        /// Age past which a running task counts as stuck (e.g. 2h).
        #[arg(long, value_parser = parse_duration)]
        older_than: Duration,
    },
    /// Fails (or retries, per their job's policy) the running tasks of
    /// instances whose heartbeat stopped, without waiting for the orphan rule.
    ClearStaleLocks,
}

/// Every running task (the set is bounded by the slots of all instances).
async fn running(store: &dyn Store) -> Result<Vec<Task>> {
    Ok(store
        .task_list(TaskListParams {
            status: Some(TaskStatus::Running),
            limit: i64::MAX as usize,
            ..Default::default()
        })
        .await?)
}

/// The warning for an instance whose host clock is off by more than a
/// second from the database's, if it is.
pub fn clock_warning(i: &Instance) -> Option<String> {
    let off = i.clock_offset_ms;
    (i.stopped_at.is_none()
        && off.unsigned_abs() > crate::scheduler::clock::OFFSET_WARNING.as_millis() as u64)
        .then(|| {
            format!(
                "the clock of instance {} ({}) is {:.1} s {} the database's",
                i.name,
                i.host,
                off.unsigned_abs() as f64 / 1000.0,
                if off > 0 { "ahead of" } else { "behind" }
            )
        })
}

/// The CLOCK column: the host clock's offset from the database's.
fn clock_column(i: &Instance) -> String {
    let off = i.clock_offset_ms as f64 / 1000.0;
    let mark = if clock_warning(i).is_some() { " !" } else { "" };
    format!("{off:+.1}s{mark}")
}

/// `jobslot instances`: each instance with its state, slots in use and
/// heartbeat age, newest first.
pub async fn instances(ctx: &Ctx) -> Result<i32> {
    let store = ctx.store().await?;
    // Heartbeats are dated by the database's clock: judge them by it.
    let now = store.db_now().await.unwrap_or_else(|_| Utc::now());
    let list = store.instance_list().await?;
    let tasks = running(store.as_ref()).await?;
    let mut used: HashMap<Uuid, (u32, usize)> = HashMap::new();
    for t in &tasks {
        if let Some(i) = t.instance_id {
            let e = used.entry(i).or_default();
            e.0 += t.slots;
            e.1 += 1;
        }
    }
    let rows: Vec<(Instance, u32, usize)> = list
        .into_iter()
        .map(|i| {
            let (slots, n) = used.get(&i.id).copied().unwrap_or_default();
            (i, slots, n)
        })
        .collect();
    if ctx.json {
        let v: Vec<Value> = rows
            .iter()
            .map(|(i, slots, n)| {
                json!({
                    "id": i.id.to_string(),
                    "name": i.name,
                    "host": i.host,
                    "pid": i.pid,
                    "state": i.state(now),
                    "slots": i.slots,
                    "used_slots": slots,
                    "running": n,
                    "queues": i.queues,
                    "started_at": fmt_time(i.started_at),
                    "heartbeat_at": fmt_time(i.heartbeat_at),
                    "heartbeat_age_ms": (now - i.heartbeat_at).num_milliseconds().max(0),
                    "heartbeat_interval_ms": i.heartbeat_interval.as_millis() as u64,
                    "clock_offset_ms": i.clock_offset_ms,
                    "clock_warning": clock_warning(i),
                    "stopped_at": i.stopped_at.map(fmt_time),
                })
            })
            .collect();
        output::print_json(&Value::Array(v));
        return Ok(0);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|(i, slots, _)| {
            vec![
                i.name.clone(),
                i.state(now).to_string(),
                format!("{slots}/{}", i.slots),
                if i.queues.is_empty() {
                    "all".to_string()
                } else {
                    i.queues.join(",")
                },
                format!("{}:{}", i.host, i.pid),
                output::short_time(Some(i.started_at)),
                format!(
                    "{:.1}s ago",
                    (now - i.heartbeat_at).num_milliseconds().max(0) as f64 / 1000.0
                ),
                clock_column(i),
            ]
        })
        .collect();
    output::print_table(
        &[
            "NAME",
            "STATE",
            "SLOTS USED",
            "QUEUES",
            "HOST:PID",
            "STARTED",
            "HEARTBEAT",
            "CLOCK",
        ],
        &table,
    );
    for i in &rows {
        if let Some(w) = clock_warning(&i.0) {
            eprintln!("warning: {w}");
        }
    }
    Ok(0)
}

/// What happened to one task.
struct Acted {
    task: Task,
    action: String,
}

fn report(ctx: &Ctx, acted: &[Acted], none: &str) {
    if ctx.json {
        let v: Vec<Value> = acted
            .iter()
            .map(|a| {
                json!({
                    "id": a.task.id.to_string(),
                    "job": a.task.job,
                    "instance": a.task.instance,
                    "started_at": a.task.started_at.map(fmt_time),
                    "action": a.action,
                })
            })
            .collect();
        output::print_json(&Value::Array(v));
    } else if acted.is_empty() {
        println!("{none}");
    } else {
        for a in acted {
            println!(
                "{} {} on {}: {}",
                a.task.id,
                a.task.job,
                a.task.instance.as_deref().unwrap_or("-"),
                a.action
            );
        }
    }
}

/// The jobs of the project, for retry policies and next occurrences (none
/// when the schema does not load: tasks then keep their own settings).
fn jobs_of(ctx: &Ctx) -> BTreeMap<String, crate::model::Job> {
    match crate::schema::load(&ctx.project) {
        Ok(s) => s.jobs,
        Err(e) => {
            eprintln!("warning: the schema does not load, so no retries apply: {e}");
            BTreeMap::new()
        }
    }
}

/// `jobslot admin …`.
pub async fn act(ctx: &Ctx, action: AdminAction) -> Result<i32> {
    let store = ctx.store().await?;
    let now = Utc::now();
    let instances: HashMap<Uuid, Instance> = store
        .instance_list()
        .await?
        .into_iter()
        .map(|i| (i.id, i))
        .collect();
    let gone = |t: &Task| -> Option<String> {
        match t.instance_id.and_then(|id| instances.get(&id)) {
            None => Some("its instance is unknown".to_string()),
            Some(i) if i.is_gone(now) => Some(format!(
                "instance {}: no heartbeat since {}",
                i.name,
                fmt_time(i.heartbeat_at)
            )),
            Some(_) => None,
        }
    };
    let jobs = jobs_of(ctx);
    let mut acted = Vec::new();
    match action {
        AdminAction::ExpireStuck { older_than } => {
            let cutoff = now
                - chrono::Duration::milliseconds(
                    i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX),
                );
            for t in running(store.as_ref()).await? {
                if t.started_at.is_none_or(|s| s > cutoff) {
                    continue;
                }
                let action = match gone(&t) {
                    // Nobody will stop it: fail it here.
                    Some(why) => {
                        let reason = format!("expired (stuck; {why})");
                        match crate::scheduler::end_abandoned(
                            store.as_ref(),
                            &jobs,
                            &t,
                            reason,
                            false,
                            now,
                        )
                        .await?
                        {
                            (Some(_), _) => "failed".to_string(),
                            (None, _) => "had already ended".to_string(),
                        }
                    }
                    // Its instance stops it and fails it as expired.
                    None => {
                        if store.task_request_expire(t.id).await? {
                            "stop requested (its instance fails it as expired)".to_string()
                        } else {
                            "had already ended".to_string()
                        }
                    }
                };
                acted.push(Acted { task: t, action });
            }
            report(
                ctx,
                &acted,
                &format!(
                    "no running task started more than {} ago",
                    crate::model::format_duration(older_than)
                ),
            );
        }
        AdminAction::ClearStaleLocks => {
            for t in running(store.as_ref()).await? {
                let Some(why) = gone(&t) else { continue };
                let retry = jobs.get(&t.job).is_some_and(|j| j.retry.retry_on_orphan);
                let reason = format!("orphaned ({why})");
                let (status, retry_at) =
                    crate::scheduler::end_abandoned(store.as_ref(), &jobs, &t, reason, retry, now)
                        .await?;
                let action = match (status, retry_at) {
                    (Some(TaskStatus::Pending), Some(at)) => {
                        format!("failed, retried at {}", fmt_time(at))
                    }
                    (Some(s), _) => s.to_string(),
                    (None, _) => "had already ended".to_string(),
                };
                acted.push(Acted { task: t, action });
            }
            report(ctx, &acted, "no running task of a gone instance");
        }
    }
    Ok(0)
}
