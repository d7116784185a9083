//! What a management key may not do, what it leaves in the audit log, and where its secrets
//! never go.

use super::{MANAGER, call, create, management_key, provisioner};
use crate::console::Console;
use crate::helpers::{TestApp, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_read_key_reads_but_cannot_write() {
    let app = spawn_app().await;
    let reader = management_key(&app, "auditor", &["api_users:read"]).await;
    app.api_user("erp", &[]).await;

    let (status, _) = call(&app, Method::GET, "/api/v1/api-users/erp", &reader, None).await;
    assert_eq!(status, 200);
    for (method, path, body) in [
        (
            Method::POST,
            "/api/v1/api-users",
            Some(json!({"username": "new-one"})),
        ),
        (
            Method::PATCH,
            "/api/v1/api-users/erp",
            Some(json!({"description": "x"})),
        ),
        (
            Method::POST,
            "/api/v1/api-users/erp/rotate",
            Some(json!({})),
        ),
        (Method::DELETE, "/api/v1/api-users/erp", None),
        (Method::DELETE, "/api/v1/api-users/erp/sessions", None),
    ] {
        let (status, body) = call(&app, method.clone(), path, &reader, body).await;
        assert_eq!(
            (status, code(&body)),
            (403, "insufficient_scope"),
            "{method} {path}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .expect("message")
                .contains("api_users:write")
        );
    }
    // A store key has no access to the Management API at all.
    let store_key = app.api_user("shop", &["products:write"]).await;
    let (status, body) = call(&app, Method::GET, "/api/v1/api-users", &store_key, None).await;
    assert_eq!((status, code(&body)), (403, "insufficient_scope"));
    assert!(app.credentials.get("new-one").await.is_err());
}

#[tokio::test]
async fn api_users_scopes_go_to_management_keys_only_and_only_administrators_make_those() {
    let app = spawn_app().await;
    let manager = provisioner(&app).await;
    app.api_user("erp", &[]).await;

    let (status, body) = call(
        &app,
        Method::POST,
        "/api/v1/api-users",
        &manager,
        Some(json!({"username": "sneaky", "scopes": ["api_users:read"]})),
    )
    .await;
    assert_eq!((status, code(&body)), (422, "invalid"));
    assert_eq!(body["error"]["details"][0]["field"], "scopes");
    let (status, body) = call(
        &app,
        Method::PATCH,
        "/api/v1/api-users/erp",
        &manager,
        Some(json!({"scopes": ["api_users:write"]})),
    )
    .await;
    assert_eq!((status, code(&body)), (422, "invalid"));

    for (method, path, body) in [
        (
            Method::POST,
            "/api/v1/api-users",
            json!({"username": "sneaky", "management": true, "scopes": ["api_users:read"]}),
        ),
        (
            Method::PATCH,
            "/api/v1/api-users/erp",
            json!({"management": true}),
        ),
    ] {
        let (status, body) = call(&app, method, path, &manager, Some(body)).await;
        assert_eq!((status, code(&body)), (403, "insufficient_scope"), "{path}");
        assert!(
            body["error"]["message"]
                .as_str()
                .expect("message")
                .contains("administrators")
        );
    }
    assert!(app.credentials.get("sneaky").await.is_err());
    assert!(!app.credentials.get("erp").await.expect("erp").management);
}

#[tokio::test]
async fn a_management_key_grants_and_reaches_only_within_its_own_scopes() {
    let app = spawn_app().await;
    let manager = management_key(&app, MANAGER, &["api_users:write", "products:write"]).await;
    app.api_user("catalog", &["products:read"]).await;
    app.api_user("erp", &["orders:write"]).await;
    management_key(&app, "other-manager", &["api_users:read"]).await;

    // Within its scopes: fine, write implying read.
    create(
        &app,
        &manager,
        json!({"username": "feed", "scopes": ["products:read", "products:write"]}),
    )
    .await;
    let (status, _) = call(
        &app,
        Method::PATCH,
        "/api/v1/api-users/catalog",
        &manager,
        Some(json!({"scopes": ["products:write"]})),
    )
    .await;
    assert_eq!(status, 200);

    let refusals = [
        (
            Method::POST,
            "/api/v1/api-users",
            Some(json!({"username": "stronger", "scopes": ["orders:read"]})),
            "orders:read",
        ),
        (
            Method::PATCH,
            "/api/v1/api-users/catalog",
            Some(json!({"scopes": ["products:read", "customers:write"]})),
            "customers:write",
        ),
        // A stronger user is out of reach: rotating it would hand over its key.
        (
            Method::POST,
            "/api/v1/api-users/erp/rotate",
            Some(json!({})),
            "orders:write",
        ),
        (
            Method::DELETE,
            "/api/v1/api-users/erp",
            None,
            "orders:write",
        ),
        (
            Method::POST,
            "/api/v1/api-users/erp/ips",
            Some(json!({"rule": "*"})),
            "orders:write",
        ),
        // Other management keys are administrators' to change.
        (
            Method::POST,
            "/api/v1/api-users/other-manager/rotate",
            Some(json!({})),
            "administrators",
        ),
        (
            Method::PATCH,
            "/api/v1/api-users/other-manager",
            Some(json!({"status": "disabled"})),
            "administrators",
        ),
        // Its own settings too.
        (
            Method::PATCH,
            "/api/v1/api-users/provisioner",
            Some(json!({"scopes": ["api_users:write", "orders:write"]})),
            "administrators",
        ),
        (
            Method::POST,
            "/api/v1/api-users/provisioner/ips",
            Some(json!({"rule": "*"})),
            "administrators",
        ),
    ];
    for (method, path, body, named) in refusals {
        let (status, body) = call(&app, method.clone(), path, &manager, body).await;
        assert_eq!(
            (status, code(&body)),
            (403, "insufficient_scope"),
            "{method} {path}"
        );
        let message = body["error"]["message"].as_str().expect("message");
        assert!(message.contains(named), "{method} {path}: {message}");
    }
    assert!(app.credentials.get("stronger").await.is_err());
    let erp = app.credentials.get("erp").await.expect("erp");
    assert_eq!(erp.keys.len(), 1);
    assert_eq!(erp.ips.len(), 2);
    let me = app.credentials.get(MANAGER).await.expect("me");
    assert_eq!(me.scopes.to_db(), "products:write api_users:write");
}

#[tokio::test]
async fn a_management_key_rotates_itself_but_stops_itself_only_when_confirmed() {
    let app = spawn_app().await;
    let old = provisioner(&app).await;
    let path = format!("/api/v1/api-users/{MANAGER}");

    let (status, rotated) = call(
        &app,
        Method::POST,
        &format!("{path}/rotate"),
        &old,
        Some(json!({"grace": "24h"})),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["key"].as_str().expect("new key").to_owned();
    assert_eq!(app.get("/api/v1/api-users", &old).await.status(), 200);
    assert_eq!(app.get("/api/v1/api-users", &new).await.status(), 200);

    for (method, request) in [
        (Method::DELETE, None),
        (Method::PATCH, Some(json!({"status": "disabled"}))),
    ] {
        // Unconfirmed, or confirmed with anything but its own name.
        for query in ["", "?confirm=yes"] {
            let target = format!("{path}{query}");
            let (status, body) = call(&app, method.clone(), &target, &new, request.clone()).await;
            assert_eq!(
                (status, code(&body)),
                (409, "conflict"),
                "{method} {target}"
            );
            let message = body["error"]["message"].as_str().expect("message");
            assert!(message.contains("?confirm=provisioner"), "{message}");
        }
    }
    assert_eq!(app.get("/api/v1/api-users", &new).await.status(), 200);

    let (status, body) = call(
        &app,
        Method::PATCH,
        &format!("{path}?confirm={MANAGER}"),
        &new,
        Some(json!({"status": "disabled"})),
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("disabled")));
    assert_eq!(app.get("/api/v1/api-users", &new).await.status(), 401);
    assert_eq!(app.get("/api/v1/api-users", &old).await.status(), 401);
}

/// An administrator rolls a management key with a grace period (it may have leaked): the old
/// key keeps working while the automation switches, but it cannot roll in turn and so replace
/// the key the administrator just issued; the current key can.
#[tokio::test]
async fn a_key_replaced_by_a_roll_cannot_replace_the_key_that_replaced_it() {
    let app = spawn_app().await;
    let old = provisioner(&app).await;
    let old_token = app.login(MANAGER, &old).await;
    let new = app
        .credentials
        .rotate(
            &keyward::domain::admin::Actor::cli(),
            MANAGER,
            time::Duration::hours(24),
            keyward::credentials::KeySource::default(),
            keyward::credentials::NewExpiry::AsBefore,
        )
        .await
        .expect("the administrator's roll")
        .key
        .expose()
        .to_owned();
    let path = format!("/api/v1/api-users/{MANAGER}/rotate");

    for (credential, what) in [(&old, "the old key"), (&old_token, "its session")] {
        for grace in ["none", "7d"] {
            let (status, body) = call(
                &app,
                Method::POST,
                &path,
                credential,
                Some(json!({ "grace": grace })),
            )
            .await;
            assert_eq!(
                (status, code(&body)),
                (403, "insufficient_scope"),
                "{what}: {body}"
            );
            let message = body["error"]["message"].as_str().expect("message");
            assert!(
                message.contains("only the newest key rolls itself"),
                "{message}"
            );
        }
    }
    // Nor does it stop the user, and the new key with it, or end the new key's sessions.
    let new_token = app.login(MANAGER, &new).await;
    let me = format!("/api/v1/api-users/{MANAGER}");
    for (method, target, body) in [
        (Method::DELETE, format!("{me}?confirm={MANAGER}"), None),
        (
            Method::PATCH,
            format!("{me}?confirm={MANAGER}"),
            Some(json!({"status": "disabled"})),
        ),
        (Method::DELETE, format!("{me}/sessions"), None),
    ] {
        let (status, answer) = call(&app, method.clone(), &target, &old, body).await;
        assert_eq!(status, 403, "{method} {target}: {answer}");
    }
    assert_eq!(app.get("/api/v1/me", &new_token).await.status(), 200);
    assert_eq!(app.get("/api/v1/me", &new).await.status(), 200);
    assert_eq!(
        app.get("/api/v1/me", &old).await.status(),
        200,
        "in its grace"
    );
    let user = app.credentials.get(MANAGER).await.expect("user");
    assert_eq!(user.keys.len(), 2, "nothing was rolled");
    let hint = |index: usize| {
        let mut keys = user.keys.clone();
        keys.sort_by_key(|k| k.id);
        keys[index].hint.clone()
    };
    let (old_hint, new_hint) = (hint(0), hint(1));

    // The current key rolls itself; the audit says which key did it and which keys stopped.
    let (status, body) = call(&app, Method::POST, &path, &new, Some(json!({}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.get("/api/v1/me", &old).await.status(), 401);
    let audit = audit_of(&app).await;
    let rolled = audit
        .iter()
        .find(|r| r.action == "api_user.rotate" && r.actor == format!("api:{MANAGER}"))
        .expect("the key's roll");
    assert_eq!(rolled.details["by_key_hint"], json!(new_hint));
    assert_eq!(rolled.details["old_key_hint"], json!(new_hint));
    assert_eq!(
        rolled.details["stopped_key_hints"],
        json!([new_hint, old_hint])
    );
}

/// A management key whose own roll's answer was lost (the new key never reached it) may roll
/// again: the key that replaced it came from its own roll, not from an administrator.
#[tokio::test]
async fn a_key_that_lost_the_answer_of_its_own_roll_may_roll_again() {
    let app = spawn_app().await;
    let old = provisioner(&app).await;
    let path = format!("/api/v1/api-users/{MANAGER}/rotate");
    let (status, lost) = call(
        &app,
        Method::POST,
        &path,
        &old,
        Some(json!({"grace": "1h"})),
    )
    .await;
    assert_eq!(status, 200, "{lost}");

    let (status, again) = call(
        &app,
        Method::POST,
        &path,
        &old,
        Some(json!({"grace": "1h"})),
    )
    .await;
    assert_eq!(status, 200, "{again}");
    let newest = again["key"].as_str().expect("key");
    assert_eq!(app.get("/api/v1/me", newest).await.status(), 200);
    let lost = lost["key"].as_str().expect("key");
    assert_eq!(
        app.get("/api/v1/me", lost).await.status(),
        200,
        "now in its grace"
    );
    assert_eq!(
        app.get("/api/v1/me", &old).await.status(),
        401,
        "stopped: two keys at most"
    );
}

/// The expiry of `username`'s newest key, in whole days from now (rounded).
async fn newest_key_days(app: &TestApp, username: &str) -> Option<i64> {
    let user = app.credentials.get(username).await.expect("user");
    let newest = user.keys.iter().max_by_key(|k| k.id).expect("a key");
    let now = time::OffsetDateTime::now_utc();
    newest
        .expires_at
        .map(|at| ((at - now).whole_hours() as f64 / 24.0).round() as i64)
}

#[tokio::test]
async fn a_rotated_key_lasts_as_long_as_the_one_it_replaces_and_no_key_a_management_key_makes_outlives_its_own()
 {
    let app = spawn_app().await;
    let key = app
        .api_user_with(keyward::credentials::CreateApiUser {
            username: MANAGER.to_owned(),
            scopes: vec!["api_users:write".to_owned(), "orders:read".to_owned()],
            ips: vec!["127.0.0.1".to_owned(), "::1".to_owned()],
            management: true,
            expires_in: keyward::credentials::NewExpiry::In(time::Duration::days(90)),
            ..Default::default()
        })
        .await;
    let send = |method: Method, path: String, body: Value| {
        let (app, key) = (&app, key.clone());
        async move { call(app, method, &path, &key, Some(body)).await }
    };
    let rotate = |username: &str, body: Value| {
        send(
            Method::POST,
            format!("/api/v1/api-users/{username}/rotate"),
            body,
        )
    };
    let create = |body: Value| send(Method::POST, "/api/v1/api-users".to_owned(), body);
    let refused_expiry = |(status, body): (u16, Value)| {
        assert_eq!((status, code(&body)), (422, "invalid"), "{body}");
        assert_eq!(body["error"]["details"][0]["field"], "expires_in", "{body}");
    };

    let (status, erp) =
        create(json!({"username": "erp", "scopes": ["orders:read"], "expires_in": "30d"})).await;
    assert_eq!(status, 201, "{erp}");
    // A key made for 30 days is replaced by one made for 30 days.
    assert_eq!(rotate("erp", json!({})).await.0, 200);
    assert_eq!(newest_key_days(&app, "erp").await, Some(30));
    let (status, rotated) = rotate("erp", json!({"expires_in": "7d"})).await;
    assert_eq!(status, 200);
    assert_eq!(newest_key_days(&app, "erp").await, Some(7));
    // Even when the key it replaces is no longer live: revoked as leaked, say.
    let leaked = app
        .request(Method::POST, "/api/v1/leaks")
        .json(&json!({"keys": [rotated["key"]]}))
        .send()
        .await
        .expect("leak report");
    assert_eq!(leaked.status(), 200);
    assert_eq!(rotate("erp", json!({})).await.0, 200);
    assert_eq!(newest_key_days(&app, "erp").await, Some(7));

    // Nothing it makes outlives the 90 days an administrator gave it: asked, refused...
    for longer in ["365d", "never"] {
        refused_expiry(rotate("erp", json!({ "expires_in": longer })).await);
        refused_expiry(rotate(MANAGER, json!({ "expires_in": longer })).await);
    }
    for longer in ["365d", "never"] {
        refused_expiry(create(json!({"username": "long", "expires_in": longer})).await);
    }
    // ...by default, cut to its own end.
    assert_eq!(create(json!({"username": "short"})).await.0, 201);
    let own_end = |username: &'static str| {
        let app = &app;
        async move {
            let user = app.credentials.get(username).await.expect("user");
            user.keys
                .iter()
                .max_by_key(|k| k.id)
                .expect("a key")
                .expires_at
        }
    };
    let manager_end = own_end(MANAGER).await;
    assert_eq!(own_end("short").await, manager_end);
    assert_eq!(newest_key_days(&app, MANAGER).await, Some(90));
    let (status, body) = rotate(MANAGER, json!({"grace": "1h"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        own_end(MANAGER).await,
        manager_end,
        "its own roll keeps its end"
    );
    // The old key, ending within the hour, now issues nothing past that; the new one may.
    refused_expiry(rotate(MANAGER, json!({"expires_in": "2h"})).await);
    let new = body["key"].as_str().expect("new key");
    let path = format!("/api/v1/api-users/{MANAGER}/rotate");
    let (status, body) = call(
        &app,
        Method::POST,
        &path,
        new,
        Some(json!({"expires_in": "10d"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(newest_key_days(&app, MANAGER).await, Some(10));

    // The audit log says when the new key expires, in RFC 3339 as everywhere else.
    let audit = audit_of(&app).await;
    let rotated = audit
        .iter()
        .find(|r| r.action == "api_user.rotate")
        .expect("a rotation");
    let expires = rotated.details["key_expires_at"].as_str().expect("a time");
    time::OffsetDateTime::parse(expires, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{expires}: {e}"));
}

async fn audit_of(app: &TestApp) -> Vec<keyward::domain::admin::AuditRecord> {
    app.db.audit_log(None, 100).await.expect("audit log")
}

#[tokio::test]
async fn every_change_is_audited_with_the_key_as_actor_and_no_secret() {
    let app = spawn_app().await;
    let manager = provisioner(&app).await;
    let mut secrets = vec![manager.clone()];
    secrets.push(
        create(
            &app,
            &manager,
            json!({"username": "erp", "ips": ["127.0.0.1"], "scopes": ["orders:read"]}),
        )
        .await,
    );
    let token = app.login("erp", &secrets[1]).await;
    secrets.push(token);
    let steps = [
        (
            Method::PATCH,
            "/api/v1/api-users/erp",
            Some(json!({"description": "ERP"})),
        ),
        // Changes that change nothing leave no entry.
        (Method::PATCH, "/api/v1/api-users/erp", Some(json!({}))),
        (
            Method::PATCH,
            "/api/v1/api-users/erp",
            Some(json!({"description": "ERP", "scopes": ["orders:read"]})),
        ),
        (
            Method::POST,
            "/api/v1/api-users/erp/ips",
            Some(json!({"rule": "192.0.2.0/24"})),
        ),
        (
            Method::DELETE,
            "/api/v1/api-users/erp/ips?rule=192.0.2.0/24",
            None,
        ),
        (
            Method::PUT,
            "/api/v1/api-users/erp/ips",
            Some(json!({"ips": ["::1"]})),
        ),
        (Method::DELETE, "/api/v1/api-users/erp/sessions", None),
        (
            Method::POST,
            "/api/v1/api-users/erp/rotate",
            Some(json!({"grace": "1h"})),
        ),
        (Method::DELETE, "/api/v1/api-users/erp", None),
    ];
    for (method, path, body) in steps {
        let (status, body) = call(&app, method.clone(), path, &manager, body).await;
        assert!(status < 300, "{method} {path}: {status} {body}");
        if let Some(key) = body["key"].as_str() {
            secrets.push(key.to_owned());
        }
    }

    let audit = audit_of(&app).await;
    let ours: Vec<&str> = audit
        .iter()
        .filter(|r| r.actor == "api:provisioner")
        .map(|r| r.action.as_str())
        .collect();
    assert_eq!(
        ours,
        [
            "api_user.delete",
            "api_user.rotate",
            "api_user.sessions_revoke",
            "api_user.update",
            "api_user.ip_remove",
            "api_user.ip_add",
            "api_user.update",
            "api_user.create",
        ]
    );
    assert!(
        audit
            .iter()
            .filter(|r| r.actor == "api:provisioner")
            .all(|r| r.actor_ip.as_deref() == Some("127.0.0.1") && r.target == "erp")
    );

    // The console's audit page shows the key as the actor, apart from admins and the CLI.
    let console = Console::new(&app);
    console.sign_in("admin", "test-admin-password").await;
    let page = console.html("/admin/audit").await;
    assert!(page.contains("api:provisioner <span class=\"badge grey\">API key</span>"));
    assert!(page.contains("api_user.rotate"));

    let stored = app.stored_text().await;
    let details: String = audit.iter().map(|r| r.details.to_string()).collect();
    for secret in &secrets {
        let tail = &secret[secret.len() - 20..];
        assert!(!details.contains(tail), "a secret in the audit log");
        assert!(!page.contains(tail), "a secret on the audit page");
        assert!(!stored.contains(tail), "a secret in the database");
    }
    let (_, history) = call(
        &app,
        Method::GET,
        &format!("/api/v1/api-users/{MANAGER}/history?limit=1000"),
        &manager,
        None,
    )
    .await;
    for secret in &secrets {
        assert!(!history.to_string().contains(&secret[secret.len() - 20..]));
    }
}

#[tokio::test]
async fn an_idempotent_retry_changes_nothing_and_never_replays_the_key() {
    let app = spawn_app().await;
    let manager = provisioner(&app).await;
    let send = || {
        app.bearer(Method::POST, "/api/v1/api-users", &manager)
            .header("Idempotency-Key", "create-erp-1")
            .json(&json!({"username": "erp", "ips": ["127.0.0.1"]}))
            .send()
    };

    let first = send().await.expect("create");
    assert_eq!(first.status(), 201);
    let key = first.json::<Value>().await.expect("json")["key"]
        .as_str()
        .expect("key")
        .to_owned();
    let retry = send().await.expect("retry");
    assert_eq!(retry.status(), 409);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let body: Value = retry.json().await.expect("json");
    assert_eq!(code(&body), "conflict");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("shown once")
    );
    assert!(!body.to_string().contains(&key));

    assert_eq!(app.credentials.get("erp").await.expect("erp").keys.len(), 1);
    assert!(!app.stored_text().await.contains(&key[key.len() - 20..]));
    let creations = audit_of(&app)
        .await
        .iter()
        .filter(|r| r.action == "api_user.create" && r.target == "erp")
        .count();
    assert_eq!(creations, 1);
}
