//! Workers under concurrency on PostgreSQL, where SQLite's write lock is not
//! there to serialize writers: several instances applying the same workers at
//! once, and several instances taking a rolling step of one worker at once.

use super::test_support::TestSchema;
use crate::store::conformance::{new_task, now_ms, worker_spec as spec};
use crate::store::{NewTask, Store, TaskClaimParams, WorkerSpec, replica_key};
use std::sync::Arc;
use uuid::Uuid;

async fn stores(schema: &TestSchema, n: usize) -> Vec<Arc<dyn Store>> {
    let mut out: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..n {
        out.push(crate::store::open(&schema.url).await.expect("open"));
    }
    out
}

/// Instances starting together apply the same workers: none fails, and the
/// rows are those of one apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_applies_neither_fail_nor_duplicate() {
    let Some(schema) = TestSchema::fresh().await else {
        return;
    };
    let stores = stores(&schema, 6).await;
    let now = now_ms();
    let specs: Vec<WorkerSpec> = (0..8).map(|i| spec(&format!("w{i}"), 2)).collect();
    let applies: Vec<_> = stores
        .iter()
        .map(|s| {
            let (s, specs) = (s.clone(), specs.clone());
            tokio::spawn(async move { s.worker_apply(specs, now).await })
        })
        .collect();
    let mut added = 0;
    for a in applies {
        let report = a.await.expect("join").expect("apply");
        added += report.added.len();
    }
    assert_eq!(added, specs.len(), "each worker is added once");
    let rows = stores[0].worker_list().await.expect("list");
    assert_eq!(
        rows.iter()
            .map(|w| (w.spec.clone(), w.generation))
            .collect::<Vec<_>>(),
        specs.iter().map(|s| (s.clone(), 1)).collect::<Vec<_>>()
    );
}

/// Every replica of a worker runs; instances each try to stop a different one
/// at once: exactly one succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_rolling_steps_stop_one_replica() {
    let Some(schema) = TestSchema::fresh().await else {
        return;
    };
    let stores = stores(&schema, 4).await;
    let s = &*stores[0];
    let now = now_ms();
    const REPLICAS: u32 = 4;
    s.worker_apply(vec![spec("w", REPLICAS)], now)
        .await
        .expect("apply");
    for round in 0..10 {
        let mut ids = Vec::new();
        for i in 0..REPLICAS {
            let t = s
                .task_insert(NewTask {
                    unique_key: Some(replica_key("w", i)),
                    ..new_task("consume", now)
                })
                .await
                .expect("insert");
            ids.push(t.id);
        }
        let claimed = s
            .task_claim(TaskClaimParams {
                instance_id: Uuid::now_v7(),
                instance_name: "i".to_string(),
                host: "h".to_string(),
                queues: Vec::new(),
                free_slots: REPLICAS,
                limit: REPLICAS as usize,
                now,
                starvation_after: None,
                log_prefix: None,
            })
            .await
            .expect("claim");
        assert_eq!(claimed.len(), REPLICAS as usize);
        let rolls: Vec<_> = ids
            .iter()
            .zip(stores.iter().cycle())
            .map(|(id, st)| {
                let (st, id) = (st.clone(), *id);
                tokio::spawn(async move { st.worker_roll("w", id, REPLICAS).await })
            })
            .collect();
        let mut stopped = 0;
        for r in rolls {
            stopped += usize::from(r.await.expect("join").expect("roll"));
        }
        assert_eq!(stopped, 1, "round {round}: one replica at a time");
        let live = s
            .worker_replicas(Some("w".to_string()))
            .await
            .expect("replicas");
        assert_eq!(live.len(), REPLICAS as usize);
        // Start the next round afresh: the replicas end.
        schema
            .connect()
            .await
            .execute(
                "UPDATE tasks SET status = 'canceled' WHERE id = ANY($1)",
                &[&ids],
            )
            .await
            .expect("end replicas");
    }
}
