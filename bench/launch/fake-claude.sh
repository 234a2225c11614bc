#!/bin/sh
# Stands in for Claude Code in bench/launch.sh: notes when it was started.
date +%s%N >> "$BENCH_HANDOVER_FILE"
