//! `/metrics`: calls counted by route template, outcome and status class, the history writer,
//! sessions and throttling, where it is served, and that nothing secret is in it.

use crate::helpers::{Settings, TestApp, spawn_app, spawn_app_with};
use keyward::credentials::CreateApiUser;
use reqwest::Method;
use serde_json::json;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

async fn scrape_at(app: &TestApp, addr: SocketAddr) -> String {
    let response = app
        .client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    response.text().await.expect("text")
}

async fn scrape(app: &TestApp) -> String {
    scrape_at(app, app.addr).await
}

/// The value of the sample `name` whose labels include `labels`, if there is exactly one.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            (metric == name && labels.iter().all(|pair| label_pairs(rest).contains(pair)))
                .then(|| value.parse().ok())?
        })
        .collect();
    match matching.as_slice() {
        [value] => Some(*value),
        _ => None,
    }
}

/// `a="x",b="y"` as pairs; values here never hold quotes or commas.
fn label_pairs(text: &str) -> Vec<(&str, &str)> {
    text.split("\",")
        .filter_map(|pair| {
            let (key, value) = pair.split_once("=\"")?;
            Some((key, value.trim_end_matches('"')))
        })
        .collect()
}

fn calls(text: &str, route: &str, method: &str, outcome: &str, class: &str) -> Option<f64> {
    sample(
        text,
        "keyward_api_calls_total",
        &[
            ("route", route),
            ("method", method),
            ("outcome", outcome),
            ("status_class", class),
        ],
    )
}

async fn user(app: &TestApp, name: &str, scopes: &[&str], ips: &[&str], limit: u32) -> String {
    app.api_user_with(CreateApiUser {
        username: name.into(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        ips: ips.iter().map(|s| (*s).to_owned()).collect(),
        rate_limit_per_minute: Some(limit),
        ..CreateApiUser::default()
    })
    .await
}

#[tokio::test]
async fn calls_are_counted_by_route_template_outcome_and_status_class() {
    let app = spawn_app().await;
    let reader = user(&app, "reader", &["products:read"], &["127.0.0.1"], 600).await;
    let other = user(&app, "other", &[], &["127.0.0.1"], 600).await;
    let far = user(&app, "far-away", &[], &["203.0.113.7"], 600).await;
    let once = user(&app, "once", &[], &["127.0.0.1"], 1).await;

    for _ in 0..3 {
        assert_eq!(app.get("/api/v1/me", &reader).await.status(), 200);
    }
    assert_eq!(app.get("/api/v1/products/1", &reader).await.status(), 404);
    let wrong_key = app
        .request(Method::GET, "/api/v1/me")
        .basic_auth("reader", Some(&other))
        .send()
        .await
        .expect("request");
    assert_eq!(wrong_key.status(), 401);
    let nobodys = keyward::domain::api_key::ApiKey::generate(64).expect("key");
    assert_eq!(app.get("/api/v1/me", nobodys.expose()).await.status(), 401);
    let bare = app.request(Method::GET, "/api/v1/me").send().await;
    assert_eq!(bare.expect("request").status(), 401);
    assert_eq!(app.get("/api/v1/me", &far).await.status(), 403);
    let create = json!({"sku": "MUG-1", "name": "Mug", "price": "9.50", "quantity": 1});
    assert_eq!(
        app.post("/api/v1/products", &reader, &create)
            .await
            .status(),
        403
    );
    assert_eq!(app.get("/api/v1/me", &once).await.status(), 200);
    assert_eq!(app.get("/api/v1/me", &once).await.status(), 429);
    assert_eq!(app.get("/api/v1/nowhere/9", &reader).await.status(), 404);

    let text = scrape(&app).await;
    let me = "/api/v1/me";
    assert_eq!(calls(&text, me, "GET", "ok", "2xx"), Some(4.0), "{text}");
    assert_eq!(calls(&text, me, "GET", "wrong_key", "4xx"), Some(1.0));
    assert_eq!(calls(&text, me, "GET", "unknown_key", "4xx"), Some(1.0));
    assert_eq!(
        calls(&text, me, "GET", "missing_credentials", "4xx"),
        Some(1.0)
    );
    assert_eq!(calls(&text, me, "GET", "ip_not_allowed", "4xx"), Some(1.0));
    assert_eq!(calls(&text, me, "GET", "rate_limited", "4xx"), Some(1.0));
    let products = "/api/v1/products";
    assert_eq!(
        calls(&text, products, "POST", "insufficient_scope", "4xx"),
        Some(1.0)
    );
    assert_eq!(
        calls(&text, "/api/v1/products/{id}", "GET", "not_found", "4xx"),
        Some(1.0),
        "the route template, never the path"
    );
    assert_eq!(
        calls(&text, "unmatched", "GET", "not_found", "4xx"),
        Some(1.0)
    );
    assert!(!text.contains("/api/v1/products/1\""), "{text}");
    assert!(!text.contains("nowhere"), "{text}");

    assert_eq!(sample(&text, "keyward_rate_limited_total", &[]), Some(1.0));
    let me_get = [("route", me), ("method", "GET")];
    assert_eq!(
        sample(&text, "keyward_api_call_duration_seconds_count", &me_get),
        Some(9.0)
    );
    let auth = "keyward_auth_duration_seconds_count";
    assert_eq!(sample(&text, auth, &[("result", "ok")]), Some(5.0));
    assert_eq!(sample(&text, auth, &[("result", "refused")]), Some(6.0));

    // Each of the 12 calls had its row committed before its answer.
    assert_eq!(
        sample(&text, "keyward_history_rows_committed_total", &[]),
        Some(12.0)
    );
    assert_eq!(sample(&text, "keyward_history_queue_depth", &[]), Some(0.0));
    let batches = sample(&text, "keyward_history_batches_committed_total", &[]).expect("batches");
    assert!((1.0..=12.0).contains(&batches), "{batches}");
    assert_eq!(
        sample(&text, "keyward_history_commit_duration_seconds_count", &[]),
        Some(batches)
    );
    assert_eq!(
        sample(&text, "keyward_history_commit_failures_total", &[]),
        Some(0.0)
    );
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        sample(&text, "keyward_build_info", &[("version", version)]),
        Some(1.0)
    );
    assert!(text.contains("# TYPE keyward_api_call_duration_seconds histogram"));
}

#[tokio::test]
async fn throttled_logins_are_counted() {
    let app = spawn_app_with(Settings {
        login_failures_per_ip: 2,
        ..Settings::default()
    })
    .await;
    let mut throttled = 0;
    for i in 0..5 {
        let response = app
            .request(Method::POST, "/api/v1/login")
            .json(&json!({"username": format!("guess{i}"), "key": "kw_wrong"}))
            .send()
            .await
            .expect("login");
        if response.status() == 429 {
            throttled += 1;
        }
    }
    assert!(throttled >= 1);

    let text = scrape(&app).await;
    let throttled = f64::from(throttled);
    assert_eq!(
        sample(
            &text,
            "keyward_login_throttled_total",
            &[("surface", "api")]
        ),
        Some(throttled),
        "{text}"
    );
    assert_eq!(
        calls(&text, "/api/v1/login", "POST", "login_throttled", "4xx"),
        Some(throttled)
    );
    assert_eq!(
        sample(
            &text,
            "keyward_login_throttled_total",
            &[("surface", "console")]
        ),
        Some(0.0)
    );
}

#[tokio::test]
async fn open_sessions_are_counted() {
    let app = spawn_app().await;
    let key = app.api_user("sessions", &[]).await;
    app.login("sessions", &key).await;
    app.login("sessions", &key).await;

    // Counted every 5 seconds, after last use is written.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = scrape(&app).await;
        if sample(&text, "keyward_active_sessions", &[]) == Some(2.0) {
            break;
        }
        assert!(Instant::now() < deadline, "no count of 2 sessions: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_metrics_listener_of_its_own_takes_metrics_off_the_main_port() {
    let app = spawn_app_with(Settings {
        metrics_listen: "127.0.0.1:0",
        ..Settings::default()
    })
    .await;
    let own = app.metrics_addr.expect("a metrics listener");
    assert_ne!(own, app.addr);
    let key = app.api_user("counted", &[]).await;
    assert_eq!(app.get("/api/v1/me", &key).await.status(), 200);

    let main = app
        .request(Method::GET, "/metrics")
        .send()
        .await
        .expect("main");
    assert_eq!(main.status(), 404);
    let text = scrape_at(&app, own).await;
    assert_eq!(
        calls(&text, "/api/v1/me", "GET", "ok", "2xx"),
        Some(1.0),
        "{text}"
    );
    let other = app
        .client
        .get(format!("http://{own}/healthz"))
        .send()
        .await
        .expect("other path");
    assert_eq!(other.status(), 404, "only /metrics is served there");
}

#[tokio::test]
async fn switched_off_there_is_no_metrics_endpoint() {
    let app = spawn_app_with(Settings {
        metrics_listen: "off",
        ..Settings::default()
    })
    .await;
    assert!(app.metrics_addr.is_none());
    let response = app
        .request(Method::GET, "/metrics")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn no_key_token_username_or_address_appears_in_the_scrape() {
    let app = spawn_app().await;
    let key = app.api_user("secretive", &["products:read"]).await;
    let token = app.login("secretive", &key).await;
    assert_eq!(app.get("/api/v1/me", &token).await.status(), 200);
    let calls = [
        format!("/api/v1/products/{key}"),
        format!("/api/v1/{key}"),
        format!("/api/v1/{token}/x"),
        format!("/api/v1/me?api_token={token}"),
        format!("/api/v1/me?key={key}"),
    ];
    for path in &calls {
        let status = app.get(path, &key).await.status();
        assert!(status.is_client_error(), "{path}: {status}");
    }
    let wrong = app
        .request(Method::GET, "/api/v1/me")
        .basic_auth(&key, Some("secretive"))
        .send()
        .await
        .expect("request");
    assert_eq!(wrong.status(), 401);

    let text = scrape(&app).await;
    assert!(text.contains("keyward_api_calls_total"), "{text}");
    for secret in [key.as_str(), token.as_str(), &key[..12], &token[..12]] {
        assert!(!text.contains(secret), "{secret} in the scrape: {text}");
    }
    assert!(!text.contains("kw_"), "{text}");
    assert!(!text.contains("kwt_"), "{text}");
    assert!(
        !text.contains("secretive"),
        "usernames are not labels: {text}"
    );
    assert!(
        !text.contains("127.0.0.1"),
        "addresses are not labels: {text}"
    );
}

#[tokio::test]
async fn serve_with_metrics_listen_prints_and_serves_its_own_address() {
    let dir = tempfile::tempdir().expect("dir");
    let listen = ["--metrics-listen", "127.0.0.1:0"];
    let (mut child, started) = crate::helpers::serve_json(dir.path(), &listen).await;
    let base = started["listening"].as_str().expect("address");
    let metrics = started["metrics"].as_str().expect("the metrics address");
    assert!(metrics.starts_with("http://127.0.0.1:"), "{metrics}");
    assert_ne!(metrics, format!("{base}/metrics"));

    let client = reqwest::Client::new();
    let on_main = client.get(format!("{base}/metrics")).send().await;
    assert_eq!(on_main.expect("main").status(), 404);
    let response = client.get(metrics).send().await.expect("scrape");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("text");
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        sample(&text, "keyward_build_info", &[("version", version)]),
        Some(1.0),
        "{text}"
    );
    child.kill().await.expect("stop");
}

#[tokio::test]
async fn the_opencart_entry_is_counted_under_its_routes_never_its_query() {
    let app = spawn_app().await;
    let key = app.api_user("shop-sync", &["orders:read"]).await;
    let post = |query: String, fields: Vec<(&'static str, String)>| {
        app.request(Method::POST, &format!("/index.php?{query}"))
            .form(&fields)
            .send()
    };
    let login = post(
        "route=api/login".to_owned(),
        vec![("username", "shop-sync".to_owned()), ("key", key.clone())],
    )
    .await
    .expect("login");
    let token: serde_json::Value = login.json().await.expect("json");
    let token = token["api_token"].as_str().expect("a token").to_owned();
    let made_up = format!("kwt_{}", "A".repeat(44));
    let info = post(format!("route=api/order/info&api_token={made_up}"), vec![]);
    info.await.expect("refused call");
    let nowhere = post(format!("route=api/{token}&api_token={token}"), vec![]);
    nowhere.await.expect("unknown route");

    let text = scrape(&app).await;
    let counted = |route: &str, outcome: &str| {
        sample(
            &text,
            "keyward_api_calls_total",
            &[("route", route), ("method", "POST"), ("outcome", outcome)],
        )
    };
    assert_eq!(
        counted("/index.php?route=api/login", "ok"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        counted("/index.php?route=api/order/info", "unknown_token"),
        Some(1.0),
        "{text}"
    );
    let unmatched = sample(
        &text,
        "keyward_api_calls_total",
        &[("route", "unmatched"), ("method", "POST")],
    );
    assert_eq!(unmatched, Some(1.0), "{text}");
    let refused = [("result", "refused")];
    let auth = "keyward_auth_duration_seconds_count";
    assert_eq!(sample(&text, auth, &refused), Some(1.0), "{text}");
    for secret in [&key, &token, &made_up] {
        assert!(!text.contains(secret.as_str()), "a secret in the scrape");
    }
}
