//! `keyward serve` as a real process: a node of a cluster, or a server to crash.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct Node {
    pub child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    logs: Arc<Mutex<Vec<String>>>,
}

pub const ADMIN_PASSWORD: &str = "a long test password";

impl Node {
    /// Starts `keyward serve` on a free port against `url`, logging at `log_level`.
    pub async fn start(dir: &std::path::Path, url: &str, log_level: &str) -> Self {
        Self::start_with(dir, url, log_level, &[]).await
    }

    /// Starts a node with extra environment variables (settings such as `KEYWARD_AUTO_MIGRATE`).
    pub async fn start_with(
        dir: &std::path::Path,
        url: &str,
        log_level: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keyward"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("KEYWARD_DATABASE_URL", url)
            .env("KEYWARD_LOG", log_level)
            .env("KEYWARD_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env_remove("KEYWARD_CONFIG")
            .envs(env.iter().copied())
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("keyward serve");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let mut errors = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let kept = logs.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = errors.next_line().await {
                kept.lock().expect("logs").push(line);
            }
        });
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("started")
            .expect("read")
            .unwrap_or_else(|| panic!("serve stopped: {:?}", logs.lock().expect("logs")));
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .expect("address")
            .to_owned();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, base, logs }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Logs in on this node and returns the session token.
    pub async fn login(&self, username: &str, key: &str) -> String {
        let login = reqwest::Client::new()
            .post(self.url("/api/v1/login"))
            .json(&serde_json::json!({ "username": username, "key": key }))
            .send()
            .await
            .expect("login");
        assert_eq!(login.status(), 200, "login on {}", self.base);
        let body: serde_json::Value = login.json().await.expect("json");
        body["api_token"].as_str().expect("token").to_owned()
    }

    /// Everything the node logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().expect("logs").join("\n")
    }
}

impl Node {
    /// Stops the node as an operator does (SIGTERM): it finishes its calls and writes its
    /// history and last use.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
    }
}
