#!/bin/sh
# Fails: exit 1 marks the task failed with reason "exit 1".
echo "something went wrong" >&2
exit 1
