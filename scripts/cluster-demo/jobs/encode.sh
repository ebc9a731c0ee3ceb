#!/bin/sh
# A video job: needs 2 slots and the media queue.
sleep 0.6
echo "encoded $(cat)"
