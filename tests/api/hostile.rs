//! What a hostile or broken client can send: every answer is a clear 4xx from the spec, never
//! a 5xx, nothing is lost, and the server keeps serving everyone else.

use crate::helpers::{TestApp, error_of, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn raw(app: &TestApp, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    stream.write_all(request).await.expect("send");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

fn status_of(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

async fn seeded(app: &TestApp) -> String {
    let key = app
        .api_user(
            "target",
            &["products:write", "orders:write", "customers:write"],
        )
        .await;
    let product = json!({"sku": "SAFE-1", "name": "Untouched", "price": "5.00", "quantity": 3});
    assert_eq!(
        app.post("/api/v1/products", &key, &product).await.status(),
        201
    );
    key
}

/// A customer made with `key`, as JSON.
async fn customer(app: &TestApp, key: &str) -> Value {
    app.post(
        "/api/v1/customers",
        key,
        &json!({"name": "Eve", "email": "eve@example.com"}),
    )
    .await
    .json()
    .await
    .expect("json")
}

async fn product_count(app: &TestApp, key: &str) -> usize {
    let page: Value = app.get_json("/api/v1/products", key).await;
    page["data"].as_array().expect("data").len()
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let app = spawn_app().await;
    let key = seeded(&app).await;
    let huge = format!(
        "{{\"sku\": \"BIG\", \"name\": \"{}\", \"price\": \"1\", \"quantity\": 1}}",
        "x".repeat(2 * 1024 * 1024)
    );

    let response = app
        .bearer(Method::POST, "/api/v1/products", &key)
        .header("Content-Type", "application/json")
        .body(huge)
        .send()
        .await
        .expect("post");

    let (status, body) = error_of(response).await;
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], "bad_request");
    assert_eq!(product_count(&app, &key).await, 1);
}

#[tokio::test]
async fn a_body_declared_too_large_is_refused_before_it_is_sent() {
    let app = spawn_app().await;
    let key = seeded(&app).await;
    let asked = Instant::now();
    let answer = raw(
        &app,
        format!(
            "POST /api/v1/products HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nContent-Length: 99999999\r\n\r\n{{}}"
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(status_of(&answer), 413, "{answer}");
    assert!(answer.contains("\"bad_request\""), "{answer}");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "answered at once, not at the request's timeout"
    );
    assert_eq!(product_count(&app, &key).await, 1);

    // The OpenCart-compatible entry too, a login or an order call.
    for route in ["api/login", "api/order/history&api_token=x"] {
        let asked = Instant::now();
        let answer = raw(
            &app,
            format!(
                "POST /index.php?route={route} HTTP/1.1\r\nHost: x\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 99999999\r\n\r\nkey=1"
            )
            .as_bytes(),
        )
        .await;
        assert_eq!(status_of(&answer), 413, "{route}: {answer}");
        assert!(asked.elapsed() < Duration::from_secs(5), "{route}: at once");
    }
}

#[tokio::test]
async fn oversized_headers_are_refused_with_431() {
    let app = spawn_app().await;
    let key = seeded(&app).await;
    let request = format!(
        "GET /api/v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nX-Junk: {}\r\n\r\n",
        "j".repeat(512 * 1024)
    );

    let answer = raw(&app, request.as_bytes()).await;

    assert_eq!(
        status_of(&answer),
        431,
        "{}",
        &answer[..answer.len().min(200)]
    );
    assert_eq!(
        app.get("/api/v1/me", &key).await.status(),
        200,
        "the server still serves"
    );
}

#[tokio::test]
async fn fifty_stalled_clients_do_not_delay_others_and_are_cut_off() {
    let app = crate::helpers::spawn_app_with(crate::helpers::Settings {
        request_timeout: "2s",
        ..Default::default()
    })
    .await;
    let key = seeded(&app).await;
    let mut stalled = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(app.addr).await.expect("connect");
        stream
            .write_all(b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nAuthori")
            .await
            .expect("send");
        stalled.push(stream);
    }

    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(app.get("/api/v1/me", &key).await.status(), 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "others were served at once: {:?}",
        started.elapsed()
    );

    // The stalled ones are closed once the time to send headers is over.
    let mut closed = 0;
    for mut stream in stalled {
        let mut buffer = [0u8; 256];
        if let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_secs(6), stream.read(&mut buffer)).await
        {
            closed += 1;
        }
    }
    assert_eq!(closed, 50, "every stalled connection was closed");
}

#[tokio::test]
async fn invalid_utf8_anywhere_is_a_4xx() {
    let app = spawn_app().await;
    let key = seeded(&app).await;

    let body = app
        .bearer(Method::POST, "/api/v1/products", &key)
        .header("Content-Type", "application/json")
        .body(
            b"{\"sku\": \"\xff\xfe\", \"name\": \"x\", \"price\": \"1\", \"quantity\": 1}".to_vec(),
        )
        .send()
        .await
        .expect("post");
    assert_eq!(body.status(), 400);
    assert_eq!(app.get("/api/v1/products/%FF%FE", &key).await.status(), 404);
    let found = app.get("/api/v1/products?sku=%FF%FE", &key).await;
    assert_eq!(found.status(), 200);
    let found: Value = found.json().await.expect("json");
    assert_eq!(found["data"], json!([]), "a SKU that matches nothing");
    let utf8_junk = raw(
        &app,
        b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\xfd\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&utf8_junk), 401);
}

#[tokio::test]
async fn injection_strings_in_filters_and_paths_change_nothing() {
    let app = spawn_app().await;
    let key = seeded(&app).await;
    let nasty = [
        "' OR 1=1 --",
        "\"; DROP TABLE products; --",
        "1; DELETE FROM api_history",
        "%00",
        // A real NUL, which PostgreSQL refuses in any text.
        "\0",
        "../../../../etc/passwd",
        "<script>alert(1)</script>",
        "${jndi:ldap://x}",
        "\u{202e}gnp.exe",
    ];
    for text in nasty {
        let encoded: String = url_encode(text);
        for path in [
            format!("/api/v1/products?sku={encoded}"),
            format!("/api/v1/products?status={encoded}"),
            format!("/api/v1/products?updated_since={encoded}"),
            format!("/api/v1/orders?status={encoded}"),
            format!("/api/v1/orders?customer_id={encoded}"),
            format!("/api/v1/customers?email={encoded}"),
            format!("/api/v1/products/{encoded}"),
            format!("/api/v1/orders/{encoded}/history"),
            format!("/api/v1/customers/{encoded}"),
        ] {
            let status = app.get(&path, &key).await.status().as_u16();
            assert!((200..500).contains(&status), "{path} answered {status}");
        }
    }
    let long = "a".repeat(10_000);
    assert!(
        app.get(&format!("/api/v1/products?sku={long}"), &key)
            .await
            .status()
            .is_success()
    );
    for id in ["-1", "0", "99999999999999999999", "1e3", "0x10"] {
        assert_eq!(
            app.get(&format!("/api/v1/orders/{id}"), &key)
                .await
                .status(),
            404,
            "{id}"
        );
    }
    assert_eq!(product_count(&app, &key).await, 1);
    assert!(
        app.history("target").await.len() > 50,
        "the history table is intact"
    );
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn absurd_pagination_is_refused_clearly() {
    let app = spawn_app().await;
    let key = seeded(&app).await;

    for query in [
        "limit=0",
        "limit=-1",
        "limit=1001",
        "limit=1000000000",
        "limit=99999999999999999999",
        "limit=abc",
        "after=%00",
        "after=aWQ6LTE",
    ] {
        let (status, body) =
            error_of(app.get(&format!("/api/v1/products?{query}"), &key).await).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(body["error"]["code"], "bad_request");
    }
}

#[tokio::test]
async fn negative_and_huge_quantities_and_prices_are_invalid() {
    let app = spawn_app().await;
    let key = seeded(&app).await;
    let customer = customer(&app, &key).await;

    for product in [
        json!({"sku": "N1", "name": "n", "price": "1", "quantity": -1}),
        json!({"sku": "N2", "name": "n", "price": "1", "quantity": 1_000_000_000_000i64}),
        json!({"sku": "N3", "name": "n", "price": "1", "quantity": 9_223_372_036_854_775_807i64}),
        json!({"sku": "N4", "name": "n", "price": "-1", "quantity": 1}),
        json!({"sku": "N5", "name": "n", "price": "99999999999999.99", "quantity": 1}),
        json!({"sku": "N6", "name": "n", "price": 1e308, "quantity": 1}),
    ] {
        let status = app.post("/api/v1/products", &key, &product).await.status();
        assert_eq!(status, 422, "{product}");
    }
    let overflow = app
        .bearer(Method::POST, "/api/v1/products", &key)
        .header("Content-Type", "application/json")
        .body(r#"{"sku": "N7", "name": "n", "price": "1", "quantity": 99999999999999999999999}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(overflow.status(), 422);
    for quantity in [0i64, -5, 1_000_000_000_000] {
        let order = json!({"customer_id": customer["id"], "currency": "USD", "lines": [{"sku": "SAFE-1", "quantity": quantity}]});
        assert_eq!(
            app.post("/api/v1/orders", &key, &order).await.status(),
            422,
            "{quantity}"
        );
    }
    let stock = json!({"items": [{"sku": "SAFE-1", "quantity": -3}]});
    assert_eq!(
        app.post("/api/v1/products/stock", &key, &stock)
            .await
            .status(),
        422
    );
    let product: Value = app.get_json("/api/v1/products/1", &key).await;
    assert_eq!(product["quantity"], 3, "nothing changed");
}

#[tokio::test]
async fn a_body_or_an_object_inside_it_sent_as_an_array_is_refused_not_read_by_position() {
    let app = spawn_app().await;
    let key = seeded(&app).await;
    let customer = customer(&app, &key).await;
    let cases = [
        (
            Method::PATCH,
            "/api/v1/products/1".to_owned(),
            json!(["SAFE-X"]),
            "body",
        ),
        (
            Method::POST,
            "/api/v1/products".to_owned(),
            json!(["ARR-1", "Array product", null, "3.00", 7, "enabled"]),
            "body",
        ),
        (
            Method::POST,
            "/api/v1/customers".to_owned(),
            json!(["Mallory", "m@example.com"]),
            "body",
        ),
        (
            Method::POST,
            "/api/v1/orders".to_owned(),
            json!({"customer_id": customer["id"], "currency": "USD", "lines": [["SAFE-1", 1]]}),
            "lines[0]",
        ),
        (
            Method::POST,
            "/api/v1/orders".to_owned(),
            json!([customer["id"], "USD", [{"sku": "SAFE-1", "quantity": 1}]]),
            "body",
        ),
        (
            Method::POST,
            "/api/v1/products/stock".to_owned(),
            json!({"items": [["SAFE-1", 9]]}),
            "items[0]",
        ),
        (
            Method::POST,
            "/api/v1/products/stock".to_owned(),
            json!([[["SAFE-1", 9]]]),
            "body",
        ),
        (
            Method::POST,
            "/api/v1/login".to_owned(),
            json!(["target", key]),
            "body",
        ),
    ];
    for (method, path, body, field) in cases {
        let response = app
            .bearer(method.clone(), &path, &key)
            .json(&body)
            .send()
            .await
            .expect("request");
        let (status, error) = error_of(response).await;
        assert_eq!(status, 422, "{method} {path} {body}: {error}");
        assert_eq!(error["error"]["code"], "invalid", "{error}");
        let details = &error["error"]["details"][0];
        assert_eq!(details["field"], field, "{method} {path}: {error}");
        assert!(
            details["message"]
                .as_str()
                .is_some_and(|m| m.contains("expected an object")),
            "{error}"
        );
    }
    let products: Value = app.get_json("/api/v1/products", &key).await;
    assert_eq!(
        products["data"].as_array().map(Vec::len),
        Some(1),
        "{products}"
    );
    assert_eq!(products["data"][0]["sku"], "SAFE-1", "nothing renamed");
    assert_eq!(products["data"][0]["quantity"], 3, "no stock set or taken");
    let orders: Value = app.get_json("/api/v1/orders", &key).await;
    assert_eq!(orders["data"], json!([]), "no order placed");
    let customers: Value = app.get_json("/api/v1/customers", &key).await;
    assert_eq!(
        customers["data"].as_array().map(Vec::len),
        Some(1),
        "{customers}"
    );
}

#[tokio::test]
async fn a_wrong_key_and_an_unknown_user_look_the_same_from_outside() {
    let app = spawn_app().await;
    app.api_user("real-user", &[]).await;
    let other = keyward::domain::api_key::ApiKey::generate(64)
        .expect("key")
        .expose()
        .to_owned();
    let send = |username: &'static str| {
        app.request(Method::GET, "/api/v1/me")
            .basic_auth(username, Some(other.clone()))
            .send()
    };

    let wrong_key = send("real-user").await.expect("call");
    let unknown_user = send("nobody-here").await.expect("call");
    assert_eq!(wrong_key.status(), unknown_user.status());
    assert_eq!(
        wrong_key.headers()["www-authenticate"],
        unknown_user.headers()["www-authenticate"]
    );
    let strip = |mut v: Value| {
        v["error"]["request_id"] = Value::Null;
        v
    };
    assert_eq!(
        strip(wrong_key.json().await.expect("json")),
        strip(unknown_user.json().await.expect("json"))
    );

    // Timing: a refused call takes as long whether or not its username exists. Calls go in
    // pairs, one of each, each first in turn, so a machine busy with other work slows both
    // alike; the median of the pairs' differences stays within a tenth of a call (or a
    // quarter of a millisecond). Reading the existing user's whole record for the history
    // made it a third slower.
    let mut gaps = Vec::new();
    let mut calls = Vec::new();
    let time = |username| async move {
        let start = Instant::now();
        send(username).await.expect("call");
        start.elapsed().as_secs_f64()
    };
    for pair in 0..80 {
        // Each first in turn.
        let (wrong_key, unknown_user) = if pair % 2 == 0 {
            let wrong_key = time("real-user").await;
            (wrong_key, time("nobody-here").await)
        } else {
            let unknown_user = time("nobody-here").await;
            (time("real-user").await, unknown_user)
        };
        gaps.push(wrong_key - unknown_user);
        calls.push(unknown_user);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (gap, call) = (median(gaps), median(calls));
    assert!(
        gap.abs() < (call / 10.0).max(0.000_25),
        "a wrong key's refusal takes {:.0} µs more than an unknown user's ({:.0} µs)",
        gap * 1e6,
        call * 1e6
    );
}

#[tokio::test]
async fn a_key_sent_where_a_value_belongs_never_comes_back_in_the_refusal() {
    let app = spawn_app().await;
    let key = seeded(&app).await;
    // Any dozen characters of it: a key cut short in the answer is still a leak.
    let secret = &key[30..42];
    let mut answers = Vec::new();
    for path in [
        format!("/api/v1/products?status={key}"),
        format!("/api/v1/products?{key}=1"),
        format!("/api/v1/orders?customer_id={key}"),
    ] {
        answers.push((path.clone(), app.get(&path, &key).await));
    }
    for (path, body) in [
        (
            "/api/v1/orders",
            json!({"customer_id": key, "lines": [{"sku": "SAFE-1", "quantity": 1}]}),
        ),
        (
            "/api/v1/products",
            json!({"sku": "X", "name": "X", "price": key, "quantity": 1}),
        ),
        ("/api/v1/products", json!({"sku": "X", key.as_str(): 1})),
    ] {
        answers.push((path.to_owned(), app.post(path, &key, &body).await));
    }
    let leak = app
        .request(Method::POST, "/api/v1/leaks")
        .json(&json!({"keys": key}))
        .send()
        .await
        .expect("leak report");
    answers.push(("/api/v1/leaks".to_owned(), leak));
    for (path, answer) in answers {
        let status = answer.status().as_u16();
        let text = answer.text().await.expect("body");
        assert!((400..500).contains(&status), "{path}: {status} {text}");
        assert!(!text.contains(secret), "{path} sent the key back: {text}");
    }
}
