//! Scale runs: auth with 10 and with 100,000 API users, with 1,000,000 sessions in the table,
//! and the history queries at 10,000,000 rows.

use crate::Keyward;
use crate::wrk::{Request, Wrk};
use sqlx::SqlitePool;
use std::path::Path;
use std::time::Instant;

async fn execute(pool: &SqlitePool, sql: &'static str, binds: &[i64]) -> Result<(), String> {
    let mut query = sqlx::query(sql);
    for value in binds {
        query = query.bind(*value);
    }
    query
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(|e| format!("{e}: {sql}"))
}

/// Copies what a bulk insert left in the write-ahead log into the database before a
/// measurement: otherwise the server's checkpointer copies it back during the run, and the run
/// measures that instead of the auth with a larger table.
async fn settle(pool: &SqlitePool) -> Result<(), String> {
    execute(pool, "PRAGMA wal_checkpoint(TRUNCATE)", &[]).await
}

/// Adds `count` API users, each with a key and an IP rule, none of them usable.
async fn add_users(pool: &SqlitePool, from: i64, count: i64) -> Result<(), String> {
    execute(
        pool,
        "WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1 + ?2 - 1) \
         INSERT INTO api_users (username, description, environment, status, scopes, rate_limit_per_minute, \
         management, created_at, updated_at) \
         SELECT printf('filler%07d', i), 'scale run', 'production', 'enabled', 'products:read', 600, 0, 0, 0 FROM n",
        &[from, count],
    )
    .await?;
    execute(
        pool,
        "INSERT INTO api_keys (api_user_id, key_hash, hint, imported, created_at) \
         SELECT id, randomblob(32), 'kw_…fill', 0, 0 FROM api_users u WHERE username LIKE 'filler%' \
         AND NOT EXISTS (SELECT 1 FROM api_keys k WHERE k.api_user_id = u.id)",
        &[],
    )
    .await?;
    execute(
        pool,
        "INSERT OR IGNORE INTO api_ip_rules (api_user_id, rule, created_at) \
         SELECT id, '192.0.2.1', 0 FROM api_users WHERE username LIKE 'filler%'",
        &[],
    )
    .await
}

fn micros_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

async fn millis_of_cli(keyward: &Keyward, args: &[&str]) -> Result<f64, String> {
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        keyward.cli(args)?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// The median time of five answers to `path`, each on a new connection.
fn millis_of_http(keyward: &Keyward, path: &str, key: &str) -> Result<f64, String> {
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let (status, body) = crate::http::call(keyward.server.port, "GET", path, Some(key), None)?;
        if status != 200 {
            return Err(format!("GET {path}: {status} {body}"));
        }
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

pub async fn run(
    keyward: &Keyward,
    wrk: &Wrk<'_>,
    _scratch: &Path,
) -> Result<Vec<(String, String)>, String> {
    let pool = SqlitePool::connect(&keyward.database_url)
        .await
        .map_err(|e| e.to_string())?;
    let me = |secret: &str| Request {
        method: "GET",
        url: keyward.url("/api/v1/me"),
        headers: vec![("Authorization", format!("Bearer {secret}"))],
        body: None,
    };
    let mut results = Vec::new();
    let mut measure = |name: String, load: crate::wrk::Load| {
        println!(
            "{name}: {:.0} req/s, p99 {:.2} ms",
            load.requests_per_sec, load.p99_ms
        );
        let refused = crate::report::non_2xx(&load);
        results.push((
            name,
            format!(
                "{} req/s, p99 {:.2} ms{refused}",
                crate::report::thousands(load.requests_per_sec),
                load.p99_ms
            ),
        ));
    };

    // Each run calls as an API user of its own: the scenarios before have spent the bench
    // user's allowance, and refused calls would be measured instead.
    println!("\nscale: 10 API users");
    let key = keyward.api_user("scale-10")?;
    add_users(&pool, 1, 8).await?;
    measure(
        "`GET /api/v1/me` (key) with 10 API users".into(),
        wrk.run("scale-10", &me(&key))?,
    );

    println!("scale: 100,000 API users");
    let key = keyward.api_user("scale-100k")?;
    add_users(&pool, 9, 99_989).await?;
    settle(&pool).await?;
    measure(
        "`GET /api/v1/me` (key) with 100,000 API users".into(),
        wrk.run("scale-100k", &me(&key))?,
    );

    println!("scale: 1,000,000 sessions");
    let key = keyward.api_user("scale-sessions")?;
    let login = serde_json::json!({"username": "scale-sessions", "key": key}).to_string();
    let (_, text) = crate::http::call(
        keyward.server.port,
        "POST",
        "/api/v1/login",
        None,
        Some(&login),
    )?;
    let token: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let token = token["api_token"].as_str().ok_or("no token")?.to_owned();
    let now = micros_now();
    for _ in 0..10 {
        execute(
            &pool,
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) \
             INSERT INTO api_sessions (api_user_id, api_key_id, token_hash, ip, created_at, last_seen_at, \
             idle_timeout_s, expires_at) \
             SELECT (SELECT min(id) FROM api_users WHERE username LIKE 'filler%'), \
                    (SELECT min(k.id) FROM api_keys k JOIN api_users u ON u.id = k.api_user_id WHERE u.username LIKE 'filler%'), \
                    randomblob(32), '192.0.2.1', ?1, ?1, 3600, ?1 + 86400000000 FROM n",
            &[now],
        )
        .await?;
    }
    settle(&pool).await?;
    measure(
        "`GET /api/v1/me` (token) with 1,000,000 sessions".into(),
        wrk.run("scale-sessions", &me(&token))?,
    );

    println!("scale: 10,000,000 history rows (this takes a while)");
    let bench_id: i64 = sqlx::query_scalar("SELECT id FROM api_users WHERE username = 'bench'")
        .fetch_one(&pool)
        .await
        .map_err(|e| e.to_string())?;
    for chunk in 0..10i64 {
        execute(
            &pool,
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000) \
             INSERT INTO api_history (api_user_id, username, key_hint, session_id, call, ip, status, outcome, \
             date_added, date_modified, request_id) \
             SELECT CASE WHEN i % 4 = 0 THEN ?1 ELSE (i % 1000) + 2 END, 'filler', 'kw_…fill', NULL, \
                    'GET /api/v1/me', '198.51.100.' || (i % 250), CASE WHEN i % 10 = 0 THEN 401 ELSE 200 END, \
                    CASE WHEN i % 10 = 0 THEN 'wrong_key' ELSE 'ok' END, \
                    ?2 - (10000000 - (?3 * 1000000 + i)) * 1000, ?2 - (10000000 - (?3 * 1000000 + i)) * 1000 + 800, \
                    printf('%032x', ?3 * 1000000 + i) FROM n",
            &[bench_id, now, chunk],
        )
        .await?;
    }
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM api_history")
        .fetch_one(&pool)
        .await
        .map_err(|e| e.to_string())?;
    let name = format!(
        "`keyward api history bench --limit 50` at {} history rows (whole process)",
        crate::report::thousands(total as f64)
    );
    let ms = millis_of_cli(
        keyward,
        &["api", "history", "bench", "--limit", "50", "--json"],
    )
    .await?;
    println!("{name}: {ms:.1} ms");
    results.push((name, format!("{ms:.1} ms")));
    let name = "… with `--outcome refused`".to_owned();
    let ms = millis_of_cli(
        keyward,
        &[
            "api",
            "history",
            "bench",
            "--limit",
            "50",
            "--outcome",
            "refused",
            "--json",
        ],
    )
    .await?;
    println!("{name}: {ms:.1} ms");
    results.push((name, format!("{ms:.1} ms")));
    // The same pages over HTTP, as the Management API serves them (and the console reads them).
    let ops = keyward.cli(&[
        "api",
        "create",
        "--username",
        "bench-ops",
        "--management",
        "--scope",
        "api_users:read",
        "--ip",
        "127.0.0.1",
        "--json",
    ])?;
    let ops = ops["key"].as_str().ok_or("no management key")?.to_owned();
    for (name, path) in [
        (
            "`GET /api/v1/api-users/bench/history?limit=50` at the same size",
            "/api/v1/api-users/bench/history?limit=50",
        ),
        (
            "… with `outcome=refused`",
            "/api/v1/api-users/bench/history?limit=50&outcome=refused",
        ),
    ] {
        let ms = millis_of_http(keyward, path, &ops)?;
        println!("{name}: {ms:.1} ms");
        results.push((name.to_owned(), format!("{ms:.1} ms")));
    }
    let start = Instant::now();
    let deep: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT id FROM api_history WHERE api_user_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT 50)",
    )
    .bind(bench_id)
    .bind(total / 2)
    .fetch_one(&pool)
    .await
    .map_err(|e| e.to_string())?;
    let name = "a page of 50 rows from the middle of the history (keyset query)".to_owned();
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    println!("{name}: {ms:.2} ms ({deep} rows)");
    results.push((name, format!("{ms:.2} ms")));
    pool.close().await;
    Ok(results)
}
