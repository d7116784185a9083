//! `keyward serve` as a process: the demo works as printed, shutdown is graceful, and no key
//! or token reaches the logs even at the most verbose level.

use crate::helpers::test_database;
use reqwest::Client;
use serde_json::json;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

struct Server {
    child: Child,
    base: String,
    stdout: Vec<String>,
    /// Drains stderr while the server runs, so a full pipe never blocks its logging.
    logs: tokio::task::JoinHandle<String>,
}

async fn serve_demo(dir: &std::path::Path, database_url: &str) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
        .env("KEYWARD_DATABASE_URL", database_url)
        .env("KEYWARD_LOG", "trace")
        .env_remove("KEYWARD_ADMIN_PASSWORD")
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start keyward serve");
    let mut stderr = child.stderr.take().expect("stderr");
    let logs = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut stdout = Vec::new();
    let read = async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            let done = line.contains("/api/v1/products?limit=5");
            stdout.push(line);
            if done {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the server printed its demo lines");
    // Stop reading stdout, as a supervisor might: the server must keep running regardless.
    drop(lines);
    let base = stdout
        .iter()
        .find_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with("http://"))
                .map(str::to_owned)
        })
        .expect("the listening address");
    Server {
        child,
        base,
        stdout,
        logs,
    }
}

#[tokio::test]
async fn the_demo_prints_a_working_key_and_curl_line_and_logs_never_hold_secrets() {
    let dir = tempfile::tempdir().expect("dir");
    let (database_url, _database) = test_database(dir.path()).await;
    let mut server = serve_demo(dir.path(), &database_url).await;
    let printed = server.stdout.join("\n");
    assert!(
        printed.contains("First run: created the admin user `admin` with the password"),
        "{printed}"
    );
    let key = printed
        .split_whitespace()
        .find(|w| w.starts_with("kw_"))
        .map(|w| w.trim_matches('\'').to_owned())
        .expect("the demo key");
    assert!(printed.contains(&format!(
        "curl -H 'Authorization: Bearer {key}' {}/api/v1/me",
        server.base
    )));

    let client = Client::new();
    let me = client
        .get(format!("{}/api/v1/me", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .expect("me");
    assert_eq!(me.status(), 200);
    let products: serde_json::Value = client
        .get(format!("{}/api/v1/products?limit=5", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .expect("products")
        .json()
        .await
        .expect("json");
    assert_eq!(
        products["data"].as_array().expect("data").len(),
        5,
        "the demo store has products"
    );
    let orders: serde_json::Value = client
        .get(format!("{}/api/v1/orders", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .expect("orders")
        .json()
        .await
        .expect("json");
    assert!(
        orders["data"].as_array().expect("data").len() >= 20,
        "the demo store has orders"
    );
    let login: serde_json::Value = client
        .post(format!("{}/api/v1/login", server.base))
        .json(&json!({"username": "demo", "key": key}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let token = login["api_token"].as_str().expect("token").to_owned();
    client
        .get(format!("{}/api/v1/me", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("token call");
    client
        .get(format!(
            "{}/api/v1/me?api_token={token}&key={key}",
            server.base
        ))
        .send()
        .await
        .expect("query call");
    client
        .get(format!("{}/api/v1/me", server.base))
        .bearer_auth(format!("{key}0"))
        .send()
        .await
        .expect("bad key");
    client
        .get(format!("{}/api/v1/me", server.base))
        .basic_auth("demo", Some(&key))
        .send()
        .await
        .expect("basic");

    let pid = server.child.id().expect("pid").to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), server.child.wait())
        .await
        .expect("stops")
        .expect("status");
    assert!(status.success(), "graceful shutdown exits 0");
    let logs = server.logs.await.expect("logs");

    assert!(
        logs.contains("/api/v1/me") && logs.contains("client_ip=127.0.0.1"),
        "requests are logged"
    );
    for secret in [
        &key,
        &token,
        &key[3..30].to_owned(),
        &token[4..30].to_owned(),
    ] {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret appeared in the logs"
        );
    }
}

#[tokio::test]
async fn serve_json_prints_one_line_a_script_can_use() {
    let dir = tempfile::tempdir().expect("dir");
    let (mut child, started) = crate::helpers::serve_json(dir.path(), &["--demo"]).await;
    assert_eq!(started["demo_seeded"], true);
    assert_eq!(started["first_admin"]["username"], "admin");
    assert!(started["first_admin"]["password"].is_string());
    assert_eq!(started["demo"]["username"], "demo");
    let base = started["listening"].as_str().expect("address");
    assert_eq!(started["metrics"], format!("{base}/metrics"));
    let status_of = |base: String, key: String| async move {
        let me = Client::new()
            .get(format!("{base}/api/v1/me"))
            .bearer_auth(key)
            .send()
            .await
            .expect("call");
        me.status()
    };
    let key = started["demo"]["key"].as_str().expect("key");
    assert_eq!(status_of(base.to_owned(), key.to_owned()).await, 200);
    assert_eq!(started["demo"]["rolled"], false);
    child.kill().await.expect("stop");
    child.wait().await.expect("stopped");

    // Started again on the same store, the demo prints a new key, and the one a client was set
    // up with keeps working beside it; at a third start the first one stops.
    let (mut child, again) = crate::helpers::serve_json(dir.path(), &["--demo"]).await;
    assert_eq!(again["demo_seeded"], false);
    assert_eq!(again["demo"]["rolled"], true);
    let base = again["listening"].as_str().expect("address").to_owned();
    let second = again["demo"]["key"].as_str().expect("key").to_owned();
    assert_ne!(second, key);
    assert_eq!(status_of(base.clone(), key.to_owned()).await, 200);
    assert_eq!(status_of(base, second.clone()).await, 200);
    child.kill().await.expect("stop");
    child.wait().await.expect("stopped");
    let (mut child, third) = crate::helpers::serve_json(dir.path(), &["--demo"]).await;
    assert_eq!(
        third["demo"]["stopped_now"].as_array().map(Vec::len),
        Some(1)
    );
    let base = third["listening"].as_str().expect("address").to_owned();
    assert_eq!(status_of(base.clone(), key.to_owned()).await, 401);
    assert_eq!(status_of(base, second).await, 200);
    child.kill().await.expect("stop");
}

/// A client that never reads its answers holds its connection open. A stop waits for it no
/// longer than `request_timeout` plus 5 s, and a second SIGTERM ends the wait at once; SIGHUP
/// (a closed terminal) stops the server as SIGTERM does, and a second SIGHUP (a terminal may
/// send two) does not cut the wait. Each exits 0.
#[tokio::test]
async fn a_stop_waits_only_so_long_for_a_client_that_never_reads() {
    use tokio::io::AsyncWriteExt;
    for (signals, at_least, within) in [
        (
            &["-TERM", "-TERM"][..],
            Duration::ZERO,
            Duration::from_secs(3),
        ),
        (
            &["-HUP", "-HUP"][..],
            Duration::from_secs(5),
            Duration::from_secs(12),
        ),
    ] {
        if signals[0] == "-HUP" && keyward::startup::hangup_ignored() {
            // Run under `nohup` (so is the server, which inherits it, as this process does):
            // SIGHUP must change nothing, which the test below checks instead.
            continue;
        }
        let dir = tempfile::tempdir().expect("dir");
        let (mut child, started) =
            crate::helpers::serve_json(dir.path(), &["--request-timeout", "1s"]).await;
        let address = started["listening"]
            .as_str()
            .and_then(|base| base.strip_prefix("http://"))
            .expect("address")
            .to_owned();
        // Answers pile up in the socket's buffers until the server cannot write any more.
        let mut stalled = tokio::net::TcpStream::connect(&address)
            .await
            .expect("connect");
        let request = "GET /api/v1/openapi.json HTTP/1.1\r\nHost: keyward\r\n\r\n".repeat(2000);
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            stalled.write_all(request.as_bytes()),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;

        let pid = child.id().expect("pid");
        let stopping = std::time::Instant::now();
        for signal in signals {
            crate::helpers::send_signal(pid, signal).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let status = tokio::time::timeout(within, child.wait())
            .await
            .unwrap_or_else(|_| panic!("{signals:?}: still running after {within:?}"))
            .expect("status");
        assert!(status.success(), "{signals:?}: {status}");
        let took = stopping.elapsed();
        assert!(took >= at_least && took < within, "{signals:?}: {took:?}");
        drop(stalled);
    }
}

/// A start that cannot listen (the port is taken) fails with a clear error before it makes a
/// database: the operator's next try does not find an empty store with an admin nobody saw.
#[tokio::test]
async fn a_start_on_a_taken_port_fails_before_it_makes_a_database() {
    let dir = tempfile::tempdir().expect("dir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("addr").to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["serve", "--listen", &address])
        .env("KEYWARD_DATABASE_URL", "sqlite://fresh.db")
        .env_remove("KEYWARD_CONFIG")
        .current_dir(dir.path())
        .output()
        .await
        .expect("run keyward serve");
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains(&address), "{said}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Under `nohup` SIGHUP is ignored, and the server leaves it so: logging out does not stop it.
#[tokio::test]
async fn under_nohup_a_hangup_leaves_the_server_running() {
    let dir = tempfile::tempdir().expect("dir");
    let keyward = env!("CARGO_BIN_EXE_keyward");
    let database = format!("sqlite://{}", dir.path().join("shop.db").display());
    let mut child = Command::new("nohup")
        .args([keyward, "serve", "--listen", "127.0.0.1:0"])
        .env("KEYWARD_DATABASE_URL", &database)
        .env_remove("KEYWARD_CONFIG")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start nohup keyward serve");
    // Up and listening: its signal handlers are in place.
    let mut up = false;
    for _ in 0..100 {
        if dir.path().join("shop.db-signal").exists() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the server started");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = child.id().expect("pid");
    crate::helpers::send_signal(pid, "-HUP").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        child.try_wait().expect("status").is_none(),
        "a hangup stopped the server under nohup"
    );
    crate::helpers::send_signal(pid, "-TERM").await;
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("stops")
        .expect("status");
    assert!(status.success(), "{status}");
}

/// A log that cannot be written (stderr on a full disk) costs no answer: the call that logs a
/// warning is still answered.
#[tokio::test]
async fn a_log_that_cannot_be_written_costs_no_answer() {
    let dir = tempfile::tempdir().expect("dir");
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["serve", "--json", "--listen", "127.0.0.1:0"])
        .env("KEYWARD_DATABASE_URL", "sqlite://shop.db")
        .env("KEYWARD_LOG", "debug")
        .env_remove("KEYWARD_CONFIG")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(full)
        .kill_on_drop(true)
        .spawn()
        .expect("start keyward serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the server printed its line")
        .expect("read stdout")
        .expect("a line");
    let started: serde_json::Value = serde_json::from_str(&first).expect("JSON");
    let base = started["listening"].as_str().expect("address").to_owned();
    // Not ready, and the server logs a warning saying why.
    std::fs::remove_file(dir.path().join("shop.db")).expect("delete the database file");
    for _ in 0..3 {
        let ready = Client::new()
            .get(format!("{base}/readyz"))
            .send()
            .await
            .expect("answered, not dropped");
        assert_eq!(ready.status(), 503);
    }
    let pid = child.id().expect("pid");
    crate::helpers::send_signal(pid, "-TERM").await;
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("stops")
        .expect("status");
    assert_ne!(status.code(), Some(101), "no panic: {status}");
}
