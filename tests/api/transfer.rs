//! `keyward export` / `keyward import`: a store moves between databases with its keys (their
//! digests), sessions, orders and history, and nothing is issued anew.

use crate::helpers::{TestDatabase, cli_at, cli_at_with_env, session_number, stdout_json};
use crate::nodes::Node;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use keyward::webhooks::SealingKey;
use reqwest::Client;
use serde_json::{Value, json};
use std::path::Path;

/// The URL of a SQLite file named `name` in `dir`.
fn sqlite_in(dir: &Path, name: &str) -> String {
    format!("sqlite://{}", dir.join(name).display())
}

async fn cli(url: &str, dir: &Path, args: &[&str]) -> std::process::Output {
    cli_at(url, dir.into(), args, None).await
}

/// A store with API users, keys (one rolled), IP rules, a session, products, customers, orders
/// with their status history, refusals and calls in the history, made over HTTP and the CLI.
async fn populate(url: &str, dir: &Path) -> (String, String, i64) {
    let created = cli(
        url,
        dir,
        &[
            "api",
            "create",
            "--json",
            "--username",
            "shop-sync",
            "--ip",
            "127.0.0.1",
            "--scope",
            "products:write",
            "--scope",
            "orders:write",
            "--scope",
            "customers:write",
        ],
    )
    .await;
    let key = stdout_json(&created)["key"]
        .as_str()
        .expect("key")
        .to_owned();
    let other = cli(
        url,
        dir,
        &[
            "api",
            "create",
            "--json",
            "--username",
            "old-erp",
            "--ip",
            "10.0.0.0/8",
        ],
    )
    .await;
    assert!(other.status.success());
    let rolled = cli(url, dir, &["api", "rotate", "old-erp", "--grace", "24h"]).await;
    assert!(rolled.status.success());

    let node = Node::start(dir, url, "warn").await;
    let client = Client::new();
    let post = |path: &str, body: Value| {
        client
            .post(node.url(path))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };
    for i in 0..30 {
        let response = post(
            "/api/v1/products",
            json!({"sku": format!("SKU-{i}"), "name": format!("Product {i}"), "price": "9.50", "quantity": 100}),
        )
        .await
        .expect("product");
        assert_eq!(response.status(), 201);
    }
    let customer = post(
        "/api/v1/customers",
        json!({"name": "Ada", "email": "ada@example.com"}),
    )
    .await
    .expect("customer");
    assert_eq!(customer.status(), 201);
    for i in 0..12 {
        let order = post(
            "/api/v1/orders",
            json!({"customer_id": 1, "currency": "USD", "lines": [{"sku": format!("SKU-{i}"), "quantity": 2}]}),
        )
        .await
        .expect("order");
        assert_eq!(order.status(), 201);
        let id = order.json::<Value>().await.expect("json")["id"].clone();
        let shipped = post(
            &format!("/api/v1/orders/{id}/history"),
            json!({"status": "Shipped", "comment": "UPS"}),
        )
        .await
        .expect("history");
        assert_eq!(shipped.status(), 201);
    }
    let refused = client
        .get(node.url("/api/v1/me"))
        .bearer_auth("kw_wrong")
        .send()
        .await
        .expect("call");
    assert_eq!(refused.status(), 401);
    let token = node.login("shop-sync", &key).await;
    // A user whose session was the newest, deleted since: only the history names its number.
    let gone = cli(
        url,
        dir,
        &[
            "api",
            "create",
            "--json",
            "--username",
            "gone",
            "--ip",
            "127.0.0.1",
        ],
    )
    .await;
    let gone_key = stdout_json(&gone)["key"].as_str().expect("key").to_owned();
    let gone_token = node.login("gone", &gone_key).await;
    assert!(session_number(&gone_token) > session_number(&token));
    assert!(
        cli(url, dir, &["api", "delete", "gone"])
            .await
            .status
            .success()
    );
    node.stop().await;
    (key, token, session_number(&gone_token))
}

/// `keyward export FILE` from the store at `url`; its report.
async fn export(url: &str, dir: &Path, file: &Path) -> Value {
    let file = file.to_str().expect("utf-8");
    stdout_json(&cli(url, dir, &["export", file, "--json"]).await)
}

/// `keyward import FILE` into the empty store at `url`, which must refuse it and keep nothing;
/// the error it printed.
async fn refused_import(url: &str, dir: &Path, file: &Path) -> Value {
    let refused = cli(
        url,
        dir,
        &["import", file.to_str().expect("utf-8"), "--json"],
    )
    .await;
    assert!(!refused.status.success());
    let error: Value = serde_json::from_slice(&refused.stderr).expect("JSON error");
    let listed = stdout_json(&cli(url, dir, &["api", "list", "--json"]).await);
    assert_eq!(listed, json!([]), "nothing was kept after {error}");
    error
}

/// The file without its header, whose time and source differ from export to export.
fn body_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("read the export");
    text.split_once('\n').expect("a header").1.to_owned()
}

#[tokio::test]
async fn a_store_moves_from_sqlite_to_another_database_and_back_with_its_keys_and_history() {
    let dir = tempfile::tempdir().expect("dir");
    let sqlite = sqlite_in(dir.path(), "shop.db");
    let (key, token, purged) = populate(&sqlite, dir.path()).await;

    let file = dir.path().join("shop.jsonl");
    let file_arg = file.to_str().expect("utf-8");
    let exported = export(&sqlite, dir.path(), &file).await;
    let tables = exported["tables"].clone();
    let count = |name: &str| {
        tables
            .as_array()
            .expect("tables")
            .iter()
            .find(|t| t["name"] == name)
            .and_then(|t| t["rows"].as_u64())
            .unwrap_or_default()
    };
    assert_eq!(count("orders"), 12);
    assert_eq!(
        count("order_history"),
        24,
        "each order's Pending and Shipped"
    );
    assert_eq!(
        count("api_keys"),
        3,
        "the rolled key in its grace period too"
    );
    assert_eq!(count("api_sessions"), 1);
    assert!(
        count("api_history") >= 45,
        "every call: {}",
        count("api_history")
    );

    // Into PostgreSQL when the suite runs on it, otherwise into another SQLite file.
    let target_db = TestDatabase::create().await;
    let target = match &target_db {
        Some(database) => database.url.clone(),
        None => sqlite_in(dir.path(), "target.db"),
    };
    let imported = stdout_json(&cli(&target, dir.path(), &["import", file_arg, "--json"]).await);
    assert_eq!(imported["rows"], exported["rows"]);
    assert_eq!(imported["tables"], tables, "every table's rows arrived");

    // Row for row the same store: ids, digests, timestamps.
    let again = dir.path().join("again.jsonl");
    let again_arg = again.to_str().expect("utf-8");
    export(&target, dir.path(), &again).await;
    assert!(
        body_of(&file) == body_of(&again),
        "the export of the copy is the export of the original"
    );

    // A second import into the now full database is refused, and changes nothing.
    let refused = cli(&target, dir.path(), &["import", file_arg, "--json"]).await;
    assert!(!refused.status.success());
    let error: Value = serde_json::from_slice(&refused.stderr).expect("JSON error");
    assert!(
        error["error"]["message"]
            .as_str()
            .expect("message")
            .contains("not empty"),
        "{error}"
    );

    // A server on the copy takes the same key and session token: no key was issued anew.
    let node = Node::start(dir.path(), &target, "warn").await;
    let client = Client::new();
    let me = client
        .get(node.url("/api/v1/me"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("call");
    assert_eq!(me.status(), 200, "the same key works");
    let me = client
        .get(node.url("/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("call");
    assert_eq!(me.status(), 200, "the same session works");
    let token = node.login("shop-sync", &key).await;
    assert!(
        session_number(&token) > purged,
        "a number the history names is never given again"
    );
    let orders: Value = client
        .get(node.url("/api/v1/orders?limit=100"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("orders")
        .json()
        .await
        .expect("json");
    assert_eq!(orders["data"].as_array().expect("orders").len(), 12);
    let created = client
        .post(node.url("/api/v1/products"))
        .bearer_auth(&key)
        .json(&json!({"sku": "NEW-1", "name": "New", "price": "1.00", "quantity": 1}))
        .send()
        .await
        .expect("product");
    assert_eq!(created.status(), 201, "ids go on after the imported ones");
    assert_eq!(created.json::<Value>().await.expect("json")["id"], 31);
    node.stop().await;

    // And back to SQLite.
    let back = sqlite_in(dir.path(), "back.db");
    let imported = stdout_json(&cli(&back, dir.path(), &["import", again_arg, "--json"]).await);
    assert_eq!(imported["tables"], tables);
    let history = stdout_json(
        &cli(
            &back,
            dir.path(),
            &["api", "history", "shop-sync", "--limit", "1000", "--json"],
        )
        .await,
    );
    assert_eq!(
        history.as_array().expect("rows").len() as u64,
        count("api_history") - 2,
        "the history of shop-sync: every call but the unknown key's and gone's"
    );
}

#[tokio::test]
async fn webhooks_move_with_the_store_to_a_database_that_uses_the_same_webhook_key() {
    let dir = tempfile::tempdir().expect("dir");
    let source = sqlite_in(dir.path(), "source.db");
    let created = cli(
        &source,
        dir.path(),
        &[
            "api",
            "create",
            "--username",
            "shop-sync",
            "--ip",
            "127.0.0.1",
        ],
    )
    .await;
    assert!(created.status.success());
    let added = stdout_json(
        &cli(
            &source,
            dir.path(),
            &[
                "webhook",
                "add",
                "--url",
                "http://127.0.0.1:9/hooks",
                "--json",
            ],
        )
        .await,
    );
    let id = added["webhook"]["id"].to_string();
    // Its secret rolled, the old one signing beside the new one for a day: both travel.
    let rolled = stdout_json(
        &cli(
            &source,
            dir.path(),
            &["webhook", "roll-secret", &id, "--grace", "24h", "--json"],
        )
        .await,
    );
    let secret = rolled["secret"].as_str().expect("secret");
    let queued = cli(&source, dir.path(), &["webhook", "test", &id]).await;
    assert!(queued.status.success());
    let listed = stdout_json(&cli(&source, dir.path(), &["webhook", "list", "--json"]).await);
    assert_eq!(listed[0]["pending"], 1, "{listed}");

    let file = dir.path().join("store.jsonl");
    let file_arg = file.to_str().expect("utf-8");
    let exported = export(&source, dir.path(), &file).await;
    let rows_of = |report: &Value, name: &str| {
        report["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .find(|t| t["name"] == name)
            .map(|t| t["rows"].clone())
    };
    assert_eq!(rows_of(&exported, "webhooks"), Some(json!(1)));
    assert_eq!(rows_of(&exported, "webhook_deliveries"), Some(json!(1)));
    assert_eq!(
        rows_of(&exported, "webhook_previous_secrets"),
        Some(json!(1))
    );
    let text = std::fs::read_to_string(&file).expect("read");
    for secret in [secret, added["secret"].as_str().expect("secret")] {
        assert!(!text.contains(secret), "the secrets travel sealed");
    }

    // A database without a webhook key refuses the file, keeps nothing and makes no key.
    let keyless = sqlite_in(dir.path(), "keyless.db");
    let error = refused_import(&keyless, dir.path(), &file).await;
    let message = error["error"]["message"].as_str().expect("message");
    assert!(message.contains("no webhook key"), "{message}");
    assert!(
        message.starts_with("line 1:"),
        "at the header, before the history: {message}"
    );
    assert!(!dir.path().join("keyless.db-webhook-key").exists());
    // So does one with another key.
    let other_key = "ab".repeat(32);
    let refused = cli_at_with_env(
        &keyless,
        dir.path().into(),
        &["import", file_arg, "--json"],
        &[("KEYWARD_WEBHOOK_KEY", &other_key)],
    )
    .await;
    assert!(!refused.status.success());
    let error: Value = serde_json::from_slice(&refused.stderr).expect("JSON error");
    let message = error["error"]["message"].as_str().expect("message");
    assert!(
        message.contains(&format!("webhook {id} does not open")),
        "{message}"
    );
    let users = stdout_json(&cli(&keyless, dir.path(), &["api", "list", "--json"]).await);
    assert_eq!(users, json!([]), "nothing was kept");

    // With the source's key it goes in, and a SQLite file keeps that key beside it for the
    // commands after the import, which may not have the setting.
    let source_key = std::fs::read_to_string(dir.path().join("source.db-webhook-key"))
        .expect("the source's key file");
    let env = [("KEYWARD_WEBHOOK_KEY", source_key.trim())];
    let imported = cli_at_with_env(
        &keyless,
        dir.path().into(),
        &["import", file_arg, "--json"],
        &env,
    )
    .await;
    assert!(imported.status.success());
    let note = String::from_utf8_lossy(&imported.stderr);
    assert!(note.contains("keyless.db-webhook-key"), "{note}");
    let kept = std::fs::read_to_string(dir.path().join("keyless.db-webhook-key")).expect("key");
    assert_eq!(kept.trim(), source_key.trim());

    // Into PostgreSQL when the suite runs on it: the endpoint, its secret and its waiting
    // delivery arrive.
    let target_db = TestDatabase::create().await;
    let target = match &target_db {
        Some(database) => database.url.clone(),
        None => sqlite_in(dir.path(), "target.db"),
    };
    let imported = cli_at_with_env(
        &target,
        dir.path().into(),
        &["import", file_arg, "--json"],
        &env,
    )
    .await;
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    assert_eq!(stdout_json(&imported)["tables"], exported["tables"]);
    let moved = stdout_json(
        &cli_at_with_env(
            &target,
            dir.path().into(),
            &["webhook", "list", "--json"],
            &env,
        )
        .await,
    );
    assert_eq!(moved, listed);
    // The secret in the target, exported again, opens with the source's key to what the
    // receiver was given; and the next endpoint's id follows the imported ones.
    let again = dir.path().join("again.jsonl");
    export(&target, dir.path(), &again).await;
    let text = std::fs::read_to_string(&again).expect("read");
    let mut lines = text
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("json"))
        .skip_while(|line| line["table"] != "webhooks");
    let header = lines.next().expect("the webhooks");
    let column = header["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .position(|c| c == "sealed_secret")
        .expect("sealed_secret");
    let row = lines.next().expect("a webhook");
    let sealed = BASE64
        .decode(row[column].as_str().expect("base64"))
        .expect("bytes");
    let key = SealingKey::from_hex(source_key.trim()).expect("key");
    assert_eq!(key.open(&sealed).expect("opens").expose(), secret);
    let next = stdout_json(
        &cli_at_with_env(
            &target,
            dir.path().into(),
            &[
                "webhook",
                "add",
                "--url",
                "http://127.0.0.1:9/other",
                "--json",
            ],
            &env,
        )
        .await,
    );
    assert_eq!(next["webhook"]["id"], 2);

    // Left out on request, they ask for no key.
    let bare = dir.path().join("bare.jsonl");
    let report = stdout_json(
        &cli(
            &source,
            dir.path(),
            &[
                "export",
                bare.to_str().expect("utf-8"),
                "--no-webhooks",
                "--json",
            ],
        )
        .await,
    );
    assert_eq!(rows_of(&report, "webhooks"), None);
    let elsewhere = sqlite_in(dir.path(), "elsewhere.db");
    let imported = cli(
        &elsewhere,
        dir.path(),
        &["import", bare.to_str().expect("utf-8"), "--json"],
    )
    .await;
    assert!(imported.status.success());
    assert_eq!(
        stdout_json(&cli(&elsewhere, dir.path(), &["webhook", "list", "--json"]).await),
        json!([])
    );
}

#[tokio::test]
async fn an_export_cut_short_imports_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let source = sqlite_in(dir.path(), "source.db");
    let created = cli(
        &source,
        dir.path(),
        &["api", "create", "--username", "erp", "--ip", "*"],
    )
    .await;
    assert!(created.status.success());
    let file = dir.path().join("store.jsonl");
    export(&source, dir.path(), &file).await;
    let text = std::fs::read_to_string(&file).expect("read");
    let cut = dir.path().join("cut.jsonl");
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&cut, lines[..lines.len() - 1].join("\n")).expect("write");

    let target = sqlite_in(dir.path(), "target.db");
    let error = refused_import(&target, dir.path(), &cut).await;
    assert!(
        error["error"]["message"]
            .as_str()
            .expect("message")
            .contains("ends early"),
        "{error}"
    );
    // The whole file goes in afterwards: the failed import left nothing behind.
    stdout_json(
        &cli(
            &target,
            dir.path(),
            &["import", file.to_str().expect("utf-8"), "--json"],
        )
        .await,
    );
}

#[tokio::test]
async fn a_session_made_with_a_key_its_user_does_not_have_is_not_imported() {
    let dir = tempfile::tempdir().expect("dir");
    let source = sqlite_in(dir.path(), "source.db");
    let created = cli(
        &source,
        dir.path(),
        &[
            "api",
            "create",
            "--username",
            "erp",
            "--ip",
            "127.0.0.1",
            "--json",
        ],
    )
    .await;
    let key = stdout_json(&created)["key"]
        .as_str()
        .expect("key")
        .to_owned();
    let node = Node::start(dir.path(), &source, "warn").await;
    node.login("erp", &key).await;
    node.stop().await;
    let file = dir.path().join("store.jsonl");
    export(&source, dir.path(), &file).await;
    // The session's row now names a key that is nobody's.
    let text = std::fs::read_to_string(&file).expect("read");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let header = lines
        .iter()
        .position(|l| l.contains(r#""table":"api_sessions""#))
        .expect("the sessions' table");
    let mut session: Vec<Value> = serde_json::from_str(&lines[header + 1]).expect("a row");
    session[2] = json!(999);
    lines[header + 1] = Value::from(session).to_string();
    let edited = dir.path().join("edited.jsonl");
    std::fs::write(&edited, lines.join("\n")).expect("write");

    let target = sqlite_in(dir.path(), "target.db");
    let error = refused_import(&target, dir.path(), &edited).await;
    assert_eq!(error["error"]["code"], "invalid", "{error}");
}
