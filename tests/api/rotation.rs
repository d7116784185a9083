//! Rolling keys, with and without a grace period.

use crate::helpers::spawn_app;
use keyward::clock::Clock;
use keyward::credentials::{CreateApiUser, KeySource};
use keyward::domain::admin::Actor;
use time::Duration;

#[tokio::test]
async fn without_grace_the_old_key_stops_at_once() {
    let app = spawn_app().await;
    let old = app.api_user("erp", &[]).await;

    let issued = app
        .credentials
        .rotate(
            &Actor::system(),
            "erp",
            Duration::ZERO,
            KeySource::default(),
            keyward::credentials::NewExpiry::AsBefore,
        )
        .await
        .expect("rotate");
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

    let issued = app
        .credentials
        .rotate(
            &Actor::system(),
            "erp",
            Duration::hours(24),
            KeySource::default(),
            keyward::credentials::NewExpiry::AsBefore,
        )
        .await
        .expect("rotate");
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
            expires_in: Some(Duration::hours(1)),
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
    let second = app
        .credentials
        .rotate(
            &Actor::system(),
            "twice",
            Duration::hours(24),
            KeySource::default(),
            keyward::credentials::NewExpiry::AsBefore,
        )
        .await
        .expect("rotate");
    let third = app
        .credentials
        .rotate(
            &Actor::system(),
            "twice",
            Duration::hours(24),
            KeySource::default(),
            keyward::credentials::NewExpiry::AsBefore,
        )
        .await
        .expect("rotate");

    assert_eq!(app.get("/api/v1/me", &first).await.status(), 401);
    assert_eq!(
        app.get("/api/v1/me", second.key.expose()).await.status(),
        200
    );
    assert_eq!(
        app.get("/api/v1/me", third.key.expose()).await.status(),
        200
    );
    let live = third
        .user
        .keys
        .iter()
        .filter(|k| k.is_live(app.clock.now()))
        .count();
    assert_eq!(live, 2);
}
