//! Keyward's benchmark. In one run, wrk drives on loopback, in turns, a bare axum server (the
//! floor) and Keyward's endpoints; the table gives req/s, p50, p99, the ratio to the floor and
//! peak RSS, and the run checks that every answered call has its history row.
//!
//! `bench/run` builds everything and runs this; `bench/run --scale` adds the scale runs.

mod http;
mod report;
mod scale;
mod wrk;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use wrk::{Load, Request, Wrk};

const FLOOR_PORT: u16 = 18099;
const KEYWARD_PORT: u16 = 18080;
/// Keyward on PostgreSQL.
const POSTGRES_PORT: u16 = KEYWARD_PORT + 1;

pub struct Options {
    pub duration: String,
    pub connections: u32,
    pub threads: u32,
    pub scale: bool,
    pub readme: Option<PathBuf>,
    /// A PostgreSQL server (`postgres://user@host:port/db`) on which the scenarios run again,
    /// in a database of their own that is dropped afterwards.
    pub postgres: Option<String>,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        duration: "10s".into(),
        connections: 32,
        threads: 2,
        scale: false,
        readme: None,
        postgres: std::env::var("KEYWARD_BENCH_POSTGRES_URL").ok(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--duration" => {
                options.duration = args.next().ok_or("--duration needs a value such as 10s")?
            }
            "--connections" => {
                options.connections = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--connections needs a number")?
            }
            "--scale" => options.scale = true,
            "--postgres" => options.postgres = Some(args.next().ok_or("--postgres needs a URL")?),
            "--readme" => {
                options.readme = Some(PathBuf::from(args.next().ok_or("--readme needs a path")?))
            }
            other => {
                return Err(format!(
                    "unknown argument {other}; use --duration, --connections, --scale, --readme, --postgres"
                ));
            }
        }
    }
    Ok(options)
}

/// Whether nothing listens on `port` yet: a server of ours could not bind it, and another's
/// answers would be measured in its place.
fn port_is_free(port: u16) -> Result<(), String> {
    std::net::TcpListener::bind(("127.0.0.1", port))
        .map(drop)
        .map_err(|e| format!("port {port} is not free ({e}): stop what listens there"))
}

/// A server process, killed when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Server {
    /// Starts the server on `port` and waits until it answers `health`. A port that another
    /// process holds is refused before the start: its answers would be measured instead.
    pub fn start(command: &mut Command, port: u16, health: &str) -> Result<Self, String> {
        port_is_free(port)?;
        let child = command
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {command:?}: {e}"))?;
        let mut server = Self { child, port };
        http::wait_until_healthy(port, health)?;
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(format!("{command:?} ended ({status}) as it started"));
        }
        Ok(server)
    }

    /// Peak resident memory since the last reset, in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        kib / 1024.0
    }

    pub fn reset_peak_rss(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Keyward {
    pub server: Server,
    pub database_url: String,
    pub key: String,
    binary: PathBuf,
}

impl Keyward {
    pub fn start(binary: &Path, database_url: String, port: u16) -> Result<Self, String> {
        let server = Server::start(
            Command::new(binary)
                .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
                .env("KEYWARD_DATABASE_URL", &database_url)
                .env("KEYWARD_LOG", "warn")
                .env("KEYWARD_ADMIN_PASSWORD", "bench-admin-password"),
            port,
            "/healthz",
        )?;
        let mut keyward = Self {
            server,
            database_url,
            key: String::new(),
            binary: binary.to_owned(),
        };
        keyward.key = keyward.api_user("bench")?;
        Ok(keyward)
    }

    /// A new API user for `127.0.0.1` with the highest rate limit and the scopes the scenarios
    /// need; its key.
    pub fn api_user(&self, username: &str) -> Result<String, String> {
        let created = self.cli(&[
            "api",
            "create",
            "--json",
            "--username",
            username,
            "--ip",
            "127.0.0.1",
            "--rate-limit",
            "1000000",
            "--scope",
            "products:write",
            "--scope",
            "orders:write",
            "--scope",
            "customers:write",
        ])?;
        created["key"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no key in api create's output for {username}"))
    }

    pub fn cli(&self, args: &[&str]) -> Result<Value, String> {
        let output = Command::new(&self.binary)
            .args(args)
            .env("KEYWARD_DATABASE_URL", &self.database_url)
            .output()
            .map_err(|e| format!("keyward {args:?}: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "keyward {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        serde_json::from_slice(&output.stdout).map_err(|e| format!("keyward {args:?}: {e}"))
    }

    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let body = body.map(|b| b.to_string());
        let (status, text) = http::call(
            self.server.port,
            method,
            path,
            Some(&self.key),
            body.as_deref(),
        )?;
        if !(200..300).contains(&status) {
            return Err(format!("{method} {path}: {status} {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("{method} {path}: {e}"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.server.port)
    }

    /// The store the scenarios work on: products to page and stock, a customer and an order.
    fn seed(&self) -> Result<(), String> {
        for i in 0..200 {
            let product = json!({"sku": format!("BENCH-{i:04}"), "name": format!("Bench product {i}"), "price": "12.50", "quantity": 1000});
            self.call("POST", "/api/v1/products", Some(product))?;
        }
        let customer = self.call(
            "POST",
            "/api/v1/customers",
            Some(json!({"name": "Bench", "email": "bench@example.com"})),
        )?;
        let order = json!({"customer_id": customer["id"], "currency": "USD", "lines": [{"sku": "BENCH-0000", "quantity": 1}]});
        self.call("POST", "/api/v1/orders", Some(order))?;
        Ok(())
    }

    pub async fn history_rows(&self) -> Result<i64, String> {
        const COUNT: &str = "SELECT count(*) FROM api_history";
        if self.on_postgres() {
            let pool = sqlx::PgPool::connect(&self.database_url)
                .await
                .map_err(|e| e.to_string())?;
            let rows: i64 = sqlx::query_scalar(COUNT)
                .fetch_one(&pool)
                .await
                .map_err(|e| e.to_string())?;
            pool.close().await;
            return Ok(rows);
        }
        let pool = sqlx::SqlitePool::connect(&self.database_url)
            .await
            .map_err(|e| e.to_string())?;
        let rows: i64 = sqlx::query_scalar(COUNT)
            .fetch_one(&pool)
            .await
            .map_err(|e| e.to_string())?;
        pool.close().await;
        Ok(rows)
    }

    fn on_postgres(&self) -> bool {
        self.database_url.starts_with("postgres")
    }

    fn database(&self) -> &'static str {
        if self.on_postgres() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    }
}

/// A database of its own on the PostgreSQL server at `server_url`, dropped with the guard.
struct BenchDatabase {
    server_url: String,
    name: String,
    url: String,
}

impl BenchDatabase {
    async fn create(server_url: &str) -> Result<Self, String> {
        let name = format!("keyward_bench_{}", std::process::id());
        let pool = sqlx::PgPool::connect(server_url)
            .await
            .map_err(|e| format!("PostgreSQL at {server_url}: {e}"))?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
            .await
            .map_err(|e| format!("create database {name}: {e}"))?;
        pool.close().await;
        let (base, query) = server_url
            .split_once('?')
            .map_or((server_url, None), |(b, q)| (b, Some(q)));
        let authority_end = base
            .find("://")
            .map(|i| i + 3)
            .and_then(|start| base[start..].find('/').map(|i| start + i))
            .unwrap_or(base.len());
        let mut url = format!("{}/{name}", &base[..authority_end]);
        if let Some(query) = query {
            url.push('?');
            url.push_str(query);
        }
        Ok(Self {
            server_url: server_url.to_owned(),
            name,
            url,
        })
    }

    async fn drop_database(self) -> Result<(), String> {
        let pool = sqlx::PgPool::connect(&self.server_url)
            .await
            .map_err(|e| e.to_string())?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&pool)
        .await
        .map_err(|e| format!("drop database {}: {e}", self.name))?;
        pool.close().await;
        Ok(())
    }
}

pub struct Row {
    pub scenario: &'static str,
    pub database: &'static str,
    pub load: Load,
    pub rss_mib: f64,
    pub rows_missing: Option<i64>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(error) = run().await {
        eprintln!("benchmark failed: {error}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let options = options()?;
    let root = std::env::current_dir().map_err(|e| e.to_string())?;
    let bin = root.join("target/release");
    let scratch = std::env::temp_dir().join(format!("keyward-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let wrk = Wrk {
        threads: options.threads,
        connections: options.connections,
        duration: &options.duration,
        scratch: &scratch,
    };

    println!("machine: {}", report::machine());
    println!(
        "wrk: {} threads, {} connections, {} per scenario\n",
        options.threads, options.connections, options.duration
    );

    // All at once, before anything is measured, rather than each as its server starts.
    for port in [FLOOR_PORT, KEYWARD_PORT, POSTGRES_PORT] {
        port_is_free(port)?;
    }
    let floor = Server::start(
        Command::new(bin.join("floor")).arg(format!("127.0.0.1:{FLOOR_PORT}")),
        FLOOR_PORT,
        "/hello",
    )?;
    floor.reset_peak_rss();
    let floor_url = format!("http://127.0.0.1:{FLOOR_PORT}/hello");
    let floor_load = wrk.run(
        "floor",
        &Request {
            method: "GET",
            url: floor_url,
            headers: vec![],
            body: None,
        },
    )?;
    let mut rows = vec![Row {
        scenario: "floor: bare axum `GET /hello`",
        database: "—",
        load: floor_load,
        rss_mib: floor.peak_rss_mib(),
        rows_missing: None,
    }];
    drop(floor);
    report::print_row(&rows[0], rows[0].load.requests_per_sec);

    let floor_rps = rows[0].load.requests_per_sec;
    let sqlite_url = format!("sqlite://{}", scratch.join("bench.db").display());
    let keyward = Keyward::start(&bin.join("keyward"), sqlite_url, KEYWARD_PORT)?;
    rows.extend(scenarios(&keyward, &wrk, floor_rps).await?);
    match &options.postgres {
        Some(server_url) => {
            let database = BenchDatabase::create(server_url).await?;
            let on_postgres =
                Keyward::start(&bin.join("keyward"), database.url.clone(), POSTGRES_PORT)?;
            let measured = scenarios(&on_postgres, &wrk, floor_rps).await;
            drop(on_postgres);
            database.drop_database().await?;
            rows.extend(measured?);
        }
        None => println!(
            "\nPostgreSQL: not measured (give --postgres URL or KEYWARD_BENCH_POSTGRES_URL)."
        ),
    }

    let scale = if options.scale {
        Some(scale::run(&keyward, &wrk, &scratch).await?)
    } else {
        None
    };
    drop(keyward);
    let table = report::table(&rows, scale.as_deref(), &options);
    println!("\n{table}");
    if let Some(readme) = &options.readme {
        report::write_readme(readme, &table)?;
        println!("wrote the results into {}", readme.display());
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let missing: i64 = rows.iter().filter_map(|r| r.rows_missing).sum();
    if missing > 0 {
        return Err(format!("{missing} answered calls have no history row"));
    }
    Ok(())
}

/// Seeds the store and drives each Keyward scenario in turn.
async fn scenarios(keyward: &Keyward, wrk: &Wrk<'_>, floor_rps: f64) -> Result<Vec<Row>, String> {
    println!("\n{}:", keyward.database());
    let mut rows = Vec::new();
    keyward.seed()?;
    // Each scenario calls as an API user of its own, with a whole allowance: refused calls
    // (429) would be measured instead once one user's is spent.
    let key = |username: &str| keyward.api_user(username);
    let login_body = |username: &str| -> Result<String, String> {
        Ok(json!({"username": username, "key": key(username)?}).to_string())
    };
    let token = {
        let (_, text) = http::call(
            keyward.server.port,
            "POST",
            "/api/v1/login",
            None,
            Some(&login_body("bench-token")?),
        )?;
        let value: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        value["api_token"]
            .as_str()
            .ok_or("login gave no token")?
            .to_owned()
    };
    let bearer = |secret: &str| vec![("Authorization", format!("Bearer {secret}"))];
    let json_body = |secret: &str| {
        vec![
            ("Authorization", format!("Bearer {secret}")),
            ("Content-Type", "application/json".to_owned()),
        ]
    };
    let stock: Vec<Value> = (0..100)
        .map(|i| json!({"sku": format!("BENCH-{i:04}"), "quantity": 500 + i}))
        .collect();
    let scenarios: Vec<(&'static str, Request)> = vec![
        (
            "`GET /api/v1/me`, key (Bearer)",
            Request {
                method: "GET",
                url: keyward.url("/api/v1/me"),
                headers: bearer(&key("bench-me")?),
                body: None,
            },
        ),
        (
            "`GET /api/v1/me`, session token",
            Request {
                method: "GET",
                url: keyward.url("/api/v1/me"),
                headers: bearer(&token),
                body: None,
            },
        ),
        (
            "`POST /api/v1/login`",
            Request {
                method: "POST",
                url: keyward.url("/api/v1/login"),
                headers: vec![("Content-Type", "application/json".to_owned())],
                body: Some(login_body("bench-login")?),
            },
        ),
        (
            "`GET /api/v1/products?limit=50`",
            Request {
                method: "GET",
                url: keyward.url("/api/v1/products?limit=50"),
                headers: bearer(&key("bench-products")?),
                body: None,
            },
        ),
        (
            "`POST /api/v1/orders/1/history`",
            Request {
                method: "POST",
                url: keyward.url("/api/v1/orders/1/history"),
                headers: json_body(&key("bench-orders")?),
                body: Some(json!({"status": "Processing", "comment": "bench"}).to_string()),
            },
        ),
        (
            "`POST /api/v1/products/stock`, 100 SKUs",
            Request {
                method: "POST",
                url: keyward.url("/api/v1/products/stock"),
                headers: json_body(&key("bench-stock")?),
                body: Some(json!({"items": stock}).to_string()),
            },
        ),
    ];
    for (i, (scenario, request)) in scenarios.iter().enumerate() {
        let before = keyward.history_rows().await?;
        keyward.server.reset_peak_rss();
        let load = wrk.run(&format!("keyward{i}"), request)?;
        let rss_mib = keyward.server.peak_rss_mib();
        let after = keyward.history_rows().await?;
        // wrk counts the answers it read; each must have its row (calls cut off at the end
        // may have rows too, so more rows is fine).
        let missing = (load.requests as i64 - (after - before)).max(0);
        let row = Row {
            scenario,
            database: keyward.database(),
            load,
            rss_mib,
            rows_missing: Some(missing),
        };
        report::print_row(&row, floor_rps);
        rows.push(row);
    }
    Ok(rows)
}
