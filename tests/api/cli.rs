//! The command line, run as a process against the running server's database: every change
//! holds on the server's very next request (on PostgreSQL, within milliseconds, when the
//! change's notification arrives: see `TestApp::status_after_change`).

use crate::helpers::{TestApp, spawn_app, stdout_json};
use serde_json::Value;

async fn create(app: &TestApp, name: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "api",
        "create",
        "--json",
        "--username",
        name,
        "--ip",
        "127.0.0.1",
        "--scope",
        "products:read",
    ];
    args.extend_from_slice(extra);
    let created = stdout_json(&app.cli(&args).await);
    assert_eq!(created["username"], name);
    created["key"].as_str().expect("key").to_owned()
}

#[tokio::test]
async fn api_create_prints_the_key_once_and_it_works_at_once() {
    let app = spawn_app().await;

    let key = create(
        &app,
        "inventory-sync",
        &[
            "--description",
            "Inventory sync",
            "--environment",
            "staging",
        ],
    )
    .await;

    assert!(key.starts_with("kw_") && key.len() == 64);
    assert_eq!(app.get("/api/v1/products", &key).await.status(), 200);
    let shown = stdout_json(&app.cli(&["api", "show", "inventory-sync", "--json"]).await);
    assert!(
        !shown.to_string().contains(&key),
        "the key is never shown again"
    );
    assert_eq!(shown["environment"], "staging");
    assert_eq!(shown["description"], "Inventory sync");
}

#[tokio::test]
async fn api_create_takes_length_expiry_rate_limit_and_an_imported_key() {
    let app = spawn_app().await;

    let long = create(
        &app,
        "long-key",
        &[
            "--key-length",
            "128",
            "--expires",
            "7d",
            "--rate-limit",
            "5",
        ],
    )
    .await;
    assert_eq!(long.len(), 128);
    let shown = stdout_json(&app.cli(&["api", "show", "long-key", "--json"]).await);
    assert_eq!(shown["rate_limit_per_minute"], 5);
    assert!(shown["keys"][0]["expires_at"].is_string());
    // A rotated key lasts as long as the one it replaces, unless told otherwise.
    let newest_expiry = |shown: &Value| {
        let keys = shown["keys"].as_array().expect("keys").clone();
        let newest = keys.into_iter().max_by_key(|k| k["id"].as_i64());
        newest.expect("a key")["expires_at"].clone()
    };
    for (args, expiring) in [(&[][..], true), (&["--expires", "never"], false)] {
        let rotate = [&["api", "rotate", "long-key", "--json"][..], args].concat();
        assert!(app.cli(&rotate).await.status.success(), "{args:?}");
        let shown = stdout_json(&app.cli(&["api", "show", "long-key", "--json"]).await);
        assert_eq!(
            newest_expiry(&shown).is_string(),
            expiring,
            "{args:?}: {shown}"
        );
    }

    let legacy = "L".repeat(40) + &"9".repeat(30);
    let output = app
        .cli_with_stdin(
            &[
                "api",
                "create",
                "--json",
                "--username",
                "migrated",
                "--ip",
                "127.0.0.1",
                "--key-stdin",
            ],
            Some(&format!("{legacy}\n")),
        )
        .await;
    // Not printed back to a script either (its output may end up in a CI log).
    let created = stdout_json(&output);
    assert_eq!(created["key"], Value::Null);
    assert_eq!(created["imported"], true);
    assert!(!String::from_utf8_lossy(&output.stdout).contains(&legacy));
    assert_eq!(app.get("/api/v1/me", &legacy).await.status(), 200);
    // At a terminal, an imported key is named by its hint, not printed back.
    let named_by_hint = |output: &std::process::Output, key: &str, hint: &str| {
        assert!(output.status.success());
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(!text.contains(key), "{text}");
        assert!(!String::from_utf8_lossy(&output.stderr).contains(key));
        assert!(text.contains(&format!("Key imported ({hint})")), "{text}");
    };
    let other = "M".repeat(40) + &"8".repeat(30);
    let output = app
        .cli_with_stdin(
            &[
                "api",
                "create",
                "--username",
                "migrated-2",
                "--ip",
                "127.0.0.1",
                "--key-stdin",
            ],
            Some(&format!("{other}\n")),
        )
        .await;
    named_by_hint(&output, &other, "MMM…8888");
    assert_eq!(app.get("/api/v1/me", &other).await.status(), 200);
    // A rotation to an imported key alike.
    let rolled = "R".repeat(40) + &"7".repeat(30);
    let output = app
        .cli_with_stdin(
            &["api", "rotate", "migrated-2", "--key-stdin"],
            Some(&format!("{rolled}\n")),
        )
        .await;
    named_by_hint(&output, &rolled, "RRR…7777");
    assert_eq!(app.get("/api/v1/me", &rolled).await.status(), 200);

    let short = app
        .cli_with_stdin(
            &["api", "create", "--username", "bad-import", "--key-stdin"],
            Some("tooshort\n"),
        )
        .await;
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("64"));
    // A second line is refused, not dropped.
    let two = app
        .cli_with_stdin(
            &["api", "create", "--username", "two-keys", "--key-stdin"],
            Some(&format!("{}\n{}\n", "A".repeat(64), "B".repeat(64))),
        )
        .await;
    assert_eq!(two.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&two.stderr).contains("more than one line"));
    assert_eq!(
        app.cli(&["api", "show", "two-keys"]).await.status.code(),
        Some(3)
    );
}

#[tokio::test]
async fn disable_and_enable_hold_on_the_next_request() {
    let app = spawn_app().await;
    let key = create(&app, "toggled", &[]).await;
    assert_eq!(app.get("/api/v1/me", &key).await.status(), 200);

    assert!(
        app.cli(&["api", "disable", "toggled"])
            .await
            .status
            .success()
    );
    assert_eq!(app.status_after_change("/api/v1/me", &key, 401).await, 401);
    assert_eq!(app.last_outcome().await, "disabled_user");

    assert!(
        app.cli(&["api", "enable", "toggled"])
            .await
            .status
            .success()
    );
    assert_eq!(app.status_after_change("/api/v1/me", &key, 200).await, 200);
}

#[tokio::test]
async fn ip_remove_and_add_hold_on_the_next_request() {
    let app = spawn_app().await;
    let key = create(&app, "ipchange", &[]).await;

    assert!(
        app.cli(&["api", "ip", "remove", "ipchange", "127.0.0.1"])
            .await
            .status
            .success()
    );
    assert_eq!(app.status_after_change("/api/v1/me", &key, 403).await, 403);

    assert!(
        app.cli(&["api", "ip", "add", "ipchange", "127.0.0.0/8"])
            .await
            .status
            .success()
    );
    assert_eq!(app.status_after_change("/api/v1/me", &key, 200).await, 200);

    let bad = app
        .cli(&["api", "ip", "add", "ipchange", "10.0.0.5/8"])
        .await;
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("10.0.0.0/8"),
        "the error suggests the block"
    );
    let missing = app
        .cli(&["api", "ip", "remove", "ipchange", "192.0.2.1"])
        .await;
    assert!(!missing.status.success());
}

#[tokio::test]
async fn rotate_holds_on_the_next_request_with_and_without_grace() {
    let app = spawn_app().await;
    let first = create(&app, "rotated", &[]).await;

    let second = stdout_json(
        &app.cli(&["api", "rotate", "rotated", "--grace", "1h", "--json"])
            .await,
    )["key"]
        .as_str()
        .expect("key")
        .to_owned();
    assert_eq!(
        app.get("/api/v1/me", &first).await.status(),
        200,
        "in its grace period"
    );
    assert_eq!(app.get("/api/v1/me", &second).await.status(), 200);

    let third = stdout_json(&app.cli(&["api", "rotate", "rotated", "--json"]).await)["key"]
        .as_str()
        .expect("key")
        .to_owned();
    assert_eq!(
        app.status_after_change("/api/v1/me", &first, 401).await,
        401
    );
    assert_eq!(
        app.status_after_change("/api/v1/me", &second, 401).await,
        401
    );
    assert_eq!(app.get("/api/v1/me", &third).await.status(), 200);
}

#[tokio::test]
async fn rotate_says_how_long_the_old_key_really_works() {
    let app = spawn_app().await;
    create(&app, "short-lived", &["--expires", "1h"]).await;
    create(&app, "long-lived", &[]).await;
    let text = |output: &std::process::Output| {
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };

    let capped = text(
        &app.cli(&["api", "rotate", "short-lived", "--grace", "7d"])
            .await,
    );
    assert!(capped.contains("its own expiry, not 7d more"), "{capped}");
    let shown = stdout_json(&app.cli(&["api", "show", "short-lived", "--json"]).await);
    let ends: Vec<&str> = shown["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["expires_at"].as_str())
        .collect();
    assert!(
        ends.iter().any(|end| capped.contains(end)),
        "the message names the old key's end: {capped} {ends:?}"
    );
    let full = text(
        &app.cli(&["api", "rotate", "long-lived", "--grace", "7d"])
            .await,
    );
    assert!(full.contains("the old key works for 7d more"), "{full}");
    let none = text(&app.cli(&["api", "rotate", "long-lived"]).await);
    assert!(none.contains("the old key stopped at once"), "{none}");
}

#[tokio::test]
async fn delete_holds_on_the_next_request() {
    let app = spawn_app().await;
    let key = create(&app, "doomed", &[]).await;
    app.get("/api/v1/me", &key).await;

    assert!(app.cli(&["api", "delete", "doomed"]).await.status.success());

    assert_eq!(app.status_after_change("/api/v1/me", &key, 401).await, 401);
    let missing = app.cli(&["api", "show", "doomed"]).await;
    assert_eq!(missing.status.code(), Some(3));
}

#[tokio::test]
async fn update_changes_settings_and_the_rate_limit_holds_on_the_next_request() {
    let app = spawn_app().await;
    let key = create(&app, "tuned", &[]).await;
    let updated = stdout_json(
        &app.cli(&[
            "api",
            "update",
            "tuned",
            "--rate-limit",
            "2",
            "--description",
            "Nightly stock sync",
            "--environment",
            "staging",
            "--json",
        ])
        .await,
    );
    assert_eq!(updated["api_user"]["rate_limit_per_minute"], 2);
    assert_eq!(updated["api_user"]["description"], "Nightly stock sync");
    assert_eq!(updated["api_user"]["environment"], "staging");
    let statuses = [
        app.get("/api/v1/me", &key).await.status(),
        app.get("/api/v1/me", &key).await.status(),
        app.get("/api/v1/me", &key).await.status(),
    ];
    assert_eq!(statuses.map(|s| s.as_u16()), [200, 200, 429]);

    // Nothing to change is a mistake in the command; a bad value changes nothing.
    assert_eq!(
        app.cli(&["api", "update", "tuned"]).await.status.code(),
        Some(2)
    );
    let refused = app
        .cli(&[
            "api",
            "update",
            "tuned",
            "--rate-limit",
            "0",
            "--description",
            "x",
        ])
        .await;
    assert_eq!(refused.status.code(), Some(1));
    let shown = stdout_json(&app.cli(&["api", "show", "tuned", "--json"]).await);
    assert_eq!(shown["description"], "Nightly stock sync");
    assert_eq!(
        app.cli(&["api", "update", "nobody", "--rate-limit", "5"])
            .await
            .status
            .code(),
        Some(3)
    );
}

#[tokio::test]
async fn scopes_sets_the_list_and_refuses_unknown_ones() {
    let app = spawn_app().await;
    let key = create(&app, "scoped", &[]).await;
    assert_eq!(app.get("/api/v1/orders", &key).await.status(), 403);

    let set = stdout_json(
        &app.cli(&[
            "api",
            "scopes",
            "scoped",
            "orders:read",
            "customers:read",
            "--json",
        ])
        .await,
    );
    assert_eq!(
        set["api_user"]["scopes"],
        serde_json::json!(["orders:read", "customers:read"])
    );
    assert_eq!(
        app.status_after_change("/api/v1/orders", &key, 200).await,
        200
    );
    assert_eq!(app.get("/api/v1/products", &key).await.status(), 403);

    let bad = app
        .cli(&["api", "scopes", "scoped", "orders:delete", "--json"])
        .await;
    assert_eq!(bad.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&bad.stderr).expect("JSON error on stderr");
    assert_eq!(error["error"]["code"], "invalid");
    let management = app
        .cli(&["api", "scopes", "scoped", "api_users:read"])
        .await;
    assert!(
        !management.status.success(),
        "management scopes need a management key"
    );
}

#[tokio::test]
async fn list_and_show_give_hints_never_keys() {
    let app = spawn_app().await;
    let key = create(&app, "listed", &[]).await;
    app.get("/api/v1/me", &key).await;

    let list = app.cli(&["api", "list"]).await;
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains("listed") && text.contains(&format!("kw_…{}", &key[key.len() - 4..])),
        "{text}"
    );
    assert!(!text.contains(&key));
    let json = stdout_json(
        &app.cli(&["api", "list", "--json", "--search", "list"])
            .await,
    );
    assert_eq!(json.as_array().expect("array").len(), 1);
    assert_eq!(json[0]["calls_24h"], 1);
    let human =
        String::from_utf8_lossy(&app.cli(&["api", "show", "listed"]).await.stdout).to_string();
    assert!(
        human.contains("127.0.0.1") && human.contains("products:read"),
        "{human}"
    );
}

#[tokio::test]
async fn history_shows_calls_and_filters_by_outcome() {
    let app = spawn_app().await;
    let key = create(&app, "audited", &[]).await;
    app.get("/api/v1/products", &key).await;
    app.get("/api/v1/orders", &key).await;

    let all = stdout_json(&app.cli(&["api", "history", "audited", "--json"]).await);
    assert_eq!(all.as_array().expect("rows").len(), 2);
    let refused = stdout_json(
        &app.cli(&[
            "api",
            "history",
            "audited",
            "--outcome",
            "refused",
            "--json",
        ])
        .await,
    );
    assert_eq!(refused[0]["outcome"], "insufficient_scope");
    let limited = stdout_json(
        &app.cli(&[
            "api",
            "history",
            "audited",
            "--limit",
            "1",
            "--outcome",
            "ok",
            "--json",
        ])
        .await,
    );
    assert_eq!(limited.as_array().expect("rows").len(), 1);
    assert_eq!(limited[0]["call"], "GET /api/v1/products");
    let text =
        String::from_utf8_lossy(&app.cli(&["api", "history", "audited"]).await.stdout).to_string();
    assert!(text.contains("insufficient_scope"), "{text}");
    // Every column has its header: the request id, the handle for support, is not dropped.
    let header = text.lines().next().expect("header");
    assert!(
        header.contains("USERNAME") && header.ends_with("REQUEST ID"),
        "{text}"
    );
    let request_id = all[0]["request_id"].as_str().expect("request id");
    assert!(text.contains(request_id), "{text}");
    // A mistyped name is told apart from a user with no calls.
    let typo = app.cli(&["api", "history", "audtied"]).await;
    assert_eq!(typo.status.code(), Some(3), "{typo:?}");
    assert!(
        String::from_utf8_lossy(&typo.stderr).contains("audtied"),
        "{typo:?}"
    );
}

#[tokio::test]
async fn tables_are_coloured_on_a_terminal_only() {
    let app = spawn_app().await;
    create(&app, "coloured", &[]).await;
    app.cli(&["api", "disable", "coloured"]).await;

    let piped = app.cli(&["api", "list"]).await;
    let piped = String::from_utf8_lossy(&piped.stdout);
    assert!(
        piped.contains("disabled") && !piped.contains('\x1b'),
        "{piped}"
    );

    let forced = app
        .cli_with_env(&["api", "list"], &[("CLICOLOR_FORCE", "1")])
        .await;
    let forced = String::from_utf8_lossy(&forced.stdout);
    assert!(
        forced.contains("\x1b[1mUSERNAME"),
        "bold header: {forced:?}"
    );
    assert!(
        forced.contains("\x1b[31mdisabled\x1b[0m"),
        "red status: {forced:?}"
    );

    let json = app
        .cli_with_env(&["api", "list", "--json"], &[("CLICOLOR_FORCE", "1")])
        .await;
    assert!(!json.stdout.contains(&0x1b), "JSON is never coloured");
    assert_eq!(stdout_json(&json)[0]["username"], "coloured");
}

#[tokio::test]
async fn completions_are_valid_shell_scripts() {
    let app = spawn_app().await;
    let bash = app.cli(&["completions", "bash"]).await;
    assert!(bash.status.success());
    let script = String::from_utf8_lossy(&bash.stdout).to_string();
    assert!(
        script.contains("keyward") && script.contains("rotate"),
        "{script}"
    );
    let path = app.dir.path().join("keyward.bash");
    std::fs::write(&path, &script).expect("write script");
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .expect("run bash -n");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let zsh = app.cli(&["completions", "zsh"]).await;
    assert!(String::from_utf8_lossy(&zsh.stdout).starts_with("#compdef keyward"));
    let unknown = app.cli(&["completions", "tcsh"]).await;
    assert_eq!(unknown.status.code(), Some(2));
}

#[tokio::test]
async fn sessions_lists_and_revokes_and_it_holds_on_the_next_request() {
    let app = spawn_app().await;
    let key = create(&app, "sessioned", &[]).await;
    let first = app.login("sessioned", &key).await;
    let second = app.login("sessioned", &key).await;

    let sessions = stdout_json(&app.cli(&["api", "sessions", "sessioned", "--json"]).await);
    assert_eq!(sessions.as_array().expect("sessions").len(), 2);
    let newest = sessions[0]["id"].as_i64().expect("id").to_string();

    assert!(
        app.cli(&["api", "sessions", "sessioned", "--revoke", &newest])
            .await
            .status
            .success()
    );
    assert_eq!(
        app.status_after_change("/api/v1/me", &second, 401).await,
        401
    );
    assert_eq!(app.get("/api/v1/me", &first).await.status(), 200);

    let all = stdout_json(
        &app.cli(&["api", "sessions", "sessioned", "--revoke-all", "--json"])
            .await,
    );
    assert_eq!(all["revoked"], 1);
    assert_eq!(
        app.status_after_change("/api/v1/me", &first, 401).await,
        401
    );
}

#[tokio::test]
async fn admin_create_and_passwd_read_the_password_from_stdin() {
    let app = spawn_app().await;

    let created = app
        .cli_with_stdin(
            &[
                "admin",
                "create",
                "--username",
                "shop-owner",
                "--role",
                "api_manager",
                "--json",
            ],
            Some("a long enough password\n"),
        )
        .await;
    let admin = stdout_json(&created);
    assert_eq!(admin["role"], "api_manager");
    let verified = keyward::credentials::admins::Admins::new(
        app.db.clone(),
        std::sync::Arc::new(keyward::clock::SystemClock),
    );
    let secret = |s: &str| keyward::domain::secret::Secret::new(s.to_owned());
    assert!(
        verified
            .verify("shop-owner", secret("a long enough password"))
            .await
            .expect("verify")
            .is_some()
    );

    assert!(
        app.cli_with_stdin(
            &["admin", "passwd", "shop-owner"],
            Some("another long password\n")
        )
        .await
        .status
        .success()
    );
    assert!(
        verified
            .verify("shop-owner", secret("a long enough password"))
            .await
            .expect("verify")
            .is_none()
    );
    assert!(
        verified
            .verify("shop-owner", secret("another long password"))
            .await
            .expect("verify")
            .is_some()
    );

    let short = app
        .cli_with_stdin(
            &["admin", "create", "--username", "weak", "--role", "viewer"],
            Some("short\n"),
        )
        .await;
    assert!(!short.status.success());
    let bad_role = app
        .cli_with_stdin(
            &["admin", "create", "--username", "x-role", "--role", "root"],
            Some("long enough password\n"),
        )
        .await;
    assert!(!bad_role.status.success());
}

#[tokio::test]
async fn history_prune_deletes_old_rows_only() {
    let app = spawn_app().await;
    let key = create(&app, "pruned", &[]).await;
    app.get("/api/v1/me", &key).await;

    let kept = stdout_json(
        &app.cli(&["history", "prune", "--older-than", "1h", "--json"])
            .await,
    );
    assert_eq!(kept["deleted"], 0);
    app.clock.advance(time::Duration::hours(2));
    app.get("/api/v1/me", &key).await;

    // An age of 0 would delete everything: refused, as a retention of 0 is.
    let zero = app.cli(&["history", "prune", "--older-than", "0"]).await;
    assert_eq!(zero.status.code(), Some(2));
    let said = String::from_utf8_lossy(&zero.stderr);
    assert!(said.contains("must be longer than 0"), "{said}");
    assert_eq!(app.history("pruned").await.len(), 2, "nothing was deleted");

    // The second call is stamped two hours "later" by the test clock; the CLI uses real time,
    // so a second from now, only the first call is older than a second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let pruned = stdout_json(
        &app.cli(&["history", "prune", "--older-than", "1s", "--json"])
            .await,
    );
    assert_eq!(pruned["deleted"], 1);
    assert_eq!(app.history("pruned").await.len(), 1);
}

/// The signal file beside a SQLite database, deleted under a running server, is made again at
/// its next sync and followed: a change from the command line still holds on the next request.
#[tokio::test]
async fn a_deleted_signal_file_is_followed_and_changes_still_hold_on_the_next_request() {
    let app = spawn_app().await;
    let Some(file) = app.database_url.strip_prefix("sqlite://") else {
        return;
    };
    let key = create(&app, "followed", &[]).await;
    std::fs::remove_file(format!("{file}-signal")).expect("delete the signal file");
    // The server's sync, once a second, notices.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(app.get("/api/v1/me", &key).await.status(), 200);
    assert!(
        app.cli(&["api", "disable", "followed"])
            .await
            .status
            .success()
    );
    assert_eq!(app.get("/api/v1/me", &key).await.status(), 401);
}

#[tokio::test]
async fn commands_take_their_settings_from_the_environment_before_the_file() {
    let app = spawn_app().await;
    let key = create(&app, "old", &[]).await;
    std::fs::write(
        app.dir.path().join("keyward.toml"),
        "history_retention = \"30d\"\n",
    )
    .expect("keyward.toml");
    app.clock.advance(time::Duration::days(-60));
    app.get("/api/v1/me", &key).await;

    // The environment's retention wins over the file's, as for `serve` and `keyward config`.
    let env = [("KEYWARD_HISTORY_RETENTION", "365d")];
    let kept = stdout_json(
        &app.cli_with_env(&["history", "prune", "--json"], &env)
            .await,
    );
    assert_eq!(kept["deleted"], 0, "{kept}");
    let pruned = stdout_json(&app.cli(&["history", "prune", "--json"]).await);
    assert_eq!(pruned["deleted"], 1, "the file's 30 days: {pruned}");

    // A bad value is refused under the variable's name.
    let env = [("KEYWARD_HISTORY_RETENTION", "banana")];
    let refused = app.cli_with_env(&["history", "prune"], &env).await;
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("for KEYWARD_HISTORY_RETENTION"), "{stderr}");

    // With automatic migration off, a command leaves an older schema to `keyward migrate`.
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("new.db").display());
    let off = [("KEYWARD_AUTO_MIGRATE", "false")];
    let args = ["api", "create", "--username", "erp"];
    let refused = crate::helpers::cli_at_with_env(&url, dir.path().into(), &args, &off).await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("keyward migrate"), "{stderr}");
    assert!(
        !dir.path().join("new.db").exists(),
        "no schemaless file left behind"
    );
    let migrated =
        crate::helpers::cli_at_with_env(&url, dir.path().into(), &["migrate"], &off).await;
    assert!(migrated.status.success());
    let created = crate::helpers::cli_at_with_env(&url, dir.path().into(), &args, &off).await;
    assert!(created.status.success(), "{created:?}");
}

#[tokio::test]
async fn errors_go_to_stderr_with_a_nonzero_exit() {
    let app = spawn_app().await;

    let missing = app.cli(&["api", "disable", "nobody", "--json"]).await;
    assert_eq!(missing.status.code(), Some(3));
    assert!(missing.stdout.is_empty());
    let error: Value = serde_json::from_slice(&missing.stderr).expect("json");
    assert_eq!(error["error"]["code"], "not_found");

    let usage = app.cli(&["api", "create"]).await;
    assert_eq!(usage.status.code(), Some(2));
    let usage = app.cli(&["api", "create", "--json"]).await;
    let error: Value = serde_json::from_slice(&usage.stderr).expect("json");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.ends_with("not provided: --username <USERNAME>")),
        "names what is missing: {error}"
    );
    let bad_duration = app.cli(&["api", "rotate", "x", "--grace", "forever"]).await;
    assert_eq!(bad_duration.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_duration.stderr).contains("90s"));
    let bad_address = app.cli(&["history", "list", "--ip", "notanip"]).await;
    assert_eq!(bad_address.status.code(), Some(2));

    // A database that cannot be opened is a failure (1), not a mistake in the command (2).
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}/no/such/dir/x.db", dir.path().display());
    let unopened = crate::helpers::cli_at(
        &url,
        dir.path().into(),
        &["api", "create", "--username", "erp", "--json"],
        None,
    )
    .await;
    assert_eq!(unopened.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&unopened.stderr).expect("json");
    assert_eq!(error["error"]["code"], "failed");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("cannot open")),
        "{error}"
    );
    // A PostgreSQL server that is not there: why, not only that the wait ran out.
    let refused = crate::helpers::cli_at(
        "postgres://keyward@127.0.0.1:1/keyward",
        dir.path().into(),
        &["api", "list"],
        None,
    )
    .await;
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("Connection refused"), "{stderr}");
}

#[tokio::test]
async fn a_mistyped_database_path_is_refused_not_made_except_by_a_first_addition() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("kewyard.db");
    let url = format!("sqlite://{}", file.display());
    let run =
        |args: &'static [&'static str]| crate::helpers::cli_at(&url, dir.path().into(), args, None);
    for args in [
        &["api", "list"][..],
        &["api", "show", "erp"],
        &["api", "disable", "erp"],
        &["api", "history", "erp"],
        &["history", "list"],
        &["webhook", "list"],
        &["admin", "passwd", "admin"],
        &["export", "-"],
    ] {
        let refused = run(args).await;
        assert_eq!(refused.status.code(), Some(3), "{args:?}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            stderr.contains(&format!("no database at {}", file.display())),
            "{args:?}: {stderr}"
        );
        assert!(!file.exists(), "{args:?} made the file");
    }
    let refused = run(&["api", "list", "--json"]).await;
    let error: Value = serde_json::from_slice(&refused.stderr).expect("json");
    assert_eq!(error["error"]["code"], "not_found");
    // A dry run plans every migration without making the file; an import of a file that is not
    // there makes no database either.
    let planned = stdout_json(&run(&["migrate", "--dry-run", "--json"]).await);
    assert!(
        planned["pending"].as_array().is_some_and(|p| !p.is_empty()),
        "{planned}"
    );
    let unread = run(&["import", "no-such-export.jsonl"]).await;
    assert_eq!(unread.status.code(), Some(1));
    assert!(!file.exists(), "made by a dry run or a failed import");
    // A URL that names no file is a mistake in the command.
    let nameless =
        crate::helpers::cli_at("sqlite://", dir.path().into(), &["api", "list"], None).await;
    assert_eq!(nameless.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&nameless.stderr).contains("names no file"));

    // The first API user of a new store makes its file, and says so.
    let created = run(&["api", "create", "--username", "erp"]).await;
    assert!(created.status.success(), "{created:?}");
    let stderr = String::from_utf8_lossy(&created.stderr);
    assert!(
        stderr.contains(&format!("note: made a new database at {}", file.display())),
        "{stderr}"
    );
    let listed = run(&["api", "list", "--json"]).await;
    assert!(listed.status.success());
    assert!(listed.stderr.is_empty(), "no note once the file is there");
    assert_eq!(stdout_json(&listed)[0]["username"], "erp");
}

#[tokio::test]
async fn a_refusal_no_user_can_be_tied_to_is_found_by_its_request_id() {
    let app = spawn_app().await;
    let response = app.get("/api/v1/me", "kw_not-a-real-key").await;
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();

    let rows = stdout_json(
        &app.cli(&["history", "list", "--request-id", &request_id, "--json"])
            .await,
    );

    assert_eq!(rows.as_array().expect("rows").len(), 1);
    assert_eq!(rows[0]["outcome"], "malformed_credentials");
    assert!(
        rows[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("malformed key")),
        "the outcome in words, as the Management API gives it: {rows}"
    );
    let refused = stdout_json(
        &app.cli(&["history", "list", "--outcome", "refused", "--json"])
            .await,
    );
    assert_eq!(refused.as_array().expect("rows").len(), 1);
}

#[tokio::test]
async fn the_history_of_a_deleted_user_stays_readable() {
    let app = spawn_app().await;
    let key = create(&app, "gone-soon", &[]).await;
    app.get("/api/v1/me", &key).await;
    assert!(
        app.cli(&["api", "delete", "gone-soon"])
            .await
            .status
            .success()
    );

    let rows = stdout_json(&app.cli(&["api", "history", "gone-soon", "--json"]).await);

    assert_eq!(rows.as_array().expect("rows").len(), 1);
    assert_eq!(rows[0]["call"], "GET /api/v1/me");
}

#[tokio::test]
async fn a_second_roll_says_which_key_it_stopped() {
    let app = spawn_app().await;
    create(&app, "double-roll", &[]).await;
    stdout_json(
        &app.cli(&["api", "rotate", "double-roll", "--grace", "1h", "--json"])
            .await,
    );

    let second = stdout_json(
        &app.cli(&["api", "rotate", "double-roll", "--grace", "1h", "--json"])
            .await,
    );

    assert_eq!(second["stopped_now"].as_array().expect("hints").len(), 1);
    let text = app
        .cli(&["api", "rotate", "double-roll", "--grace", "1h"])
        .await;
    assert!(String::from_utf8_lossy(&text.stdout).contains("at most two keys live at once"));
}

#[tokio::test]
async fn usage_errors_are_json_with_json_and_unknown_sessions_are_not_found() {
    let app = spawn_app().await;
    create(&app, "json-errors", &[]).await;

    let usage = app
        .cli(&[
            "--json",
            "api",
            "rotate",
            "json-errors",
            "--grace",
            "forever",
        ])
        .await;
    assert_eq!(usage.status.code(), Some(2));
    let error: Value = serde_json::from_slice(&usage.stderr).expect("a JSON error");
    assert_eq!(error["error"]["code"], "bad_request");

    let missing = app
        .cli(&["api", "sessions", "json-errors", "--revoke", "999"])
        .await;
    assert_eq!(missing.status.code(), Some(3));
}
