#!/usr/bin/env bash
# What a user downloads and waits for: the size of both release binaries
# (built with the workspace's release profile: LTO, one codegen unit,
# stripped), and the wall time of `claudemesh --version`, the floor of every
# command (target: under 5 ms). Side by side, in the same run, the floor of the
# alternative: the TypeScript claudemesh is a Node.js CLI, and `node -e 0`
# (start Node, run nothing) is what any command of it pays before its first
# line of code.
#
# Knobs: RUNS=200 (timed runs of each command, after 10 warm-up runs)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-200}
log() { echo "[bench] $*" >&2; }

log "building the release binaries (LTO: a few minutes on 2 cores)"
(cd "$ROOT" && cargo build --release --locked -q -p claudemesh-server -p claudemesh-cli)
SERVER=${CARGO_TARGET_DIR:-$ROOT/target}/release/claudemesh-server
CLI=${CARGO_TARGET_DIR:-$ROOT/target}/release/claudemesh

echo
echo "== binary sizes (release profile: lto, codegen-units = 1, strip)"
for bin in "$SERVER" "$CLI"; do
  bytes=$(stat -c %s "$bin")
  awk -v name="$(basename "$bin")" -v bytes="$bytes" 'BEGIN { printf "%-20s %6.1f MiB  (%d bytes)\n", name, bytes / 1048576, bytes }'
done

# p50, p95 and mean wall time in ms (bench/time_command.py).
time_command() { python3 "$ROOT/bench/time_command.py" "$RUNS" "$@"; }

echo
echo "== wall time, start to exit ($RUNS runs; ms)"
printf '%-34s %7s %7s %7s\n' command p50 p95 mean
# A home of its own, as a user's: telemetry on (its notice shows once, in
# the warm-up), nothing signed in.
HOME_DIR=$(mktemp -d)
trap 'rm -rf "$HOME_DIR"' EXIT
printf '%-34s %s\n' "claudemesh --version" "$(CLAUDEMESH_HOME=$HOME_DIR time_command "$CLI" --version)"
if command -v node >/dev/null; then
  printf '%-34s %s   (%s)\n' "node -e 0 (any Node.js CLI)" "$(time_command node -e 0)" "$(node --version)"
else
  echo "node -e 0: Node.js is not installed, no comparison"
fi
