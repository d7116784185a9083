//! The auth pipeline, run for every `/api/v1` call by the API's entry (`http::api`); a POST
//! goes on through its `Idempotency-Key` (see `http::idempotency`).

use super::policy::{Access, Policy};
use super::{
    Authenticator, Caller, ClientIp, HeaderProblem, Need, Presented, RateState, Refusal,
    has_secret_param, presented,
};
use crate::domain::history::Outcome;
use crate::history::{CallInfo, CallSlot};
use crate::http::AppState;
use crate::http::api::Handlers;
use crate::http::error::ApiError;
use crate::http::idempotency::idempotent_posts;
use crate::telemetry::metrics::Metrics;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

pub struct AuthState {
    pub policy: Arc<Policy>,
    /// The authenticator, the metrics that time each call's checks, and what a POST's
    /// `Idempotency-Key` needs.
    pub app: AppState,
}

/// 405 for a method the route does not declare: no handler runs without a declared access.
fn undeclared(policy: &Policy, method: &axum::http::Method, route: &str) -> Response {
    let allowed = policy.methods(route);
    // As axum words it: HEAD wherever GET is taken, no spaces.
    let mut methods: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
    if methods.contains(&"GET") {
        methods.push("HEAD");
    }
    methods.sort_unstable();
    let allow = methods.join(",");
    let message = format!("{method} is not allowed here; this route takes {allow}.");
    let mut response =
        ApiError::unacceptable(axum::http::StatusCode::METHOD_NOT_ALLOWED, message).into_response();
    if let Ok(value) = HeaderValue::from_str(&allow) {
        response
            .headers_mut()
            .insert(axum::http::header::ALLOW, value);
    }
    response
}

/// The call's handler, once its query string is known to be one the route takes; a POST goes
/// through its `Idempotency-Key` first.
async fn handled(state: &AuthState, route: &str, request: Request, handlers: Handlers) -> Response {
    match unexpected_query(&state.policy, route, &request) {
        Some(refusal) => refusal.into_response(),
        None => idempotent_posts(&state.app, request, handlers).await,
    }
}

/// A query string on a route that declares no query parameters is refused, as the lists
/// refuse parameters they do not know, rather than ignored: `POST /api/v1/orders?dry_run=1`
/// would place the order.
fn unexpected_query(policy: &Policy, route: &str, request: &Request) -> Option<ApiError> {
    let query = request.uri().query()?;
    let first = query.split('&').find(|pair| !pair.is_empty())?;
    if policy.takes_query(request.method(), route) {
        return None;
    }
    if has_secret_param(query) {
        // A public call's query (a login's) is told what an authenticated one is.
        return Some(ApiError::secret_in_query());
    }
    // Decoded before it is masked, so `kw%5F…` is masked too.
    let raw = first.split('=').next().unwrap_or_default();
    let decoded: Vec<(String, String)> = serde_urlencoded::from_str(first).unwrap_or_default();
    let name = decoded.first().map_or(raw, |(name, _)| name.as_str());
    let name = crate::domain::secret::quoted(name, 40);
    Some(
        ApiError::bad_request(format!(
            "Bad query parameter: `{name}`; {} {route} takes none.",
            request.method()
        ))
        .on_field(&name, "is not a parameter of this call"),
    )
}

static LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
static REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
static RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// The checks of one call, for every entry that takes credentials (`/api/v1` through
/// [`pipeline`], and the OpenCart-compatible entry): credentials → status and expiry → IP →
/// scope → rate limit. An admitted caller is named to the call's history slot at once, so its
/// row names it even if the call is then cut short. The checks are timed on `metrics`.
pub async fn admit(
    auth: &Authenticator,
    metrics: &Metrics,
    credentials: Result<Presented, ApiError>,
    ip: IpAddr,
    need: Need,
    route: &Arc<str>,
    slot: Option<&CallSlot>,
) -> Result<Caller, Refusal> {
    let started = Instant::now();
    let verdict = match credentials {
        Ok(credentials) => auth.authenticate(&credentials, ip, need).await,
        Err(error) => Err(Refusal::new(error)),
    };
    metrics.observe_auth(verdict.is_ok(), started.elapsed());
    let caller = verdict?;
    if let Some(slot) = slot {
        slot.fill(&CallInfo {
            route: Some(route.clone()),
            ..caller.call_info()
        });
    }
    Ok(caller)
}

/// `response`, an answer given before the call's checks (a route or method the API does not
/// have, a body too large), with what its history row needs to name whose credentials the call
/// carried (see [`Authenticator::identify`]). The answer is the same whoever sends it.
pub async fn answered_before_checks(
    state: &AuthState,
    request: &Parts,
    mut response: Response,
) -> Response {
    let info = match presented(&request.headers, request.uri.query()) {
        Ok(credentials) => state.app.auth.identify(&credentials).await,
        Err(_) => CallInfo::default(),
    };
    response.extensions_mut().insert(info);
    response
}

/// The `RateLimit-*` headers of an admitted call's answer.
pub fn add_rate_headers(response: &mut Response, rate: RateState) {
    let headers = response.headers_mut();
    headers.insert(LIMIT.clone(), HeaderValue::from(rate.limit_per_minute));
    headers.insert(REMAINING.clone(), HeaderValue::from(rate.remaining));
    headers.insert(RESET.clone(), HeaderValue::from(rate.reset_seconds));
}

/// The checks of one `/api/v1` call on `route` (its template), then the handler; a POST goes
/// on through its `Idempotency-Key`.
pub async fn pipeline(
    state: &AuthState,
    route: &Arc<str>,
    mut request: Request,
    handlers: Handlers,
) -> Response {
    let mut response = match state.policy.access(request.method(), route) {
        // A public POST has no caller to remember an answer for, but a malformed
        // `Idempotency-Key` is still refused.
        Some(Access::Public) => handled(state, route, request, handlers).await,
        // Undeclared means refused: no handler runs without a declared access.
        None => {
            let refusal = undeclared(&state.policy, request.method(), route);
            answered_before_checks(state, &request.into_parts().0, refusal).await
        }
        Some(Access::Authenticated(need)) => {
            let ip = request
                .extensions()
                .get::<ClientIp>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0);
            let credentials = presented(request.headers(), request.uri().query()).map_err(
                |problem| match problem {
                    HeaderProblem::Missing => ApiError::unauthorized(Outcome::MissingCredentials),
                    HeaderProblem::Malformed => {
                        ApiError::unauthorized(Outcome::MalformedCredentials)
                    }
                    HeaderProblem::SecretInQuery => ApiError::secret_in_query(),
                },
            );
            let slot = request.extensions().get::<CallSlot>();
            match admit(
                &state.app.auth,
                &state.app.metrics,
                credentials,
                ip,
                need,
                route,
                slot,
            )
            .await
            {
                Ok(caller) => {
                    let info = caller.call_info();
                    let rate = caller.rate;
                    request.extensions_mut().insert(caller);
                    let mut response = handled(state, route, request, handlers).await;
                    add_rate_headers(&mut response, rate);
                    if response.extensions().get::<CallInfo>().is_none() {
                        response.extensions_mut().insert(info);
                    }
                    response
                }
                Err(refusal) => {
                    let mut response = refusal.error.into_response();
                    response.extensions_mut().insert(refusal.info);
                    response
                }
            }
        }
    };
    let info = response
        .extensions_mut()
        .get_or_insert_default::<CallInfo>();
    info.route.get_or_insert_with(|| route.clone());
    response
}
