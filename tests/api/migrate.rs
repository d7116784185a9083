//! `keyward migrate`: pending migrations applied once and reported, safe to run several at once,
//! and servers that leave the schema to the operator (`auto_migrate = false`).

use crate::helpers::{cli_at, stdout_json, test_database};
use crate::nodes::Node;
use serde_json::Value;
use std::time::Duration;

fn versions(list: &Value) -> Vec<i64> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|m| m["version"].as_i64().expect("version"))
        .collect()
}

#[tokio::test]
async fn migrate_applies_pending_migrations_once_and_servers_can_leave_it_to_the_operator() {
    let dir = tempfile::tempdir().expect("dir");
    let (url, _database) = test_database(dir.path()).await;
    let cli = |args: &'static [&'static str]| cli_at(&url, dir.path().into(), args, None);

    let planned = stdout_json(&cli(&["migrate", "--dry-run", "--json"]).await);
    let pending = versions(&planned["pending"]);
    assert!(
        pending.contains(&1),
        "a new database needs every migration: {planned}"
    );
    assert!(
        versions(&planned["applied"]).is_empty(),
        "a dry run applies nothing"
    );

    // A server told not to migrate refuses the empty schema, and says what to do.
    let refused = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--auto-migrate",
                "false",
            ])
            .env("KEYWARD_DATABASE_URL", &url)
            .env_remove("KEYWARD_CONFIG")
            .current_dir(dir.path())
            .output(),
    )
    .await
    .expect("serve gives up")
    .expect("serve runs");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("keyward migrate"), "{stderr}");

    // Three operators at once: each ends with the schema current, none fails.
    let (a, b, c) = tokio::join!(
        cli(&["migrate", "--json"]),
        cli(&["migrate", "--json"]),
        cli(&["migrate", "--json"])
    );
    for run in [&a, &b, &c] {
        let report = stdout_json(run);
        assert!(versions(&report["pending"]).is_empty(), "{report}");
    }
    let again = stdout_json(&cli(&["migrate", "--json"]).await);
    assert!(
        versions(&again["applied"]).is_empty(),
        "nothing left: {again}"
    );
    assert_eq!(again["schema_version"], *pending.last().expect("a version"));

    // Now the server starts without touching the schema.
    let node = Node::start_with(
        dir.path(),
        &url,
        "warn",
        &[("KEYWARD_AUTO_MIGRATE", "false")],
    )
    .await;
    let ready = reqwest::get(node.url("/readyz")).await.expect("readyz");
    assert_eq!(ready.status(), 200);
    node.stop().await;
}
