//! System → Users → APIs: the list, Add New, and an API user's page with its settings, key,
//! IP rules, usage and sessions.

use super::Form;
use super::chart::usage_chart;
use super::session::{Manager, Signed};
use super::view::{
    Fields, ScopeRow, ago, ip_summary, ip_warning, key_state, last_use, scope_grid, when,
};
use super::{ConsoleError, Frame, page};
use crate::credentials::{
    Change, CreateApiUser, KeySource, NewExpiry, ServiceError, UpdateApiUser, grace_choice,
};
use crate::domain::api_key::DEFAULT_KEY_LEN;
use crate::domain::api_user::{ApiUser, DEFAULT_RATE_LIMIT, Environment, Status};
use crate::domain::duration::HumanDuration;
use crate::domain::ids::SessionId;
use crate::domain::scope::Scopes;
use crate::domain::validation::FieldError;
use crate::http::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use time::Duration;

/// Messages after a redirect, by code: a query string never carries text to the page.
pub fn flash(code: Option<&str>) -> Option<&'static str> {
    Some(match code? {
        "created" => "The API user was created.",
        "saved" => "Saved. The change holds from the next request on.",
        "enabled" => "Enabled: the key works again.",
        "disabled" => {
            "Disabled: the key is refused from the next request on, and its sessions are ended."
        }
        "ip_added" => "Address added: it may call from the next request on.",
        "ip_removed" => "Address removed: it is refused from the next request on.",
        "revoked" => "Sessions ended.",
        "deleted" => "Deleted. Its keys and sessions are gone; its history is kept.",
        "admin_created" => "Admin user created.",
        "admin_saved" => "Admin user saved.",
        "webhook_enabled" => "Enabled: events go to this endpoint again, waiting ones first.",
        "webhook_disabled" => "Disabled: its deliveries wait until it is enabled again.",
        "webhook_deleted" => "Webhook deleted, with its deliveries.",
        "test_sent" => "Test event queued: it is sent within a second; see it below.",
        "retried" => "Queued again: it is sent within a second.",
        _ => return None,
    })
}

#[derive(Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    done: Option<String>,
}

struct UserRow {
    username: String,
    description: String,
    enabled: bool,
    environment: String,
    ips: String,
    ip_warning: Option<&'static str>,
    scopes: Vec<String>,
    last_used: String,
    last_used_ago: String,
    last_ip: String,
    key_hint: String,
    key_class: &'static str,
    calls: i64,
    refused: i64,
}

#[derive(Template)]
#[template(path = "console/apis.html")]
struct ApisPage {
    frame: Frame,
    q: String,
    users: Vec<UserRow>,
    total: usize,
}

pub async fn list(
    State(state): State<AppState>,
    signed: Signed,
    Query(query): Query<ListQuery>,
) -> Result<Response, ConsoleError> {
    let q = query.q.unwrap_or_default();
    let users = state.credentials.list(Some(&q)).await?;
    let now = state.clock.now();
    let rows = users
        .iter()
        .map(|s| {
            let u = &s.user;
            let (key_hint, key_class) = key_state(u, now);
            UserRow {
                username: u.username.clone(),
                description: u.description.clone(),
                enabled: u.status == Status::Enabled,
                environment: u.environment.to_string(),
                ips: ip_summary(&u.ips),
                ip_warning: ip_warning(&u.ips),
                scopes: u.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
                last_used: when(last_use(u, state.auth.usage()).0),
                last_used_ago: ago(last_use(u, state.auth.usage()).0, now),
                last_ip: last_use(u, state.auth.usage()).1.unwrap_or_default(),
                key_hint,
                key_class,
                calls: s.calls_24h,
                refused: s.refused_24h,
            }
        })
        .collect::<Vec<_>>();
    let frame = Frame::new(&signed, "apis").with_flash(flash(query.done.as_deref()));
    Ok(page(ApisPage {
        frame,
        q,
        total: rows.len(),
        users: rows,
    }))
}

/// The values of the Add New form, as typed.
struct FormValues {
    username: String,
    description: String,
    environment: String,
    status: String,
    ips: String,
    rate_limit: String,
    expires: String,
    key_length: String,
    management: bool,
}

#[derive(Template)]
#[template(path = "console/api_new.html")]
struct NewPage {
    frame: Frame,
    form: FormValues,
    scopes: Vec<ScopeRow>,
    errors: Vec<FieldError>,
    my_ip: String,
    environments: Vec<&'static str>,
}

impl NewPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.field == field || e.field.starts_with(&format!("{field}[")))
            .map(|e| e.message.as_str())
    }
}

fn environments() -> Vec<&'static str> {
    Environment::ALL.iter().map(|e| e.as_str()).collect()
}

pub async fn new(Manager(signed): Manager) -> Response {
    let form = FormValues {
        username: String::new(),
        description: String::new(),
        environment: "production".to_owned(),
        status: "enabled".to_owned(),
        ips: String::new(),
        rate_limit: DEFAULT_RATE_LIMIT.to_string(),
        expires: String::new(),
        key_length: DEFAULT_KEY_LEN.to_string(),
        management: false,
    };
    let my_ip = signed.ip.to_string();
    let management = signed.role().manages_admins();
    page(NewPage {
        frame: Frame::new(&signed, "apis"),
        form,
        scopes: scope_grid(&Scopes::empty(), management),
        errors: Vec::new(),
        my_ip,
        environments: environments(),
    })
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse_number<T: std::str::FromStr>(
    field: &str,
    text: &str,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    if text.is_empty() {
        return None;
    }
    let parsed = text.parse().ok();
    if parsed.is_none() {
        errors.push(FieldError {
            field: field.to_owned(),
            message: "must be a whole number".to_owned(),
        });
    }
    parsed
}

fn parse_expiry(text: &str, errors: &mut Vec<FieldError>) -> Option<Duration> {
    if text.is_empty() {
        return None;
    }
    match text.parse::<HumanDuration>() {
        Ok(d) => Some(d.0),
        Err(e) => {
            errors.push(FieldError {
                field: "expires".to_owned(),
                message: e.to_string(),
            });
            None
        }
    }
}

pub async fn create(
    State(state): State<AppState>,
    Manager(signed): Manager,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, ConsoleError> {
    let fields = Fields(fields);
    let mut errors = Vec::new();
    let mut ips = lines(&fields.get("ips"));
    if fields.checked("add_my_ip") && !ips.contains(&signed.ip.to_string()) {
        ips.push(signed.ip.to_string());
    }
    let management = fields.checked("management");
    let request = CreateApiUser {
        username: fields.get("username"),
        description: fields.get("description"),
        environment: fields
            .get("environment")
            .parse()
            .unwrap_or(Environment::Production),
        status: if fields.get("status") == "disabled" {
            Status::Disabled
        } else {
            Status::Enabled
        },
        scopes: fields.all("scope"),
        ips: ips.clone(),
        rate_limit_per_minute: parse_number(
            "rate_limit_per_minute",
            &fields.get("rate_limit"),
            &mut errors,
        ),
        management,
        key: KeySource::Generate {
            length: parse_number("key_length", &fields.get("key_length"), &mut errors)
                .unwrap_or(DEFAULT_KEY_LEN),
        },
        expires_in: parse_expiry(&fields.get("expires"), &mut errors)
            .map_or(NewExpiry::AsBefore, NewExpiry::In),
    };
    let result = if errors.is_empty() {
        state.credentials.create(&signed.actor(), request).await
    } else {
        Err(ServiceError::Invalid(Vec::new()))
    };
    match result {
        Ok(issued) => Ok(key_once(
            &signed,
            &issued.user,
            issued.key.expose(),
            "created",
            &issued.stopped_now,
            &state,
        )),
        Err(ServiceError::Invalid(mut found)) => {
            errors.append(&mut found);
            let scopes = Scopes::parse(fields.all("scope")).unwrap_or_default();
            let form = FormValues {
                username: fields.get("username"),
                description: fields.get("description"),
                environment: fields.get("environment"),
                status: fields.get("status"),
                ips: ips.join("\n"),
                rate_limit: fields.get("rate_limit"),
                expires: fields.get("expires"),
                key_length: fields.get("key_length"),
                management,
            };
            let page = page(NewPage {
                frame: Frame::new(&signed, "apis"),
                form,
                scopes: scope_grid(&scopes, signed.role().manages_admins()),
                errors,
                my_ip: signed.ip.to_string(),
                environments: environments(),
            });
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(other) => Err(other.into()),
    }
}

#[derive(Template)]
#[template(path = "console/key_once.html")]
struct KeyOncePage {
    frame: Frame,
    username: String,
    key: String,
    what: &'static str,
    stopped_now: Vec<String>,
    old_key_until: Option<String>,
    warnings: Vec<&'static str>,
}

/// The page that shows a new key, once. It is answered to the POST itself (never a redirect
/// to a URL that could show it again) and is never cached.
fn key_once(
    signed: &Signed,
    user: &ApiUser,
    key: &str,
    what: &'static str,
    stopped_now: &[String],
    state: &AppState,
) -> Response {
    let now = state.clock.now();
    let current = user.current_key(now).map(|k| k.id);
    let old_key_until = user
        .keys
        .iter()
        .find(|k| k.is_live(now) && Some(k.id) != current)
        .map(|k| when(k.expires_at));
    page(KeyOncePage {
        frame: Frame::new(signed, "apis"),
        username: user.username.clone(),
        key: key.to_owned(),
        what,
        stopped_now: stopped_now.to_vec(),
        old_key_until,
        warnings: user.warnings(now),
    })
}

struct KeyRow {
    hint: String,
    state: &'static str,
    created: String,
    expires: String,
    reason: String,
}

struct SuggestionRow {
    ip: String,
    calls: i64,
    last: String,
}

#[derive(Template)]
#[template(path = "console/api_show.html")]
struct ShowPage {
    frame: Frame,
    user: ApiUser,
    enabled: bool,
    environments: Vec<&'static str>,
    scopes: Vec<ScopeRow>,
    ips: Vec<String>,
    ips_text: String,
    my_ip: String,
    my_ip_allowed: bool,
    keys: Vec<KeyRow>,
    last_used: String,
    last_used_ago: String,
    last_ip: Option<String>,
    chart: String,
    calls_7d: i64,
    refused_7d: i64,
    suggestions: Vec<SuggestionRow>,
    warnings: Vec<&'static str>,
    errors: Vec<FieldError>,
    tab: &'static str,
}

impl ShowPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.field == field || e.field.starts_with(&format!("{field}[")))
            .map(|e| e.message.as_str())
    }
}

#[derive(Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}

async fn show_page(
    state: &AppState,
    signed: &Signed,
    username: &str,
    errors: Vec<FieldError>,
    done: Option<&str>,
) -> Result<ShowPage, ConsoleError> {
    let user = state.credentials.get(username).await?;
    let now = state.clock.now();
    let week_ago = now - Duration::days(7);
    let usage = state.db.usage_hourly(user.id, week_ago).await?;
    let suggestions = state.db.refused_ips(user.id, week_ago, 10).await?;
    let keys = user
        .keys
        .iter()
        .map(|k| KeyRow {
            hint: k.hint.clone(),
            state: k.state(now),
            created: when(Some(k.created_at)),
            expires: k
                .expires_at
                .map_or_else(|| "—".to_owned(), |t| when(Some(t))),
            reason: k.revoked_reason.clone().unwrap_or_default(),
        })
        .collect();
    let my_ip = signed.ip;
    Ok(ShowPage {
        frame: Frame::new(signed, "apis").with_flash(flash(done)),
        enabled: user.status == Status::Enabled,
        environments: environments(),
        scopes: scope_grid(
            &user.scopes,
            user.management || user.scopes.has_management(),
        ),
        ips: user.ips.iter().map(ToString::to_string).collect(),
        ips_text: user
            .ips
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
        my_ip: my_ip.to_string(),
        my_ip_allowed: crate::domain::ip_rule::allows(&user.ips, my_ip),
        keys,
        last_used: when(last_use(&user, state.auth.usage()).0),
        last_used_ago: ago(last_use(&user, state.auth.usage()).0, now),
        last_ip: last_use(&user, state.auth.usage()).1,
        chart: usage_chart(&usage, now),
        calls_7d: usage.iter().map(|h| h.ok + h.refused).sum(),
        refused_7d: usage.iter().map(|h| h.refused).sum(),
        suggestions: suggestions
            .into_iter()
            .filter(|s| {
                s.ip.parse()
                    .is_ok_and(|ip| !crate::domain::ip_rule::allows(&user.ips, ip))
            })
            .map(|s| SuggestionRow {
                ip: s.ip,
                calls: s.calls,
                last: ago(Some(s.last_at), now),
            })
            .collect(),
        warnings: user.warnings(now),
        errors,
        tab: "settings",
        user,
    })
}

pub async fn show(
    State(state): State<AppState>,
    signed: Signed,
    Path(username): Path<String>,
    Query(query): Query<DoneQuery>,
) -> Result<Response, ConsoleError> {
    Ok(page(
        show_page(
            &state,
            &signed,
            &username,
            Vec::new(),
            query.done.as_deref(),
        )
        .await?,
    ))
}

fn back(username: &str, done: &str) -> Response {
    Redirect::to(&format!("/admin/apis/{}?done={done}", urlencode(username))).into_response()
}

/// Usernames are `A-Z a-z 0-9 . _ -`: nothing to escape, but keep URLs safe regardless.
fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Re-renders the user's page with the errors of a refused change.
async fn refused(
    state: &AppState,
    signed: &Signed,
    username: &str,
    errors: Vec<FieldError>,
) -> Response {
    match show_page(state, signed, username, errors, None).await {
        Ok(show) => (StatusCode::UNPROCESSABLE_ENTITY, page(show)).into_response(),
        Err(error) => error.into_response(),
    }
}

pub async fn update(
    State(state): State<AppState>,
    Manager(signed): Manager,
    Path(username): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, ConsoleError> {
    let fields = Fields(fields);
    let mut errors = Vec::new();
    let update = UpdateApiUser {
        description: Some(fields.get("description")),
        environment: fields.get("environment").parse().ok(),
        status: None,
        scopes: Some(fields.all("scope")),
        ips: Some(lines(&fields.get("ips"))),
        rate_limit_per_minute: parse_number(
            "rate_limit_per_minute",
            &fields.get("rate_limit"),
            &mut errors,
        ),
        management: Some(fields.checked("management")),
    };
    if !errors.is_empty() {
        return Ok(refused(&state, &signed, &username, errors).await);
    }
    match state
        .credentials
        .update(&signed.actor(), &username, update)
        .await
    {
        Ok(_) => Ok(back(&username, "saved")),
        Err(ServiceError::Invalid(errors)) => Ok(refused(&state, &signed, &username, errors).await),
        Err(other) => Err(other.into()),
    }
}

pub async fn roll(
    State(state): State<AppState>,
    Manager(signed): Manager,
    Path(username): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, ConsoleError> {
    let fields = Fields(fields);
    let mut errors = Vec::new();
    let grace = match grace_choice(&fields.get("grace")) {
        Ok(grace) => grace,
        Err(ServiceError::Invalid(mut found)) => {
            errors.append(&mut found);
            Duration::ZERO
        }
        Err(other) => return Err(other.into()),
    };
    let expires = NewExpiry::from_field(Some(&fields.get("expires"))).unwrap_or_else(|message| {
        errors.push(FieldError {
            field: "expires".to_owned(),
            message,
        });
        NewExpiry::AsBefore
    });
    if !errors.is_empty() {
        return Ok(refused(&state, &signed, &username, errors).await);
    }
    match state
        .credentials
        .rotate(
            &signed.actor(),
            &username,
            grace,
            KeySource::default(),
            expires,
        )
        .await
    {
        Ok(issued) => Ok(key_once(
            &signed,
            &issued.user,
            issued.key.expose(),
            "rolled",
            &issued.stopped_now,
            &state,
        )),
        Err(ServiceError::Invalid(errors)) => Ok(refused(&state, &signed, &username, errors).await),
        Err(other) => Err(other.into()),
    }
}

#[derive(Deserialize)]
pub struct StatusForm {
    status: String,
}

pub async fn set_status(
    State(state): State<AppState>,
    Manager(signed): Manager,
    Path(username): Path<String>,
    Form(form): Form<StatusForm>,
) -> Result<Response, ConsoleError> {
    let status: Status = form.status.parse().map_err(ConsoleError::BadRequest)?;
    state
        .credentials
        .set_status(&signed.actor(), &username, status)
        .await?;
    Ok(back(
        &username,
        if status == Status::Enabled {
            "enabled"
        } else {
            "disabled"
        },
    ))
}

#[derive(Deserialize)]
pub struct RuleForm {
    rule: String,
}

pub async fn add_ip(
    State(state): State<AppState>,
    Manager(signed): Manager,
    Path(username): Path<String>,
    Form(form): Form<RuleForm>,
) -> Result<Response, ConsoleError> {
    match state
        .credentials
        .add_ip(&signed.actor(), &username, &form.rule)
        .await
    {
        Ok(_) => Ok(back(&username, "ip_added")),
        Err(ServiceError::Invalid(errors)) => {
            let errors = errors
                .into_iter()
                .map(|e| FieldError {
                    field: "ips".to_owned(),
                    ..e
                })
                .collect();
            Ok(refused(&state, &signed, &username, errors).await)
        }
        Err(other) => Err(other.into()),
    }
}

pub async fn remove_ip(
    State(state): State<AppState>,
    Manager(signed): Manager,
    Path(username): Path<String>,
    Form(form): Form<RuleForm>,
) -> Result<Response, ConsoleError> {
    state
        .credentials
        .remove_ip(&signed.actor(), &username, &form.rule)
        .await?;
    Ok(back(&username, "ip_removed"))
}

struct SessionRow {
    id: i64,
    ip: String,
    created: String,
    last_seen: String,
    expires: String,
}

#[derive(Template)]
#[template(path = "console/api_sessions.html")]
struct SessionsPage {
    frame: Frame,
    username: String,
    sessions: Vec<SessionRow>,
    tab: &'static str,
}

pub async fn sessions(
    State(state): State<AppState>,
    signed: Signed,
    Path(username): Path<String>,
    Query(query): Query<DoneQuery>,
) -> Result<Response, ConsoleError> {
    let now = state.clock.now();
    let sessions = state
        .credentials
        .sessions(&username, true)
        .await?
        .into_iter()
        .map(|s| SessionRow {
            id: s.id.0,
            ip: s.ip,
            created: when(Some(s.created_at)),
            last_seen: ago(Some(s.last_seen_at), now),
            expires: when(Some(s.expires_at)),
        })
        .collect();
    let frame = Frame::new(&signed, "apis").with_flash(flash(query.done.as_deref()));
    Ok(page(SessionsPage {
        frame,
        username,
        sessions,
        tab: "sessions",
    }))
}

#[derive(Deserialize)]
pub struct RevokeForm {
    session: Option<i64>,
}

pub async fn revoke_sessions(
    State(state): State<AppState>,
    Manager(signed): Manager,
    Path(username): Path<String>,
    Form(form): Form<RevokeForm>,
) -> Result<Response, ConsoleError> {
    state
        .credentials
        .revoke_sessions(&signed.actor(), &username, form.session.map(SessionId))
        .await?;
    Ok(Redirect::to(&format!(
        "/admin/apis/{}/sessions?done=revoked",
        urlencode(&username)
    ))
    .into_response())
}

#[derive(Template)]
#[template(path = "console/api_delete.html")]
struct DeletePage {
    frame: Frame,
    username: String,
    last_used: String,
    last_ip: String,
    used_recently: bool,
    open_sessions: usize,
    calls_24h: i64,
}

pub async fn confirm_delete(
    State(state): State<AppState>,
    Manager(signed): Manager,
    Path(username): Path<String>,
) -> Result<Response, ConsoleError> {
    let user = state
        .credentials
        .changeable(&signed.actor(), &username, Change::Delete)
        .await?;
    let now = state.clock.now();
    let open_sessions = state.credentials.sessions(&username, true).await?.len();
    // From the hourly counts, which are written with each call's history row; the user's
    // last-use time reaches the database only every few seconds.
    let day = state
        .db
        .usage_hourly(user.id, now - Duration::hours(24))
        .await?;
    let calls_24h: i64 = day.iter().map(|h| h.ok + h.refused).sum();
    let answered_24h: i64 = day.iter().map(|h| h.ok).sum();
    let (last_used_at, last_ip) = last_use(&user, state.auth.usage());
    Ok(page(DeletePage {
        frame: Frame::new(&signed, "apis"),
        last_used: when(last_used_at),
        last_ip: last_ip.unwrap_or_default(),
        used_recently: answered_24h > 0
            || last_used_at.is_some_and(|t| t > now - Duration::hours(24)),
        open_sessions,
        calls_24h,
        username,
    }))
}

pub async fn delete(
    State(state): State<AppState>,
    Manager(signed): Manager,
    Path(username): Path<String>,
) -> Result<Response, ConsoleError> {
    state.credentials.delete(&signed.actor(), &username).await?;
    Ok(Redirect::to("/admin/apis?done=deleted").into_response())
}
