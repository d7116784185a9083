"""A warehouse integration for Keyward, in Python with requests.

It reads the store's catalog a page at a time, pushes the warehouse's stock counts in bulk,
places an order that came in by phone and reads it back. POSTs carry an Idempotency-Key, so
a call that timed out is sent again without doing anything twice; a 429 waits as long as
Retry-After says. A refusal is reported with its error code and request id (the store admin
finds the call, and why it was refused, in the API history by that id).

    pip install -r requirements.txt
    KEYWARD_URL=http://127.0.0.1:8080 KEYWARD_USERNAME=erp-sync KEYWARD_KEY=kw_... \\
        python example.py [warehouse-counts.csv]

The API user needs the scopes products:write, orders:write and customers:write. The key comes
from the environment, not the command line, where `ps` would show it.
"""

import csv
import os
import sys
import time
import uuid
from pathlib import Path

import requests

BASE_URL = os.environ.get("KEYWARD_URL", "http://127.0.0.1:8080").rstrip("/")
USERNAME = os.environ.get("KEYWARD_USERNAME", "")
KEY = os.environ.get("KEYWARD_KEY", "")
COUNTS = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent.parent / "warehouse-counts.csv"

# The order that came in by phone.
CUSTOMER = {"name": "Mary Jackson", "email": "mary.jackson@example.com"}
ORDER_LINES = [{"sku": "LAMP-DESK", "quantity": 1}, {"sku": "CANDLE-FIG", "quantity": 2}]

PAGE_SIZE = 25
MAX_ITEMS = 1000  # the most SKUs one bulk stock update takes
ATTEMPTS = 5

HINTS = {
    "unauthorized": "Check KEYWARD_USERNAME and KEYWARD_KEY. The store admin finds the reason with "
                    "`keyward history list --request-id <request_id>`.",
    "ip_not_allowed": "Ask the store admin to add this machine's address to the API user's IP list.",
    "insufficient_scope": "Ask the store admin to grant the scope named above.",
    "rate_limited": "Still over the rate limit after several tries; run again later.",
    "unavailable": "The store is unavailable; run again later (every POST here is safe to repeat).",
}


class ApiError(Exception):
    """A refusal, as the API describes it: {"error": {"code", "message", "request_id", "details"?}}."""

    def __init__(self, call, status, error):
        super().__init__(error.get("message", ""))
        self.call = call
        self.status = status
        self.code = error.get("code", "unknown")
        self.message = error.get("message", "")
        self.request_id = error.get("request_id", "")
        self.details = error.get("details", [])


session = requests.Session()
session.auth = (USERNAME, KEY)  # HTTP Basic: the username and the key
session.headers["Accept"] = "application/json"


def call(method, path, body=None, params=None, idempotency_key=None):
    """One API call, retried after a 429 (as long as Retry-After says) and, when it is safe
    (a GET, or a POST with an Idempotency-Key), after a network error or a 503."""
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    retry_safe = method == "GET" or idempotency_key is not None
    for attempt in range(1, ATTEMPTS + 1):
        last = attempt == ATTEMPTS
        try:
            response = session.request(method, BASE_URL + path, json=body, params=params,
                                       headers=headers, timeout=30)
        except requests.ConnectionError:
            if not retry_safe or last:
                raise
            time.sleep(attempt)
            continue
        if response.status_code == 429 and not last:
            wait = int(response.headers.get("Retry-After", "1"))
            request_id = response.json()["error"]["request_id"]
            print(f"Rate limited (request_id {request_id}): retrying in {wait} s", file=sys.stderr)
            time.sleep(wait)
            continue
        if response.status_code == 503 and retry_safe and not last:
            time.sleep(attempt)
            continue
        if response.status_code >= 400:
            raise ApiError(f"{method} {path}", response.status_code, response.json()["error"])
        return response.json() if response.content else None
    raise AssertionError("unreachable")


def all_products():
    """The whole catalog, a page at a time: `next` is passed back as `after`."""
    products, pages, after = [], 0, None
    while True:
        params = {"limit": PAGE_SIZE, **({"after": after} if after else {})}
        page = call("GET", "/api/v1/products", params=params)
        products += page["data"]
        pages += 1
        after = page["next"]
        if after is None:
            return products, pages


def push_stock(catalog):
    """Sets the stock of the SKUs in the warehouse file that the store sells, in bulk."""
    with COUNTS.open(newline="") as f:
        counts = [{"sku": row["sku"], "quantity": int(row["quantity"])} for row in csv.DictReader(f)]
    known = {p["sku"] for p in catalog}
    items = [c for c in counts if c["sku"] in known]
    unknown = [c["sku"] for c in counts if c["sku"] not in known]
    for start in range(0, len(items), MAX_ITEMS):
        # One key per bulk update: a retry of the same update is answered, not applied, again.
        call("POST", "/api/v1/products/stock", {"items": items[start:start + MAX_ITEMS]},
             idempotency_key=str(uuid.uuid4()))
    skipped = f" ({len(unknown)} not in the store, skipped: {', '.join(unknown)})" if unknown else ""
    print(f"Stock: set {len(items)} SKUs from {COUNTS.name}{skipped}")


def find_or_create_customer():
    try:
        customer = call("POST", "/api/v1/customers", CUSTOMER, idempotency_key=str(uuid.uuid4()))
        how = "new"
    except ApiError as error:
        if error.code != "conflict":  # 409: a customer has this email already
            raise
        # Emails are unique whatever their case, and so is the filter.
        page = call("GET", "/api/v1/customers", params={"email": CUSTOMER["email"]})
        if not page["data"]:
            raise
        customer = page["data"][0]
        how = "found"
    print(f"Customer: #{customer['id']} {customer['name']} <{customer['email']}> ({how})")
    return customer


def main():
    me = call("GET", "/api/v1/me")
    print(f"Signed in as {me['api_user']['username']} (scopes: {' '.join(me['scopes'])}), "
          f"rate limit {me['rate_limit']['limit_per_minute']}/min")

    catalog, pages = all_products()
    print(f"Catalog: {len(catalog)} products in {pages} pages")

    push_stock(catalog)
    customer = find_or_create_customer()

    # The order's own key: sent again after a timeout, it cannot become a second order.
    order = call("POST", "/api/v1/orders",
                 {"customer_id": customer["id"], "currency": "USD", "lines": ORDER_LINES,
                  "comment": "Phone order"},
                 idempotency_key=str(uuid.uuid4()))
    order = call("GET", f"/api/v1/orders/{order['id']}")
    print(f"Order #{order['id']} for {customer['name']}: {len(order['lines'])} lines, "
          f"total {order['total']} {order['currency']}, status {order['status']}")
    for line in order["lines"]:
        print(f"  {line['quantity']} x {line['name']} ({line['sku']}) at {line['price']}")
    print(f"  History: {', '.join(h['status'] for h in order['history'])}")


if __name__ == "__main__":
    if not USERNAME or not KEY:
        sys.exit("Set KEYWARD_USERNAME and KEYWARD_KEY (and KEYWARD_URL, default http://127.0.0.1:8080).")
    try:
        main()
    except ApiError as error:
        print(f"Error: {error.call}: {error.status} {error.code}: {error.message} "
              f"(request_id {error.request_id})",
              file=sys.stderr)
        for detail in error.details:
            print(f"  {detail['field']}: {detail['message']}", file=sys.stderr)
        if error.code in HINTS:
            print(HINTS[error.code], file=sys.stderr)
        sys.exit(1)
    except requests.RequestException as error:
        sys.exit(f"Error: the store did not answer: {error}")
