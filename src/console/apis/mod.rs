//! System → Users → APIs: the list, Add New, and an API user's page with its settings, key,
//! IP rules, usage and sessions.

mod add;
mod delete;
mod keys;
mod parse;
mod sessions;
mod settings;

pub use add::{create, new};
pub use delete::{confirm_delete, delete};
pub use keys::roll;
pub use sessions::{revoke_sessions, sessions};
pub use settings::{add_ip, remove_ip, set_status, show, update};

use super::Query;
use super::session::Signed;
use super::view::{ago, ip_summary, ip_warning, key_state, last_use, when};
use super::{ConsoleError, Frame, page};
use crate::domain::api_user::{Environment, Status};
use crate::http::AppState;
use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

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

fn environments() -> Vec<&'static str> {
    Environment::ALL.iter().map(|e| e.as_str()).collect()
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
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
