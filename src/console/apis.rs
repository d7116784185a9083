//! System → Users → APIs: the list, Add New, and an API user's page with its settings, key,
//! IP rules, usage and sessions.

use super::Form;
use super::chart::usage_chart;
use super::session::{Manager, Signed};
use super::view::{
    FieldErrors, Fields, ScopeRow, ago, calls, ip_summary, ip_warning, key_state, last_use,
    scope_grid, ticked, when,
};
use super::{ConsoleError, Frame, page};
use super::{Path, Query};
use crate::credentials::{
    Change, CreateApiUser, Credentials, KeySource, NewExpiry, Roll, ServiceError, UpdateApiUser,
    grace_choice,
};
use crate::domain::api_key::{DEFAULT_KEY_LEN, MAX_KEY_LEN, MIN_KEY_LEN};
use crate::domain::api_user::{
    ApiUser, DEFAULT_RATE_LIMIT, Environment, KeyInfo, MAX_RATE_LIMIT, Status,
};
use crate::domain::duration::HumanDuration;
use crate::domain::ids::{ApiKeyId, SessionId};
use crate::domain::scope::Scopes;
use crate::domain::validation::{Errors, FieldError};
use crate::http::AppState;
use crate::store::StoreError;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use time::{Duration, OffsetDateTime};

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
        "ip_listed" => "That address is already on the list: nothing was changed.",
        "my_ip_listed" => "Your address is on the IP list below: Save to keep it.",
        "ip_removed" => "Address removed: it is refused from the next request on.",
        "revoked" => "Sessions ended.",
        "none_open" => "No session was open: nothing was changed.",
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
    add_my_ip: bool,
}

#[derive(Template)]
#[template(path = "console/api_new.html")]
struct NewPage {
    frame: Frame,
    form: FormValues,
    scopes: Vec<ScopeRow>,
    errors: FieldErrors,
    my_ip: String,
    environments: Vec<&'static str>,
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
        add_my_ip: false,
    };
    let my_ip = signed.ip.to_string();
    let management = signed.role().manages_admins();
    page(NewPage {
        frame: Frame::new(&signed, "apis"),
        form,
        scopes: scope_grid(&Scopes::empty(), management),
        errors: FieldErrors::new(Vec::new()),
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

/// A whole number in `range` (`what` it counts), or none and the error that says which.
fn parse_number<T>(
    field: &str,
    text: &str,
    range: std::ops::RangeInclusive<T>,
    what: &str,
    errors: &mut Errors,
) -> Option<T>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    if text.is_empty() {
        return None;
    }
    let parsed = text.parse().ok().filter(|n| range.contains(n));
    errors.check(
        field,
        parsed.ok_or_else(|| {
            format!(
                "must be a whole number from {} to {}{what}",
                range.start(),
                range.end()
            )
        }),
    )
}

fn parse_rate_limit(fields: &Fields, errors: &mut Errors) -> Option<u32> {
    parse_number(
        "rate_limit_per_minute",
        &fields.get("rate_limit"),
        1..=MAX_RATE_LIMIT,
        " calls per minute",
        errors,
    )
}

/// One of a list's choices (an environment, a status); empty is none, anything else not on
/// the list is an error, never silently replaced.
fn parse_choice<T>(field: &str, fields: &Fields, errors: &mut Errors) -> Option<T>
where
    T: std::str::FromStr<Err = String>,
{
    let text = fields.get(field);
    if text.is_empty() {
        return None;
    }
    errors.check(field, text.parse())
}

fn parse_expiry(text: &str, errors: &mut Errors) -> Option<Duration> {
    if text.is_empty() {
        return None;
    }
    errors
        .check("expires", text.parse::<HumanDuration>())
        .map(|d| d.0)
}

/// The field errors of a change the store refused (a username taken), if it was that.
fn conflict(error: ServiceError) -> Result<Vec<FieldError>, ServiceError> {
    match error {
        ServiceError::Invalid(found) => Ok(found),
        ServiceError::Store(StoreError::Conflict { details, .. }) if !details.is_empty() => {
            Ok(details)
        }
        other => Err(other),
    }
}

pub async fn create(
    State(state): State<AppState>,
    Manager(signed): Manager,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, ConsoleError> {
    let fields = Fields(fields);
    let mut errors = Errors::new();
    let mut ips = lines(&fields.get("ips"));
    let add_my_ip = fields.checked("add_my_ip");
    if add_my_ip && !ips.contains(&signed.ip.to_string()) {
        ips.push(signed.ip.to_string());
    }
    let management = fields.checked("management");
    let request = CreateApiUser {
        username: fields.get("username"),
        description: fields.get("description"),
        environment: parse_choice("environment", &fields, &mut errors)
            .unwrap_or(Environment::Production),
        status: parse_choice("status", &fields, &mut errors).unwrap_or(Status::Enabled),
        scopes: fields.all("scope"),
        ips: ips.clone(),
        rate_limit_per_minute: parse_rate_limit(&fields, &mut errors),
        management,
        key: KeySource::Generate {
            length: parse_number(
                "key_length",
                &fields.get("key_length"),
                MIN_KEY_LEN..=MAX_KEY_LEN,
                " characters",
                &mut errors,
            )
            .unwrap_or(DEFAULT_KEY_LEN),
        },
        expires_in: parse_expiry(&fields.get("expires"), &mut errors)
            .map_or(NewExpiry::AsBefore, NewExpiry::In),
    };
    let result = if errors.is_empty() {
        state.credentials.create(&signed.actor(), request).await
    } else {
        // Every field's error at once: the form's own and the service's.
        Err(ServiceError::Invalid(
            Credentials::new_user(&request).err().unwrap_or_default(),
        ))
    };
    match result.map_err(conflict) {
        Ok(issued) => Ok(key_once(
            &signed,
            &issued.user,
            issued.key.expose(),
            "created",
            &issued.stopped_now,
            &state,
        )),
        Err(Ok(found)) => {
            errors.extend(found);
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
                add_my_ip,
            };
            let page = page(NewPage {
                frame: Frame::new(&signed, "apis"),
                form,
                scopes: scope_grid(&ticked(&fields), signed.role().manages_admins()),
                errors: FieldErrors::new(errors.into_vec()),
                my_ip: signed.ip.to_string(),
                environments: environments(),
            });
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(Err(other)) => Err(other.into()),
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
    /// "live", "in grace until …", "revoked: rolled", "expired".
    state: String,
    live: bool,
    created: String,
    /// When it stops or stopped: a revoked key's own expiry no longer counts.
    expires: String,
}

impl KeyRow {
    fn new(key: &KeyInfo, current: Option<ApiKeyId>, now: OffsetDateTime) -> Self {
        let live = key.is_live(now);
        let state = match key.state(now) {
            "live" if Some(key.id) != current => format!("in grace until {}", when(key.expires_at)),
            "revoked" => match &key.revoked_reason {
                Some(reason) => format!("revoked: {reason}"),
                None => "revoked".to_owned(),
            },
            other => other.to_owned(),
        };
        let expires = match (key.revoked_at, key.expires_at) {
            (Some(at), _) => format!("stopped {}", when(Some(at))),
            (None, Some(at)) => when(Some(at)),
            (None, None) => "—".to_owned(),
        };
        Self {
            hint: key.hint.clone(),
            state,
            live,
            created: when(Some(key.created_at)),
            expires,
        }
    }
}

struct SuggestionRow {
    ip: String,
    calls: String,
    last: String,
}

#[derive(Template)]
#[template(path = "console/api_show.html")]
struct ShowPage {
    frame: Frame,
    user: ApiUser,
    enabled: bool,
    environments: Vec<&'static str>,
    /// The settings form's values: as stored, or as typed when a change was refused.
    form: EditValues,
    scopes: Vec<ScopeRow>,
    ips: Vec<String>,
    /// The "Add an address or block" field, as typed when it was refused.
    rule: String,
    my_ip: String,
    my_ip_allowed: bool,
    keys: Vec<KeyRow>,
    /// The id of the key a roll replaces, so the form rolls that key or nothing.
    current_key: String,
    last_used: String,
    last_used_ago: String,
    last_ip: Option<String>,
    chart: String,
    calls_7d: String,
    refused_7d: i64,
    suggestions: Vec<SuggestionRow>,
    warnings: Vec<&'static str>,
    errors: FieldErrors,
    tab: &'static str,
    /// Why a role that manages API users cannot change this one (a management key).
    locked: Option<String>,
}

/// The frame of an API user's pages, and why the viewer may not change this user though
/// their role manages API users: its forms are then shown disabled, with the reason.
fn user_frame(signed: &Signed, user: &ApiUser, done: Option<&str>) -> (Frame, Option<String>) {
    let mut frame = Frame::new(signed, "apis").with_flash(flash(done));
    let locked = match signed.actor().authority.may_change(user, Change::Settings) {
        Err(ServiceError::Forbidden(why)) if frame.can_manage => Some(why),
        _ => None,
    };
    if locked.is_some() {
        frame.can_manage = false;
    }
    (frame, locked)
}

/// The values of an API user's settings form.
struct EditValues {
    description: String,
    environment: String,
    rate_limit: String,
    ips: String,
    scopes: Scopes,
    management: bool,
}

impl EditValues {
    fn stored(user: &ApiUser) -> Self {
        Self {
            description: user.description.clone(),
            environment: user.environment.to_string(),
            rate_limit: user.rate_limit_per_minute.to_string(),
            ips: user
                .ips
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
            scopes: user.scopes,
            management: user.management,
        }
    }

    fn typed(fields: &Fields) -> Self {
        Self {
            description: fields.get("description"),
            environment: fields.get("environment"),
            rate_limit: fields.get("rate_limit"),
            ips: lines(&fields.get("ips")).join("\n"),
            scopes: ticked(fields),
            management: fields.checked("management"),
        }
    }
}

impl ShowPage {
    /// Shows the settings form as typed, not as stored.
    fn keep(&mut self, typed: EditValues) {
        self.scopes = scope_grid(
            &typed.scopes,
            self.user.management || self.user.scopes.has_management(),
        );
        self.form = typed;
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
    let current = user.current_key(now).map(|k| k.id);
    let keys = user
        .keys
        .iter()
        .map(|k| KeyRow::new(k, current, now))
        .collect();
    let my_ip = signed.ip;
    let (frame, locked) = user_frame(signed, &user, done);
    Ok(ShowPage {
        frame,
        locked,
        enabled: user.status == Status::Enabled,
        environments: environments(),
        form: EditValues::stored(&user),
        scopes: scope_grid(
            &user.scopes,
            user.management || user.scopes.has_management(),
        ),
        ips: user.ips.iter().map(ToString::to_string).collect(),
        rule: String::new(),
        my_ip: my_ip.to_string(),
        my_ip_allowed: crate::domain::ip_rule::allows(&user.ips, my_ip),
        keys,
        // The newest key, live or not: a roll is refused only when another key came since.
        current_key: user
            .keys
            .iter()
            .map(|k| k.id)
            .max()
            .map(|id| id.to_string())
            .unwrap_or_default(),
        last_used: when(last_use(&user, state.auth.usage()).0),
        last_used_ago: ago(last_use(&user, state.auth.usage()).0, now),
        last_ip: last_use(&user, state.auth.usage()).1,
        chart: usage_chart(&usage, now),
        calls_7d: calls(usage.iter().map(|h| h.ok + h.refused).sum()),
        refused_7d: usage.iter().map(|h| h.refused).sum(),
        suggestions: suggestions
            .into_iter()
            .filter(|s| {
                s.ip.parse()
                    .is_ok_and(|ip| !crate::domain::ip_rule::allows(&user.ips, ip))
            })
            .map(|s| SuggestionRow {
                ip: s.ip,
                calls: calls(s.calls),
                last: ago(Some(s.last_at), now),
            })
            .collect(),
        warnings: user.warnings(now),
        errors: FieldErrors::new(errors),
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

/// Re-renders the user's page with the errors of a refused change, and what was typed
/// (`keep`).
async fn refused(
    state: &AppState,
    signed: &Signed,
    username: &str,
    errors: Vec<FieldError>,
    keep: impl FnOnce(&mut ShowPage),
) -> Response {
    match show_page(state, signed, username, errors, None).await {
        Ok(mut show) => {
            keep(&mut show);
            (StatusCode::UNPROCESSABLE_ENTITY, page(show)).into_response()
        }
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
    let typed = EditValues::typed(&fields);
    if fields.checked("add_my_ip") {
        return add_my_ip(&state, &signed, &username, typed).await;
    }
    let mut errors = Errors::new();
    let update = UpdateApiUser {
        description: Some(fields.get("description")),
        environment: parse_choice("environment", &fields, &mut errors),
        status: None,
        scopes: Some(fields.all("scope")),
        ips: Some(lines(&fields.get("ips"))),
        rate_limit_per_minute: parse_rate_limit(&fields, &mut errors),
        management: Some(fields.checked("management")),
    };
    let result = if errors.is_empty() {
        state
            .credentials
            .update(&signed.actor(), &username, update)
            .await
    } else {
        // Every field's error at once: the form's own and the service's.
        let user = state
            .credentials
            .changeable(&signed.actor(), &username, Change::Settings)
            .await?;
        Err(ServiceError::Invalid(
            Credentials::changes(&user, &update)
                .err()
                .unwrap_or_default(),
        ))
    };
    match result {
        Ok(_) => Ok(back(&username, "saved")),
        Err(ServiceError::Invalid(found)) => {
            errors.extend(found);
            let errors = errors.into_vec();
            Ok(refused(&state, &signed, &username, errors, |show| show.keep(typed)).await)
        }
        Err(other) => Err(other.into()),
    }
}

/// "Add my IP" on the settings form without JavaScript: the form again, as typed, with the
/// viewer's address (as the server sees it) added to the list and nothing saved yet, as the
/// script does in the page.
async fn add_my_ip(
    state: &AppState,
    signed: &Signed,
    username: &str,
    mut typed: EditValues,
) -> Result<Response, ConsoleError> {
    let mine = signed.ip.to_string();
    if !typed.ips.lines().any(|rule| rule == mine) {
        if !typed.ips.is_empty() {
            typed.ips.push('\n');
        }
        typed.ips.push_str(&mine);
    }
    let mut show = show_page(state, signed, username, Vec::new(), Some("my_ip_listed")).await?;
    show.keep(typed);
    Ok(page(show))
}

pub async fn roll(
    State(state): State<AppState>,
    Manager(signed): Manager,
    Path(username): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, ConsoleError> {
    let fields = Fields(fields);
    let mut errors = Errors::new();
    let grace = match grace_choice(&fields.get("grace")) {
        Ok(grace) => grace,
        Err(ServiceError::Invalid(found)) => {
            errors.extend(found);
            Duration::ZERO
        }
        Err(other) => return Err(other.into()),
    };
    let expires = errors
        .check(
            "expires",
            NewExpiry::from_field(Some(&fields.get("expires"))),
        )
        .unwrap_or(NewExpiry::AsBefore);
    let Ok(seen) = seen_key(&fields.get("current_key")) else {
        return Err(ConsoleError::BadRequest(
            "The form does not say which key it rolls: reload the page and roll from there."
                .to_owned(),
        ));
    };
    if !errors.is_empty() {
        return Ok(refused(&state, &signed, &username, errors.into_vec(), |_| ()).await);
    }
    match state
        .credentials
        .rotate_seen(
            &signed.actor(),
            &username,
            seen,
            grace,
            KeySource::default(),
            expires,
        )
        .await
    {
        Ok(Roll::Issued(issued)) => Ok(key_once(
            &signed,
            &issued.user,
            issued.key.expose(),
            "rolled",
            &issued.stopped_now,
            &state,
        )),
        Ok(Roll::AlreadyRolled(user)) => Ok((
            StatusCode::CONFLICT,
            page(AlreadyRolledPage::new(
                &signed,
                &user,
                seen,
                state.clock.now(),
            )),
        )
            .into_response()),
        Err(ServiceError::Invalid(errors)) => {
            Ok(refused(&state, &signed, &username, errors, |_| ()).await)
        }
        Err(other) => Err(other.into()),
    }
}

/// The roll form's `current_key`: the id of the newest key the page showed, or empty when it
/// showed none.
fn seen_key(field: &str) -> Result<Option<ApiKeyId>, std::num::ParseIntError> {
    if field.is_empty() {
        Ok(None)
    } else {
        field.parse().map(|id| Some(ApiKeyId(id)))
    }
}

/// A roll form sent for a key that is no longer current: nothing was rolled.
#[derive(Template)]
#[template(path = "console/api_rolled_already.html")]
struct AlreadyRolledPage {
    frame: Frame,
    username: String,
    seen: Option<String>,
    current: Option<(String, String)>,
    in_grace: Vec<(String, String)>,
}

impl AlreadyRolledPage {
    fn new(signed: &Signed, user: &ApiUser, seen: Option<ApiKeyId>, now: OffsetDateTime) -> Self {
        let current = user.current_key(now);
        Self {
            frame: Frame::new(signed, "apis"),
            username: user.username.clone(),
            seen: seen.and_then(|id| {
                user.keys
                    .iter()
                    .find(|k| k.id == id)
                    .map(|k| k.hint.clone())
            }),
            current: current.map(|k| (k.hint.clone(), when(Some(k.created_at)))),
            in_grace: user
                .keys
                .iter()
                .filter(|k| k.is_live(now) && Some(k.id) != current.map(|c| c.id))
                .map(|k| (k.hint.clone(), when(k.expires_at)))
                .collect(),
        }
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
        Ok((_, true)) => Ok(back(&username, "ip_added")),
        Ok((_, false)) => Ok(back(&username, "ip_listed")),
        Err(ServiceError::Invalid(errors)) => {
            let rule = form.rule.trim().to_owned();
            Ok(refused(&state, &signed, &username, errors, |show| show.rule = rule).await)
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
    locked: Option<String>,
}

pub async fn sessions(
    State(state): State<AppState>,
    signed: Signed,
    Path(username): Path<String>,
    Query(query): Query<DoneQuery>,
) -> Result<Response, ConsoleError> {
    let now = state.clock.now();
    let user = state.credentials.get(&username).await?;
    let (frame, locked) = user_frame(&signed, &user, query.done.as_deref());
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
    Ok(page(SessionsPage {
        frame,
        username,
        sessions,
        tab: "sessions",
        locked,
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
    let ended = match state
        .credentials
        .revoke_sessions(&signed.actor(), &username, form.session.map(SessionId))
        .await
    {
        Err(ServiceError::NoSuchSession { .. }) => {
            return Err(ConsoleError::Gone(
                "That session has ended already (revoked, or expired): nothing was changed."
                    .to_owned(),
            ));
        }
        other => other?,
    };
    Ok(Redirect::to(&format!(
        "/admin/apis/{}/sessions?done={}",
        urlencode(&username),
        if ended == 0 { "none_open" } else { "revoked" }
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
    calls_24h: String,
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
        calls_24h: calls(calls_24h),
        username,
    }))
}

pub async fn delete(
    State(state): State<AppState>,
    Manager(signed): Manager,
    Path(username): Path<String>,
) -> Result<Response, ConsoleError> {
    match state.credentials.delete(&signed.actor(), &username).await {
        Ok(_) => Ok(Redirect::to("/admin/apis?done=deleted").into_response()),
        Err(ServiceError::NoSuchUser(_)) => Err(ConsoleError::Gone(format!(
            "There is no API user named {username}: it was deleted already (or never made), so nothing was deleted now."
        ))),
        Err(other) => Err(other.into()),
    }
}
