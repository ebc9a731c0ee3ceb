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
/// result}]}`, in creation order, cut to fit the largest accepted args (see
/// [`callback_args`]).
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
    let args = callback_args(parent, status, &ordered, crate::client::MAX_ARGS_BYTES);
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
        args,
        metadata: json!({ "childrenOf": parent.id.to_string() }),
        due_at: now,
        created_at: now,
        attempt: 1,
        unique_key: None,
    })
}

/// The callback's args, at most `limit` bytes of JSON. When the children's
/// results make them larger, results are cut, the largest first: a cut
/// child's `result` is null and it has `"result_truncated": true`, and the
/// args have `"results_truncated": true`. Should that not be enough (a great
/// many children), the list is cut at the end too, with `"children_truncated":
/// true` and `"children_count"`: the callback is always created and can run.
fn callback_args(parent: &Task, status: TaskStatus, ordered: &[&Task], limit: usize) -> Value {
    let entry = |c: &Task, with_result: bool| {
        let mut v = json!({
            "id": c.id.to_string(),
            "job": c.job,
            "status": c.status.as_str(),
            "reason": c.reason,
            "exit_code": c.exit_code,
            "result": if with_result { c.result.clone() } else { None },
        });
        if !with_result {
            v["result_truncated"] = Value::Bool(true);
        }
        v
    };
    let whole = |children: Vec<Value>, results_cut: bool, count: Option<usize>| {
        let mut v = json!({
            "parent": parent.id.to_string(),
            "job": parent.job,
            "status": status.as_str(),
            "children": children,
        });
        if results_cut {
            v["results_truncated"] = Value::Bool(true);
        }
        if let Some(n) = count {
            v["children_truncated"] = Value::Bool(true);
            v["children_count"] = Value::from(n);
        }
        v
    };
    let full = whole(
        ordered.iter().map(|c| entry(c, true)).collect(),
        false,
        None,
    );
    let mut size = full.to_string().len();
    if size <= limit {
        return full;
    }
    // Cut results, largest first, until the estimate fits; each cut saves the
    // result's text and costs `null` plus the flag.
    const FLAG: usize = r#","result_truncated":true"#.len() + "null".len();
    let mut by_size: Vec<(usize, usize)> = ordered
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.result.as_ref().map(|r| (r.to_string().len(), i)))
        .collect();
    by_size.sort_unstable_by(|a, b| b.cmp(a));
    let mut cut = vec![false; ordered.len()];
    // Room for the top-level flag.
    size += r#","results_truncated":true"#.len();
    for (len, i) in by_size {
        if size <= limit {
            break;
        }
        cut[i] = true;
        size = (size + FLAG).saturating_sub(len);
    }
    let entries: Vec<Value> = ordered
        .iter()
        .zip(&cut)
        .map(|(c, cut)| entry(c, !cut))
        .collect();
    let args = whole(entries.clone(), true, None);
    if args.to_string().len() <= limit {
        return args;
    }
    // Still too big: keep as many children (results cut) as fit.
    let mut kept = Vec::new();
    let mut used = whole(Vec::new(), true, Some(ordered.len()))
        .to_string()
        .len();
    for c in ordered {
        let e = entry(c, false);
        let len = e.to_string().len() + 1;
        if used + len > limit {
            break;
        }
        used += len;
        kept.push(e);
    }
    whole(kept, true, Some(ordered.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(result: Option<Value>) -> Task {
        let mut t = crate::scheduler::recurrence::tests::task(None, Utc::now());
        t.id = Uuid::now_v7();
        t.status = TaskStatus::Completed;
        t.result = result;
        t
    }

    #[test]
    fn callback_args_cut_the_largest_results_first_and_always_fit() {
        let parent = child(None);
        let big = child(Some(json!("x".repeat(3000))));
        let small = child(Some(json!({"n": 1})));
        let none = child(None);
        let ordered = [&small, &big, &none];
        let fits = callback_args(&parent, TaskStatus::Completed, &ordered, 1 << 20);
        assert_eq!(fits["children"][1]["result"], json!("x".repeat(3000)));
        assert!(fits.get("results_truncated").is_none());

        let cut = callback_args(&parent, TaskStatus::Completed, &ordered, 2000);
        assert!(cut.to_string().len() <= 2000, "{}", cut.to_string().len());
        assert_eq!(cut["results_truncated"], json!(true));
        assert_eq!(cut["children"][0]["result"], json!({"n": 1}));
        assert!(cut["children"][0].get("result_truncated").is_none());
        assert_eq!(cut["children"][1]["result"], Value::Null);
        assert_eq!(cut["children"][1]["result_truncated"], json!(true));
        assert_eq!(cut["children"].as_array().map(Vec::len), Some(3));

        let many: Vec<Task> = (0..50).map(|_| child(Some(json!(1)))).collect();
        let refs: Vec<&Task> = many.iter().collect();
        let tiny = callback_args(&parent, TaskStatus::Completed, &refs, 3000);
        assert!(tiny.to_string().len() <= 3000);
        assert_eq!(tiny["children_truncated"], json!(true));
        assert_eq!(tiny["children_count"], json!(50));
        assert!(!tiny["children"].as_array().expect("list").is_empty());
    }
}
