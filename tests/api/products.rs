//! The catalog: products, pagination, filters and the all-or-nothing stock update.

use crate::helpers::{TestApp, error_of, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};

async fn seed(app: &TestApp, key: &str, count: usize) {
    for i in 0..count {
        let product = json!({"sku": format!("SKU-{i:03}"), "name": format!("Product {i}"), "price": "10.00", "quantity": 5});
        assert_eq!(
            app.post("/api/v1/products", key, &product).await.status(),
            201
        );
    }
}

#[tokio::test]
async fn a_product_is_created_read_and_patched_with_exact_money() {
    let app = spawn_app().await;
    let key = app.api_user("catalog", &["products:write"]).await;

    let response = app
        .post("/api/v1/products", &key, &json!({"sku": "MUG", "name": "Mug", "price": 19.99, "quantity": 12, "description": "Enamel"}))
        .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let created: Value = response.json().await.expect("json");
    assert_eq!(
        created["price"], "19.99",
        "a JSON number is read exactly and answered as a string"
    );
    assert_eq!(created["status"], "enabled");
    assert_eq!(location, format!("/api/v1/products/{}", created["id"]));

    let patch = |body: Value| {
        app.bearer(Method::PATCH, &location, &key)
            .json(&body)
            .send()
    };
    let patched: Value = patch(json!({"price": "0.10", "quantity": 0}))
        .await
        .expect("patch")
        .json()
        .await
        .expect("json");
    assert_eq!(patched["price"], "0.10");
    assert_eq!(patched["quantity"], 0);
    assert_eq!(patched["name"], "Mug", "fields not sent stay as they are");

    let fetched: Value = app.get_json(&location, &key).await;
    assert_eq!(fetched, patched);

    // `null` clears nothing a product must have: refused, and the product stays as it was.
    for field in ["sku", "name", "price", "quantity", "status"] {
        let (status, error) = error_of(patch(json!({ field: null })).await.expect("patch")).await;
        assert_eq!(
            (status, error["error"]["code"].as_str()),
            (422, Some("invalid")),
            "{field}: {error}"
        );
        assert_eq!(error["error"]["details"][0]["field"], field);
    }
    let fetched: Value = app.get_json(&location, &key).await;
    assert_eq!(fetched, patched);
    // A description may be empty: `null` empties it.
    let emptied: Value = patch(json!({"description": null}))
        .await
        .expect("patch")
        .json()
        .await
        .expect("json");
    assert_eq!(emptied["description"], "");
}

#[tokio::test]
async fn lists_page_with_an_opaque_cursor_until_next_is_null() {
    let app = spawn_app().await;
    let key = app.api_user("pager", &["products:write"]).await;
    seed(&app, &key, 7).await;

    let mut skus = Vec::new();
    let mut path = "/api/v1/products?limit=3".to_owned();
    loop {
        let page: Value = app.get_json(&path, &key).await;
        skus.extend(
            page["data"]
                .as_array()
                .expect("data")
                .iter()
                .map(|p| p["sku"].as_str().expect("sku").to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => path = format!("/api/v1/products?limit=3&after={next}"),
            None => break,
        }
    }
    assert_eq!(skus.len(), 7);
    assert_eq!(skus.first().map(String::as_str), Some("SKU-000"));

    let (status, _) = error_of(app.get("/api/v1/products?after=garbage", &key).await).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn products_filter_by_sku_status_and_update_time() {
    let app = spawn_app().await;
    let key = app.api_user("filters", &["products:write"]).await;
    seed(&app, &key, 3).await;
    app.bearer(Method::PATCH, "/api/v1/products/2", &key)
        .json(&json!({"status": "disabled"}))
        .send()
        .await
        .expect("patch");

    let by_sku: Value = app.get_json("/api/v1/products?sku=SKU-001", &key).await;
    assert_eq!(by_sku["data"].as_array().expect("data").len(), 1);
    let disabled: Value = app.get_json("/api/v1/products?status=disabled", &key).await;
    assert_eq!(disabled["data"][0]["sku"], "SKU-001");
    let future: Value = app
        .get_json("/api/v1/products?updated_since=2999-01-01T00:00:00Z", &key)
        .await;
    assert_eq!(future["data"], json!([]));
    let (status, _) = error_of(
        app.get("/api/v1/products?updated_since=yesterday", &key)
            .await,
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn bulk_stock_update_is_all_or_nothing() {
    let app = spawn_app().await;
    let key = app.api_user("stock", &["products:write"]).await;
    seed(&app, &key, 3).await;

    let ok = app
        .post("/api/v1/products/stock", &key, &json!({"items": [{"sku": "SKU-000", "quantity": 40}, {"sku": "SKU-001", "quantity": 0}]}))
        .await;
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.expect("json");
    assert_eq!(body["data"][0]["quantity"], 40);

    let partial = app
        .post(
            "/api/v1/products/stock",
            &key,
            &json!({"items": [{"sku": "SKU-002", "quantity": 99}, {"sku": "NOPE", "quantity": 1}]}),
        )
        .await;
    let (status, body) = error_of(partial).await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["details"][0]["field"], "items[1].sku");
    let untouched: Value = app.get_json("/api/v1/products/3", &key).await;
    assert_eq!(untouched["quantity"], 5, "nothing changed");

    let duplicate = app
        .post("/api/v1/products/stock", &key, &json!({"items": [{"sku": "SKU-000", "quantity": 1}, {"sku": "SKU-000", "quantity": 2}]}))
        .await;
    assert_eq!(duplicate.status(), 422);
    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({"sku": format!("S{i}"), "quantity": 1}))
        .collect();
    assert_eq!(
        app.post("/api/v1/products/stock", &key, &json!({"items": too_many}))
            .await
            .status(),
        422
    );
}

#[tokio::test]
async fn concurrent_bulk_updates_of_the_same_products_each_apply_whole() {
    let app = spawn_app().await;
    let key = app.api_user("stockers", &["products:write"]).await;
    seed(&app, &key, 4).await;

    // Each call sets all four products to its own quantity, naming them in its own order.
    let mut calls = tokio::task::JoinSet::new();
    for call in 0..12_i64 {
        let skus: Vec<String> = (0..4)
            .map(|i| format!("SKU-{:03}", (i + call) % 4))
            .collect();
        let items: Vec<Value> = skus
            .iter()
            .map(|sku| json!({"sku": sku, "quantity": 100 + call}))
            .collect();
        let request = app
            .bearer(Method::POST, "/api/v1/products/stock", &key)
            .json(&json!({ "items": items }));
        calls.spawn(async move {
            let response = request.send().await.expect("call");
            (
                skus,
                response.status().as_u16(),
                response.text().await.expect("body"),
            )
        });
    }
    while let Some(result) = calls.join_next().await {
        let (skus, status, body) = result.expect("task");
        assert_eq!(status, 200, "{body}");
        let body: Value = serde_json::from_str(&body).expect("json");
        let answered: Vec<&str> = body["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|p| p["sku"].as_str().expect("sku"))
            .collect();
        assert_eq!(answered, skus, "in the order of the items");
    }

    let page: Value = app.get_json("/api/v1/products?limit=10", &key).await;
    let quantities: Vec<i64> = page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|p| p["quantity"].as_i64().expect("quantity"))
        .collect();
    assert_eq!(quantities.len(), 4);
    assert!(
        quantities.iter().all(|q| *q == quantities[0]) && (100..112).contains(&quantities[0]),
        "one call's quantities, whole: {quantities:?}"
    );
}

#[tokio::test]
async fn a_retried_post_with_the_same_idempotency_key_changes_nothing() {
    let app = spawn_app().await;
    let key = app.api_user("retrier", &["products:write"]).await;
    let product = json!({"sku": "ONCE", "name": "Once", "price": "1.00", "quantity": 1});

    let send = |body: &Value| {
        app.bearer(Method::POST, "/api/v1/products", &key)
            .header("Idempotency-Key", "abc-123")
            .json(body)
            .send()
    };
    let first = send(&product).await.expect("first");
    assert_eq!(first.status(), 201);
    let first_body: Value = first.json().await.expect("json");
    let second = send(&product).await.expect("retry");
    assert_eq!(second.status(), 201, "the first answer again, not a 409");
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    assert_eq!(second.json::<Value>().await.expect("json"), first_body);

    let different = send(&json!({"sku": "OTHER", "name": "Other", "price": "1.00", "quantity": 1}))
        .await
        .expect("reuse");
    assert_eq!(different.status(), 422);
    let list: Value = app.get_json("/api/v1/products", &key).await;
    assert_eq!(list["data"].as_array().expect("data").len(), 1);
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_refused_on_every_post_public_ones_too() {
    let app = spawn_app().await;
    let key = app.api_user("keyed", &["products:write"]).await;
    let long = "k".repeat(256);

    let product = app
        .bearer(Method::POST, "/api/v1/products", &key)
        .header("Idempotency-Key", long.as_str())
        .json(&json!({"sku": "LONG", "name": "Long", "price": "1.00", "quantity": 1}))
        .send()
        .await
        .expect("post");
    let login = app
        .request(Method::POST, "/api/v1/login")
        .header("Idempotency-Key", long.as_str())
        .json(&json!({"username": "keyed", "key": key}))
        .send()
        .await
        .expect("login");
    let mut refused = vec![product, login];
    for value in ["a\tb", "order 42"] {
        let response = app
            .bearer(Method::POST, "/api/v1/products", &key)
            .header("Idempotency-Key", value)
            .json(&json!({"sku": "ODD", "name": "Odd", "price": "1.00", "quantity": 1}))
            .send()
            .await
            .expect("post");
        refused.push(response);
    }
    let twice = app
        .bearer(Method::POST, "/api/v1/products", &key)
        .header("Idempotency-Key", "first")
        .header("Idempotency-Key", "second")
        .json(&json!({"sku": "TWICE", "name": "Twice", "price": "1.00", "quantity": 1}))
        .send()
        .await
        .expect("post");
    refused.push(twice);
    for response in refused {
        let (status, body) = error_of(response).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .expect("message")
                .contains("Idempotency-Key"),
            "{body}"
        );
    }
    let products: Value = app.get_json("/api/v1/products", &key).await;
    assert_eq!(products["data"], json!([]), "nothing was created");
    // A well-formed key on a public POST is accepted (there is no caller to remember it for).
    let login = app
        .request(Method::POST, "/api/v1/login")
        .header("Idempotency-Key", "login-1")
        .json(&json!({"username": "keyed", "key": key}))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), 200);
}

#[tokio::test]
async fn unknown_query_parameters_and_missing_fields_are_named() {
    let app = spawn_app().await;
    let key = app
        .api_user("strict", &["products:write", "customers:write"])
        .await;

    let (status, body) = error_of(app.get("/api/v1/customers?phone=555", &key).await).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("phone"),
        "{body}"
    );

    let (status, body) = error_of(
        app.post(
            "/api/v1/products",
            &key,
            &json!({"sku": "A", "name": "A", "quantity": 1}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["details"][0]["field"], "price");
    assert_eq!(body["error"]["details"][0]["message"], "is required");

    let (_, body) = error_of(
        app.post(
            "/api/v1/products",
            &key,
            &json!({"sku": "A", "name": "A", "price": "1", "quantity": "1"}),
        )
        .await,
    )
    .await;
    assert!(
        body["error"]["details"][0]["message"]
            .as_str()
            .expect("message")
            .contains("integer"),
        "{body}"
    );

    let (status, _) = error_of(app.get("/api/v1/products?limit=-1", &key).await).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_customer_phone_is_removed_with_null_and_kept_when_absent() {
    let app = spawn_app().await;
    let key = app.api_user("phones", &["customers:write"]).await;
    app.post(
        "/api/v1/customers",
        &key,
        &json!({"name": "Hedy", "email": "hedy@example.com", "phone": "+43 1 555"}),
    )
    .await;

    let patch = |body: Value| {
        app.bearer(Method::PATCH, "/api/v1/customers/1", &key)
            .json(&body)
            .send()
    };
    let kept: Value = patch(json!({"name": "Hedy Lamarr"}))
        .await
        .expect("patch")
        .json()
        .await
        .expect("json");
    assert_eq!(kept["phone"], "+43 1 555");
    let removed: Value = patch(json!({"phone": null}))
        .await
        .expect("patch")
        .json()
        .await
        .expect("json");
    assert_eq!(removed["phone"], Value::Null);

    // A field that cannot be empty is not cleared by `null`: refused, nothing changed.
    for (path, body) in [
        ("/api/v1/customers/1", json!({"name": null})),
        (
            "/api/v1/customers/1",
            json!({"email": null, "name": "Hedy L."}),
        ),
    ] {
        let response = app
            .bearer(Method::PATCH, path, &key)
            .json(&body)
            .send()
            .await;
        let (status, error) = error_of(response.expect("patch")).await;
        assert_eq!(
            (status, error["error"]["code"].as_str()),
            (422, Some("invalid")),
            "{body}"
        );
    }
    let unchanged: Value = app.get_json("/api/v1/customers/1", &key).await;
    assert_eq!(unchanged["name"], "Hedy Lamarr");
    assert_eq!(unchanged["email"], "hedy@example.com");
}

#[tokio::test]
async fn a_customer_is_found_by_email_whatever_its_case() {
    let app = spawn_app().await;
    let key = app.api_user("crm", &["customers:write"]).await;
    for (name, email) in [("Ada", "Ada@Example.com"), ("Bob", "bob@example.com")] {
        let created = app
            .post(
                "/api/v1/customers",
                &key,
                &json!({"name": name, "email": email}),
            )
            .await;
        assert_eq!(created.status(), 201);
    }
    let names = |page: Value| {
        page["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|c| c["name"].as_str().expect("name").to_owned())
            .collect::<Vec<_>>()
    };
    // "Find or create" in one call: the email as the integration has it, in any case.
    let found: Value = app
        .get_json("/api/v1/customers?email=ada%40example.COM", &key)
        .await;
    assert_eq!(
        (names(found.clone()), &found["next"]),
        (vec!["Ada".to_owned()], &Value::Null)
    );
    let missing: Value = app
        .get_json("/api/v1/customers?email=carol%40example.com", &key)
        .await;
    assert_eq!(names(missing), Vec::<String>::new());
    let every: Value = app.get_json("/api/v1/customers", &key).await;
    assert_eq!(names(every), vec!["Ada", "Bob"]);
}

#[tokio::test]
async fn json_sent_as_curl_d_sends_it_is_read_but_real_forms_are_refused() {
    let app = spawn_app().await;
    let key = app.api_user("curl-user", &["products:write"]).await;
    let form = "application/x-www-form-urlencoded";

    let json_as_form = app
        .bearer(Method::POST, "/api/v1/products", &key)
        .header("Content-Type", form)
        .body(r#"{"sku": "CURL-1", "name": "From curl -d", "price": "1.00", "quantity": 1}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(json_as_form.status(), 201);

    let real_form = app
        .bearer(Method::POST, "/api/v1/products", &key)
        .header("Content-Type", form)
        .body("sku=X&name=Y")
        .send()
        .await
        .expect("request");
    let (status, body) = error_of(real_form).await;
    assert_eq!(status, 415);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("application/json")
    );
}

#[tokio::test]
async fn updated_at_moves_only_when_a_value_changes() {
    let app = spawn_app().await;
    let key = app
        .api_user("sync", &["products:write", "customers:write"])
        .await;
    seed(&app, &key, 2).await;
    app.post(
        "/api/v1/customers",
        &key,
        &json!({"name": "Ada", "email": "ada@example.com"}),
    )
    .await;
    let read = |path: &'static str| {
        let app = &app;
        let key = &key;
        async move {
            let body: Value = app.get_json(path, key).await;
            body["updated_at"].clone()
        }
    };
    let patch = |path: &'static str, body: Value| {
        let app = &app;
        let key = &key;
        async move {
            let response = app
                .bearer(Method::PATCH, path, key)
                .json(&body)
                .send()
                .await
                .expect("patch");
            assert_eq!(response.status(), 200);
        }
    };
    let stock = |sku: &'static str, quantity: i64| {
        let app = &app;
        let key = &key;
        async move {
            let body = json!({"items": [{"sku": sku, "quantity": quantity}]});
            let response = app.post("/api/v1/products/stock", key, &body).await;
            assert_eq!(response.status(), 200);
        }
    };
    let product = read("/api/v1/products/1").await;
    let customer = read("/api/v1/customers/1").await;
    app.clock.advance(time::Duration::hours(1));

    // What is already there: no change, nothing for `updated_since` to list.
    patch(
        "/api/v1/products/1",
        json!({"sku": "SKU-000", "name": "Product 0", "price": "10.00", "quantity": 5, "status": "enabled"}),
    )
    .await;
    patch("/api/v1/products/1", json!({})).await;
    stock("SKU-000", 5).await;
    patch(
        "/api/v1/customers/1",
        json!({"name": "Ada", "email": "ada@example.com", "phone": null}),
    )
    .await;
    assert_eq!(read("/api/v1/products/1").await, product);
    assert_eq!(read("/api/v1/customers/1").await, customer);
    let since = time::OffsetDateTime::now_utc() + time::Duration::minutes(30);
    let since = since
        .format(&time::format_description::well_known::Rfc3339)
        .expect("time");
    let listed: Value = app
        .get_json(&format!("/api/v1/products?updated_since={since}"), &key)
        .await;
    assert_eq!(listed["data"], json!([]), "{listed}");

    // Each field that changes moves it.
    for (path, body) in [
        ("/api/v1/products/1", json!({"price": "10.01"})),
        ("/api/v1/products/1", json!({"description": "new"})),
        ("/api/v1/customers/1", json!({"phone": "+1 555"})),
        ("/api/v1/customers/1", json!({"email": "ada@example.org"})),
        // Emails are unique whatever their case, but a change of case is a change.
        ("/api/v1/customers/1", json!({"email": "Ada@Example.org"})),
    ] {
        let before = read(path).await;
        app.clock.advance(time::Duration::minutes(1));
        patch(path, body.clone()).await;
        assert_ne!(read(path).await, before, "{path} {body}");
    }
    let before = read("/api/v1/products/2").await;
    app.clock.advance(time::Duration::minutes(1));
    stock("SKU-001", 6).await;
    assert_ne!(read("/api/v1/products/2").await, before);
}

#[tokio::test]
async fn what_other_systems_write_is_read_as_they_mean_it_and_wrong_values_are_named() {
    let app = spawn_app().await;
    let key = app
        .api_user(
            "erp",
            &["products:write", "orders:write", "customers:write"],
        )
        .await;
    let send =
        |method: Method, path: &str, body: Value| app.bearer(method, path, &key).json(&body).send();

    // Windows line breaks in a description; an exponent in a JSON number, read exactly (the
    // body written by hand: `json!` would send 150.0).
    let response = app
        .bearer(Method::POST, "/api/v1/products", &key)
        .header("content-type", "application/json")
        .body(
            r#"{"sku": "RUG", "name": "Rug", "price": 1.5e2, "quantity": 3,
                  "description": "<p>Wool</p>\r\n<p>Hand-made</p>"}"#,
        )
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 201);
    let rug: Value = response.json().await.expect("json");
    assert_eq!(rug["price"], "150.00");
    assert_eq!(rug["description"], "<p>Wool</p>\r\n<p>Hand-made</p>");
    let raw = app
        .bearer(Method::PATCH, "/api/v1/products/1", &key)
        .header("content-type", "application/json")
        .body(r#"{"price": 1999e-2}"#)
        .send()
        .await
        .expect("patch");
    assert_eq!(raw.json::<Value>().await.expect("json")["price"], "19.99");
    // A byte order mark before the JSON, as Notepad saves a file for `curl -d @file`, whether
    // labelled JSON or, as `curl -d` labels it, a form.
    for (content_type, quantity) in [
        ("application/json", 4),
        ("application/x-www-form-urlencoded", 5),
    ] {
        let marked = app
            .bearer(Method::PATCH, "/api/v1/products/1", &key)
            .header("content-type", content_type)
            .body(format!("\u{feff}{{\"quantity\": {quantity}}}"))
            .send()
            .await
            .expect("patch");
        assert_eq!(marked.status(), 200, "{content_type}");
        let product: Value = marked.json().await.expect("json");
        assert_eq!(product["quantity"], quantity, "{content_type}");
    }

    let customer = send(
        Method::POST,
        "/api/v1/customers",
        json!({"name": "Ada", "email": "ada@example.com"}),
    )
    .await
    .expect("post");
    assert_eq!(customer.status(), 201);
    let order = |currency: &str| json!({"customer_id": 1, "currency": currency, "lines": [{"sku": "RUG", "quantity": 1}]});
    let long_local = format!("{}@example.com", "a".repeat(65));
    for (method, path, body, field) in [
        // A name is one line.
        (
            Method::PATCH,
            "/api/v1/products/1",
            json!({"name": "Rug\r\nWool"}),
            "name",
        ),
        // A value of the wrong type is that field's error, not broken JSON.
        (
            Method::PATCH,
            "/api/v1/products/1",
            json!({"status": 1}),
            "status",
        ),
        (
            Method::PATCH,
            "/api/v1/products/1",
            json!({"status": true}),
            "status",
        ),
        (
            Method::PATCH,
            "/api/v1/products/1",
            json!({"quantity": 1e20}),
            "quantity",
        ),
        (
            Method::PATCH,
            "/api/v1/products/1",
            json!({"price": 1e-3}),
            "price",
        ),
        (
            Method::POST,
            "/api/v1/orders/1/history",
            json!({"status": 9_223_372_036_854_775_808_u64}),
            "status",
        ),
        // A currency is one ISO 4217 lists; a phone number has digits; an email's local
        // part fits RFC 5321.
        (Method::POST, "/api/v1/orders", order("ABC"), "currency"),
        (Method::POST, "/api/v1/orders", order("usd"), "currency"),
        (
            Method::PATCH,
            "/api/v1/customers/1",
            json!({"phone": "()()()"}),
            "phone",
        ),
        (
            Method::PATCH,
            "/api/v1/customers/1",
            json!({"email": long_local}),
            "email",
        ),
    ] {
        let response = send(method, path, body.clone()).await.expect("send");
        let (status, error) = error_of(response).await;
        assert_eq!(status, 422, "{body}: {error}");
        assert_eq!(error["error"]["details"][0]["field"], field, "{body}");
    }
    let order = send(
        Method::POST,
        "/api/v1/orders",
        json!({
            "customer_id": 1, "currency": "JPY",
            "lines": [{"sku": "RUG", "quantity": 1}], "comment": "Leave at the door\r\nthanks"
        }),
    )
    .await
    .expect("post");
    assert_eq!(order.status(), 201);
}
