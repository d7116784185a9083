//! Every way of authenticating goes through one pipeline.

use crate::helpers::{error_of, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn bearer_key_authenticates_without_a_login_step() {
    let app = spawn_app().await;
    let key = app.api_user("inventory-sync", &["products:read"]).await;

    let response = app.get("/api/v1/me", &key).await;

    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(response.headers()["ratelimit-limit"], "600");
    let me: Value = response.json().await.expect("json");
    assert_eq!(me["api_user"]["username"], "inventory-sync");
    assert_eq!(me["scopes"], json!(["products:read"]));
    assert_eq!(me["ip"], "127.0.0.1");
    assert_eq!(me["session"], Value::Null);
    assert_eq!(me["rate_limit"]["limit_per_minute"], 600);
}

#[tokio::test]
async fn basic_auth_takes_username_and_key() {
    let app = spawn_app().await;
    let key = app.api_user("erp", &["orders:read"]).await;

    let response = app
        .request(Method::GET, "/api/v1/me")
        .basic_auth("erp", Some(&key))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);

    let wrong_user = app
        .request(Method::GET, "/api/v1/me")
        .basic_auth("someone", Some(&key))
        .send()
        .await
        .expect("request");
    assert_eq!(wrong_user.status(), 401);
    assert_eq!(app.last_outcome().await, "unknown_user");
}

#[tokio::test]
async fn login_returns_a_token_that_works_as_bearer_and_as_x_api_token() {
    let app = spawn_app().await;
    let key = app.api_user("mobile-app", &["products:read"]).await;

    let response = app
        .request(Method::POST, "/api/v1/login")
        .json(&json!({"username": "mobile-app", "key": key}))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.expect("json");
    let token = body["api_token"].as_str().expect("token").to_owned();
    assert!(token.starts_with("kwt_") && token.len() >= 48, "{token}");
    assert_eq!(body["idle_timeout_s"], 3600);
    assert!(body["expires_at"].is_string());

    let with_bearer = app.get("/api/v1/products", &token).await;
    assert_eq!(with_bearer.status(), 200);
    let with_header = app
        .request(Method::GET, "/api/v1/me")
        .header("X-Api-Token", &token)
        .send()
        .await
        .expect("request");
    assert_eq!(with_header.status(), 200);
    let me: Value = with_header.json().await.expect("json");
    assert!(me["session"]["id"].is_number());
}

#[tokio::test]
async fn login_accepts_form_fields_like_curl_does() {
    let app = spawn_app().await;
    let key = app.api_user("form-user", &[]).await;

    let response = app
        .request(Method::POST, "/api/v1/login")
        .form(&[("username", "form-user"), ("key", key.as_str())])
        .send()
        .await
        .expect("login");

    assert_eq!(response.status(), 200);

    // The body types every other route takes, read the same way.
    let json = json!({"username": "form-user", "key": key}).to_string();
    for (content_type, expected) in [
        ("application/x-www-form-urlencoded", 200), // `curl -d '{…}'`
        ("application/json", 200),
        ("text/plain", 415),
        ("text/xml", 415),
    ] {
        let response = app
            .request(Method::POST, "/api/v1/login")
            .header("Content-Type", content_type)
            .body(json.clone())
            .send()
            .await
            .expect("login");
        assert_eq!(response.status(), expected, "{content_type}");
    }

    // `curl -F username=… -F key=…` sends the form as multipart.
    let boundary = "------------------------4f1c0e6a2b7d9e35";
    let multipart = |fields: &[(&str, &str)]| {
        let mut body = String::new();
        for (name, value) in fields {
            body.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        }
        body.push_str(&format!("--{boundary}--\r\n"));
        app.request(Method::POST, "/api/v1/login")
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
    };
    let response = multipart(&[("username", "form-user"), ("key", key.as_str())])
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    assert!(
        body["api_token"]
            .as_str()
            .is_some_and(|t| t.starts_with("kwt_")),
        "{body}"
    );
    let response = multipart(&[("username", "form-user")])
        .send()
        .await
        .expect("login");
    let (status, error) = error_of(response).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (422, Some("invalid")),
        "{error}"
    );
}

#[tokio::test]
async fn logout_ends_the_session_at_once() {
    let app = spawn_app().await;
    let key = app.api_user("pos", &[]).await;
    let token = app.login("pos", &key).await;

    let response = app
        .bearer(Method::POST, "/api/v1/logout", &token)
        .send()
        .await
        .expect("logout");
    assert_eq!(response.status(), 204);

    let after = app.get("/api/v1/me", &token).await;
    assert_eq!(after.status(), 401);
    assert_eq!(app.last_outcome().await, "revoked_token");
}

#[tokio::test]
async fn logout_with_a_key_explains_there_is_no_session() {
    let app = spawn_app().await;
    let key = app.api_user("keyonly", &[]).await;

    let response = app
        .bearer(Method::POST, "/api/v1/logout", &key)
        .send()
        .await
        .expect("logout");

    let (status, body) = error_of(response).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("session")
    );
}

#[tokio::test]
async fn secrets_in_the_query_string_are_refused_and_told_to_use_the_header() {
    let app = spawn_app().await;
    let key = app.api_user("leaky", &["products:read"]).await;
    let token = app.login("leaky", &key).await;

    for query in [
        format!("api_token={token}"),
        format!("token={token}"),
        format!("key={key}"),
    ] {
        let response = app.get(&format!("/api/v1/products?{query}"), &key).await;
        let (status, body) = error_of(response).await;
        assert_eq!(status, 401, "{query}");
        assert!(
            body["error"]["message"]
                .as_str()
                .expect("message")
                .contains("header"),
            "{body}"
        );
    }
    let login = app
        .request(Method::POST, &format!("/api/v1/login?key={key}"))
        .json(&json!({"username": "leaky", "key": key}))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), 401);
    assert_eq!(app.last_outcome().await, "secret_in_query");
}

#[tokio::test]
async fn failed_logins_are_throttled_per_username() {
    let app = spawn_app().await;
    let key = app.api_user("target", &[]).await;

    let mut statuses = Vec::new();
    for _ in 0..12 {
        let response = app
            .request(Method::POST, "/api/v1/login")
            .json(&json!({"username": "target", "key": format!("kw_{}", "x".repeat(61))}))
            .send()
            .await
            .expect("login");
        statuses.push(response.status().as_u16());
    }
    // The default allows 10 failures a minute: the 11th attempt is refused.
    assert_eq!(statuses[..10], [401; 10], "{statuses:?}");
    assert_eq!(statuses[10..], [429; 2], "{statuses:?}");
    let right_key_now = app
        .request(Method::POST, "/api/v1/login")
        .json(&json!({"username": "target", "key": key}))
        .send()
        .await
        .expect("login");
    let (status, body) = error_of(right_key_now).await;
    assert_eq!(
        status, 429,
        "even the right key waits while throttled: {body}"
    );
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(app.last_outcome().await, "login_throttled");
}

#[tokio::test]
async fn failed_logins_are_throttled_per_address() {
    let app = crate::helpers::spawn_app_with(crate::helpers::Settings {
        login_failures_per_ip: 3,
        ..Default::default()
    })
    .await;
    app.api_user("victim", &[]).await;

    let mut last = 0;
    for i in 0..6 {
        let response = app
            .request(Method::POST, "/api/v1/login")
            .json(&json!({"username": format!("nobody{i}"), "key": "kw_wrong"}))
            .send()
            .await
            .expect("login");
        last = response.status().as_u16();
    }
    assert_eq!(last, 429);
    let other_user = app
        .request(Method::POST, "/api/v1/login")
        .json(&json!({"username": "victim", "key": "kw_wrong"}))
        .send()
        .await
        .expect("login");
    assert_eq!(
        other_user.status(),
        429,
        "the address is blocked whatever the username"
    );
}

#[tokio::test]
async fn curl_u_with_the_key_as_username_and_no_password_works() {
    let app = spawn_app().await;
    let key = app.api_user("stripe-style", &[]).await;

    let response = app
        .request(Method::GET, "/api/v1/me")
        .basic_auth(&key, Some(""))
        .send()
        .await
        .expect("request");

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_burst_of_parallel_guesses_is_throttled_like_a_sequence() {
    let app = spawn_app().await;
    app.api_user("burst-target", &[]).await;

    let mut guesses = tokio::task::JoinSet::new();
    for i in 0..40 {
        let request = app
            .request(Method::POST, "/api/v1/login")
            .json(&json!({"username": "burst-target", "key": format!("kw_guess{i}")}));
        guesses.spawn(async move { request.send().await.expect("login").status().as_u16() });
    }
    let mut statuses = Vec::new();
    while let Some(status) = guesses.join_next().await {
        statuses.push(status.expect("task"));
    }

    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert!(
        checked <= 11,
        "only the allowance of 10 failures (and the one that tripped it) was checked: {statuses:?}"
    );
    assert!(statuses.iter().filter(|s| **s == 429).count() >= 29);
}
