//! Alerts and webhooks, against a real receiving server: signed deliveries, each alert once,
//! retries with backoff, dead letters and their manual retry, the CLI and the console.

use crate::console::{Console, admin_with_role};
use crate::helpers::{Settings, TestApp, spawn_app, spawn_app_with, stdout_json};
use crate::receiver::Receiver;
use keyward::credentials::CreateApiUser;
use keyward::domain::admin::{Actor, Role};
use keyward::domain::webhook::{DeliveryQuery, DeliveryRecord, DeliveryState};
use keyward::webhooks::deliver::{BACKOFF, MAX_ATTEMPTS};
use keyward::webhooks::{AddWebhook, CreatedWebhook};
use reqwest::{Method, StatusCode};
use std::time::Duration;

async fn add_webhook(app: &TestApp, receiver: &Receiver, events: &[&str]) -> CreatedWebhook {
    app.webhooks
        .add(
            &Actor::system(),
            AddWebhook {
                url: receiver.url.clone(),
                events: events.iter().map(|e| (*e).to_owned()).collect(),
                ..AddWebhook::default()
            },
        )
        .await
        .expect("add webhook")
}

async fn deliveries(app: &TestApp, state: Option<DeliveryState>) -> Vec<DeliveryRecord> {
    app.webhooks
        .deliveries(&DeliveryQuery {
            state,
            limit: 100,
            ..DeliveryQuery::default()
        })
        .await
        .expect("deliveries")
}

/// Waits until no delivery is pending: everything queued so far has been sent.
async fn settle(app: &TestApp) {
    for _ in 0..400 {
        if deliveries(app, Some(DeliveryState::Pending))
            .await
            .is_empty()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("deliveries stayed pending");
}

/// An API user allowed only from `ip`.
async fn user_from(app: &TestApp, username: &str, ip: &str) -> String {
    app.api_user_with(CreateApiUser {
        username: username.to_owned(),
        ips: vec![ip.to_owned()],
        ..CreateApiUser::default()
    })
    .await
}

async fn call_from(app: &TestApp, key: &str, ip: &str) -> u16 {
    app.bearer(Method::GET, "/api/v1/me", key)
        .header("x-forwarded-for", ip)
        .send()
        .await
        .expect("call")
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_test_event_from_the_cli_reaches_the_endpoint_signed_with_its_secret() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;

    let added = stdout_json(
        &app.cli(&[
            "webhook",
            "add",
            "--url",
            &receiver.url,
            "--event",
            "key.exposed",
            "--event",
            "ip.not_allowed",
            "--description",
            "Ops pager",
            "--json",
        ])
        .await,
    );
    let secret = added["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("whsec_"));
    let id = added["webhook"]["id"].as_i64().expect("id").to_string();
    assert_eq!(
        added["webhook"]["events"],
        serde_json::json!(["key.exposed", "ip.not_allowed"])
    );
    let queued = stdout_json(&app.cli(&["webhook", "test", &id, "--json"]).await);

    let event = &receiver.wait_for("webhook.test", 1).await[0];
    assert!(event.signed_with(&secret));
    assert_eq!(event.json()["id"], queued["event_id"]);
    assert!(event.header("user-agent").starts_with("Keyward-Webhooks/"));
    settle(&app).await;
    let listed = stdout_json(&app.cli(&["webhook", "deliveries", &id, "--json"]).await);
    assert_eq!(listed[0]["state"], "delivered");
    assert_eq!(listed[0]["attempts"], 1);
    assert_eq!(listed[0]["event_type"], "webhook.test");

    // The secret is shown once: never listed, never stored or logged in the clear.
    let list = app.cli(&["webhook", "list"]).await;
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(list.contains(&receiver.url) && list.contains("whsec_…"));
    assert!(!list.contains(&secret));
    assert!(!app.stored_text().await.contains(&secret));
}

#[tokio::test]
async fn the_cli_enables_disables_removes_and_refuses_bad_input() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let created = add_webhook(&app, &receiver, &[]).await;
    let id = created.webhook.id.to_string();
    assert_eq!(
        created.webhook.events.to_string(),
        "key.exposed key.expiring refusals.burst ip.not_allowed"
    );

    let disabled = stdout_json(&app.cli(&["webhook", "disable", &id, "--json"]).await);
    assert_eq!(disabled["webhook"]["status"], "disabled");
    let refused = app.cli(&["webhook", "test", &id, "--json"]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("disabled"));
    stdout_json(&app.cli(&["webhook", "enable", &id, "--json"]).await);
    stdout_json(&app.cli(&["webhook", "test", &id, "--json"]).await);
    receiver.wait_for("webhook.test", 1).await;

    for (args, code, says) in [
        (
            vec!["webhook", "add", "--url", "ftp://example.com/in"],
            1,
            "https://",
        ),
        (
            vec!["webhook", "add", "--url", "https://u:p@example.com/"],
            1,
            "password",
        ),
        (
            vec![
                "webhook",
                "add",
                "--url",
                &receiver.url,
                "--event",
                "key.stolen",
            ],
            1,
            "key.stolen",
        ),
        (vec!["webhook", "test", "999"], 3, "999"),
        (vec!["webhook", "retry", "999"], 3, "999"),
        (vec!["webhook", "deliveries", "--state", "lost"], 2, "lost"),
    ] {
        let mut args = args.clone();
        args.push("--json");
        let output = app.cli(&args).await;
        assert_eq!(output.status.code(), Some(code), "{args:?}");
        let error: serde_json::Value = serde_json::from_slice(&output.stderr).expect("JSON error");
        assert!(
            error["error"]["message"]
                .as_str()
                .expect("message")
                .contains(says),
            "{error}"
        );
    }

    let removed = stdout_json(&app.cli(&["webhook", "remove", &id, "--json"]).await);
    assert_eq!(removed["ok"], true);
    assert_eq!(
        stdout_json(&app.cli(&["webhook", "list", "--json"]).await),
        serde_json::json!([])
    );
    let actions: Vec<String> = app
        .db
        .audit_log(None, 50)
        .await
        .expect("audit")
        .into_iter()
        .map(|a| a.action)
        .collect();
    for action in ["webhook.create", "webhook.update", "webhook.delete"] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }
}

#[tokio::test]
async fn a_rolled_secret_signs_beside_the_new_one_for_its_grace_then_stops() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let added = add_webhook(&app, &receiver, &[]).await;
    let id = added.webhook.id.to_string();
    let first = added.secret.expose().to_owned();
    let roll = |grace: &'static str| {
        let id = id.clone();
        let app = &app;
        async move {
            let mut args = vec!["webhook", "roll-secret", id.as_str(), "--json"];
            if !grace.is_empty() {
                args.extend(["--grace", grace]);
            }
            let rolled = stdout_json(&app.cli(&args).await);
            (
                rolled["secret"].as_str().expect("secret").to_owned(),
                rolled,
            )
        }
    };
    let test_event = |count| {
        let (app, receiver) = (&app, &receiver);
        async move {
            app.webhooks
                .send_test(&Actor::system(), added.webhook.id)
                .await
                .expect("queue a test");
            receiver
                .wait_for("webhook.test", count)
                .await
                .pop()
                .expect("the newest")
        }
    };

    // For the grace, each delivery is signed with both: a receiver holding either accepts it.
    let (second, rolled) = roll("1h").await;
    assert!(second.starts_with("whsec_") && second != first);
    assert_eq!(
        rolled["webhook"]["previous_secret"]["hint"],
        added.webhook.secret_hint.as_str()
    );
    let event = test_event(1).await;
    assert_eq!(event.signatures().len(), 2);
    assert!(event.signed_with(&second) && event.signed_with(&first));
    let listed = app.cli(&["webhook", "list"]).await;
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains(&added.webhook.secret_hint), "{listed}");

    // Rolled again: the secret it replaces signs until its grace ends, the first no more.
    let (third, _) = roll("1s").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let event = test_event(2).await;
    assert_eq!(event.signatures().len(), 1);
    assert!(event.signed_with(&third));
    assert!(!event.signed_with(&second) && !event.signed_with(&first));
    let listed = stdout_json(&app.cli(&["webhook", "list", "--json"]).await);
    assert_eq!(listed[0]["previous_secret"], serde_json::Value::Null);

    // Without a grace, the replaced secret stops at once.
    let (_, _) = roll("1h").await;
    let plain = app.cli(&["webhook", "roll-secret", &id]).await;
    let said = String::from_utf8_lossy(&plain.stdout);
    assert!(said.contains("stopped now"), "{said}");
    let fourth = said
        .split_whitespace()
        .find(|word| word.starts_with("whsec_") && !word.contains('…'))
        .expect("the new secret, once")
        .to_owned();
    let event = test_event(3).await;
    assert_eq!(event.signatures().len(), 1);
    assert!(event.signed_with(&fourth));

    for (args, code, says) in [
        (
            vec!["webhook", "roll-secret", &id, "--grace", "8d"],
            1,
            "7 days",
        ),
        (
            vec!["webhook", "roll-secret", &id, "--grace", "soon"],
            2,
            "soon",
        ),
        (vec!["webhook", "roll-secret", "999"], 3, "999"),
    ] {
        let mut args = args.clone();
        args.push("--json");
        let output = app.cli(&args).await;
        assert_eq!(output.status.code(), Some(code), "{args:?}");
        let error: serde_json::Value = serde_json::from_slice(&output.stderr).expect("JSON error");
        let message = error["error"]["message"].as_str().expect("message");
        assert!(message.contains(says), "{error}");
    }
    let audited = app.db.audit_log(None, 50).await.expect("audit");
    let rolls: Vec<_> = audited
        .iter()
        .filter(|a| a.action == "webhook.roll_secret")
        .collect();
    assert_eq!(rolls.len(), 4);
    let stored = app.stored_text().await;
    for secret in [&first, &second, &third, &fourth] {
        assert!(!stored.contains(secret.as_str()), "sealed at rest");
    }

    // Under another webhook key the current secret cannot sign any more: a grace is refused,
    // a roll without one goes through.
    let other_key = "cd".repeat(32);
    let env = [("KEYWARD_WEBHOOK_KEY", other_key.as_str())];
    let noted = |output: std::process::Output| {
        assert!(output.status.success());
        String::from_utf8_lossy(&output.stderr)
            .contains(&format!("signing secret of webhook {id} does not open"))
    };
    assert!(noted(
        app.cli_with_env(&["webhook", "list", "--json"], &env).await
    ));
    assert!(!noted(app.cli(&["webhook", "list", "--json"]).await));
    let refused = app
        .cli_with_env(
            &["webhook", "roll-secret", &id, "--grace", "1h", "--json"],
            &env,
        )
        .await;
    assert_eq!(refused.status.code(), Some(1));
    let error: serde_json::Value = serde_json::from_slice(&refused.stderr).expect("JSON error");
    let message = error["error"]["message"].as_str().expect("message");
    assert!(message.contains("does not open"), "{message}");
    let rolled = app
        .cli_with_env(&["webhook", "roll-secret", &id, "--json"], &env)
        .await;
    assert!(rolled.status.success());
    assert!(!noted(
        app.cli_with_env(&["webhook", "list", "--json"], &env).await
    ));
    assert!(noted(app.cli(&["webhook", "list", "--json"]).await));
    // Adding one under a key the others were not sealed with says so at once.
    assert!(noted(
        app.cli(&[
            "webhook",
            "add",
            "--url",
            "https://example.com/hook",
            "--json"
        ])
        .await
    ));
}

#[tokio::test]
async fn an_expiring_key_is_alerted_once() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let created = add_webhook(&app, &receiver, &["key.expiring"]).await;
    app.api_user_with(CreateApiUser {
        username: "erp".into(),
        expires_in: keyward::credentials::NewExpiry::In(time::Duration::days(10)),
        ..CreateApiUser::default()
    })
    .await;
    app.api_user_with(CreateApiUser {
        username: "no-expiry".into(),
        ..CreateApiUser::default()
    })
    .await;

    // Four days on, the key expires within 7 days: the hourly scan alerts.
    app.clock.advance(time::Duration::days(4));
    let first = receiver.wait_for("key.expiring", 1).await;
    assert!(first[0].signed_with(created.secret.expose()));
    let data = &first[0].json()["data"];
    assert_eq!(data["api_user"]["username"], "erp");
    assert!(
        data["key"]["hint"]
            .as_str()
            .expect("hint")
            .starts_with("kw_…")
    );
    let left = data["expires_in_seconds"].as_i64().expect("seconds");
    assert!((5 * 86_400..=6 * 86_400).contains(&left), "{left}");

    // Later scans do not alert it again; a key newly in the window is alerted.
    app.clock.advance(time::Duration::hours(2));
    app.api_user_with(CreateApiUser {
        username: "pos".into(),
        expires_in: keyward::credentials::NewExpiry::In(time::Duration::days(3)),
        ..CreateApiUser::default()
    })
    .await;
    app.clock.advance(time::Duration::hours(2));
    receiver.wait_for("key.expiring", 2).await;
    settle(&app).await;
    let all = receiver.of_type("key.expiring");
    assert_eq!(all.len(), 2, "once per key");
    assert_eq!(all[1].json()["data"]["api_user"]["username"], "pos");
}

#[tokio::test]
async fn a_burst_of_refusals_is_alerted_once_per_window() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    add_webhook(&app, &receiver, &["refusals.burst"]).await;
    let erp = app.api_user("erp", &[]).await;
    let pos = app.api_user("pos", &[]).await;

    for _ in 0..20 {
        assert_eq!(app.get("/api/v1/products", &erp).await.status(), 403);
    }
    let first = receiver.wait_for("refusals.burst", 1).await;
    let data = &first[0].json()["data"];
    assert_eq!(data["api_user"]["username"], "erp");
    assert_eq!(data["refusals"], 20);
    assert_eq!(data["window_seconds"], 300);
    assert_eq!(data["outcomes"]["insufficient_scope"], 20);
    assert_eq!(data["ips"][0], "127.0.0.1");

    // Twenty more in the same window: no second alert. Another user's burst is the marker
    // that everything before it went through.
    for _ in 0..20 {
        app.get("/api/v1/products", &erp).await;
    }
    for _ in 0..20 {
        app.get("/api/v1/products", &pos).await;
    }
    receiver.wait_for("refusals.burst", 2).await;
    settle(&app).await;
    let users = |events: Vec<crate::receiver::Received>| -> Vec<String> {
        events
            .iter()
            .map(|e| {
                e.json()["data"]["api_user"]["username"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(users(receiver.of_type("refusals.burst")), ["erp", "pos"]);

    // The next window alerts again.
    app.clock.advance(time::Duration::minutes(6));
    for _ in 0..20 {
        app.get("/api/v1/products", &erp).await;
    }
    receiver.wait_for("refusals.burst", 3).await;
    assert_eq!(
        users(receiver.of_type("refusals.burst")),
        ["erp", "pos", "erp"]
    );
}

#[tokio::test]
async fn calls_from_an_address_not_on_the_list_are_alerted_once_per_address_an_hour() {
    let app = spawn_app_with(Settings {
        trusted_proxies: vec!["127.0.0.1/32"],
        ..Settings::default()
    })
    .await;
    let receiver = Receiver::start().await;
    add_webhook(&app, &receiver, &["ip.not_allowed"]).await;
    let key = user_from(&app, "erp", "192.0.2.10").await;
    assert_eq!(call_from(&app, &key, "192.0.2.10").await, 200);

    for _ in 0..5 {
        assert_eq!(call_from(&app, &key, "198.51.100.7").await, 403);
    }
    let first = receiver.wait_for("ip.not_allowed", 1).await;
    assert_eq!(first[0].json()["data"]["ip"], "198.51.100.7");
    assert_eq!(first[0].json()["data"]["api_user"]["username"], "erp");
    // Another address is alerted on its own; its alert marks that the first address's later
    // calls went through the detector without one.
    call_from(&app, &key, "198.51.100.8").await;
    receiver.wait_for("ip.not_allowed", 2).await;
    settle(&app).await;
    let ips = |receiver: &Receiver| -> Vec<String> {
        receiver
            .of_type("ip.not_allowed")
            .iter()
            .map(|e| e.json()["data"]["ip"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(ips(&receiver), ["198.51.100.7", "198.51.100.8"]);

    app.clock.advance(time::Duration::minutes(61));
    call_from(&app, &key, "198.51.100.7").await;
    receiver.wait_for("ip.not_allowed", 3).await;
    assert_eq!(
        ips(&receiver),
        ["198.51.100.7", "198.51.100.8", "198.51.100.7"]
    );
}

#[tokio::test]
async fn a_failing_endpoint_is_retried_with_backoff_then_dead_lettered_and_retried_by_hand() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    receiver.answer_with(500);
    let created = add_webhook(&app, &receiver, &[]).await;
    let event_id = app
        .webhooks
        .send_test(&Actor::system(), created.webhook.id)
        .await
        .expect("test");

    receiver.wait_for("webhook.test", 1).await;
    for (attempt, wait) in BACKOFF.iter().enumerate() {
        // Recorded as failed, due again after the next wait of the schedule.
        let record = wait_until(&app, |d| {
            d.attempts == attempt as i64 + 1 && d.next_attempt_at.is_some()
        })
        .await;
        assert_eq!(record.state, DeliveryState::Pending);
        assert_eq!(record.last_status, Some(500));
        assert_eq!(
            record.next_attempt_at.expect("next") - record.last_attempt_at.expect("last"),
            *wait
        );
        app.clock.advance(*wait);
        receiver.wait_for("webhook.test", attempt + 2).await;
    }
    let dead = wait_until(&app, |d| d.state == DeliveryState::Dead).await;
    assert_eq!(dead.attempts, MAX_ATTEMPTS);
    assert_eq!(dead.last_error.as_deref(), Some("HTTP 500"));
    assert!(dead.next_attempt_at.is_none());
    let sent = receiver.of_type("webhook.test");
    assert_eq!(sent.len(), MAX_ATTEMPTS as usize);
    assert!(
        sent.iter()
            .all(|r| r.json()["id"] == event_id.as_str() && r.signed_with(created.secret.expose())),
        "every attempt is the same event, signed"
    );

    // The console's dead-letter view offers a Retry; it goes through once the endpoint works.
    let console = Console::new(&app);
    console.sign_in("admin", "test-admin-password").await;
    let page = format!("/admin/webhooks/{}?state=dead", created.webhook.id);
    let html = console.html(&page).await;
    assert!(
        html.contains("HTTP 500") && html.contains("Retry"),
        "{html}"
    );
    receiver.answer_with(204);
    let retried = console
        .submit(
            &page,
            &format!("/admin/webhooks/deliveries/{}/retry", dead.id),
            &[],
        )
        .await;
    assert_eq!(retried.status(), StatusCode::SEE_OTHER);
    receiver
        .wait_for("webhook.test", MAX_ATTEMPTS as usize + 1)
        .await;
    let delivered = wait_until(&app, |d| d.state == DeliveryState::Delivered).await;
    assert_eq!(delivered.last_status, Some(204));
    assert!(deliveries(&app, Some(DeliveryState::Dead)).await.is_empty());
    let audit = app.db.audit_log(None, 10).await.expect("audit");
    assert!(
        audit
            .iter()
            .any(|a| a.action == "webhook.retry" && a.actor == "admin:admin")
    );
}

/// Waits until the only delivery matches `done`, and returns it.
async fn wait_until(app: &TestApp, done: impl Fn(&DeliveryRecord) -> bool) -> DeliveryRecord {
    for _ in 0..400 {
        if let Some(record) = deliveries(app, None).await.into_iter().next()
            && done(&record)
        {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the delivery never got there: {:?}",
        deliveries(app, None).await
    );
}

#[tokio::test]
async fn a_disabled_endpoint_gets_nothing_until_it_is_enabled() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let created = add_webhook(&app, &receiver, &["key.exposed"]).await;
    set_status(&app, &created, keyward::domain::api_user::Status::Disabled).await;
    let key = app.api_user("erp", &[]).await;

    let reported = app
        .request(Method::POST, "/api/v1/leaks")
        .json(&serde_json::json!({ "keys": [key] }))
        .send()
        .await
        .expect("report");
    assert_eq!(reported.status(), 200);
    // A disabled endpoint is not subscribed: the event is not queued for it at all.
    assert!(deliveries(&app, None).await.is_empty());

    set_status(&app, &created, keyward::domain::api_user::Status::Enabled).await;
    app.webhooks
        .send_test(&Actor::system(), created.webhook.id)
        .await
        .expect("test");
    receiver.wait_for("webhook.test", 1).await;
    assert!(receiver.of_type("key.exposed").is_empty());

    // A delivery retried by hand while its endpoint is disabled waits for it, and says so.
    let sent = wait_until(&app, |d| d.state == DeliveryState::Delivered).await;
    set_status(&app, &created, keyward::domain::api_user::Status::Disabled).await;
    let retried = app.cli(&["webhook", "retry", &sent.id.to_string()]).await;
    assert!(retried.status.success());
    let said = String::from_utf8_lossy(&retried.stdout);
    assert!(said.contains("sent once the webhook is enabled"), "{said}");
}

async fn set_status(
    app: &TestApp,
    created: &CreatedWebhook,
    status: keyward::domain::api_user::Status,
) {
    app.webhooks
        .set_status(&Actor::system(), created.webhook.id, status)
        .await
        .expect("set the status");
}

/// The signing secret on the console's page that shows it once.
fn shown_secret(html: &str) -> String {
    html.split("id=\"new-key\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the secret, once")
        .to_owned()
}

#[tokio::test]
async fn administrators_manage_webhooks_in_the_console_and_viewers_only_look() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let admin = Console::new(&app);
    admin.sign_in("admin", "test-admin-password").await;

    let list = admin.html("/admin/webhooks").await;
    assert!(list.contains("Add an endpoint"));
    let forged = admin
        .post(
            "/admin/webhooks",
            &[("url", &receiver.url), ("event", "key.exposed")],
        )
        .await;
    assert_eq!(
        forged.status(),
        StatusCode::FORBIDDEN,
        "no CSRF token, no change"
    );
    let bad = admin
        .submit(
            "/admin/webhooks",
            "/admin/webhooks",
            &[("url", "gopher://example.com/")],
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.text().await.expect("html").contains("https://"));

    let added = admin
        .submit(
            "/admin/webhooks",
            "/admin/webhooks",
            &[
                ("url", &receiver.url),
                ("description", "Ops"),
                ("event", "key.exposed"),
                ("event", "refusals.burst"),
            ],
        )
        .await;
    assert_eq!(added.status(), StatusCode::OK);
    let secret = shown_secret(&added.text().await.expect("html"));
    assert!(secret.starts_with("whsec_"));
    let webhook = app.webhooks.list().await.expect("list").remove(0);
    assert_eq!(webhook.events.to_string(), "key.exposed refusals.burst");
    let page = format!("/admin/webhooks/{}", webhook.id);

    let list = admin.html("/admin/webhooks").await;
    assert!(list.contains(&receiver.url) && list.contains(&webhook.secret_hint));
    assert!(!list.contains(&secret), "shown once only");
    let sent = admin.submit(&page, &format!("{page}/test"), &[]).await;
    assert_eq!(sent.status(), StatusCode::SEE_OTHER);
    let test = &receiver.wait_for("webhook.test", 1).await[0];
    assert!(test.signed_with(&secret));
    settle(&app).await;
    let log = admin.html(&page).await;
    assert!(
        log.contains("webhook.test") && log.contains("delivered"),
        "{log}"
    );

    // Rolled with a day's grace: the new secret once, the old one still signing beside it.
    let roll = [("grace", "24h"), ("current_secret", &webhook.secret_hint)];
    let rolled = admin.submit(&page, &format!("{page}/roll"), &roll).await;
    assert_eq!(rolled.status(), StatusCode::OK);
    let html = rolled.text().await.expect("html");
    let new_secret = shown_secret(&html);
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    assert!(html.contains("id=\"old-secret\""), "{html}");
    assert!(admin.html(&page).await.contains("id=\"previous-secret\""));
    app.webhooks
        .send_test(&Actor::system(), webhook.id)
        .await
        .expect("test");
    let test = receiver
        .wait_for("webhook.test", 2)
        .await
        .pop()
        .expect("second");
    assert!(test.signed_with(&new_secret) && test.signed_with(&secret));
    // The same form sent again (a reload of the page with the new secret) rolls nothing: the
    // receiver's secret keeps its day.
    let again = admin.submit(&page, &format!("{page}/roll"), &roll).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let html = again.text().await.expect("html");
    assert!(
        html.contains("rolled meanwhile") && !html.contains(&new_secret),
        "{html}"
    );
    app.webhooks
        .send_test(&Actor::system(), webhook.id)
        .await
        .expect("test");
    let test = receiver
        .wait_for("webhook.test", 3)
        .await
        .pop()
        .expect("third");
    assert!(test.signed_with(&new_secret) && test.signed_with(&secret));
    let current = app
        .webhooks
        .list()
        .await
        .expect("list")
        .remove(0)
        .secret_hint;
    let bad = admin
        .submit(
            &page,
            &format!("{page}/roll"),
            &[("grace", "8d"), ("current_secret", &current)],
        )
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    settle(&app).await;

    // A viewer sees the list and the deliveries, never a secret, and changes nothing.
    let viewer = admin_with_role(&app, "watcher", Role::Viewer).await;
    let seen = viewer.html("/admin/webhooks").await;
    assert!(seen.contains(&receiver.url) && !seen.contains("Add an endpoint"));
    assert!(!seen.contains(&secret));
    let seen = viewer.html(&page).await;
    assert!(seen.contains("delivered") && !seen.contains("Send test event"));
    for path in [
        format!("{page}/test"),
        format!("{page}/roll"),
        format!("{page}/delete"),
        "/admin/webhooks".to_owned(),
    ] {
        let refused = viewer
            .submit(
                &page,
                &path,
                &[("url", &receiver.url), ("status", "disabled")],
            )
            .await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{path}");
    }

    let disabled = admin
        .submit(&page, &format!("{page}/status"), &[("status", "disabled")])
        .await;
    assert_eq!(disabled.status(), StatusCode::SEE_OTHER);
    assert!(admin.html(&page).await.contains("Enable"));
    let deleted = admin.submit(&page, &format!("{page}/delete"), &[]).await;
    assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
    assert!(app.webhooks.list().await.expect("list").is_empty());
    assert_eq!(admin.get(&page).await.status(), StatusCode::NOT_FOUND);
    let audit = admin.html("/admin/audit").await;
    for action in [
        "webhook.create",
        "webhook.roll_secret",
        "webhook.update",
        "webhook.delete",
    ] {
        assert!(audit.contains(action), "{action}");
    }
    assert!(!audit.contains(&secret) && !audit.contains(&new_secret));
}

/// The Python check the README shows, run as written against a real delivery.
#[tokio::test]
#[ignore = "needs python3"]
async fn the_readmes_python_check_accepts_real_deliveries_and_refuses_forgeries() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("docs/examples/webhooks/verify.py");
    let code = std::fs::read_to_string(&script).expect("verify.py");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README");
    let function = code
        .split("\n\n\n")
        .find(|block| block.starts_with("def verify"))
        .expect("def verify");
    assert!(
        readme.contains(function.trim()),
        "the README shows verify.py's function"
    );

    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let created = add_webhook(&app, &receiver, &[]).await;
    app.webhooks
        .send_test(&Actor::system(), created.webhook.id)
        .await
        .expect("test");
    let event = receiver.wait_for("webhook.test", 1).await.remove(0);
    let header = event.header("keyward-signature");
    let check = |secret: String, header: String, body: String| {
        let script = script.clone();
        async move {
            use tokio::io::AsyncWriteExt;
            let mut child = tokio::process::Command::new("python3")
                .arg(&script)
                .args([secret, header])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("run python3");
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(body.as_bytes()).await.expect("write");
            drop(stdin);
            child
                .wait_with_output()
                .await
                .expect("python3")
                .status
                .success()
        }
    };
    let secret = created.secret.expose().to_owned();
    assert!(check(secret.clone(), header.clone(), event.body.clone()).await);
    let forged = event.body.replace("webhook.test", "key.exposed");
    assert!(
        !check(secret.clone(), header.clone(), forged).await,
        "a changed body"
    );
    assert!(
        !check("whsec_guess".into(), header.clone(), event.body.clone()).await,
        "another secret"
    );
    let old = format!("t=1700000000,{}", header.split(',').nth(1).expect("v1"));
    assert!(
        !check(secret, old, event.body.clone()).await,
        "a replayed old signature"
    );
}

#[tokio::test]
async fn two_nodes_on_one_database_send_each_delivery_once() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let created = add_webhook(&app, &receiver, &[]).await;
    // A second server on the same database, as a cluster node is.
    let mut config = keyward::config::Config::resolve(
        Some(app.database_url.clone()),
        keyward::config::Overrides {
            listen: Some("127.0.0.1:0".parse().expect("addr")),
            ..Default::default()
        },
        keyward::config::FileConfig::default(),
    )
    .expect("config");
    if app.on_postgres() {
        config.webhook_key = Some(keyward::domain::secret::Secret::new(
            crate::helpers::TEST_WEBHOOK_KEY.into(),
        ));
    }
    let node = keyward::startup::App::build(&config, std::sync::Arc::new(app.clock.clone()))
        .await
        .expect("second node");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let second = tokio::spawn(node.run_until(
        async move {
            let _ = stopped.await;
        },
        std::future::pending(),
    ));

    let mut events = Vec::new();
    for _ in 0..30 {
        events.push(
            app.webhooks
                .send_test(&Actor::system(), created.webhook.id)
                .await
                .expect("test"),
        );
    }
    receiver.wait_for("webhook.test", 30).await;
    settle(&app).await;
    let mut received: Vec<String> = receiver
        .of_type("webhook.test")
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    received.sort();
    events.sort();
    assert_eq!(received, events, "every event once, none twice");
    let _ = stop.send(());
    second.await.expect("node").expect("stopped");
}
