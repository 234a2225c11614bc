#!/usr/bin/env bash
# What `npm install -g claudemesh` costs each command: the wall time of
# `claudemesh --version` (the floor of every command) through each way the
# npm package can run the binary, beside the bare binary, in one run:
#
#   bare binary                 target/release/claudemesh
#   npm install -g              the command npm linked, after install.js made
#                               it the binary itself (a hard link)
#   npm --ignore-scripts        the shell script bin/claudemesh.exe, which
#                               execs the binary
#   node launcher.js            Node.js starting the binary as a child
#   node -e 0                   a Node.js start alone (any Node.js launcher
#                               pays it)
#
# The packages are the release binary packed by scripts/npm-package and
# installed offline into temporary prefixes, as scripts/npm-e2e does.
#
# Knobs: RUNS=200 (timed runs of each, after 10 warm-up runs)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
RUNS=${RUNS:-200}
log() { echo "[bench] $*" >&2; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
log "building the release binary (LTO: a few minutes on 2 cores)"
(cd "$ROOT" && cargo build --release --locked -q -p claudemesh-cli)
cp "$TARGET_DIR/release/claudemesh" "$WORK/claudemesh"
CLI=$WORK/claudemesh

log "packing and installing (offline)"
"$ROOT/scripts/npm-package" platform x86_64-unknown-linux-gnu "$CLI" "$WORK/dist" >/dev/null
"$ROOT/scripts/npm-package" main "$CLI" "$WORK/dist" >/dev/null
export npm_config_cache=$WORK/npm-cache npm_config_registry=http://127.0.0.1:9/ \
  npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false
npm install -g --offline --loglevel=error --prefix "$WORK/global" "$WORK"/dist/claudemesh-*.tgz >/dev/null 2>&1
npm install -g --offline --loglevel=error --ignore-scripts --prefix "$WORK/noscripts" "$WORK"/dist/claudemesh-*.tgz >/dev/null 2>&1

# p50, p95 and mean wall time in ms (bench/time_command.py).
time_command() { python3 "$ROOT/bench/time_command.py" "$RUNS" "$@"; }

export CLAUDEMESH_HOME=$WORK/home CLAUDEMESH_TELEMETRY=0
echo
echo "== claudemesh --version, start to exit ($RUNS runs; ms)"
printf '%-28s %7s %7s %7s\n' how p50 p95 mean
printf '%-28s %s\n' "bare binary" "$(time_command "$CLI" --version)"
printf '%-28s %s\n' "npm install -g" "$(time_command "$WORK/global/bin/claudemesh" --version)"
# A file without a "#!" line: shells (and execvp) run it with /bin/sh, as
# this does; a bare execve, as Python's, refuses it (see npm/README.md).
printf '%-28s %s\n' "npm --ignore-scripts (sh)" "$(time_command /bin/sh "$WORK/noscripts/bin/claudemesh" --version)"
printf '%-28s %s\n' "node launcher.js" "$(time_command node "$WORK/noscripts/lib/node_modules/claudemesh/launcher.js" --version)"
printf '%-28s %s   (%s)\n' "node -e 0" "$(time_command node -e 0)" "$(node --version)"
