#!/usr/bin/env bash
# Starting CLI logins while the device-code table grows: does each new code
# cost the same at 100,000 rows as at none?
#
# For each engine it starts the release server on a free loopback port over
# a fresh database, with the limit per client address off
# (CLAUDEMESH_DEVICE_CODES_PER_IP_PER_MINUTE=0), and creates ROWS codes with
# POST /api/auth/cli/device-code from CONNS keep-alive connections
# (bench/device_codes/create.py), printing the creation rate and latency of
# each SLICE of rows. Every code stays live (none is old enough to clean up),
# which is the table a flood of logins leaves; each creation still runs the
# clean-up of long-finished codes.
#
# BIN=path/to/claudemesh-server runs another build instead of this tree's
# (e.g. one built from an earlier commit, for a before/after table).
#
# Knobs: ROWS=100000 SLICE=10000 CONNS=4 ENGINES="sqlite postgres" BIN=
#        PG_ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROWS=${ROWS:-100000}
SLICE=${SLICE:-10000}
CONNS=${CONNS:-4}
ENGINES=${ENGINES:-"sqlite postgres"}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
OUT=$ROOT/bench/.run/device_codes
log() { echo "[device-codes-bench] $*" >&2; }

if [ -z "${BIN:-}" ]; then
  log "building the release server"
  (cd "$ROOT" && cargo build --release --locked -q -p claudemesh-server)
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/claudemesh-server
fi
rm -rf "$OUT"
mkdir -p "$OUT"

SERVER_PID=
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
  fi
}
trap stop_server EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

for engine in $ENGINES; do
  database_url=
  if [ "$engine" = postgres ]; then
    PGOPTIONS='-c client_min_messages=warning' psql -q "$PG_ADMIN_URL" \
      -c 'DROP DATABASE IF EXISTS claudemesh_bench_codes WITH (FORCE)' -c 'CREATE DATABASE claudemesh_bench_codes'
    database_url="${PG_ADMIN_URL%/*}/claudemesh_bench_codes"
  elif [ "$engine" != sqlite ]; then
    log "unknown engine $engine"; exit 1
  fi
  port=$(free_port)
  base="http://127.0.0.1:$port"
  log "$engine: $ROWS codes on $base, $CONNS connections, limit per address off"
  env -u DATABASE_URL RUST_LOG=warn CLAUDEMESH_LOG_FORMAT=text CLAUDEMESH_BIND="127.0.0.1:$port" \
    CLAUDEMESH_DATA_DIR="$OUT/$engine/data" CLAUDEMESH_DEVICE_CODES_PER_IP_PER_MINUTE=0 \
    ${database_url:+DATABASE_URL="$database_url"} "$BIN" >"$OUT/$engine.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do curl -fs "$base/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fs "$base/healthz" >/dev/null || { cat "$OUT/$engine.log" >&2; exit 1; }
  BASE=$base ROWS=$ROWS SLICE=$SLICE CONNS=$CONNS ENGINE=$engine \
    python3 "$ROOT/bench/device_codes/create.py" >"$OUT/$engine.json"
  # The table really holds them all.
  if [ "$engine" = postgres ]; then
    rows=$(psql -tA "$database_url" -c 'SELECT COUNT(*) FROM cli_device_codes')
  else
    rows=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT COUNT(*) FROM cli_device_codes").fetchone()[0])' \
      "$OUT/$engine/data/claudemesh.db")
  fi
  log "$engine: $rows rows in cli_device_codes"
  echo "$rows" >"$OUT/$engine.rows"
  stop_server
done

OUT=$OUT ENGINES=$ENGINES CONNS=$CONNS python3 - <<'PY'
import json, os
out = os.environ["OUT"]
print(f"\nPOST /api/auth/cli/device-code, {os.environ['CONNS']} connections, limit per address off\n")
print("| engine | rows before | rows after | codes/s | p50 ms | p99 ms |")
print("|---|---:|---:|---:|---:|---:|")
for engine in os.environ["ENGINES"].split():
    result = json.load(open(f"{out}/{engine}.json"))
    for s in result["slices"]:
        print(f"| {engine} | {s['from']:,} | {s['to']:,} | {s['rate']:,.0f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} |")
    rates = [s["rate"] for s in result["slices"]]
    rows = open(f"{out}/{engine}.rows").read().strip()
    print(f"| {engine}, all | 0 | {int(rows):,} | {result['rate']:,.0f} | | |")
    print(f"  {engine}: last slice / first slice = {rates[-1] / rates[0]:.2f}, "
          f"slowest / fastest = {min(rates) / max(rates):.2f}, "
          f"answers other than 200: {result['errors'] or 'none'}")
PY
