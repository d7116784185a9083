//! Faults underneath: a crash (kill -9) under load, a database locked by someone else, a full
//! disk. Answered calls keep their history; refusals are 503 with a clear error; the server
//! recovers without a restart.

use crate::helpers::{cli_at, error_of, spawn_app, stdout_json};
use crate::nodes::Node;
use keyward::domain::history::HistoryQuery;
use std::path::Path;
use std::time::Duration;
use tokio::process::Command;

async fn start_server(dir: &std::path::Path, url: &str) -> (tokio::process::Child, String) {
    let node = Node::start(dir, url, "warn").await;
    (node.child, node.base)
}

#[tokio::test]
async fn a_kill_dash_nine_under_load_loses_no_answered_calls_history() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("crash.db").display());
    let key = create_key(&url, dir.path(), "crash-test").await;
    let (mut server, base) = start_server(dir.path(), &url).await;

    let client = reqwest::Client::new();
    let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (client, key, base, answered) =
            (client.clone(), key.clone(), base.clone(), answered.clone());
        load.spawn(async move {
            loop {
                let Ok(response) = client
                    .get(format!("{base}/api/v1/me"))
                    .bearer_auth(&key)
                    .send()
                    .await
                else {
                    return;
                };
                if response.status() == 200
                    && let Some(id) = response
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                {
                    answered.lock().expect("lock").push(id.to_owned());
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pid = server.id().expect("pid").to_string();
    Command::new("kill")
        .args(["-9", &pid])
        .status()
        .await
        .expect("kill -9");
    let _ = server.wait().await;
    load.abort_all();
    while load.join_next().await.is_some() {}

    let answered = answered.lock().expect("lock").clone();
    assert!(
        answered.len() > 100,
        "the load ran: {} answers",
        answered.len()
    );
    let db = keyward::store::connect(&url, &Default::default())
        .await
        .expect("the database reopens");
    let rows = db
        .history(&HistoryQuery {
            limit: 1_000_000,
            ..Default::default()
        })
        .await
        .expect("history");
    let recorded: std::collections::HashSet<&str> =
        rows.iter().map(|r| r.request_id.as_str()).collect();
    let lost: Vec<&String> = answered
        .iter()
        .filter(|id| !recorded.contains(id.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} answered calls lost their history row",
        lost.len(),
        answered.len()
    );
    eprintln!(
        "kill -9 under load: {} calls answered 200, {} history rows, 0 lost",
        answered.len(),
        rows.len()
    );
    let pool = sqlx::SqlitePool::connect(&url).await.expect("pool");
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&pool)
        .await
        .expect("check");
    assert_eq!(integrity, "ok");
}

/// A SQLite file held under `BEGIN EXCLUSIVE` by another connection, as another process would.
struct Locked(sqlx::pool::PoolConnection<sqlx::Sqlite>);

impl Locked {
    async fn take(url: &str) -> Self {
        let pool = sqlx::SqlitePool::connect(url).await.expect("pool");
        let mut connection = pool.acquire().await.expect("connection");
        sqlx::query("BEGIN EXCLUSIVE")
            .execute(&mut *connection)
            .await
            .expect("lock");
        Self(connection)
    }

    async fn release(mut self) {
        sqlx::query("ROLLBACK")
            .execute(&mut *self.0)
            .await
            .expect("unlock");
    }
}

#[tokio::test]
async fn a_locked_database_is_503_with_a_clear_error_then_recovers() {
    let app = spawn_app().await;
    if app.on_postgres() {
        // A lock on the SQLite file; PostgreSQL's outage is the restart test below.
        return;
    }
    let key = app.api_user("patient", &["products:write"]).await;
    let lock = Locked::take(&app.database_url).await;

    let response = app.get("/api/v1/me", &key).await;
    let (status, body) = error_of(response).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "unavailable");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Nothing was changed"),
        "a read is told it changed nothing: {message}"
    );
    // Reads still answer, but no call can be recorded: not ready.
    let ready = || async {
        let response = app.request(reqwest::Method::GET, "/readyz").send().await;
        response.expect("readyz").status().as_u16()
    };
    assert_eq!(ready().await, 503);

    lock.release().await;
    assert_eq!(ready().await, 200, "ready again, before any call succeeds");
    assert_eq!(
        app.get("/api/v1/me", &key).await.status(),
        200,
        "recovered without a restart"
    );
}

/// A stop hurried by a second signal still lets a call that changes something finish and
/// record its row: here a product whose body is still arriving when both signals come.
#[tokio::test]
async fn a_hurried_stop_still_records_the_change_under_way() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("shop.db").display());
    let key = create_key(&url, dir.path(), "hurried").await;
    let scoped = cli_at(
        &url,
        dir.path().into(),
        &["api", "scopes", "hurried", "products:write"],
        None,
    )
    .await;
    assert!(scoped.status.success());
    let (mut server, base) = start_server(dir.path(), &url).await;
    let body = r#"{"sku": "HURRY-1", "name": "Lamp", "price": "1.00", "quantity": 1}"#;
    let (first, rest) = body.split_at(20);
    let mut stream = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .expect("connect");
    let head = format!(
        "POST /api/v1/products HTTP/1.1\r\nHost: keyward\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{first}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("send");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = server.id().expect("pid");
    for _ in 0..2 {
        crate::helpers::send_signal(pid, "-TERM").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stream
        .write_all(rest.as_bytes())
        .await
        .expect("send the rest");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let status = tokio::time::timeout(Duration::from_secs(60), server.wait())
        .await
        .expect("stops")
        .expect("status");
    assert!(status.success(), "{status}");

    let pool = sqlx::SqlitePool::connect(&url).await.expect("pool");
    let products: i64 = sqlx::query_scalar("SELECT count(*) FROM products WHERE sku = 'HURRY-1'")
        .fetch_one(&pool)
        .await
        .expect("products");
    let rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_history WHERE call = 'POST /api/v1/products' AND status = 201",
    )
    .fetch_one(&pool)
    .await
    .expect("history");
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!((products, rows), (1, 1), "{answer}");
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
}

/// `GET /readyz`: its status, its body, and how long it took.
async fn readyz(app: &crate::helpers::TestApp) -> (u16, String, Duration) {
    let started = std::time::Instant::now();
    let response = app
        .request(reqwest::Method::GET, "/readyz")
        .send()
        .await
        .expect("readyz");
    let status = response.status().as_u16();
    let body = response.text().await.expect("body");
    (status, body, started.elapsed())
}

/// While another process holds the file, a call's history row waits for its commit: the node
/// is not ready once that wait passes 5 s, and says so within a second, before the batch has
/// failed (that takes the writer's retries, many seconds more).
#[tokio::test]
async fn a_history_held_up_is_not_ready_and_readyz_answers_within_a_second() {
    let app = spawn_app().await;
    if app.on_postgres() {
        return;
    }
    let key = app.api_user("held", &["products:read"]).await;
    assert_eq!(readyz(&app).await.0, 200);
    let lock = Locked::take(&app.database_url).await;
    let call = tokio::spawn({
        let request = app.bearer(reqwest::Method::GET, "/api/v1/me", &key);
        async move { request.send().await.expect("call").status().as_u16() }
    });
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(readyz(&app).await.0, 200, "a commit may wait a few seconds");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, body, took) = readyz(&app).await;
    assert_eq!(
        (status, body.as_str()),
        (503, "history writes are held up\n")
    );
    assert!(took < Duration::from_millis(1500), "answered in {took:?}");
    lock.release().await;
    assert_eq!(
        call.await.expect("call"),
        200,
        "its row went in once the lock went"
    );
    assert_eq!(readyz(&app).await.0, 200);
}

/// A SQLite file deleted under the running server: what it writes from then on goes with the
/// deleted file, so it is not ready.
#[tokio::test]
async fn a_database_file_deleted_under_the_server_is_not_ready() {
    let app = spawn_app().await;
    let Some(file) = app.database_url.strip_prefix("sqlite://") else {
        return;
    };
    assert_eq!(readyz(&app).await.0, 200);
    std::fs::remove_file(file).expect("delete the database file");
    let (status, body, _) = readyz(&app).await;
    assert_eq!((status, body.as_str()), (503, "database unavailable\n"));
}

#[tokio::test]
#[ignore = "needs root to mount a small tmpfs"]
async fn a_full_disk_is_503_with_a_clear_error_then_recovers() {
    let mount = tempfile::tempdir().expect("dir");
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(mount.path())
        .status()
        .expect("mount");
    assert!(status.success(), "mounting a tmpfs needs root");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mount.path().to_owned());
    let url = format!("sqlite://{}", mount.path().join("full.db").display());
    let key = create_key(&url, mount.path(), "disk-test").await;
    let (mut server, base) = start_server(mount.path(), &url).await;
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("{base}/api/v1/me"))
            .bearer_auth(&key)
            .send()
            .await
            .expect("call")
            .status(),
        200
    );

    // Fill the disk.
    let filler = mount.path().join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 4 * 1024 * 1024]);
    let mut refused = None;
    for _ in 0..200 {
        let response = client
            .get(format!("{base}/api/v1/me"))
            .bearer_auth(&key)
            .send()
            .await
            .expect("call");
        if response.status() != 200 {
            refused = Some(response);
            break;
        }
    }
    let response = refused.expect("a full disk refuses calls");
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unavailable");
    // Taking the write lock works on a full disk; a write does not: not ready (once the
    // probe's own small writes have used what room the log's last pages had).
    let ready = || async {
        client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .expect("readyz")
            .status()
    };
    let mut not_ready = false;
    for _ in 0..50 {
        if ready().await == 503 {
            not_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(not_ready, "a full disk is not ready");

    std::fs::remove_file(&filler).expect("free the disk");
    let mut recovered = false;
    for _ in 0..50 {
        if client
            .get(format!("{base}/api/v1/me"))
            .bearer_auth(&key)
            .send()
            .await
            .expect("call")
            .status()
            == 200
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "recovered without a restart");
    assert_eq!(ready().await, 200);
    let _ = server.kill().await;
}

/// A private PostgreSQL cluster in a temporary directory, on a free loopback port, that the
/// test may stop and start at will (the shared test server must not be restarted).
struct PrivatePostgres {
    bin: std::path::PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivatePostgres {
    fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's server binaries in /usr/lib/postgresql (Debian's postgresql)")
            .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
            .filter(|bin| bin.join("initdb").exists())
            .max_by_key(|bin| {
                bin.parent()
                    .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
                    .unwrap_or(0)
            })
            .expect("an initdb");
        let dir = tempfile::tempdir().expect("dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let cluster = Self { bin, dir, port };
        if cluster.as_root() {
            // initdb refuses root: the cluster belongs to Debian's `postgres` user.
            let status = std::process::Command::new("chown")
                .args(["-R", "postgres"])
                .arg(cluster.dir.path())
                .status()
                .expect("chown");
            assert!(status.success());
        }
        let data = cluster.dir.path().join("data");
        let initdb = cluster
            .run("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "keyward", "--auth=trust", "-E", "UTF8"])
            .output()
            .expect("initdb");
        assert!(
            initdb.status.success(),
            "{}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        cluster.pg_ctl("start");
        cluster
    }

    fn as_root(&self) -> bool {
        std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| out.stdout.starts_with(b"0\n"))
    }

    fn run(&self, program: &str) -> std::process::Command {
        let program = self.bin.join(program);
        let mut command = if self.as_root() {
            let mut command = std::process::Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            std::process::Command::new(program)
        };
        command.current_dir(self.dir.path());
        command
    }

    fn pg_ctl(&self, action: &str) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let out = self
            .run("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-l")
            .arg(self.dir.path().join("postgres.log"))
            .args(["-m", "fast", "-w", "-o", &options, action])
            .output()
            .expect("pg_ctl");
        assert!(
            out.status.success(),
            "pg_ctl {action}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self) -> String {
        format!("postgres://keyward@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self
            .run("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries (Debian's postgresql)"]
async fn a_postgresql_restart_under_load_is_503_then_every_node_recovers_without_a_restart() {
    let postgres = PrivatePostgres::start();
    let url = postgres.url();
    let dir = tempfile::tempdir().expect("dir");
    let key = create_key(&url, dir.path(), "restart-test").await;
    // Three nodes of a cluster, the load spread over them.
    let (a, b, c) = tokio::join!(
        Node::start(dir.path(), &url, "warn"),
        Node::start(dir.path(), &url, "warn"),
        Node::start(dir.path(), &url, "warn"),
    );
    let mut nodes = vec![a, b, c];
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();

    #[derive(Default)]
    struct Seen {
        ok: Vec<String>,
        unavailable: usize,
        other: Vec<String>,
    }
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Seen::default()));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let mut load = tokio::task::JoinSet::new();
    for i in 0..9 {
        let (client, key, base, seen) = (
            client.clone(),
            key.clone(),
            bases[i % bases.len()].clone(),
            seen.clone(),
        );
        load.spawn(async move {
            loop {
                let outcome = client
                    .get(format!("{base}/api/v1/me"))
                    .bearer_auth(&key)
                    .send()
                    .await;
                let response = match outcome {
                    Ok(response) => response,
                    Err(error) => {
                        seen.lock().expect("lock").other.push(error.to_string());
                        continue;
                    }
                };
                let status = response.status().as_u16();
                let id = response
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                let mut seen = seen.lock().expect("lock");
                match (status, body["error"]["code"].as_str()) {
                    (200, _) => seen.ok.push(id),
                    (503, Some("unavailable")) => seen.unavailable += 1,
                    _ => seen.other.push(format!("{status} {body}")),
                }
            }
        });
    }
    let ok_before = |seen: &std::sync::Mutex<Seen>| seen.lock().expect("lock").ok.len();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(ok_before(&seen) > 50, "the load ran before the restart");

    postgres.pg_ctl("stop");
    // A call waits up to the pool's 5 s for a connection (a quick restart goes unnoticed),
    // then is refused with 503.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while seen.lock().expect("lock").unavailable < 8 {
        if std::time::Instant::now() > deadline {
            let seen = seen.lock().expect("lock");
            panic!(
                "calls while PostgreSQL is down are 503: {} ok, {} unavailable, other {:?}",
                seen.ok.len(),
                seen.unavailable,
                &seen.other[..seen.other.len().min(5)]
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    postgres.pg_ctl("start");

    let answered_before_recovery = ok_before(&seen);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while ok_before(&seen) < answered_before_recovery + 100 {
        assert!(
            std::time::Instant::now() < deadline,
            "the server recovered without a restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    load.abort_all();
    while load.join_next().await.is_some() {}
    for (i, node) in nodes.iter_mut().enumerate() {
        assert!(
            node.child.try_wait().expect("wait").is_none(),
            "node {i} stayed up"
        );
    }
    // Every node answers again, and hears of changes again: a change holds on each within
    // the promised second.
    let disabled = cli_at(
        &url,
        dir.path().into(),
        &["api", "disable", "restart-test"],
        None,
    )
    .await;
    assert!(disabled.status.success());
    let since = std::time::Instant::now();
    for (i, base) in bases.iter().enumerate() {
        loop {
            let status = client
                .get(format!("{base}/api/v1/me"))
                .bearer_auth(&key)
                .send()
                .await
                .expect("call")
                .status();
            if status == 401 {
                break;
            }
            assert!(
                since.elapsed() < Duration::from_secs(15),
                "node {i} recovered and hears of changes: still {status}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let took = since.elapsed();
    eprintln!("after the restart, a disable held on all three nodes in {took:?}");
    assert!(
        took <= Duration::from_secs(1),
        "within the promised second: {took:?}"
    );

    let seen = std::mem::take(&mut *seen.lock().expect("lock"));
    assert!(
        seen.other.is_empty(),
        "only 200 and 503 unavailable: {:?}",
        &seen.other[..seen.other.len().min(5)]
    );
    let db = keyward::store::connect(&url, &Default::default())
        .await
        .expect("connect");
    let rows = db
        .history(&HistoryQuery {
            limit: 1_000_000,
            ..Default::default()
        })
        .await
        .expect("history");
    let recorded: std::collections::HashSet<&str> =
        rows.iter().map(|row| row.request_id.as_str()).collect();
    let lost = seen
        .ok
        .iter()
        .filter(|id| !recorded.contains(id.as_str()))
        .count();
    assert_eq!(lost, 0, "every answered call has its history row");
    eprintln!(
        "PostgreSQL restart under load, 3 nodes: {} calls answered 200, {} refused 503, 0 lost",
        seen.ok.len(),
        seen.unavailable
    );
    db.close().await;
    for node in nodes {
        node.stop().await;
    }
}

/// Creates an API user allowed from loopback with a limit the tests never
/// reach, through the CLI, and returns its key.
async fn create_key(url: &str, dir: &Path, username: &str) -> String {
    let created = cli_at(
        url,
        dir.into(),
        &[
            "api",
            "create",
            "--json",
            "--username",
            username,
            "--ip",
            "127.0.0.1",
            "--rate-limit",
            "1000000",
        ],
        None,
    )
    .await;
    stdout_json(&created)["key"]
        .as_str()
        .expect("key")
        .to_owned()
}
