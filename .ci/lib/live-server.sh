# shellcheck shell=bash disable=SC2034  # the variables it sets are for the sourcing script
# Sourced by the scripts that drive a live server (.ci/schemathesis, .ci/postman, .ci/examples).
#   start_server [SERVE FLAGS...]   starts $BIN on a free loopback port, with a fresh SQLite
#                                   database in a temp dir ($WORK); sets BASE, the server's URL
#   create_key NAME [FLAGS...]      creates an API user with `keyward api create` beside the
#                                   running server (which picks it up on its next request) and
#                                   prints its key; LOOPBACK holds the --ip flags for this machine
#   check_server                    fails if the server panicked or died meanwhile
# The server is stopped and $WORK removed when the sourcing script exits; if it exits with an
# error, the server's log is shown first.
# KEYWARD_BIN picks the binary (default: target/debug/keyward, the one `cargo test` builds;
# built when missing).
BIN="${KEYWARD_BIN:-target/debug/keyward}"
[ -x "$BIN" ] || cargo build -q --bin keyward

WORK="$(mktemp -d)"
DB_URL="sqlite://$WORK/keyward.db"
LOOPBACK=(--ip 127.0.0.1 --ip ::1)
SERVER=""

stop_server() {
  local status=$?
  if [ -n "$SERVER" ]; then
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -s "$WORK/server.log" ]; then
    echo "-- the server's log (last 40 lines):" >&2
    tail -n 40 "$WORK/server.log" >&2
  fi
  rm -rf "$WORK"
  return "$status"
}
trap stop_server EXIT

# One field of the first JSON value on stdin.
json_field() {
  python3 -c '
import json, sys
print(json.JSONDecoder().raw_decode(sys.stdin.read().lstrip())[0][sys.argv[1]])' "$1"
}

start_server() {
  "$BIN" serve --json --listen 127.0.0.1:0 --database-url "$DB_URL" "$@" \
    >"$WORK/started" 2>"$WORK/server.log" &
  SERVER=$!
  for _ in $(seq 300); do
    [ -s "$WORK/started" ] && break
    kill -0 "$SERVER" 2>/dev/null || { echo "the server did not start" >&2; exit 1; }
    sleep 0.1
  done
  [ -s "$WORK/started" ] || { echo "the server did not start within 30 s" >&2; exit 1; }
  BASE="$(json_field listening <"$WORK/started")"
}

create_key() {
  "$BIN" api create --json --database-url "$DB_URL" --username "$@" | json_field key
}

check_server() {
  if grep -q "panicked" "$WORK/server.log"; then
    echo "the server panicked during the run:" >&2
    grep -A5 "panicked" "$WORK/server.log" >&2
    exit 1
  fi
  kill -0 "$SERVER" 2>/dev/null || { echo "the server died during the run" >&2; exit 1; }
}
