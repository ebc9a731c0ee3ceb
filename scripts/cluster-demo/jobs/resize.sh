#!/bin/sh
# A small image job: runs anywhere that serves the default queue.
sleep 0.2
echo "resized $(cat)"
