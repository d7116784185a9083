//! The OpenCart-compatible entry, `/index.php?route=…`: an integration written for OpenCart
//! 3.x or 4.0 works by changing only its base URL. It logs in with `username` and `key`, then
//! sends the session token as `api_token` or `token` (in the query string, as OpenCart
//! clients do, or in the body).
//!
//! It is another door to the same house: the same sessions and login throttle
//! (`Authenticator::login`), the same checks for every call (`auth::admit`), the same history
//! layer, the same order service. Only the words and shapes of the answers are OpenCart's.
//! This is the one entry that takes a token in the query string; the request span logs the
//! path alone and the history names the route, so the query string is never written down.

mod fields;
mod login;
mod orders;
mod reply;

use crate::auth::{ClientIp, Need, Presented, add_rate_headers, admit};
use crate::domain::scope::Scope;
use crate::history::{CallInfo, CallSlot, HistoryState, record_calls};
use crate::http::AppState;
use crate::http::error::ApiError;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::Response;
use axum::routing::any;
use fields::Fields;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

pub const PATH: &str = "/index.php";

/// The routes this entry serves, by OpenCart's `route` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `api/login`, OpenCart 3.x.
    Login3,
    /// `api/account/login`, OpenCart 4.0.
    Login4,
    OrderInfo,
    OrderHistory,
}

impl Route {
    const ALL: [Self; 4] = [
        Self::Login3,
        Self::Login4,
        Self::OrderInfo,
        Self::OrderHistory,
    ];

    fn parse(route: &str) -> Option<Self> {
        match route.trim() {
            "api/login" => Some(Self::Login3),
            "api/account/login" => Some(Self::Login4),
            "api/order/info" => Some(Self::OrderInfo),
            "api/order/history" => Some(Self::OrderHistory),
            _ => None,
        }
    }

    /// What the route needs beyond valid credentials; `None` for the logins, which take a
    /// username and key instead.
    fn need(self) -> Option<Need> {
        match self {
            Self::Login3 | Self::Login4 => None,
            Self::OrderInfo => Some(Need::Scope(Scope::OrdersRead)),
            Self::OrderHistory => Some(Need::Scope(Scope::OrdersWrite)),
        }
    }

    /// The route as the history's `call` names it.
    fn call(self) -> &'static str {
        match self {
            Self::Login3 => "/index.php?route=api/login",
            Self::Login4 => "/index.php?route=api/account/login",
            Self::OrderInfo => "/index.php?route=api/order/info",
            Self::OrderHistory => "/index.php?route=api/order/history",
        }
    }
}

/// The routes as the metrics count them: the history's `call` and the methods OpenCart
/// clients send. A `route` this entry does not serve is counted as unmatched.
pub fn routes_counted<'a>() -> impl Iterator<Item = (&'a str, Vec<Method>)> {
    let methods = || vec![Method::GET, Method::POST];
    Route::ALL
        .into_iter()
        .map(move |route| (route.call(), methods()))
}

/// The entry's router, with its own history layer (`history` words the layer's own errors
/// in OpenCart's shape).
pub fn routes(state: AppState, history: Arc<HistoryState>) -> Router {
    Router::new()
        .route(PATH, any(dispatch))
        .with_state(state)
        .layer(from_fn_with_state(history, record_calls))
}

/// The history layer's own errors (timeout, history unavailable) in OpenCart's shape.
pub fn render(error: ApiError) -> Response {
    reply::plain(error)
}

/// OpenCart reads every field of every method the same way, so this entry does too.
#[tracing::instrument(level = "debug", skip_all)]
async fn dispatch(State(state): State<AppState>, request: Request) -> Response {
    let mut fields = Fields::query(request.uri().query());
    let named = fields.get("route").unwrap_or("");
    let Some(route) = Route::parse(named) else {
        let mut response = reply::unknown_route();
        response.extensions_mut().insert(CallInfo {
            route: Some(unknown_call(named).into()),
            ..CallInfo::default()
        });
        return response;
    };
    let ip = request
        .extensions()
        .get::<ClientIp>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0);
    let slot = request.extensions().get::<CallSlot>().cloned();
    let call: Arc<str> = route.call().into();
    // Named at once, so a call cut short while its body arrives is recorded under its route.
    if let Some(slot) = &slot {
        slot.fill(&CallInfo {
            route: Some(call.clone()),
            ..CallInfo::default()
        });
    }
    let most = state.limits.max_body_bytes;
    let too_large = super::api::declared_length(&request).is_some_and(|n| n > most as u64);
    let read = if too_large {
        // Refused before any of it is read, as `/api/v1` does: waiting for a body this size
        // only ends in the request's timeout.
        Err(ApiError::unacceptable(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("The body is too large: at most {most} bytes."),
        ))
    } else {
        fields.read_body(request).await
    };
    let mut response = match read {
        Err(error) => reply::error(error, route, ip),
        Ok(()) => match route.need() {
            None => login::login(&state, route, &fields, ip).await,
            Some(need) => order_call(&state, route, &call, need, &fields, ip, slot.as_ref()).await,
        },
    };
    let info = response
        .extensions_mut()
        .get_or_insert_default::<CallInfo>();
    info.route = Some(call);
    response
}

/// An order route: the caller through the same checks as `/api/v1`, then the order service.
async fn order_call(
    state: &AppState,
    route: Route,
    call: &Arc<str>,
    need: Need,
    fields: &Fields,
    ip: IpAddr,
    slot: Option<&CallSlot>,
) -> Response {
    let credentials = fields.token().map(Presented::Token);
    let checked = admit(
        &state.auth,
        &state.metrics,
        credentials,
        ip,
        need,
        call,
        slot,
    );
    let caller = match checked.await {
        Ok(caller) => caller,
        Err(refusal) => {
            let mut response = reply::error(refusal.error, route, ip);
            response.extensions_mut().insert(refusal.info);
            return response;
        }
    };
    let answer = match route {
        Route::OrderHistory => orders::history(state, fields).await,
        _ => orders::info(state, fields, &caller).await,
    };
    let mut response = answer.unwrap_or_else(|error| reply::error(error, route, ip));
    add_rate_headers(&mut response, caller.rate);
    response.extensions_mut().insert(caller.call_info());
    response
}

/// The history's `call` for a route this entry does not serve: what was asked, cut short and
/// stripped of anything odd (and of anything that looks like a key or token).
fn unknown_call(route: &str) -> String {
    const MAX: usize = 64;
    let redacted = crate::domain::secret::redact(route);
    let kept: String = redacted
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "/_.|-…".contains(*c))
        .take(MAX)
        .collect();
    if kept.is_empty() {
        return PATH.to_owned();
    }
    let cut = if kept.chars().count() < redacted.chars().count() {
        "…"
    } else {
        ""
    };
    format!("{PATH}?route={kept}{cut}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_of_both_versions_are_told_apart() {
        assert_eq!(Route::parse("api/login"), Some(Route::Login3));
        assert_eq!(Route::parse("api/account/login"), Some(Route::Login4));
        assert_eq!(Route::parse("api/order/info"), Some(Route::OrderInfo));
        assert_eq!(Route::parse("api/order/history"), Some(Route::OrderHistory));
        assert_eq!(Route::parse("api/order/delete"), None);
        assert_eq!(Route::parse(""), None);
    }

    #[test]
    fn unknown_routes_reach_the_history_short_and_clean() {
        assert_eq!(
            unknown_call("api/order/delete"),
            "/index.php?route=api/order/delete"
        );
        assert_eq!(unknown_call(""), "/index.php");
        assert_eq!(unknown_call("<script>"), "/index.php?route=script…");
        let with_key = unknown_call("api/kw_AbCdEf0123456789");
        assert!(!with_key.contains("AbCdEf"), "{with_key}");
        assert!(unknown_call(&"a".repeat(500)).chars().count() < 100);
    }
}
