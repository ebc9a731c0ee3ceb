#!/usr/bin/env bash
# Prints jobslot's benchmark figures (see examples/bench.rs for what each means).
# BENCH_ROUNDS=N rounds per end-to-end figure (default 3; medians are printed).
# BENCH_NOT_DUE=N changes the number of not-yet-due pending tasks (default 1000000).
# BENCH_POSTGRES=0 skips PostgreSQL; BENCH_PG_ASYNC_COMMIT=1 runs it with
# synchronous_commit=off. BENCH_ONLY=e2e (end to end and dispatch latency of
# both backends) or BENCH_ONLY=not-due (the million not-due tasks) runs one part.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins --examples --quiet
exec target/release/examples/bench
