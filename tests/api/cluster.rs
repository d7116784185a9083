//! Three `keyward serve` processes on one PostgreSQL database, as an operator runs them behind a
//! load balancer: a change made on one node (or from the command line) holds on every node
//! within a second, sessions work on every node, rate limits hold for the cluster, and a lost
//! notification connection is survived. Skipped without `KEYWARD_TEST_POSTGRES_URL`.

use crate::console::Console;
use crate::helpers::{TestDatabase, cli_at, stdout_json};
use crate::nodes::{ADMIN_PASSWORD, Node};
use reqwest::Client;
use std::time::{Duration, Instant};
use tempfile::TempDir;

pub struct Cluster {
    pub nodes: Vec<Node>,
    pub client: Client,
    pub dir: TempDir,
    /// Declared last: dropped after the nodes.
    pub database: TestDatabase,
}

/// The promise: a change holds on every node within this.
const PROMISE: Duration = Duration::from_secs(1);

impl Cluster {
    /// Three nodes started at once (so they also race to migrate), or `None` without PostgreSQL.
    pub async fn start(test: &str) -> Option<Self> {
        Self::start_with(test, &[]).await
    }

    /// Three nodes with extra settings in their environment.
    pub async fn start_with(test: &str, env: &[(&str, &str)]) -> Option<Self> {
        let Some(database) = TestDatabase::create().await else {
            eprintln!("{test}: skipped, the cluster tests need KEYWARD_TEST_POSTGRES_URL");
            return None;
        };
        let dir = tempfile::tempdir().expect("dir");
        let (a, b, c) = tokio::join!(
            Node::start_with(dir.path(), &database.url, "info", env),
            Node::start_with(dir.path(), &database.url, "info", env),
            Node::start_with(dir.path(), &database.url, "info", env),
        );
        let client = Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let cluster = Self {
            nodes: vec![a, b, c],
            client,
            dir,
            database,
        };
        cluster.wait_for_listeners(3).await;
        Some(cluster)
    }

    pub async fn cli(&self, args: &[&str]) -> std::process::Output {
        cli_at(&self.database.url, self.dir.path().into(), args, None).await
    }

    /// Creates an API user allowed from loopback through the CLI and returns its key.
    pub async fn api_user(&self, username: &str, extra: &[&str]) -> String {
        let mut args = vec!["api", "create", "--json", "--username", username];
        args.extend_from_slice(&["--ip", "127.0.0.1"]);
        args.extend_from_slice(extra);
        let created = self.cli(&args).await;
        stdout_json(&created)["key"]
            .as_str()
            .expect("key")
            .to_owned()
    }

    /// Logs in on one node and returns the session token.
    pub async fn login(&self, node: usize, username: &str, key: &str) -> String {
        self.nodes[node].login(username, key).await
    }

    pub async fn status(&self, node: usize, path: &str, secret: &str) -> u16 {
        self.client
            .get(self.nodes[node].url(path))
            .bearer_auth(secret)
            .send()
            .await
            .expect("call")
            .status()
            .as_u16()
    }

    /// Calls every node until each answers `expected`, and returns how long each took after
    /// `since`. Waits far past the promise, so a slow machine cannot fail the test here; the
    /// promise itself is checked by `assert_within_promise`.
    pub async fn until_every_node(
        &self,
        path: &str,
        secret: &str,
        expected: u16,
        since: Instant,
    ) -> Vec<Duration> {
        let each = (0..self.nodes.len()).map(|node| async move {
            let deadline = since + Duration::from_secs(15);
            loop {
                let status = self.status(node, path, secret).await;
                if status == expected {
                    return since.elapsed();
                }
                assert!(
                    Instant::now() < deadline,
                    "node {node} still answers {status} to {path}, not {expected}"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        futures_util::future::join_all(each).await
    }

    /// Connections listening for credential changes, found by their application name.
    pub async fn listeners(&self) -> i64 {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.database.url)
            .await
            .expect("connect");
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE application_name = 'keyward-listener' AND datname = current_database()",
        )
        .fetch_one(&mut conn)
        .await
        .expect("pg_stat_activity");
        let _ = conn.close().await;
        count
    }

    pub async fn wait_for_listeners(&self, count: i64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.listeners().await != count {
            assert!(Instant::now() < deadline, "{count} listeners connect");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn assert_within_promise(what: &str, took: &[Duration]) {
    let shown: Vec<String> = took
        .iter()
        .map(|d| format!("{:.1} ms", d.as_secs_f64() * 1000.0))
        .collect();
    eprintln!(
        "propagation of {what} to nodes A, B, C: {}",
        shown.join(", ")
    );
    for (node, took) in took.iter().enumerate() {
        assert!(
            *took <= PROMISE,
            "{what} held on node {node} after {took:?}, past the {PROMISE:?} promise"
        );
    }
}

/// A console signed in on one node.
async fn console_on(node: &Node) -> Console {
    let console = Console::at(&node.base);
    let response = console.sign_in("admin", ADMIN_PASSWORD).await;
    assert_eq!(response.status(), 303, "signed in");
    console
}

fn key_in(html: &str) -> String {
    html.split("id=\"new-key\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the new key on the page")
        .to_owned()
}

#[tokio::test]
async fn a_change_on_one_node_holds_on_every_node_within_a_second() {
    let Some(cluster) =
        Cluster::start("a_change_on_one_node_holds_on_every_node_within_a_second").await
    else {
        return;
    };
    let key = cluster.api_user("erp", &["--scope", "products:read"]).await;
    let path = "/api/v1/products";
    // Every node has the user cached.
    cluster
        .until_every_node(path, &key, 200, Instant::now())
        .await;
    let console = console_on(&cluster.nodes[0]).await;
    let page = "/admin/apis/erp";

    // Disabled on node A, from its console.
    let response = console
        .submit(page, "/admin/apis/erp/status", &[("status", "disabled")])
        .await;
    assert_eq!(response.status(), 303);
    let took = cluster
        .until_every_node(path, &key, 401, Instant::now())
        .await;
    assert_within_promise("a disable made on node A", &took);

    // Enabled again from the command line.
    let enabled = cluster.cli(&["api", "enable", "erp"]).await;
    assert!(enabled.status.success());
    let took = cluster
        .until_every_node(path, &key, 200, Instant::now())
        .await;
    assert_within_promise("an enable made from the CLI", &took);

    // The key rolled on node A without a grace period: the old key stops everywhere.
    let current_key = crate::console::field_of(&console.html(page).await, "current_key");
    let response = console
        .submit(
            page,
            "/admin/apis/erp/roll",
            &[("grace", "0"), ("current_key", &current_key)],
        )
        .await;
    assert_eq!(response.status(), 200, "the new key is shown once");
    let since = Instant::now();
    let new_key = key_in(&response.text().await.expect("html"));
    let took = cluster.until_every_node(path, &key, 401, since).await;
    assert_within_promise("a roll made on node A", &took);
    cluster
        .until_every_node(path, &new_key, 200, Instant::now())
        .await;

    // The only address removed on node A: refused everywhere.
    let response = console
        .submit(page, "/admin/apis/erp/ips/remove", &[("rule", "127.0.0.1")])
        .await;
    assert_eq!(response.status(), 303);
    let took = cluster
        .until_every_node(path, &new_key, 403, Instant::now())
        .await;
    assert_within_promise("an IP rule removed on node A", &took);
    let added = cluster.cli(&["api", "ip", "add", "erp", "127.0.0.1"]).await;
    assert!(added.status.success());
    let took = cluster
        .until_every_node(path, &new_key, 200, Instant::now())
        .await;
    assert_within_promise("an IP rule added from the CLI", &took);

    // Scopes set from the command line: products:read is gone.
    let scoped = cluster.cli(&["api", "scopes", "erp", "orders:read"]).await;
    assert!(scoped.status.success());
    let took = cluster
        .until_every_node(path, &new_key, 403, Instant::now())
        .await;
    assert_within_promise("a scope change made from the CLI", &took);

    // Deleted on node A.
    let response = console.submit(page, "/admin/apis/erp/delete", &[]).await;
    assert_eq!(response.status(), 303);
    let took = cluster
        .until_every_node("/api/v1/me", &new_key, 401, Instant::now())
        .await;
    assert_within_promise("a delete made on node A", &took);
}

#[tokio::test]
async fn a_session_made_on_one_node_works_on_every_node_until_logout_on_any() {
    let Some(cluster) =
        Cluster::start("a_session_made_on_one_node_works_on_every_node_until_logout_on_any").await
    else {
        return;
    };
    let key = cluster.api_user("mobile", &[]).await;
    let token = cluster.login(0, "mobile", &key).await;
    for node in 0..3 {
        assert_eq!(
            cluster.status(node, "/api/v1/me", &token).await,
            200,
            "the session made on node A works on node {node}"
        );
    }

    let logout = cluster
        .client
        .post(cluster.nodes[2].url("/api/v1/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status(), 204);
    let took = cluster
        .until_every_node("/api/v1/me", &token, 401, Instant::now())
        .await;
    assert_within_promise("a logout on node C", &took);

    // Revoking every session from the command line ends them on every node as well.
    let token = cluster.login(1, "mobile", &key).await;
    cluster
        .until_every_node("/api/v1/me", &token, 200, Instant::now())
        .await;
    let revoked = cluster
        .cli(&["api", "sessions", "mobile", "--revoke-all"])
        .await;
    assert!(revoked.status.success());
    let took = cluster
        .until_every_node("/api/v1/me", &token, 401, Instant::now())
        .await;
    assert_within_promise("sessions revoked from the CLI", &took);
}

#[tokio::test]
async fn a_session_kept_busy_on_one_node_is_not_idle_on_another() {
    let Some(cluster) = Cluster::start_with(
        "a_session_kept_busy_on_one_node_is_not_idle_on_another",
        &[("KEYWARD_SESSION_IDLE_TIMEOUT", "8s")],
    )
    .await
    else {
        return;
    };
    let key = cluster.api_user("mobile", &[]).await;
    let token = cluster.login(0, "mobile", &key).await;
    // Node B sees the session once, then node A serves it for longer than the idle timeout.
    assert_eq!(cluster.status(1, "/api/v1/me", &token).await, 200);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(12) {
        assert_eq!(cluster.status(0, "/api/v1/me", &token).await, 200);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        cluster.status(1, "/api/v1/me", &token).await,
        200,
        "node B learns the session's last use from the database instead of timing it out"
    );
}

/// Sends `calls` calls of `key` to the nodes in `order` (round robin), 12 at a time, and
/// returns how many were answered 200 and 429.
async fn load(cluster: &Cluster, key: &str, order: &[usize], calls: usize) -> (usize, usize) {
    use futures_util::StreamExt;
    let answers: Vec<u16> = futures_util::stream::iter(0..calls)
        .map(|i| {
            let node = order[i % order.len()];
            cluster.status(node, "/api/v1/me", key)
        })
        .buffer_unordered(12)
        .collect()
        .await;
    let ok = answers.iter().filter(|s| **s == 200).count();
    let limited = answers.iter().filter(|s| **s == 429).count();
    assert_eq!(ok + limited, calls, "only 200 and 429: {answers:?}");
    (ok, limited)
}

#[tokio::test]
async fn rate_limits_hold_across_the_cluster_within_the_documented_tolerance() {
    let Some(cluster) =
        Cluster::start("rate_limits_hold_across_the_cluster_within_the_documented_tolerance").await
    else {
        return;
    };
    let limit = 600;
    // What one server would admit over `elapsed`: a full bucket and its refill.
    let one_server = |elapsed: Duration| limit + (elapsed.as_secs_f64() * 10.0).ceil() as usize;
    // The README's tolerance: every node may hold one lease (1 % of the limit) unspent.
    let lease = limit / 100;
    let tolerance = 3 * lease;

    // Spread evenly over the three nodes.
    let key = cluster.api_user("spread", &["--rate-limit", "600"]).await;
    let started = Instant::now();
    let (ok, limited) = load(&cluster, &key, &[0, 1, 2], 1500).await;
    let elapsed = started.elapsed();
    eprintln!(
        "rate limit 600/min over 3 nodes, round robin: {ok} admitted, {limited} refused in {:.2} s \
         (one server: at most {}; tolerance {tolerance})",
        elapsed.as_secs_f64(),
        one_server(elapsed)
    );
    assert!(
        ok <= one_server(elapsed) + tolerance,
        "{ok} admitted: the cluster went past its limit and tolerance"
    );
    assert!(
        ok + 2 * (lease - 1) >= limit,
        "{ok} admitted: the cluster fell short of its limit"
    );

    // All on one node first (sticky balancing): that node gets the whole bucket, and the
    // others find it spent.
    let key = cluster.api_user("sticky", &["--rate-limit", "600"]).await;
    let started = Instant::now();
    let (on_a, _) = load(&cluster, &key, &[0], 650).await;
    let (on_b_and_c, _) = load(&cluster, &key, &[1, 2], 300).await;
    let elapsed = started.elapsed();
    eprintln!(
        "rate limit 600/min, all on node A then B and C: {on_a} admitted on A, {on_b_and_c} on B \
         and C in {:.2} s",
        elapsed.as_secs_f64()
    );
    assert!(on_a >= limit, "node A alone got the whole limit: {on_a}");
    assert!(
        on_a + on_b_and_c <= one_server(elapsed) + tolerance,
        "{} admitted in all: past the limit and tolerance",
        on_a + on_b_and_c
    );
}

#[tokio::test]
async fn a_killed_listener_connection_falls_back_then_reconnects() {
    let Some(cluster) =
        Cluster::start("a_killed_listener_connection_falls_back_then_reconnects").await
    else {
        return;
    };
    let key = cluster.api_user("erp", &[]).await;
    cluster
        .until_every_node("/api/v1/me", &key, 200, Instant::now())
        .await;
    {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&cluster.database.url)
            .await
            .expect("connect");
        let killed: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'keyward-listener' AND datname = current_database()) AS t",
        )
        .fetch_one(&mut conn)
        .await
        .expect("terminate");
        assert_eq!(killed, 3, "each node's listener");
        let _ = conn.close().await;
    }
    let disabled = cluster.cli(&["api", "disable", "erp"]).await;
    assert!(disabled.status.success());
    let took = cluster
        .until_every_node("/api/v1/me", &key, 401, Instant::now())
        .await;
    assert_within_promise("a disable right after the listeners were killed", &took);

    cluster.wait_for_listeners(3).await;
    let enabled = cluster.cli(&["api", "enable", "erp"]).await;
    assert!(enabled.status.success());
    let took = cluster
        .until_every_node("/api/v1/me", &key, 200, Instant::now())
        .await;
    assert_within_promise("an enable after the listeners reconnected", &took);
    for node in &cluster.nodes {
        let logs = node.logs();
        assert!(
            logs.contains("lost the credential-change listener"),
            "the drop is logged: {logs}"
        );
        assert!(
            logs.contains("listening for credential changes again"),
            "the reconnect is logged: {logs}"
        );
    }
}
