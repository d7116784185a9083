//! Rolling keys, with and without a grace period.

use crate::helpers::{TestApp, spawn_app};
use keyward::clock::Clock;
use keyward::credentials::{CreateApiUser, IssuedKey, KeySource};
use keyward::domain::admin::Actor;
use time::Duration;

/// How many of `user`'s keys work now.
fn live_keys(app: &TestApp, user: &keyward::domain::api_user::ApiUser) -> usize {
    let now = app.clock.now();
    user.keys.iter().filter(|k| k.is_live(now)).count()
}

/// Rolls `name`'s key as the system, keeping the new key's expiry rule.
async fn roll(app: &TestApp, name: &str, grace: Duration) -> IssuedKey {
    app.credentials
        .rotate(
            &Actor::system(),
            name,
            grace,
            KeySource::default(),
            keyward::credentials::NewExpiry::AsBefore,
        )
        .await
        .expect("rotate")
}

#[tokio::test]
async fn without_grace_the_old_key_stops_at_once() {
    let app = spawn_app().await;
    let old = app.api_user("erp", &[]).await;

    let issued = roll(&app, "erp", Duration::ZERO).await;
    let new = issued.key.expose().to_owned();

    assert_ne!(old, new);
    assert_eq!(app.get("/api/v1/me", &old).await.status(), 401);
    assert_eq!(app.last_outcome().await, "revoked_key");
    assert_eq!(app.get("/api/v1/me", &new).await.status(), 200);
}

#[tokio::test]
async fn with_grace_both_keys_work_until_the_grace_ends() {
    let app = spawn_app().await;
    let old = app.api_user("erp", &[]).await;

    let issued = roll(&app, "erp", Duration::hours(24)).await;
    let new = issued.key.expose().to_owned();

    assert_eq!(app.get("/api/v1/me", &old).await.status(), 200);
    assert_eq!(app.get("/api/v1/me", &new).await.status(), 200);
    app.clock.advance(Duration::hours(25));
    assert_eq!(app.get("/api/v1/me", &old).await.status(), 401);
    assert_eq!(app.last_outcome().await, "expired_key");
    assert_eq!(app.get("/api/v1/me", &new).await.status(), 200);
}

#[tokio::test]
async fn a_grace_period_never_outlives_the_old_keys_own_expiry() {
    let app = spawn_app().await;
    let old = app
        .api_user_with(CreateApiUser {
            username: "soon".into(),
            ips: vec!["127.0.0.1".into()],
            expires_in: keyward::credentials::NewExpiry::In(Duration::hours(1)),
            ..CreateApiUser::default()
        })
        .await;

    app.credentials
        .rotate(
            &Actor::system(),
            "soon",
            Duration::days(7),
            KeySource::default(),
            keyward::credentials::NewExpiry::AsBefore,
        )
        .await
        .expect("rotate");
    app.clock.advance(Duration::minutes(61));

    assert_eq!(app.get("/api/v1/me", &old).await.status(), 401);
}

#[tokio::test]
async fn a_second_roll_ends_the_grace_of_the_first_so_at_most_two_keys_live() {
    let app = spawn_app().await;
    let first = app.api_user("twice", &[]).await;
    let second = roll(&app, "twice", Duration::hours(24)).await;
    let third = roll(&app, "twice", Duration::hours(24)).await;

    assert_eq!(app.get("/api/v1/me", &first).await.status(), 401);
    assert_eq!(
        app.get("/api/v1/me", second.key.expose()).await.status(),
        200
    );
    assert_eq!(
        app.get("/api/v1/me", third.key.expose()).await.status(),
        200
    );
    assert_eq!(live_keys(&app, &third.user), 2);
}

#[tokio::test]
async fn rolls_at_the_same_time_each_name_the_keys_they_really_replaced() {
    let app = spawn_app().await;
    app.api_user("busy", &[]).await;
    let rolls = (0..8).map(|_| roll(&app, "busy", Duration::hours(1)));
    let issued = futures_util::future::join_all(rolls).await;

    // Each roll replaced a different current key, and together they stopped every key but the
    // last two: the first key and the keys of all rolls but the last one.
    let audit = app.db.audit_log(None, 50).await.expect("audit");
    let mut old: Vec<String> = audit
        .iter()
        .filter(|entry| entry.action == "api_user.rotate")
        .map(|entry| {
            entry.details["old_key_hint"]
                .as_str()
                .expect("a hint")
                .to_owned()
        })
        .collect();
    assert_eq!(old.len(), 8);
    old.sort();
    old.dedup();
    assert_eq!(
        old.len(),
        8,
        "each roll replaced a key of its own: {audit:?}"
    );
    let stopped: usize = issued.iter().map(|i| i.stopped_now.len()).sum();
    assert_eq!(
        stopped,
        7,
        "{:?}",
        issued.iter().map(|i| &i.stopped_now).collect::<Vec<_>>()
    );
    let user = app.credentials.get("busy").await.expect("busy");
    assert_eq!(live_keys(&app, &user), 2);
}

#[tokio::test]
async fn a_grace_is_at_most_seven_days() {
    let app = spawn_app().await;
    let old = app.api_user("long", &[]).await;
    let refused = app
        .cli(&["api", "rotate", "long", "--grace", "8d", "--json"])
        .await;
    assert_eq!(refused.status.code(), Some(1));
    let error: serde_json::Value = serde_json::from_slice(&refused.stderr).expect("json");
    assert_eq!(error["error"]["code"], "invalid");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("at most 7 days")),
        "{error}"
    );
    assert_eq!(
        app.get("/api/v1/me", &old).await.status(),
        200,
        "nothing rolled"
    );
    let rolled = app.cli(&["api", "rotate", "long", "--grace", "7d"]).await;
    assert!(rolled.status.success(), "{rolled:?}");
    assert_eq!(app.get("/api/v1/me", &old).await.status(), 200);
}

#[tokio::test]
async fn a_roll_without_grace_stops_every_live_key_and_says_which() {
    let app = spawn_app().await;
    app.api_user("hard", &[]).await;
    let graced = roll(&app, "hard", Duration::hours(1)).await;
    let live: Vec<String> = graced
        .user
        .keys
        .iter()
        .filter(|k| k.is_live(app.clock.now()))
        .map(|k| k.hint.clone())
        .collect();
    assert_eq!(live.len(), 2);

    let hard = roll(&app, "hard", Duration::ZERO).await;
    let mut stopped = hard.stopped_now.clone();
    stopped.sort();
    let mut expected = live.clone();
    expected.sort();
    assert_eq!(
        stopped, expected,
        "the current key and the one in its grace"
    );
    let audit = app.db.audit_log(None, 1).await.expect("audit");
    assert_eq!(audit[0].details["old_key_hint"], graced.key.hint().as_str());
    assert_eq!(live_keys(&app, &hard.user), 1);
}
