#!/usr/bin/env bash
# A warehouse integration for Keyward, in a shell script with curl and jq.
#
# It reads the store's catalog a page at a time, pushes the warehouse's stock counts in bulk,
# places an order that came in by phone and reads it back. POSTs carry an Idempotency-Key, so
# a call that timed out is sent again without doing anything twice; a 429 waits as long as
# Retry-After says. A refusal is reported with its error code and request id (the store admin
# finds the call, and why it was refused, in the API history by that id).
#
#   KEYWARD_URL=http://127.0.0.1:8080 KEYWARD_USERNAME=erp-sync KEYWARD_KEY=kw_... \
#       ./curl.sh [warehouse-counts.csv]
#
# The API user needs the scopes products:write, orders:write and customers:write. The key comes
# from the environment and reaches curl through a private file, never its command line, where
# `ps` would show it.
set -euo pipefail

BASE_URL="${KEYWARD_URL:-http://127.0.0.1:8080}"
BASE_URL="${BASE_URL%/}"
COUNTS="${1:-$(dirname "$0")/warehouse-counts.csv}"
if [ -z "${KEYWARD_USERNAME:-}" ] || [ -z "${KEYWARD_KEY:-}" ]; then
  echo "Set KEYWARD_USERNAME and KEYWARD_KEY (and KEYWARD_URL, default http://127.0.0.1:8080)." >&2
  exit 1
fi

# The order that came in by phone.
CUSTOMER='{"name": "Mary Jackson", "email": "mary.jackson@example.com"}'
ORDER_LINES='[{"sku": "LAMP-DESK", "quantity": 1}, {"sku": "CANDLE-FIG", "quantity": 2}]'

PAGE_SIZE=25
MAX_ITEMS=1000 # the most SKUs one bulk stock update takes
ATTEMPTS=5

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
# HTTP Basic, the username and the key, in a curl config file only this user can read
# (printf is a shell builtin: the key appears in no process's arguments).
(umask 077 && printf 'user = "%s:%s"\n' "$KEYWARD_USERNAME" "$KEYWARD_KEY" >"$TMP/auth")

idempotency_key() {
  od -An -tx1 -N16 /dev/urandom | tr -d ' \n'
}

# call METHOD PATH [BODY [IDEMPOTENCY_KEY]]: one API call; the answer's JSON on stdout. Retried
# after a 429 (as long as Retry-After says) and, when it is safe (a GET, or a POST with an
# Idempotency-Key), after a network error or a 503. A refusal is reported and ends the script,
# but for one whose code is $REFUSAL_OK: its body goes to stdout and call returns 2.
call() {
  local method="$1" path="$2" body="${3:-}" key="${4:-}" attempt status wait
  local args=(--silent --show-error --config "$TMP/auth" --request "$method"
    --header "Accept: application/json" --connect-timeout 10 --max-time 30
    --output "$TMP/body" --dump-header "$TMP/headers" --write-out '%{http_code}')
  if [ -n "$body" ]; then args+=(--header "Content-Type: application/json" --data-binary "$body"); fi
  if [ -n "$key" ]; then args+=(--header "Idempotency-Key: $key"); fi
  for attempt in $(seq "$ATTEMPTS"); do
    status="$(curl "${args[@]}" "$BASE_URL$path")" || status=000
    if [ "$attempt" -lt "$ATTEMPTS" ]; then
      if [ "$status" = 429 ]; then
        wait="$(sed -n 's/^[Rr]etry-[Aa]fter: *\([0-9]*\).*/\1/p' "$TMP/headers")"
        echo "Rate limited (request_id $(jq -r .error.request_id "$TMP/body")): retrying in ${wait:-1} s" >&2
        sleep "${wait:-1}"
        continue
      fi
      if [ "$status" = 000 ] || [ "$status" = 503 ]; then
        if [ "$method" = GET ] || [ -n "$key" ]; then
          sleep "$attempt"
          continue
        fi
      fi
    fi
    break
  done
  if [ "$status" = 000 ]; then
    echo "Error: the store did not answer" >&2
    exit 1
  fi
  if [ "$status" -ge 400 ]; then
    if [ -n "${REFUSAL_OK:-}" ] && [ "$(jq -r .error.code "$TMP/body")" = "$REFUSAL_OK" ]; then
      cat "$TMP/body"
      return 2
    fi
    report "$method $path" "$status"
    exit 1
  fi
  cat "$TMP/body"
}

# A refusal: its code, message, request id and field details, and what to do about it.
report() {
  jq -r --arg call "$1" --arg status "$2" '
    "Error: \($call): \($status) \(.error.code): \(.error.message) (request_id \(.error.request_id))",
    (.error.details // [] | .[] | "  \(.field): \(.message)"),
    ({
      unauthorized: "Check KEYWARD_USERNAME and KEYWARD_KEY. The store admin finds the reason with `keyward history list --request-id <request_id>`.",
      ip_not_allowed: "Ask the store admin to add this machine'"'"'s address to the API user'"'"'s IP list.",
      insufficient_scope: "Ask the store admin to grant the scope named above.",
      rate_limited: "Still over the rate limit after several tries; run again later.",
      unavailable: "The store is unavailable; run again later (every POST here is safe to repeat)."
    }[.error.code] // empty)' "$TMP/body" >&2
}

me="$(call GET /api/v1/me)"
jq -r '"Signed in as \(.api_user.username) (scopes: \(.scopes | join(" "))), rate limit \(.rate_limit.limit_per_minute)/min"' <<<"$me"

# The whole catalog, a page at a time: `next` is passed back as `after`.
: >"$TMP/catalog"
pages=0
path="/api/v1/products?limit=$PAGE_SIZE"
while :; do
  page="$(call GET "$path")"
  jq -c '.data[]' <<<"$page" >>"$TMP/catalog"
  pages=$((pages + 1))
  next="$(jq -r '.next // empty' <<<"$page")"
  [ -n "$next" ] || break
  path="/api/v1/products?limit=$PAGE_SIZE&after=$next"
done
echo "Catalog: $(wc -l <"$TMP/catalog" | tr -d ' ') products in $pages pages"

# The stock of the SKUs in the warehouse file that the store sells, in bulk.
jq -R -s --slurpfile catalog "$TMP/catalog" '
  ($catalog | map({(.sku): true}) | add // {}) as $known
  | split("\n") | map(select(length > 0) | split(",")) | .[1:]
  | map({sku: .[0], quantity: (.[1] | tonumber)})
  | {items: map(select($known[.sku])), unknown: map(select($known[.sku] | not) | .sku)}' \
  "$COUNTS" >"$TMP/counts"
total="$(jq '.items | length' "$TMP/counts")"
for ((start = 0; start < total; start += MAX_ITEMS)); do
  # One key per bulk update: a retry of the same update is answered, not applied, again.
  call POST /api/v1/products/stock \
    "$(jq -c --argjson start "$start" --argjson n "$MAX_ITEMS" '{items: .items[$start:$start + $n]}' "$TMP/counts")" \
    "$(idempotency_key)" >/dev/null
done
jq -r --arg file "$(basename "$COUNTS")" '"Stock: set \(.items | length) SKUs from \($file)"
  + (if (.unknown | length) > 0
     then " (\(.unknown | length) not in the store, skipped: \(.unknown | join(", ")))" else "" end)' \
  "$TMP/counts"

# The customer: created, or found by email when it exists already (409 conflict).
email="$(jq -r .email <<<"$CUSTOMER")"
how=new
status=0
customer="$(REFUSAL_OK=conflict call POST /api/v1/customers "$CUSTOMER" "$(idempotency_key)")" || status=$?
if [ "$status" -eq 2 ]; then
  how=found
  customer=""
  # Emails are unique whatever their case, and so is the filter.
  page="$(call GET "/api/v1/customers?email=$(jq -rn --arg email "$email" '$email | @uri')")"
  customer="$(jq -c '.data[0] // empty' <<<"$page")"
  [ -n "$customer" ] || { echo "Error: no customer has the email $email" >&2; exit 1; }
elif [ "$status" -ne 0 ]; then
  exit "$status"
fi
jq -r --arg how "$how" '"Customer: #\(.id) \(.name) <\(.email)> (\($how))"' <<<"$customer"

# The order's own key: sent again after a timeout, it cannot become a second order.
placed="$(call POST /api/v1/orders "$(jq -nc --argjson customer "$customer" --argjson lines "$ORDER_LINES" \
  '{customer_id: $customer.id, currency: "USD", lines: $lines, comment: "Phone order"}')" "$(idempotency_key)")"
order="$(call GET "/api/v1/orders/$(jq -r .id <<<"$placed")")"
jq -r --argjson customer "$customer" '
  "Order #\(.id) for \($customer.name): \(.lines | length) lines, total \(.total) \(.currency), status \(.status)",
  (.lines[] | "  \(.quantity) x \(.name) (\(.sku)) at \(.price)"),
  "  History: \(.history | map(.status) | join(", "))"' <<<"$order"
