//! An API user's open sessions, and ending them.

use super::settings::{DoneQuery, user_frame};
use super::urlencode;
use crate::console::Form;
use crate::console::session::{Manager, Signed};
use crate::console::view::{ago, when};
use crate::console::{ConsoleError, Frame, page};
use crate::console::{Path, Query};
use crate::credentials::ServiceError;
use crate::domain::ids::SessionId;
use crate::http::AppState;
use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

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
            return Err(ConsoleError::Gone(format!(
                "{username} has no open session with that number: it has ended already \
                 (revoked, or expired), or it is another API user's. Nothing was changed."
            )));
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
