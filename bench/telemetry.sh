#!/usr/bin/env bash
# What usage telemetry costs a command (docs/telemetry.md): the wall time of
# `claudemesh completions bash` (no request of its own: what is measured is
# telemetry alone), RUNS times each, with telemetry
#   off:          CLAUDEMESH_TELEMETRY=0, the floor;
#   live server:  on, signed in to a running server: each run sends its own
#                 events at exit;
#   black hole:   on, signed in to a server that takes connections and never
#                 answers (the worst case), with the backoff removed before
#                 each run so that every run waits for its send: the 300 ms
#                 cap, paid once per backoff (15 minutes) in real life;
#   black hole, backed off: the runs after that first one;
#   refused:      on, signed in to a port where nothing listens;
#   full spool:   on, 1,000 events waiting (the cap), signed in nowhere;
# and `claudemesh whoami` (one request of its own) off and on, against the
# live server.
# Target (issue): a send at exit waits at most 300 ms; nothing else adds
# more than noise.
#
# Knobs: RUNS=20
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-20}
log() { echo "[telemetry-bench] $*" >&2; }
log "building release binaries"
(cd "$ROOT" && cargo build --release --locked -q -p claudemesh-server -p claudemesh-cli)
SERVER=${CARGO_TARGET_DIR:-$ROOT/target}/release/claudemesh-server
CM=${CARGO_TARGET_DIR:-$ROOT/target}/release/claudemesh
WORK=$(mktemp -d)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
CLAUDEMESH_BIND=127.0.0.1:$PORT CLAUDEMESH_DATA_DIR=$WORK/data RUST_LOG=warn CLAUDEMESH_LOG_FORMAT=text \
  "$SERVER" >"$WORK/server.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -fs "$BASE/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
HOLE_PORT=$(free_port)
python3 -c "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',$HOLE_PORT)); s.listen(1024); time.sleep(1e9)" &
PIDS+=($!)
REFUSED_PORT=$(free_port)
curl -fs -c "$WORK/jar" -H 'content-type: application/json' -H "origin: $BASE" \
  -d '{"email":"bench@example.com","password":"bench password 1","name":"Bench"}' "$BASE/api/auth/register" >/dev/null
TOKEN=$(curl -fs -b "$WORK/jar" -H 'content-type: application/json' -H "origin: $BASE" \
  -d '{"name":"bench","expires_in_days":null}' "$BASE/api/my/cli/tokens" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')

# One config directory per case, signed in with the same PAT.
home() {
  local dir=$WORK/home-$1 server=$2
  echo "$TOKEN" | CLAUDEMESH_HOME=$dir CLAUDEMESH_API_URL=$BASE CLAUDEMESH_TELEMETRY=0 \
    "$CM" login --with-token >/dev/null 2>&1
  python3 - "$dir/auth.json" "$server" <<'PY'
import json, sys
path, server = sys.argv[1], sys.argv[2]
auth = json.load(open(path)); auth["server"] = server; json.dump(auth, open(path, "w"))
PY
  # The first-run notice, out of the way.
  CLAUDEMESH_HOME=$dir CLAUDEMESH_TELEMETRY=0 "$CM" telemetry on >/dev/null 2>&1
  echo "$dir"
}
LIVE=$(home live "$BASE")
HOLE=$(home hole "http://127.0.0.1:$HOLE_PORT")
REFUSED=$(home refused "http://127.0.0.1:$REFUSED_PORT")
FULL=$WORK/home-full
CLAUDEMESH_HOME=$FULL "$CM" telemetry on >/dev/null 2>&1
python3 - "$FULL/telemetry/spool.jsonl" <<'PY'
import json, sys, random, string
with open(sys.argv[1], "w") as f:
    for _ in range(1000):
        i = "".join(random.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(26))
        f.write(json.dumps({"event": {"event": "cli.logout", "id": i, "at": "2026-01-01T00:00:00Z",
                                      "properties": {"user_id": None}}}, separators=(",", ":")) + "\n")
PY

# time_runs NAME HOME TELEMETRY REMOVE_BACKOFF ARGS...: RUNS wall times in µs.
time_runs() {
  local name=$1 dir=$2 telemetry=$3 reset=$4; shift 4
  local times=()
  for _ in $(seq "$RUNS"); do
    [ "$reset" = 1 ] && rm -f "$dir/telemetry/backoff"
    local start=$(date +%s%N)
    CLAUDEMESH_HOME=$dir CLAUDEMESH_TELEMETRY=$telemetry "$CM" "$@" >/dev/null 2>&1 || true
    times+=("$(( ($(date +%s%N) - start) / 1000 ))")
  done
  echo "$name|$*|${times[*]}"
}
RESULTS=$WORK/results
: >"$RESULTS"
{
  time_runs "off" "$LIVE" 0 0 completions bash
  time_runs "on, live server" "$LIVE" 1 0 completions bash
  time_runs "on, black hole, every run sends" "$HOLE" 1 1 completions bash
  time_runs "on, black hole, backed off" "$HOLE" 1 0 completions bash
  time_runs "on, connection refused, every run sends" "$REFUSED" 1 1 completions bash
  time_runs "on, full spool, not signed in" "$FULL" 1 0 completions bash
  time_runs "off" "$LIVE" 0 0 whoami
  time_runs "on, live server" "$LIVE" 1 0 whoami
} >>"$RESULTS"
log "events the live server got: $(CLAUDEMESH_TELEMETRY=0 "$SERVER" telemetry-report --data-dir "$WORK/data" --days 1 | sed -n 2p)"

python3 - "$RESULTS" <<'PY'
import sys
print()
print("| telemetry | command | p50 ms | p95 ms | max ms |")
print("|---|---|---:|---:|---:|")
for line in open(sys.argv[1]):
    name, args, us = line.rstrip("\n").split("|")
    xs = sorted(int(x) / 1000 for x in us.split())
    p = lambda q: xs[min(len(xs) - 1, int(len(xs) * q))]
    print(f"| {name} | `{args}` | {xs[len(xs)//2]:.1f} | {p(.95):.1f} | {xs[-1]:.1f} |")
PY
