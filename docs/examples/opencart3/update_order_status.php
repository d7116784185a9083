<?php
// An OpenCart 3.x API integration, as one is written for OpenCart: log in with the API
// username and key, read an order, add a status to its history. It runs against Keyward
// unchanged but for its base URL.
//
//   OPENCART_URL=http://127.0.0.1:8080 OPENCART_API_USERNAME=erp-sync OPENCART_API_KEY=kw_... \
//       php update_order_status.php ORDER_ID ORDER_STATUS_ID [COMMENT]
//
// The key comes from the environment, not the command line, where `ps` would show it.
// Needs php-cli and php-curl. Its API user needs `orders:write`, and `customers:read` for the
// order to show its customer's name.

$store = rtrim(getenv('OPENCART_URL') ?: 'http://127.0.0.1:8080', '/');
$username = getenv('OPENCART_API_USERNAME') ?: 'Default';
$key = getenv('OPENCART_API_KEY');

if ($key === false || $key === '' || $argc < 3) {
	fwrite(STDERR, "usage: OPENCART_API_KEY=... php " . $argv[0] . " ORDER_ID ORDER_STATUS_ID [COMMENT]\n");
	exit(2);
}

$order_id = (int)$argv[1];
$order_status_id = (int)$argv[2];
$comment = isset($argv[3]) ? $argv[3] : '';

// One call to the store's API: a POST of form fields when $post is given, a GET otherwise.
// The answer is JSON; errors come in it as `error`, a string or an array of fields.
function api_call($url, $post = null) {
	$curl = curl_init();

	curl_setopt($curl, CURLOPT_URL, $url);
	curl_setopt($curl, CURLOPT_RETURNTRANSFER, true);
	curl_setopt($curl, CURLOPT_HEADER, false);
	curl_setopt($curl, CURLOPT_CONNECTTIMEOUT, 30);
	curl_setopt($curl, CURLOPT_TIMEOUT, 30);

	if ($post !== null) {
		curl_setopt($curl, CURLOPT_POST, true);
		curl_setopt($curl, CURLOPT_POSTFIELDS, http_build_query($post));
	}

	$response = curl_exec($curl);

	if ($response === false) {
		fwrite(STDERR, 'Error: ' . curl_error($curl) . "\n");
		exit(1);
	}

	curl_close($curl);

	$json = json_decode($response, true);

	if (!is_array($json)) {
		fwrite(STDERR, "Error: the answer is not JSON\n");
		exit(1);
	}

	if (isset($json['error'])) {
		$error = is_array($json['error']) ? implode(' ', $json['error']) : $json['error'];

		fwrite(STDERR, 'Error: ' . $error . "\n");
		exit(1);
	}

	return $json;
}

// Login
$json = api_call($store . '/index.php?route=api/login', array(
	'username' => $username,
	'key'      => $key
));

echo $json['success'] . "\n";

$api_token = $json['api_token'];

// Order info
$json = api_call($store . '/index.php?route=api/order/info&api_token=' . urlencode($api_token) . '&order_id=' . $order_id);

$order = $json['order'];

echo 'Order #' . $order['order_id'] . ': ' . $order['firstname'] . ' ' . $order['lastname'] . ', ' . $order['total'] . ' ' . $order['currency_code'] . ', ' . $order['order_status'] . "\n";

foreach ($order['products'] as $product) {
	echo '  ' . $product['quantity'] . ' x ' . $product['name'] . ' (' . $product['model'] . ') at ' . $product['price'] . "\n";
}

// Order history: the new status
$json = api_call($store . '/index.php?route=api/order/history&api_token=' . urlencode($api_token) . '&order_id=' . $order_id, array(
	'order_status_id' => $order_status_id,
	'comment'         => $comment,
	'notify'          => 1,
	'override'        => 0
));

echo $json['success'] . "\n";
