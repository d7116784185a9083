//! Every row of the spec's error table, and the rule that every credential failure looks the
//! same from outside while the history keeps the real reason.

use crate::helpers::{error_of, spawn_app};
use keyward::credentials::CreateApiUser;
use keyward::domain::admin::Actor;
use keyward::domain::api_user::Status;
use reqwest::Method;
use serde_json::{Value, json};

async fn unauthorized_body(response: reqwest::Response) -> Value {
    let (status, body) = error_of(response).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    body
}

#[tokio::test]
async fn every_credential_failure_gives_the_same_401_and_the_history_keeps_the_reason() {
    let app = spawn_app().await;
    let key = app.api_user("erp", &["products:read"]).await;
    let other_key = app.api_user("other", &[]).await;
    let disabled_key = app.api_user("paused", &[]).await;
    app.credentials
        .set_status(&Actor::system(), "paused", Status::Disabled)
        .await
        .expect("disable");
    let expiring_key = app
        .api_user_with(CreateApiUser {
            username: "shortlived".into(),
            ips: vec!["127.0.0.1".into()],
            expires_in: keyward::credentials::NewExpiry::In(time::Duration::hours(1)),
            ..CreateApiUser::default()
        })
        .await;
    let token = app.login("erp", &key).await;
    let revoked_token = app.login("erp", &key).await;
    app.bearer(Method::POST, "/api/v1/logout", &revoked_token)
        .send()
        .await
        .expect("logout");

    let mut corrupted = key.clone().into_bytes();
    corrupted[10] = if corrupted[10] == b'a' { b'b' } else { b'a' };
    let corrupted = String::from_utf8(corrupted).expect("ascii");
    let unknown = keyward::domain::api_key::ApiKey::generate(64)
        .expect("key")
        .expose()
        .to_owned();

    let mut bodies = Vec::new();
    let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
        (
            "unknown_user",
            app.request(Method::GET, "/api/v1/me")
                .basic_auth("ghost", Some(&key)),
        ),
        (
            "wrong_key",
            app.request(Method::GET, "/api/v1/me")
                .basic_auth("erp", Some(&other_key)),
        ),
        (
            "unknown_key",
            app.bearer(Method::GET, "/api/v1/me", &unknown),
        ),
        (
            "bad_checksum",
            app.bearer(Method::GET, "/api/v1/me", &corrupted),
        ),
        (
            "unknown_token",
            app.bearer(
                Method::GET,
                "/api/v1/me",
                &format!("kwt_{}", "A".repeat(44)),
            ),
        ),
        (
            "revoked_token",
            app.bearer(Method::GET, "/api/v1/me", &revoked_token),
        ),
        (
            "disabled_user",
            app.bearer(Method::GET, "/api/v1/me", &disabled_key),
        ),
        (
            "missing_credentials",
            app.request(Method::GET, "/api/v1/me"),
        ),
        (
            "malformed_credentials",
            app.request(Method::GET, "/api/v1/me")
                .header("Authorization", "Digest abc"),
        ),
        // Two credentials, the key good, the token not: refused, not let through on the key.
        (
            "malformed_credentials",
            app.bearer(Method::GET, "/api/v1/me", &key)
                .header("X-Api-Token", format!("kwt_{}", "A".repeat(44))),
        ),
        (
            "malformed_credentials",
            app.bearer(Method::GET, "/api/v1/me", &key)
                .header("X-Api-Token", &token),
        ),
    ];
    for (outcome, request) in cases {
        let body = unauthorized_body(request.send().await.expect("request")).await;
        assert_eq!(app.last_outcome().await, outcome);
        bodies.push(body["error"]["message"].clone());
    }

    app.clock.advance(time::Duration::hours(2));
    let body = unauthorized_body(app.get("/api/v1/me", &expiring_key).await).await;
    assert_eq!(app.last_outcome().await, "expired_key");
    bodies.push(body["error"]["message"].clone());

    app.clock.advance(time::Duration::hours(23));
    let body = unauthorized_body(app.get("/api/v1/me", &token).await).await;
    assert_eq!(app.last_outcome().await, "expired_token");
    bodies.push(body["error"]["message"].clone());

    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "one message for every failure: {bodies:?}"
    );
}

#[tokio::test]
async fn a_call_from_an_address_not_on_the_list_is_403_naming_the_address() {
    let app = spawn_app().await;
    let key = app
        .api_user_with(CreateApiUser {
            username: "remote".into(),
            ips: vec!["203.0.113.7".into()],
            scopes: vec!["products:read".into()],
            ..CreateApiUser::default()
        })
        .await;

    let (status, body) = error_of(app.get("/api/v1/products", &key).await).await;

    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "ip_not_allowed");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("127.0.0.1")
    );
    assert_eq!(app.last_outcome().await, "ip_not_allowed");
}

#[tokio::test]
async fn an_empty_ip_list_allows_no_address() {
    let app = spawn_app().await;
    let key = app
        .api_user_with(CreateApiUser {
            username: "nowhere".into(),
            ..CreateApiUser::default()
        })
        .await;

    let (status, body) = error_of(app.get("/api/v1/me", &key).await).await;

    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "ip_not_allowed");
}

#[tokio::test]
async fn a_missing_scope_is_403_naming_the_scope() {
    let app = spawn_app().await;
    let key = app.api_user("reader", &["products:read"]).await;

    let (status, body) = error_of(
        app.post(
            "/api/v1/products",
            &key,
            &json!({"sku": "A", "name": "A", "price": "1", "quantity": 1}),
        )
        .await,
    )
    .await;

    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "insufficient_scope");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("products:write")
    );
    assert_eq!(app.last_outcome().await, "insufficient_scope");
    assert_eq!(app.get("/api/v1/orders", &key).await.status(), 403);
}

#[tokio::test]
async fn write_scope_implies_read_of_the_same_resource_only() {
    let app = spawn_app().await;
    let key = app.api_user("writer", &["products:write"]).await;

    assert_eq!(app.get("/api/v1/products", &key).await.status(), 200);
    assert_eq!(app.get("/api/v1/customers", &key).await.status(), 403);
}

#[tokio::test]
async fn over_the_rate_limit_is_429_with_retry_after_and_ratelimit_headers() {
    let app = spawn_app().await;
    let key = app
        .api_user_with(CreateApiUser {
            username: "chatty".into(),
            ips: vec!["127.0.0.1".into()],
            rate_limit_per_minute: Some(3),
            ..CreateApiUser::default()
        })
        .await;

    for remaining in ["2", "1", "0"] {
        let response = app.get("/api/v1/me", &key).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["ratelimit-remaining"], remaining);
    }
    let response = app.get("/api/v1/me", &key).await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after));
    assert_eq!(response.headers()["ratelimit-remaining"], "0");
    let (status, body) = error_of(response).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(app.last_outcome().await, "rate_limited");
}

#[tokio::test]
async fn checks_run_in_order_credentials_status_ip_scope_rate_limit() {
    let app = spawn_app().await;
    let key = app
        .api_user_with(CreateApiUser {
            username: "ordered".into(),
            ips: vec!["203.0.113.1".into()],
            rate_limit_per_minute: Some(1),
            ..CreateApiUser::default()
        })
        .await;

    // Wrong IP and missing scope: the IP is reported, and no rate-limit allowance is spent.
    for _ in 0..3 {
        let (_, body) = error_of(app.get("/api/v1/products", &key).await).await;
        assert_eq!(body["error"]["code"], "ip_not_allowed");
    }
    app.credentials
        .add_ip(&Actor::system(), "ordered", "127.0.0.1")
        .await
        .expect("add ip");
    let (_, body) = error_of(app.get("/api/v1/products", &key).await).await;
    assert_eq!(
        body["error"]["code"], "insufficient_scope",
        "scope before rate limit"
    );
    assert_eq!(app.get("/api/v1/me", &key).await.status(), 200);
    assert_eq!(app.get("/api/v1/me", &key).await.status(), 429);
    app.credentials
        .set_status(&Actor::system(), "ordered", Status::Disabled)
        .await
        .expect("disable");
    let (status, _) = error_of(app.get("/api/v1/me", &key).await).await;
    assert_eq!(status, 401, "status before the rate limit");
}

#[tokio::test]
async fn bad_input_gets_400_404_409_and_422_with_field_details() {
    let app = spawn_app().await;
    let key = app.api_user("catalog", &["products:write"]).await;

    let broken = app
        .bearer(Method::POST, "/api/v1/products", &key)
        .body("{not json")
        .send()
        .await
        .expect("request");
    let (status, body) = error_of(broken).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );

    let (status, body) = error_of(app.get("/api/v1/products/999999", &key).await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, _) = error_of(app.get("/api/v1/products/not-a-number", &key).await).await;
    assert_eq!(status, 404);
    let (status, _) = error_of(app.get("/api/v1/no-such-route", &key).await).await;
    assert_eq!(status, 404);

    let product = json!({"sku": "MUG-1", "name": "Mug", "price": "9.50", "quantity": 3});
    assert_eq!(
        app.post("/api/v1/products", &key, &product).await.status(),
        201
    );
    let (status, body) = error_of(app.post("/api/v1/products", &key, &product).await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict"))
    );
    assert_eq!(body["error"]["details"][0]["field"], "sku");

    let invalid = json!({"sku": "", "name": "x", "price": "1.999", "quantity": -4});
    let (status, body) = error_of(app.post("/api/v1/products", &key, &invalid).await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid"))
    );
    assert_eq!(body["error"]["details"][0]["field"], "price", "{body}");

    let invalid = json!({"sku": "", "name": " ", "price": "1.99", "quantity": -4});
    let (status, body) = error_of(app.post("/api/v1/products", &key, &invalid).await).await;
    assert_eq!(status, 422);
    let fields: Vec<&str> = body["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .map(|d| d["field"].as_str().expect("field"))
        .collect();
    assert_eq!(fields, ["sku", "name", "quantity"]);

    let (status, _) = error_of(app.get("/api/v1/products?limit=5000", &key).await).await;
    assert_eq!(status, 400);
    let delete = app
        .bearer(Method::DELETE, "/api/v1/products", &key)
        .send()
        .await
        .expect("request");
    assert_eq!(delete.headers()["allow"], "GET,HEAD,POST");
    let (status, _) = error_of(delete).await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn a_query_string_on_a_call_that_takes_none_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let (key, customer) = crate::orders::store_with_stock(&app, 5).await;
    let order = json!({"customer_id": customer, "currency": "USD",
        "lines": [{"sku": "LAMP", "quantity": 2}]});
    let stock = json!({"items": [{"sku": "LAMP", "quantity": 50}]});
    let calls = [
        (
            Method::POST,
            "/api/v1/orders?dry_run=true",
            Some(&order),
            "dry_run",
        ),
        (
            Method::POST,
            "/api/v1/products/stock?dry_run=1",
            Some(&stock),
            "dry_run",
        ),
        (
            Method::PATCH,
            "/api/v1/products/1?sku=OTHER",
            Some(&json!({"name": "Cup"})),
            "sku",
        ),
        (Method::GET, "/api/v1/me?&foo=1", None, "foo"),
        (Method::GET, "/api/v1/products/1?expand", None, "expand"),
        (Method::GET, "/api/v1/order-statuses?lang=de", None, "lang"),
        (
            Method::POST,
            "/api/v1/login?remember=1",
            Some(&json!({"username": "shop", "key": key})),
            "remember",
        ),
    ];
    for (method, path, body, name) in calls {
        let mut request = app.bearer(method.clone(), path, &key);
        if let Some(body) = body {
            request = request.json(body);
        }
        let (status, error) = error_of(request.send().await.expect("request")).await;
        assert_eq!(
            (status, error["error"]["code"].as_str()),
            (400, Some("bad_request")),
            "{path}: {error}"
        );
        let message = error["error"]["message"].as_str().expect("message");
        assert!(message.contains(&format!("`{name}`")), "{path}: {message}");
        assert_eq!(app.last_outcome().await, "bad_request", "{path}");
    }
    // A key pasted as a parameter's name is not quoted back, percent-encoded or not.
    for query in [key.clone(), key.replacen('_', "%5F", 1)] {
        let (status, error) = error_of(app.get(&format!("/api/v1/me?{query}"), &key).await).await;
        assert_eq!(status, 400);
        assert!(!error.to_string().contains(&key[3..20]), "{error}");
        assert!(error.to_string().contains("kw_…"), "{error}");
    }
    // Credentials are checked before the query.
    let anonymous = app
        .request(Method::GET, "/api/v1/me?foo=1")
        .send()
        .await
        .expect("request");
    assert_eq!(anonymous.status(), 401);
    // HEAD is GET without the body: it takes the queries GET takes.
    for (path, expected) in [("/api/v1/me?foo=1", 400), ("/api/v1/products?limit=1", 200)] {
        let head = app
            .bearer(Method::HEAD, path, &key)
            .send()
            .await
            .expect("head");
        assert_eq!(head.status(), expected, "{path}");
    }
    // An empty query is no query.
    for path in ["/api/v1/me?", "/api/v1/me?&"] {
        assert_eq!(app.get(path, &key).await.status(), 200, "{path}");
    }

    let product: Value = app.get_json("/api/v1/products/1", &key).await;
    assert_eq!(
        (&product["sku"], &product["name"], &product["quantity"]),
        (&json!("LAMP"), &json!("Desk lamp"), &json!(5))
    );
    let orders: Value = app.get_json("/api/v1/orders", &key).await;
    assert_eq!(orders["data"], json!([]), "no order placed");
    // The same calls without the query go through.
    assert_eq!(app.post("/api/v1/orders", &key, &order).await.status(), 201);
    assert_eq!(
        app.post("/api/v1/products/stock", &key, &stock)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_400_names_the_parameter_header_or_body_it_is_about() {
    let app = spawn_app().await;
    let key = app
        .api_user("detailed", &["products:write", "orders:read"])
        .await;
    let field_of = |response: reqwest::Response| async move {
        let (status, body) = error_of(response).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("bad_request")),
            "{body}"
        );
        body["error"]["details"][0]["field"]
            .as_str()
            .unwrap_or_else(|| panic!("a field-level detail: {body}"))
            .to_owned()
    };
    for (path, field) in [
        ("/api/v1/products?limit=0", "limit"),
        ("/api/v1/products?limit=x", "limit"),
        ("/api/v1/products?after=not-a-cursor", "after"),
        ("/api/v1/products?colour=red", "colour"),
        ("/api/v1/orders?updated_since=yesterday", "updated_since"),
        ("/api/v1/orders?status=Lost", "status"),
        ("/api/v1/me?debug=1", "debug"),
    ] {
        assert_eq!(field_of(app.get(path, &key).await).await, field, "{path}");
    }
    let broken = app
        .bearer(Method::POST, "/api/v1/products", &key)
        .header("Content-Type", "application/json")
        .body("{\"sku\": ")
        .send()
        .await
        .expect("post");
    assert_eq!(field_of(broken).await, "body");
    let spaced = app
        .bearer(Method::POST, "/api/v1/products", &key)
        .header("Idempotency-Key", "two words")
        .json(&json!({"sku": "S", "name": "S", "price": "1.00", "quantity": 1}))
        .send()
        .await
        .expect("post");
    assert_eq!(field_of(spaced).await, "Idempotency-Key");
}
