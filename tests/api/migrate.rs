//! `keyward migrate`: pending migrations applied once and reported, safe to run several at once,
//! and servers that leave the schema to the operator (`auto_migrate = false`).

use crate::helpers::{cli_at, session_number, stdout_json, test_database};
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

#[tokio::test]
async fn migrators_started_together_on_an_empty_database_each_succeed() {
    // On PostgreSQL, two processes creating the migrations' own table at once collided in the
    // catalog; a few fresh databases make the collision likely.
    for round in 0..3 {
        let dir = tempfile::tempdir().expect("dir");
        let (url, _database) = test_database(dir.path()).await;
        let cli = || cli_at(&url, dir.path().into(), &["migrate", "--json"], None);
        let (a, b, c) = tokio::join!(cli(), cli(), cli());
        for run in [&a, &b, &c] {
            let report = stdout_json(run);
            assert!(
                versions(&report["pending"]).is_empty(),
                "round {round}: {report}"
            );
        }
    }
}

/// Creates the API user `after` with the command line; returns its key.
async fn user_after<F, Fut>(cli: &F) -> String
where
    F: Fn(&'static [&'static str]) -> Fut,
    Fut: Future<Output = std::process::Output>,
{
    let args = &[
        "api",
        "create",
        "--username",
        "after",
        "--ip",
        "127.0.0.1",
        "--json",
    ];
    let created = stdout_json(&cli(args).await);
    created["key"].as_str().expect("key").to_owned()
}

/// A database migrated to `version` only, then `setup` run on it; returns what `read` reads.
async fn at_version(url: &str, version: i64, setup: String, read: &str) -> i64 {
    macro_rules! on {
        ($pool:expr, $migrations:literal) => {{
            let pool = $pool.await.expect("connect");
            sqlx::migrate!($migrations)
                .run_to(version, &pool)
                .await
                .expect("migrate");
            sqlx::raw_sql(sqlx::AssertSqlSafe(setup))
                .execute(&pool)
                .await
                .expect("setup");
            sqlx::query_scalar(sqlx::AssertSqlSafe(read.to_owned()))
                .fetch_one(&pool)
                .await
                .expect("read")
        }};
    }
    if url.starts_with("postgres") {
        on!(sqlx::PgPool::connect(url), "./migrations/postgres")
    } else {
        on!(
            sqlx::SqlitePool::connect(&format!("{url}?mode=rwc")),
            "./migrations/sqlite"
        )
    }
}

/// The schema before session tokens carried their session's number, with one live session and
/// a newer one already purged; returns the purged one's number.
async fn previous_schema_with_a_session(url: &str) -> i64 {
    let postgres = url.starts_with("postgres");
    let digest = |byte: char| {
        let hex = byte.to_string().repeat(64);
        if postgres {
            format!("decode('{hex}', 'hex')")
        } else {
            format!("X'{hex}'")
        }
    };
    let setup = format!(
        "INSERT INTO api_users (username, environment, status, rate_limit_per_minute, \
         created_at, updated_at) VALUES ('before', 'production', 'enabled', 60, 0, 0); \
         INSERT INTO api_keys (api_user_id, key_hash, hint, created_at) \
         SELECT id, {key}, 'kw_…abcd', 0 FROM api_users; \
         INSERT INTO api_sessions (api_user_id, api_key_id, token_hash, ip, created_at, \
         last_seen_at, idle_timeout_s, expires_at) \
         SELECT api_user_id, id, digest, '127.0.0.1', 0, 9000000000000000, 3600, 9000000000000000 \
         FROM api_keys, (SELECT {first} AS digest UNION ALL SELECT {second}) AS digests; \
         DELETE FROM api_sessions WHERE id = (SELECT max(id) FROM api_sessions)",
        key = digest('e'),
        first = digest('a'),
        second = digest('b'),
    );
    // Numbers are consecutive here: the purged one follows the live one.
    at_version(url, 6, setup, "SELECT max(id) + 1 FROM api_sessions").await
}

#[tokio::test]
async fn upgrading_to_numbered_session_tokens_ends_older_sessions_and_never_reuses_a_number() {
    let dir = tempfile::tempdir().expect("dir");
    let (url, _database) = test_database(dir.path()).await;
    let purged = previous_schema_with_a_session(&url).await;
    let cli = |args: &'static [&'static str]| cli_at(&url, dir.path().into(), args, None);

    let upgrade = stdout_json(&cli(&["migrate", "--json"]).await);
    assert_eq!(versions(&upgrade["applied"]).first(), Some(&7), "{upgrade}");
    // It was open until now (last used and expiring far in the future); a token of the old
    // form cannot be read any more, so the upgrade ends it.
    let open = stdout_json(&cli(&["api", "sessions", "before", "--json"]).await);
    assert_eq!(open, serde_json::json!([]), "{open}");

    let key = user_after(&cli).await;
    let node = Node::start(dir.path(), &url, "warn").await;
    let token = node.login("after", &key).await;
    let number = session_number(&token);
    assert!(
        number > purged,
        "{number} after {purged}: a number is never given twice"
    );
    let me = reqwest::Client::new()
        .get(node.url("/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("me");
    assert_eq!(me.status(), 200);
    node.stop().await;
}

/// A session made before the sessions' table was last rebuilt (schema 7): the user, a key, an
/// allowed address, the open session, and session numbers reserved up to 5,000. Returns the key
/// and the session's token.
async fn schema_7_with_an_open_session(url: &str) -> (String, String) {
    use keyward::domain::api_key::ApiKey;
    use keyward::domain::secret::SecretHash;
    let generated = ApiKey::generate(64).expect("a key");
    let key = generated.expose();
    let secret = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEfGh";
    let postgres = url.starts_with("postgres");
    let bytes = |digest: SecretHash| {
        let hex = hex::encode(digest.as_bytes());
        if postgres {
            format!("decode('{hex}', 'hex')")
        } else {
            format!("X'{hex}'")
        }
    };
    let reserve = if postgres {
        "SELECT setval(pg_get_serial_sequence('api_sessions', 'id'), 5000)"
    } else {
        "UPDATE sqlite_sequence SET seq = 5000 WHERE name = 'api_sessions'"
    };
    let setup = format!(
        "INSERT INTO api_users (username, environment, status, rate_limit_per_minute, \
         created_at, updated_at) VALUES ('before', 'production', 'enabled', 60, 0, 0); \
         INSERT INTO api_ip_rules (api_user_id, rule, created_at) \
         SELECT id, '127.0.0.1', 0 FROM api_users; \
         INSERT INTO api_keys (api_user_id, key_hash, hint, created_at) \
         SELECT id, {key_hash}, '{hint}', 0 FROM api_users; \
         INSERT INTO api_sessions (api_user_id, api_key_id, token_hash, ip, created_at, \
         last_seen_at, idle_timeout_s, expires_at) \
         SELECT api_user_id, id, {token_hash}, '127.0.0.1', 0, 9000000000000000, 3600, \
         9000000000000000 FROM api_keys; \
         {reserve};",
        key_hash = bytes(generated.hash()),
        hint = generated.hint(),
        token_hash = bytes(SecretHash::of(secret)),
    );
    let number = at_version(url, 7, setup, "SELECT max(id) FROM api_sessions").await;
    (key.to_owned(), format!("kwt_{secret}{number}"))
}

#[tokio::test]
async fn a_session_made_before_the_sessions_table_was_rebuilt_still_works_and_ends_with_its_key() {
    let dir = tempfile::tempdir().expect("dir");
    let (url, _database) = test_database(dir.path()).await;
    let (key, token) = schema_7_with_an_open_session(&url).await;
    let cli = |args: &'static [&'static str]| cli_at(&url, dir.path().into(), args, None);
    let upgrade = stdout_json(&cli(&["migrate", "--json"]).await);
    assert!(versions(&upgrade["pending"]).is_empty(), "{upgrade}");
    let applied = versions(&upgrade["applied"]);
    if url.starts_with("postgres") {
        assert_eq!(applied, [10, 11, 12], "{upgrade}");
    } else {
        assert_eq!(applied, [8, 9, 10, 11, 12], "the copy: {upgrade}");
    }

    let node = Node::start(dir.path(), &url, "warn").await;
    let client = reqwest::Client::new();
    let me = |credential: String| {
        client
            .get(node.url("/api/v1/me"))
            .bearer_auth(credential)
            .send()
    };
    let before = me(token.clone()).await.expect("me");
    assert_eq!(before.status(), 200, "the session outlived the rebuild");

    // Reported leaked, the key is revoked, and the session made with it ends with it.
    let leak = client
        .post(node.url("/api/v1/leaks"))
        .json(&serde_json::json!({ "keys": [key] }))
        .send()
        .await
        .expect("leak");
    assert_eq!(leak.status(), 200);
    assert_eq!(me(token).await.expect("me").status(), 401);
    let history = stdout_json(&cli(&["api", "history", "before", "--json"]).await);
    assert_eq!(
        history[0]["outcome"], "revoked_token",
        "refused as a session that ended, not only as one whose key did: {history}"
    );

    // Numbers reserved before the rebuild are never given out after it.
    let fresh = node.login("after", &user_after(&cli).await).await;
    assert!(session_number(&fresh) > 5000, "{}", session_number(&fresh));
    node.stop().await;
}

/// An `Idempotency-Key` claimed by a binary from before claims were marked, and left without an
/// answer (its server stopped): whether its change committed is unknown, so after the upgrade
/// its retries are told it may have taken effect, and it is never run again.
#[tokio::test]
async fn a_claim_left_unanswered_before_claims_were_marked_is_never_run_again() {
    use keyward::domain::api_key::ApiKey;
    let dir = tempfile::tempdir().expect("dir");
    let (url, _database) = test_database(dir.path()).await;
    let generated = ApiKey::generate(64).expect("a key");
    let body = serde_json::json!({"name": "Ada", "email": "ada@example.com"});
    let fingerprint = crate::helpers::post_fingerprint("/api/v1/customers", &body);
    let postgres = url.starts_with("postgres");
    let bytes = |raw: &[u8]| {
        let hex = hex::encode(raw);
        if postgres {
            format!("decode('{hex}', 'hex')")
        } else {
            format!("X'{hex}'")
        }
    };
    // An hour ago: well past `request_timeout`, well within the key's day.
    let claimed_at =
        (time::OffsetDateTime::now_utc() - time::Duration::hours(1)).unix_timestamp() * 1_000_000;
    let setup = format!(
        "INSERT INTO api_users (username, environment, status, scopes, rate_limit_per_minute, \
         created_at, updated_at) VALUES ('before', 'production', 'enabled', 'customers:write', 60, 0, 0); \
         INSERT INTO api_ip_rules (api_user_id, rule, created_at) \
         SELECT id, '127.0.0.1', 0 FROM api_users; \
         INSERT INTO api_keys (api_user_id, key_hash, hint, created_at) \
         SELECT id, {key_hash}, '{hint}', 0 FROM api_users; \
         INSERT INTO idempotency_keys (api_user_id, idem_key, fingerprint, created_at) \
         SELECT id, 'customer-ada', {fingerprint}, {claimed_at} FROM api_users",
        key_hash = bytes(generated.hash().as_bytes()),
        hint = generated.hint(),
        fingerprint = bytes(&fingerprint),
    );
    at_version(&url, 10, setup, "SELECT count(*) FROM idempotency_keys").await;
    let cli = |args: &'static [&'static str]| cli_at(&url, dir.path().into(), args, None);
    let upgrade = stdout_json(&cli(&["migrate", "--json"]).await);
    assert_eq!(versions(&upgrade["applied"]), [11, 12], "{upgrade}");

    let node = Node::start(dir.path(), &url, "warn").await;
    let retry = reqwest::Client::new()
        .post(node.url("/api/v1/customers"))
        .bearer_auth(generated.expose())
        .header("Idempotency-Key", "customer-ada")
        .json(&body)
        .send()
        .await
        .expect("retry");
    assert_eq!(retry.status(), 409);
    // Its answer might yet come, were its server only held up: a retry later is worth it.
    assert!(retry.headers().contains_key("retry-after"));
    let error: Value = retry.json().await.expect("json");
    let message = error["error"]["message"].as_str().expect("message");
    assert!(message.contains("took effect"), "{message}");
    assert_eq!(
        error["error"]["details"][0]["message"],
        "took effect without a stored answer"
    );
    let customers = reqwest::Client::new()
        .get(node.url("/api/v1/customers"))
        .bearer_auth(generated.expose())
        .send()
        .await
        .expect("list");
    let customers: Value = customers.json().await.expect("json");
    assert_eq!(customers["data"], serde_json::json!([]), "not run again");
    node.stop().await;
}
