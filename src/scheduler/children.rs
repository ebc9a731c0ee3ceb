//! Parents waiting for their children.
//!
//! A task whose process exits 0 while it has children is written as
//! `waiting` by the store. Once none of its children is live any more, it is
//! *settled*: it completes, or fails if a child failed (after its retries),
//! in one compare-and-set on `waiting` that also inserts its next occurrence
//! (for a recurring parent) and its job's `on_children_done` callback. Any
//! instance may settle any parent: the instance that wrote the last end checks
//! right after its commit, and every instance sweeps the waiting tasks once a
//! second, which covers an instance that died between the two.

use super::{Shared, finish};
use crate::model::{Task, TaskStatus};
use crate::store::{NewTask, StoreResult, TaskFinishParams, TaskListParams};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

/// How many waiting tasks one sweep looks at.
const SWEEP_LIMIT: usize = 100;

/// Settles the waiting parents among `ids` whose children have all ended,
/// then their own parents, transitively.
pub async fn settle(shared: &Shared, ids: Vec<Uuid>) {
    let mut work = ids;
    work.sort_unstable();
    work.dedup();
    while let Some(id) = work.pop() {
        match settle_one(shared, id).await {
            Ok(Some(grandparent)) => work.push(grandparent),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(task = %id, error = %e, "cannot settle a waiting parent; the sweep tries again")
            }
        }
    }
}

/// Settles every waiting task whose children are done (the safety net).
pub async fn sweep(shared: &Shared) {
    let waiting = shared
        .store
        .task_list(TaskListParams {
            status: Some(TaskStatus::Waiting),
            limit: SWEEP_LIMIT,
            ..Default::default()
        })
        .await;
    match waiting {
        Ok(list) if !list.is_empty() => settle(shared, list.iter().map(|t| t.id).collect()).await,
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot list waiting tasks"),
    }
}

/// Settles one parent if it waits and its children are done. Returns its own
/// parent when it settled (which may now be done too).
async fn settle_one(shared: &Shared, id: Uuid) -> StoreResult<Option<Uuid>> {
    let store = &shared.store;
    let Some(parent) = store.task_get(id).await? else {
        return Ok(None);
    };
    if parent.status != TaskStatus::Waiting {
        return Ok(None);
    }
    let children = store
        .task_list(TaskListParams {
            parent: Some(id),
            limit: i64::MAX as usize,
            ..Default::default()
        })
        .await?;
    if children.iter().any(|c| !c.status.is_terminal()) {
        return Ok(None);
    }
    let now = shared.now();
    let failed: Vec<&Task> = children
        .iter()
        .filter(|c| c.status == TaskStatus::Failed)
        .collect();
    let (status, reason) = match failed.as_slice() {
        [] => (TaskStatus::Completed, None),
        [one] => (TaskStatus::Failed, Some(format!("child {} failed", one.id))),
        [first, ..] => (
            TaskStatus::Failed,
            Some(format!(
                "{} children failed (first: {})",
                failed.len(),
                first.id
            )),
        ),
    };
    let next = finish::next_for(
        shared.store.as_ref(),
        &shared.jobs,
        &parent,
        status,
        None,
        now,
    )
    .await;
    let callback = callback_task(shared, &parent, status, &children, now);
    let callback_id = callback.as_ref().map(|c| c.id);
    let applied = store
        .task_finish_many(vec![TaskFinishParams {
            id,
            expect: TaskStatus::Waiting,
            expect_instance: None,
            status,
            reason,
            exit_code: parent.exit_code,
            signal: None,
            ended_at: now,
            result: parent.result.clone(),
            log: None,
            next,
            retry_at: None,
            needs_review: false,
            callback,
        }])
        .await?;
    if applied.first().copied().flatten().is_none() {
        return Ok(None);
    }
    tracing::info!(task = %id, %status, children = children.len(), callback = ?callback_id, "parent settled: its children are done");
    if let (Some(uploads), Some(path)) = (&shared.uploads, &parent.log)
        && parent.host.as_deref() == Some(shared.instance.host.as_str())
        && !path.starts_with("s3://")
    {
        uploads.push(crate::store::LocalLog {
            id,
            instance: parent.instance_id,
            path: path.clone(),
        });
    }
    Ok(parent.parent)
}

/// The `on_children_done` task of the parent's job, if it names one: args
/// `{parent, job, status, children: [{id, job, status, reason, exit_code,
/// result}]}`, in creation order.
fn callback_task(
    shared: &Shared,
    parent: &Task,
    status: TaskStatus,
    children: &[Task],
    now: DateTime<Utc>,
) -> Option<NewTask> {
    let name = shared.jobs.get(&parent.job)?.on_children_done.as_ref()?;
    let Some(job) = shared.jobs.get(name) else {
        tracing::warn!(job = %parent.job, callback = %name, "on_children_done names a job this instance does not know; no callback");
        return None;
    };
    let mut ordered: Vec<&Task> = children.iter().collect();
    ordered.sort_by_key(|c| c.id);
    let outcomes: Vec<Value> = ordered
        .iter()
        .map(|c| {
            json!({
                "id": c.id.to_string(),
                "job": c.job,
                "status": c.status.as_str(),
                "reason": c.reason,
                "exit_code": c.exit_code,
                "result": c.result,
            })
        })
        .collect();
    Some(NewTask {
        id: Uuid::now_v7(),
        job: job.name.clone(),
        queue: job.queue.clone(),
        priority: job.priority,
        slots: job.slots,
        max_execution_time: job.max_execution_time,
        kill_grace: job.kill_grace,
        schedule: None,
        recurrence: None,
        after: crate::store::AfterLink::None,
        parent: None,
        args: json!({
            "parent": parent.id.to_string(),
            "job": parent.job,
            "status": status.as_str(),
            "children": outcomes,
        }),
        metadata: json!({ "childrenOf": parent.id.to_string() }),
        due_at: now,
        created_at: now,
        attempt: 1,
        unique_key: None,
    })
}
