//! One history row per call, refused ones included, durable before the response; no secret
//! ever reaches the database.

use crate::helpers::spawn_app;
use keyward::domain::history::{HistoryQuery, OutcomeFilter};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn every_call_has_its_row_with_the_spec_fields_before_its_response_arrives() {
    let app = spawn_app().await;
    let key = app.api_user("inventory", &["products:read"]).await;

    let response = app.get("/api/v1/products?limit=2", &key).await;
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();

    // Read straight after the response: the row is already committed.
    let rows = app.history("inventory").await;
    let row = rows.first().expect("a row");
    assert_eq!(row.call, "GET /api/v1/products");
    assert_eq!(row.ip, "127.0.0.1");
    assert_eq!(row.status, 200);
    assert_eq!(row.outcome, "ok");
    assert_eq!(row.request_id, request_id);
    assert_eq!(row.username.as_deref(), Some("inventory"));
    assert!(row.key_hint.as_deref().expect("hint").starts_with("kw_…"));
    assert!(row.date_modified >= row.date_added);
    assert!(row.session_id.is_none());
}

#[tokio::test]
async fn refused_calls_are_recorded_including_unknown_usernames_and_unmatched_routes() {
    let app = spawn_app().await;
    app.api_user("known", &[]).await;

    app.request(Method::GET, "/api/v1/me")
        .basic_auth("nobody-here", Some("kw_x"))
        .send()
        .await
        .expect("request");
    app.request(Method::GET, "/api/v1/nothing/here?token=secret")
        .send()
        .await
        .expect("request");
    app.request(Method::GET, "/api/v1/openapi.json")
        .send()
        .await
        .expect("request");

    let rows = app.all_history().await;
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].call, "GET /api/v1/openapi.json");
    assert_eq!(
        rows[1].call, "GET /api/v1/nothing/here",
        "no query string in the history"
    );
    assert_eq!(rows[1].status, 404);
    assert_eq!(rows[2].username.as_deref(), Some("nobody-here"));
    assert!(rows[2].api_user_id.is_none());
    assert_eq!(rows[2].outcome, "malformed_credentials");
}

#[tokio::test]
async fn history_can_be_filtered_by_outcome() {
    let app = spawn_app().await;
    let key = app.api_user("mixed", &["products:read"]).await;
    app.get("/api/v1/products", &key).await;
    app.get("/api/v1/orders", &key).await;
    app.get("/api/v1/orders", &key).await;

    let user = app.credentials.get("mixed").await.expect("user");
    let query = |outcome| HistoryQuery {
        api_user_id: Some(user.id),
        outcome: Some(outcome),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        app.db
            .history(&query(OutcomeFilter::Ok))
            .await
            .expect("rows")
            .len(),
        1
    );
    assert_eq!(
        app.db
            .history(&query(OutcomeFilter::Refused))
            .await
            .expect("rows")
            .len(),
        2
    );
    let scope = OutcomeFilter::Only("insufficient_scope".parse().expect("outcome"));
    assert_eq!(app.db.history(&query(scope)).await.expect("rows").len(), 2);
}

#[tokio::test]
async fn no_key_or_token_is_stored_in_the_database_file() {
    let mut app = spawn_app().await;
    let key = app.api_user("secretive", &["products:read"]).await;
    let token = app.login("secretive", &key).await;
    app.get("/api/v1/me", &token).await;
    app.get(&format!("/api/v1/me?api_token={token}"), &key)
        .await;
    app.request(Method::POST, "/api/v1/login")
        .json(&json!({"username": "secretive", "key": format!("{key}x")}))
        .send()
        .await
        .expect("request");
    app.stop().await;

    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(app.dir.path()).expect("dir") {
        bytes.extend(std::fs::read(entry.expect("entry").path()).expect("read"));
    }
    let haystack = String::from_utf8_lossy(&bytes);
    for secret in [
        &key,
        &token,
        &key[3..40].to_owned(),
        &token[4..40].to_owned(),
    ] {
        assert!(
            !haystack.contains(secret.as_str()),
            "a secret was found in the database files"
        );
    }
}

#[tokio::test]
async fn graceful_shutdown_keeps_the_history_of_every_answered_call() {
    let mut app = spawn_app().await;
    let key = app.api_user("busy", &[]).await;
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let request = app.bearer(Method::GET, "/api/v1/me", &key);
        calls.spawn(async move { request.send().await.map(|r| r.status().as_u16()) });
    }
    let mut answered = 0;
    while let Some(result) = calls.join_next().await {
        if matches!(result.expect("task"), Ok(200)) {
            answered += 1;
        }
    }
    app.stop().await;

    let db = keyward::store::connect(&app.database_url, &Default::default())
        .await
        .expect("reopen");
    let user = db.api_user("busy").await.expect("query").expect("user");
    let rows = db
        .history(&HistoryQuery {
            api_user_id: Some(user.id),
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("rows");
    assert_eq!(rows.len(), answered);
    assert!(
        user.last_used_at.is_some(),
        "last use is written on shutdown"
    );
}
