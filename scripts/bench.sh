#!/usr/bin/env bash
# Prints jobslot's benchmark figures (see examples/bench.rs for what each means).
# BENCH_NOT_DUE=N changes the number of not-yet-due pending tasks (default 1000000).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins --examples --quiet
exec target/release/examples/bench
