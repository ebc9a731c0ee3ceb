#!/bin/sh
# A worker: runs non-stop and is restarted when it exits. It stops cleanly
# on SIGTERM (a stop, a rolling restart or its time limit).
trap 'echo "replica $JOBSLOT_TASK_ID stopping"; exit 0' TERM
echo "watching the inbox with $(cat)"
while true; do
  echo "inbox checked at $(date -u +%H:%M:%S)"
  sleep 5 &
  wait $!
done
