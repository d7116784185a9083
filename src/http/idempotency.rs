//! `Idempotency-Key` on every POST: a retry with the same key and body within 24 h gets the
//! first answer again and changes nothing.

use super::AppState;
use super::api::Handlers;
use super::error::ApiError;
use super::request_id;
use crate::auth::Caller;
use crate::domain::validation::FieldError;
use crate::store::claims::IdempotentRun;
use crate::store::{IdempotencyClaim, StoredResponse};
use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

static KEY_HEADER: HeaderName = HeaderName::from_static("idempotency-key");
static REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Marks an answer that carries a secret shown once (a new API key): it is never stored.
/// A retry of its request is answered 409 instead, so it still changes nothing.
#[derive(Debug, Clone, Copy)]
pub struct OneTimeSecret;

const SECRET_WITHHELD: &str = "This request already ran with this Idempotency-Key. Its answer held a key, \
     which is shown once and never kept: if that answer was lost, look the API user up and roll \
     its key again.";

/// Responses are small JSON documents. A larger answer is not stored: its client gets a 500, and
/// its retries the 409 of a change that took effect without an answer.
const MAX_STORED_RESPONSE: usize = 4 * 1024 * 1024;

/// Runs `request` on through `handlers`; a POST with an `Idempotency-Key` from a caller is
/// answered once and replayed after. Called by the auth pipeline, not a layer of its own.
pub async fn idempotent_posts(state: &AppState, request: Request, handlers: Handlers) -> Response {
    if request.method() != Method::POST {
        return handlers.run(request).await;
    }
    let mut values = request.headers().get_all(&KEY_HEADER).iter();
    let Some(value) = values.next() else {
        return handlers.run(request).await;
    };
    if values.next().is_some() {
        // Which one the client meant is a guess, and a wrong guess replays another answer.
        return ApiError::bad_request("Send one `Idempotency-Key` header, not several.")
            .on_field("Idempotency-Key", "was sent more than once")
            .into_response();
    }
    let Some(key) = std::str::from_utf8(value.as_bytes())
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
    else {
        return ApiError::bad_request(
            "`Idempotency-Key` must be 1 to 255 visible ASCII characters (no spaces).",
        )
        .on_field(
            "Idempotency-Key",
            "must be 1 to 255 visible ASCII characters",
        )
        .into_response();
    };
    let Some(caller) = request.extensions().get::<Caller>().cloned() else {
        return handlers.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let bytes = match to_bytes(body, state.limits.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return ApiError::unacceptable(StatusCode::PAYLOAD_TOO_LARGE, "The body is too large.")
                .into_response();
        }
    };
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str());
    hasher.update([0]);
    hasher.update(parts.uri.path_and_query().map_or("", |pq| pq.as_str()));
    hasher.update([0]);
    hasher.update(&bytes);
    let fingerprint = hasher.finalize();
    let run = IdempotentRun::new(caller.user.id, &key);
    let now = state.clock.now();
    // A run cut off before any change (the process stopped) is abandoned once it would have
    // timed out: its client has had its 503 by then, and its retry runs it.
    let patience = state.limits.request_timeout;
    let abandoned_before = now - patience;

    match state
        .db
        .claim_idempotency(&run, &fingerprint, now, abandoned_before)
        .await
    {
        Err(error) => ApiError::from(error).into_response(),
        Ok(IdempotencyClaim::Replay(stored)) => replay(stored),
        Ok(IdempotencyClaim::InProgress { claimed_at }) => {
            let wait = (claimed_at + patience - now).whole_seconds().max(0) + 1;
            let error = ApiError::conflict(
                "A request with this Idempotency-Key is still being processed. Retry with the \
                 same key after `Retry-After` seconds: its answer then, or, if it was cut off \
                 before it changed anything, the request run once.",
                vec![key_detail("is still being processed")],
            );
            with_retry_after(error, wait)
        }
        // Perhaps never to be stored (the server stopped, or could not store it), perhaps
        // still on its way (a server held up past `request_timeout`): no way to tell.
        Ok(IdempotencyClaim::Applied { location }) => {
            let look = if location.is_some() {
                "or read what it made, at `Location`"
            } else {
                "or look the result up"
            };
            let error = ApiError::conflict(
                format!(
                    "A request with this Idempotency-Key took effect, but its answer has not \
                     been stored: the server stopped, could not read the result back or store \
                     it, or is still at work past `request_timeout`. It is not run again. Retry \
                     with the same key later to get its answer if it comes, {look}."
                ),
                vec![key_detail("took effect without a stored answer")],
            );
            let mut response = with_retry_after(error, patience.as_secs().max(1) as i64);
            if let Some(location) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        }
        Ok(IdempotencyClaim::Mismatch) => ApiError::invalid_field(
            "Idempotency-Key",
            "was already used with a different request in the last 24 hours; use a new key",
        )
        .into_response(),
        Ok(IdempotencyClaim::Claimed) => {
            // The change and its record run in a task of their own: a timeout or a client that
            // hangs up cannot separate them.
            let request = Request::from_parts(parts, Body::from(bytes));
            let remember = run_and_remember(state.clone(), run.clone(), handlers, request);
            request_id::spawn(run.scope(remember))
                .await
                .unwrap_or_else(|_| ApiError::internal().into_response())
        }
    }
}

/// Runs the request within its claim's scope, whose write transactions mark the claim applied,
/// then stores its answer, or lets the key go after a refusal that changed nothing.
async fn run_and_remember(
    state: AppState,
    run: IdempotentRun,
    handlers: Handlers,
    request: Request,
) -> Response {
    let response = handlers.run(request).await;
    let (parts, body) = response.into_parts();
    let body = match to_bytes(body, MAX_STORED_RESPONSE).await {
        Ok(body) => body,
        Err(_) => {
            let _ = state.db.release_idempotency(&run).await;
            return ApiError::internal().into_response();
        }
    };
    // Only changes are remembered; a refusal may succeed when retried later. A change whose
    // answer holds a secret is remembered as the refusal its retries get (see `replay`).
    let outcome = if parts.status.is_success() && parts.extensions.get::<OneTimeSecret>().is_some()
    {
        let stored = StoredResponse {
            status: StatusCode::CONFLICT.as_u16(),
            content_type: None,
            location: None,
            body: Vec::new(),
        };
        state.db.complete_idempotency(&run, &stored).await
    } else if parts.status.is_success() {
        let header = |name| {
            parts
                .headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let stored = StoredResponse {
            status: parts.status.as_u16(),
            content_type: header(header::CONTENT_TYPE),
            location: header(header::LOCATION),
            body: body.to_vec(),
        };
        state.db.complete_idempotency(&run, &stored).await
    } else {
        state.db.release_idempotency(&run).await
    };
    if let Err(error) = outcome {
        tracing::error!(
            error = &error as &dyn std::error::Error,
            "could not record an idempotent response"
        );
    }
    Response::from_parts(parts, Body::from(body))
}

/// A detail naming the header, so a client tells the kinds of 409 apart without reading the
/// message.
fn key_detail(message: &str) -> FieldError {
    FieldError {
        field: "Idempotency-Key".to_owned(),
        message: message.to_owned(),
    }
}

fn with_retry_after(error: ApiError, seconds: i64) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

fn replay(stored: StoredResponse) -> Response {
    // Successes are stored as they were, except those that held a secret: as a bare 409.
    if stored.status == StatusCode::CONFLICT.as_u16() {
        let mut response = ApiError::conflict(SECRET_WITHHELD, Vec::new()).into_response();
        response
            .headers_mut()
            .insert(REPLAYED.clone(), HeaderValue::from_static("true"));
        return response;
    }
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, stored.body).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, stored.content_type),
        (header::LOCATION, stored.location),
    ] {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(name, value);
        }
    }
    headers.insert(REPLAYED.clone(), HeaderValue::from_static("true"));
    response
}
