//! What a spawn costs, with and without a switch of user: a measurement, not
//! a check (`cargo test --lib spawn_cost -- --ignored --nocapture`).

use super::*;

/// Median and 90th percentile of `runner.start` (log file, clone, exec,
/// pidfd) over `n` sequential spawns of `/bin/true`, in microseconds.
async fn measure(fx: &Fixture, spec: &SpawnSpec, n: usize) -> (u128, u128) {
    let mut took = Vec::with_capacity(n);
    let mut handles = Vec::with_capacity(n);
    for _ in 0..n {
        let begun = std::time::Instant::now();
        handles.push(fx.start(spec).await);
        took.push(begun.elapsed().as_micros());
    }
    for h in handles {
        h.wait().await;
    }
    took.sort_unstable();
    (took[n / 2], took[n * 9 / 10])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: cargo test --lib spawn_cost -- --ignored --nocapture"]
async fn spawn_cost() {
    let fx = Fixture::new();
    let plain = fx.spec(Path::new("/bin/true"));
    let mut switched = plain.clone();
    switched.run_as = super::super::resolve_identity("nobody", None)
        .ok()
        .flatten()
        .map(std::sync::Arc::new);
    switched.owned_files = vec![fx.dir.path().join("result.json")];
    for round in 1..=5 {
        let (p50, p90) = measure(&fx, &plain, 300).await;
        eprintln!("round {round}: no user: p50 {p50} µs, p90 {p90} µs");
        if switched.run_as.is_some() {
            let (p50, p90) = measure(&fx, &switched, 300).await;
            eprintln!("round {round}: user nobody: p50 {p50} µs, p90 {p90} µs");
        }
    }
}
