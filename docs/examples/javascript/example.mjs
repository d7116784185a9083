// A warehouse integration for Keyward, in JavaScript with Node.js 20's built-in fetch: no
// dependencies.
//
// It reads the store's catalog a page at a time, pushes the warehouse's stock counts in bulk,
// places an order that came in by phone and reads it back. POSTs carry an Idempotency-Key, so
// a call that timed out is sent again without doing anything twice; a 429 waits as long as
// Retry-After says. A refusal is reported with its error code and request id (the store admin
// finds the call, and why it was refused, in the API history by that id).
//
//   KEYWARD_URL=http://127.0.0.1:8080 KEYWARD_USERNAME=erp-sync KEYWARD_KEY=kw_... \
//       node example.mjs [warehouse-counts.csv]
//
// The API user needs the scopes products:write, orders:write and customers:write. The key
// comes from the environment, not the command line, where `ps` would show it.
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const BASE_URL = (process.env.KEYWARD_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
const USERNAME = process.env.KEYWARD_USERNAME || '';
const KEY = process.env.KEYWARD_KEY || '';
const COUNTS = process.argv[2] || fileURLToPath(new URL('../warehouse-counts.csv', import.meta.url));

// The order that came in by phone.
const CUSTOMER = { name: 'Mary Jackson', email: 'mary.jackson@example.com' };
const ORDER_LINES = [{ sku: 'LAMP-DESK', quantity: 1 }, { sku: 'CANDLE-FIG', quantity: 2 }];

const PAGE_SIZE = 25;
const MAX_ITEMS = 1000; // the most SKUs one bulk stock update takes
const ATTEMPTS = 5;

const HINTS = {
  unauthorized: 'Check KEYWARD_USERNAME and KEYWARD_KEY. The store admin finds the reason with '
    + '`keyward history list --request-id <request_id>`.',
  ip_not_allowed: "Ask the store admin to add this machine's address to the API user's IP list.",
  insufficient_scope: 'Ask the store admin to grant the scope named above.',
  rate_limited: 'Still over the rate limit after several tries; run again later.',
  unavailable: 'The store is unavailable; run again later (every POST here is safe to repeat).',
};

/** A refusal, as the API describes it: {"error": {"code", "message", "request_id", "details"?}}. */
class ApiError extends Error {
  constructor(call, status, error) {
    super(error.message);
    this.call = call;
    this.status = status;
    this.code = error.code;
    this.requestId = error.request_id;
    this.details = error.details || [];
  }
}

// HTTP Basic: the username and the key.
const AUTHORIZATION = 'Basic ' + Buffer.from(`${USERNAME}:${KEY}`).toString('base64');

/**
 * One API call, retried after a 429 (as long as Retry-After says) and, when it is safe (a GET,
 * or a POST with an Idempotency-Key), after a network error or a 503.
 */
async function call(method, path, { body, params, idempotencyKey } = {}) {
  const url = new URL(BASE_URL + path);
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null) url.searchParams.set(name, value);
  }
  const headers = { Authorization: AUTHORIZATION, Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (idempotencyKey) headers['Idempotency-Key'] = idempotencyKey;
  const retrySafe = method === 'GET' || Boolean(idempotencyKey);

  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    const last = attempt === ATTEMPTS;
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (error) {
      if (!retrySafe || last) throw error;
      await sleep(attempt * 1000);
      continue;
    }
    if (response.status === 429 && !last) {
      const wait = Number(response.headers.get('Retry-After') || '1');
      const { error } = await response.json();
      console.error(`Rate limited (request_id ${error.request_id}): retrying in ${wait} s`);
      await sleep(wait * 1000);
      continue;
    }
    if (response.status === 503 && retrySafe && !last) {
      await sleep(attempt * 1000);
      continue;
    }
    if (response.status >= 400) {
      throw new ApiError(`${method} ${path}`, response.status, (await response.json()).error);
    }
    const text = await response.text();
    return text ? JSON.parse(text) : null;
  }
  throw new Error('unreachable');
}

/** The whole catalog, a page at a time: `next` is passed back as `after`. */
async function allProducts() {
  const products = [];
  let pages = 0;
  let after = null;
  do {
    const page = await call('GET', '/api/v1/products', { params: { limit: PAGE_SIZE, after } });
    products.push(...page.data);
    pages += 1;
    after = page.next;
  } while (after !== null);
  return { products, pages };
}

/** Sets the stock of the SKUs in the warehouse file that the store sells, in bulk. */
async function pushStock(catalog) {
  const [header, ...rows] = (await readFile(COUNTS, 'utf8')).trim().split(/\r?\n/);
  const columns = header.split(',');
  const counts = rows.map((row) => {
    const fields = Object.fromEntries(row.split(',').map((value, i) => [columns[i], value]));
    return { sku: fields.sku, quantity: Number(fields.quantity) };
  });
  const known = new Set(catalog.map((p) => p.sku));
  const items = counts.filter((c) => known.has(c.sku));
  const unknown = counts.filter((c) => !known.has(c.sku)).map((c) => c.sku);
  for (let start = 0; start < items.length; start += MAX_ITEMS) {
    // One key per bulk update: a retry of the same update is answered, not applied, again.
    await call('POST', '/api/v1/products/stock', {
      body: { items: items.slice(start, start + MAX_ITEMS) },
      idempotencyKey: randomUUID(),
    });
  }
  const skipped = unknown.length ? ` (${unknown.length} not in the store, skipped: ${unknown.join(', ')})` : '';
  console.log(`Stock: set ${items.length} SKUs from ${basename(COUNTS)}${skipped}`);
}

async function findOrCreateCustomer() {
  let customer;
  let how = 'new';
  try {
    customer = await call('POST', '/api/v1/customers', { body: CUSTOMER, idempotencyKey: randomUUID() });
  } catch (error) {
    if (!(error instanceof ApiError) || error.code !== 'conflict') throw error; // 409: the email is taken
    how = 'found';
    // Emails are unique whatever their case, and so is the filter.
    const page = await call('GET', '/api/v1/customers', { params: { email: CUSTOMER.email } });
    [customer] = page.data;
    if (!customer) throw error;
  }
  console.log(`Customer: #${customer.id} ${customer.name} <${customer.email}> (${how})`);
  return customer;
}

async function main() {
  const me = await call('GET', '/api/v1/me');
  console.log(`Signed in as ${me.api_user.username} (scopes: ${me.scopes.join(' ')}), `
    + `rate limit ${me.rate_limit.limit_per_minute}/min`);

  const { products: catalog, pages } = await allProducts();
  console.log(`Catalog: ${catalog.length} products in ${pages} pages`);

  await pushStock(catalog);
  const customer = await findOrCreateCustomer();

  // The order's own key: sent again after a timeout, it cannot become a second order.
  const placed = await call('POST', '/api/v1/orders', {
    body: { customer_id: customer.id, currency: 'USD', lines: ORDER_LINES, comment: 'Phone order' },
    idempotencyKey: randomUUID(),
  });
  const order = await call('GET', `/api/v1/orders/${placed.id}`);
  console.log(`Order #${order.id} for ${customer.name}: ${order.lines.length} lines, `
    + `total ${order.total} ${order.currency}, status ${order.status}`);
  for (const line of order.lines) {
    console.log(`  ${line.quantity} x ${line.name} (${line.sku}) at ${line.price}`);
  }
  console.log(`  History: ${order.history.map((h) => h.status).join(', ')}`);
}

if (!USERNAME || !KEY) {
  console.error('Set KEYWARD_USERNAME and KEYWARD_KEY (and KEYWARD_URL, default http://127.0.0.1:8080).');
  process.exit(1);
}
try {
  await main();
} catch (error) {
  if (!(error instanceof ApiError)) {
    console.error(`Error: the store did not answer: ${error.cause?.message || error.message}`);
    process.exit(1);
  }
  console.error(`Error: ${error.call}: ${error.status} ${error.code}: ${error.message} (request_id ${error.requestId})`);
  for (const detail of error.details) console.error(`  ${detail.field}: ${detail.message}`);
  if (HINTS[error.code]) console.error(HINTS[error.code]);
  process.exit(1);
}
