//! The API description is served, generated from the code, and covers every route.

use crate::helpers::{TestApp, spawn_app};
use serde_json::Value;

/// `GET /api/v1/openapi.json`, answered 200 without credentials.
async fn openapi_json(app: &TestApp) -> Value {
    let response = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

#[tokio::test]
async fn openapi_json_is_public_and_describes_every_endpoint_with_its_scope() {
    let app = spawn_app().await;
    let doc = openapi_json(&app).await;

    assert!(doc["openapi"].as_str().expect("version").starts_with("3."));
    let paths = doc["paths"].as_object().expect("paths");
    for path in [
        "/api/v1/me",
        "/api/v1/login",
        "/api/v1/logout",
        "/api/v1/products",
        "/api/v1/products/{id}",
        "/api/v1/products/stock",
        "/api/v1/orders",
        "/api/v1/orders/{id}",
        "/api/v1/orders/{id}/history",
        "/api/v1/order-statuses",
        "/api/v1/customers",
        "/api/v1/customers/{id}",
        "/api/v1/openapi.json",
        "/api/v1/api-users",
        "/api/v1/api-users/{username}",
        "/api/v1/api-users/{username}/rotate",
        "/api/v1/api-users/{username}/ips",
        "/api/v1/api-users/{username}/sessions",
        "/api/v1/api-users/{username}/sessions/{id}",
        "/api/v1/api-users/{username}/history",
    ] {
        assert!(paths.contains_key(path), "{path} is described");
    }
    assert_eq!(
        doc["paths"]["/api/v1/products"]["post"]["security"][0]["api_key"][0],
        "products:write"
    );
    assert_eq!(
        doc["paths"]["/api/v1/orders/{id}"]["get"]["security"][0]["api_key"][0],
        "orders:read"
    );
    assert_eq!(
        doc["paths"]["/api/v1/api-users/{username}"]["patch"]["security"][0]["api_key"][0],
        "api_users:write"
    );
    assert_eq!(
        doc["paths"]["/api/v1/api-users/{username}/history"]["get"]["security"][0]["api_key"][0],
        "api_users:read"
    );
    assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
}

/// Client generators name a method after each `operationId`, which OpenAPI requires unique:
/// `list` on products, orders and customers alike gave three methods one name.
#[tokio::test]
async fn every_operation_has_an_id_of_its_own() {
    let doc = openapi_json(&spawn_app().await).await;

    let mut seen = std::collections::HashMap::new();
    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS.iter().filter(|m| item.get(**m).is_some()) {
            let operation = &item[*method];
            let id = operation["operationId"].as_str().expect("an operationId");
            let at = format!("{} {path}", method.to_uppercase());
            if let Some(first) = seen.insert(id.to_owned(), at.clone()) {
                panic!("{at} and {first} are both `{id}`");
            }
        }
    }
    assert_eq!(seen["list_products"], "GET /api/v1/products");
    assert_eq!(seen["list_orders"], "GET /api/v1/orders");
    // Named for what they act on, not only for what they do.
    for id in seen.keys() {
        assert!(
            id.contains('_') || ["login", "logout", "me"].contains(&id.as_str()),
            "`{id}` says what it does, not to what"
        );
    }
}
