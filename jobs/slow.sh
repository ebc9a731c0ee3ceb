#!/bin/sh
# Runs past its max_execution_time (3s in schema/examples.toml): jobslot sends
# SIGTERM to its process group, then SIGKILL after kill_grace.
echo "starting a long computation, deadline $JOBSLOT_DEADLINE"
sleep 30
