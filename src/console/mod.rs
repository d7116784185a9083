//! The admin console (`/admin`): server-rendered HTML over the same services the CLI and the
//! API use. It never holds an API key of its own.

mod admins;
mod apis;
mod chart;
mod history;
pub mod session;
mod view;
mod webhooks;

use crate::auth::LoginThrottle;
use crate::domain::admin::Role;
use crate::http::AppState;
use crate::store::StoreError;
use askama::Template;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
pub use session::Signed;

/// Settings of console sessions.
pub struct ConsoleSettings {
    /// A console session ends after this long without a page.
    pub idle_timeout: time::Duration,
    /// … and this long after sign-in in any case.
    pub lifetime: time::Duration,
    /// Mark cookies `Secure` (the console is served over HTTPS).
    pub cookie_secure: bool,
    pub throttle: LoginThrottle,
}

/// A NUL in a page's query (`%00`) can be no filter's value, and PostgreSQL refuses one in any
/// text: the page is refused (400) before a handler reads it.
async fn refuse_nul(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if request
        .uri()
        .query()
        .and_then(crate::http::extract::nul_in_query)
        .is_some()
    {
        return ConsoleError::BadRequest("A filter holds a NUL character (%00).".to_owned())
            .into_response();
    }
    next.run(request).await
}

pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/admin", get(|| async { Redirect::to("/admin/apis") }))
        .route(
            "/admin/login",
            get(session::login_form).post(session::login),
        )
        .route("/admin/logout", post(session::logout))
        .route("/admin/apis", get(apis::list).post(apis::create))
        .route("/admin/apis/new", get(apis::new))
        .route("/admin/apis/{username}", get(apis::show).post(apis::update))
        .route("/admin/apis/{username}/roll", post(apis::roll))
        .route("/admin/apis/{username}/status", post(apis::set_status))
        .route("/admin/apis/{username}/ips", post(apis::add_ip))
        .route("/admin/apis/{username}/ips/remove", post(apis::remove_ip))
        .route(
            "/admin/apis/{username}/sessions",
            get(apis::sessions).post(apis::revoke_sessions),
        )
        .route(
            "/admin/apis/{username}/delete",
            get(apis::confirm_delete).post(apis::delete),
        )
        .route("/admin/apis/{username}/history", get(history::page))
        .route("/admin/apis/{username}/history.csv", get(history::csv))
        .route("/admin/admins", get(admins::list).post(admins::create))
        .route("/admin/admins/{username}", post(admins::update))
        .route("/admin/audit", get(admins::audit))
        .route(
            "/admin/webhooks",
            get(webhooks::list).post(webhooks::create),
        )
        .route("/admin/webhooks/{id}", get(webhooks::show))
        .route("/admin/webhooks/{id}/status", post(webhooks::set_status))
        .route("/admin/webhooks/{id}/test", post(webhooks::send_test))
        .route("/admin/webhooks/{id}/roll", post(webhooks::roll_secret))
        .route("/admin/webhooks/{id}/delete", post(webhooks::delete))
        .route(
            "/admin/webhooks/deliveries/{id}/retry",
            post(webhooks::retry),
        )
        .route("/admin/assets/console.css", get(css))
        .route("/admin/assets/console.js", get(js))
        .fallback(|| async { ConsoleError::NotFound })
        .layer(from_fn_with_state(state.clone(), session::csrf_guard))
        .layer(axum::middleware::from_fn(refuse_nul))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ConsoleError::Internal.into_response()
        }))
        .layer(from_fn(security_headers))
        .with_state(state)
}

/// One layer sets the security headers of every console answer.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "same-origin");
    set(
        headers,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    // Pages, redirects, CSV exports, errors: nothing is kept by a browser or a proxy but the
    // static assets, which say so themselves.
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
    response
}

async fn css() -> impl IntoResponse {
    asset(
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    )
}

async fn js() -> impl IntoResponse {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/console.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// Renders a template; a template that fails to render is a bug, answered 500.
pub fn page(template: impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(%error, "a console template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be rendered.",
            )
                .into_response()
        }
    }
}

/// What every signed-in page shows around its content.
pub struct Frame {
    pub username: String,
    pub role: String,
    pub csrf: String,
    pub can_manage: bool,
    pub is_admin: bool,
    pub nav: &'static str,
    pub flash: Option<&'static str>,
}

impl Frame {
    pub fn new(signed: &Signed, nav: &'static str) -> Self {
        Self {
            username: signed.username().to_owned(),
            role: signed.role().to_string(),
            csrf: signed.csrf.clone(),
            can_manage: signed.role().manages_api_users(),
            is_admin: signed.role().manages_admins(),
            nav,
            flash: None,
        }
    }

    pub fn with_flash(mut self, flash: Option<&'static str>) -> Self {
        self.flash = flash;
        self
    }
}

/// What can go wrong in the console, each with its page.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("sign in")]
    SignIn,
    #[error("forbidden for {0}")]
    Forbidden(Role),
    #[error("{0}")]
    NotAllowed(String),
    #[error("bad form token")]
    Csrf,
    #[error("not found")]
    NotFound,
    /// Not found, and why, such as a form sent again for something it removed.
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    BadRequest(String),
    /// A change refused because what the form was made from changed meanwhile.
    #[error("{0}")]
    Conflict(String),
    /// A form that could not be read, with the status axum gives it (400, 413, 415, 422).
    #[error("{1}")]
    Unreadable(StatusCode, String),
    #[error("the database is unavailable")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

/// A form's body, as `axum::Form` reads it; one it cannot read (a field missing or of the
/// wrong kind, a body that is not a form) is refused with a console page naming what is
/// wrong, not axum's plain text.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Form), rejection(ConsoleError))]
pub struct Form<T>(pub T);

impl From<axum::extract::rejection::FormRejection> for ConsoleError {
    fn from(rejection: axum::extract::rejection::FormRejection) -> Self {
        Self::Unreadable(rejection.status(), rejection.body_text())
    }
}

/// A query string, as `axum::extract::Query` reads it; one it cannot read (`before=abc`) is
/// refused with a console page naming the parameter, not axum's plain text.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ConsoleError))]
pub struct Query<T>(pub T);

impl From<axum::extract::rejection::QueryRejection> for ConsoleError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        let text = rejection.body_text();
        let detail = text
            .strip_prefix("Failed to deserialize query string: ")
            .unwrap_or(&text);
        Self::BadRequest(format!(
            "This page's address has a parameter that cannot be read ({detail}). \
             Use the page's own links and filters."
        ))
    }
}

/// The parts of a path, as `axum::extract::Path` reads them; a part it cannot read (an id
/// that is no number) names nothing there is.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ConsoleError))]
pub struct Path<T>(pub T);

impl From<axum::extract::rejection::PathRejection> for ConsoleError {
    fn from(_: axum::extract::rejection::PathRejection) -> Self {
        Self::NotFound
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage {
    title: &'static str,
    message: String,
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, title, message) = match &self {
            Self::SignIn => return Redirect::to("/admin/login").into_response(),
            Self::Forbidden(role) => (
                StatusCode::FORBIDDEN,
                "Not allowed",
                format!("Your role, {role}, cannot do this. Ask an administrator."),
            ),
            Self::NotAllowed(message) => (StatusCode::FORBIDDEN, "Not allowed", message.clone()),
            Self::Csrf => (
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form was not sent from a current console page. Reload the page and try again.".to_owned(),
            ),
            Self::NotFound => (StatusCode::NOT_FOUND, "Not found", "There is nothing here.".to_owned()),
            Self::Gone(message) => (StatusCode::NOT_FOUND, "Not found", message.clone()),
            Self::BadRequest(message) => (StatusCode::BAD_REQUEST, "Bad request", message.clone()),
            Self::Conflict(message) => (StatusCode::CONFLICT, "Changed meanwhile", message.clone()),
            Self::Unreadable(status, message) => (*status, "Bad request", message.clone()),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "The database is unavailable right now; nothing was changed. Try again shortly.".to_owned(),
            ),
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "An internal error occurred; it has been logged.".to_owned(),
            ),
        };
        (status, page(ErrorPage { title, message })).into_response()
    }
}

impl From<StoreError> for ConsoleError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => Self::NotFound,
            StoreError::Conflict { message, .. } => Self::BadRequest(message),
            StoreError::Unavailable(source) => {
                tracing::warn!(
                    error = &source as &dyn std::error::Error,
                    "database unavailable"
                );
                Self::Unavailable
            }
            other => {
                tracing::error!(
                    error = &other as &dyn std::error::Error,
                    "console database error"
                );
                Self::Internal
            }
        }
    }
}

impl From<crate::credentials::ServiceError> for ConsoleError {
    fn from(error: crate::credentials::ServiceError) -> Self {
        use crate::credentials::ServiceError as E;
        match error {
            E::NoSuchUser(_) | E::NoSuchSession { .. } => Self::NotFound,
            E::Invalid(_) | E::Unconfirmed(_) => Self::BadRequest(error.to_string()),
            E::Forbidden(message) => Self::NotAllowed(message),
            E::Store(store) => store.into(),
        }
    }
}

impl From<crate::credentials::admins::AdminError> for ConsoleError {
    fn from(error: crate::credentials::admins::AdminError) -> Self {
        use crate::credentials::admins::AdminError as E;
        match error {
            E::NoSuchAdmin(_) => Self::NotFound,
            E::Store(store) => store.into(),
            other => Self::BadRequest(other.to_string()),
        }
    }
}
