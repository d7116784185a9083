//! Admin users and roles, and the admin audit log: administrators only.

use super::Form;
use super::apis::flash;
use super::session::Administrator;
use super::view::when;
use super::{ConsoleError, Frame, page};
use super::{Path, Query};
use crate::domain::admin::Role;
use crate::domain::api_user::Status;
use crate::domain::secret::Secret;
use crate::http::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

struct AdminRow {
    username: String,
    role: String,
    enabled: bool,
    created: String,
    is_me: bool,
}

#[derive(Template)]
#[template(path = "console/admins.html")]
struct AdminsPage {
    frame: Frame,
    admins: Vec<AdminRow>,
    roles: Vec<&'static str>,
    error: Option<String>,
    new_username: String,
}

#[derive(Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}

async fn admins_page(
    state: &AppState,
    signed: &super::Signed,
    error: Option<String>,
    new_username: String,
    done: Option<&str>,
) -> Result<AdminsPage, ConsoleError> {
    let admins = state
        .db
        .list_admins()
        .await?
        .into_iter()
        .map(|a| AdminRow {
            is_me: a.username == signed.username(),
            username: a.username,
            role: a.role.to_string(),
            enabled: a.status == Status::Enabled,
            created: when(Some(a.created_at)),
        })
        .collect();
    Ok(AdminsPage {
        frame: Frame::new(signed, "admins").with_flash(flash(done)),
        admins,
        roles: Role::ALL.iter().map(|r| r.as_str()).collect(),
        error,
        new_username,
    })
}

pub async fn list(
    State(state): State<AppState>,
    Administrator(signed): Administrator,
    Query(query): Query<DoneQuery>,
) -> Result<Response, ConsoleError> {
    Ok(page(
        admins_page(&state, &signed, None, String::new(), query.done.as_deref()).await?,
    ))
}

#[derive(Deserialize)]
pub struct NewAdmin {
    username: String,
    role: String,
    password: String,
}

pub async fn create(
    State(state): State<AppState>,
    Administrator(signed): Administrator,
    Form(form): Form<NewAdmin>,
) -> Result<Response, ConsoleError> {
    let role: Role = form.role.parse().map_err(ConsoleError::BadRequest)?;
    match state
        .admins
        .create(
            &signed.actor(),
            &form.username,
            role,
            Secret::new(form.password),
        )
        .await
    {
        Ok(_) => Ok(Redirect::to("/admin/admins?done=admin_created").into_response()),
        Err(crate::credentials::admins::AdminError::Store(
            crate::store::StoreError::Conflict { message, .. },
        )) => {
            let page = admins_page(&state, &signed, Some(message), form.username, None).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, super::page(page)).into_response())
        }
        Err(
            error @ (crate::credentials::admins::AdminError::Username(_)
            | crate::credentials::admins::AdminError::Password(_)),
        ) => {
            let page = admins_page(
                &state,
                &signed,
                Some(error.to_string()),
                form.username,
                None,
            )
            .await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, super::page(page)).into_response())
        }
        Err(other) => Err(other.into()),
    }
}

#[derive(Deserialize)]
pub struct AdminChange {
    role: Option<String>,
    status: Option<String>,
}

pub async fn update(
    State(state): State<AppState>,
    Administrator(signed): Administrator,
    Path(username): Path<String>,
    Form(form): Form<AdminChange>,
) -> Result<Response, ConsoleError> {
    let role = form
        .role
        .as_deref()
        .map(str::parse::<Role>)
        .transpose()
        .map_err(ConsoleError::BadRequest)?;
    let status = form
        .status
        .as_deref()
        .map(str::parse::<Status>)
        .transpose()
        .map_err(ConsoleError::BadRequest)?;
    if username == signed.username()
        && (status == Some(Status::Disabled) || role.is_some_and(|r| r != Role::Administrator))
    {
        return Err(ConsoleError::BadRequest(
            "You cannot disable yourself or take away your own administrator role: ask another administrator."
                .to_owned(),
        ));
    }
    state
        .admins
        .update(&signed.actor(), &username, role, status)
        .await?;
    Ok(Redirect::to("/admin/admins?done=admin_saved").into_response())
}

struct AuditRow {
    at: String,
    actor: String,
    /// Through what the actor acted, from the prefix of its name.
    via: &'static str,
    ip: String,
    action: String,
    target: String,
    details: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    frame: Frame,
    rows: Vec<AuditRow>,
    next: Option<i64>,
}

#[derive(Deserialize)]
pub struct AuditQuery {
    before: Option<i64>,
}

pub async fn audit(
    State(state): State<AppState>,
    Administrator(signed): Administrator,
    Query(query): Query<AuditQuery>,
) -> Result<Response, ConsoleError> {
    const PAGE: u32 = 100;
    let records = state.db.audit_log(query.before, PAGE + 1).await?;
    let next = (records.len() > PAGE as usize)
        .then(|| records.get(PAGE as usize - 1).map(|r| r.id))
        .flatten();
    let rows = records
        .into_iter()
        .take(PAGE as usize)
        .map(|r| AuditRow {
            at: when(Some(r.at)),
            via: match r.actor.split_once(':').map(|(kind, _)| kind) {
                Some("admin") => "console",
                Some("cli") => "CLI",
                Some("api") => "API key",
                _ => "",
            },
            actor: r.actor,
            ip: r.actor_ip.unwrap_or_default(),
            action: r.action,
            target: r.target,
            details: if r.details.as_object().is_some_and(|o| o.is_empty()) {
                String::new()
            } else {
                r.details.to_string()
            },
        })
        .collect();
    Ok(page(AuditPage {
        frame: Frame::new(&signed, "audit"),
        rows,
        next,
    }))
}
