#!/usr/bin/env bash
# A quick look at the cost of Keyward's auth pipeline: wrk against a bare axum hello server
# (the floor) and against Keyward's /api/v1/me (key auth + IP + rate limit + a durable history
# row per call), in one run on loopback. The full benchmark is bench/run (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
for port in 18099 18080; do
  # Something already answering there would be measured instead of this run's servers.
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is taken: stop what listens there" >&2
    exit 1
  fi
done
cargo build --release -q -p keyward -p floor
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
export KEYWARD_DATABASE_URL="sqlite://$work/bench.db" KEYWARD_LOG=warn

./target/release/floor 127.0.0.1:18099 >/dev/null &
./target/release/keyward serve --listen 127.0.0.1:18080 >/dev/null &
for url in http://127.0.0.1:18099/hello http://127.0.0.1:18080/healthz; do
  for _ in $(seq 100); do curl -fs "$url" >/dev/null 2>&1 && break; sleep 0.1; done
done
key=$(./target/release/keyward api create --json --username bench --ip 127.0.0.1 --rate-limit 1000000 \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')

run() { wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency "$@" | awk '/Requests\/sec/ {rps=$2} /^ +99%/ {p99=$2} /^ +50%/ {p50=$2} END {printf "%10s req/s  p50 %-8s p99 %s\n", rps, p50, p99}'; }
echo "floor  GET /hello                 $(run http://127.0.0.1:18099/hello)"
echo "keyward GET /api/v1/me (Bearer)   $(run -H "Authorization: Bearer $key" http://127.0.0.1:18080/api/v1/me)"
answered=$(./target/release/keyward api history bench --json --limit 10000 --outcome ok | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
echo "history: the newest $answered ok rows are there (limit 10000)"
