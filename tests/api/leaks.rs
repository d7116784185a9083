//! Leaked keys: `POST /api/v1/leaks` revokes every real key reported, at once, without telling
//! the reporter which keys were real; the owner is alerted and the audit log says so.

use crate::helpers::{error_of, spawn_app};
use crate::receiver::Receiver;
use keyward::credentials::KeySource;
use keyward::domain::admin::Actor;
use keyward::domain::api_key::{ApiKey, SCANNER_REGEX};
use keyward::webhooks::AddWebhook;
use reqwest::Method;
use serde_json::{Value, json};

async fn report(app: &crate::helpers::TestApp, body: &Value) -> reqwest::Response {
    app.request(Method::POST, "/api/v1/leaks")
        .json(body)
        .send()
        .await
        .expect("report")
}

#[tokio::test]
async fn a_reported_key_is_refused_on_the_next_call_and_its_owner_is_alerted() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let created = app
        .webhooks
        .add(
            &Actor::system(),
            AddWebhook {
                url: receiver.url.clone(),
                events: vec!["key.exposed".into()],
                ..AddWebhook::default()
            },
        )
        .await
        .expect("webhook");
    let key = app.api_user("erp", &["products:read"]).await;
    let token = app.login("erp", &key).await;
    assert_eq!(app.get("/api/v1/me", &key).await.status(), 200);

    let answer = report(&app, &json!({ "keys": [key] })).await;

    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.expect("json");
    assert_eq!(body, json!({ "received": 1, "recognised": 1 }));
    assert_eq!(app.get("/api/v1/me", &key).await.status(), 401);
    assert_eq!(app.last_outcome().await, "revoked_key");
    assert_eq!(
        app.get("/api/v1/me", &token).await.status(),
        401,
        "the session made with the key ended with it"
    );
    assert_eq!(
        app.history("erp").await[0].outcome,
        "revoked_token",
        "the session is refused as ended"
    );
    let calls = app.all_history().await;
    assert!(
        calls
            .iter()
            .any(|r| r.call == "POST /api/v1/leaks" && r.status == 200),
        "the report has its history row"
    );

    let hint = keyward::domain::api_key::hint(&key);
    let audit = app.db.audit_log(None, 50).await.expect("audit");
    let entry = audit
        .iter()
        .find(|a| a.action == "api_user.key_exposed")
        .expect("an audit entry");
    assert_eq!(entry.actor, "leak report");
    assert_eq!(entry.actor_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(entry.target, "erp");
    assert_eq!(entry.details["key_hint"], hint.as_str());
    assert!(!entry.details.to_string().contains(&key));

    let events = receiver.wait_for("key.exposed", 1).await;
    let event = &events[0];
    assert!(
        event.signed_with(created.secret.expose()),
        "signed with the endpoint's secret"
    );
    assert!(!event.signed_with("whsec_someone-else"));
    let payload = event.json();
    assert_eq!(
        event.header("keyward-event-id"),
        payload["id"].as_str().expect("id")
    );
    assert_eq!(event.header("keyward-event-type"), "key.exposed");
    assert_eq!(event.header("content-type"), "application/json");
    assert!(payload["id"].as_str().expect("id").starts_with("evt_"));
    assert!(payload["created"].is_i64());
    assert_eq!(payload["data"]["api_user"]["username"], "erp");
    assert_eq!(payload["data"]["key"]["hint"], hint.as_str());
    assert_eq!(payload["data"]["key"]["state"], "revoked");
    assert_eq!(payload["data"]["sessions_ended"], 1);
    assert_eq!(payload["data"]["reported_from"], "127.0.0.1");
    assert!(!event.body.contains(&key), "no secret in the event");
    assert!(!event.body.contains(created.secret.expose()));
}

#[tokio::test]
async fn the_answer_is_the_same_for_a_real_key_and_a_made_up_one() {
    let app = spawn_app().await;
    let real = app.api_user("erp", &[]).await;
    let made_up = ApiKey::generate(64).expect("key").expose().to_owned();
    let mut typo = real.clone().into_bytes();
    typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).expect("ascii");

    let for_made_up = report(&app, &json!({ "keys": [made_up] })).await;
    let for_real = report(&app, &json!({ "keys": [real] })).await;

    assert_eq!(for_made_up.status(), for_real.status());
    let made_up_body = for_made_up.text().await.expect("body");
    let real_body = for_real.text().await.expect("body");
    assert_eq!(made_up_body, real_body, "nothing tells a real key apart");
    assert_eq!(app.get("/api/v1/me", &real).await.status(), 401);

    // Strings that are not keys by prefix and checksum are counted as received only.
    let mixed = report(
        &app,
        &json!({ "keys": [typo, "hello", "kwt_notakey", format!("kw_{}", "a".repeat(61)), ApiKey::generate(100).expect("key").expose()] }),
    )
    .await;
    assert_eq!(mixed.status(), 200);
    let body: Value = mixed.json().await.expect("json");
    assert_eq!(body, json!({ "received": 5, "recognised": 1 }));
}

#[tokio::test]
async fn a_leak_during_a_rolls_grace_period_revokes_only_the_leaked_key() {
    let app = spawn_app().await;
    let old = app.api_user("erp", &[]).await;
    let new = app
        .credentials
        .rotate(
            &Actor::system(),
            "erp",
            time::Duration::hours(24),
            KeySource::default(),
            keyward::credentials::NewExpiry::AsBefore,
        )
        .await
        .expect("rotate")
        .key
        .expose()
        .to_owned();
    assert_eq!(app.get("/api/v1/me", &old).await.status(), 200);

    assert_eq!(report(&app, &json!({ "keys": [old] })).await.status(), 200);

    assert_eq!(app.get("/api/v1/me", &old).await.status(), 401);
    assert_eq!(
        app.get("/api/v1/me", &new).await.status(),
        200,
        "the user and its other key keep working"
    );
    let user = app.credentials.get("erp").await.expect("user");
    let revoked: Vec<_> = user
        .keys
        .iter()
        .filter(|k| k.revoked_at.is_some())
        .collect();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].revoked_reason.as_deref(), Some("exposed"));
}

#[tokio::test]
async fn leak_reports_are_limited_per_address() {
    let app = spawn_app().await;
    let made_up = ApiKey::generate(64).expect("key").expose().to_owned();
    for _ in 0..10 {
        assert_eq!(
            report(&app, &json!({ "keys": [made_up] })).await.status(),
            200
        );
    }

    let refused = report(&app, &json!({ "keys": [made_up] })).await;

    assert!(refused.headers().contains_key("retry-after"));
    let (status, body) = error_of(refused).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "rate_limited");
}

#[tokio::test]
async fn bad_reports_get_the_spec_error_codes() {
    let app = spawn_app().await;
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            app.request(Method::POST, "/api/v1/leaks").json(&json!({})),
            422,
            "invalid",
        ),
        (
            app.request(Method::POST, "/api/v1/leaks")
                .json(&json!({ "keys": [] })),
            422,
            "invalid",
        ),
        (
            app.request(Method::POST, "/api/v1/leaks")
                .json(&json!({ "keys": [1, 2] })),
            422,
            "invalid",
        ),
        (
            app.request(Method::POST, "/api/v1/leaks")
                .json(&json!({ "keys": vec!["kw_x"; 101] })),
            422,
            "invalid",
        ),
        (
            app.request(Method::POST, "/api/v1/leaks")
                .header("content-type", "application/json")
                .body("{\"keys\": [\"kw_"),
            400,
            "bad_request",
        ),
        (
            app.request(Method::POST, "/api/v1/leaks")
                .json(&json!({ "keys": ["x".repeat(70 * 1024)] })),
            413,
            "bad_request",
        ),
        (
            app.request(Method::POST, "/api/v1/leaks")
                .header("content-type", "text/plain")
                .body("kw_abc"),
            415,
            "bad_request",
        ),
    ];
    for (request, status, code) in cases {
        let (got, body) = error_of(request.send().await.expect("send")).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}"
        );
    }
}

#[tokio::test]
async fn the_documented_scanner_regex_matches_generated_keys_and_rejects_near_misses() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README");
    let gitleaks = std::fs::read_to_string(root.join("docs/gitleaks.toml")).expect("gitleaks rule");
    assert!(
        readme.contains(SCANNER_REGEX),
        "the README documents {SCANNER_REGEX}"
    );
    assert!(gitleaks.contains(&format!("regex = '''{SCANNER_REGEX}'''")));
    let regex = regex::Regex::new(SCANNER_REGEX).expect("regex");

    let app = spawn_app().await;
    let mut keys = vec![app.api_user("erp", &[]).await];
    for len in [64, 65, 100, 200, 255, 256] {
        keys.push(ApiKey::generate(len).expect("key").expose().to_owned());
    }
    for key in &keys {
        let text = format!("config:\n  api_key: \"{key}\"\n");
        let found: Vec<&str> = regex.find_iter(&text).map(|m| m.as_str()).collect();
        assert_eq!(found, vec![key.as_str()], "finds exactly the key");
    }

    let token = app.login("erp", &keys[0]).await;
    let body = &keys[0][3..];
    for near_miss in [
        format!("kw_{}", &body[..60]),     // one character short
        format!("kw_{}", "a".repeat(254)), // too long for any key
        format!("xkw_{body}"),             // inside a longer word
        format!("KW_{body}"),              // the prefix is lower case
        format!("kw-{body}"),              // not the prefix
        token,                             // a session token is not a key
    ] {
        assert!(!regex.is_match(&near_miss), "{near_miss} is not a key");
    }
}
