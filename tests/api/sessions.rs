//! Sessions: idle timeout (sliding), absolute lifetime, revocation, and the events that end
//! them. Time moves through the app's clock, never by sleeping.

use crate::helpers::{Settings, spawn_app, spawn_app_with};
use keyward::credentials::{CreateApiUser, KeySource};
use keyward::domain::admin::Actor;
use keyward::domain::api_user::Status;
use time::Duration;

#[tokio::test]
async fn an_idle_session_expires_after_an_hour() {
    let app = spawn_app().await;
    let key = app.api_user("idle", &[]).await;
    let token = app.login("idle", &key).await;

    app.clock.advance(Duration::minutes(61));

    assert_eq!(app.get("/api/v1/me", &token).await.status(), 401);
    assert_eq!(app.last_outcome().await, "expired_token");
}

#[tokio::test]
async fn the_idle_timeout_slides_with_each_call() {
    let app = spawn_app().await;
    let key = app.api_user("sliding", &[]).await;
    let token = app.login("sliding", &key).await;

    for _ in 0..5 {
        app.clock.advance(Duration::minutes(50));
        assert_eq!(app.get("/api/v1/me", &token).await.status(), 200);
    }
}

#[tokio::test]
async fn a_session_ends_after_its_absolute_lifetime_however_busy() {
    let app = spawn_app().await;
    let key = app.api_user("allday", &[]).await;
    let token = app.login("allday", &key).await;

    for _ in 0..29 {
        app.clock.advance(Duration::minutes(50));
        app.get("/api/v1/me", &token).await;
    }

    assert_eq!(app.get("/api/v1/me", &token).await.status(), 401);
    assert_eq!(app.last_outcome().await, "expired_token");
    // The key itself still works, and a new login starts a new day.
    assert_eq!(app.get("/api/v1/me", &key).await.status(), 200);
}

/// `kwt_` + the secret (44 characters) + the session's number.
fn split(token: &str) -> (&str, &str) {
    token.split_at(4 + 44)
}

#[tokio::test]
async fn a_token_names_its_session_and_holds_only_with_that_sessions_secret() {
    let app = spawn_app().await;
    let key_a = app.api_user("numbered-a", &[]).await;
    let key_b = app.api_user("numbered-b", &[]).await;
    let a = app.login("numbered-a", &key_a).await;
    let b = app.login("numbered-b", &key_b).await;
    let ((secret_a, number_a), (secret_b, number_b)) = (split(&a), split(&b));
    let listed = app
        .credentials
        .sessions("numbered-a", true)
        .await
        .expect("sessions");
    assert_eq!(listed.first().expect("session").id.0.to_string(), number_a);

    // Each secret with the other's number: once before either session was used (read from the
    // database), once after (from memory).
    for _ in 0..2 {
        for forged in [
            format!("{secret_a}{number_b}"),
            format!("{secret_b}{number_a}"),
        ] {
            assert_eq!(app.get("/api/v1/me", &forged).await.status(), 401);
            assert_eq!(app.last_outcome().await, "unknown_token");
        }
        assert_eq!(app.get("/api/v1/me", &a).await.status(), 200);
        assert_eq!(app.get("/api/v1/me", &b).await.status(), 200);
    }
    let history = app.history("numbered-a").await;
    assert_eq!(
        history
            .first()
            .and_then(|row| row.session_id)
            .map(|id| id.0.to_string()),
        Some(number_a.to_owned()),
        "the history names the session the token names"
    );
}

#[tokio::test]
async fn sessions_can_be_revoked_one_by_one_or_all_at_once() {
    let app = spawn_app().await;
    let key = app.api_user("multi", &[]).await;
    let first = app.login("multi", &key).await;
    let second = app.login("multi", &key).await;
    let third = app.login("multi", &key).await;

    let sessions = app
        .credentials
        .sessions("multi", true)
        .await
        .expect("sessions");
    assert_eq!(sessions.len(), 3);
    let newest = sessions.first().expect("session").id;
    app.credentials
        .revoke_sessions(&Actor::system(), "multi", Some(newest))
        .await
        .expect("revoke one");

    assert_eq!(app.get("/api/v1/me", &third).await.status(), 401);
    assert_eq!(app.get("/api/v1/me", &first).await.status(), 200);

    let revoked = app
        .credentials
        .revoke_sessions(&Actor::system(), "multi", None)
        .await
        .expect("revoke all");
    assert_eq!(revoked, 2);
    assert_eq!(app.get("/api/v1/me", &first).await.status(), 401);
    assert_eq!(app.get("/api/v1/me", &second).await.status(), 401);
}

#[tokio::test]
async fn disabling_the_user_ends_its_sessions_for_good() {
    let app = spawn_app().await;
    let key = app.api_user("pausing", &[]).await;
    let token = app.login("pausing", &key).await;

    app.credentials
        .set_status(&Actor::system(), "pausing", Status::Disabled)
        .await
        .expect("disable");
    assert_eq!(app.get("/api/v1/me", &token).await.status(), 401);

    app.credentials
        .set_status(&Actor::system(), "pausing", Status::Enabled)
        .await
        .expect("enable");
    assert_eq!(
        app.get("/api/v1/me", &token).await.status(),
        401,
        "re-enabling does not revive sessions"
    );
    assert_eq!(app.get("/api/v1/me", &key).await.status(), 200);
}

#[tokio::test]
async fn a_login_answered_before_a_disable_answered_never_outlives_it() {
    logins_racing_a_disable(Entry::Api, None).await;
}

#[tokio::test]
async fn an_opencart_login_racing_a_disable_is_refused_as_opencart_refuses_one() {
    logins_racing_a_disable(Entry::OpenCart, None).await;
}

/// The same with a database in memory, whose history is written through the store's async
/// methods rather than a writer thread of its own.
#[tokio::test]
async fn a_login_racing_a_disable_is_refused_with_a_database_in_memory_too() {
    logins_racing_a_disable(Entry::Api, Some("sqlite::memory:")).await;
}

#[derive(Clone, Copy, PartialEq)]
enum Entry {
    Api,
    OpenCart,
}

/// Logins through `entry` while their user is disabled, in rounds: each token answered before
/// the disable was must be ended by it, also when its session reached the database after it,
/// and a login refused after its check is refused as any other: `/api/v1`'s 401, or OpenCart's
/// 200 with "Incorrect API Key", and its history row says what was answered.
async fn logins_racing_a_disable(entry: Entry, database_url: Option<&'static str>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    // Logins refused after each disable count as failures: a user per round, and room for
    // them from one address and for one name.
    let app = Arc::new(
        spawn_app_with(Settings {
            login_failures_per_ip: 1000,
            login_failures_per_username: 1000,
            database_url,
            ..Settings::default()
        })
        .await,
    );
    for round in 0..8 {
        let username = format!("racing{round}");
        let key = app
            .api_user_with(CreateApiUser {
                username: username.clone(),
                ips: vec!["127.0.0.1".into()],
                rate_limit_per_minute: Some(1_000_000),
                ..CreateApiUser::default()
            })
            .await;
        let disabled = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicUsize::new(0));
        let logins: Vec<_> = (0..4)
            .map(|_| {
                let (app, username, key) = (app.clone(), username.clone(), key.clone());
                let (disabled, answered) = (disabled.clone(), answered.clone());
                tokio::spawn(async move {
                    let mut answered_before = Vec::new();
                    while !disabled.load(Ordering::SeqCst) {
                        let request = match entry {
                            Entry::Api => app
                                .request(reqwest::Method::POST, "/api/v1/login")
                                .json(&serde_json::json!({"username": username, "key": key})),
                            Entry::OpenCart => app
                                .request(
                                    reqwest::Method::POST,
                                    "/index.php?route=api/account/login",
                                )
                                .form(&[("username", username.as_str()), ("key", key.as_str())]),
                        };
                        let response = request.send().await.expect("login");
                        answered.fetch_add(1, Ordering::SeqCst);
                        let status = response.status();
                        let body: serde_json::Value = response.json().await.expect("json");
                        let token = body["api_token"].as_str().map(str::to_owned);
                        // Before the disable, or refused after it as a disabled user's login
                        // is: never "unavailable".
                        let refused = match entry {
                            Entry::Api => status == 401,
                            Entry::OpenCart => {
                                status == 200 && body["error"] == "Warning: Incorrect API Key!"
                            }
                        };
                        assert!(
                            (status == 200 && token.is_some()) || refused,
                            "a login around the disable answered {status}: {body}"
                        );
                        if let Some(token) = token
                            && !disabled.load(Ordering::SeqCst)
                        {
                            answered_before.push(token);
                        }
                    }
                    answered_before
                })
            })
            .collect();
        // The disable comes while logins are under way, some already answered.
        while answered.load(Ordering::SeqCst) < 8 {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        app.credentials
            .set_status(&Actor::system(), &username, Status::Disabled)
            .await
            .expect("disable");
        disabled.store(true, Ordering::SeqCst);
        let mut tokens = Vec::new();
        for login in logins {
            tokens.extend(login.await.expect("task"));
        }
        assert!(!tokens.is_empty(), "round {round}: no login was answered");
        app.credentials
            .set_status(&Actor::system(), &username, Status::Enabled)
            .await
            .expect("enable");
        for token in &tokens {
            let me = app.get("/api/v1/me", token).await;
            assert_eq!(
                me.status(),
                401,
                "round {round}: a token answered before the disable outlived it: {}",
                me.text().await.unwrap_or_default()
            );
        }
        // Every login's row says what it was answered.
        let answers = match entry {
            Entry::Api => [200, 401],
            Entry::OpenCart => [200, 200],
        };
        for row in app.history(&username).await {
            if row.call.contains("login") {
                assert!(answers.contains(&row.status), "{row:?}");
            }
        }
    }
}

#[tokio::test]
async fn deleting_the_user_ends_its_sessions_and_keeps_its_history() {
    let app = spawn_app().await;
    let key = app.api_user("leaving", &[]).await;
    let token = app.login("leaving", &key).await;
    app.get("/api/v1/me", &token).await;
    let id = app.credentials.get("leaving").await.expect("user").id;

    app.credentials
        .delete(&Actor::system(), "leaving")
        .await
        .expect("delete");

    assert_eq!(app.get("/api/v1/me", &token).await.status(), 401);
    assert_eq!(app.get("/api/v1/me", &key).await.status(), 401);
    let kept = app
        .all_history()
        .await
        .into_iter()
        .filter(|r| r.api_user_id == Some(id))
        .count();
    assert!(kept >= 2, "the history of a deleted user stays");
}

#[tokio::test]
async fn a_session_ends_when_its_key_expires() {
    let app = spawn_app().await;
    let key = app
        .api_user_with(CreateApiUser {
            username: "expiring".into(),
            ips: vec!["127.0.0.1".into()],
            expires_in: keyward::credentials::NewExpiry::In(Duration::minutes(30)),
            ..CreateApiUser::default()
        })
        .await;
    let token = app.login("expiring", &key).await;
    let me: serde_json::Value = app.get_json("/api/v1/me", &token).await;
    assert_eq!(
        me["session"]["expires_at"], me["key_expires_at"],
        "a session never outlives its key"
    );

    app.clock.advance(Duration::minutes(31));

    assert_eq!(app.get("/api/v1/me", &token).await.status(), 401);
}

#[tokio::test]
async fn a_session_made_with_a_rolled_key_ends_with_that_key() {
    let app = spawn_app().await;
    let key = app.api_user("rolling", &[]).await;
    let token = app.login("rolling", &key).await;

    app.credentials
        .rotate(
            &Actor::system(),
            "rolling",
            Duration::ZERO,
            KeySource::default(),
            keyward::credentials::NewExpiry::AsBefore,
        )
        .await
        .expect("rotate");

    assert_eq!(app.get("/api/v1/me", &token).await.status(), 401);
    assert_eq!(app.last_outcome().await, "revoked_token");
    assert!(
        app.credentials
            .sessions("rolling", true)
            .await
            .expect("sessions")
            .is_empty()
    );
}
