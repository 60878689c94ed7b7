#!/usr/bin/env bash
# Benchmarks of the fixture server, printed as a table (results kept in docs/BENCHMARKS.md):
#   - RSS per idle authenticated WebSocket connection at N = 1 000 and 10 000, and RSS once
#     they have all closed
#   - fan-out: broadcasts to 1 000 receivers, deliveries per second and latency
#   - churn: ticket + connect + welcome + close cycles per second
#   - scale-out (issue 8): fan-out throughput and p50/p99 latency for 1 000 clients in one room
#     and for 1 000 users with one notification each, on one instance in memory, one instance
#     on Redis, two instances on Redis behind nginx (deploy/nginx.conf), and, to tell nginx's
#     share, two instances on Redis with the clients split over their own ports
#   - Kafka (issue 9): records per second from Kafka (a tansu broker) to pushes read by the
#     users' clients, and the produce-to-client latency, with one instance in memory, one on
#     Redis and two on Redis in one consumer group (bench/src/bin/resock-kafka-load.rs)
#   - dispatch (issue 11, --dispatch): the SDK in headless Chromium, messages per second through
#     `on("message")` next to raw `WebSocket` + `JSON.parse` and partysocket, from a loopback
#     server, on four workloads, µs per message with the frames handed in-page, and sends per
#     second through `send()` next to raw `ws.send(JSON.stringify(...))`, the time from a
#     cold page's start to the first `open` next to a raw WebSocket (and warm: a second load in
#     the same browser; with preload links for the glue and the wasm; socket.io-client against
#     its own socket.io server), JS heap and wasm memory after N messages next to raw, the
#     reconnect time after a cut (default backoff, a 10 ms initial delay, raw reconnecting at
#     once), and bundle bytes (gzip -9) next to socket.io-client, centrifuge and phoenix bundled
#     by esbuild
#     (bench/browser/; Chromium runs with no DevTools connection: docs/BENCHMARKS.md says why)
# Usage: scripts/bench.sh [--baseline REV] [--rounds N] [--scaleout | --kafka]
#        scripts/bench.sh --dispatch [--baseline REV] [--rounds N (default 5)] [--n MESSAGES (default 100000)]
#   with --dispatch, --baseline REV builds REV's npm package and measures it beside the current
#   one, in the same page ("resock-base").
#   --baseline REV  also builds the fixture at git revision REV (in a temporary worktree) and
#                   runs it interleaved with the current one, round by round, so that both
#                   see the same machine load; the table then has both columns.
#   --scaleout      only the scale-out table (current build; setups interleaved round by round)
#   --kafka         only the Kafka table (likewise)
# Loopback only; every run is bounded (bench/src/bin/resock-load.rs); redis-server and nginx are
# started per run on free 127.0.0.1 ports and stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
baseline=""
rounds=""
messages=100000
scaleout_only=false
kafka_only=false
dispatch=false
while [ $# -gt 0 ]; do
  case "$1" in
    --baseline) baseline=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --n) messages=$2; shift 2 ;;
    --scaleout) scaleout_only=true; shift ;;
    --kafka) kafka_only=true; shift ;;
    --dispatch) dispatch=true; shift ;;
    *) echo "usage: scripts/bench.sh [--baseline REV] [--rounds N] [--scaleout | --kafka] | --dispatch [--rounds N] [--n MESSAGES]" >&2; exit 2 ;;
  esac
done

if [ "$dispatch" = true ]; then
  scripts/setup.sh browser
  echo "[bench] building the package to measure (scripts/build-pkg.sh)"
  scripts/build-pkg.sh
  missing=false
  for dep in ws partysocket socket.io socket.io-client centrifuge phoenix; do
    [ -f "bench/browser/node_modules/$dep/package.json" ] || missing=true
  done
  if [ "$missing" = true ]; then
    echo "[bench] npm ci in bench/browser (ws, partysocket, socket.io, socket.io-client, centrifuge, phoenix)"
    (cd bench/browser && npm ci --no-audit --no-fund --loglevel=error)
  fi
  base_args=()
  if [ -n "$baseline" ]; then
    # REV's package, measured in the same page as "resock-base" (built once per REV).
    rev=$(git rev-parse --short "$baseline")
    base="target/bench-baseline/pkg-$rev"
    if [ ! -f "$base/resock.js" ]; then
      wt="target/bench-baseline/src-$rev"
      echo "[bench] building the package at $rev (in $wt; a release wasm build: a few minutes)"
      rm -rf "$wt"; git worktree prune
      git worktree add --detach "$wt" "$rev" >/dev/null
      ln -s "$PWD/tools/node_modules" "$wt/tools/node_modules"
      ln -s "$PWD/js/node_modules" "$wt/js/node_modules"
      (cd "$wt" && CARGO_TARGET_DIR="$PWD/../target" RESOCK_SIZE_BUDGET=10000000 scripts/build-pkg.sh)
      rm -rf "$base"; cp -r "$wt/pkg" "$base"
      git worktree remove --force "$wt"
    fi
    base_args=(--base "$base")
  fi
  mkdir -p target/bench
  node bench/browser/dispatch.mjs --n "$messages" --rounds "${rounds:-5}" --out target/bench/dispatch.json \
    --svg target/bench/dispatch.svg "${base_args[@]}"
  echo "[bench] every run: target/bench/dispatch.json; chart: target/bench/dispatch.svg"
  exit 0
fi
rounds=${rounds:-3}

scripts/setup.sh native
scripts/setup.sh kafka
echo "[bench] building the release fixture and resock-load"
cargo build --locked --release -p resock-fixture -p resock-bench
bins=("current=target/release/resock-fixture")
if [ "$scaleout_only" = false ] && [ "$kafka_only" = false ] && [ -n "$baseline" ]; then
  rev=$(git rev-parse --short "$baseline")
  wt="target/bench-baseline/src-$rev"
  if [ ! -x "target/bench-baseline/release/resock-fixture-$rev" ]; then
    echo "[bench] building the baseline fixture at $rev (a release build: a few minutes)"
    rm -rf "$wt"; git worktree prune
    git worktree add --detach "$wt" "$rev" >/dev/null
    (cd "$wt" && CARGO_TARGET_DIR="$PWD/../../../target/bench-baseline" cargo build --release -p resock-fixture)
    cp target/bench-baseline/release/resock-fixture "target/bench-baseline/release/resock-fixture-$rev"
    git worktree remove --force "$wt"
  fi
  bins=("baseline-$rev=target/bench-baseline/release/resock-fixture-$rev" "${bins[@]}")
fi

out=$(mktemp)
scale=$(mktemp)
kafka=$(mktemp)
trap 'rm -f "$out" "$scale" "$kafka"' EXIT
if [ "$scaleout_only" = false ] && [ "$kafka_only" = false ]; then
for round in $(seq 1 "$rounds"); do
  for entry in "${bins[@]}"; do
    label=${entry%%=*}; bin=${entry#*=}
    for job in "idle 1000" "idle 10000" "fanout 1000 200" "churn 3"; do
      printf '[bench] round %s/%s %-16s %s\n' "$round" "$rounds" "$label" "$job"
      # shellcheck disable=SC2086
      target/release/resock-load "$bin" $job | sed "s/^RESULT /RESULT label=$label round=$round /" | tee -a "$out"
    done
  done
done

python3 - "$out" <<'PY'
import re, statistics, sys
rows = [dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv) for line in open(sys.argv[1]) if line.startswith("RESULT")]
labels = list(dict.fromkeys(r["label"] for r in rows))
def med(kind, key, cond=lambda r: True):
    out = []
    for label in labels:
        xs = [float(r[key]) for r in rows if r["label"] == label and r.get(kind) is not None and cond(r)]
        out.append(statistics.median(xs) if xs else float("nan"))
    return out
def line(name, vals, fmt):
    print(f"| {name} | " + " | ".join(fmt.format(v) for v in vals) + " |")
print()
print("| median of %d rounds | " % max(int(r["round"]) for r in rows) + " | ".join(labels) + " |")
print("|---|" + "---|" * len(labels))
for n in ("1000", "10000"):
    line(f"bytes per idle connection, N = {n}", med("n", "per_conn_bytes", lambda r, n=n: r.get("n") == n and "rss_open_kib" in r), "{:,.0f}")
    line(f"RSS with N = {n} open, KiB", med("n", "rss_open_kib", lambda r, n=n: r.get("n") == n), "{:,.0f}")
    line(f"RSS after all N = {n} closed, KiB", med("n", "rss_after_close_kib", lambda r, n=n: r.get("n") == n), "{:,.0f}")
line("fan-out to 1 000 receivers, deliveries/s", med("receivers", "deliveries_per_s"), "{:,.0f}")
line("fan-out p99 latency, ms", med("receivers", "p99_ms"), "{:.1f}")
line("churn, ticket+connect+close cycles/s", med("cycles_per_s", "cycles_per_s"), "{:,.0f}")
print()
print("For reference (issue 7): the seeds' FastAPI server under uvicorn, 36 KB per idle connection;")
print("Centrifugo, about 30 KB (published); this fixture before issue 7, 138 KB. Goal: <= 10 KB.")
PY
fi

# Issue 8: the scale-out table. Fixtures get --rate-limit 100000/1s (the room's sender is far
# above the default 10 frames/s). Setups run interleaved, round by round.
if [ "$kafka_only" = false ]; then
for round in $(seq 1 "$rounds"); do
  for workload in room users; do
    for setup in memory redis redis2 redis2direct; do
      printf '[bench] round %s/%s scale %-12s %s\n' "$round" "$rounds" "$setup" "$workload"
      target/release/resock-load target/release/resock-fixture scale "$setup" "$workload" \
        | sed "s/^RESULT /RESULT round=$round /" | tee -a "$scale"
    done
  done
done
python3 - "$scale" <<'PY'
import statistics, sys
rows = [dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv) for line in open(sys.argv[1]) if line.startswith("RESULT")]
setups = ["memory", "redis", "redis2", "redis2direct"]
names = {"memory": "1 instance, memory", "redis": "1 instance, Redis", "redis2": "2 instances, Redis, nginx", "redis2direct": "2 instances, Redis, no nginx"}
rounds = max(int(r["round"]) for r in rows)
def med(w, s, key):
    xs = [float(r[key]) for r in rows if r["workload"] == w and r["setup"] == s]
    return statistics.median(xs) if xs else float("nan")
for w, title in (("room", "1 000 clients in one room (200 messages in a row, each acked before the next; then 5 messages at 1/s = 1 000 deliveries/s)"),
                 ("users", "1 000 users, one notification each (10 rounds as fast as 64 posts in flight allow, then 3 rounds at 1 000 posts/s)")):
    print()
    print(f"{title}; median of {rounds} round(s)")
    print("| | " + " | ".join(names[s] for s in setups) + " |")
    print("|---|" + "---|" * len(setups))
    base = med(w, "memory", "sat_deliveries_per_s")
    def line(name, key, fmt, f=lambda v, s: v):
        print(f"| {name} | " + " | ".join(fmt.format(f(med(w, s, key), s)) for s in setups) + " |")
    line("deliveries/s, saturated", "sat_deliveries_per_s", "{:,.0f}")
    line("× one instance in memory", "sat_deliveries_per_s", "{:.2f}", lambda v, s: v / base)
    line("p50 / p99 ms, saturated", "sat_p50_ms", "{}", lambda v, s: f"{v:.1f} / {med(w, s, 'sat_p99_ms'):.1f}")
    line("p50 / p99 ms at 1 000 deliveries/s", "paced_p50_ms", "{}", lambda v, s: f"{v:.1f} / {med(w, s, 'paced_p99_ms'):.1f}")
    line("CPU s while saturated: fixtures / redis / nginx / load tool", "cpu_fixtures_s", "{}",
         lambda v, s: f"{v:.2f} / {med(w, s, 'cpu_redis_s'):.2f} / {med(w, s, 'cpu_nginx_s'):.2f} / {med(w, s, 'cpu_load_s'):.2f}")
    # What the cores allow. Every process shares the same cores and the run is CPU-bound (more
    # requests in flight do not raise it), so throughput is at most (cores) / (CPU per delivery).
    # Even if the two instances on Redis together cost no more than the in-memory one and Redis
    # cost nothing, nginx's own CPU (and the load tool's, at least what it spends in memory)
    # would remain: the ratio cannot pass (F + L) / (F + N + L).
    F, L, N = med(w, "memory", "cpu_fixtures_s"), med(w, "memory", "cpu_load_s"), med(w, "redis2", "cpu_nginx_s")
    T = lambda s: sum(med(w, s, k) for k in ("cpu_fixtures_s", "cpu_redis_s", "cpu_nginx_s", "cpu_load_s"))
    print(f"CPU-s per 1 000 deliveries, all processes: memory {1000 * T('memory') / (1000 * (200 if w == 'room' else 10)):.3f}, "
          f"2 instances + nginx {1000 * T('redis2') / (1000 * (200 if w == 'room' else 10)):.3f} (ratio of the two: {T('memory') / T('redis2'):.2f}). "
          f"Bound on the nginx setup's ratio with free instances and a free Redis: (F + L) / (F + N + L) = {(F + L) / (F + N + L):.2f} "
          f"(F = {F:.2f}, L = {L:.2f}, N = {N:.2f}).")
print()
print("Goal (issue 8): 2 instances on Redis behind nginx >= 0.8x one in-memory instance; p99 < 100 ms at 1 000 msg/s.")
print("All on one 2-core machine: the instances, redis-server, nginx and the load tool share the cores.")
PY
fi

# Issue 9: the Kafka table, setups interleaved round by round.
if [ "$scaleout_only" = false ]; then
for round in $(seq 1 "$rounds"); do
  for setup in memory redis redis2; do
    printf '[bench] round %s/%s kafka %s\n' "$round" "$rounds" "$setup"
    target/release/resock-kafka-load target/release/resock-fixture "$setup" 20000 \
      | sed "s/^RESULT /RESULT round=$round /" | tee -a "$kafka"
  done
done
python3 - "$kafka" <<'PY'
import statistics, sys
rows = [dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv) for line in open(sys.argv[1]) if line.startswith("RESULT")]
setups = ["memory", "redis", "redis2"]
names = {"memory": "1 instance, memory", "redis": "1 instance, Redis", "redis2": "2 instances, Redis, one group"}
rounds = max(int(r["round"]) for r in rows)
def med(s, key):
    xs = [float(r[key]) for r in rows if r["setup"] == s]
    return statistics.median(xs) if xs else float("nan")
def per_round(s, key):
    return ", ".join(f"{float(r[key]):,.0f}" for r in rows if r["setup"] == s)
print()
print(f"Kafka -> pushes: 20 000 task_update records for 100 users (4 partitions, keyed by user) produced as fast as the producer goes, then 1 000 records/s for 3 s; median of {rounds} round(s)")
print("| | " + " | ".join(names[s] for s in setups) + " |")
print("|---|" + "---|" * len(setups))
def line(name, f):
    print(f"| {name} | " + " | ".join(f(s) for s in setups) + " |")
line("records/s, Kafka to the users' clients", lambda s: f"{med(s, 'sat_records_per_s'):,.0f}")
line("per round", lambda s: per_round(s, "sat_records_per_s"))
line("producer's own rate, records/s", lambda s: f"{med(s, 'produce_records_per_s'):,.0f}")
line("p50 / p99 ms, saturated (queueing included)", lambda s: f"{med(s, 'sat_p50_ms'):.0f} / {med(s, 'sat_p99_ms'):.0f}")
line("p50 / p99 ms at 1 000 records/s", lambda s: f"{med(s, 'paced_p50_ms'):.1f} / {med(s, 'paced_p99_ms'):.1f}")
line("CPU s while saturated: fixtures / redis / tansu / load tool", lambda s: f"{med(s, 'cpu_fixtures_s'):.2f} / {med(s, 'cpu_redis_s'):.2f} / {med(s, 'cpu_broker_s'):.2f} / {med(s, 'cpu_load_s'):.2f}")
PY
fi
