//! The admin console over plain HTTP: sign-in, roles enforced on the server, CSRF on every
//! form, the key shown once, security headers. (Browser journeys are in `browser.rs`.)

use crate::helpers::{TestApp, spawn_app};
use keyward::domain::admin::{Actor, Role};
use keyward::domain::secret::Secret;
use reqwest::redirect::Policy;
use reqwest::{Client, Response, StatusCode};

/// A browser-like client: keeps cookies, does not follow redirects.
pub struct Console {
    pub client: Client,
    pub base: String,
}

pub fn csrf_of(html: &str) -> String {
    field_of(html, "csrf")
}

/// The value of the first hidden field named `name` on a page.
pub fn field_of(html: &str, name: &str) -> String {
    html.split(&format!("name=\"{name}\" value=\""))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned()
}

/// The key shown once on a page.
pub fn shown_key(html: &str) -> String {
    html.split("id=\"new-key\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the key")
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
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    let wait: u64 = right.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(wait >= 1);
    let page = right.text().await.expect("html");
    assert!(
        page.contains("Too many failed sign-ins") && page.contains("name=\"csrf\""),
        "the same page, to try again"
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
    let key = shown_key(&response.text().await.expect("html"));
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
        // A NUL, which PostgreSQL refuses in any text.
        "ip=%00",
        "outcome=%00",
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
    for page in ["/admin/apis?q=%00", "/admin/apis/filtered/history?ip=%00"] {
        assert_eq!(
            console.get(page).await.status(),
            StatusCode::BAD_REQUEST,
            "{page}"
        );
    }
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

/// The roll form of `username`'s page, as a browser sends it.
async fn roll_form(console: &Console, username: &str, grace: &str) -> Vec<(&'static str, String)> {
    let page = console.html(&format!("/admin/apis/{username}")).await;
    vec![
        ("csrf", csrf_of(&page)),
        ("current_key", field_of(&page, "current_key")),
        ("grace", grace.to_owned()),
    ]
}

async fn post_owned(console: &Console, path: &str, form: &[(&'static str, String)]) -> Response {
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    console.post(path, &form).await
}

#[tokio::test]
async fn a_roll_sent_again_rolls_nothing_and_the_old_key_keeps_its_grace() {
    let app = spawn_app().await;
    let old = app.api_user("resent", &[]).await;
    let console = admin_with_role(&app, "owner", Role::Administrator).await;
    let form = roll_form(&console, "resent", "24h").await;

    let first = post_owned(&console, "/admin/apis/resent/roll", &form).await;
    assert_eq!(first.status(), StatusCode::OK);
    let new = shown_key(&first.text().await.expect("html"));
    // The browser's reload of the "Key rolled" page sends the same form again.
    let again = post_owned(&console, "/admin/apis/resent/roll", &form).await;

    assert_eq!(again.status(), StatusCode::CONFLICT);
    let page = again.text().await.expect("html");
    assert!(page.contains("Key already rolled"), "{page}");
    assert!(page.contains("Nothing was rolled now"), "{page}");
    assert!(
        page.contains("keeps working until"),
        "the grace is shown: {page}"
    );
    assert!(page.contains("href=\"/admin/apis/resent\""), "a link back");
    assert!(!page.contains(&new), "the new key is not shown again");
    assert_eq!(
        app.get("/api/v1/me", &old).await.status(),
        200,
        "still in grace"
    );
    assert_eq!(app.get("/api/v1/me", &new).await.status(), 200);
    let user = app.credentials.get("resent").await.expect("user");
    assert_eq!(user.keys.len(), 2, "one roll, one new key");
}

#[tokio::test]
async fn two_admins_rolling_at_once_roll_once() {
    let app = spawn_app().await;
    let old = app.api_user("raced", &[]).await;
    let one = admin_with_role(&app, "one", Role::Administrator).await;
    let two = admin_with_role(&app, "two", Role::Administrator).await;
    let (form_one, form_two) = (
        roll_form(&one, "raced", "1h").await,
        roll_form(&two, "raced", "1h").await,
    );

    let (a, b) = tokio::join!(
        post_owned(&one, "/admin/apis/raced/roll", &form_one),
        post_owned(&two, "/admin/apis/raced/roll", &form_two),
    );

    let mut statuses = [a.status(), b.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);
    assert_eq!(app.get("/api/v1/me", &old).await.status(), 200, "in grace");
    let user = app.credentials.get("raced").await.expect("user");
    assert_eq!(user.keys.len(), 2);
}

#[tokio::test]
async fn deleting_twice_or_ending_an_ended_session_says_it_is_done_already() {
    let app = spawn_app().await;
    let key = app.api_user("twice", &[]).await;
    let token = app.login("twice", &key).await;
    let console = admin_with_role(&app, "owner", Role::Administrator).await;
    let page = console.html("/admin/apis/twice/sessions").await;
    let session = field_of(&page, "session");
    let csrf = csrf_of(&page);
    let end = [("csrf", csrf.as_str()), ("session", session.as_str())];

    assert_eq!(
        console
            .post("/admin/apis/twice/sessions", &end)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let ended_again = console.post("/admin/apis/twice/sessions", &end).await;
    assert_eq!(ended_again.status(), StatusCode::NOT_FOUND);
    assert!(
        ended_again
            .text()
            .await
            .expect("html")
            .contains("ended already")
    );
    let none_open = console
        .post("/admin/apis/twice/sessions", &[("csrf", csrf.as_str())])
        .await;
    assert_eq!(
        none_open.headers()["location"],
        "/admin/apis/twice/sessions?done=none_open"
    );
    assert_eq!(app.get("/api/v1/me", &token).await.status(), 401);

    let delete = [("csrf", csrf.as_str())];
    let first = console.post("/admin/apis/twice/delete", &delete).await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let again = console.post("/admin/apis/twice/delete", &delete).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    assert!(
        again
            .text()
            .await
            .expect("html")
            .contains("deleted already")
    );
}

/// Submits a form the console must refuse (422) and gives back the page it answers with.
async fn refused_page(console: &Console, page: &str, path: &str, form: &[(&str, &str)]) -> String {
    let response = console.submit(page, path, form).await;
    assert_eq!(
        response.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "{path}"
    );
    response.text().await.expect("html")
}

#[tokio::test]
async fn a_refused_edit_keeps_what_was_typed_with_each_error_under_its_field() {
    let app = spawn_app().await;
    app.api_user("edited", &["orders:read"]).await;
    let console = admin_with_role(&app, "owner", Role::Administrator).await;

    let html = refused_page(
        &console,
        "/admin/apis/edited",
        "/admin/apis/edited",
        &[
            ("description", "Typed, not stored"),
            ("environment", "staging"),
            ("rate_limit", "-5"),
            ("ips", "192.0.2.1\nnot-an-ip"),
            ("scope", "products:write"),
        ],
    )
    .await;
    assert!(html.contains("value=\"Typed, not stored\""), "{html}");
    assert!(
        html.contains("<option value=\"staging\" selected>"),
        "{html}"
    );
    assert!(html.contains("value=\"-5\""), "{html}");
    assert!(html.contains("192.0.2.1\nnot-an-ip</textarea>"), "{html}");
    assert!(html.contains("value=\"products:write\" checked"), "{html}");
    assert!(!html.contains("value=\"orders:read\" checked"), "{html}");
    // Both errors at once, by the names the form shows, the range said.
    assert!(
        html.contains("<strong>Rate limit</strong>: must be a whole number from 1 to 1000000"),
        "{html}"
    );
    assert!(html.contains("<strong>IP rule 2</strong>"), "{html}");
    assert!(!html.contains("rate_limit_per_minute") && !html.contains("ips[1]"));
    let user = app.credentials.get("edited").await.expect("user");
    assert_eq!(user.description, "", "nothing saved");
    assert_eq!(user.environment.as_str(), "production");
}

#[tokio::test]
async fn every_field_error_of_add_new_comes_at_once_by_its_label() {
    let app = spawn_app().await;
    let console = admin_with_role(&app, "owner", Role::Administrator).await;

    let html = refused_page(
        &console,
        "/admin/apis/new",
        "/admin/apis",
        &[
            ("username", "x"),
            ("description", "kept"),
            ("rate_limit", "-5"),
            ("key_length", "12"),
            ("environment", "bogus"),
            ("ips", "192.0.2.1\n300.1.1.1\nnope"),
        ],
    )
    .await;
    for expected in [
        "<strong>API username</strong>: ",
        "<strong>Environment</strong>: `bogus` is not one of production, staging, development",
        "<strong>Rate limit</strong>: must be a whole number from 1 to 1000000 calls per minute",
        "<strong>Key length</strong>: must be a whole number from 64 to 256 characters",
        "<strong>IP rule 2</strong>: ",
        "<strong>IP rule 3</strong>: ",
    ] {
        assert!(html.contains(expected), "{expected} in {html}");
    }
    assert!(html.contains("value=\"kept\"") && html.contains("value=\"-5\""));
    assert!(app.credentials.list(None).await.expect("list").is_empty());
}

#[tokio::test]
async fn an_unknown_environment_is_refused_on_create_and_on_edit() {
    let app = spawn_app().await;
    app.api_user("staged", &[]).await;
    let console = admin_with_role(&app, "owner", Role::Administrator).await;

    let created = refused_page(
        &console,
        "/admin/apis/new",
        "/admin/apis",
        &[("username", "bogus-env"), ("environment", "bogus")],
    )
    .await;
    assert!(created.contains("`bogus` is not one of"));
    assert!(app.credentials.get("bogus-env").await.is_err());
    let edited = refused_page(
        &console,
        "/admin/apis/staged",
        "/admin/apis/staged",
        &[
            ("environment", "bogus"),
            ("description", "not saved"),
            ("ips", "127.0.0.1"),
        ],
    )
    .await;
    assert!(edited.contains("`bogus` is not one of"));
    assert_eq!(
        app.credentials
            .get("staged")
            .await
            .expect("user")
            .description,
        ""
    );
}

#[tokio::test]
async fn a_taken_username_comes_back_under_its_field_with_the_form_kept() {
    let app = spawn_app().await;
    app.api_user("taken", &[]).await;
    let console = admin_with_role(&app, "owner", Role::Administrator).await;

    let html = refused_page(
        &console,
        "/admin/apis/new",
        "/admin/apis",
        &[
            ("username", "taken"),
            ("description", "Second try"),
            ("ips", "192.0.2.7"),
            ("scope", "orders:read"),
        ],
    )
    .await;
    assert!(html.contains("<strong>API username</strong>"), "{html}");
    let under_field = html
        .split("id=\"username\"")
        .nth(1)
        .and_then(|rest| rest.split("</div>").next())
        .unwrap_or_default();
    assert!(under_field.contains("field-error"), "{under_field}");
    assert!(html.contains("value=\"Second try\"") && html.contains("192.0.2.7</textarea>"));
    assert!(html.contains("value=\"orders:read\" checked"));
    assert!(!html.contains("id=\"new-key\""), "no key");
}

#[tokio::test]
async fn add_my_ip_works_without_javascript_on_an_api_users_page() {
    let app = crate::helpers::spawn_app_with(crate::helpers::Settings {
        trusted_proxies: vec!["127.0.0.1/32"],
        ..Default::default()
    })
    .await;
    app.api_user("roaming", &[]).await;
    let console = admin_with_role(&app, "owner", Role::Administrator).await;
    let page = console.html("/admin/apis/roaming").await;
    assert!(
        page.contains("type=\"submit\" name=\"add_my_ip\""),
        "a real button"
    );

    // The viewer's address as the server reads it (a trusted proxy's header), not as sent.
    let response = console
        .client
        .post(format!("{}/admin/apis/roaming", console.base))
        .header("X-Forwarded-For", "203.0.113.50")
        .form(&[
            ("csrf", csrf_of(&page).as_str()),
            ("description", "typed"),
            ("ips", "127.0.0.1"),
            ("add_my_ip", "on"),
        ])
        .send()
        .await
        .expect("post");

    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.expect("html");
    assert!(
        html.contains("127.0.0.1\n203.0.113.50</textarea>"),
        "{html}"
    );
    assert!(html.contains("value=\"typed\"") && html.contains("Save to keep it"));
    let user = app.credentials.get("roaming").await.expect("user");
    assert_eq!(user.ips.len(), 2, "nothing saved until Save");
    assert_eq!(user.description, "");
}

#[tokio::test]
async fn a_refused_address_stays_in_its_field_and_a_listed_one_is_said_so() {
    let app = spawn_app().await;
    app.api_user("listed", &[]).await;
    let console = admin_with_role(&app, "owner", Role::Administrator).await;

    let html = refused_page(
        &console,
        "/admin/apis/listed",
        "/admin/apis/listed/ips",
        &[("rule", "10.0.0.5/8")],
    )
    .await;
    assert!(
        html.contains("name=\"rule\" value=\"10.0.0.5/8\""),
        "{html}"
    );
    assert!(html.contains("<strong>Address or block</strong>"), "{html}");

    let again = console
        .submit(
            "/admin/apis/listed",
            "/admin/apis/listed/ips",
            &[("rule", "127.0.0.1")],
        )
        .await;
    assert_eq!(
        again.headers()["location"],
        "/admin/apis/listed?done=ip_listed"
    );
    assert!(
        console
            .html("/admin/apis/listed?done=ip_listed")
            .await
            .contains("already on the list")
    );
}

#[tokio::test]
async fn a_history_name_that_cannot_be_a_username_is_not_found_and_the_csv_name_is_safe() {
    let app = spawn_app().await;
    let key = app.api_user("exported.v2", &[]).await;
    app.get("/api/v1/me", &key).await;
    let console = admin_with_role(&app, "owner", Role::Administrator).await;

    for path in [
        "/admin/apis/a%22%3B%20filename%3Devil.html/history.csv",
        "/admin/apis/a%0D%0AX-Evil:%201/history.csv",
        "/admin/apis/a%00b/history",
        "/admin/apis/..%2f..%2fadmin/history",
        "/admin/apis/xy/history",
    ] {
        let response = console.get(path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(response.headers().get("content-disposition").is_none());
    }
    let csv = console.get("/admin/apis/exported.v2/history.csv").await;
    assert_eq!(csv.status(), StatusCode::OK);
    assert_eq!(
        csv.headers()["content-disposition"],
        "attachment; filename=\"keyward-history-exported.v2.csv\""
    );
}

#[tokio::test]
async fn a_history_filter_that_cannot_be_read_gets_a_console_page_naming_it() {
    let app = spawn_app().await;
    app.api_user("filtered", &[]).await;
    let console = admin_with_role(&app, "owner", Role::Administrator).await;

    let response = console.get("/admin/apis/filtered/history?before=abc").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let page = response.text().await.expect("html");
    assert!(page.contains("<html") && page.contains("before"), "{page}");
    assert!(!page.contains("Failed to deserialize"), "{page}");
    let list = console.get("/admin/audit?before=lots").await;
    assert_eq!(list.status(), StatusCode::BAD_REQUEST);
    assert!(list.text().await.expect("html").contains("<html"));
    assert_eq!(
        console.get("/admin/webhooks/not-a-number").await.status(),
        StatusCode::NOT_FOUND
    );

    // A period that ends before it starts, or as it starts (`to` is a whole day, included).
    for (from, to) in [("2026-12-01", "2026-11-01"), ("2026-12-07", "2026-12-06")] {
        let swapped = console
            .get(&format!("/admin/apis/filtered/history?from={from}&to={to}"))
            .await;
        assert_eq!(swapped.status(), StatusCode::BAD_REQUEST);
        let page = swapped.text().await.expect("html");
        assert!(page.contains(&format!("({from}) is not before")), "{page}");
    }
    let one_day = console
        .get("/admin/apis/filtered/history?from=2026-12-06&to=2026-12-06")
        .await;
    assert_eq!(one_day.status(), StatusCode::OK);
}

#[tokio::test]
async fn history_pages_go_older_and_newer_and_back_to_the_newest() {
    let app = spawn_app().await;
    let key = app.api_user("busy", &[]).await;
    for _ in 0..120 {
        app.get("/api/v1/me", &key).await;
    }
    let console = admin_with_role(&app, "owner", Role::Administrator).await;
    // A page's request ids, newest first, and its links by id.
    let page = |html: String| {
        let ids: Vec<String> = html
            .split("title=\"request id\">")
            .skip(1)
            .filter_map(|rest| rest.split('<').next().map(str::to_owned))
            .collect();
        let link = |id: &str| {
            let anchor = format!("id=\"{id}\"");
            html.split("<a ")
                .find(|a| a.contains(&anchor))
                .and_then(|a| a.split("href=\"").nth(1)?.split('"').next())
                .map(|href| href.replace("&#38;", "&"))
        };
        (ids, link("older"), link("newer"), link("newest"))
    };
    let visit = async |query: &str| {
        page(
            console
                .html(&format!("/admin/apis/busy/history{query}"))
                .await,
        )
    };

    let (newest, older, newer, first) = visit("").await;
    assert_eq!(newest.len(), 50);
    assert_eq!(
        (newer, first),
        (None, None),
        "the first page has nothing newer"
    );
    let (middle, older, newer, first) = visit(&older.expect("Older")).await;
    assert_eq!(middle.len(), 50);
    assert!(newer.is_some() && first.is_some());
    let (oldest, older, back, _) = visit(&older.expect("Older")).await;
    assert_eq!(oldest.len(), 20);
    assert_eq!(older, None, "nothing is older than the first call");
    let all: std::collections::HashSet<_> = newest.iter().chain(&middle).chain(&oldest).collect();
    assert_eq!(all.len(), 120, "each call on one page");

    // Newer goes back through the same pages.
    let (again, _, newer, _) = visit(&back.expect("Newer")).await;
    assert_eq!(again, middle);
    let (top, older, newer, first) = visit(&newer.expect("Newer")).await;
    assert_eq!(top, newest);
    assert_eq!(newer, None, "nothing is newer than the newest call");
    assert!(older.is_some() && first.is_some());

    // Cursors typed by hand: from the very start, and from past the end.
    let (start, older, newer, _) = visit("?after=0").await;
    assert_eq!(
        start,
        middle[20..]
            .iter()
            .chain(&oldest)
            .cloned()
            .collect::<Vec<_>>()
    );
    assert_eq!(older, None, "nothing is older than the first call");
    assert!(newer.is_some());
    let (end, older, newer, _) = visit("?before=999999999").await;
    assert_eq!(end, newest);
    assert_eq!(newer, None, "nothing is newer than the newest call");
    assert!(older.is_some());
}

#[tokio::test]
async fn an_api_manager_sees_a_management_keys_forms_disabled_with_the_reason() {
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

    let page = manager.html("/admin/apis/provisioner").await;
    assert!(page.contains("id=\"locked\""), "{page}");
    assert!(page.contains("changed only by administrators"));
    for control in [
        "id=\"disable\"",
        "id=\"roll\"",
        "id=\"add-ip-form\"",
        "id=\"save-settings\"",
    ] {
        assert!(!page.contains(control), "{control} shown");
    }
    assert!(
        page.contains(
            "id=\"description\" name=\"description\" value=\"\" maxlength=\"255\" disabled"
        )
    );
    let sessions = manager.html("/admin/apis/provisioner/sessions").await;
    assert!(sessions.contains("id=\"locked\""));
    // An administrator still has them.
    let admin = admin_with_role(&app, "owner", Role::Administrator).await;
    assert!(
        admin
            .html("/admin/apis/provisioner")
            .await
            .contains("id=\"roll\"")
    );
}

#[tokio::test]
async fn keys_say_when_their_grace_ends_and_counts_read_in_words() {
    let app = spawn_app().await;
    app.api_user("graced", &[]).await;
    let console = admin_with_role(&app, "owner", Role::Administrator).await;
    let quiet = console.html("/admin/apis/graced").await;
    assert!(quiet.contains(">no calls</text>"), "{quiet}");
    assert!(quiet.contains("no calls, 0 refused"), "{quiet}");

    let form = roll_form(&console, "graced", "1h").await;
    assert_eq!(
        post_owned(&console, "/admin/apis/graced/roll", &form)
            .await
            .status(),
        StatusCode::OK
    );
    let page = console.html("/admin/apis/graced").await;
    assert!(page.contains("in grace until "), "{page}");
    // Rolled again without grace: the key in grace stops now, and its old date is gone.
    let form = roll_form(&console, "graced", "0").await;
    post_owned(&console, "/admin/apis/graced/roll", &form).await;
    let page = console.html("/admin/apis/graced").await;
    let keys = page
        .split("id=\"keys\"")
        .nth(1)
        .and_then(|rest| rest.split("</table>").next())
        .expect("the keys");
    assert!(!keys.contains("in grace"), "{keys}");
    assert_eq!(keys.matches("stopped ").count(), 2, "{keys}");
    assert_eq!(keys.matches("revoked: rolled").count(), 2, "{keys}");
}
