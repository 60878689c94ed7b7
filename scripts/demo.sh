#!/usr/bin/env bash
# Builds everything (the wasm package, the React bindings, the demo app, the fixture server)
# and serves the demo from the fixture on http://127.0.0.1:8080 in dev mode (sign in as any
# user). Ctrl-C stops it. RESOCK_ADDR=127.0.0.1:PORT picks another address.
#
# scripts/demo.sh --redis: the same demo from two fixture instances sharing a redis-server,
# behind nginx (deploy/nginx.conf) on RESOCK_ADDR; instances on the two ports after it, Redis on
# the third. Kill one instance (its PID is printed) and the page reconnects to the other.
#
# scripts/demo.sh --kafka: the demo fed by Kafka too: a tansu broker on the port after
# RESOCK_ADDR's fourth, topic `events`; `target/release/resock-produce` (printed) produces a
# task update that shows up on the page of the user it names.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PWD/tools/node_modules/.bin:$PATH"
ADDR=${RESOCK_ADDR:-127.0.0.1:8080}
# Before minutes of building: is the address free?
if (exec 3<>"/dev/tcp/${ADDR%:*}/${ADDR##*:}") 2>/dev/null; then
  echo "[demo] $ADDR is already in use: stop what listens there, or pick another address: RESOCK_ADDR=127.0.0.1:8090 scripts/demo.sh" >&2
  exit 1
fi

scripts/setup.sh browser
if [ "${1:-}" = "--kafka" ]; then scripts/setup.sh kafka; fi
scripts/build-pkg.sh
echo "[demo] building the demo app (vite)"
(cd js && npm run --silent build:demo)
echo "[demo] building the fixture server (release)"
cargo build --release --locked -p resock-fixture
if [ "${1:-}" = "--kafka" ]; then
  host=${ADDR%:*}; port=${ADDR##*:}
  broker="127.0.0.1:$((port + 4))"
  cargo build --release --locked -p resock-bench --bin resock-produce
  tansu=$(command -v tansu || echo "$HOME/.cargo/bin/tansu")
  "$tansu" broker --listener-url "tcp://$broker" --advertised-listener-url "tcp://$broker" \
    --storage-engine memory://tansu/ >/tmp/resock-demo-tansu.log 2>&1 &
  tansu_pid=$!
  trap 'kill $tansu_pid 2>/dev/null || true' EXIT INT TERM
  record='{"user_id":"alice","type":"task_update","payload":{"action":"created","task":{"id":"k1","title":"Produced to Kafka"}}}'
  for _ in $(seq 1 50); do
    target/release/resock-produce "$broker" +3:events alice "$record" >/dev/null 2>&1 && break
    sleep 0.2
  done
  echo "[demo] Kafka (tansu) on $broker, topic events; sign in as alice and produce more with:"
  echo "  target/release/resock-produce $broker events alice '$record'"
  echo "[demo] open http://$ADDR; Ctrl-C stops"
  target/release/resock-fixture --addr "$ADDR" --dev --static js/demo/dist \
    --kafka-brokers "$broker" --kafka-topics events --kafka-group demo
  exit 0
fi
if [ "${1:-}" != "--redis" ]; then
  echo "[demo] open http://$ADDR in a browser (two windows, two users, to chat); Ctrl-C stops"
  exec target/release/resock-fixture --addr "$ADDR" --dev --static js/demo/dist
fi

host=${ADDR%:*}; port=${ADDR##*:}
dir=$(mktemp -d /tmp/resock-demo.XXXXXX)
pids=()
stop() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap stop EXIT INT TERM
redis-server --port $((port + 3)) --bind 127.0.0.1 --save '' --appendonly no --daemonize no >"$dir/redis.log" 2>&1 &
pids+=($!)
for i in 1 2; do
  RESOCK_LOG=${RESOCK_LOG:-quiet} target/release/resock-fixture --addr "$host:$((port + i))" --dev \
    --static js/demo/dist --redis "redis://127.0.0.1:$((port + 3))" &
  pids+=($!)
  echo "[demo] instance $i: http://$host:$((port + i)) (pid $!)"
done
sleep 1
upstreams="server $host:$((port + 1)) max_fails=1 fail_timeout=2s; server $host:$((port + 2)) max_fails=1 fail_timeout=2s;"
sed -e "s#@DIR@#$dir#g" -e "s#@PORT@#$port#" -e "s#@UPSTREAMS@#$upstreams#" -e "s#127.0.0.1:$port#$host:$port#" \
  deploy/nginx.conf >"$dir/nginx.conf"
nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' &
nginx_pid=$!
pids+=("$nginx_pid")
echo "[demo] nginx in front of both: open http://$ADDR (Redis on 127.0.0.1:$((port + 3))); Ctrl-C stops all"
wait "$nginx_pid"
