//! What a parent's children decide, without I/O: the outcome of a parent
//! whose children have all ended, and its job's `on_children_done` callback.
//! Settling the parent (the write) is one of the ends decided in
//! [`super::ends`].

use crate::model::{Job, Task, TaskStatus};
use crate::store::NewTask;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use uuid::Uuid;

/// How a parent whose children have all ended ends: completed, or failed if
/// a child failed for good (canceled children do not fail it).
pub fn parent_outcome(children: &[Task]) -> (TaskStatus, Option<String>) {
    let failed: Vec<&Task> = children
        .iter()
        .filter(|c| c.status == TaskStatus::Failed)
        .collect();
    match failed.as_slice() {
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
    }
}

/// The `on_children_done` task of the parent's job, if it names one: args
/// `{parent, job, status, children: [{id, job, status, reason, exit_code,
/// result}]}`, in creation order, cut to fit the largest accepted args (see
/// [`callback_args`]).
pub fn callback_task(
    jobs: &BTreeMap<String, Job>,
    parent: &Task,
    status: TaskStatus,
    children: &[Task],
    now: DateTime<Utc>,
) -> Option<NewTask> {
    let name = jobs.get(&parent.job)?.on_children_done.as_ref()?;
    let Some(job) = jobs.get(name) else {
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
