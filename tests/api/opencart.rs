//! The holes measured in OpenCart's API, each shown closed: a forged
//! `X-Forwarded-For` passing the IP list, a token sent as a cookie skipping the
//! checks, a made-up token giving a 500 with the server's file path, failed
//! attempts leaving no trace, and session and history tables growing forever.

use crate::helpers::{error_of, spawn_app};
use keyward::credentials::CreateApiUser;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn a_forged_x_forwarded_for_does_not_pass_the_ip_list() {
    let app = spawn_app().await;
    let key = app
        .api_user_with(CreateApiUser {
            username: "shop-sync".into(),
            ips: vec!["203.0.113.7".into()],
            ..CreateApiUser::default()
        })
        .await;

    for (header, forged) in [
        ("X-Forwarded-For", "203.0.113.7"),
        ("X-Forwarded-For", "203.0.113.7, 127.0.0.1"),
        ("X-Real-IP", "203.0.113.7"),
        ("Client-IP", "203.0.113.7"),
        ("Forwarded", "for=203.0.113.7"),
    ] {
        let login = app
            .request(Method::POST, "/api/v1/login")
            .header(header, forged)
            .json(&json!({"username": "shop-sync", "key": key}))
            .send()
            .await
            .expect("login");
        let (status, body) = error_of(login).await;
        assert_eq!(status, 403, "{header}: {forged}");
        assert_eq!(body["error"]["code"], "ip_not_allowed");
    }
    let history = app.history("shop-sync").await;
    assert_eq!(history.len(), 5);
    for row in history {
        assert_eq!(row.outcome, "ip_not_allowed");
        assert_eq!(row.ip, "127.0.0.1", "the history keeps the real address");
    }
}

#[tokio::test]
async fn a_token_sent_as_a_cookie_is_no_credential_at_all() {
    let app = spawn_app().await;
    let key = app.api_user("cookie-eater", &[]).await;
    let token = app.login("cookie-eater", &key).await;

    for cookie in ["api_token", "token", "OCSESSID", "session"] {
        let response = app
            .request(Method::GET, "/api/v1/me")
            .header("Cookie", format!("{cookie}={token}"))
            .send()
            .await
            .expect("call");
        let (status, body) = error_of(response).await;
        assert_eq!(status, 401, "cookie {cookie}");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    // The same token in a header goes through every check: here the IP list,
    // emptied after the login.
    app.credentials
        .remove_ip(
            &keyward::domain::admin::Actor::system(),
            "cookie-eater",
            "127.0.0.1",
        )
        .await
        .expect("remove ip");
    let (status, body) = error_of(app.get("/api/v1/me", &token).await).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "ip_not_allowed");
}

#[tokio::test]
async fn a_made_up_token_is_a_plain_401_that_reveals_nothing() {
    let app = spawn_app().await;
    let real_key = app.api_user("target", &[]).await;
    let real = app.login("target", &real_key).await;
    let mut near_miss = real.clone().into_bytes();
    let last = near_miss.len() - 1;
    near_miss[last] = if near_miss[last] == b'a' { b'b' } else { b'a' };
    let near_miss = String::from_utf8(near_miss).expect("ascii");
    let long = "x".repeat(8_000);

    let made_up = [
        "kwt_00000000000000000000000000000000000000000000",
        "kwt_",
        "kw_tok_",
        "kw_",
        "'; DROP TABLE api_sessions; --",
        "../../../../etc/passwd",
        "%00%ff",
        near_miss.as_str(),
        long.as_str(),
    ];
    let mut bodies = Vec::new();
    for token in made_up {
        for header in ["Authorization", "X-Api-Token"] {
            let value = if header == "Authorization" {
                format!("Bearer {token}")
            } else {
                token.to_owned()
            };
            let response = app
                .request(Method::GET, "/api/v1/products")
                .header(header, value)
                .send()
                .await
                .expect("call");
            let (status, body) = error_of(response).await;
            assert_eq!(status, 401, "{header}: {token:.40}");
            let text = body.to_string();
            for revealing in ["/src/", ".rs", "/home/", "/tmp/", "panicked", "sqlx", "SQL"] {
                assert!(!text.contains(revealing), "{text}");
            }
            bodies.push(body["error"]["message"].clone());
        }
    }
    bodies.dedup();
    assert_eq!(bodies.len(), 1, "one message for every made-up token");
    assert_eq!(app.get("/api/v1/me", &real).await.status(), 200);
}

#[tokio::test]
async fn every_failed_attempt_leaves_a_trace_with_its_reason_and_address() {
    let app = spawn_app().await;
    let key = app.api_user("erp", &[]).await;

    let attempts = [
        json!({"username": "erp", "key": "kw_wrong"}),
        json!({"username": "erp", "key": format!("{key}x")}),
        json!({"username": "nobody", "key": key}),
        json!({"username": "erp"}),
    ];
    for body in &attempts {
        let response = app
            .request(Method::POST, "/api/v1/login")
            .json(body)
            .send()
            .await
            .expect("login");
        assert!(response.status().is_client_error(), "{body}");
    }
    let rows = app.all_history().await;
    assert_eq!(rows.len(), attempts.len());
    for row in &rows {
        assert_ne!(row.outcome, "ok");
        assert_eq!(row.ip, "127.0.0.1");
        assert!(row.call.contains("/api/v1/login"), "{}", row.call);
    }
    let of_erp = app.history("erp").await;
    assert!(
        of_erp.len() >= 2,
        "failures against a known user are on its history"
    );
}

#[tokio::test]
async fn sessions_and_history_are_cleaned_up_on_their_own() {
    let app = spawn_app().await;
    let key = app.api_user("short-lived", &[]).await;
    let token = app.login("short-lived", &key).await;
    assert_eq!(app.get("/api/v1/me", &token).await.status(), 200);
    assert_eq!(
        app.credentials
            .sessions("short-lived", false)
            .await
            .expect("sessions")
            .len(),
        1
    );
    assert_eq!(app.history("short-lived").await.len(), 2);

    // Past the default 90-day retention, and past every session lifetime.
    app.clock.advance(time::Duration::days(91));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let sessions = app
            .credentials
            .sessions("short-lived", false)
            .await
            .expect("sessions");
        let history = app.history("short-lived").await;
        if sessions.is_empty() && history.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "left {} sessions and {} history rows",
            sessions.len(),
            history.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
