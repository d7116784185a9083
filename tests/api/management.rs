//! The Management API, `/api/v1/api-users`: what the console does to API users, as JSON, with
//! a management key; every change holds on the next request. (Escalation rules, audit and
//! secrets: `management/rules.rs`.)

mod rules;

use crate::helpers::{TestApp, error_of, spawn_app};
use keyward::credentials::CreateApiUser;
use reqwest::Method;
use serde_json::{Value, json};
use time::Duration;

pub const MANAGER: &str = "provisioner";

/// A management key allowed from loopback, holding `scopes`.
pub async fn management_key(app: &TestApp, username: &str, scopes: &[&str]) -> String {
    app.api_user_with(CreateApiUser {
        username: username.to_owned(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        ips: vec!["127.0.0.1".to_owned(), "::1".to_owned()],
        management: true,
        ..CreateApiUser::default()
    })
    .await
}

/// The provisioner: api_users:write and every store scope.
pub async fn provisioner(app: &TestApp) -> String {
    management_key(
        app,
        MANAGER,
        &[
            "api_users:write",
            "products:write",
            "orders:write",
            "customers:write",
        ],
    )
    .await
}

/// A call with a JSON body (or none); answers the status and the body (`null` when empty).
pub async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app.bearer(method, path, key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("a JSON body")
    };
    (status, body)
}

/// Creates a user over the API and answers its key.
pub async fn create(app: &TestApp, key: &str, body: Value) -> String {
    let (status, created) = call(app, Method::POST, "/api/v1/api-users", key, Some(body)).await;
    assert_eq!(status, 201, "{created}");
    created["key"].as_str().expect("key").to_owned()
}

#[tokio::test]
async fn a_created_key_works_at_once_and_is_shown_only_in_that_answer() {
    let app = spawn_app().await;
    let manager = provisioner(&app).await;

    let response = app
        .bearer(Method::POST, "/api/v1/api-users", &manager)
        .json(&json!({
            "username": "inventory-sync",
            "description": "Stock from the warehouse",
            "environment": "staging",
            "scopes": ["products:write"],
            "ips": ["127.0.0.1", "::1"],
            "rate_limit_per_minute": 120,
            "expires_in": "90d",
        }))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 201);
    assert_eq!(
        response.headers()["location"],
        "/api/v1/api-users/inventory-sync"
    );
    assert_eq!(response.headers()["cache-control"], "no-store");
    let created: Value = response.json().await.expect("json");
    let key = created["key"].as_str().expect("the key, once");
    assert!(key.starts_with("kw_"));
    assert_eq!(created["username"], "inventory-sync");
    let user = &created["api_user"];
    assert_eq!(user["environment"], "staging");
    assert_eq!(user["scopes"], json!(["products:write"]));
    assert_eq!(user["rate_limit_per_minute"], 120);
    assert_eq!(user["management"], false);
    assert!(user["keys"][0]["expires_at"].is_string());

    assert_eq!(app.get("/api/v1/products", key).await.status(), 200);

    let (status, shown) = call(
        &app,
        Method::GET,
        "/api/v1/api-users/inventory-sync",
        &manager,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(shown["description"], "Stock from the warehouse");
    assert_eq!(shown["ips"], json!(["127.0.0.1", "::1"]));
    assert_eq!(shown["keys"][0]["state"], "live");
    assert_eq!(shown["keys"][0]["hint"], user["keys"][0]["hint"]);
    assert!(shown.get("key").is_none());
    assert!(!shown.to_string().contains(key));

    let (status, missing) = call(
        &app,
        Method::GET,
        "/api/v1/api-users/nobody",
        &manager,
        None,
    )
    .await;
    assert_eq!(
        (status, missing["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}

#[tokio::test]
async fn the_list_searches_and_pages_with_a_cursor() {
    let app = spawn_app().await;
    let manager = provisioner(&app).await;
    for name in ["erp-1", "erp-2", "erp-3", "shop-app"] {
        app.api_user(name, &[]).await;
    }

    let (status, first) = call(
        &app,
        Method::GET,
        "/api/v1/api-users?limit=2",
        &manager,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let names = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|u| u["username"].as_str().expect("username").to_owned())
            .collect()
    };
    assert_eq!(names(&first), [MANAGER, "erp-1"]);
    assert!(first["data"][0]["calls_24h"].is_i64());
    let mut seen = names(&first);
    let mut next = first["next"].as_str().map(str::to_owned);
    while let Some(cursor) = next {
        let (_, page) = call(
            &app,
            Method::GET,
            &format!("/api/v1/api-users?limit=2&after={cursor}"),
            &manager,
            None,
        )
        .await;
        seen.extend(names(&page));
        next = page["next"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, [MANAGER, "erp-1", "erp-2", "erp-3", "shop-app"]);

    let (_, found) = call(
        &app,
        Method::GET,
        "/api/v1/api-users?search=ERP",
        &manager,
        None,
    )
    .await;
    assert_eq!(names(&found), ["erp-1", "erp-2", "erp-3"]);
    assert!(found["next"].is_null());

    // `_` and `%` are characters to find, not wildcards.
    app.api_user("stock_sync", &[]).await;
    for (search, expected) in [
        ("k_s", &["stock_sync"][..]),
        ("_", &["stock_sync"]),
        ("%25", &[]),
    ] {
        let (_, found) = call(
            &app,
            Method::GET,
            &format!("/api/v1/api-users?search={search}"),
            &manager,
            None,
        )
        .await;
        assert_eq!(names(&found), expected, "search {search}");
    }

    let (status, body) = call(
        &app,
        Method::GET,
        "/api/v1/api-users?after=not-a-cursor",
        &manager,
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
}

#[tokio::test]
async fn every_field_patched_holds_on_the_next_call() {
    let app = spawn_app().await;
    let manager = provisioner(&app).await;
    let key = app
        .api_user("erp", &["products:write", "orders:read"])
        .await;
    let path = "/api/v1/api-users/erp";
    assert_eq!(app.get("/api/v1/orders", &key).await.status(), 200);

    let (status, patched) = call(
        &app,
        Method::PATCH,
        path,
        &manager,
        Some(json!({
            "description": "ERP, read-only now",
            "environment": "development",
            "scopes": ["products:read"],
            "rate_limit_per_minute": 2,
        })),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    let (_, shown) = call(&app, Method::GET, path, &manager, None).await;
    assert_eq!(shown["description"], "ERP, read-only now");
    assert_eq!(shown["environment"], "development");
    assert_eq!(shown["scopes"], json!(["products:read"]));
    assert_eq!(shown["rate_limit_per_minute"], 2);
    // `null` clears none of the others: refused, nothing changed.
    for field in [
        "environment",
        "status",
        "scopes",
        "ips",
        "rate_limit_per_minute",
    ] {
        let (status, body) = call(
            &app,
            Method::PATCH,
            path,
            &manager,
            Some(json!({ field: null })),
        )
        .await;
        assert_eq!(
            (status, body["error"]["details"][0]["field"].as_str()),
            (422, Some(field))
        );
    }
    let (_, unchanged) = call(&app, Method::GET, path, &manager, None).await;
    assert_eq!(unchanged, shown);
    // The description may be empty: `null` empties it.
    let (status, emptied) = call(
        &app,
        Method::PATCH,
        path,
        &manager,
        Some(json!({"description": null})),
    )
    .await;
    assert_eq!((status, emptied["description"].as_str()), (200, Some("")));

    let (status, refused) = error_of(app.get("/api/v1/orders", &key).await).await;
    assert_eq!(status, 403);
    assert_eq!(refused["error"]["code"], "insufficient_scope");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(app.get("/api/v1/products", &key).await.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429]);

    let (status, _) = call(
        &app,
        Method::PATCH,
        path,
        &manager,
        Some(json!({"ips": ["192.0.2.1"], "rate_limit_per_minute": 600})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, refused) = error_of(app.get("/api/v1/products", &key).await).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (403, Some("ip_not_allowed"))
    );

    let (status, invalid) = call(
        &app,
        Method::PATCH,
        path,
        &manager,
        Some(json!({"rate_limit_per_minute": 0, "scopes": ["products:delete"]})),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(invalid["error"]["code"], "invalid");
    let fields: Vec<&str> = invalid["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .map(|d| d["field"].as_str().expect("field"))
        .collect();
    assert_eq!(fields, ["scopes", "rate_limit_per_minute"]);
}

#[tokio::test]
async fn disabling_refuses_the_key_on_the_next_call_and_enabling_restores_it() {
    let app = spawn_app().await;
    let manager = provisioner(&app).await;
    let key = app.api_user("erp", &[]).await;
    let token = app.login("erp", &key).await;

    let (status, user) = call(
        &app,
        Method::PATCH,
        "/api/v1/api-users/erp",
        &manager,
        Some(json!({"status": "disabled"})),
    )
    .await;
    assert_eq!((status, user["status"].as_str()), (200, Some("disabled")));
    assert_eq!(app.get("/api/v1/me", &key).await.status(), 401);
    assert_eq!(app.last_outcome().await, "disabled_user");
    assert_eq!(app.get("/api/v1/me", &token).await.status(), 401);

    let (status, _) = call(
        &app,
        Method::PATCH,
        "/api/v1/api-users/erp",
        &manager,
        Some(json!({"status": "enabled"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(app.get("/api/v1/me", &key).await.status(), 200);
}

#[tokio::test]
async fn rotating_without_grace_stops_the_old_key_at_once() {
    let app = spawn_app().await;
    let manager = provisioner(&app).await;
    let old = app.api_user("erp", &[]).await;

    // No body at all: the defaults, no grace.
    let response = app
        .bearer(Method::POST, "/api/v1/api-users/erp/rotate", &manager)
        .send()
        .await
        .expect("rotate");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let rotated: Value = response.json().await.expect("json");
    let new = rotated["key"].as_str().expect("new key");

    assert_eq!(app.get("/api/v1/me", &old).await.status(), 401);
    assert_eq!(app.last_outcome().await, "revoked_key");
    assert_eq!(app.get("/api/v1/me", new).await.status(), 200);
    assert_eq!(rotated["api_user"]["keys"][1]["state"], "revoked");

    // A file saved by Notepad holds a byte order mark even when it is empty: still no body.
    let response = app
        .bearer(Method::POST, "/api/v1/api-users/erp/rotate", &manager)
        .header("content-type", "application/json")
        .body("\u{feff}\r\n")
        .send()
        .await
        .expect("rotate");
    assert_eq!(response.status(), 200);
    assert_eq!(app.get("/api/v1/me", new).await.status(), 401);
    let newest: Value = response.json().await.expect("json");
    let newest = newest["key"].as_str().expect("new key");

    // A body is JSON, as on every call: another type is refused and rolls nothing.
    for (content_type, body) in [
        ("text/plain", r#"{"grace": "none"}"#),
        ("application/x-www-form-urlencoded", "grace=1h"),
    ] {
        let response = app
            .bearer(Method::POST, "/api/v1/api-users/erp/rotate", &manager)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("rotate");
        assert_eq!(response.status(), 415, "{content_type}");
    }
    assert_eq!(app.get("/api/v1/me", newest).await.status(), 200);
}

#[tokio::test]
async fn rotating_with_grace_keeps_the_old_key_for_the_grace_only() {
    let app = spawn_app().await;
    let manager = provisioner(&app).await;
    let old = app.api_user("erp", &[]).await;

    let (status, rotated) = call(
        &app,
        Method::POST,
        "/api/v1/api-users/erp/rotate",
        &manager,
        Some(json!({"grace": "1h", "expires_in": "30d"})),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["key"].as_str().expect("new key");
    assert!(rotated["api_user"]["keys"][0]["expires_at"].is_string());

    assert_eq!(app.get("/api/v1/me", &old).await.status(), 200);
    assert_eq!(app.get("/api/v1/me", new).await.status(), 200);
    app.clock.advance(Duration::minutes(61));
    assert_eq!(app.get("/api/v1/me", &old).await.status(), 401);
    assert_eq!(app.last_outcome().await, "expired_key");
    assert_eq!(app.get("/api/v1/me", new).await.status(), 200);

    // The console's choices only.
    let (status, invalid) = call(
        &app,
        Method::POST,
        "/api/v1/api-users/erp/rotate",
        &manager,
        Some(json!({"grace": "2h"})),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(invalid["error"]["details"][0]["field"], "grace");
}

#[tokio::test]
async fn a_bad_expires_in_is_refused_under_its_own_name() {
    let app = spawn_app().await;
    let manager = provisioner(&app).await;
    for (expires_in, words) in [
        ("0", "in the future"),
        ("-1h", "neither a duration nor never"),
        ("soon", "neither a duration nor never"),
    ] {
        let body = json!({"username": "expiring", "expires_in": expires_in});
        let (status, error) = call(
            &app,
            Method::POST,
            "/api/v1/api-users",
            &manager,
            Some(body),
        )
        .await;
        assert_eq!(status, 422, "{error}");
        let detail = &error["error"]["details"][0];
        assert_eq!(detail["field"], "expires_in", "{error}");
        assert!(
            detail["message"]
                .as_str()
                .is_some_and(|m| m.contains(words)),
            "{expires_in}: {error}"
        );
    }
    let (status, _) = call(
        &app,
        Method::GET,
        "/api/v1/api-users/expiring",
        &manager,
        None,
    )
    .await;
    assert_eq!(status, 404, "nothing was created");
    // A rotation words the same refusal under the same name; `never` is taken by both.
    create(
        &app,
        &manager,
        json!({"username": "expiring", "expires_in": "never"}),
    )
    .await;
    let (status, error) = call(
        &app,
        Method::POST,
        "/api/v1/api-users/expiring/rotate",
        &manager,
        Some(json!({"expires_in": "0"})),
    )
    .await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(
        error["error"]["details"][0]["field"], "expires_in",
        "{error}"
    );
    let (_, shown) = call(
        &app,
        Method::GET,
        "/api/v1/api-users/expiring",
        &manager,
        None,
    )
    .await;
    assert_eq!(shown["keys"][0]["expires_at"], Value::Null, "{shown}");
}

#[tokio::test]
async fn a_grace_period_never_outlives_the_old_keys_expiry() {
    let app = spawn_app().await;
    let manager = provisioner(&app).await;
    create(
        &app,
        &manager,
        json!({"username": "short", "ips": ["127.0.0.1"], "expires_in": "30m"}),
    )
    .await;
    let (_, before) = call(&app, Method::GET, "/api/v1/api-users/short", &manager, None).await;

    let (status, rotated) = call(
        &app,
        Method::POST,
        "/api/v1/api-users/short/rotate",
        &manager,
        Some(json!({"grace": "7d"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        rotated["api_user"]["keys"][1]["expires_at"],
        before["keys"][0]["expires_at"]
    );
}

#[tokio::test]
async fn ip_rules_are_listed_added_removed_and_replaced_with_the_consoles_checks() {
    let app = spawn_app().await;
    let manager = provisioner(&app).await;
    let key = app.api_user("erp", &[]).await;
    let ips = "/api/v1/api-users/erp/ips";

    let (status, list) = call(&app, Method::GET, ips, &manager, None).await;
    assert_eq!(status, 200);
    assert_eq!(list["ips"], json!(["127.0.0.1", "::1"]));

    let (status, invalid) = call(
        &app,
        Method::POST,
        ips,
        &manager,
        Some(json!({"rule": "300.1.2.3"})),
    )
    .await;
    assert_eq!(
        (status, invalid["error"]["code"].as_str()),
        (422, Some("invalid"))
    );
    assert_eq!(invalid["error"]["details"][0]["field"], "rule");

    let (status, added) = call(
        &app,
        Method::POST,
        ips,
        &manager,
        Some(json!({"rule": "198.51.100.0/24"})),
    )
    .await;
    assert_eq!((status, added["changed"].as_bool()), (200, Some(true)));
    let (_, again) = call(
        &app,
        Method::POST,
        ips,
        &manager,
        Some(json!({"rule": "198.51.100.0/24"})),
    )
    .await;
    assert_eq!(again["changed"], false);
    assert_eq!(again["ips"], json!(["127.0.0.1", "::1", "198.51.100.0/24"]));

    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("{ips}?rule=198.51.100.0/24"),
        &manager,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, gone) = call(
        &app,
        Method::DELETE,
        &format!("{ips}?rule=198.51.100.0/24"),
        &manager,
        None,
    )
    .await;
    assert_eq!(
        (status, gone["error"]["code"].as_str()),
        (404, Some("not_found"))
    );

    let (status, invalid) = call(
        &app,
        Method::PUT,
        ips,
        &manager,
        Some(json!({"ips": ["192.0.2.1", "not an address"]})),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(invalid["error"]["details"][0]["field"], "ips[1]");

    // Removing loopback refuses this test's calls from the next request on.
    let (status, replaced) = call(
        &app,
        Method::PUT,
        ips,
        &manager,
        Some(json!({"ips": ["192.0.2.1"]})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(replaced["ips"], json!(["192.0.2.1"]));
    assert_eq!(app.get("/api/v1/me", &key).await.status(), 403);

    let (_, emptied) = call(&app, Method::PUT, ips, &manager, Some(json!({"ips": []}))).await;
    assert_eq!(emptied["ips"], json!([]));
    assert_eq!(
        emptied["warnings"][0],
        "The IP list is empty: no address may use this key."
    );

    // A block of every address of a family is `*` by another name, and warned of as such.
    let (status, open) = call(
        &app,
        Method::PUT,
        ips,
        &manager,
        Some(json!({"ips": ["0.0.0.0/0", "::/0"]})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        open["warnings"],
        json!([
            "`0.0.0.0/0` allows every IPv4 address on the internet.",
            "`::/0` allows every IPv6 address on the internet."
        ])
    );
}

#[tokio::test]
async fn sessions_are_listed_without_tokens_and_revoked_one_or_all() {
    let app = spawn_app().await;
    let manager = provisioner(&app).await;
    let key = app.api_user("erp", &[]).await;
    let first = app.login("erp", &key).await;
    let second = app.login("erp", &key).await;
    let sessions = "/api/v1/api-users/erp/sessions";

    let (status, list) = call(&app, Method::GET, sessions, &manager, None).await;
    assert_eq!(status, 200);
    let open = list["data"].as_array().expect("data");
    assert_eq!(open.len(), 2);
    assert!(!list.to_string().contains(&first) && !list.to_string().contains("kwt_"));
    assert!(
        open[0]["key_hint"]
            .as_str()
            .expect("hint")
            .starts_with("kw_")
    );
    let one = open
        .iter()
        .map(|s| s["id"].as_i64().expect("id"))
        .min()
        .expect("a session");

    let (status, revoked) = call(
        &app,
        Method::DELETE,
        &format!("{sessions}/{one}"),
        &manager,
        None,
    )
    .await;
    assert_eq!((status, revoked["revoked"].as_u64()), (200, Some(1)));
    assert_eq!(app.get("/api/v1/me", &first).await.status(), 401);
    assert_eq!(app.get("/api/v1/me", &second).await.status(), 200);

    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("{sessions}/{one}"),
        &manager,
        None,
    )
    .await;
    assert_eq!(status, 404);

    let (status, revoked) = call(&app, Method::DELETE, sessions, &manager, None).await;
    assert_eq!((status, revoked["revoked"].as_u64()), (200, Some(1)));
    assert_eq!(app.get("/api/v1/me", &second).await.status(), 401);
    assert_eq!(app.get("/api/v1/me", &key).await.status(), 200);
}

#[tokio::test]
async fn history_takes_the_consoles_filters_and_pages_newest_first() {
    let app = spawn_app().await;
    let manager = provisioner(&app).await;
    let key = app.api_user("erp", &["products:read"]).await;
    for _ in 0..3 {
        app.get("/api/v1/products", &key).await;
    }
    app.get("/api/v1/orders", &key).await;
    let history = "/api/v1/api-users/erp/history";

    let (status, refused) = call(
        &app,
        Method::GET,
        &format!("{history}?outcome=refused"),
        &manager,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let rows = refused["data"].as_array().expect("data");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["outcome"], "insufficient_scope");
    assert_eq!(rows[0]["call"], "GET /api/v1/orders");
    assert_eq!(rows[0]["status"], 403);
    let erp = app.credentials.get("erp").await.expect("erp");
    assert_eq!(rows[0]["api_user_id"], erp.id.0);
    assert!(
        rows[0]["reason"]
            .as_str()
            .expect("reason")
            .contains("scope")
    );

    let mut calls = Vec::new();
    let mut next = Some(String::new());
    while let Some(cursor) = next {
        let (_, page) = call(
            &app,
            Method::GET,
            &format!("{history}?outcome=ok&limit=2&after={cursor}"),
            &manager,
            None,
        )
        .await;
        calls.extend(page["data"].as_array().expect("data").iter().cloned());
        next = page["next"].as_str().map(str::to_owned);
    }
    assert_eq!(calls.len(), 3);
    assert!(calls.iter().all(|c| c["outcome"] == "ok"));
    let request_ids: std::collections::HashSet<_> =
        calls.iter().map(|c| c["request_id"].clone()).collect();
    assert_eq!(request_ids.len(), 3);

    let today = keyward::clock::Clock::now(&app.clock).date();
    for (query, expected) in [
        (format!("ip=127.0.0.1&from={today}&to={today}"), 4),
        ("ip=192.0.2.1".to_owned(), 0),
        ("from=2000-01-01&to=2000-01-02".to_owned(), 0),
    ] {
        let (status, page) = call(
            &app,
            Method::GET,
            &format!("{history}?{query}"),
            &manager,
            None,
        )
        .await;
        assert_eq!(status, 200, "{query}");
        assert_eq!(
            page["data"].as_array().expect("data").len(),
            expected,
            "{query}"
        );
    }
    for query in [
        "from=yesterday",
        "outcome=nonsense",
        "to=9999-12-31",
        "ip=notanip",
    ] {
        let (status, body) = call(
            &app,
            Method::GET,
            &format!("{history}?{query}"),
            &manager,
            None,
        )
        .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("bad_request")),
            "{query}"
        );
    }

    // A name no user has and no call presented is most likely mistyped: 404, not an empty
    // page. A name only a refused login presented has those rows, user or not.
    let (status, body) = call(
        &app,
        Method::GET,
        "/api/v1/api-users/epr/history",
        &manager,
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let guess = app
        .request(Method::POST, "/api/v1/login")
        .json(&json!({"username": "admin", "key": format!("kw_{}", "x".repeat(61))}))
        .send()
        .await
        .expect("login");
    assert_eq!(guess.status(), 401);
    let (status, page) = call(
        &app,
        Method::GET,
        "/api/v1/api-users/admin/history",
        &manager,
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"][0]["call"], "POST /api/v1/login", "{page}");
    let (status, page) = call(
        &app,
        Method::GET,
        "/api/v1/api-users/admin/history?outcome=ok",
        &manager,
        None,
    )
    .await;
    assert_eq!(
        (status, &page["data"]),
        (200, &json!([])),
        "filtered to nothing: {page}"
    );
}

#[tokio::test]
async fn deleting_ends_keys_and_sessions_but_keeps_the_history() {
    let app = spawn_app().await;
    let manager = provisioner(&app).await;
    let key = app.api_user("erp", &[]).await;
    let token = app.login("erp", &key).await;
    app.get("/api/v1/me", &key).await;

    let (status, body) = call(
        &app,
        Method::DELETE,
        "/api/v1/api-users/erp",
        &manager,
        None,
    )
    .await;
    assert_eq!((status, body), (204, Value::Null));
    assert_eq!(app.get("/api/v1/me", &key).await.status(), 401);
    assert_eq!(app.get("/api/v1/me", &token).await.status(), 401);
    let (status, _) = call(&app, Method::GET, "/api/v1/api-users/erp", &manager, None).await;
    assert_eq!(status, 404);

    let (status, history) = call(
        &app,
        Method::GET,
        "/api/v1/api-users/erp/history?outcome=ok",
        &manager,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let calls: Vec<&str> = history["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| r["call"].as_str().expect("call"))
        .collect();
    assert_eq!(calls, ["GET /api/v1/me", "POST /api/v1/login"]);
    // A period that ends before it starts matches nothing: refused, as in the console.
    let (status, error) = call(
        &app,
        Method::GET,
        "/api/v1/api-users/erp/history?from=2026-12-10&to=2026-12-01",
        &manager,
        None,
    )
    .await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"]["details"][0]["field"], "from", "{error}");
}
