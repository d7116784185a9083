//! Deleting an API user, after a page that says what it ends.

use crate::console::Path;
use crate::console::session::Manager;
use crate::console::view::{calls, last_use, when};
use crate::console::{ConsoleError, Frame, page};
use crate::credentials::{Change, ServiceError};
use crate::http::AppState;
use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use time::Duration;

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
