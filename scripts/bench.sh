#!/usr/bin/env bash
# Benchmarks of the fixture server, printed as a table (results kept in docs/BENCHMARKS.md):
#   - RSS per idle authenticated WebSocket connection at N = 1 000 and 10 000, and RSS once
#     they have all closed
#   - fan-out: broadcasts to 1 000 receivers, deliveries per second and latency
#   - churn: ticket + connect + welcome + close cycles per second
# Usage: scripts/bench.sh [--baseline REV] [--rounds N]
#   --baseline REV  also builds the fixture at git revision REV (in a temporary worktree) and
#                   runs it interleaved with the current one, round by round, so that both
#                   see the same machine load; the table then has both columns.
# Loopback only; every run is bounded (bench/src/bin/resock-load.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
baseline=""
rounds=3
while [ $# -gt 0 ]; do
  case "$1" in
    --baseline) baseline=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "usage: scripts/bench.sh [--baseline REV] [--rounds N]" >&2; exit 2 ;;
  esac
done

scripts/setup.sh native
echo "[bench] building the release fixture and resock-load"
cargo build --locked --release -p resock-fixture -p resock-bench
bins=("current=target/release/resock-fixture")
if [ -n "$baseline" ]; then
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
rm -f "$out"
