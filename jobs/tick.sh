#!/bin/sh
# A recurring job: knows when its schedule last succeeded.
echo "tick at $(date -u +%H:%M:%S); last completed: ${JOBSLOT_LAST_COMPLETED_AT:-never}"
