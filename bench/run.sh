#!/usr/bin/env bash
# Throughput, latency and memory of claudemesh-server's bearer-token check.
#
# For each engine (SQLite, PostgreSQL) it starts the release server on a free
# loopback port over a fresh database, registers a user, creates a PAT, and
# drives two routes of the same server with wrk (-t2 -c32, as the anchor),
# with the per-token request limit off:
#   GET /healthz          no auth (the floor)
#   GET /api/my/whoami    Authorization: Bearer cm_pat_… (a database read per request)
# Then, in the same sitting, Better Auth's apiKey anchor (../shared/anchors)
# runs the same shape of workload on Node, and a side-by-side table is printed.
#
# The cost of the per-token request limit, in the same run: two servers on
# the same database, one with the limit off, one with it on (LIMIT_ON a
# minute per token, far above what one connection sends, so every request is
# counted and passes), and GET /api/my/whoami with one token per connection
# (wrk-tokens.lua) against each: LIMIT_PAIRS back-to-back pairs of
# LIMIT_DURATION in alternating order (off-on, on-off, …), so that drift in
# the machine's load cancels out; halfway, both servers start afresh in the
# other order. Throughput and the servers' CPU time per request are compared.
#
# A second server binary in the same sitting: BASELINE_BIN=path/to/an/older/
# claudemesh-server runs beside this build's, on its own database, with the
# same routes, run for run in alternating order, and gets a row of its own
# (e.g. a release tag built with `git worktree add` + `cargo build --release`).
#
# Knobs: RUNS=3 DURATION=10s THREADS=2 CONNS=32 WARMUP=3s ENGINES="sqlite postgres" ANCHOR=1
#        LIMIT_ON=6000000 LIMIT_PAIRS=8 LIMIT_DURATION=5s BASELINE_BIN=
#        PROFILE=release (or profiling: the same code with symbols, for perf)
#        PG_ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres
# Every count may be 0: RUNS=0 skips the route comparison (and the anchor),
# LIMIT_PAIRS=0 the request-limit comparison.
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
LIMIT_ON=${LIMIT_ON:-6000000}
LIMIT_PAIRS=${LIMIT_PAIRS:-8}
LIMIT_DURATION=${LIMIT_DURATION:-5s}
BASELINE_BIN=${BASELINE_BIN:-}
PROFILE=${PROFILE:-release}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
OUT=$HERE/.run
log() { echo "[bench] $*" >&2; }

if ! command -v wrk >/dev/null; then
  log "installing wrk"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
log "building the server ($PROFILE)"
(cd "$ROOT" && cargo build --profile "$PROFILE" --locked -q -p claudemesh-server)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/claudemesh-server

rm -rf "$OUT"
mkdir -p "$OUT"
# One token per connection, then the report, in one wrk script.
cat "$HERE/wrk-tokens.lua" "$HERE/wrk-report.lua" >"$OUT/wrk-tokens-report.lua"
SERVER_PIDS=()
stop_servers() {
  for pid in "${SERVER_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  SERVER_PIDS=()
}
trap stop_servers EXIT

# CPU time a process has used, in clock ticks (user + system).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# start_server LOG PORT REQUESTS_PER_MINUTE DATA_DIR [DATABASE_URL]: sets STARTED_PID
start_server() {
  local log_file=$1 port=$2 limit=$3 data_dir=$4 database_url=${5:-}
  local bin=${BIN}
  env -u DATABASE_URL RUST_LOG=warn CLAUDEMESH_LOG_FORMAT=text CLAUDEMESH_BIND="127.0.0.1:$port" \
    CLAUDEMESH_DATA_DIR="$data_dir" CLAUDEMESH_TOKEN_REQUESTS_PER_MINUTE="$limit" \
    ${database_url:+DATABASE_URL="$database_url"} "$bin" >"$log_file" 2>&1 &
  STARTED_PID=$!
  SERVER_PIDS+=("$STARTED_PID")
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null || { cat "$log_file" >&2; exit 1; }
}

# setup_side SIDE BINARY DIR [DATABASE_URL]: starts BINARY (request limit
# off), signs a user up, makes a PAT and one token per connection; sets
# SIDE_URL[SIDE], SIDE_PID[SIDE], SIDE_TOKEN[SIDE].
declare -A SIDE_URL SIDE_PID SIDE_TOKEN
setup_side() {
  local side=$1 bin=$2 dir=$3 database_url=${4:-}
  local port; port=$(free_port)
  local base="http://127.0.0.1:$port"
  mkdir -p "$dir"
  log "$side: starting $bin on $base (request limit off)"
  BIN=$bin start_server "$dir/server.log" "$port" 0 "$dir/data" "$database_url"
  SIDE_PID[$side]=$STARTED_PID
  SIDE_URL[$side]=$base
  local jar="$dir/cookies"
  curl -fs -c "$jar" -H 'content-type: application/json' -H "origin: $base" \
    -d '{"email":"bench@example.com","password":"bench password 1","name":"Bench"}' \
    "$base/api/auth/register" >/dev/null
  SIDE_TOKEN[$side]=$(curl -fs -b "$jar" -H 'content-type: application/json' -H "origin: $base" \
    -d '{"name":"bench"}' "$base/api/my/cli/tokens" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${SIDE_TOKEN[$side]}" "$base/api/my/whoami")" = 200 ] \
    || { log "$side: whoami failed"; exit 1; }
  # One token per connection, for the request-limit comparison.
  for n in $(seq "$CONNS"); do
    curl -fs -b "$jar" -H 'content-type: application/json' -H "origin: $base" \
      -d "{\"name\":\"bench-$n\"}" "$base/api/my/cli/tokens" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
  done >"$dir/tokens.txt"
}

# fresh_database NAME: prints the URL of an empty PostgreSQL database.
fresh_database() {
  psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1"
  echo "${PG_ADMIN_URL%/*}/$1"
}

# bench_engine NAME: the two routes on this build's server (and, with
# BASELINE_BIN, on that binary beside it, run for run in alternating order),
# then the request limit's cost.
bench_engine() {
  local engine=$1 sides="current" side
  local dir="$OUT/$engine"
  mkdir -p "$dir"
  local database_url=""
  [ "$engine" = postgres ] && database_url=$(fresh_database claudemesh_bench)
  setup_side current "$BIN" "$dir" "$database_url"
  if [ -n "$BASELINE_BIN" ]; then
    # Its own database: another version may not share this one's schema.
    local baseline_url=""
    [ "$engine" = postgres ] && baseline_url=$(fresh_database claudemesh_bench_baseline)
    setup_side baseline "$BASELINE_BIN" "$OUT/$engine-baseline" "$baseline_url"
    sides="current baseline"
  fi
  local token=${SIDE_TOKEN[current]}
  local auth=(-H "Authorization: Bearer $token")
  local tokens=(-s "$OUT/wrk-tokens-report.lua")
  export WRK_TOKENS="$dir/tokens.txt" WRK_THREADS="$THREADS"

  if [ "$RUNS" -gt 0 ]; then
    for side in $sides; do
      wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" "${SIDE_URL[$side]}/healthz" >/dev/null
      wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -H "Authorization: Bearer ${SIDE_TOKEN[$side]}" "${SIDE_URL[$side]}/api/my/whoami" >/dev/null
    done
  fi
  for i in $(seq "$RUNS"); do
    # Alternate which side goes first, so drift in the machine's load cancels.
    local order=$sides
    [ $((i % 2)) = 0 ] && order=$(echo "$sides" | tr ' ' '\n' | tac | tr '\n' ' ')
    for side in $order; do
      local prefix=$dir/
      [ "$side" = baseline ] && prefix=$dir/baseline-
      wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$HERE/wrk-report.lua" "${SIDE_URL[$side]}/healthz" \
        | sed -n 's/^RESULT //p' >"${prefix}noauth-$i.json"
      wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$HERE/wrk-report.lua" \
        -H "Authorization: Bearer ${SIDE_TOKEN[$side]}" "${SIDE_URL[$side]}/api/my/whoami" \
        | sed -n 's/^RESULT //p' >"${prefix}whoami-$i.json"
      log "$engine run $i ($side): noauth $(cat "${prefix}noauth-$i.json")"
      log "$engine run $i ($side): whoami $(cat "${prefix}whoami-$i.json")"
    done
  done
  for side in $sides; do
    local prefix=$dir/
    [ "$side" = baseline ] && prefix=$dir/baseline-
    grep -E '^Vm(HWM|RSS)' "/proc/${SIDE_PID[$side]}/status" | awk '{print $1, $2}' >"${prefix}memory.txt"
  done
  # After the load, a revoked token must be refused at once.
  local base=${SIDE_URL[current]} id
  id=$(curl -fs "${auth[@]}" "$base/api/my/whoami" | python3 -c 'import json,sys; print(json.load(sys.stdin)["credential"]["token"]["id"])')
  curl -fs -X DELETE "${auth[@]}" "$base/api/my/cli/tokens/$id" >/dev/null
  [ "$(curl -s -o /dev/null -w '%{http_code}' "${auth[@]}" "$base/api/my/whoami")" = 401 ] || { log "revoked token still accepted"; exit 1; }
  stop_servers
  [ "$LIMIT_PAIRS" -gt 0 ] || return 0

  # The request limit's cost: two fresh servers on the same database, the
  # limit off on one and on on the other. Halfway, both start afresh in the
  # other order, so that neither the start order nor the port favours a side.
  local -A url pid
  local half=$(((LIMIT_PAIRS + 1) / 2)) order
  for i in $(seq "$LIMIT_PAIRS"); do
    if [ "$i" = 1 ] || [ "$i" = $((half + 1)) ]; then
      stop_servers
      order="off on"
      [ "$i" = 1 ] || order="on off"
      for side in $order; do
        local side_port limit=0
        side_port=$(free_port)
        [ "$side" = on ] && limit=$LIMIT_ON
        start_server "$dir/server-limit-$side-$i.log" "$side_port" "$limit" "$dir/data" "$database_url"
        url[$side]="http://127.0.0.1:$side_port"
        pid[$side]=$STARTED_PID
        wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" "${tokens[@]}" "${url[$side]}/api/my/whoami" >/dev/null
      done
      log "$engine: request limit off at ${url[off]}, on ($LIMIT_ON a minute per token) at ${url[on]}"
    fi
    if [ $((i % 2)) = 1 ]; then order="off on"; else order="on off"; fi
    for side in $order; do
      local before
      before=$(cpu_ticks "${pid[$side]}")
      wrk -t"$THREADS" -c"$CONNS" -d"$LIMIT_DURATION" --latency "${tokens[@]}" "${url[$side]}/api/my/whoami" \
        | sed -n 's/^RESULT //p' >"$dir/tokens-$side-$i.json"
      echo $(($(cpu_ticks "${pid[$side]}") - before)) >"$dir/tokens-$side-$i.ticks"
    done
    log "$engine pair $i: whoami, $CONNS tokens, limit off $(cat "$dir/tokens-off-$i.json")"
    log "$engine pair $i: whoami, $CONNS tokens, limit on  $(cat "$dir/tokens-on-$i.json")"
  done
  grep -E '^Vm(HWM|RSS)' "/proc/${pid[on]}/status" | awk '{print $1, $2}' >"$dir/memory-limited.txt"
  stop_servers
}

for engine in $ENGINES; do
  case $engine in
    sqlite | postgres) bench_engine "$engine" ;;
    *) log "unknown engine $engine"; exit 1 ;;
  esac
done

ANCHOR_LINE=""
ANCHOR_SCRIPT=$ROOT/../shared/anchors/better-auth/run.sh
if [ "$ANCHOR" = 1 ] && [ "$RUNS" -gt 0 ] && [ -x "$(command -v node)" ] && [ -f "$ANCHOR_SCRIPT" ]; then
  log "running the Better Auth anchor (same workload shape, same machine, same sitting)"
  ANCHOR_LINE=$(RUNS=$RUNS DURATION=$DURATION THREADS=$THREADS CONNS=$CONNS WARMUP=$WARMUP \
    bash "$ANCHOR_SCRIPT" 2>"$OUT/anchor.log" | tail -n 1) || log "the anchor failed: see $OUT/anchor.log"
fi

OUT=$OUT ENGINES=$ENGINES RUNS=$RUNS CONNS=$CONNS LIMIT_ON=$LIMIT_ON LIMIT_PAIRS=$LIMIT_PAIRS \
  LIMIT_DURATION=$LIMIT_DURATION ANCHOR_LINE=$ANCHOR_LINE BASELINE_BIN=$BASELINE_BIN \
  ANCHOR_SUMMARY=$(dirname "$ANCHOR_SCRIPT")/.bench-run/summary.json python3 - <<'PY'
import json, os, statistics
out, runs = os.environ["OUT"], int(os.environ["RUNS"])
def load(engine, route, prefix=""):
    return [json.load(open(f"{out}/{engine}/{prefix}{route}-{i}.json")) for i in range(1, runs + 1)]
rows = []
sides = [("", "")] + ([("baseline-", ", baseline")] if os.environ.get("BASELINE_BIN") else [])
for engine in os.environ["ENGINES"].split() if runs > 0 else []:
    for prefix, label in sides:
        noauth, whoami = load(engine, "noauth", prefix), load(engine, "whoami", prefix)
        mem = dict(line.split() for line in open(f"{out}/{engine}/{prefix}memory.txt"))
        med = lambda runs, key: statistics.median(r[key] for r in runs)
        bad = sum(r["non2xx"] + r["socket_errors"] for r in noauth + whoami)
        rows.append((f"claudemesh ({engine}{label})", med(noauth, "rps"), med(noauth, "p99_us") / 1000,
                     med(whoami, "rps"), med(whoami, "p50_us") / 1000, med(whoami, "p99_us") / 1000,
                     int(mem["VmRSS:"]) / 1024, int(mem["VmHWM:"]) / 1024, bad))
if os.environ.get("BASELINE_BIN") and runs > 0:
    print(f"\nbaseline: {os.environ['BASELINE_BIN']} (its own database, runs alternating with this build's)")
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
if rows:
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
else:
    print("\nRUNS=0: the route comparison was skipped")

# The request limit's cost: the same route, one token per connection, with
# the limit off and on, in back-to-back pairs of alternating order.
limit, pairs = int(os.environ["LIMIT_ON"]), int(os.environ["LIMIT_PAIRS"])
if pairs == 0:
    print("\nLIMIT_PAIRS=0: the request-limit comparison was skipped")
    raise SystemExit(0)
print(f"\nthe per-token request limit: GET /api/my/whoami with {os.environ['CONNS']} tokens, one per connection, "
      f"{pairs} pairs of {os.environ['LIMIT_DURATION']} (off-on, on-off, ...); limit on = {limit:,} a minute per token "
      f"(far above each token's rate: every request counted and passed)\n")
print("| server | limit off rps | limit off p99 ms | limit on rps | limit on p99 ms | throughput cost (median of pairs) | server CPU per request, off → on | CPU cost (all requests) | RSS after load MB (limit on) | errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
ticks = os.sysconf("SC_CLK_TCK")
for engine in os.environ["ENGINES"].split():
    pair = lambda side: [json.load(open(f"{out}/{engine}/tokens-{side}-{i}.json")) for i in range(1, pairs + 1)]
    off, on = pair("off"), pair("on")
    med = lambda runs, key: statistics.median(r[key] for r in runs)
    costs = [1 - b["rps"] / a["rps"] for a, b in zip(off, on)]
    # Server CPU per request: what the limit adds to each request's work,
    # less swayed than throughput by whatever else shares the cores.
    cpu = lambda side, runs: sum(int(open(f"{out}/{engine}/tokens-{side}-{i}.ticks").read())
                                 for i in range(1, pairs + 1)) / ticks * 1e6 / sum(r["requests"] for r in runs)
    cpu_off, cpu_on = cpu("off", off), cpu("on", on)
    mem = dict(line.split() for line in open(f"{out}/{engine}/memory-limited.txt"))
    bad = sum(r["non2xx"] + r["socket_errors"] for r in off + on)
    print(f"| claudemesh ({engine}) | {med(off, 'rps'):,.0f} | {med(off, 'p99_us') / 1000:.2f} "
          f"| {med(on, 'rps'):,.0f} | {med(on, 'p99_us') / 1000:.2f} | {statistics.median(costs):+.1%} "
          f"| {cpu_off:.1f} µs → {cpu_on:.1f} µs | {cpu_on / cpu_off - 1:+.1%} "
          f"| {int(mem['VmRSS:']) / 1024:.1f} | {bad} |")
    print(f"  {engine}, throughput cost of each pair: {', '.join(f'{c:+.1%}' for c in costs)}")
print("(throughput cost: 1 - limit on / limit off; CPU cost: limit on / limit off - 1; negative: the limit-on side did better)")
PY
