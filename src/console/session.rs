//! Signing in to the console: admin sessions in a cookie, CSRF tokens derived from them, and
//! the extractors that let a handler declare who may call it.

use super::{ConsoleError, page};
use crate::auth::ClientIp;
use crate::domain::admin::{AdminSession, NewAdminSession, Role};
use crate::domain::secret::{Secret, SecretHash, random_base62};
use crate::http::AppState;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{COOKIE, RETRY_AFTER, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const SESSION_COOKIE: &str = "kw_admin";
pub const LOGIN_COOKIE: &str = "kw_login";
/// A signed-in page refreshes its session's last use at most this often.
const TOUCH_EVERY: time::Duration = time::Duration::minutes(1);

/// Reads one cookie from the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, scoped to `/admin`.
pub fn set_cookie(name: &str, value: &str, max_age: Option<i64>, secure: bool) -> HeaderValue {
    let mut cookie = format!("{name}={value}; Path=/admin; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie)
        .unwrap_or_else(|_| HeaderValue::from_static("kw_admin=; Max-Age=0"))
}

/// The CSRF token of a session: an HMAC of the session's own secret, so it needs no storage
/// and cannot be made by anyone who cannot read the cookie.
fn csrf_for(session_token: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(session_token.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(b"keyward console csrf");
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn same(a: &str, b: &str) -> bool {
    !a.is_empty() && a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A signed-in admin, as every console page sees it.
#[derive(Debug, Clone)]
pub struct Signed {
    pub session: AdminSession,
    pub csrf: String,
    pub ip: std::net::IpAddr,
}

impl Signed {
    pub fn role(&self) -> Role {
        self.session.admin.role
    }

    pub fn username(&self) -> &str {
        &self.session.admin.username
    }

    /// Who made a change, for the audit log.
    pub fn actor(&self) -> crate::domain::admin::Actor {
        crate::domain::admin::Actor::admin(self.username(), self.role(), self.ip.to_string())
    }
}

/// Looks up the session of the request's cookie, signing out idle and disabled admins.
async fn signed(parts: &Parts, state: &AppState) -> Result<Signed, ConsoleError> {
    let token = cookie(&parts.headers, SESSION_COOKIE).ok_or(ConsoleError::SignIn)?;
    let now = state.clock.now();
    let session = state
        .db
        .admin_session(&SecretHash::of(token), now)
        .await?
        .ok_or(ConsoleError::SignIn)?;
    let idle_until = session.last_seen_at + state.console.idle_timeout;
    if idle_until <= now || session.admin.status != crate::domain::api_user::Status::Enabled {
        state.db.revoke_admin_session(session.id, now).await?;
        return Err(ConsoleError::SignIn);
    }
    if session.last_seen_at + TOUCH_EVERY <= now {
        state.db.touch_admin_session(session.id, now).await?;
    }
    let ip = parts
        .extensions
        .get::<ClientIp>()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0);
    Ok(Signed {
        csrf: csrf_for(token),
        session,
        ip,
    })
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(signed) = parts.extensions.get::<Signed>() {
            return Ok(signed.clone());
        }
        let signed = signed(parts, state).await?;
        parts.extensions.insert(signed.clone());
        Ok(signed)
    }
}

/// An admin who may change API users: `administrator` or `api_manager`.
pub struct Manager(pub Signed);

impl FromRequestParts<AppState> for Manager {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let signed = Signed::from_request_parts(parts, state).await?;
        if !signed.role().manages_api_users() {
            return Err(ConsoleError::Forbidden(signed.role()));
        }
        Ok(Self(signed))
    }
}

/// An `administrator`: admin users and the audit log.
pub struct Administrator(pub Signed);

impl FromRequestParts<AppState> for Administrator {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let signed = Signed::from_request_parts(parts, state).await?;
        if !signed.role().manages_admins() {
            return Err(ConsoleError::Forbidden(signed.role()));
        }
        Ok(Self(signed))
    }
}

/// Checks the CSRF token of every form posted to the console, before any handler runs: a
/// handler cannot forget it. The sign-in form is checked against its own cookie instead.
pub async fn csrf_guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, 256 * 1024).await {
        Ok(bytes) => bytes,
        Err(_) => return ConsoleError::BadRequest("The form is too large.".into()).into_response(),
    };
    let sent: Option<String> = form_urlencoded_field(&bytes, "csrf");
    let expected = if parts.uri.path() == "/admin/login" {
        cookie(&parts.headers, LOGIN_COOKIE).map(str::to_owned)
    } else {
        match signed(&parts, &state).await {
            Ok(signed) => {
                let csrf = signed.csrf.clone();
                parts.extensions.insert(signed);
                Some(csrf)
            }
            Err(error) => return error.into_response(),
        }
    };
    match (sent, expected) {
        (Some(sent), Some(expected)) if same(&sent, &expected) => {
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
        _ => ConsoleError::Csrf.into_response(),
    }
}

fn form_urlencoded_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

#[derive(askama::Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    csrf: String,
    error: Option<String>,
    username: String,
}

/// `GET /admin/login`.
pub async fn login_form(State(state): State<AppState>) -> Response {
    let csrf = random_base62(32);
    let page = page(LoginPage {
        csrf: csrf.clone(),
        error: None,
        username: String::new(),
    });
    with_cookie(
        page,
        set_cookie(LOGIN_COOKIE, &csrf, Some(3600), state.console.cookie_secure),
    )
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
}

/// `POST /admin/login`: throttled like API logins, per address and per username.
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    super::Form(form): super::Form<LoginForm>,
) -> Result<Response, ConsoleError> {
    let retry = |error: String, username: &str| {
        let csrf = random_base62(32);
        let page = page(LoginPage {
            csrf: csrf.clone(),
            error: Some(error),
            username: username.to_owned(),
        });
        with_cookie(
            page,
            set_cookie(LOGIN_COOKIE, &csrf, Some(3600), state.console.cookie_secure),
        )
    };
    let attempt = match state.console.throttle.attempt(ip, &form.username).await {
        Ok(attempt) => attempt,
        Err(wait) => {
            let message = format!(
                "Too many failed sign-ins from this address or for this user. Try again in {} s.",
                wait.0
            );
            return Ok((
                StatusCode::TOO_MANY_REQUESTS,
                [(RETRY_AFTER, wait.0.to_string())],
                retry(message, &form.username),
            )
                .into_response());
        }
    };
    let admin = state
        .admins
        .verify(&form.username, Secret::new(form.password))
        .await?;
    let Some(admin) = admin else {
        attempt.failed();
        return Ok(retry(
            "Wrong username or password.".to_owned(),
            &form.username,
        ));
    };
    drop(attempt);
    // A session the browser already had ends: a planted or stale one cannot ride along.
    if let Some(old) = cookie(&headers, SESSION_COOKIE)
        && let Ok(Some(previous)) = state
            .db
            .admin_session(&SecretHash::of(old), state.clock.now())
            .await
    {
        state
            .db
            .revoke_admin_session(previous.id, state.clock.now())
            .await?;
    }
    let token = random_base62(43);
    let now = state.clock.now();
    let session = NewAdminSession {
        admin_user_id: admin.id,
        token_hash: SecretHash::of(&token),
        ip: ip.to_string(),
        created_at: now,
        expires_at: now + state.console.lifetime,
    };
    state.db.create_admin_session(&session).await?;
    let mut response = Redirect::to("/admin/apis").into_response();
    let secure = state.console.cookie_secure;
    let lifetime = state.console.lifetime.whole_seconds();
    response.headers_mut().append(
        SET_COOKIE,
        set_cookie(SESSION_COOKIE, &token, Some(lifetime), secure),
    );
    response
        .headers_mut()
        .append(SET_COOKIE, set_cookie(LOGIN_COOKIE, "", Some(0), secure));
    Ok(response)
}

/// `POST /admin/logout`.
pub async fn logout(
    State(state): State<AppState>,
    signed: Signed,
) -> Result<Response, ConsoleError> {
    state
        .db
        .revoke_admin_session(signed.session.id, state.clock.now())
        .await?;
    let mut response = Redirect::to("/admin/login").into_response();
    response.headers_mut().append(
        SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", Some(0), state.console.cookie_secure),
    );
    Ok(response)
}

fn with_cookie(mut response: Response, cookie: HeaderValue) -> Response {
    response.headers_mut().append(SET_COOKIE, cookie);
    response
}
