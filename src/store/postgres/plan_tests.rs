//! Tests of what is PostgreSQL's own, beyond the conformance suite: the claim's
//! plan, concurrent migrations, wake-ups through LISTEN/NOTIFY, surviving lost
//! connections, and passwords kept out of errors.

use super::PostgresStore;
use super::claim::{CLAIM_PREFIX, CLAIM_SELECT, CLAIM_UPDATE};
use super::tasks::FINISH_COMPLETED;
use super::test_support::{TestSchema, url_with};
use crate::model::TaskStatus;
use crate::store::conformance::{new_task, now_ms};
use crate::store::{Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Regression: an index that does not match the claim's ORDER BY sorts every
/// due row on each claim. With custom and generic plans alike, the claim walks
/// `tasks_claim` and stops at the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_query_walks_its_index_without_sorting() {
    let Some(schema) = TestSchema::fresh().await else {
        return;
    };
    PostgresStore::open(&schema.url).await.expect("open");
    let client = schema.connect().await;
    let now = now_ms().timestamp_millis();
    client
        .execute(
            "INSERT INTO tasks (id, job, status, queue, priority, slots, max_execution_ms,
                kill_grace_ms, args, metadata, created_at, due_at)
             SELECT gen_random_uuid(), 'j', CASE WHEN g % 10 = 0 THEN $1 ELSE $2 END, 'default',
                g % 3, 1, 60000, 10000, '{}', '{}', $3::bigint, $3::bigint - g
             FROM generate_series(1, 20000) AS g",
            &[
                &TaskStatus::Pending.as_str(),
                &TaskStatus::Completed.as_str(),
                &now,
            ],
        )
        .await
        .expect("fill");
    client
        .batch_execute("ANALYZE tasks")
        .await
        .expect("analyze");
    for mode in ["force_custom_plan", "force_generic_plan"] {
        let p = plan_of(
            &client,
            mode,
            CLAIM_SELECT,
            "text, bigint, bigint, bigint, bigint, text[]",
            &format!("'pending', {}, {now}, 8, 8, '{{}}'", i64::MAX),
        )
        .await;
        assert!(p.contains("Index Scan using tasks_claim"), "{mode}:\n{p}");
        assert!(!p.contains("Sort"), "the claim sorts ({mode}):\n{p}");
        // The prefix claim reads its candidates the same way (it sorts only
        // the few it read, for the running sum of their slots).
        let p = plan_of(
            &client,
            mode,
            CLAIM_PREFIX,
            "text, bigint, bigint, bigint, text[], text, uuid, text, text, text",
            &format!(
                "'pending', {now}, 8, 8, '{{}}', 'running', gen_random_uuid(), 'a', 'h', '/l/'"
            ),
        )
        .await;
        assert!(p.contains("Index Scan using tasks_claim"), "{mode}:\n{p}");
        assert!(!p.contains("Seq Scan on tasks"), "{mode}:\n{p}");
    }
}

/// The plan of `sql` (prepared with parameter `types`) executed with `args`.
async fn plan_of(
    client: &tokio_postgres::Client,
    mode: &str,
    sql: &str,
    types: &str,
    args: &str,
) -> String {
    let prepare = format!("SET plan_cache_mode = {mode}; PREPARE p ({types}) AS {sql};");
    client.batch_execute(&prepare).await.expect("prepare");
    let rows = client
        .simple_query(&format!("EXPLAIN EXECUTE p ({args})"))
        .await
        .expect("explain");
    client
        .batch_execute("DEALLOCATE p")
        .await
        .expect("deallocate");
    rows.iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The hot writes find their rows by id: no sequential scan and no walk of a
/// status index (in a benchmark, with statistics taken while the table was
/// nearly empty, a claim's `WHERE id = ANY(..) AND status = ..` walked every
/// pending task's entry of `tasks_ended`; that plan is not reproduced here, so
/// this checks the shape of the plans in both plan modes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_writes_find_their_rows_by_id() {
    let Some(schema) = TestSchema::fresh().await else {
        return;
    };
    PostgresStore::open(&schema.url).await.expect("open");
    let client = schema.connect().await;
    client
        .batch_execute("ANALYZE tasks")
        .await
        .expect("analyze");
    let now = now_ms().timestamp_millis();
    client
        .execute(
            "INSERT INTO tasks (id, job, status, queue, priority, slots, max_execution_ms,
                kill_grace_ms, args, metadata, created_at, due_at)
             SELECT gen_random_uuid(), 'j', CASE WHEN g % 2 = 0 THEN $1 ELSE $2 END, 'default',
                0, 1, 60000, 10000, '{}', '{}', $3::bigint, $3::bigint - g
             FROM generate_series(1, 20000) AS g",
            &[
                &TaskStatus::Pending.as_str(),
                &TaskStatus::Running.as_str(),
                &now,
            ],
        )
        .await
        .expect("fill");
    let ids = "'{00000000-0000-0000-0000-000000000001,00000000-0000-0000-0000-000000000002}'";
    let statements = [
        (
            "claim update",
            CLAIM_UPDATE,
            "text, uuid, text, text, bigint, uuid[], text",
            format!("'running', gen_random_uuid(), 'a', 'h', {now}, {ids}, '/l/'"),
        ),
        (
            "batched completions",
            FINISH_COMPLETED,
            "text, uuid[], text[], int4[], int4[], int8[], text[], text[], text[], uuid[], text, text",
            format!(
                "'completed', {ids}, '{{NULL,NULL}}', '{{0,0}}', '{{NULL,NULL}}', '{{1,2}}', \
                 '{{NULL,NULL}}', '{{a,b}}', '{{running,running}}', '{{NULL,NULL}}', 'pending', \
                 'waiting'"
            ),
        ),
    ];
    for (what, sql, types, args) in &statements {
        for mode in ["force_custom_plan", "force_generic_plan"] {
            let p = plan_of(&client, mode, sql, types, args).await;
            assert!(!p.contains("Seq Scan on tasks"), "{what} ({mode}):\n{p}");
            for cond in p.lines().filter(|l| l.contains("Index Cond:")) {
                assert!(
                    !cond.contains("status =") || cond.contains("id ="),
                    "{what} walks a status ({mode}):\n{p}"
                );
            }
        }
    }
}

/// Instances starting at once on a new schema: one creates and migrates it,
/// the others find it done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_opens_create_and_migrate_the_schema_once() {
    let Some(schema) = TestSchema::fresh().await else {
        return;
    };
    let opens = (0..6).map(|_| {
        let url = schema.url.clone();
        tokio::spawn(async move { PostgresStore::open(&url).await })
    });
    let mut stores = Vec::new();
    for o in opens {
        stores.push(o.await.expect("join").expect("open"));
    }
    for s in &stores {
        assert_eq!(s.schema(), schema.name);
        assert_eq!(s.migrate().await.expect("migrate"), 8);
    }
    let client = schema.connect().await;
    let versions = client
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .expect("versions");
    let versions: Vec<i32> = versions.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        versions,
        [1, 2, 3, 4, 5, 6, 7, 8],
        "each migration applied once"
    );
}

async fn woken(notify: &Notify, within: Duration) -> bool {
    tokio::time::timeout(within, notify.notified())
        .await
        .is_ok()
}

/// A commit by another handle wakes a watcher; the watcher reconnects after
/// its connection is killed and wakes again for later commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_changes_wakes_on_commits_and_survives_a_lost_connection() {
    let Some(schema) = TestSchema::fresh().await else {
        return;
    };
    let app = format!("watch_{}", schema.name);
    let watched_url = url_with(&schema.base, &schema.name, &[("application_name", &app)]);
    let watcher = PostgresStore::open(&watched_url)
        .await
        .expect("open watcher");
    let writer = PostgresStore::open(&schema.url).await.expect("open writer");
    let notify = Arc::new(Notify::new());
    watcher.watch_changes(notify.clone()).expect("watch");
    assert!(
        woken(&notify, Duration::from_secs(5)).await,
        "wake-up on listening"
    );

    writer
        .task_insert(new_task("wake", now_ms()))
        .await
        .expect("insert");
    assert!(
        woken(&notify, Duration::from_secs(5)).await,
        "wake-up on insert"
    );

    let admin = schema.connect().await;
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .expect("terminate");
    // Listening again (a wake-up), then woken by the next commit.
    assert!(
        woken(&notify, Duration::from_secs(10)).await,
        "wake-up on reconnecting"
    );
    writer
        .task_insert(new_task("wake-again", now_ms()))
        .await
        .expect("insert");
    assert!(
        woken(&notify, Duration::from_secs(5)).await,
        "wake-up after reconnecting"
    );
    // The watcher's own pool lost its connections too, and recovers.
    let t = watcher
        .task_insert(new_task("after-kill", now_ms()))
        .await
        .expect("the pool replaces killed connections");
    assert_eq!(watcher.task_get(t.id).await.expect("get"), Some(t));
}

/// Errors name the database without its password.
#[tokio::test]
async fn errors_never_contain_the_password() {
    for url in [
        "postgres://jobslot:hunter2secret@127.0.0.1:1/test?connect_timeout=2",
        "postgresql://127.0.0.1:1/test?password=hunter2secret&connect_timeout=2",
        "postgres://jobslot:hunter2secret@127.0.0.1:5432/test?nonsense=1",
    ] {
        let e = match crate::store::open(url).await {
            Ok(_) => panic!("{url} should not open"),
            Err(e) => e,
        };
        let text = format!("{e} {e:?}");
        assert!(!text.contains("hunter2secret"), "{text}");
        if url.contains(":1/") {
            assert!(
                matches!(&e, StoreError::Postgres { code: Some(c), .. } if c.starts_with("08")),
                "a refused connection is a connection failure: {e:?}"
            );
        }
    }
}
