#!/bin/sh
# Runs after each completed occurrence of the "greet" schedule.
echo "summary after greet; metadata: $JOBSLOT_METADATA"
