//! The claim for PostgreSQL: SQLite's `tasks::claim`, translated. It runs at
//! READ COMMITTED; candidates are read with `FOR UPDATE SKIP LOCKED`, so
//! instances claiming at once never wait for each other nor take one task
//! twice, and each row read stays locked until the claim commits.

use super::rows::{Param, dur_ms, execute, ms, scalar, task_columns, tasks};
use crate::model::{Task, TaskStatus};
use crate::store::{StoreResult, TaskClaimParams};
use deadpool_postgres::Transaction;
use uuid::Uuid;

const PENDING: &str = TaskStatus::Pending.as_str();

/// The claim's candidate query for one priority level: an index range scan over
/// `tasks_claim (status, priority DESC, due_at, id)` in ORDER BY order, which
/// stops at the first task not yet due however many wait behind it. Rows
/// another instance is claiming are skipped, not waited for.
pub const CLAIM_SELECT: &str = concat!(
    "SELECT ",
    task_columns!(),
    " FROM tasks WHERE status = $1 AND priority = $2
     AND due_at <= $3 AND slots <= $4
     AND (cardinality($6::text[]) = 0 OR queue = ANY($6::text[]))
     ORDER BY due_at, id LIMIT $5
     FOR UPDATE SKIP LOCKED"
);

/// Claims due tasks: one priority level at a time (each an index range scan that
/// stops at the first task not yet due), greedily while slots remain.
pub async fn claim(c: &Transaction<'_>, p: &TaskClaimParams) -> StoreResult<Vec<Task>> {
    let now = ms(p.now);
    let mut free = p.free_slots;
    let mut picked: Vec<Task> = Vec::new();
    let mut below: Option<i32> = None;
    while free > 0 && picked.len() < p.limit {
        let priority: Option<i32> = match below {
            None => {
                scalar(
                    c,
                    "SELECT MAX(priority) FROM tasks WHERE status = $1",
                    &[&PENDING],
                )
                .await?
            }
            Some(b) => {
                scalar(
                    c,
                    "SELECT MAX(priority) FROM tasks WHERE status = $1 AND priority < $2",
                    &[&PENDING, &b],
                )
                .await?
            }
        };
        let Some(priority) = priority else { break };
        below = Some(priority);
        // Within one level, read again while a task was taken and another was
        // left out for want of slots: a smaller one behind it may still fit.
        loop {
            let want = (p.limit - picked.len()) as i64;
            let params: [Param; 6] = [
                &PENDING,
                &priority,
                &now,
                &i64::from(free),
                &want,
                &p.queues,
            ];
            let candidates = tasks(c, CLAIM_SELECT, &params).await?;
            let mut took: Vec<Uuid> = Vec::new();
            let mut skipped = false;
            for mut t in candidates {
                if picked.len() >= p.limit || free == 0 {
                    break;
                }
                if t.slots > free {
                    skipped = true;
                    continue;
                }
                free -= t.slots;
                t.status = TaskStatus::Running;
                t.instance_id = Some(p.instance_id);
                t.instance = Some(p.instance_name.clone());
                t.host = Some(p.host.clone());
                t.started_at = Some(p.now);
                t.deadline_at =
                    Some(p.now + chrono::Duration::milliseconds(dur_ms(t.max_execution_time)));
                took.push(t.id);
                picked.push(t);
            }
            if !took.is_empty() {
                // The rows are locked by this transaction: every one applies.
                execute(
                    c,
                    "UPDATE tasks SET status = $1, instance_id = $2, instance_name = $3, host = $4,
                        started_at = $5, deadline_at = $5 + max_execution_ms
                     WHERE id = ANY($6) AND status = $7",
                    &[
                        &TaskStatus::Running.as_str(),
                        &p.instance_id,
                        &p.instance_name,
                        &p.host,
                        &now,
                        &took,
                        &PENDING,
                    ],
                )
                .await?;
            }
            if took.is_empty() || !skipped || free == 0 || picked.len() >= p.limit {
                break;
            }
        }
    }
    Ok(picked)
}
