#!/bin/sh
# Completes: prints its args (they also arrive on stdin as JSON).
echo "hello from task $JOBSLOT_TASK_ID, attempt $JOBSLOT_ATTEMPT"
echo "args: $(cat)"
