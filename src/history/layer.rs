//! The middleware that writes one history row for every call of an entry that takes
//! credentials: `/api/v1` and the OpenCart-compatible `/index.php`. It is also where a panic
//! in a call is caught and answered.

use super::{PendingSession, RecordError, Recorder};
use crate::auth::ClientIp;
use crate::clock::SharedClock;
use crate::domain::history::{HistoryEntry, Outcome};
use crate::domain::ids::{ApiUserId, SessionId};
use crate::http::error::ApiError;
use crate::http::request_id::{self, RequestId};
use crate::telemetry::metrics::{CallMetrics, Target};
use axum::extract::{Request, State};
use axum::http::Method;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use futures_util::FutureExt;
use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// What the pipeline learned about the caller; handlers and the auth layer attach it to
/// their response, and this layer moves it into the history row.
#[derive(Debug, Clone, Default)]
pub struct CallInfo {
    pub api_user_id: Option<ApiUserId>,
    /// The username as presented (it may belong to nobody).
    pub username: Option<Arc<str>>,
    pub key_hint: Option<Arc<str>>,
    pub session_id: Option<SessionId>,
    /// The route template (`/api/v1/products/{id}`), never the raw URL with its query.
    pub route: Option<Arc<str>>,
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
    /// How this entry words the errors the layer answers itself (timeout, history down), so
    /// each entry keeps its own error shape.
    pub render: fn(ApiError) -> Response,
    /// Every call is counted where its history row is made, with the same outcome.
    pub metrics: Arc<CallMetrics>,
    /// The status `render` gives a refused login (see [`HistoryEntry::refused_status`]).
    pub refused_status: u16,
}

/// The history layer of the OpenCart-compatible entry.
pub async fn record_calls(
    State(state): State<Arc<HistoryState>>,
    request: Request,
    next: Next,
) -> Response {
    let run = Run::by_method(request.method());
    record(state, request, run, |request| next.run(request)).await
}

/// How a call runs, for its history row to tell what happened even if its client hangs up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    /// In the connection's task. Cut short by a client that hangs up, the call writes its
    /// row as cancelled: for a call whose changes are all written with its history row (a
    /// read has none), or none of them.
    Inline,
    /// In a task of its own, so a client that hangs up cannot cut it between a change and
    /// its history row: the task finishes and records either way.
    OwnTask,
}

impl Run {
    /// A read runs inline; anything else in its own task.
    pub fn by_method(method: &Method) -> Self {
        if matches!(*method, Method::GET | Method::HEAD) {
            Self::Inline
        } else {
            Self::OwnTask
        }
    }
}

/// Runs `call` on `request` as `run` says, and writes its history row; the API's entry calls
/// it directly.
pub async fn record<F, Fut>(
    state: Arc<HistoryState>,
    request: Request,
    run: Run,
    call: F,
) -> Response
where
    F: FnOnce(Request) -> Fut + Send + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    if run == Run::Inline {
        return serve_and_record(state, request, call).await;
    }
    let render = state.render;
    let under_way = state.recorder.change_under_way();
    request_id::spawn(async move {
        let _under_way = under_way;
        serve_and_record(state, request, call).await
    })
    .await
    .unwrap_or_else(|_| render(ApiError::internal()))
}

/// A call on its way, with what its history row will say. Dropped before `finish` (its client
/// hung up mid-call), it still writes the row, as cancelled.
struct Call {
    state: Arc<HistoryState>,
    slot: CallSlot,
    received: OffsetDateTime,
    /// For metrics: the application's clock may be a test's, frozen.
    started: Instant,
    /// A row on its way to its commit, to count even if the call is dropped while it waits.
    uncounted: Option<(Target, Outcome, u16)>,
    method: Method,
    path: String,
    ip: String,
    request_id: Option<RequestId>,
    finished: bool,
}

impl Call {
    fn begin(state: Arc<HistoryState>, request: &mut Request) -> Self {
        let slot = CallSlot::default();
        request.extensions_mut().insert(slot.clone());
        let extensions = request.extensions();
        let path = request.uri().path();
        Self {
            received: state.clock.now(),
            started: Instant::now(),
            uncounted: None,
            slot,
            method: request.method().clone(),
            path: path.to_owned(),
            ip: extensions
                .get::<ClientIp>()
                .map(|ip| ip.0.to_string())
                .unwrap_or_default(),
            request_id: extensions.get::<RequestId>().copied(),
            state,
            finished: false,
        }
    }

    /// The call's history row; its metrics are counted with `count` once it is answered.
    fn entry(&mut self, info: CallInfo, status: u16, outcome: Outcome) -> (HistoryEntry, Target) {
        let target = self
            .state
            .metrics
            .target(info.route.as_deref(), &self.method);
        let route = match &info.route {
            Some(route) => Cow::Borrowed(&**route),
            None => Cow::Owned(unmatched_path(&self.path)),
        };
        let call = format!("{} {route}", self.method);
        let entry = HistoryEntry {
            api_user_id: info.api_user_id,
            username: info.username,
            key_hint: info.key_hint,
            session_id: info.session_id,
            call,
            ip: std::mem::take(&mut self.ip),
            status,
            outcome,
            date_added: self.received,
            date_modified: self.state.clock.now(),
            request_id: self
                .request_id
                .map_or_else(String::new, |id| id.as_str().to_owned()),
            refused_status: self.state.refused_status,
        };
        (entry, target)
    }

    fn count(&self, target: Target, outcome: Outcome, status: u16) {
        let elapsed = self.started.elapsed();
        self.state.metrics.record(target, outcome, status, elapsed);
    }

    /// Writes the row of an answered call and waits for its commit.
    async fn finish(mut self, mut response: Response) -> Response {
        self.finished = true;
        let info = response
            .extensions_mut()
            .remove::<CallInfo>()
            .or_else(|| self.slot.take())
            .unwrap_or_default();
        let outcome = response
            .extensions()
            .get::<Outcome>()
            .copied()
            .unwrap_or_else(|| outcome_of(response.status()));
        let status = response.status().as_u16();
        let session = response.extensions_mut().remove::<PendingSession>();
        let login = session.is_some();
        let (entry, target) = self.entry(info, status, outcome);
        self.uncounted = Some((target, outcome, status));
        let (response, outcome) = match self.state.recorder.record(entry, session).await {
            Ok(()) => (response, outcome),
            // A login checked just before its user was disabled or deleted, whose session
            // reached the database after that: refused after all, as its entry refuses a
            // login, with the reason its row was written with.
            Err(RecordError::SessionLeftOut(left)) if left.refused() => (
                (self.state.render)(ApiError::unauthorized(left.outcome)),
                left.outcome,
            ),
            // An answer without its history row would break the audit trail: withhold it.
            Err(_) => {
                // A read, a refusal (4xx), or a login, whose one change is written with its
                // row: nothing changed if the row is not written.
                let changed_nothing =
                    self.method.is_safe() || login || (400..500).contains(&status);
                (
                    (self.state.render)(ApiError::history_unavailable(changed_nothing)),
                    Outcome::Unavailable,
                )
            }
        };
        self.uncounted = None;
        self.count(target, outcome, response.status().as_u16());
        response
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.finished {
            let info = self.slot.take().unwrap_or_default();
            // 499: nginx's "client closed request".
            let (entry, target) = self.entry(info, 499, Outcome::Cancelled);
            self.state.recorder.record_detached(entry);
            self.count(target, Outcome::Cancelled, 499);
        } else if let Some((target, outcome, status)) = self.uncounted.take() {
            self.count(target, outcome, status);
        }
    }
}

async fn serve_and_record<F, Fut>(
    state: Arc<HistoryState>,
    mut request: Request,
    call: F,
) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let (timeout, render) = (state.timeout, state.render);
    let record = Call::begin(state, &mut request);
    // A panic in the call is answered (500, in this entry's shape) and recorded like any
    // other answer; the connection and the server stay up.
    // Boxed where it is made: the call's future is large, and each future that holds it
    // would otherwise be copied whole as it moves into the next.
    let run = std::panic::AssertUnwindSafe(Box::pin(call(request))).catch_unwind();
    let response = match tokio::time::timeout(timeout, run).await {
        Ok(Ok(response)) => response,
        Ok(Err(_)) => render(ApiError::internal()),
        Err(_) => render(ApiError::timed_out(timeout)),
    };
    record.finish(response).await
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
    crate::domain::secret::quoted(path, 120)
}
