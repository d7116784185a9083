//! The IP rule kinds, matched over HTTP. A trusted proxy on loopback lets the tests present
//! any client address; without one, forged forwarding headers change nothing.

use crate::helpers::{Settings, TestApp, error_of, spawn_app, spawn_app_with};
use keyward::credentials::{CreateApiUser, UpdateApiUser};
use keyward::domain::admin::Actor;
use reqwest::Method;

async fn behind_proxy() -> TestApp {
    spawn_app_with(Settings {
        trusted_proxies: vec!["127.0.0.1/32"],
        ..Settings::default()
    })
    .await
}

async fn status_from(app: &TestApp, key: &str, client_ip: &str) -> u16 {
    app.bearer(Method::GET, "/api/v1/me", key)
        .header("X-Forwarded-For", client_ip)
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

async fn user_with_rules(app: &TestApp, name: &str, rules: &[&str]) -> String {
    app.api_user_with(CreateApiUser {
        username: name.into(),
        ips: rules.iter().map(|r| (*r).to_owned()).collect(),
        ..CreateApiUser::default()
    })
    .await
}

#[tokio::test]
async fn single_addresses_v4_and_v6() {
    let app = behind_proxy().await;
    let key = user_with_rules(&app, "single", &["203.0.113.7", "2001:db8::7"]).await;

    assert_eq!(status_from(&app, &key, "203.0.113.7").await, 200);
    assert_eq!(status_from(&app, &key, "2001:db8::7").await, 200);
    assert_eq!(status_from(&app, &key, "203.0.113.8").await, 403);
    assert_eq!(status_from(&app, &key, "2001:db8::8").await, 403);
}

#[tokio::test]
async fn cidr_blocks_v4_and_v6() {
    let app = behind_proxy().await;
    let key = user_with_rules(&app, "blocks", &["198.51.100.0/24", "2001:db8:aa::/48"]).await;

    assert_eq!(status_from(&app, &key, "198.51.100.250").await, 200);
    assert_eq!(status_from(&app, &key, "2001:db8:aa:1::9").await, 200);
    assert_eq!(status_from(&app, &key, "198.51.101.1").await, 403);
    assert_eq!(status_from(&app, &key, "2001:db8:ab::1").await, 403);
}

#[tokio::test]
async fn legacy_wildcards() {
    let app = behind_proxy().await;
    let key = user_with_rules(&app, "wild", &["192.0.2.*"]).await;

    assert_eq!(status_from(&app, &key, "192.0.2.99").await, 200);
    assert_eq!(status_from(&app, &key, "192.0.3.99").await, 403);
}

#[tokio::test]
async fn star_allows_any_address() {
    let app = behind_proxy().await;
    let key = user_with_rules(&app, "anyone", &["*"]).await;

    assert_eq!(status_from(&app, &key, "8.8.8.8").await, 200);
    assert_eq!(status_from(&app, &key, "2001:4860::8888").await, 200);
}

#[tokio::test]
async fn ipv4_mapped_ipv6_addresses_match_their_ipv4_rules() {
    let app = behind_proxy().await;
    let key = user_with_rules(&app, "mapped", &["203.0.113.7"]).await;

    assert_eq!(status_from(&app, &key, "::ffff:203.0.113.7").await, 200);
    let me: serde_json::Value = app
        .bearer(Method::GET, "/api/v1/me", &key)
        .header("X-Forwarded-For", "::ffff:203.0.113.7")
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(me["ip"], "203.0.113.7");
}

#[tokio::test]
async fn forged_forwarding_headers_from_an_untrusted_peer_change_nothing() {
    let app = spawn_app().await;
    let key = user_with_rules(&app, "guarded", &["203.0.113.7"]).await;

    for (header, value) in [
        ("X-Forwarded-For", "203.0.113.7"),
        ("Forwarded", "for=203.0.113.7"),
    ] {
        let response = app
            .bearer(Method::GET, "/api/v1/me", &key)
            .header(header, value)
            .send()
            .await
            .expect("request");
        let (status, body) = error_of(response).await;
        assert_eq!(status, 403, "{header}");
        assert!(
            body["error"]["message"]
                .as_str()
                .expect("message")
                .contains("127.0.0.1")
        );
    }
}

#[tokio::test]
async fn rule_changes_apply_to_open_sessions_at_once() {
    let app = spawn_app().await;
    let key = user_with_rules(&app, "session-ip", &["127.0.0.1"]).await;
    let token = app.login("session-ip", &key).await;
    assert_eq!(app.get("/api/v1/me", &token).await.status(), 200);

    app.credentials
        .remove_ip(&Actor::system(), "session-ip", "127.0.0.1")
        .await
        .expect("remove");

    assert_eq!(app.get("/api/v1/me", &token).await.status(), 403);
}

/// Past a thousand changes since its last sync, the server empties its credential cache
/// instead of reading which users the changes name; one transaction writes them all here, so
/// no sync sees part of it, and only the emptied cache can tell that this user's rules moved.
#[tokio::test]
async fn rules_replaced_by_the_thousand_hold_on_the_next_request() {
    let app = spawn_app().await;
    let key = user_with_rules(&app, "moved", &["127.0.0.1"]).await;
    assert_eq!(app.get("/api/v1/me", &key).await.status(), 200);

    // 1,001 rules in, one out: an entry in the change log each.
    let rules = (0..1001)
        .map(|i| format!("10.1.{}.{}", i / 256, i % 256))
        .collect();
    app.credentials
        .update(
            &Actor::system(),
            "moved",
            UpdateApiUser {
                ips: Some(rules),
                ..UpdateApiUser::default()
            },
        )
        .await
        .expect("update");

    assert_eq!(app.status_after_change("/api/v1/me", &key, 403).await, 403);
    assert_eq!(app.last_outcome().await, "ip_not_allowed");
}
