//! The OpenCart-compatible entry, spoken to as OpenCart 3.x and 4.0 integrations speak:
//! `index.php?route=…` with the token in the query string, form-encoded (and multipart)
//! bodies, answers read as JSON. The same sessions, checks, throttles and history as
//! `/api/v1`.

use crate::helpers::{Settings, TestApp, spawn_app, spawn_app_with};
use keyward::credentials::CreateApiUser;
use keyward::domain::admin::Actor;
use reqwest::{Method, Response};
use serde_json::{Value, json};
use std::time::Duration;

const LOGIN_OK: &str = "Success: API session successfully started!";
const ORDERS_OK: &str = "Success: You have modified orders!";
const PERMISSION: &str = "Warning: You do not have permission to access the API!";
const WRONG_KEY: &str = "Warning: Incorrect API Key!";
const NO_ORDER: &str = "Warning: Order could not be found!";

struct Shop {
    /// The key of the API user under test.
    key: String,
    order: i64,
    /// The key of the user that set the shop up, which may read and write everything.
    setup: String,
}

/// An API user with `scopes`, a customer and one order of 3 lamps.
async fn shop(app: &TestApp, username: &str, scopes: &[&str]) -> Shop {
    let setup = app
        .api_user(
            "setup",
            &["products:write", "orders:write", "customers:write"],
        )
        .await;
    let product = json!({"sku": "LAMP-1", "name": "Desk lamp", "price": "89.90", "quantity": 10});
    assert_eq!(
        app.post("/api/v1/products", &setup, &product)
            .await
            .status(),
        201
    );
    let customer: Value = app
        .post(
            "/api/v1/customers",
            &setup,
            &json!({"name": "Ada King Lovelace", "email": "ada@example.com", "phone": "+44 20 1234"}),
        )
        .await
        .json()
        .await
        .expect("json");
    let order: Value = app
        .post(
            "/api/v1/orders",
            &setup,
            &json!({"customer_id": customer["id"], "currency": "GBP",
                    "lines": [{"sku": "LAMP-1", "quantity": 3}], "comment": "gift wrap"}),
        )
        .await
        .json()
        .await
        .expect("json");
    Shop {
        key: app.api_user(username, scopes).await,
        order: order["id"].as_i64().expect("order id"),
        setup,
    }
}

/// `POST index.php?{query}` with a form-encoded body, as `curl_setopt(CURLOPT_POSTFIELDS,
/// http_build_query($data))` sends it.
async fn form(app: &TestApp, query: &str, fields: &[(&str, &str)]) -> Response {
    app.request(Method::POST, &format!("/index.php?{query}"))
        .form(fields)
        .send()
        .await
        .expect("request")
}

/// `POST index.php?{query}` with a multipart body, as `curl_setopt(CURLOPT_POSTFIELDS,
/// $array)` sends it (the way OpenCart 4.0's own login example does).
async fn multipart(app: &TestApp, query: &str, fields: &[(&str, &str)]) -> Response {
    let boundary = "------------------------d74496d66958873e";
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    app.request(Method::POST, &format!("/index.php?{query}"))
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .expect("request")
}

/// The answer's status and JSON body.
async fn json_of(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json().await.expect("a JSON body");
    (status, body)
}

/// Logs in on OpenCart 3.x's route and returns the token.
async fn login3(app: &TestApp, username: &str, key: &str) -> String {
    let (status, body) = json_of(
        form(
            app,
            "route=api/login",
            &[("username", username), ("key", key)],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], LOGIN_OK, "{body}");
    body["api_token"].as_str().expect("api_token").to_owned()
}

/// The order as `GET /api/v1/orders/{id}` shows it to `shop`'s setup user.
async fn order_v1(app: &TestApp, shop: &Shop) -> Value {
    app.get_json(&format!("/api/v1/orders/{}", shop.order), &shop.setup)
        .await
}

#[tokio::test]
async fn an_opencart_3_integration_logs_in_reads_an_order_and_ships_it() {
    let app = spawn_app().await;
    let shop = shop(&app, "erp", &["orders:write"]).await;
    let (key, order) = (shop.key.clone(), shop.order);

    let token = login3(&app, "erp", &key).await;
    assert!(token.starts_with("kwt_"), "a Keyward session token");

    let (status, info) = json_of(
        app.request(
            Method::GET,
            &format!("/index.php?route=api/order/info&api_token={token}&order_id={order}"),
        )
        .send()
        .await
        .expect("info"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(info["success"], ORDERS_OK);
    assert_eq!(info["order"]["order_id"], order.to_string());
    assert_eq!(info["order"]["order_status_id"], "1");
    assert_eq!(info["order"]["order_status"], "Pending");

    let (status, body) = json_of(
        form(
            &app,
            &format!("route=api/order/history&api_token={token}&order_id={order}"),
            &[
                ("order_status_id", "3"),
                ("comment", "UPS 1Z999"),
                ("notify", "1"),
                ("override", "0"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!((status, body), (200, json!({ "success": ORDERS_OK })));

    let now = order_v1(&app, &shop).await;
    assert_eq!(now["status"], "Shipped");
    assert_eq!(now["order_status_id"], 3);
    let last = now["history"].as_array().expect("history").last().cloned();
    let last = last.expect("an entry");
    assert_eq!(last["comment"], "UPS 1Z999");
    assert_eq!(last["notify"], true);
}

#[tokio::test]
async fn an_opencart_4_login_with_a_multipart_body_and_the_token_parameter_work() {
    let app = spawn_app().await;
    let shop = shop(&app, "erp4", &["orders:read"]).await;
    let (key, order) = (shop.key.clone(), shop.order);

    let (status, body) = json_of(
        multipart(
            &app,
            "route=api/account/login&language=en-gb&store_id=0",
            &[("username", "erp4"), ("key", &key)],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], LOGIN_OK);
    let token = body["api_token"].as_str().expect("api_token");

    for name in ["api_token", "token"] {
        let (status, info) = json_of(
            form(
                &app,
                &format!("route=api/order/info&{name}={token}&order_id={order}"),
                &[],
            )
            .await,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            info["order"]["order_id"],
            order.to_string(),
            "{name}: {info}"
        );
    }
    // In the body, as some clients send it.
    let (_, info) = json_of(
        form(
            &app,
            &format!("route=api/order/info&order_id={order}"),
            &[("api_token", token)],
        )
        .await,
    )
    .await;
    assert_eq!(info["order"]["order_id"], order.to_string(), "{info}");
}

#[tokio::test]
async fn the_token_mix_up_of_the_write_up_cannot_happen() {
    let app = spawn_app().await;
    let shop = shop(&app, "mixed", &["orders:read"]).await;
    let (key, order) = (shop.key.clone(), shop.order);
    let token = login3(&app, "mixed", &key).await;

    // An admin's own session token beside the API token, under either name.
    for query in [
        format!("route=api/order/info&token=0a1b2c3d4e5f&api_token={token}&order_id={order}"),
        format!("route=api/order/info&api_token=0a1b2c3d4e5f&token={token}&order_id={order}"),
    ] {
        let (_, info) = json_of(form(&app, &query, &[]).await).await;
        assert_eq!(info["order"]["order_id"], order.to_string(), "{info}");
    }
    // Two session tokens, of two API users: refused, never a guess at which one was meant.
    let other_key = app.api_user("other", &["orders:read"]).await;
    let other_token = login3(&app, "other", &other_key).await;
    let both =
        format!("route=api/order/info&api_token={token}&token={other_token}&order_id={order}");
    let (_, refused) = json_of(form(&app, &both, &[]).await).await;
    assert_eq!(refused, json!({"error": PERMISSION}), "{refused}");
    assert_eq!(app.last_outcome().await, "malformed_credentials");
    let twice = format!("route=api/order/info&api_token={token}&token={token}&order_id={order}");
    let (_, info) = json_of(form(&app, &twice, &[]).await).await;
    assert_eq!(
        info["order"]["order_id"],
        order.to_string(),
        "the same token twice: {info}"
    );
}

#[tokio::test]
async fn order_info_is_shaped_like_opencarts() {
    let app = spawn_app().await;
    let shop = shop(&app, "shape", &["orders:read", "customers:read"]).await;
    let (key, order) = (shop.key.clone(), shop.order);
    let token = login3(&app, "shape", &key).await;

    let (_, body) = json_of(
        form(
            &app,
            &format!("route=api/order/info&api_token={token}&order_id={order}"),
            &[],
        )
        .await,
    )
    .await;
    let o = &body["order"];
    assert_eq!(o["customer"], "Ada King Lovelace");
    assert_eq!(o["firstname"], "Ada");
    assert_eq!(o["lastname"], "King Lovelace");
    assert_eq!(o["email"], "ada@example.com");
    assert_eq!(o["telephone"], "+44 20 1234");
    assert_eq!(o["comment"], "gift wrap");
    assert_eq!(o["total"], "269.7000");
    assert_eq!(o["currency_code"], "GBP");
    let added = o["date_added"].as_str().expect("date_added");
    assert_eq!(added.len(), 19, "{added}");
    assert_eq!(&added[10..11], " ", "MySQL's DATETIME: {added}");
    let product = &o["products"][0];
    assert_eq!(product["name"], "Desk lamp");
    assert_eq!(product["model"], "LAMP-1");
    assert_eq!(product["quantity"], "3");
    assert_eq!(product["price"], "89.9000");
    assert_eq!(product["total"], "269.7000");
    assert_eq!(o["histories"][0]["status"], "Pending");
    assert_eq!(o["histories"][0]["notify"], "0");

    // Without `customers:read`, the order names its customer by id alone, as on `/api/v1`.
    let orders_only = app.api_user("orders-only", &["orders:read"]).await;
    let token = login3(&app, "orders-only", &orders_only).await;
    let (_, body) = json_of(
        form(
            &app,
            &format!("route=api/order/info&api_token={token}&order_id={order}"),
            &[],
        )
        .await,
    )
    .await;
    let o = &body["order"];
    assert_eq!(
        o["customer_id"],
        body_customer_id(&app, &shop.setup, order).await
    );
    for field in ["customer", "firstname", "lastname", "email", "telephone"] {
        assert_eq!(o[field], "", "{field}: {body}");
    }
    assert_eq!(
        o["total"], "269.7000",
        "the rest of the order is there: {body}"
    );
}

/// The order's `customer_id` as `/api/v1` tells it, in OpenCart's string form.
async fn body_customer_id(app: &TestApp, key: &str, order: i64) -> Value {
    let order: Value = app
        .get(&format!("/api/v1/orders/{order}"), key)
        .await
        .json()
        .await
        .expect("json");
    json!(order["customer_id"].to_string())
}

#[tokio::test]
async fn the_session_is_a_keyward_session_with_its_idle_timeout() {
    let app = spawn_app().await;
    let shop = shop(&app, "session", &["orders:read"]).await;
    let (key, order) = (shop.key.clone(), shop.order);
    let token = login3(&app, "session", &key).await;

    assert_eq!(app.get("/api/v1/me", &token).await.status(), 200);
    let sessions = app
        .credentials
        .sessions("session", false)
        .await
        .expect("sessions");
    assert_eq!(sessions.len(), 1);

    app.clock.advance(time::Duration::minutes(61));
    let (status, body) = json_of(
        form(
            &app,
            &format!("route=api/order/info&api_token={token}&order_id={order}"),
            &[],
        )
        .await,
    )
    .await;
    assert_eq!((status, body), (200, json!({ "error": PERMISSION })));
    assert_eq!(app.last_outcome().await, "expired_token");
}

#[tokio::test]
async fn wrong_keys_and_unknown_users_get_opencarts_words_and_the_history_the_reason() {
    let app = spawn_app().await;
    let shop = shop(&app, "known", &["orders:read"]).await;
    let key = shop.key.clone();
    let other_key = app.api_user("other", &[]).await;

    let cases = [
        (
            "route=api/login",
            vec![("username", "known"), ("key", other_key.as_str())],
            json!({"error": {"key": WRONG_KEY}}),
            "wrong_key",
        ),
        (
            "route=api/account/login",
            vec![("username", "known"), ("key", other_key.as_str())],
            json!({"error": WRONG_KEY}),
            "wrong_key",
        ),
        (
            "route=api/login",
            vec![("username", "nobody"), ("key", key.as_str())],
            json!({"error": {"key": WRONG_KEY}}),
            "unknown_user",
        ),
        // OpenCart 3.x logs a bare key in as its `Default` API user, which is not this one.
        (
            "route=api/login",
            vec![("key", key.as_str())],
            json!({"error": {"key": WRONG_KEY}}),
            "unknown_user",
        ),
        (
            "route=api/account/login",
            vec![("username", "known")],
            json!({"error": WRONG_KEY}),
            "missing_credentials",
        ),
    ];
    for (query, fields, expected, outcome) in cases {
        let (status, body) = json_of(form(&app, query, &fields).await).await;
        assert_eq!((status, &body), (200, &expected), "{query} {fields:?}");
        assert_eq!(app.last_outcome().await, outcome, "{query} {fields:?}");
    }
    let of_known: Vec<(String, String)> = app
        .history("known")
        .await
        .into_iter()
        .map(|r| (r.call, r.outcome))
        .collect();
    assert_eq!(
        of_known[..2],
        [
            (
                "POST /index.php?route=api/account/login".to_owned(),
                "wrong_key".to_owned()
            ),
            (
                "POST /index.php?route=api/login".to_owned(),
                "wrong_key".to_owned()
            ),
        ]
    );
}

#[tokio::test]
async fn a_caller_off_the_ip_list_is_told_its_address() {
    let app = spawn_app().await;
    let key = app
        .api_user_with(CreateApiUser {
            username: "far-away".into(),
            scopes: vec!["orders:read".into()],
            ips: vec!["203.0.113.7".into()],
            ..CreateApiUser::default()
        })
        .await;

    let (status, body) = json_of(
        form(
            &app,
            "route=api/login",
            &[("username", "far-away"), ("key", &key)],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"error": {"ip": "Warning: Your IP 127.0.0.1 is not allowed to access this API!"}})
    );
    assert_eq!(app.last_outcome().await, "ip_not_allowed");

    // A session made from an allowed address stops at once when the address leaves the list.
    app.credentials
        .add_ip(&Actor::system(), "far-away", "127.0.0.1")
        .await
        .expect("add ip");
    let token = login3(&app, "far-away", &key).await;
    app.credentials
        .remove_ip(&Actor::system(), "far-away", "127.0.0.1")
        .await
        .expect("remove ip");
    let (_, body) = json_of(
        form(
            &app,
            &format!("route=api/order/info&api_token={token}&order_id=1"),
            &[],
        )
        .await,
    )
    .await;
    assert_eq!(
        body,
        json!({"error": "Warning: Your IP 127.0.0.1 is not allowed to access this API!"})
    );
    assert_eq!(app.last_outcome().await, "ip_not_allowed");
}

#[tokio::test]
async fn a_missing_scope_or_token_is_a_permission_error_that_changes_nothing() {
    let app = spawn_app().await;
    let shop = shop(&app, "read-only", &["orders:read"]).await;
    let (key, order) = (shop.key.clone(), shop.order);
    let token = login3(&app, "read-only", &key).await;

    let (status, body) = json_of(
        form(
            &app,
            &format!("route=api/order/history&api_token={token}&order_id={order}"),
            &[("order_status_id", "7")],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    let text = body["error"].as_str().expect("a string error");
    assert!(text.starts_with(PERMISSION), "{text}");
    assert!(text.contains("orders:write"), "names the scope: {text}");
    assert_eq!(app.last_outcome().await, "insufficient_scope");
    assert_eq!(order_v1(&app, &shop).await["status"], "Pending");

    let (_, body) = json_of(
        form(
            &app,
            &format!("route=api/order/history&order_id={order}"),
            &[("order_status_id", "7")],
        )
        .await,
    )
    .await;
    assert_eq!(body, json!({ "error": PERMISSION }));
    assert_eq!(app.last_outcome().await, "missing_credentials");
    assert_eq!(order_v1(&app, &shop).await["status"], "Pending");
}

#[tokio::test]
async fn keys_in_urls_are_refused_on_both_entries_and_tokens_only_here() {
    let app = spawn_app().await;
    let shop = shop(&app, "careless", &["orders:read"]).await;
    let (key, order) = (shop.key.clone(), shop.order);

    let (status, body) = json_of(
        form(
            &app,
            &format!("route=api/login&username=careless&key={key}"),
            &[],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    let text = body["error"]["key"].as_str().expect("error.key");
    assert!(text.contains("POST body"), "{text}");
    assert_eq!(app.last_outcome().await, "secret_in_query");

    // The key itself where the token belongs, in the URL.
    let (_, body) = json_of(
        form(
            &app,
            &format!("route=api/order/info&api_token={key}&order_id={order}"),
            &[],
        )
        .await,
    )
    .await;
    assert_eq!(body, json!({ "error": PERMISSION }));
    assert_eq!(app.last_outcome().await, "secret_in_query");
    // The key as a login's `key` on another route, or under any other name, with a token or
    // without one.
    let token = login3(&app, "careless", &key).await;
    for query in [
        format!("route=api/order/info&order_id={order}&key={key}"),
        format!("route=api/order/info&order_id={order}&api_token={token}&key={key}"),
        format!("route=api/order/info&order_id={order}&api_token={token}&note={key}"),
    ] {
        let (_, body) = json_of(form(&app, &query, &[]).await).await;
        assert_eq!(body, json!({ "error": PERMISSION }), "{query}");
        assert_eq!(app.last_outcome().await, "secret_in_query", "{query}");
    }

    let v1 = app
        .request(
            Method::GET,
            &format!("/api/v1/orders/{order}?api_token={token}"),
        )
        .send()
        .await
        .expect("v1");
    assert_eq!(v1.status(), 401, "/api/v1 still refuses tokens in the URL");
    assert_eq!(app.last_outcome().await, "secret_in_query");
}

#[tokio::test]
async fn every_call_has_its_history_row_and_none_holds_a_secret() {
    let mut app = spawn_app().await;
    let shop = shop(&app, "audited", &["orders:write"]).await;
    let (key, order) = (shop.key.clone(), shop.order);

    let token = login3(&app, "audited", &key).await;
    let info = format!("route=api/order/info&api_token={token}&order_id={order}");
    assert_eq!(
        app.request(Method::GET, &format!("/index.php?{info}"))
            .send()
            .await
            .expect("info")
            .status(),
        200
    );
    form(
        &app,
        &format!("route=api/order/history&token={token}&order_id={order}"),
        &[("order_status_id", "2"), ("comment", "picked")],
    )
    .await;
    form(
        &app,
        &format!("route=api/order/delete&api_token={token}"),
        &[],
    )
    .await;
    form(&app, &format!("route=api/login&key={key}"), &[]).await;

    let rows = app.history("audited").await;
    let calls: Vec<(&str, &str, u16)> = rows
        .iter()
        .take(3)
        .map(|r| (r.call.as_str(), r.outcome.as_str(), r.status))
        .collect();
    assert_eq!(
        calls,
        [
            ("POST /index.php?route=api/order/history", "ok", 200),
            ("GET /index.php?route=api/order/info", "ok", 200),
            ("POST /index.php?route=api/login", "ok", 200),
        ]
    );
    assert!(rows[0].session_id.is_some(), "the row names the session");
    let all = app.all_history().await;
    let unknown = all
        .iter()
        .find(|r| r.call.contains("api/order/delete"))
        .expect("the unknown route has its row");
    assert_eq!(
        (unknown.status, unknown.outcome.as_str()),
        (404, "not_found")
    );
    assert_eq!(all[0].outcome, "secret_in_query");

    let text = serde_json::to_string(&all).expect("json");
    for secret in [
        &key,
        &token,
        &key[3..30].to_owned(),
        &token[4..30].to_owned(),
    ] {
        assert!(
            !text.contains(secret.as_str()),
            "a secret reached the history"
        );
    }
    app.stop().await;
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(app.dir.path()).expect("dir") {
        bytes.extend(std::fs::read(entry.expect("entry").path()).expect("read"));
    }
    let stored = String::from_utf8_lossy(&bytes);
    assert!(
        !stored.contains(&key[3..40]),
        "the key reached the database"
    );
    assert!(
        !stored.contains(&token[4..40]),
        "the token reached the database"
    );
}

#[tokio::test]
async fn failed_logins_are_throttled_with_429_in_opencarts_shape_across_both_entries() {
    let app = spawn_app_with(Settings {
        login_failures_per_ip: 3,
        ..Settings::default()
    })
    .await;
    let key = app.api_user("guarded", &[]).await;
    let wrong = format!("kw_{}", "x".repeat(61));

    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = form(
            &app,
            "route=api/login",
            &[("username", "guarded"), ("key", &wrong)],
        )
        .await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses[..3], [200, 200, 200], "{statuses:?}");
    let response = form(
        &app,
        "route=api/account/login",
        &[("username", "guarded"), ("key", &key)],
    )
    .await;
    assert_eq!(response.status(), 429, "even the right key waits");
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry));
    let (_, body) = json_of(response).await;
    let text = body["error"].as_str().expect("a string error");
    assert!(
        text.starts_with("Warning: Too many failed logins"),
        "{text}"
    );
    assert_eq!(app.last_outcome().await, "login_throttled");

    let v1 = app
        .request(Method::POST, "/api/v1/login")
        .json(&json!({"username": "guarded", "key": key}))
        .send()
        .await
        .expect("v1 login");
    assert_eq!(v1.status(), 429, "one throttle for both entries");
}

#[tokio::test]
async fn over_the_rate_limit_is_429_in_opencarts_shape() {
    let app = spawn_app().await;
    let shop = shop(&app, "unused", &[]).await;
    let order = shop.order;
    let key = app
        .api_user_with(CreateApiUser {
            username: "chatty".into(),
            scopes: vec!["orders:read".into()],
            ips: vec!["127.0.0.1".into()],
            rate_limit_per_minute: Some(3),
            ..CreateApiUser::default()
        })
        .await;
    // The login is a call too.
    let token = login3(&app, "chatty", &key).await;
    let info = format!("route=api/order/info&api_token={token}&order_id={order}");
    for remaining in ["1", "0"] {
        let response = form(&app, &info, &[]).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["ratelimit-remaining"], remaining);
    }
    let response = form(&app, &info, &[]).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let (_, body) = json_of(response).await;
    let text = body["error"].as_str().expect("a string error");
    assert!(
        text.starts_with("Warning: Over the limit of 3 calls"),
        "{text}"
    );
    assert_eq!(app.last_outcome().await, "rate_limited");
}

#[tokio::test]
async fn bad_input_and_unknown_routes_get_opencart_errors_never_a_500() {
    let app = spawn_app().await;
    let shop = shop(&app, "fuzzy", &["orders:write"]).await;
    let (key, order) = (shop.key.clone(), shop.order);
    let token = login3(&app, "fuzzy", &key).await;
    let at = |query: &str| format!("route=api/order/history&api_token={token}&{query}");
    let long = "x".repeat(10_001);

    let cases = vec![
        (
            at("order_id=abc"),
            vec![("order_status_id", "3")],
            json!({"error": NO_ORDER}),
            "not_found",
        ),
        (
            at("order_id=99999999999999999999"),
            vec![("order_status_id", "3")],
            json!({"error": NO_ORDER}),
            "not_found",
        ),
        (
            at("order_id=424242"),
            vec![("order_status_id", "3")],
            json!({"error": NO_ORDER}),
            "not_found",
        ),
        (
            at(&format!("order_id={order}")),
            vec![],
            json!({"error": {"order_status_id": "Order status required!"}}),
            "invalid",
        ),
        (
            at(&format!("order_id={order}")),
            vec![("order_status_id", "shipped"), ("notify", "maybe")],
            json!({"error": {
                "order_status_id": "Order status must be a number, such as 3 for Shipped!",
                "notify": "Notify must be 1 or 0!",
            }}),
            "invalid",
        ),
        (
            at(&format!("order_id={order}")),
            vec![("order_status_id", "4")],
            json!({"error": {"order_status_id":
                "Order status 4 does not exist; GET /api/v1/order-statuses lists them!"}}),
            "invalid",
        ),
        (
            at(&format!("order_id={order}")),
            vec![("order_status_id", "3"), ("comment", long.as_str())],
            json!({"error": {"comment": "Comment must be at most 10000 characters!"}}),
            "invalid",
        ),
    ];
    for (query, fields, expected, outcome) in cases {
        let (status, body) = json_of(form(&app, &query, &fields).await).await;
        assert_eq!((status, &body), (200, &expected), "{fields:?}");
        assert_eq!(app.last_outcome().await, outcome);
    }
    // The change travels in the body, as OpenCart reads it: any of its fields in the URL, with
    // a POST or a GET, is refused and changes nothing.
    let in_url = at(&format!("order_id={order}&order_status_id=5&notify=1"));
    let url_only = json!({"error": {
        "order_status_id": "Send it in the POST body, not in the URL!",
        "notify": "Send it in the POST body, not in the URL!",
    }});
    for method in [Method::POST, Method::GET] {
        let response = app
            .request(method.clone(), &format!("/index.php?{in_url}"))
            .send()
            .await
            .expect("request");
        assert_eq!(json_of(response).await, (200, url_only.clone()), "{method}");
        assert_eq!(app.last_outcome().await, "invalid");
    }
    let comment_in_url = at(&format!("order_id={order}&comment=from-the-url"));
    let (_, body) = json_of(form(&app, &comment_in_url, &[("order_status_id", "2")]).await).await;
    assert_eq!(
        body,
        json!({"error": {"comment": "Send it in the POST body, not in the URL!"}})
    );
    assert_eq!(order_v1(&app, &shop).await["status"], "Pending");

    for query in [
        "route=api/order/delete",
        "route=",
        "",
        "route=%00%ff../../etc/passwd",
        "route[]=api/login",
    ] {
        let response = app
            .request(Method::GET, &format!("/index.php?{query}"))
            .send()
            .await
            .expect("request");
        let (status, body) = json_of(response).await;
        assert_eq!(status, 404, "{query}");
        let text = body["error"].as_str().expect("a string error");
        assert!(text.starts_with("Warning: The page you requested cannot be found!"));
    }
    let garbage = app
        .request(Method::POST, "/index.php?route=api/login")
        .header("Content-Type", "multipart/form-data; boundary=x")
        .body("--y\r\nnonsense")
        .send()
        .await
        .expect("request");
    let (status, body) = json_of(garbage).await;
    assert_eq!(status, 200);
    assert!(body["error"]["key"].as_str().is_some(), "{body}");
    assert_eq!(app.last_outcome().await, "bad_request");
}

#[tokio::test]
async fn an_order_that_cannot_leave_canceled_for_want_of_stock_gets_one_warning() {
    let app = spawn_app().await;
    let shop = shop(&app, "warehouse", &["orders:write"]).await;
    let (key, order) = (shop.key.clone(), shop.order);
    let token = login3(&app, "warehouse", &key).await;
    let history = format!("route=api/order/history&api_token={token}&order_id={order}");
    let (_, canceled) = json_of(form(&app, &history, &[("order_status_id", "7")]).await).await;
    assert_eq!(canceled["success"], ORDERS_OK, "{canceled}");
    let emptied = app
        .post(
            "/api/v1/products/stock",
            &shop.setup,
            &json!({"items": [{"sku": "LAMP-1", "quantity": 1}]}),
        )
        .await;
    assert_eq!(emptied.status(), 200);

    let (status, refused) = json_of(form(&app, &history, &[("order_status_id", "2")]).await).await;
    assert_eq!(
        (status, refused),
        (
            200,
            json!({"error": "Warning: Not enough stock for LAMP-1 (1 in stock, 3 wanted)!"})
        )
    );
    assert_eq!(app.last_outcome().await, "conflict");
    assert_eq!(order_v1(&app, &shop).await["status"], "Canceled");
}

#[tokio::test]
async fn a_stalled_body_times_out_with_503_in_opencarts_shape() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(Settings {
        request_timeout: "1s",
        ..Settings::default()
    })
    .await;
    let mut stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let head = "POST /index.php?route=api/login HTTP/1.1\r\nHost: x\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nusername=";
    stream.write_all(head.as_bytes()).await.expect("send");
    let mut answer = vec![0u8; 2048];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer)).await;
    let text =
        String::from_utf8_lossy(&answer[..read.expect("answered").expect("read")]).to_string();
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("retry-after: "),
        "{text}"
    );
    let body = text.split("\r\n\r\n").nth(1).expect("a body");
    let body: Value = serde_json::from_str(body).expect("JSON");
    assert!(
        body["error"]
            .as_str()
            .expect("a string error")
            .starts_with("Warning: The call did not finish"),
        "{body}"
    );
    let rows = app.all_history().await;
    assert_eq!(rows[0].call, "POST /index.php?route=api/login");
    assert_eq!(
        (rows[0].status, rows[0].outcome.as_str()),
        (503, "unavailable")
    );
}

/// `keyward serve` at the most verbose log level: the OpenCart entry's tokens, in the URL by
/// design, and a key put in a URL's query or path by mistake, never reach the logs.
#[tokio::test]
async fn the_logs_never_hold_the_opencart_entrys_tokens_or_keys_even_at_trace_level() {
    use std::process::Stdio;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
    let dir = tempfile::tempdir().expect("dir");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["serve", "--demo", "--json", "--listen", "127.0.0.1:0"])
        .env(
            "KEYWARD_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("shop.db").display()),
        )
        .env("KEYWARD_LOG", "trace")
        .env_remove("KEYWARD_ADMIN_PASSWORD")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start keyward serve");
    let mut stderr = child.stderr.take().expect("stderr");
    let logs = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the server printed its line")
        .expect("read stdout")
        .expect("a line");
    let started: Value = serde_json::from_str(&first).expect("JSON");
    let base = started["listening"].as_str().expect("address").to_owned();
    let username = started["demo"]["username"]
        .as_str()
        .expect("user")
        .to_owned();
    let key = started["demo"]["key"].as_str().expect("key").to_owned();

    let client = reqwest::Client::new();
    let login: Value = client
        .post(format!("{base}/index.php?route=api/login"))
        .form(&[("username", username.as_str()), ("key", key.as_str())])
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let token = login["api_token"].as_str().expect("token").to_owned();
    for query in [
        format!("route=api/order/info&api_token={token}&order_id=1"),
        format!("route=api/order/history&token={token}&order_id=1"),
        format!("route=api/order/info&api_token={key}&order_id=1"),
        format!("route=api/login&username={username}&key={key}"),
        format!("route=api/{token}"),
    ] {
        let response = client
            .post(format!("{base}/index.php?{query}"))
            .form(&[("order_status_id", "2"), ("api_token", token.as_str())])
            .send()
            .await
            .expect("call");
        assert!(response.status().as_u16() < 500);
    }
    // A key or token pasted into the path, of the API or of any other page.
    for path in [
        format!("/api/v1/{key}"),
        format!("/api/v1/products/{token}"),
        format!("/admin/apis/{key}"),
    ] {
        let response = client
            .get(format!("{base}{path}"))
            .bearer_auth(&key)
            .send()
            .await
            .expect("call");
        assert!(response.status().as_u16() < 500);
    }

    let pid = child.id().expect("pid").to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("stops")
        .expect("status");
    assert!(status.success());
    let logs = logs.await.expect("logs");
    assert!(logs.contains("/index.php"), "requests are logged");
    assert!(logs.contains("/api/v1/kw_…"), "paths are logged, masked");
    for secret in [
        &key,
        &token,
        &key[3..30].to_owned(),
        &token[4..30].to_owned(),
    ] {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret appeared in the logs"
        );
    }
}

/// The PHP example in `docs/examples/opencart3/`, run as written against the live server.
#[tokio::test]
#[ignore = "needs php-cli and php-curl"]
async fn the_php_opencart_3_example_runs_against_keyward() {
    let app = spawn_app().await;
    let shop = shop(&app, "php-erp", &["orders:write", "customers:read"]).await;
    let (key, order) = (shop.key.clone(), shop.order);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/examples/opencart3/update_order_status.php"
    );

    let output = tokio::process::Command::new("php")
        .arg(script)
        .args([order.to_string().as_str(), "3", "Shipped with UPS 1Z999"])
        .env("OPENCART_URL", app.url(""))
        .env("OPENCART_API_USERNAME", "php-erp")
        .env("OPENCART_API_KEY", &key)
        .output()
        .await
        .expect("run php (install php-cli and php-curl)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(LOGIN_OK), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "Order #{order}: Ada King Lovelace, 269.7000 GBP, Pending"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("3 x Desk lamp"), "{stdout}");
    assert!(stdout.contains(ORDERS_OK), "{stdout}");
    assert!(!stdout.contains(&key) && !stderr.contains(&key));

    let now = order_v1(&app, &shop).await;
    assert_eq!(now["status"], "Shipped");
    let calls: Vec<String> = app
        .history("php-erp")
        .await
        .into_iter()
        .map(|r| format!("{} {}", r.call, r.outcome))
        .collect();
    assert_eq!(
        calls,
        [
            "POST /index.php?route=api/order/history ok",
            "GET /index.php?route=api/order/info ok",
            "POST /index.php?route=api/login ok",
        ]
    );

    // A wrong key: the script reports OpenCart's error and fails.
    let output = tokio::process::Command::new("php")
        .arg(script)
        .args([order.to_string().as_str(), "5"])
        .env("OPENCART_URL", app.url(""))
        .env("OPENCART_API_USERNAME", "php-erp")
        .env("OPENCART_API_KEY", format!("{key}x"))
        .output()
        .await
        .expect("run php");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(WRONG_KEY), "{stderr}");
}
