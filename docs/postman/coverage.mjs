// Checks that the Postman collection calls every operation of the API's OpenAPI document.
//
//   node docs/postman/coverage.mjs http://127.0.0.1:8080/api/v1/openapi.json
//   node docs/postman/coverage.mjs openapi.json
//
// An operation no request of keyward.postman_collection.json calls must be listed in
// not-covered.txt beside it (`METHOD /path`, one a line, `#` for comments), or the check fails
// and names it. A line there that names an operation the collection calls, or no operation at
// all, fails the check too, so the list stays true. Node 20, no dependencies.
import { readFile } from 'node:fs/promises';

const here = new URL('.', import.meta.url);
const source = process.argv[2];
if (!source) {
  console.error('usage: node coverage.mjs OPENAPI_URL_OR_FILE');
  process.exit(2);
}

const openapi = /^https?:/.test(source)
  ? await (await fetch(source)).json()
  : JSON.parse(await readFile(source, 'utf8'));
const collection = JSON.parse(await readFile(new URL('keyward.postman_collection.json', here), 'utf8'));
const allowed = (await readFile(new URL('not-covered.txt', here), 'utf8'))
  .split('\n')
  .map((line) => line.replace(/#.*/, '').trim().replace(/\s+/g, ' '))
  .filter(Boolean);

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];
const operations = Object.entries(openapi.paths).flatMap(([path, item]) =>
  METHODS.filter((method) => item[method]).map((method) => ({
    name: `${method.toUpperCase()} ${path}`,
    method: method.toUpperCase(),
    segments: path.split('/').filter(Boolean),
  })),
);

// Every request of the collection, folders included, as its method and path segments.
function requests(items) {
  return items.flatMap((item) => {
    if (item.item) return requests(item.item);
    const { method, url } = item.request;
    const path = typeof url === 'string' ? url.replace(/^[^/]*\/\/?[^/]*/, '').split('?')[0].split('/') : url.path;
    return [{ method, segments: path.filter(Boolean), name: item.name }];
  });
}

// The operation a request calls: same method, same number of segments, literal segments equal
// (`{param}` takes any); the most literal one when several match (`/products/stock` rather
// than `/products/{id}`).
function operationOf(request) {
  const matches = operations.filter(
    (op) =>
      op.method === request.method &&
      op.segments.length === request.segments.length &&
      op.segments.every((s, i) => /^\{.+\}$/.test(s) || s === request.segments[i]),
  );
  const literal = (op) => op.segments.filter((s) => !/^\{.+\}$/.test(s)).length;
  return matches.sort((a, b) => literal(b) - literal(a))[0];
}

const covered = new Set(requests(collection.item).map(operationOf).filter(Boolean).map((op) => op.name));
const names = new Set(operations.map((op) => op.name));
const missing = operations.map((op) => op.name).filter((name) => !covered.has(name) && !allowed.includes(name));
const stale = allowed.filter((name) => covered.has(name) || !names.has(name));

console.log(
  `The collection calls ${covered.size} of the ${operations.length} operations of openapi.json` +
    (allowed.length ? ` (not-covered.txt lists ${allowed.length} more).` : '.'),
);
if (missing.length) {
  console.error(
    'No request of docs/postman/keyward.postman_collection.json calls these operations: add one' +
      ' (or list the operation in docs/postman/not-covered.txt, with the reason):\n' +
      missing.map((name) => `  ${name}`).join('\n'),
  );
}
if (stale.length) {
  console.error(
    'docs/postman/not-covered.txt lists operations the collection calls, or that openapi.json' +
      ' does not have: remove them:\n' +
      stale.map((name) => `  ${name}`).join('\n'),
  );
}
process.exit(missing.length || stale.length ? 1 : 0);
