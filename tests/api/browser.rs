//! The console in a real headless Chromium, driven through WebDriver (chromedriver). Run with
//! `cargo test -- --include-ignored` where `chromium` and `chromium-driver` are installed.
//! With KEYWARD_SCREENSHOTS=DIR the journey also saves screenshots of the main pages there.

use crate::helpers::{TestApp, spawn_app};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// One browser at a time: three headless Chromiums on a small machine starve one another, and
/// a page that loads late makes a journey fail for nothing.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Browser {
    _turn: tokio::sync::MutexGuard<'static, ()>,
    client: Client,
    _driver: Child,
    base: String,
    shots: Option<std::path::PathBuf>,
}

async fn free_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("port");
    listener.local_addr().expect("addr").port()
}

impl Browser {
    async fn open(app: &TestApp, width: u32, height: u32) -> Self {
        let turn = ONE_AT_A_TIME.lock().await;
        let port = free_port().await;
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver (apt-get install chromium-driver)");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--no-first-run", "--disable-quic", format!("--window-size={width},{height}"),
                ],
            }),
        );
        let mut client = None;
        for _ in 0..100 {
            match ClientBuilder::rustls()
                .expect("tls")
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(connected) => {
                    client = Some(connected);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let shots = std::env::var_os("KEYWARD_SCREENSHOTS").map(std::path::PathBuf::from);
        Self {
            _turn: turn,
            client: client.expect("a WebDriver session"),
            _driver: driver,
            base: app.url(""),
            shots,
        }
    }

    /// Opens `path` and waits until the browser is there, so the next look is at this page.
    async fn go(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        self.client.goto(&url).await.expect("navigate");
        let url = url::Url::parse(&url).expect("url");
        self.client.wait().for_url(&url).await.expect("arrived");
    }

    async fn fill(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.expect(css);
        field.clear().await.expect("clear");
        field.send_keys(text).await.expect("type");
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .expect(css)
            .click()
            .await
            .expect("click");
    }

    /// Clicks a submit button and waits for the page it leads to, shown by `then`.
    async fn submit(&self, css: &str, then: &str) {
        self.click(css).await;
        self.client
            .wait()
            .for_element(Locator::Css(then))
            .await
            .expect(then);
    }

    /// The secret on a page that shows it once (a new key, a webhook's signing secret).
    async fn shown_once(&self) -> String {
        self.client
            .find(Locator::Css("#new-key"))
            .await
            .expect("the secret's field")
            .prop("value")
            .await
            .expect("value")
            .expect("a secret")
    }

    async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .expect(css)
            .text()
            .await
            .expect("text")
    }

    /// Waits until the element with this id reads `text`, as a script sets it once a promise
    /// settles (the Copy buttons), however busy the machine is.
    async fn wait_for_text(&self, id: &str, text: &str) {
        let xpath = format!("//*[@id='{id}' and normalize-space()='{text}']");
        self.client
            .wait()
            .for_element(Locator::XPath(&xpath))
            .await
            .expect(text);
    }

    async fn page(&self) -> String {
        self.client.source().await.expect("source")
    }

    async fn shot(&self, name: &str) {
        if let Some(dir) = &self.shots {
            std::fs::create_dir_all(dir).expect("screenshot dir");
            let png = self.client.screenshot().await.expect("screenshot");
            std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
        }
    }

    async fn sign_in(&self, username: &str, password: &str) {
        self.go("/admin/login").await;
        self.shot("console-login").await;
        self.fill("#username", username).await;
        self.fill("#password", password).await;
        self.click("button[type=submit]").await;
        self.client
            .wait()
            .for_element(Locator::Css(".topbar"))
            .await
            .expect("signed in");
    }

    async fn close(self) {
        let _ = self.client.close().await;
    }
}

#[tokio::test]
#[ignore = "needs chromium and chromium-driver"]
async fn an_admin_creates_uses_disables_rolls_and_deletes_a_key_in_the_browser() {
    let app = spawn_app().await;
    let demo = app.api_user("mobile-app", &["products:read"]).await;
    app.get("/api/v1/products", &demo).await;
    app.get("/api/v1/orders", &demo).await;
    let browser = Browser::open(&app, 1280, 900).await;

    browser.sign_in("admin", "test-admin-password").await;
    assert!(browser.page().await.contains("mobile-app"));
    browser.shot("console-apis").await;

    // Add New: the viewer's own address with one click, one scope ticked.
    browser.submit("#add-new", "#api-form").await;
    browser.fill("#username", "inventory-sync").await;
    browser.fill("#description", "Warehouse stock sync").await;
    browser.click("#add-my-ip").await;
    let ips = browser
        .client
        .find(Locator::Css("#ips"))
        .await
        .expect("ips")
        .prop("value")
        .await
        .expect("value");
    assert_eq!(
        ips.as_deref(),
        Some("127.0.0.1"),
        "Add my IP filled the list"
    );
    browser.click("input[value='products:read']").await;
    browser.shot("console-add-new").await;
    browser.submit("#save", "#new-key").await;

    // The key, shown once, with a Copy button.
    let key = browser.shown_once().await;
    assert!(key.starts_with("kw_"));
    browser.click("#copy-key").await;
    browser.wait_for_text("copy-key", "Copied").await;
    browser.shot("console-key-once").await;
    browser.submit("#done", "#tab-history").await;

    // The key works, the call is in the history, and the key is not shown again.
    assert_eq!(app.get("/api/v1/products", &key).await.status(), 200);
    browser.submit("#tab-history", "#history").await;
    let history = browser.page().await;
    assert!(history.contains("GET /api/v1/products"));
    assert!(!history.contains(&key));
    browser.go("/admin/apis/inventory-sync").await;
    assert!(
        !browser.page().await.contains(&key),
        "the key is not shown again on reload"
    );
    browser.shot("console-api-user").await;

    // Disable: the next call is refused, and the history says why.
    browser.submit("#disable", "#enable").await;
    assert!(browser.text("#status-badge").await.contains("disabled"));
    assert_eq!(app.get("/api/v1/products", &key).await.status(), 401);
    browser.submit("#tab-history", "#history").await;
    assert!(browser.page().await.contains("The API user is disabled"));
    browser.shot("console-history").await;
    browser.go("/admin/apis/inventory-sync").await;
    browser.submit("#enable", "#disable").await;

    // Enter in a settings field saves them, and adds no address to the list.
    let ips_before = app
        .credentials
        .get("inventory-sync")
        .await
        .expect("user")
        .ips;
    browser.fill("#description", "Stock sync\u{E007}").await;
    let mut saved = app.credentials.get("inventory-sync").await.expect("user");
    for _ in 0..100 {
        if saved.description == "Stock sync" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        saved = app.credentials.get("inventory-sync").await.expect("user");
    }
    assert_eq!(saved.description, "Stock sync", "Enter saved the form");
    assert_eq!(saved.ips, ips_before);

    // Roll with no grace: a new key, the old one refused.
    browser
        .client
        .find(Locator::Css("#grace"))
        .await
        .expect("grace")
        .select_by_value("0")
        .await
        .expect("select");
    browser.submit("#roll", "#new-key").await;
    let rolled = browser.shown_once().await;
    assert_ne!(rolled, key);
    assert_eq!(app.get("/api/v1/products", &key).await.status(), 401);
    assert_eq!(app.get("/api/v1/products", &rolled).await.status(), 200);

    // Delete, after a confirmation that shows the recent use.
    browser.go("/admin/apis/inventory-sync/delete").await;
    assert!(
        browser
            .page()
            .await
            .contains("an integration still depends on it")
    );
    browser.shot("console-delete").await;
    // The list answers with its notice; the confirmation page has panels of its own.
    browser.submit("#confirm-delete", ".notice.ok").await;
    assert!(
        !browser.text("main").await.contains("inventory-sync"),
        "gone from the list"
    );
    assert_eq!(app.get("/api/v1/products", &rolled).await.status(), 401);

    browser.go("/admin/audit").await;
    let audit = browser.page().await;
    assert!(audit.contains("api_user.delete"), "{audit}");
    browser.shot("console-audit").await;
    browser.go("/admin/admins").await;
    browser.shot("console-admins").await;
    browser.close().await;
}

#[tokio::test]
#[ignore = "needs chromium and chromium-driver"]
async fn an_admin_adds_a_webhook_copies_its_secret_once_and_sends_a_test_event() {
    let app = spawn_app().await;
    let receiver = crate::receiver::Receiver::start().await;
    let browser = Browser::open(&app, 1280, 900).await;
    browser.sign_in("admin", "test-admin-password").await;

    browser.go("/admin/webhooks").await;
    browser.fill("#url", &receiver.url).await;
    browser.fill("#description", "Ops pager").await;
    browser.click("input[value='key.expiring']").await;
    browser.shot("console-webhooks").await;
    browser.submit("#add-webhook", "#new-key").await;
    let secret = browser.shown_once().await;
    assert!(secret.starts_with("whsec_"));
    browser.click("#copy-secret").await;
    browser.wait_for_text("copy-secret", "Copied").await;
    browser.shot("console-webhook-secret").await;

    browser.submit("#done", "#send-test").await;
    let page = browser.page().await;
    assert!(!page.contains(&secret), "the secret is not shown again");
    assert!(page.contains("key.exposed") && !page.contains(">key.expiring<"));
    browser.submit("#send-test", "#deliveries").await;
    let event = &receiver.wait_for("webhook.test", 1).await[0];
    assert!(event.signed_with(&secret));

    // The secret rolled with an hour's grace, once confirmed: the new one shown once, the old one
    // signing beside it.
    browser
        .client
        .find(Locator::Css("#roll-grace"))
        .await
        .expect("grace")
        .select_by_value("1h")
        .await
        .expect("select");
    browser.click("#roll-secret").await;
    browser
        .client
        .accept_alert()
        .await
        .expect("the confirmation");
    browser
        .client
        .wait()
        .for_element(Locator::Css("#old-secret"))
        .await
        .expect("the new secret's page");
    let rolled = browser.shown_once().await;
    assert!(rolled.starts_with("whsec_") && rolled != secret);
    browser.shot("console-webhook-rolled").await;
    browser.submit("#done", "#previous-secret").await;
    browser.submit("#send-test", "#deliveries").await;
    let event = &receiver.wait_for("webhook.test", 2).await[1];
    assert!(event.signed_with(&rolled) && event.signed_with(&secret));
    browser
        .go(&format!(
            "/admin/webhooks/{}",
            app.webhooks.list().await.expect("list")[0].id
        ))
        .await;
    assert!(browser.text("#deliveries").await.contains("webhook.test"));
    browser.shot("console-webhook").await;
    browser.close().await;
}

#[tokio::test]
#[ignore = "needs chromium and chromium-driver"]
async fn a_viewer_sees_no_controls_and_the_console_fits_a_phone() {
    let app = spawn_app().await;
    app.api_user("watched", &["orders:read"]).await;
    app.admins()
        .create(
            &keyward::domain::admin::Actor::system(),
            "auditor",
            keyward::domain::admin::Role::Viewer,
            keyward::domain::secret::Secret::new("a long test password".into()),
        )
        .await
        .expect("viewer");
    let browser = Browser::open(&app, 390, 844).await;

    browser.sign_in("auditor", "a long test password").await;
    let list = browser.page().await;
    assert!(list.contains("watched"), "{list}");
    assert!(!list.contains("id=\"add-new\""));
    browser.shot("console-apis-phone").await;
    browser.go("/admin/apis/watched").await;
    let page = browser.page().await;
    assert!(!page.contains("id=\"disable\"") && !page.contains("id=\"roll\""));
    assert!(page.contains("Your role can read these settings"), "{page}");
    let overflow: serde_json::Value = browser
        .client
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(
        overflow.as_i64(),
        Some(0),
        "no horizontal scrolling on a phone"
    );
    browser.shot("console-api-user-phone").await;

    // The webhooks page too: no form for a viewer, and no sideways scrolling.
    app.webhooks
        .add(
            &keyward::domain::admin::Actor::system(),
            keyward::webhooks::AddWebhook {
                url: "https://hooks.example.com/a/rather/long/path/for/the/keyward/alerts".into(),
                ..Default::default()
            },
        )
        .await
        .expect("webhook");
    browser.go("/admin/webhooks").await;
    let page = browser.page().await;
    assert!(
        page.contains("hooks.example.com") && !page.contains("id=\"new-webhook\""),
        "{page}"
    );
    let overflow: serde_json::Value = browser
        .client
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(overflow.as_i64(), Some(0), "the webhooks page fits a phone");
    browser.close().await;
}
