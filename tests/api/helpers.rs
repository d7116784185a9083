//! `spawn_app()`: the real server on port 0 against a fresh database, with typed helpers.
//!
//! The database is a SQLite file in a temporary directory, or, when `KEYWARD_TEST_POSTGRES_URL`
//! names a PostgreSQL server (`postgres://keyward@127.0.0.1:55432/postgres`), a database of its
//! own on that server, created for the test and dropped after it.

use keyward::clock::ManualClock;
use keyward::config::{Config, FileConfig, Overrides};
use keyward::credentials::{CreateApiUser, Credentials};
use keyward::domain::admin::Actor;
use keyward::domain::history::{HistoryQuery, HistoryRecord};
use keyward::startup::App;
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;
use tokio::sync::oneshot;

pub struct TestApp {
    pub addr: SocketAddr,
    /// `/metrics` on a listener of its own, when the settings asked for one.
    pub metrics_addr: Option<SocketAddr>,
    pub client: Client,
    pub clock: ManualClock,
    pub credentials: Credentials,
    pub webhooks: keyward::webhooks::Webhooks,
    pub db: keyward::store::Db,
    pub database_url: String,
    pub dir: TempDir,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// Declared last, so it is dropped after everything that uses it.
    postgres: Option<TestDatabase>,
}

pub struct Settings {
    pub trusted_proxies: Vec<&'static str>,
    pub login_failures_per_ip: u32,
    pub login_failures_per_username: u32,
    pub request_timeout: &'static str,
    pub metrics_listen: &'static str,
    /// A database URL of the test's own instead of a fresh file (or PostgreSQL database).
    pub database_url: Option<&'static str>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            login_failures_per_ip: 20,
            login_failures_per_username: 10,
            request_timeout: "30s",
            metrics_listen: "main",
            database_url: None,
        }
    }
}

/// The webhook key of tests on PostgreSQL, for the server and the command line alike.
pub const TEST_WEBHOOK_KEY: &str =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Settings::default()).await
}

pub async fn spawn_app_with(settings: Settings) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let (database_url, postgres) = match settings.database_url {
        Some(url) => (url.to_owned(), None),
        None => test_database(dir.path()).await,
    };
    let overrides = Overrides {
        listen: Some("127.0.0.1:0".parse().expect("addr")),
        trusted_proxies: Some(
            settings
                .trusted_proxies
                .iter()
                .map(|p| p.parse().expect("cidr"))
                .collect(),
        ),
        login_failures_per_ip: Some(settings.login_failures_per_ip),
        login_failures_per_username: Some(settings.login_failures_per_username),
        request_timeout: Some(settings.request_timeout.parse().expect("duration")),
        metrics_listen: Some(settings.metrics_listen.parse().expect("metrics_listen")),
        ..Overrides::default()
    };
    let mut config = Config::resolve(Some(database_url.clone()), overrides, FileConfig::default())
        .expect("config");
    config.admin_password = Some(keyward::domain::secret::Secret::new(
        "test-admin-password".into(),
    ));
    // PostgreSQL has no file beside the database for the webhook key: the tests give one, as
    // an operator must.
    if postgres.is_some() {
        config.webhook_key = Some(keyward::domain::secret::Secret::new(
            TEST_WEBHOOK_KEY.into(),
        ));
    }
    let clock = ManualClock::new();
    let app = App::build(&config, Arc::new(clock.clone()))
        .await
        .expect("the app builds");
    let addr = app.local_addr();
    let metrics_addr = app.metrics_addr();
    let state = app.state().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(
        async move {
            let _ = stopped.await;
        },
        std::future::pending(),
    ));
    let client = Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let test = TestApp {
        addr,
        metrics_addr,
        client,
        clock,
        credentials: state.credentials.clone(),
        webhooks: state.webhooks.clone(),
        db: state.db.clone(),
        database_url,
        dir,
        stop: Some(stop),
        server: Some(server),
        postgres,
    };
    test.wait_until_healthy().await;
    test
}

impl TestApp {
    pub fn on_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// The status of `GET path` with `secret` once a change made by another process (the
    /// CLI) has had its time to reach this server: its very next request on SQLite, whose
    /// signal file it reads on every request; within the promised second on PostgreSQL, where
    /// the server learns of other processes' changes from a notification (milliseconds, but
    /// delivered apart from the CLI's exit, so not always before the test's next call).
    pub async fn status_after_change(&self, path: &str, secret: &str, expected: u16) -> u16 {
        let deadline = std::time::Instant::now() + Duration::from_millis(1500);
        loop {
            let status = self.get(path, secret).await.status().as_u16();
            if status == expected || !self.on_postgres() || std::time::Instant::now() > deadline {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Everything the database holds, as text, for tests that look for secrets in it: the
    /// SQLite files byte for byte, or every row of every PostgreSQL table with its binary
    /// columns also read as text.
    pub async fn stored_text(&self) -> String {
        match &self.postgres {
            Some(database) => database.dump().await,
            None => {
                let mut bytes = Vec::new();
                for entry in std::fs::read_dir(self.dir.path()).expect("dir") {
                    bytes.extend(std::fs::read(entry.expect("entry").path()).expect("read"));
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }
        }
    }

    pub fn admins(&self) -> keyward::credentials::admins::Admins {
        keyward::credentials::admins::Admins::new(
            self.db.clone(),
            std::sync::Arc::new(self.clock.clone()),
        )
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn wait_until_healthy(&self) {
        for _ in 0..200 {
            if let Ok(response) = self.client.get(self.url("/healthz")).send().await
                && response.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the server did not become healthy");
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server result");
        }
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// A call authenticated with `Authorization: Bearer <secret>`.
    pub fn bearer(&self, method: Method, path: &str, secret: &str) -> RequestBuilder {
        self.request(method, path).bearer_auth(secret)
    }

    pub async fn get(&self, path: &str, secret: &str) -> Response {
        self.bearer(Method::GET, path, secret)
            .send()
            .await
            .expect("request")
    }

    /// `get`, read as JSON.
    pub async fn get_json(&self, path: &str, secret: &str) -> Value {
        self.get(path, secret).await.json().await.expect("json")
    }

    pub async fn post(&self, path: &str, secret: &str, body: &Value) -> Response {
        self.bearer(Method::POST, path, secret)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Creates an API user allowed from loopback and returns its key.
    pub async fn api_user(&self, username: &str, scopes: &[&str]) -> String {
        self.api_user_with(CreateApiUser {
            username: username.to_owned(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            ips: vec!["127.0.0.1".to_owned(), "::1".to_owned()],
            ..CreateApiUser::default()
        })
        .await
    }

    pub async fn api_user_with(&self, request: CreateApiUser) -> String {
        let issued = self
            .credentials
            .create(&Actor::system(), request)
            .await
            .expect("create api user");
        issued.key.expose().to_owned()
    }

    pub async fn login(&self, username: &str, key: &str) -> String {
        let response = self
            .request(Method::POST, "/api/v1/login")
            .json(&serde_json::json!({ "username": username, "key": key }))
            .send()
            .await
            .expect("login");
        assert_eq!(response.status(), 200, "login of {username}");
        let body: Value = response.json().await.expect("json");
        body["api_token"].as_str().expect("api_token").to_owned()
    }

    /// The newest history rows of `username`, newest first.
    pub async fn history(&self, username: &str) -> Vec<HistoryRecord> {
        self.credentials
            .history(
                username,
                HistoryQuery {
                    limit: 100,
                    ..HistoryQuery::default()
                },
            )
            .await
            .expect("history")
    }

    /// All history rows, newest first.
    pub async fn all_history(&self) -> Vec<HistoryRecord> {
        self.db
            .history(&HistoryQuery {
                limit: 1000,
                ..HistoryQuery::default()
            })
            .await
            .expect("history")
    }

    /// The outcome of the newest history row.
    pub async fn last_outcome(&self) -> String {
        self.all_history()
            .await
            .first()
            .expect("a history row")
            .outcome
            .clone()
    }

    /// Runs the `keyward` binary against this app's database. Async, so the server in this
    /// test's runtime keeps serving while the process runs.
    pub async fn cli(&self, args: &[&str]) -> Output {
        self.cli_with_stdin(args, None).await
    }

    pub async fn cli_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        cli_at(&self.database_url, self.dir.path().into(), args, stdin).await
    }

    /// Runs the CLI with extra environment variables, such as `CLICOLOR_FORCE`.
    pub async fn cli_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        cli_process(&self.database_url, self.dir.path().into(), args, None, env).await
    }
}

pub async fn cli_at(
    database_url: &str,
    cwd: PathBuf,
    args: &[&str],
    stdin: Option<&str>,
) -> Output {
    cli_process(database_url, cwd, args, stdin, &[]).await
}

/// `cli_at` with extra environment variables, which win over those set here.
pub async fn cli_at_with_env(
    database_url: &str,
    cwd: PathBuf,
    args: &[&str],
    env: &[(&str, &str)],
) -> Output {
    cli_process(database_url, cwd, args, None, env).await
}

async fn cli_process(
    database_url: &str,
    cwd: PathBuf,
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> Output {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(args)
        .env("KEYWARD_DATABASE_URL", database_url)
        .env(
            "KEYWARD_WEBHOOK_KEY",
            if database_url.starts_with("postgres") {
                TEST_WEBHOOK_KEY
            } else {
                ""
            },
        )
        .env_remove("KEYWARD_CONFIG")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("NO_COLOR")
        .envs(env.iter().copied())
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run keyward");
    if let Some(mut pipe) = child.stdin.take()
        && let Some(text) = stdin
    {
        // A command that fails before reading stdin closes it: that is its answer, not ours.
        let _ = pipe.write_all(text.as_bytes()).await;
    }
    child.wait_with_output().await.expect("keyward output")
}

/// `keyward serve --json --listen 127.0.0.1:0` and `args` as a process against a database in
/// `dir`, with the line it prints once it listens.
pub async fn serve_json(dir: &std::path::Path, args: &[&str]) -> (tokio::process::Child, Value) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["serve", "--json", "--listen", "127.0.0.1:0"])
        .args(args)
        .env(
            "KEYWARD_DATABASE_URL",
            format!("sqlite://{}", dir.join("shop.db").display()),
        )
        .env_remove("KEYWARD_ADMIN_PASSWORD")
        .env_remove("KEYWARD_CONFIG")
        .env_remove("KEYWARD_METRICS_LISTEN")
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start keyward serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the server printed its line")
        .expect("read stdout")
        .expect("a line");
    let started = serde_json::from_str(&first).expect("one line of JSON");
    (child, started)
}

pub fn stdout_json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "keyward failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

/// Reads an error body and checks its shape.
/// What the server fingerprints a `POST` of `body` to `path` by, for an `Idempotency-Key`: the
/// method, the path and the body's bytes as `reqwest`'s `.json` sends them.
pub fn post_fingerprint(path: &str, body: &Value) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    Sha256::new()
        .chain_update(format!("POST\0{path}\0"))
        .chain_update(serde_json::to_vec(body).expect("json"))
        .finalize()
        .to_vec()
}

pub async fn error_of(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let request_id = response
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().expect("ascii").to_owned());
    let body: Value = response.json().await.expect("JSON error body");
    assert!(body["error"]["code"].is_string(), "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert_eq!(
        body["error"]["request_id"].as_str().map(str::to_owned),
        request_id,
        "request id matches the header"
    );
    (status, body)
}

/// The URL of a fresh database for one test: a SQLite file in `dir`, or a new PostgreSQL
/// database when `KEYWARD_TEST_POSTGRES_URL` is set (dropped with the returned guard).
/// The session number a token ends with (`kwt_` + 44 random characters + the number).
pub fn session_number(token: &str) -> i64 {
    token[4 + 44..]
        .parse()
        .expect("the session's number ends the token")
}

pub async fn test_database(dir: &std::path::Path) -> (String, Option<TestDatabase>) {
    match TestDatabase::create().await {
        Some(database) => (database.url.clone(), Some(database)),
        None => (
            format!("sqlite://{}", dir.join("keyward.db").display()),
            None,
        ),
    }
}

/// A PostgreSQL database made for one test and dropped when this is.
pub struct TestDatabase {
    pub url: String,
    server_url: String,
    name: String,
}

const TEST_DATABASE_PREFIX: &str = "keyward_test_";

impl TestDatabase {
    pub async fn create() -> Option<Self> {
        let server_url = std::env::var("KEYWARD_TEST_POSTGRES_URL")
            .ok()
            .filter(|url| !url.is_empty())?;
        static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let mut admin = connect_postgres(&server_url).await;
        if !SWEPT.swap(true, std::sync::atomic::Ordering::SeqCst) {
            drop_leftovers(&mut admin).await;
        }
        // The process id in the name tells a later run whether its maker is still alive.
        let name = format!(
            "{TEST_DATABASE_PREFIX}{}_{}_{:08x}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
            rand::random::<u32>()
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let url = database_url(&server_url, &name);
        Some(Self {
            url,
            server_url,
            name,
        })
    }

    async fn dump(&self) -> String {
        use sqlx::Connection;
        let mut conn = connect_postgres(&self.url).await;
        let columns: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
        )
        .fetch_all(&mut conn)
        .await
        .expect("list the columns");
        let mut tables: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (table, column, data_type) in columns {
            let read = tables.entry(table).or_default();
            read.push(format!("\"{column}\"::text"));
            if data_type == "bytea" {
                read.push(format!("encode(\"{column}\", 'escape')"));
            }
        }
        let mut text = String::new();
        for (table, read) in tables {
            let rows: Vec<(Option<String>,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT concat_ws(' ', {}) FROM \"{table}\"",
                read.join(", ")
            )))
            .fetch_all(&mut conn)
            .await
            .expect("read a table");
            for (row,) in rows {
                text.push_str(&row.unwrap_or_default());
                text.push('\n');
            }
        }
        let _ = conn.close().await;
        text
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let server_url = self.server_url.clone();
        let name = self.name.clone();
        // Dropped inside the test's runtime, which cannot be blocked on: a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let mut admin = connect_postgres(&server_url).await;
                drop_database(&mut admin, &name).await;
            });
        })
        .join();
        if dropped.is_err() {
            eprintln!("could not drop the test database {}", self.name);
        }
    }
}

async fn connect_postgres(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(url)
        .await
        .expect("connect to KEYWARD_TEST_POSTGRES_URL")
}

async fn drop_database(admin: &mut sqlx::PgConnection, name: &str) {
    // FORCE ends the connections a stopped (or never stopped) server left behind.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(admin)
    .await
    .expect("drop the test database");
}

/// Drops the test databases of earlier runs whose process is gone (killed before it could
/// drop them).
async fn drop_leftovers(admin: &mut sqlx::PgConnection) {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE starts_with(datname, 'keyward_test_')",
    )
    .fetch_all(&mut *admin)
    .await
    .expect("list databases");
    for name in names {
        let pid = name
            .strip_prefix(TEST_DATABASE_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        let alive = pid.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            drop_database(admin, &name).await;
        }
    }
}

/// The server's URL with its database replaced by `name`.
fn database_url(server_url: &str, name: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server_url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

/// Sends `signal` (`-TERM`, `-HUP`, …) to the process `pid`, as an operator's `kill` does.
pub async fn send_signal(pid: u32, signal: &str) {
    let sent = tokio::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .await
        .expect("kill");
    assert!(sent.success(), "kill {signal} {pid}");
}
