#!/usr/bin/env bash
# Several jobslot instances, each in its own directory with its own copy of jobs/
# (as on separate machines), with different slot counts and queues, sharing one
# PostgreSQL database. Enqueues a mixed workload and prints who ran what.
#
#   scripts/cluster-demo.sh                      # uses postgres://postgres@127.0.0.1:5432/test
#   JOBSLOT_DEMO_POSTGRES=postgres://… scripts/cluster-demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin="$PWD/target/release/jobslot"
base="${JOBSLOT_DEMO_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}"
schema="cluster_demo_$$"
db="$base?options=-csearch_path%3D$schema"
work="$(mktemp -d)"
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$base" -q -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# name:slots:queues — "machines" with different capacity and roles.
machines=("alpha:2:default" "beta:4:default,media" "gamma:1:reports,default")
for m in "${machines[@]}"; do
  IFS=: read -r name slots queues <<<"$m"
  mkdir -p "$work/$name"
  cp -r scripts/cluster-demo/jobs scripts/cluster-demo/schema "$work/$name/"
  JOBSLOT_LOG=warn "$bin" --project "$work/$name" --database "$db" \
    run --name "$name" --slots "$slots" --queues "$queues" \
    2>"$work/$name.log" &
  pids+=("$!")
  echo "started $name: $slots slots, queues $queues"
done
sleep 1

enqueue() { "$bin" --project "$work/alpha" --database "$db" enqueue "$@" >/dev/null; }
for i in $(seq 1 24); do enqueue resize --args "{\"image\": $i}"; done
for i in $(seq 1 6); do enqueue encode --args "{\"video\": $i}"; done
for i in $(seq 1 4); do enqueue report --args "{\"report\": $i}"; done
echo "enqueued 34 tasks (24 resize, 6 encode needing 2 slots and the media queue, 4 report on the reports queue)"

total=34
for _ in $(seq 1 120); do
  done_count=$(psql "$base" -At -c "SELECT count(*) FROM $schema.tasks WHERE status IN ('completed','failed','canceled')")
  [ "$done_count" -ge "$total" ] && break
  sleep 0.5
done

echo
echo "who ran what:"
psql "$base" -q -c "SELECT instance_name AS instance, job, count(*) AS tasks,
    string_agg(DISTINCT status, ',') AS status
  FROM $schema.tasks GROUP BY instance_name, job ORDER BY instance_name, job"
