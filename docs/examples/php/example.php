<?php
// A warehouse integration for Keyward, in PHP with the curl extension.
//
// It reads the store's catalog a page at a time, pushes the warehouse's stock counts in bulk,
// places an order that came in by phone and reads it back. POSTs carry an Idempotency-Key, so
// a call that timed out is sent again without doing anything twice; a 429 waits as long as
// Retry-After says. A refusal is reported with its error code and request id (the store admin
// finds the call, and why it was refused, in the API history by that id).
//
//   KEYWARD_URL=http://127.0.0.1:8080 KEYWARD_USERNAME=erp-sync KEYWARD_KEY=kw_... \
//       php example.php [warehouse-counts.csv]
//
// The API user needs the scopes products:write, orders:write and customers:write. The key
// comes from the environment, not the command line, where `ps` would show it. Needs php-cli
// and php-curl (PHP 7.4 or newer).

$base_url = rtrim(getenv('KEYWARD_URL') ?: 'http://127.0.0.1:8080', '/');
$username = getenv('KEYWARD_USERNAME') ?: '';
$key = getenv('KEYWARD_KEY') ?: '';
$counts_file = $argv[1] ?? __DIR__ . '/../warehouse-counts.csv';

// The order that came in by phone.
const CUSTOMER = ['name' => 'Mary Jackson', 'email' => 'mary.jackson@example.com'];
const ORDER_LINES = [['sku' => 'LAMP-DESK', 'quantity' => 1], ['sku' => 'CANDLE-FIG', 'quantity' => 2]];

const PAGE_SIZE = 25;
const MAX_ITEMS = 1000; // the most SKUs one bulk stock update takes
const ATTEMPTS = 5;

const HINTS = [
	'unauthorized' => 'Check KEYWARD_USERNAME and KEYWARD_KEY. The store admin finds the reason with `keyward history list --request-id <request_id>`.',
	'ip_not_allowed' => "Ask the store admin to add this machine's address to the API user's IP list.",
	'insufficient_scope' => 'Ask the store admin to grant the scope named above.',
	'rate_limited' => 'Still over the rate limit after several tries; run again later.',
	'unavailable' => 'The store is unavailable; run again later (every POST here is safe to repeat).',
];

// A refusal, as the API describes it: {"error": {"code", "message", "request_id", "details"?}}.
class ApiError extends Exception {
	public $call;
	public $status;
	public $error_code;
	public $request_id;
	public $details;

	public function __construct($call, $status, array $error) {
		parent::__construct($error['message'] ?? '');
		$this->call = $call;
		$this->status = $status;
		$this->error_code = $error['code'] ?? 'unknown';
		$this->request_id = $error['request_id'] ?? '';
		$this->details = $error['details'] ?? [];
	}
}

// The store did not answer at all.
class NetworkError extends Exception {}

// One API call, retried after a 429 (as long as Retry-After says) and, when it is safe (a GET,
// or a POST with an Idempotency-Key), after a network error or a 503.
function call($method, $path, $body = null, array $params = [], $idempotency_key = null) {
	global $base_url, $username, $key;

	$url = $base_url . $path . ($params ? '?' . http_build_query($params) : '');
	$headers = ['Accept: application/json'];
	if ($body !== null) {
		$headers[] = 'Content-Type: application/json';
	}
	if ($idempotency_key !== null) {
		$headers[] = 'Idempotency-Key: ' . $idempotency_key;
	}
	$retry_safe = $method === 'GET' || $idempotency_key !== null;

	for ($attempt = 1; $attempt <= ATTEMPTS; $attempt++) {
		$last = $attempt === ATTEMPTS;
		$response_headers = [];

		$curl = curl_init($url);
		curl_setopt($curl, CURLOPT_CUSTOMREQUEST, $method);
		curl_setopt($curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC); // HTTP Basic: the username and the key
		curl_setopt($curl, CURLOPT_USERPWD, $username . ':' . $key);
		curl_setopt($curl, CURLOPT_HTTPHEADER, $headers);
		curl_setopt($curl, CURLOPT_RETURNTRANSFER, true);
		curl_setopt($curl, CURLOPT_CONNECTTIMEOUT, 10);
		curl_setopt($curl, CURLOPT_TIMEOUT, 30);
		curl_setopt($curl, CURLOPT_HEADERFUNCTION, function ($curl, $line) use (&$response_headers) {
			$parts = explode(':', $line, 2);
			if (count($parts) === 2) {
				$response_headers[strtolower(trim($parts[0]))] = trim($parts[1]);
			}
			return strlen($line);
		});
		if ($body !== null) {
			curl_setopt($curl, CURLOPT_POSTFIELDS, json_encode($body));
		}
		$text = curl_exec($curl);
		$status = curl_getinfo($curl, CURLINFO_RESPONSE_CODE);
		$network_error = $text === false ? curl_error($curl) : null;
		curl_close($curl);

		if ($network_error !== null) {
			if (!$retry_safe || $last) {
				throw new NetworkError($network_error);
			}
			sleep($attempt);
			continue;
		}
		$json = json_decode($text, true);
		if ($status === 429 && !$last) {
			$wait = (int)($response_headers['retry-after'] ?? 1);
			fwrite(STDERR, 'Rate limited (request_id ' . $json['error']['request_id'] . "): retrying in $wait s\n");
			sleep($wait);
			continue;
		}
		if ($status === 503 && $retry_safe && !$last) {
			sleep($attempt);
			continue;
		}
		if ($status >= 400) {
			throw new ApiError("$method $path", $status, $json['error'] ?? ['message' => $text]);
		}
		return $json;
	}
}

// The whole catalog, a page at a time: `next` is passed back as `after`.
function all_products() {
	$products = [];
	$pages = 0;
	$after = null;
	do {
		$params = ['limit' => PAGE_SIZE] + ($after !== null ? ['after' => $after] : []);
		$page = call('GET', '/api/v1/products', null, $params);
		$products = array_merge($products, $page['data']);
		$pages++;
		$after = $page['next'];
	} while ($after !== null);
	return [$products, $pages];
}

// Sets the stock of the SKUs in the warehouse file that the store sells, in bulk.
function push_stock(array $catalog, $counts_file) {
	$file = fopen($counts_file, 'r');
	if ($file === false) {
		throw new RuntimeException("cannot read $counts_file");
	}
	$columns = fgetcsv($file, 0, ',', '"', '');
	$counts = [];
	while (($row = fgetcsv($file, 0, ',', '"', '')) !== false) {
		if ($row === [null]) {
			continue; // a blank line
		}
		$fields = array_combine($columns, $row);
		$counts[] = ['sku' => $fields['sku'], 'quantity' => (int)$fields['quantity']];
	}
	fclose($file);

	$known = array_flip(array_column($catalog, 'sku'));
	$items = array_values(array_filter($counts, function ($c) use ($known) { return isset($known[$c['sku']]); }));
	$unknown = array_column(array_filter($counts, function ($c) use ($known) { return !isset($known[$c['sku']]); }), 'sku');
	foreach (array_chunk($items, MAX_ITEMS) as $chunk) {
		// One key per bulk update: a retry of the same update is answered, not applied, again.
		call('POST', '/api/v1/products/stock', ['items' => $chunk], [], bin2hex(random_bytes(16)));
	}
	$skipped = $unknown ? ' (' . count($unknown) . ' not in the store, skipped: ' . implode(', ', $unknown) . ')' : '';
	echo 'Stock: set ' . count($items) . ' SKUs from ' . basename($counts_file) . $skipped . "\n";
}

function find_or_create_customer() {
	try {
		$customer = call('POST', '/api/v1/customers', CUSTOMER, [], bin2hex(random_bytes(16)));
		$how = 'new';
	} catch (ApiError $error) {
		if ($error->error_code !== 'conflict') { // 409: the email is taken
			throw $error;
		}
		$how = 'found';
		// Emails are unique whatever their case, and so is the filter.
		$page = call('GET', '/api/v1/customers', null, ['email' => CUSTOMER['email']]);
		$customer = $page['data'][0] ?? null;
		if ($customer === null) {
			throw $error;
		}
	}
	echo "Customer: #{$customer['id']} {$customer['name']} <{$customer['email']}> ($how)\n";
	return $customer;
}

function main($counts_file) {
	$me = call('GET', '/api/v1/me');
	echo 'Signed in as ' . $me['api_user']['username'] . ' (scopes: ' . implode(' ', $me['scopes']) . '), '
		. 'rate limit ' . $me['rate_limit']['limit_per_minute'] . "/min\n";

	list($catalog, $pages) = all_products();
	echo 'Catalog: ' . count($catalog) . " products in $pages pages\n";

	push_stock($catalog, $counts_file);
	$customer = find_or_create_customer();

	// The order's own key: sent again after a timeout, it cannot become a second order.
	$placed = call('POST', '/api/v1/orders', [
		'customer_id' => $customer['id'],
		'currency' => 'USD',
		'lines' => ORDER_LINES,
		'comment' => 'Phone order',
	], [], bin2hex(random_bytes(16)));
	$order = call('GET', '/api/v1/orders/' . $placed['id']);
	echo "Order #{$order['id']} for {$customer['name']}: " . count($order['lines']) . ' lines, '
		. "total {$order['total']} {$order['currency']}, status {$order['status']}\n";
	foreach ($order['lines'] as $line) {
		echo "  {$line['quantity']} x {$line['name']} ({$line['sku']}) at {$line['price']}\n";
	}
	echo '  History: ' . implode(', ', array_column($order['history'], 'status')) . "\n";
}

if ($username === '' || $key === '') {
	fwrite(STDERR, "Set KEYWARD_USERNAME and KEYWARD_KEY (and KEYWARD_URL, default http://127.0.0.1:8080).\n");
	exit(1);
}
try {
	main($counts_file);
} catch (ApiError $error) {
	fwrite(STDERR, "Error: {$error->call}: {$error->status} {$error->error_code}: {$error->getMessage()} (request_id {$error->request_id})\n");
	foreach ($error->details as $detail) {
		fwrite(STDERR, "  {$detail['field']}: {$detail['message']}\n");
	}
	if (isset(HINTS[$error->error_code])) {
		fwrite(STDERR, HINTS[$error->error_code] . "\n");
	}
	exit(1);
} catch (NetworkError $error) {
	fwrite(STDERR, 'Error: the store did not answer: ' . $error->getMessage() . "\n");
	exit(1);
}
