#!/usr/bin/env bash
# Instances killed under load (issue 19, item 5).
#
# INSTANCES release servers on one fresh PostgreSQL database behind a
# round-robin TCP forwarder; PEERS sessions of one mesh send each other
# direct messages, RATE a second each, for DURATION seconds; every KILL_EVERY seconds
# one instance, each in turn, is SIGKILLed and started again at once. The
# sessions reconnect as `claudemesh launch`'s MCP link does (full-jitter
# backoff from 0.5 s, the same session key, a message without `sent` sent
# again under its id). All of it is `broker-load kill` (bench/broker/src/kill.rs
# over the testkit's killed-instances run, the one the server's test
# `api::killed` runs short). Then the database is asked how many messages it
# stored, which must be the number acknowledged: a message sent again is
# stored once.
#
# Prints messages acknowledged, delivered, lost (must be 0), shown twice
# (must be 0), reconnect times (from the drop to the broker's welcome)
# p50/p99/max, and each kill with the sessions it dropped.
#
# Knobs: INSTANCES=3 PEERS=100 RATE=10 DURATION=120 KILL_EVERY=15
#        SERVER_ARGS= (more arguments for every instance, e.g. "--bus nats://…")
#        PROFILE=release (profiling: the same code with symbols, for perf)
#        PG_ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
INSTANCES=${INSTANCES:-3}
PEERS=${PEERS:-100}
RATE=${RATE:-10}
DURATION=${DURATION:-120}
KILL_EVERY=${KILL_EVERY:-15}
SERVER_ARGS=${SERVER_ARGS:-}
PROFILE=${PROFILE:-release}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
OUT=$ROOT/bench/.run/kill
DB=claudemesh_kill_bench
log() { echo "[kill-bench] $*" >&2; }

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
log "building the server and the load generator ($PROFILE)"
(cd "$ROOT" && cargo build --profile "$PROFILE" --locked -q -p claudemesh-server -p claudemesh-bench-broker)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/claudemesh-server
LOAD=${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/broker-load
rm -rf "$OUT"
mkdir -p "$OUT"
psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
DATABASE_URL="${PG_ADMIN_URL%/*}/$DB"

log "$INSTANCES instances, $PEERS peers at $RATE/s each for ${DURATION} s, one SIGKILLed every $KILL_EVERY s"
# shellcheck disable=SC2086 # SERVER_ARGS is a list of arguments
"$LOAD" kill "$BIN" "$DATABASE_URL" "$OUT" "$INSTANCES" "$PEERS" "$RATE" "$DURATION" "$KILL_EVERY" \
  $SERVER_ARGS >"$OUT/result.json"
log "$(cat "$OUT/result.json")"
MESH=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mesh_id"])' "$OUT/result.json")
STORED=$(psql -qtA "$DATABASE_URL" -c "SELECT COUNT(*) FROM broker_messages WHERE mesh_id = '$MESH'")

OUT=$OUT STORED=$STORED python3 - <<'PY'
import json, os
r = json.load(open(f"{os.environ['OUT']}/result.json"))
stored = int(os.environ["STORED"])
print()
print(f"{r['instances']} instances, {r['peers']} peers at {r['rate_per_peer']:g}/s each for "
      f"{r['seconds']:g} s, one instance SIGKILLed every {r['kill_every_s']:g} s")
print()
print("| acknowledged | delivered | lost | shown twice | stored | sent again (same id) | "
      "copies hidden by dedupe | reconnects | p50 ms | p99 ms | max ms | still out |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
print(f"| {r['acked']:,} | {r['delivered']:,} | {r['lost']} | {r['shown_twice']} | {stored:,} | "
      f"{r['resent']} | {r['redelivered_hidden']:,} | {r['reconnects']} | "
      f"{r['reconnect_p50_ms']:.0f} | {r['reconnect_p99_ms']:.0f} | {r['reconnect_max_ms']:.0f} | "
      f"{r['still_out']} |")
print()
print("| kill | at s | instance | down (until ready) ms | sessions dropped |")
print("|---:|---:|---:|---:|---:|")
for n, k in enumerate(r["kills"], 1):
    print(f"| {n} | {k['at_s']:.1f} | {k['instance']} | {k['down_ms']:.0f} | {k['dropped']} |")
if r["failures"] or r["rejected"]:
    print(f"\nfailures: {r['failures']}, rejected: {r['rejected']}")
if stored != r["acked"]:
    print(f"\nSTORED {stored} != ACKNOWLEDGED {r['acked']}")
PY
