#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: deterministic
# (the same count for the same binary and workload whatever else the machine
# is doing), so it shows differences far below what wrk's throughput can on
# a shared 2-core machine. For each binary given (this build's release server
# by default, and BASELINE_BIN when set): the server under callgrind on a
# fresh SQLite store, one account and one PAT, WARMUP requests, the counters
# zeroed, then exactly REQUESTS requests of each route on one keep-alive
# connection, each route's instructions per request printed side by side.
#
# Used to measure what the metrics cost a request (a BASELINE_BIN built
# with recording turned off; bench/README.md says how).
#
# PROFILE=profiling builds the release code with line tables and symbols
# (Cargo.toml's `profiling` profile), so that `callgrind_annotate` on the
# files kept in bench/.run/instructions/ names where the instructions go.
#
# Knobs: REQUESTS=2000 WARMUP=200 BASELINE_BIN= PROFILE=release
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REQUESTS=${REQUESTS:-2000}
WARMUP=${WARMUP:-200}
BASELINE_BIN=${BASELINE_BIN:-}
PROFILE=${PROFILE:-release}
OUT=$ROOT/bench/.run/instructions
log() { echo "[instructions] $*" >&2; }
command -v valgrind >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }
log "building the server ($PROFILE)"
(cd "$ROOT" && cargo build --profile "$PROFILE" --locked -q -p claudemesh-server)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/claudemesh-server
rm -rf "$OUT"
mkdir -p "$OUT"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# requests BASE TOKEN PATH COUNT: COUNT GETs on one connection.
requests() {
  python3 - "$@" <<'PY'
import http.client, sys, urllib.parse
base, token, path, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
u = urllib.parse.urlparse(base)
conn = http.client.HTTPConnection(u.hostname, u.port)
headers = {"Authorization": f"Bearer {token}"} if token else {}
for _ in range(count):
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    r.read()
    assert r.status == 200, r.status
PY
}

# measure NAME BIN: prints "NAME ROUTE INSTRUCTIONS_PER_REQUEST" lines.
measure() {
  local name=$1 bin=$2 port dir base pid jar token route path file
  port=$(free_port)
  dir=$OUT/$name
  mkdir -p "$dir"
  base=http://127.0.0.1:$port
  env -u DATABASE_URL CLAUDEMESH_BIND=127.0.0.1:$port CLAUDEMESH_DATA_DIR=$dir/data \
    CLAUDEMESH_LOG_FORMAT=text RUST_LOG=warn CLAUDEMESH_TOKEN_REQUESTS_PER_MINUTE=0 \
    CLAUDEMESH_SIGN_UPS_PER_IP_PER_MINUTE=0 \
    valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.%p" "$bin" >"$dir/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do curl -fs "$base/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  jar=$dir/cookies
  curl -fs -c "$jar" -H 'content-type: application/json' -H "origin: $base" \
    -d '{"email":"bench@example.com","password":"bench password 1","name":"Bench"}' \
    "$base/api/auth/register" >/dev/null
  token=$(curl -fs -b "$jar" -H 'content-type: application/json' -H "origin: $base" \
    -d '{"name":"bench"}' "$base/api/my/cli/tokens" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  for route in healthz whoami; do
    case $route in healthz) path=/healthz auth="" ;; whoami) path=/api/my/whoami auth=$token ;; esac
    requests "$base" "$auth" "$path" "$WARMUP"
    callgrind_control -z "$pid" >/dev/null 2>&1
    requests "$base" "$auth" "$path" "$REQUESTS"
    callgrind_control -d "$route" "$pid" >/dev/null 2>&1
    sleep 1
    file=$(ls -t "$dir"/callgrind.*.* | head -n 1)
    echo "$name $route $(awk -v n="$REQUESTS" '/^(summary|totals):/ { print int($2 / n); exit }' "$file")"
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

{
  measure current "$BIN"
  [ -n "$BASELINE_BIN" ] && measure baseline "$BASELINE_BIN"
} | tee "$OUT/results.txt"
python3 - "$OUT/results.txt" "$BASELINE_BIN" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    name, route, ir = line.split()
    rows.setdefault(route, {})[name] = int(ir)
print()
print("| route | instructions/request, this build | " + ("baseline | difference |" if sys.argv[2] else ""))
print("|---|---:|" + ("---:|---:|" if sys.argv[2] else ""))
for route, by in rows.items():
    line = f"| {route} | {by['current']:,} |"
    if "baseline" in by:
        line += f" {by['baseline']:,} | {100 * (by['current'] / by['baseline'] - 1):+.2f}% |"
    print(line)
PY
