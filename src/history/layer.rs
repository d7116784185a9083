//! The middleware that writes one history row for every `/api/v1` call.

use super::Recorder;
use crate::auth::ClientIp;
use crate::clock::SharedClock;
use crate::domain::history::{HistoryEntry, Outcome};
use crate::domain::ids::{ApiUserId, SessionId};
use crate::http::error::ApiError;
use crate::http::request_id::{self, RequestId};
use axum::extract::{OriginalUri, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;

/// What the pipeline learned about the caller; handlers and the auth layer attach it to
/// their response, and this layer moves it into the history row.
#[derive(Debug, Clone, Default)]
pub struct CallInfo {
    pub api_user_id: Option<ApiUserId>,
    /// The username as presented (it may belong to nobody).
    pub username: Option<String>,
    pub key_hint: Option<String>,
    pub session_id: Option<SessionId>,
    /// The route template (`/api/v1/products/{id}`), never the raw URL with its query.
    pub route: Option<String>,
}

/// Where the auth pipeline leaves what it learned about the caller, so the history row names
/// the caller even when the call itself is cut short (timeout) and returns no `CallInfo`.
#[derive(Clone, Default)]
pub struct CallSlot(Arc<std::sync::Mutex<Option<CallInfo>>>);

impl CallSlot {
    pub fn fill(&self, info: &CallInfo) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(info.clone());
    }

    fn take(&self) -> Option<CallInfo> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

pub struct HistoryState {
    pub recorder: Recorder,
    pub clock: SharedClock,
    /// Longest a call may take before it is answered 503.
    pub timeout: Duration,
}

pub async fn record_calls(
    State(state): State<Arc<HistoryState>>,
    request: Request,
    next: Next,
) -> Response {
    // Each call runs in a task of its own, so a client that hangs up cannot cut it between its
    // change and its history row: the task finishes and records either way.
    request_id::spawn(serve_and_record(state, request, next))
        .await
        .unwrap_or_else(|_| ApiError::internal().into_response())
}

async fn serve_and_record(state: Arc<HistoryState>, mut request: Request, next: Next) -> Response {
    let received = state.clock.now();
    let slot = CallSlot::default();
    request.extensions_mut().insert(slot.clone());
    let method = request.method().clone();
    // Inside the nested API router the URI lost its `/api/v1`; the original keeps it.
    let path = request
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| request.uri().path(), |uri| uri.path())
        .to_owned();
    let ip = request
        .extensions()
        .get::<ClientIp>()
        .map(|ip| ip.0.to_string())
        .unwrap_or_default();
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map(|id| id.0.clone())
        .unwrap_or_default();

    let mut response = match tokio::time::timeout(state.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::timed_out(state.timeout).into_response(),
    };

    let info = response
        .extensions_mut()
        .remove::<CallInfo>()
        .or_else(|| slot.take())
        .unwrap_or_default();
    let outcome = response
        .extensions()
        .get::<Outcome>()
        .copied()
        .unwrap_or_else(|| outcome_of(response.status()));
    let route = info.route.unwrap_or_else(|| unmatched_path(&path));
    let entry = HistoryEntry {
        api_user_id: info.api_user_id,
        username: info.username,
        key_hint: info.key_hint,
        session_id: info.session_id,
        call: format!("{method} {route}"),
        ip,
        status: response.status().as_u16(),
        outcome,
        date_added: received,
        date_modified: state.clock.now(),
        request_id,
    };
    match state.recorder.record(entry).await {
        Ok(()) => response,
        // An answer without its history row would break the audit trail: withhold it.
        Err(_) => ApiError::history_unavailable().into_response(),
    }
}

fn outcome_of(status: StatusCode) -> Outcome {
    match status.as_u16() {
        100..=399 => Outcome::Ok,
        401 => Outcome::MissingCredentials,
        404 | 405 => Outcome::NotFound,
        409 => Outcome::Conflict,
        422 => Outcome::Invalid,
        429 => Outcome::RateLimited,
        503 => Outcome::Unavailable,
        400..=499 => Outcome::BadRequest,
        _ => Outcome::Error,
    }
}

/// A path that matched no route, cut short and stripped of anything odd, so a hostile URL
/// cannot flood the history.
fn unmatched_path(path: &str) -> String {
    let redacted = crate::domain::secret::redact(path);
    let mut clean: String = redacted
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == '…')
        .take(120)
        .collect();
    if clean.chars().count() < redacted.chars().count() {
        clean.push('…');
    }
    clean
}
