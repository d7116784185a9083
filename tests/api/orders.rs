//! Orders take stock atomically and never oversell; their status moves through history.

use crate::helpers::{TestApp, error_of, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};

pub async fn store_with_stock(app: &TestApp, quantity: i64) -> (String, i64) {
    let key = app
        .api_user(
            "shop",
            &["products:write", "orders:write", "customers:write"],
        )
        .await;
    let product =
        json!({"sku": "LAMP", "name": "Desk lamp", "price": "89.90", "quantity": quantity});
    assert_eq!(
        app.post("/api/v1/products", &key, &product).await.status(),
        201
    );
    let customer: Value = app
        .post(
            "/api/v1/customers",
            &key,
            &json!({"name": "Ada Lovelace", "email": "ada@example.com"}),
        )
        .await
        .json()
        .await
        .expect("json");
    (key, customer["id"].as_i64().expect("id"))
}

#[tokio::test]
async fn an_order_copies_name_and_price_totals_exactly_and_takes_stock() {
    let app = spawn_app().await;
    let (key, customer) = store_with_stock(&app, 10).await;

    let response = app
        .post("/api/v1/orders", &key, &json!({"customer_id": customer, "currency": "USD", "lines": [{"sku": "LAMP", "quantity": 3}]}))
        .await;
    assert_eq!(response.status(), 201);
    let order: Value = response.json().await.expect("json");
    assert_eq!(order["status"], "Pending");
    assert_eq!(order["total"], "269.70");
    assert_eq!(order["lines"][0]["name"], "Desk lamp");
    assert_eq!(order["lines"][0]["price"], "89.90");
    let lamp: Value = app.get_json("/api/v1/products/1", &key).await;
    assert_eq!(lamp["quantity"], 7);

    let fetched: Value = app
        .get_json(&format!("/api/v1/orders/{}", order["id"]), &key)
        .await;
    assert_eq!(fetched["history"][0]["status"], "Pending");
}

#[tokio::test]
async fn an_order_for_more_than_the_stock_is_409_and_changes_nothing() {
    let app = spawn_app().await;
    let (key, customer) = store_with_stock(&app, 2).await;

    let response = app
        .post("/api/v1/orders", &key, &json!({"customer_id": customer, "currency": "USD", "lines": [{"product_id": 1, "quantity": 3}]}))
        .await;
    let (status, body) = error_of(response).await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "conflict");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("LAMP")
    );
    let lamp: Value = app.get_json("/api/v1/products/1", &key).await;
    assert_eq!(lamp["quantity"], 2);
}

#[tokio::test]
async fn concurrent_orders_for_the_last_items_never_oversell() {
    let app = spawn_app().await;
    let (key, customer) = store_with_stock(&app, 3).await;

    let mut orders = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let request = app
            .bearer(Method::POST, "/api/v1/orders", &key)
            .json(&json!({"customer_id": customer, "currency": "USD", "lines": [{"sku": "LAMP", "quantity": 1}]}));
        orders.spawn(async move { request.send().await.expect("order").status().as_u16() });
    }
    let mut statuses = Vec::new();
    while let Some(status) = orders.join_next().await {
        statuses.push(status.expect("task"));
    }

    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        17,
        "{statuses:?}"
    );
    let lamp: Value = app.get_json("/api/v1/products/1", &key).await;
    assert_eq!(lamp["quantity"], 0);
}

#[tokio::test]
async fn a_status_update_adds_history_and_canceling_returns_the_stock() {
    let app = spawn_app().await;
    let (key, customer) = store_with_stock(&app, 5).await;
    let order: Value = app
        .post("/api/v1/orders", &key, &json!({"customer_id": customer, "currency": "USD", "lines": [{"sku": "LAMP", "quantity": 2}]}))
        .await
        .json()
        .await
        .expect("json");
    let history = format!("/api/v1/orders/{}/history", order["id"]);

    let shipped = app
        .post(
            &history,
            &key,
            &json!({"status": "Shipped", "comment": "UPS 1Z999", "notify": true}),
        )
        .await;
    assert_eq!(shipped.status(), 201);
    let shipped: Value = shipped.json().await.expect("json");
    assert_eq!(shipped["status"], "Shipped");
    assert_eq!(shipped["history"][1]["comment"], "UPS 1Z999");
    assert_eq!(shipped["history"][1]["notify"], true);

    let canceled: Value = app
        .post(&history, &key, &json!({"status": 7}))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(canceled["status"], "Canceled");
    let lamp: Value = app.get_json("/api/v1/products/1", &key).await;
    assert_eq!(lamp["quantity"], 5, "canceling put the goods back");

    let (status, _) = error_of(
        app.post(&history, &key, &json!({"status": "Teleported"}))
            .await,
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = error_of(
        app.post(
            "/api/v1/orders/999/history",
            &key,
            &json!({"status": "Shipped"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn concurrent_status_changes_of_one_order_each_apply_in_turn() {
    let app = spawn_app().await;
    let (key, customer) = store_with_stock(&app, 100).await;
    let order: Value = app
        .post("/api/v1/orders", &key, &json!({"customer_id": customer, "currency": "USD", "lines": [{"sku": "LAMP", "quantity": 1}]}))
        .await
        .json()
        .await
        .expect("json");
    let history = format!("/api/v1/orders/{}/history", order["id"]);

    // Each change waits for the one before it; none may find the order gone because its
    // status moved meanwhile. Cancel and reopen alternate, so stock moves with each.
    let mut changes = tokio::task::JoinSet::new();
    for n in 0..24 {
        let status = if n % 2 == 0 { "Canceled" } else { "Processing" };
        let request = app
            .bearer(Method::POST, &history, &key)
            .json(&json!({"status": status}));
        changes.spawn(async move { request.send().await.expect("change").status().as_u16() });
    }
    let mut statuses = Vec::new();
    while let Some(status) = changes.join_next().await {
        statuses.push(status.expect("task"));
    }
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");

    let order: Value = app
        .get_json(&format!("/api/v1/orders/{}", order["id"]), &key)
        .await;
    assert_eq!(order["history"].as_array().expect("history").len(), 25);
    let lamp: Value = app.get_json("/api/v1/products/1", &key).await;
    let held = if order["status"] == "Canceled" { 0 } else { 1 };
    assert_eq!(
        lamp["quantity"],
        100 - held,
        "stock follows the last status"
    );
}

#[tokio::test]
async fn orders_filter_by_status_and_customer() {
    let app = spawn_app().await;
    let (key, customer) = store_with_stock(&app, 50).await;
    for _ in 0..3 {
        app.post("/api/v1/orders", &key, &json!({"customer_id": customer, "currency": "EUR", "lines": [{"sku": "LAMP", "quantity": 1}]})).await;
    }
    app.post(
        "/api/v1/orders/2/history",
        &key,
        &json!({"status": "Processing"}),
    )
    .await;

    let pending: Value = app.get_json("/api/v1/orders?status=Pending", &key).await;
    assert_eq!(pending["data"].as_array().expect("data").len(), 2);
    let processing: Value = app.get_json("/api/v1/orders?status=2", &key).await;
    assert_eq!(processing["data"][0]["id"], 2);
    let others: Value = app.get_json("/api/v1/orders?customer_id=999", &key).await;
    assert_eq!(others["data"], json!([]));
    let statuses: Value = app.get_json("/api/v1/order-statuses", &key).await;
    assert!(
        statuses["data"]
            .as_array()
            .expect("data")
            .iter()
            .any(|s| s["name"] == "Complete" && s["id"] == 5)
    );
}

#[tokio::test]
async fn a_retried_order_with_the_same_idempotency_key_is_not_placed_twice() {
    let app = spawn_app().await;
    let (key, customer) = store_with_stock(&app, 10).await;
    let body = json!({"customer_id": customer, "currency": "USD", "lines": [{"sku": "LAMP", "quantity": 1}]});

    for _ in 0..3 {
        let response = app
            .bearer(Method::POST, "/api/v1/orders", &key)
            .header("Idempotency-Key", "order-42")
            .json(&body)
            .send()
            .await
            .expect("order");
        assert_eq!(response.status(), 201);
    }

    let orders: Value = app.get_json("/api/v1/orders", &key).await;
    assert_eq!(orders["data"].as_array().expect("data").len(), 1);
    let lamp: Value = app.get_json("/api/v1/products/1", &key).await;
    assert_eq!(lamp["quantity"], 9);
}

/// A process stopped (`kill -9`) after claiming an order's `Idempotency-Key` and before
/// placing it leaves the claim behind. Its retry waits until the first run would have timed
/// out, then places the order, once.
#[tokio::test]
async fn an_order_cut_off_before_it_was_placed_is_placed_by_its_retry_once() {
    use keyward::clock::Clock;
    let app = spawn_app().await;
    let (key, customer) = store_with_stock(&app, 10).await;
    let body = json!({"customer_id": customer, "currency": "USD", "lines": [{"sku": "LAMP", "quantity": 1}]});
    let user = app.history("shop").await[0].api_user_id.expect("the user");
    // The claim the stopped process left: the same request, as the server fingerprints it.
    let fingerprint = crate::helpers::post_fingerprint("/api/v1/orders", &body);
    let now = app.clock.now();
    let dead = keyward::store::claims::IdempotentRun::new(user, "order-77");
    app.db
        .claim_idempotency(&dead, &fingerprint, now, now)
        .await
        .expect("claimed");
    let order = || {
        app.bearer(Method::POST, "/api/v1/orders", &key)
            .header("Idempotency-Key", "order-77")
            .json(&body)
            .send()
    };

    let waiting = order().await.expect("order");
    let retry_after: i64 = waiting.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=31).contains(&retry_after), "{retry_after}");
    let (status, error) = error_of(waiting).await;
    assert_eq!(status, 409);
    assert_eq!(
        error["error"]["details"][0],
        json!({"field": "Idempotency-Key", "message": "is still being processed"})
    );
    let orders: Value = app.get_json("/api/v1/orders", &key).await;
    assert!(orders["data"].as_array().expect("data").is_empty());

    app.clock.advance(time::Duration::seconds(31));
    let placed = order().await.expect("order");
    assert_eq!(placed.status(), 201);
    assert!(placed.headers().get("idempotent-replayed").is_none());
    let again = order().await.expect("order");
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let orders: Value = app.get_json("/api/v1/orders", &key).await;
    assert_eq!(orders["data"].as_array().expect("data").len(), 1);
    let lamp: Value = app.get_json("/api/v1/products/1", &key).await;
    assert_eq!(lamp["quantity"], 9);
}

/// A process stopped after its customer was made and before the answer was stored: the
/// retries are told so, with where the customer is, and it is not made twice.
#[tokio::test]
async fn a_customer_made_without_a_stored_answer_is_named_to_its_retries() {
    use keyward::clock::Clock;
    use keyward::domain::catalog::CustomerInput;
    use keyward::store::claims::IdempotentRun;
    let app = spawn_app().await;
    let key = app.api_user("crm", &["customers:write"]).await;
    assert_eq!(app.get("/api/v1/customers", &key).await.status(), 200);
    let user = app.history("crm").await[0].api_user_id.expect("the user");
    let body = json!({"name": "Grace", "email": "grace@example.com"});
    let fingerprint = crate::helpers::post_fingerprint("/api/v1/customers", &body);
    // What the stopped process did: claimed the key, made the customer, and no more.
    let now = app.clock.now();
    let dead = IdempotentRun::new(user, "grace-1");
    app.db
        .claim_idempotency(&dead, &fingerprint, now, now)
        .await
        .expect("claimed");
    let grace = CustomerInput {
        name: "Grace".to_owned(),
        email: "grace@example.com".to_owned(),
        phone: None,
    };
    let made = dead
        .scope(app.db.create_customer(&grace, now))
        .await
        .expect("made");
    let retry = || {
        app.bearer(Method::POST, "/api/v1/customers", &key)
            .header("Idempotency-Key", "grace-1")
            .json(&body)
            .send()
    };

    // Until the first run would have timed out, its answer may still come.
    let (status, error) = error_of(retry().await.expect("retry")).await;
    assert_eq!(status, 409);
    assert_eq!(
        error["error"]["details"][0]["message"],
        "is still being processed"
    );
    app.clock.advance(time::Duration::seconds(31));
    let told = retry().await.expect("retry");
    assert_eq!(told.status(), 409);
    let location = told.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(location, format!("/api/v1/customers/{}", made.id.0));
    let (_, error) = error_of(told).await;
    assert_eq!(
        error["error"]["details"][0]["message"],
        "took effect without a stored answer"
    );
    let customer: Value = app.get_json(&location, &key).await;
    assert_eq!(customer["email"], "grace@example.com");
    let list: Value = app.get_json("/api/v1/customers", &key).await;
    assert_eq!(list["data"].as_array().expect("data").len(), 1, "made once");
}

#[tokio::test]
async fn customers_are_created_listed_and_patched() {
    let app = spawn_app().await;
    let key = app.api_user("crm", &["customers:write"]).await;

    let created = app
        .post(
            "/api/v1/customers",
            &key,
            &json!({"name": "Grace", "email": "grace@example.com", "phone": "+1 555 0100"}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let duplicate = app
        .post(
            "/api/v1/customers",
            &key,
            &json!({"name": "G", "email": "GRACE@example.com"}),
        )
        .await;
    assert_eq!(duplicate.status(), 409);
    let bad = app
        .post(
            "/api/v1/customers",
            &key,
            &json!({"name": "G", "email": "not-an-email"}),
        )
        .await;
    let (status, body) = error_of(bad).await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["details"][0]["field"], "email");

    let patched: Value = app
        .bearer(Method::PATCH, "/api/v1/customers/1", &key)
        .json(&json!({"name": "Grace Hopper"}))
        .send()
        .await
        .expect("patch")
        .json()
        .await
        .expect("json");
    assert_eq!(patched["name"], "Grace Hopper");
    assert_eq!(patched["email"], "grace@example.com");
    let list: Value = app.get_json("/api/v1/customers", &key).await;
    assert_eq!(list["data"].as_array().expect("data").len(), 1);
}

#[tokio::test]
async fn an_order_shows_its_newest_hundred_history_entries() {
    let app = spawn_app().await;
    let (key, customer) = store_with_stock(&app, 5).await;
    app.post("/api/v1/orders", &key, &json!({"customer_id": customer, "currency": "USD", "lines": [{"sku": "LAMP", "quantity": 1}]})).await;

    for i in 0..105 {
        let comment = format!("update {i}");
        let response = app
            .post(
                "/api/v1/orders/1/history",
                &key,
                &json!({"status": "Processing", "comment": comment}),
            )
            .await;
        assert_eq!(response.status(), 201);
    }

    let order: Value = app.get_json("/api/v1/orders/1", &key).await;
    let history = order["history"].as_array().expect("history");
    assert_eq!(history.len(), 100);
    assert_eq!(
        history[99]["comment"], "update 104",
        "oldest first, ending with the newest"
    );
}

#[tokio::test]
async fn orders_and_bulk_stock_updates_on_shared_products_never_deadlock_or_oversell() {
    let app = spawn_app().await;
    let (key, customer) = store_with_stock(&app, 5).await;
    let shade = json!({"sku": "SHADE", "name": "Lamp shade", "price": "12.00", "quantity": 5});
    assert_eq!(
        app.post("/api/v1/products", &key, &shade).await.status(),
        201
    );

    // Lines in both orders: each order takes both products, whichever it names first.
    let mut orders = tokio::task::JoinSet::new();
    for i in 0..20 {
        let lines = if i % 2 == 0 {
            json!([{"sku": "LAMP", "quantity": 1}, {"sku": "SHADE", "quantity": 1}])
        } else {
            json!([{"sku": "SHADE", "quantity": 1}, {"sku": "LAMP", "quantity": 1}])
        };
        let request = app
            .bearer(Method::POST, "/api/v1/orders", &key)
            .json(&json!({"customer_id": customer, "currency": "USD", "lines": lines}));
        orders.spawn(async move { request.send().await.expect("order").status().as_u16() });
    }
    let mut statuses = Vec::new();
    while let Some(status) = orders.join_next().await {
        statuses.push(status.expect("task"));
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        15,
        "{statuses:?}"
    );
    for sku in ["LAMP", "SHADE"] {
        let page: Value = app
            .get_json(&format!("/api/v1/products?sku={sku}"), &key)
            .await;
        assert_eq!(page["data"][0]["quantity"], 0, "{sku}");
    }

    // Orders and bulk updates naming the products in the other order, all at once.
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..20 {
        let request = if i % 4 == 0 {
            app.bearer(Method::POST, "/api/v1/products/stock", &key)
                .json(&json!({"items": [{"sku": "SHADE", "quantity": 3}, {"sku": "LAMP", "quantity": 3}]}))
        } else {
            app.bearer(Method::POST, "/api/v1/orders", &key)
                .json(&json!({
                    "customer_id": customer, "currency": "USD",
                    "lines": [{"sku": "LAMP", "quantity": 1}, {"sku": "SHADE", "quantity": 1}]
                }))
        };
        calls.spawn(async move { request.send().await.expect("call").status().as_u16() });
    }
    while let Some(status) = calls.join_next().await {
        let status = status.expect("task");
        assert!(matches!(status, 200 | 201 | 409), "{status}");
    }
    for sku in ["LAMP", "SHADE"] {
        let page: Value = app
            .get_json(&format!("/api/v1/products?sku={sku}"), &key)
            .await;
        let quantity = page["data"][0]["quantity"].as_i64().expect("quantity");
        assert!((0..=3).contains(&quantity), "{sku}: {quantity}");
    }
}

#[tokio::test]
async fn concurrent_retries_with_one_idempotency_key_place_one_order() {
    let app = spawn_app().await;
    let (key, customer) = store_with_stock(&app, 10).await;
    let body = json!({"customer_id": customer, "currency": "USD", "lines": [{"sku": "LAMP", "quantity": 1}]});

    let mut retries = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let request = app
            .bearer(Method::POST, "/api/v1/orders", &key)
            .header("Idempotency-Key", "order-at-once")
            .json(&body);
        retries.spawn(async move { request.send().await.expect("order").status().as_u16() });
    }
    let mut statuses = Vec::new();
    while let Some(status) = retries.join_next().await {
        statuses.push(status.expect("task"));
    }
    // The first is placed; the others are replays of its answer, or told it is in progress.
    assert!(statuses.contains(&201), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );

    let orders: Value = app.get_json("/api/v1/orders", &key).await;
    assert_eq!(orders["data"].as_array().expect("data").len(), 1);
    let lamp: Value = app.get_json("/api/v1/products/1", &key).await;
    assert_eq!(lamp["quantity"], 9);
}
