//! An API user's page: its settings, status and IP rules, keys, usage and suggestions.

use super::parse::{parse_choice, parse_rate_limit};
use super::{back, environments, flash, lines};
use crate::console::Form;
use crate::console::chart::usage_chart;
use crate::console::session::{Manager, Signed};
use crate::console::view::{
    FieldErrors, Fields, ScopeRow, ago, calls, last_use, scope_grid, ticked, when,
};
use crate::console::{ConsoleError, Frame, page};
use crate::console::{Path, Query};
use crate::credentials::{Change, Credentials, ServiceError, UpdateApiUser};
use crate::domain::api_user::{ApiUser, KeyInfo, Status};
use crate::domain::ids::ApiKeyId;
use crate::domain::scope::Scopes;
use crate::domain::validation::{Errors, FieldError};
use crate::http::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use time::{Duration, OffsetDateTime};

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
pub(super) struct ShowPage {
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
pub(super) fn user_frame(
    signed: &Signed,
    user: &ApiUser,
    done: Option<&str>,
) -> (Frame, Option<String>) {
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
    pub(super) done: Option<String>,
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

/// Re-renders the user's page with the errors of a refused change, and what was typed
/// (`keep`).
pub(super) async fn refused(
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
