//! The claim for PostgreSQL: SQLite's `tasks::claim`, translated. It runs at
//! READ COMMITTED; candidates are read with `FOR UPDATE SKIP LOCKED`, so
//! instances claiming at once never wait for each other nor take one task
//! twice, and each row read stays locked until the claim commits.
//!
//! A claim is the hottest write there is, so it is shaped for round trips: the
//! highest priority level and its candidates come from one statement, which
//! travels with the BEGIN, and the UPDATE of the tasks taken travels with the
//! COMMIT (tokio-postgres sends a request when its future is first polled, so
//! futures joined in order are pipelined). The common claim is two round trips.

use super::rows::{Param, ms, task_columns, task_from_row};
use crate::model::{Task, TaskStatus};
use crate::store::{StoreResult, TaskClaimParams};
use deadpool_postgres::ClientWrapper as Client;
use uuid::Uuid;

const PENDING: &str = TaskStatus::Pending.as_str();

/// The queues a claim may take from, as a CTE `qf (names, exclude)` over the
/// instance's queues `$Q` (empty: all) and the paused ones, read in the
/// claim's own statement: the instance's queues without the paused ones
/// (plus `''`, which no queue is named, so the list is never empty), or, for
/// an instance serving all queues, all but the paused ones. The candidate
/// scans test it through [`queue_ok!`], whose sub-selects are evaluated once
/// (init plans) and look to the planner like parameters, which keeps the
/// ordered walk of the claim index.
macro_rules! queue_filter {
    ($q:literal) => {
        concat!(
            "qf AS (SELECT CASE WHEN cardinality(",
            $q,
            "::text[]) = 0
                 THEN ARRAY(SELECT name FROM queue_pauses)
                 ELSE array_append(ARRAY(SELECT unnest(",
            $q,
            "::text[])
                     EXCEPT SELECT name FROM queue_pauses), '') END AS names,
               cardinality(",
            $q,
            "::text[]) = 0 AS exclude)"
        )
    };
}

/// The claim's record of where a task's log is written: the instance's log
/// prefix `$P` (NULL: not recorded) and the attempt's file name, as
/// [`crate::model::log_file_name`] makes it.
macro_rules! log_location {
    ($p:literal) => {
        concat!(
            "log = ",
            $p,
            "::text || id::text || CASE WHEN attempt <= 1 THEN '.log' \
             ELSE '.attempt-' || attempt::text || '.log' END"
        )
    };
}

/// The candidate condition of [`queue_filter!`].
macro_rules! queue_ok {
    () => {
        "(cardinality((SELECT names FROM qf)) = 0
          OR (queue = ANY((SELECT names FROM qf)::text[])) <> (SELECT exclude FROM qf))"
    };
}

/// The claim's candidate query: the highest priority level among pending tasks
/// below `$7` (a loose index scan), then that level's due tasks as an index
/// range scan over `tasks_claim (status, priority DESC, due_at, id)` in ORDER BY
/// order, which stops at the first task not yet due however many wait behind
/// it. Rows another instance is claiming are skipped, not waited for.
///
/// Returns the candidates' task columns followed by the level; with no
/// candidate, one row whose task columns are NULL (and whose level is NULL
/// when no task is pending below `$7`).
pub const CLAIM_SELECT: &str = concat!(
    "WITH level AS (SELECT MAX(priority) AS p FROM tasks WHERE status = $1 AND priority < $2::bigint), ",
    queue_filter!("$6"),
    " SELECT c.*, level.p FROM level LEFT JOIN LATERAL (
       SELECT ",
    task_columns!(),
    " FROM tasks WHERE status = $1 AND priority = level.p
       AND due_at <= $3 AND slots <= $4 AND ",
    queue_ok!(),
    " ORDER BY due_at, id LIMIT $5
       FOR UPDATE SKIP LOCKED
     ) AS c ON true"
);

/// Marks the tasks taken as running. They are locked by the claim and were
/// pending when locked, so every one applies. (No `status` condition: given
/// one, the planner may walk every pending task of a status index instead of
/// looking the ids up.)
pub const CLAIM_UPDATE: &str = concat!(
    "UPDATE tasks SET status = $1, instance_id = $2, instance_name = $3,
        host = $4, started_at = $5, deadline_at = $5 + max_execution_ms, pgid = NULL, ",
    log_location!("$7"),
    " WHERE id = ANY($6)"
);

/// The common claim in one statement, without a transaction of its own: the
/// due tasks of the highest level, in order, as far as their slots fit in a
/// row (a prefix), marked running. It returns the tasks taken with, on each
/// row, the number of candidates read; when it takes fewer than it could (a
/// task too big in the way, or the level running dry), [`claim`] carries on.
pub const CLAIM_PREFIX: &str = concat!(
    "WITH level AS (SELECT MAX(priority) AS p FROM tasks WHERE status = $1), ",
    queue_filter!("$5"),
    ", c AS (
       SELECT id AS cid, slots AS cslots, due_at AS cdue FROM tasks
       WHERE status = $1 AND priority = (SELECT p FROM level)
         AND due_at <= $2 AND slots <= $3 AND ",
    queue_ok!(),
    " ORDER BY due_at, id LIMIT $4
       FOR UPDATE SKIP LOCKED
     ),
     fit AS (
       SELECT cid FROM (
         SELECT cid, SUM(cslots) OVER (ORDER BY cdue, cid) AS used FROM c
       ) AS x WHERE used <= $3
     )
     UPDATE tasks SET status = $6, instance_id = $7, instance_name = $8, host = $9,
       started_at = $2, deadline_at = $2 + max_execution_ms, pgid = NULL, ",
    log_location!("$10"),
    " FROM fit WHERE id = fit.cid
     RETURNING ",
    task_columns!(),
    ", (SELECT COUNT(*) FROM c)"
);

/// The anti-starvation pick, in one statement: the task due longest, if it
/// has been due since before `$2` and fits, marked running (walks
/// `tasks_due (status, due_at)`).
pub const CLAIM_AGED: &str = concat!(
    "WITH ",
    queue_filter!("$4"),
    ", c AS (
       SELECT id AS cid FROM tasks
       WHERE status = $1 AND due_at <= $2 AND slots <= $3 AND ",
    queue_ok!(),
    " ORDER BY due_at, id LIMIT 1
       FOR UPDATE SKIP LOCKED
     )
     UPDATE tasks SET status = $5, instance_id = $6, instance_name = $7, host = $8,
       started_at = $9, deadline_at = $9 + max_execution_ms, pgid = NULL, ",
    log_location!("$10"),
    " FROM c WHERE id = c.cid
     RETURNING ",
    task_columns!()
);

/// Claims with [`CLAIM_AGED`]: the task due longest, if it has waited more
/// than `p.starvation_after`.
pub async fn claim_aged(c: &Client, p: &TaskClaimParams) -> StoreResult<Vec<Task>> {
    let Some(age) = p.starvation_after else {
        return Ok(Vec::new());
    };
    let stmt = c.prepare_cached(CLAIM_AGED).await?;
    let now = ms(p.now);
    let cutoff = now - i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
    let params: [Param; 10] = [
        &PENDING,
        &cutoff,
        &i64::from(p.free_slots),
        &p.queues,
        &TaskStatus::Running.as_str(),
        &p.instance_id,
        &p.instance_name,
        &p.host,
        &now,
        &p.log_prefix,
    ];
    let rows = c.query(&stmt, &params).await?;
    let mut taken = Vec::with_capacity(rows.len());
    for r in &rows {
        let mut t = task_from_row(r)?;
        p.mark_running(&mut t);
        taken.push(t);
    }
    Ok(taken)
}

/// Claims with [`CLAIM_PREFIX`]; returns the tasks taken and whether that
/// settles the claim (all slots or the limit used, or nothing more to read).
pub async fn claim_prefix(c: &Client, p: &TaskClaimParams) -> StoreResult<(Vec<Task>, bool)> {
    let stmt = c.prepare_cached(CLAIM_PREFIX).await?;
    let now = ms(p.now);
    let params: [Param; 10] = [
        &PENDING,
        &now,
        &i64::from(p.free_slots),
        &(p.limit as i64),
        &p.queues,
        &TaskStatus::Running.as_str(),
        &p.instance_id,
        &p.instance_name,
        &p.host,
        &p.log_prefix,
    ];
    let rows = c.query(&stmt, &params).await?;
    let mut taken = Vec::with_capacity(rows.len());
    let mut read = 0i64;
    for r in &rows {
        read = r.try_get(EXTRA_COLUMN)?;
        taken.push(task_from_row(r)?);
    }
    let used: u32 = taken.iter().map(|t| t.slots).sum();
    // Fewer taken otherwise: a task too big was in the way (read more than
    // taken), or the level ran dry and a lower one may have due tasks.
    let settled = taken.len() >= p.limit || used >= p.free_slots;
    tracing::trace!(read, taken = taken.len(), settled, "prefix claim");
    Ok((taken, settled))
}

/// The column after the task columns in [`CLAIM_SELECT`]'s rows (the level)
/// and [`CLAIM_PREFIX`]'s (the number of candidates read).
const EXTRA_COLUMN: usize = 31;

/// Claims due tasks: one priority level at a time, greedily while slots remain.
/// Runs its own transaction on `c`; on an error the transaction is rolled back
/// and `Err((error, committing))` says whether the COMMIT itself may have been
/// applied.
pub async fn claim(
    c: &Client,
    p: &TaskClaimParams,
) -> Result<Vec<Task>, (crate::store::StoreError, bool)> {
    let select = c
        .prepare_cached(CLAIM_SELECT)
        .await
        .map_err(|e| (e.into(), false))?;
    let update = c
        .prepare_cached(CLAIM_UPDATE)
        .await
        .map_err(|e| (e.into(), false))?;
    let (begin, first) = tokio::join!(
        biased;
        c.batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED"),
        pick(c, &select, p, i64::MAX, p.free_slots, p.limit),
    );
    let outcome = match (begin, first) {
        (Err(e), _) => Err(e.into()),
        (Ok(()), first) => match first {
            Ok(first) => take_rest(c, &select, &update, p, first).await,
            Err(e) => Err(e),
        },
    };
    let (taken, pending_ids) = match outcome {
        Ok(v) => v,
        Err(e) => {
            rollback(c).await;
            return Err((e, false));
        }
    };
    if pending_ids.is_empty() {
        c.batch_execute("COMMIT")
            .await
            .map_err(|e| (e.into(), true))?;
        return Ok(taken);
    }
    // `mark` sends its UPDATE when first polled: it travels with the COMMIT.
    let (updated, commit) = tokio::join!(
        biased;
        mark(c, &update, p, &pending_ids),
        c.batch_execute("COMMIT")
    );
    // A failed UPDATE aborts the transaction, and PostgreSQL answers the COMMIT
    // of an aborted transaction by rolling it back: nothing was claimed.
    updated.map_err(|e| (e, false))?;
    commit.map_err(|e| (e.into(), true))?;
    Ok(taken)
}

/// One candidate read: the tasks taken from it and what was left out.
struct Picked {
    level: Option<i32>,
    taken: Vec<Task>,
    skipped: bool,
    free: u32,
}

/// Reads the candidates of the highest level below `below` and takes greedily
/// what fits in `free` slots, up to `limit` tasks.
async fn pick(
    c: &Client,
    select: &tokio_postgres::Statement,
    p: &TaskClaimParams,
    below: i64,
    mut free: u32,
    limit: usize,
) -> StoreResult<Picked> {
    let now = ms(p.now);
    let params: [Param; 6] = [
        &PENDING,
        &below,
        &now,
        &i64::from(free),
        &(limit as i64),
        &p.queues,
    ];
    let rows = c.query(select, &params).await?;
    let mut out = Picked {
        level: None,
        taken: Vec::new(),
        skipped: false,
        free,
    };
    for r in &rows {
        out.level = r.try_get(EXTRA_COLUMN)?;
        if r.try_get::<_, Option<Uuid>>(0)?.is_none() {
            continue;
        }
        let mut t = task_from_row(r)?;
        if out.taken.len() >= limit || free == 0 {
            break;
        }
        if t.slots > free {
            out.skipped = true;
            continue;
        }
        free -= t.slots;
        p.mark_running(&mut t);
        out.taken.push(t);
    }
    out.free = free;
    Ok(out)
}

/// Goes on from the first read while slots remain: within a level, reads again
/// while a task was taken and another was left out for want of slots (a
/// smaller one behind it may still fit); then the next level down. Returns the
/// tasks taken and the ids not yet marked running.
async fn take_rest(
    c: &Client,
    select: &tokio_postgres::Statement,
    update: &tokio_postgres::Statement,
    p: &TaskClaimParams,
    first: Picked,
) -> StoreResult<(Vec<Task>, Vec<Uuid>)> {
    let mut picked: Vec<Task> = Vec::new();
    let mut unmarked: Vec<Uuid> = Vec::new();
    let mut step = first;
    while let Some(level) = step.level {
        let took_some = !step.taken.is_empty();
        unmarked.extend(step.taken.iter().map(|t| t.id));
        picked.extend(step.taken);
        let free = step.free;
        if free == 0 || picked.len() >= p.limit {
            break;
        }
        let below = if took_some && step.skipped {
            // The same level again: what was taken must no longer be pending.
            mark(c, update, p, &unmarked).await?;
            unmarked.clear();
            i64::from(level) + 1
        } else {
            i64::from(level)
        };
        step = pick(c, select, p, below, free, p.limit - picked.len()).await?;
    }
    Ok((picked, unmarked))
}

/// Marks the tasks `ids`, locked by this claim, as running.
async fn mark(
    c: &Client,
    update: &tokio_postgres::Statement,
    p: &TaskClaimParams,
    ids: &[Uuid],
) -> StoreResult<()> {
    let now = ms(p.now);
    let params: [Param; 7] = [
        &TaskStatus::Running.as_str(),
        &p.instance_id,
        &p.instance_name,
        &p.host,
        &now,
        &ids,
        &p.log_prefix,
    ];
    c.execute(update, &params).await?;
    Ok(())
}

/// Ends a failed claim's transaction. When even that fails the connection is
/// broken, and the pool discards it (PostgreSQL rolls back on disconnect).
async fn rollback(c: &Client) {
    if let Err(e) = c.batch_execute("ROLLBACK").await {
        tracing::debug!(error = %e, "rollback after a failed claim");
    }
}
