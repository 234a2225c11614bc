#!/usr/bin/env bash
# Throughput, latency and memory of claudemesh-server's bearer-token check.
#
# For each engine (SQLite, PostgreSQL) it starts the release server on a free
# loopback port over a fresh database, registers a user, creates a PAT, and
# drives two routes of the same server with wrk (-t2 -c32, as the anchor):
#   GET /healthz          no auth (the floor)
#   GET /api/my/whoami    Authorization: Bearer cm_pat_… (a database read per request)
# Then, in the same sitting, Better Auth's apiKey anchor (../shared/anchors)
# runs the same shape of workload on Node, and a side-by-side table is printed.
#
# Knobs: RUNS=3 DURATION=10s THREADS=2 CONNS=32 WARMUP=3s ENGINES="sqlite postgres" ANCHOR=1
#        PG_ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$ROOT/bench
RUNS=${RUNS:-3}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNS=${CONNS:-32}
WARMUP=${WARMUP:-3s}
ENGINES=${ENGINES:-"sqlite postgres"}
ANCHOR=${ANCHOR:-1}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
OUT=$HERE/.run
log() { echo "[bench] $*" >&2; }

if ! command -v wrk >/dev/null; then
  log "installing wrk"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
log "building the release server"
(cd "$ROOT" && cargo build --release --locked -q -p claudemesh-server)
BIN=$ROOT/target/release/claudemesh-server

rm -rf "$OUT"
mkdir -p "$OUT"
SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}
trap stop_server EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# bench_engine NAME [DATABASE_URL]
bench_engine() {
  local engine=$1 database_url=${2:-}
  local port; port=$(free_port)
  local base="http://127.0.0.1:$port"
  local dir="$OUT/$engine"
  mkdir -p "$dir"
  log "$engine: starting the server on $base"
  env -u DATABASE_URL RUST_LOG=warn CLAUDEMESH_LOG_FORMAT=text CLAUDEMESH_BIND="127.0.0.1:$port" \
    CLAUDEMESH_DATA_DIR="$dir/data" ${database_url:+DATABASE_URL="$database_url"} \
    "$BIN" >"$dir/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do curl -fs "$base/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fs "$base/healthz" >/dev/null || { cat "$dir/server.log" >&2; exit 1; }

  local jar="$dir/cookies"
  curl -fs -c "$jar" -H 'content-type: application/json' -H "origin: $base" \
    -d '{"email":"bench@example.com","password":"bench password 1","name":"Bench"}' \
    "$base/api/auth/register" >/dev/null
  local token
  token=$(curl -fs -b "$jar" -H 'content-type: application/json' -H "origin: $base" \
    -d '{"name":"bench"}' "$base/api/my/cli/tokens" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  local auth=(-H "Authorization: Bearer $token")
  [ "$(curl -s -o /dev/null -w '%{http_code}' "${auth[@]}" "$base/api/my/whoami")" = 200 ] || { log "whoami failed"; exit 1; }

  wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" "$base/healthz" >/dev/null
  wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" "${auth[@]}" "$base/api/my/whoami" >/dev/null
  for i in $(seq "$RUNS"); do
    wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$HERE/wrk-report.lua" "$base/healthz" \
      | sed -n 's/^RESULT //p' >"$dir/noauth-$i.json"
    wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$HERE/wrk-report.lua" "${auth[@]}" "$base/api/my/whoami" \
      | sed -n 's/^RESULT //p' >"$dir/whoami-$i.json"
    log "$engine run $i: noauth $(cat "$dir/noauth-$i.json")"
    log "$engine run $i: whoami $(cat "$dir/whoami-$i.json")"
  done
  grep -E '^Vm(HWM|RSS)' "/proc/$SERVER_PID/status" | awk '{print $1, $2}' >"$dir/memory.txt"
  # After the load, a revoked token must be refused at once.
  local id
  id=$(curl -fs "${auth[@]}" "$base/api/my/whoami" | python3 -c 'import json,sys; print(json.load(sys.stdin)["credential"]["token"]["id"])')
  curl -fs -X DELETE "${auth[@]}" "$base/api/my/cli/tokens/$id" >/dev/null
  [ "$(curl -s -o /dev/null -w '%{http_code}' "${auth[@]}" "$base/api/my/whoami")" = 401 ] || { log "revoked token still accepted"; exit 1; }
  stop_server
}

for engine in $ENGINES; do
  case $engine in
    sqlite) bench_engine sqlite ;;
    postgres)
      psql -q "$PG_ADMIN_URL" -c 'DROP DATABASE IF EXISTS claudemesh_bench WITH (FORCE)' -c 'CREATE DATABASE claudemesh_bench'
      bench_engine postgres "${PG_ADMIN_URL%/*}/claudemesh_bench" ;;
    *) log "unknown engine $engine"; exit 1 ;;
  esac
done

ANCHOR_LINE=""
ANCHOR_SCRIPT=$ROOT/../shared/anchors/better-auth/run.sh
if [ "$ANCHOR" = 1 ] && [ -x "$(command -v node)" ] && [ -f "$ANCHOR_SCRIPT" ]; then
  log "running the Better Auth anchor (same workload shape, same machine, same sitting)"
  ANCHOR_LINE=$(RUNS=$RUNS DURATION=$DURATION THREADS=$THREADS CONNS=$CONNS WARMUP=$WARMUP \
    bash "$ANCHOR_SCRIPT" 2>"$OUT/anchor.log" | tail -n 1) || log "the anchor failed: see $OUT/anchor.log"
fi

OUT=$OUT ENGINES=$ENGINES RUNS=$RUNS CONNS=$CONNS ANCHOR_LINE=$ANCHOR_LINE \
  ANCHOR_SUMMARY=$(dirname "$ANCHOR_SCRIPT")/.bench-run/summary.json python3 - <<'PY'
import json, os, statistics
out, runs = os.environ["OUT"], int(os.environ["RUNS"])
def load(engine, route):
    return [json.load(open(f"{out}/{engine}/{route}-{i}.json")) for i in range(1, runs + 1)]
rows = []
for engine in os.environ["ENGINES"].split():
    noauth, whoami = load(engine, "noauth"), load(engine, "whoami")
    mem = dict(line.split() for line in open(f"{out}/{engine}/memory.txt"))
    med = lambda runs, key: statistics.median(r[key] for r in runs)
    bad = sum(r["non2xx"] + r["socket_errors"] for r in noauth + whoami)
    rows.append((f"claudemesh ({engine})", med(noauth, "rps"), med(noauth, "p99_us") / 1000,
                 med(whoami, "rps"), med(whoami, "p50_us") / 1000, med(whoami, "p99_us") / 1000,
                 int(mem["VmRSS:"]) / 1024, int(mem["VmHWM:"]) / 1024, bad))
anchor = os.environ.get("ANCHOR_LINE", "")
if anchor.startswith("better-auth"):
    # The anchor's last line has its medians; its summary.json has each run.
    f = dict(kv.split("=") for kv in anchor.split()[1:])
    try:
        per_run = json.load(open(os.environ["ANCHOR_SUMMARY"]))["runs"]
        med = lambda route, key: statistics.median(r[key] for r in per_run[route])
        noauth_p99, whoami_p50 = med("noauth", "p99_us") / 1000, med("whoami", "p50_us") / 1000
        bad = sum(r["non2xx"] + r["connect_err"] + r["read_err"] + r["write_err"] + r["timeout_err"]
                  for route in ("noauth", "whoami") for r in per_run[route])
    except (OSError, KeyError, ValueError):
        noauth_p99 = whoami_p50 = bad = None
    # The anchor reports RSS after load only, not its peak.
    rows.append(("better-auth apiKey (node)", float(f["noauth_rps"]), noauth_p99, float(f["whoami_rps"]),
                 whoami_p50, float(f["whoami_p99_ms"]), float(f["rss_mb"]), None, bad))
print(f"\nmedians of {runs} runs, wrk -c{os.environ['CONNS']}, server and wrk sharing this machine's cores\n")
print("| server | no-auth rps | no-auth p99 ms | whoami rps | whoami p50 ms | whoami p99 ms | RSS after load MB | peak RSS MB | auth/no-auth | errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
cell = lambda value, form: "n/a" if value is None else format(value, form)
for name, nrps, np99, wrps, wp50, wp99, rss, peak, bad in rows:
    print(f"| {name} | {nrps:,.0f} | {cell(np99, '.2f')} | {wrps:,.0f} | {cell(wp50, '.2f')} | {wp99:.2f} "
          f"| {rss:.1f} | {cell(peak, '.1f')} | {wrps / nrps:.2f} | {cell(bad, 'd')} |")
print("(peak RSS includes the one argon2id hash of the set-up sign-up: 12 MiB by design)")
if anchor.startswith("better-auth"):
    base = rows[-1][3]
    for row in rows[:-1]:
        print(f"{row[0]}: {row[3] / base:.0f}x Better Auth's verified requests per second")
PY
