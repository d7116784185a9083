//! The admin console over plain HTTP: sign-in, roles enforced on the server, CSRF on every
//! form, the key shown once, security headers. (Browser journeys are in `browser.rs`.)

use crate::helpers::{TestApp, spawn_app};
use keyward::domain::admin::{Actor, Role};
use keyward::domain::secret::Secret;
use reqwest::redirect::Policy;
use reqwest::{Client, Response, StatusCode};

/// A browser-like client: keeps cookies, does not follow redirects.
pub struct Console {
    client: Client,
    base: String,
}

pub fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned()
}

impl Console {
    pub fn new(app: &TestApp) -> Self {
        Self::at(&app.url(""))
    }

    /// A console at `base` (`http://127.0.0.1:PORT`), such as one node of a cluster.
    pub fn at(base: &str) -> Self {
        let client = Client::builder()
            .cookie_store(true)
            .redirect(Policy::none())
            .build()
            .expect("client");
        Self {
            client,
            base: base.to_owned(),
        }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("get")
    }

    pub async fn html(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.text().await.expect("html")
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.client
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .expect("post")
    }

    /// Posts a form with the CSRF token of the page the form is on.
    pub async fn submit(&self, page: &str, path: &str, form: &[(&str, &str)]) -> Response {
        let csrf = csrf_of(&self.html(page).await);
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend_from_slice(form);
        self.post(path, &fields).await
    }

    pub async fn sign_in(&self, username: &str, password: &str) -> Response {
        let csrf = csrf_of(&self.html("/admin/login").await);
        self.post(
            "/admin/login",
            &[
                ("csrf", &csrf),
                ("username", username),
                ("password", password),
            ],
        )
        .await
    }
}

pub async fn admin_with_role(app: &TestApp, username: &str, role: Role) -> Console {
    app.admins()
        .create(
            &Actor::system(),
            username,
            role,
            Secret::new("a long test password".into()),
        )
        .await
        .expect("admin");
    let console = Console::new(app);
    assert_eq!(
        console
            .sign_in(username, "a long test password")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    console
}

#[tokio::test]
async fn signing_in_sets_a_strict_http_only_cookie_scoped_to_admin() {
    let app = spawn_app().await;
    let console = Console::new(&app);

    let response = console.sign_in("admin", "test-admin-password").await;

    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/admin/apis");
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .find(|c| c.to_str().is_ok_and(|c| c.starts_with("kw_admin=")));
    let cookie = cookie.expect("session cookie").to_str().expect("ascii");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    let page = console.html("/admin/apis").await;
    assert!(page.contains("Add New"));
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_repeated_failures_are_throttled() {
    let app = spawn_app().await;
    let console = Console::new(&app);

    let wrong = console.sign_in("admin", "not the password").await;
    assert_eq!(wrong.status(), StatusCode::OK);
    assert!(
        wrong
            .text()
            .await
            .expect("html")
            .contains("Wrong username or password")
    );
    for _ in 0..12 {
        console.sign_in("admin", "still not it").await;
    }
    let right = console.sign_in("admin", "test-admin-password").await;
    assert_eq!(
        right.status(),
        StatusCode::OK,
        "even the right password waits"
    );
    assert!(
        right
            .text()
            .await
            .expect("html")
            .contains("Too many failed sign-ins")
    );
}

#[tokio::test]
async fn pages_without_a_session_send_to_the_sign_in() {
    let app = spawn_app().await;
    let console = Console::new(&app);

    for path in [
        "/admin/apis",
        "/admin/apis/new",
        "/admin/admins",
        "/admin/audit",
    ] {
        let response = console.get(path).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(response.headers()["location"], "/admin/login");
    }
}

#[tokio::test]
async fn every_form_needs_the_csrf_token_of_its_own_session() {
    let app = spawn_app().await;
    let console = admin_with_role(&app, "owner", Role::Administrator).await;
    let other = admin_with_role(&app, "other", Role::Administrator).await;
    let foreign_token = csrf_of(&other.html("/admin/apis").await);

    for form in [
        vec![("username", "no-csrf")],
        vec![("csrf", "forged"), ("username", "forged-csrf")],
        vec![
            ("csrf", foreign_token.as_str()),
            ("username", "foreign-csrf"),
        ],
    ] {
        let response = console.post("/admin/apis", &form).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{form:?}");
    }
    assert!(
        app.credentials.list(None).await.expect("list").is_empty(),
        "nothing was created"
    );
    let login_without_token = Console::new(&app)
        .post(
            "/admin/login",
            &[("username", "admin"), ("password", "test-admin-password")],
        )
        .await;
    assert_eq!(login_without_token.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_viewer_reads_but_cannot_change_anything_even_by_posting_by_hand() {
    let app = spawn_app().await;
    app.api_user("watched", &["products:read"]).await;
    let viewer = admin_with_role(&app, "auditor", Role::Viewer).await;

    let page = viewer.html("/admin/apis/watched").await;
    assert!(!page.contains("id=\"disable\""), "no buttons for a viewer");
    viewer.html("/admin/apis/watched/history").await;
    for (path, form) in [
        ("/admin/apis", vec![("username", "sneaky")]),
        ("/admin/apis/watched/status", vec![("status", "disabled")]),
        ("/admin/apis/watched/ips", vec![("rule", "*")]),
        ("/admin/apis/watched/roll", vec![("grace", "0")]),
        ("/admin/apis/watched/delete", vec![]),
        (
            "/admin/admins",
            vec![
                ("username", "sneaky2"),
                ("role", "administrator"),
                ("password", "a long enough one"),
            ],
        ),
    ] {
        let response = viewer.submit("/admin/apis", path, &form).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let user = app.credentials.get("watched").await.expect("still there");
    assert_eq!(user.status.as_str(), "enabled");
    assert_eq!(user.ips.len(), 2);
    assert_eq!(
        viewer.get("/admin/apis/new").await.status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn an_api_manager_manages_api_users_but_not_admins() {
    let app = spawn_app().await;
    let manager = admin_with_role(&app, "ops", Role::ApiManager).await;

    assert_eq!(
        manager.get("/admin/admins").await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        manager.get("/admin/audit").await.status(),
        StatusCode::FORBIDDEN
    );
    let created = manager
        .submit(
            "/admin/apis/new",
            "/admin/apis",
            &[
                ("username", "from-ops"),
                ("ips", "127.0.0.1"),
                ("scope", "orders:read"),
            ],
        )
        .await;
    assert_eq!(created.status(), StatusCode::OK);
    let audit = app.db.audit_log(None, 10).await.expect("audit");
    assert_eq!(audit[0].actor, "admin:ops");
    assert_eq!(audit[0].actor_ip.as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn a_created_key_is_shown_once_works_and_is_never_shown_again() {
    let app = spawn_app().await;
    let console = admin_with_role(&app, "owner", Role::Administrator).await;

    let response = console
        .submit(
            "/admin/apis/new",
            "/admin/apis",
            &[
                ("username", "erp"),
                ("description", "ERP"),
                ("ips", "127.0.0.1"),
                ("scope", "products:read"),
                ("scope", "orders:write"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let html = response.text().await.expect("html");
    let key = html
        .split("id=\"new-key\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the key")
        .to_owned();
    assert!(key.starts_with("kw_"));

    assert_eq!(app.get("/api/v1/orders", &key).await.status(), 200);
    for path in ["/admin/apis", "/admin/apis/erp", "/admin/apis/erp/history"] {
        assert!(
            !console.html(path).await.contains(&key),
            "{path} shows the key again"
        );
    }
}

#[tokio::test]
async fn invalid_fields_come_back_with_their_errors_and_nothing_is_created() {
    let app = spawn_app().await;
    let console = admin_with_role(&app, "owner", Role::Administrator).await;

    let response = console
        .submit(
            "/admin/apis/new",
            "/admin/apis",
            &[("username", "x"), ("ips", "10.0.0.5/8\nnot-an-ip")],
        )
        .await;

    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.expect("html");
    assert!(
        html.contains("must be 3 to 20 characters long"),
        "username error shown"
    );
    assert!(
        html.contains("10.0.0.0/8"),
        "the rule error suggests the block"
    );
    assert!(app.credentials.list(None).await.expect("list").is_empty());
}

#[tokio::test]
async fn console_pages_carry_the_security_headers() {
    let app = spawn_app().await;
    let console = admin_with_role(&app, "owner", Role::Administrator).await;

    let response = console.get("/admin/apis").await;
    let headers = response.headers();
    let csp = headers["content-security-policy"].to_str().expect("ascii");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(headers.contains_key("referrer-policy"));
    assert_eq!(headers["cache-control"], "no-store");
    let css = console.get("/admin/assets/console.css").await;
    assert_eq!(css.headers()["cache-control"], "public, max-age=3600");
    assert!(
        css.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/css")
    );
}

#[tokio::test]
async fn an_idle_console_session_ends_and_signing_out_ends_it_at_once() {
    let app = spawn_app().await;
    let console = admin_with_role(&app, "owner", Role::Administrator).await;
    app.clock.advance(time::Duration::minutes(31));
    assert_eq!(
        console.get("/admin/apis").await.status(),
        StatusCode::SEE_OTHER
    );

    let again = admin_with_role(&app, "owner2", Role::Administrator).await;
    let response = again.submit("/admin/apis", "/admin/logout", &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        again.get("/admin/apis").await.status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn the_history_exports_as_csv_and_shows_refusals_in_words() {
    let app = spawn_app().await;
    let key = app.api_user("exported", &["products:read"]).await;
    app.get("/api/v1/products", &key).await;
    app.get("/api/v1/orders", &key).await;
    let console = admin_with_role(&app, "owner", Role::Administrator).await;

    let page = console.html("/admin/apis/exported/history").await;
    assert!(page.contains("The API user lacks the scope this call needs"));
    let refused = console
        .html("/admin/apis/exported/history?outcome=refused")
        .await;
    assert!(!refused.contains("GET /api/v1/products"));
    let csv = console.get("/admin/apis/exported/history.csv").await;
    assert_eq!(
        csv.headers()["cache-control"],
        "no-store",
        "it holds addresses"
    );
    assert!(
        csv.headers()["content-disposition"]
            .to_str()
            .expect("ascii")
            .contains("attachment")
    );
    let text = csv.text().await.expect("csv");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("date_added,date_modified,call,ip,status,outcome"));
    assert!(
        lines[0].ends_with(",request_id,api_user_id"),
        "{}",
        lines[0]
    );
    assert_eq!(lines.len(), 3);
    let id = app.credentials.get("exported").await.expect("user").id.0;
    assert!(lines[1].ends_with(&format!(",{id}")), "{}", lines[1]);
    assert!(text.contains("insufficient_scope"));
}

#[tokio::test]
async fn refused_addresses_are_suggested_and_allowed_with_one_click() {
    let app = crate::helpers::spawn_app_with(crate::helpers::Settings {
        trusted_proxies: vec!["127.0.0.1/32"],
        ..Default::default()
    })
    .await;
    let key = app.api_user("moving", &[]).await;
    let from_new_server = app
        .bearer(reqwest::Method::GET, "/api/v1/me", &key)
        .header("X-Forwarded-For", "198.51.100.23")
        .send()
        .await
        .expect("call");
    assert_eq!(from_new_server.status(), 403);
    let console = admin_with_role(&app, "owner", Role::Administrator).await;

    let page = console.html("/admin/apis/moving/history").await;
    assert!(page.contains("198.51.100.23") && page.contains("Allow"));
    let allowed = console
        .submit(
            "/admin/apis/moving/history",
            "/admin/apis/moving/ips",
            &[("rule", "198.51.100.23")],
        )
        .await;
    assert_eq!(allowed.status(), StatusCode::SEE_OTHER);
    // A form without its field is a console page saying which, not axum's plain text.
    let incomplete = console
        .submit("/admin/apis/moving/history", "/admin/apis/moving/ips", &[])
        .await;
    assert_eq!(incomplete.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(incomplete.headers()["cache-control"], "no-store");
    let page = incomplete.text().await.expect("page");
    assert!(
        page.contains("<html") && page.contains("missing field `rule`"),
        "{page}"
    );

    let again = app
        .bearer(reqwest::Method::GET, "/api/v1/me", &key)
        .header("X-Forwarded-For", "198.51.100.23")
        .send()
        .await
        .expect("call");
    assert_eq!(again.status(), 200);
}

#[tokio::test]
async fn an_api_manager_cannot_touch_a_management_key() {
    let app = spawn_app().await;
    app.api_user_with(keyward::credentials::CreateApiUser {
        username: "provisioner".into(),
        ips: vec!["127.0.0.1".into()],
        scopes: vec!["api_users:read".into()],
        management: true,
        ..Default::default()
    })
    .await;
    let manager = admin_with_role(&app, "ops", Role::ApiManager).await;

    for (path, form) in [
        (
            "/admin/apis/provisioner",
            vec![("scope", "api_users:write"), ("ips", "127.0.0.1")],
        ),
        ("/admin/apis/provisioner/roll", vec![("grace", "0")]),
        ("/admin/apis/provisioner/ips", vec![("rule", "*")]),
        (
            "/admin/apis/provisioner/status",
            vec![("status", "disabled")],
        ),
    ] {
        let response = manager.submit("/admin/apis", path, &form).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let user = app.credentials.get("provisioner").await.expect("user");
    assert_eq!(user.scopes.to_db(), "api_users:read");
}

#[tokio::test]
async fn a_deleted_users_history_stays_readable_in_the_console() {
    let app = spawn_app().await;
    let key = app.api_user("retired", &[]).await;
    app.get("/api/v1/me", &key).await;
    app.credentials
        .delete(&Actor::system(), "retired")
        .await
        .expect("delete");
    let console = admin_with_role(&app, "owner", Role::Administrator).await;

    assert!(
        console
            .html("/admin/apis/retired/history")
            .await
            .contains("GET /api/v1/me")
    );
    let csv = console
        .get("/admin/apis/retired/history.csv")
        .await
        .text()
        .await
        .expect("csv");
    assert_eq!(csv.lines().count(), 2);
}

#[tokio::test]
async fn absurd_history_filters_are_refused_not_crashed_on() {
    let app = spawn_app().await;
    app.api_user("filtered", &[]).await;
    let console = admin_with_role(&app, "owner", Role::Administrator).await;

    for query in [
        "to=9999-12-31",
        "from=0000-01-01",
        "from=yesterday",
        "outcome=nonsense",
        "before=-1",
    ] {
        let status = console
            .get(&format!("/admin/apis/filtered/history?{query}"))
            .await
            .status();
        assert!(
            status == StatusCode::OK || status == StatusCode::BAD_REQUEST,
            "{query}: {status}"
        );
    }
    assert_eq!(
        console
            .get("/admin/apis/filtered/history?to=9999-12-31")
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn a_new_password_signs_the_admin_out_and_the_last_administrator_stays() {
    let app = spawn_app().await;
    let console = admin_with_role(&app, "owner", Role::Administrator).await;

    app.admins()
        .set_password(
            &Actor::system(),
            "owner",
            Secret::new("another long password".into()),
        )
        .await
        .expect("passwd");
    assert_eq!(
        console.get("/admin/apis").await.status(),
        StatusCode::SEE_OTHER
    );

    app.admins()
        .update(&Actor::system(), "owner", Some(Role::Viewer), None)
        .await
        .expect("one of two demoted");
    let last = app
        .admins()
        .update(&Actor::system(), "admin", Some(Role::Viewer), None)
        .await;
    assert!(last.is_err(), "the last administrator cannot be demoted");
}
