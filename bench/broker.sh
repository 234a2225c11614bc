#!/usr/bin/env bash
# The broker under load, on SQLite and PostgreSQL.
#
# For each engine it starts the release server on a free loopback port over a
# fresh database, with the send-rate and mesh-size limits lifted through their
# settings, then runs bench/broker (`broker-load`):
#   load: PEERS sessions in one mesh, each sending MESSAGES direct messages to
#         random others (closed loop: the next after the broker's `sent`), as
#         fast as the broker takes them (saturation), then again paced at RATE
#         messages a second per peer (latency at a given load); delivered/s,
#         p50/p99 send-to-decrypted latency, lost, duplicated, server RSS;
#   idle: IDLE sessions spread over meshes of PER_MESH; server RSS. With
#         AT_ONCE=1 they all connect in the same moment (failures counted).
#         Past 25,000 the server listens on every address (0.0.0.0) for the
#         run and the generator spreads its sessions over 127.0.0.x: loopback
#         gives about 28,000 source ports per destination address.
# The figures of the TypeScript original's own load test are printed beside
# ours for reference (published in its docs/LOAD-TEST-v0.1.0.md; not run here).
#
# NATS, in the same run (NATS=1, the default): the same generator sends the
# same shape of load (PEERS connections, MESSAGES each to random others, at
# RATE a second, messages of an envelope's size) through the NATS server at
# NATS_URL, core (nothing stored) and JetStream (file storage, each publish
# acknowledged before the next, as our senders wait for `sent`), and their
# rows are printed beside ours. If nothing answers at NATS_URL and
# `nats-server` is installed, one is started with JetStream for the run.
#
# With GRANTS=1 it measures instead what per-peer grants cost a send: only
# the saturation load, ROUNDS times each without and with grants, alternately
# (off, on, then on, off, and so on: a slow spell of the machine does not
# always fall on the same side) on a fresh server each, where "with" means every peer
# first revokes `group` from the next (broker-load's BROKER_LOAD_GRANTS=1),
# and prints the two side by side (each run, the median, the difference).
#
# With STALLED=1 it measures instead what one slow consumer costs the others:
# the paced load, ROUNDS times each with one more member that gets every 10th
# message of every peer (15,000 characters each) and either keeps reading
# ("running") or is stopped with SIGSTOP once connected ("stopped"), alternately
# on a fresh server each; the others' p50/p99 side by side, the server's peak
# RSS, and how many of its messages the stopped consumer got once continued.
#
# With FANOUT=1 it measures instead what the bus between instances carries
# (PostgreSQL): first the raw ceiling of NOTIFY on this database server
# (pgbench, CLIENTS connections each committing one row, with and without a
# NOTIFY in the transaction, a session listening), then the saturation load
# with the peers spread round-robin over INSTANCES instances on one database,
# with --bus postgres (NOTIFY) and --bus nats:// (NATS_URL), beside the same
# load on one instance; ROUNDS times each, the order rotating every round.
#
# PARTS picks what the default run does ("load paced idle", each engine), and
# BASELINE_BIN=path/to/another/claudemesh-server runs the idle part on that
# binary too, right after ours on the same engine (a before/after in one
# sitting).
#
# Knobs: PEERS=100 MESSAGES=1000 RATE=50 IDLE=10000 PER_MESH=20 ENGINES="sqlite postgres"
#        PARTS="load paced idle" BASELINE_BIN= GRANTS=0 STALLED=0 ROUNDS=3
#        FANOUT=0 INSTANCES=3 CLIENTS=16 AT_ONCE=0
#        NATS=1 NATS_URL=nats://127.0.0.1:4222 PROFILE=release (profiling: with symbols, for perf)
#        BROKER_LOAD_WARM=1 (0: no warm-up; see bench/broker/src/main.rs)
#        PG_ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS=${PEERS:-100}
MESSAGES=${MESSAGES:-1000}
RATE=${RATE:-50}
IDLE=${IDLE:-10000}
PER_MESH=${PER_MESH:-20}
ENGINES=${ENGINES:-"sqlite postgres"}
GRANTS=${GRANTS:-0}
STALLED=${STALLED:-0}
FANOUT=${FANOUT:-0}
AT_ONCE=${AT_ONCE:-0}
BIND_HOST=127.0.0.1
INSTANCES=${INSTANCES:-3}
CLIENTS=${CLIENTS:-16}
PARTS=${PARTS:-"load paced idle"}
PROFILE=${PROFILE:-release}
BASELINE_BIN=${BASELINE_BIN:-}
ROUNDS=${ROUNDS:-3}
NATS=${NATS:-1}
NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
OUT=$ROOT/bench/.run/broker
log() { echo "[broker-bench] $*" >&2; }

# 10,000 sessions are 10,000 sockets on each side.
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
# Past the limit the server cannot accept and the handshakes wait forever:
# say so now instead.
case " $PARTS " in *" idle "*)
  if [ "$GRANTS$STALLED$FANOUT" = 000 ] && [ $((IDLE + 200)) -gt "$(ulimit -n)" ]; then
    log "IDLE=$IDLE needs $((IDLE + 200)) open files a process; this machine allows $(ulimit -n) (ulimit -Hn, which only root outside a container may raise)"
    exit 1
  fi ;;
esac
log "building the release server and the load generator"
(cd "$ROOT" && cargo build --profile "$PROFILE" --locked -q -p claudemesh-server -p claudemesh-bench-broker)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/claudemesh-server
LOAD=${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/broker-load
rm -rf "$OUT"
mkdir -p "$OUT"

SERVER_PID=""
OTHER_PIDS=""
stop_server() {
  local pid
  for pid in $SERVER_PID $OTHER_PIDS; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  SERVER_PID=""
  OTHER_PIDS=""
}
trap stop_server EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# start_server ENGINE NAME [INSTANCES [BUS]]: a fresh database and the
# server on it at $BASE ($SERVER_PID); with INSTANCES > 1 (PostgreSQL) the
# others on the same database, at the comma-separated $URLS ($OTHER_PIDS),
# all with --bus BUS when given.
start_server() {
  local engine=$1 name=$2 count=${3:-1} bus=${4:-} port dir i url
  if [ "$engine" = postgres ]; then
    psql -q "$PG_ADMIN_URL" -c 'DROP DATABASE IF EXISTS claudemesh_broker_bench WITH (FORCE)' \
      -c 'CREATE DATABASE claudemesh_broker_bench'
    export DATABASE_URL="${PG_ADMIN_URL%/*}/claudemesh_broker_bench"
  else
    unset DATABASE_URL
  fi
  URLS=""
  for i in $(seq "$count"); do
    port=$(free_port)
    dir=$OUT/$engine-$name-$i
    mkdir -p "$dir"
    url=http://127.0.0.1:$port
    # (env execs the server: $! is the server's pid.)
    env CLAUDEMESH_BIND=$BIND_HOST:$port CLAUDEMESH_PUBLIC_URL=$url CLAUDEMESH_DATA_DIR=$dir/data CLAUDEMESH_LOG_FORMAT=text \
      RUST_LOG=warn CLAUDEMESH_BROKER_SENDS_PER_MINUTE=0 CLAUDEMESH_BROKER_MAX_PEERS=100000 \
      CLAUDEMESH_SIGN_UPS_PER_IP_PER_MINUTE=0 ${bus:+CLAUDEMESH_BUS=$bus} \
      CLAUDEMESH_BROKER_MAX_CONNECTIONS_PER_MEMBER=100000 "${SERVER_BIN:-$BIN}" >"$dir/server.log" 2>&1 &
    if [ "$i" = 1 ]; then
      SERVER_PID=$!
      BASE=$url
    else
      OTHER_PIDS="$OTHER_PIDS $!"
      URLS=${URLS:+$URLS,}$url
    fi
    for _ in $(seq 100); do curl -fs "$url/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
    curl -fs "$url/healthz" >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  done
}

# alternate SETTING PREFIX "A B" LOAD-ARGS...: for each engine, ROUNDS rounds
# of `broker-load load` with SETTING=A and SETTING=B in the environment, on a
# fresh server each, in the order A B, then B A, and so on (a slow spell of
# the machine does not always fall on the same side); each run's JSON in
# $OUT/ENGINE-PREFIXVALUE-ROUND.json.
alternate() {
  local setting=$1 prefix=$2 values=$3 engine round order value file
  shift 3
  for engine in $ENGINES; do
    for round in $(seq "$ROUNDS"); do
      order=$values
      [ $((round % 2)) = 0 ] && order=$(echo "$values" | awk '{ print $2, $1 }')
      for value in $order; do
        file=$OUT/$engine-$prefix$value-$round.json
        log "$engine round $round, $setting=$value: broker-load load $*"
        start_server "$engine" "$prefix$value-$round"
        env "$setting=$value" "$LOAD" load "$BASE" "$SERVER_PID" "$@" >"$file"
        log "$(cat "$file")"
        stop_server
      done
    done
  done
}

if [ "$GRANTS" = 1 ]; then
  alternate BROKER_LOAD_GRANTS grants "0 1" "$PEERS" "$MESSAGES"
  OUT=$OUT ENGINES=$ENGINES ROUNDS=$ROUNDS python3 - <<'PY'
import json, os, statistics
out, rounds = os.environ["OUT"], int(os.environ["ROUNDS"])
print()
print("| broker | grants | delivered/s, each run | median | p50 ms (median) | p99 ms (median) | lost |")
print("|---|---|---|---:|---:|---:|---:|")
for engine in os.environ["ENGINES"].split():
    medians = {}
    for grants, label in ((0, "all default"), (1, "each peer revokes group from one")):
        runs = [json.load(open(f"{out}/{engine}-grants{grants}-{r}.json")) for r in range(1, rounds + 1)]
        rates = [r["delivered_per_second"] for r in runs]
        medians[grants] = statistics.median(rates)
        print(f"| claudemesh ({engine}), {runs[0]['peers']} x {runs[0]['messages_per_peer']} | {label} | "
              + ", ".join(f"{x:,.0f}" for x in rates)
              + f" | {medians[grants]:,.0f} | {statistics.median(r['p50_ms'] for r in runs):.2f} | "
              f"{statistics.median(r['p99_ms'] for r in runs):.2f} | {sum(r['lost'] for r in runs)} |")
    print(f"| claudemesh ({engine}) | with grants vs without | | {100 * (medians[1] / medians[0] - 1):+.1f}% | | | |")
PY
  exit 0
fi

if [ "$STALLED" = 1 ]; then
  alternate BROKER_LOAD_EXTRA "" "running stopped" "$PEERS" "$MESSAGES" "$RATE"
  OUT=$OUT ENGINES=$ENGINES ROUNDS=$ROUNDS python3 - <<'PY'
import json, os, statistics
out, rounds = os.environ["OUT"], int(os.environ["ROUNDS"])
print()
print("| broker | extra consumer | others' p50 ms, each run | others' p99 ms, each run | p99 median | lost (others) | extra got / acked | server peak RSS MiB |")
print("|---|---|---|---|---:|---:|---|---:|")
for engine in os.environ["ENGINES"].split():
    p99 = {}
    for extra in ("running", "stopped"):
        runs = [json.load(open(f"{out}/{engine}-{extra}-{r}.json")) for r in range(1, rounds + 1)]
        p99[extra] = statistics.median(r["p99_ms"] for r in runs)
        got = ", ".join(f"{r['extra']['received']:,}/{r['extra_acked']:,}" for r in runs)
        shape = f"{runs[0]['peers']} x {runs[0]['messages_per_peer']} at {runs[0]['rate_per_peer']:g}/s"
        print(f"| claudemesh ({engine}), {shape} | {extra} | "
              + ", ".join(f"{r['p50_ms']:.2f}" for r in runs) + " | "
              + ", ".join(f"{r['p99_ms']:.2f}" for r in runs)
              + f" | {p99[extra]:.2f} | {sum(r['lost'] for r in runs)} | {got} | "
              + f"{max(r['server_peak_rss_mib'] for r in runs):.0f} |")
    print(f"| claudemesh ({engine}) | stopped vs running | | | {p99['stopped'] / p99['running']:.2f}x | | | |")
PY
  exit 0
fi

if [ "$FANOUT" = 1 ]; then
  # The raw ceiling: one row per transaction, with and without a NOTIFY of
  # a bus event's size, while a session listens (as every instance does).
  export PGDB="${PG_ADMIN_URL%/*}/claudemesh_broker_bench"
  psql -q "$PG_ADMIN_URL" -c 'DROP DATABASE IF EXISTS claudemesh_broker_bench WITH (FORCE)' \
    -c 'CREATE DATABASE claudemesh_broker_bench'
  psql -q "$PGDB" -c 'CREATE TABLE rows (id bigserial PRIMARY KEY, body text)'
  echo "INSERT INTO rows (body) VALUES (repeat('x', 200));" >"$OUT/plain.sql"
  printf '%s\n' 'BEGIN;' "INSERT INTO rows (body) VALUES (repeat('x', 200));" \
    "SELECT pg_notify('claudemesh_bench', repeat('x', 200));" 'COMMIT;' >"$OUT/notify.sql"
  psql -q "$PGDB" -c 'LISTEN claudemesh_bench' -c 'SELECT pg_sleep(600)' >/dev/null 2>&1 &
  LISTENER=$!
  for script in plain notify plain notify; do
    log "pgbench: $CLIENTS clients, $script, 10 s"
    pgbench -n -c "$CLIENTS" -j 2 -T 10 -f "$OUT/$script.sql" "$PGDB" 2>/dev/null \
      | awk '/^tps/ { print $3 }' >>"$OUT/pgbench-$script.txt"
  done
  kill "$LISTENER" 2>/dev/null || true
  wait "$LISTENER" 2>/dev/null || true
  for round in $(seq "$ROUNDS"); do
    case $((round % 3)) in
      1) order="one notify nats" ;;
      2) order="notify nats one" ;;
      0) order="nats one notify" ;;
    esac
    for setup in $order; do
      case $setup in
        one) count=1 bus="" ;;
        notify) count=$INSTANCES bus=postgres ;;
        nats) count=$INSTANCES bus="$NATS_URL?subject=claudemesh.bench.r$round" ;;
      esac
      log "round $round: $setup ($count instance(s)), $PEERS peers x $MESSAGES messages"
      start_server postgres "fanout-$setup-$round" "$count" "$bus"
      BROKER_LOAD_URLS=$URLS "$LOAD" load "$BASE" "$SERVER_PID" "$PEERS" "$MESSAGES" \
        >"$OUT/fanout-$setup-$round.json"
      log "$(cat "$OUT/fanout-$setup-$round.json")"
      stop_server
    done
  done
  OUT=$OUT ROUNDS=$ROUNDS INSTANCES=$INSTANCES CLIENTS=$CLIENTS python3 - <<'PY'
import json, os, statistics
out, rounds, n = os.environ["OUT"], int(os.environ["ROUNDS"]), os.environ["INSTANCES"]
tps = {s: [float(x) for x in open(f"{out}/pgbench-{s}.txt").read().split()] for s in ("plain", "notify")}
print()
print(f"| PostgreSQL, {os.environ['CLIENTS']} clients, one row per transaction | commits/s, each run | median |")
print("|---|---|---:|")
for script, label in (("plain", "without NOTIFY"), ("notify", "with a NOTIFY (a session listening)")):
    print(f"| {label} | " + ", ".join(f"{x:,.0f}" for x in tps[script]) + f" | {statistics.median(tps[script]):,.0f} |")
print()
print("| broker (PostgreSQL) | delivered/s, each run | median | p50 ms (median) | p99 ms (median) | lost | dup |")
print("|---|---|---:|---:|---:|---:|---:|")
for setup, label in (("one", "1 instance"), ("notify", f"{n} instances, --bus postgres (NOTIFY)"),
                     ("nats", f"{n} instances, --bus nats://")):
    runs = [json.load(open(f"{out}/fanout-{setup}-{r}.json")) for r in range(1, rounds + 1)]
    rates = [r["delivered_per_second"] for r in runs]
    print(f"| {label}, {runs[0]['peers']} x {runs[0]['messages_per_peer']} | "
          + ", ".join(f"{x:,.0f}" for x in rates) + f" | {statistics.median(rates):,.0f} | "
          + f"{statistics.median(r['p50_ms'] for r in runs):.2f} | {statistics.median(r['p99_ms'] for r in runs):.2f} | "
          + f"{sum(r['lost'] for r in runs)} | {sum(r['duplicates'] for r in runs)} |")
PY
  exit 0
fi

part() { case " $PARTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
for engine in $ENGINES; do
  if part load; then
    log "$engine: $PEERS peers x $MESSAGES messages"
    start_server "$engine" load
    "$LOAD" load "$BASE" "$SERVER_PID" "$PEERS" "$MESSAGES" >"$OUT/$engine-load.json"
    log "$engine load: $(cat "$OUT/$engine-load.json")"
    stop_server
  fi
  if part paced; then
    log "$engine: $PEERS peers x $MESSAGES messages at $RATE a second each"
    start_server "$engine" paced
    "$LOAD" load "$BASE" "$SERVER_PID" "$PEERS" "$MESSAGES" "$RATE" >"$OUT/$engine-paced.json"
    log "$engine paced: $(cat "$OUT/$engine-paced.json")"
    stop_server
  fi
  if part idle; then
    for which in current ${BASELINE_BIN:+baseline}; do
      SERVER_BIN=$BIN
      [ "$which" = baseline ] && SERVER_BIN=$BASELINE_BIN
      spread=$(( (IDLE + 24999) / 25000 ))
      [ "$spread" -gt 1 ] && BIND_HOST=0.0.0.0 && log "listening on 0.0.0.0 for $IDLE sessions over 127.0.0.1-$spread"
      log "$engine: $IDLE idle sessions ($which server)"
      start_server "$engine" "idle-$which"
      BIND_HOST=127.0.0.1
      BROKER_LOAD_SPREAD=$spread BROKER_LOAD_AT_ONCE=$AT_ONCE \
        "$LOAD" idle "$BASE" "$SERVER_PID" "$IDLE" "$PER_MESH" >"$OUT/$engine-idle-$which.json"
      log "$engine idle ($which): $(cat "$OUT/$engine-idle-$which.json")"
      stop_server
    done
    SERVER_BIN=$BIN
  fi
done

# NATS beside us: core and JetStream, paced like ours, and JetStream as fast
# as its acknowledgements allow.
NATS_PID=""
nats_up() { local hostport=${NATS_URL#nats://}; (echo >"/dev/tcp/${hostport%:*}/${hostport##*:}") 2>/dev/null; }
if [ "$NATS" = 1 ] && ! nats_up && command -v nats-server >/dev/null; then
  log "starting nats-server with JetStream for the run"
  nats-server -js -sd "$OUT/nats" -a 127.0.0.1 -p "${NATS_URL##*:}" >"$OUT/nats-server.log" 2>&1 &
  NATS_PID=$!
  for _ in $(seq 50); do nats_up && break; sleep 0.1; done
fi
if [ "$NATS" = 1 ] && nats_up; then
  for mode in core jetstream; do
    log "NATS $mode: $PEERS connections x $MESSAGES messages at $RATE a second each"
    "$LOAD" nats "$NATS_URL" "$PEERS" "$MESSAGES" "$RATE" "$mode" >"$OUT/nats-$mode-paced.json"
  done
  log "NATS jetstream: $PEERS connections x $MESSAGES messages, as fast as acknowledged"
  "$LOAD" nats "$NATS_URL" "$PEERS" "$MESSAGES" 0 jetstream >"$OUT/nats-jetstream-load.json"
elif [ "$NATS" = 1 ]; then
  log "no NATS at $NATS_URL (and no nats-server to start): its rows are left out"
fi
[ -n "$NATS_PID" ] && kill "$NATS_PID" 2>/dev/null

OUT=$OUT ENGINES=$ENGINES BASELINE_BIN=$BASELINE_BIN python3 - <<'PY'
import json, os
out = os.environ["OUT"]
def load(name):
    try:
        return json.load(open(f"{out}/{name}.json"))
    except OSError:
        return None
print()
print("| broker | load | delivered/s | p50 ms | p99 ms | lost | dup | RSS after load MiB |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for engine in os.environ["ENGINES"].split():
    for kind, label in (("load", "as fast as possible"), ("paced", "paced")):
        r = load(f"{engine}-{kind}")
        if r is None:
            continue
        shape = f"{r['peers']} x {r['messages_per_peer']}, {label}"
        if r["rate_per_peer"]:
            shape += f" ({r['rate_per_peer']:g}/s per peer)"
        print(f"| claudemesh ({engine}) | {shape} | {r['delivered_per_second']:,.0f} | "
              f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['lost']} | {r['duplicates']} | "
              f"{r['server_rss_mib']:.1f} |")
for name, label in (("nats-core-paced", "NATS core (nothing stored)"),
                    ("nats-jetstream-paced", "NATS JetStream (file, publish acked)"),
                    ("nats-jetstream-load", "NATS JetStream (file, publish acked)")):
    r = load(name)
    if r is None:
        continue
    kind = "paced" if r["rate_per_peer"] else "as fast as acknowledged"
    shape = f"{r['peers']} x {r['messages_per_peer']}, {kind}"
    if r["rate_per_peer"]:
        shape += f" ({r['rate_per_peer']:g}/s per peer)"
    ack = f"; publish acked p50 {r['ack_p50_ms']:.2f} / p99 {r['ack_p99_ms']:.2f} ms" if "jetstream" in name else ""
    print(f"| {label} | {shape}{ack} | {r['delivered_per_second']:,.0f} | {r['p50_ms']:.2f} | "
          f"{r['p99_ms']:.2f} | {r['lost']} | n/a | n/a |")
print("| original (TypeScript), its published load test, not run here | 100 x 100 | n/a | n/a | 4,700 | n/a | n/a | n/a |")
print("| original (TypeScript), its published load test, not run here | 100 x 1,000 | n/a | n/a | 23,000 | 11% timed out | n/a | n/a |")
print()
print("| broker | idle sessions | failed | meshes | RSS MiB | KiB/session | connect s |")
print("|---|---:|---:|---:|---:|---:|---:|")
for engine in os.environ["ENGINES"].split():
    for which in ("current", "baseline"):
        i = load(f"{engine}-idle-{which}")
        if i is None:
            continue
        name = f"claudemesh ({engine})"
        if which == "baseline":
            name += f", {os.environ['BASELINE_BIN']}"
        if i.get("at_once"):
            name += ", all at once"
        print(f"| {name} | {i['sessions']:,} | {i.get('failed', 0):,} | {i['meshes']} | {i['server_rss_mib']:.1f} | "
              f"{i['kib_per_session']:.1f} | {i['connect_seconds']:.1f} |")
PY
