//! `api/login` (3.x) and `api/account/login` (4.0): a Keyward session, made by the same
//! `Authenticator::login` as `POST /api/v1/login` (same lifetimes, same throttle of failed
//! logins per address and per username, same history).

use super::Route;
use super::fields::Fields;
use super::reply::{self, TEXT_LOGIN};
use crate::domain::history::Outcome;
use crate::domain::secret::Secret;
use crate::http::AppState;
use crate::http::error::ApiError;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde_json::json;
use std::net::IpAddr;

/// OpenCart 3.x logs a bare `key` in as the API user it creates on install, `Default`.
const OPENCART_3_DEFAULT_USER: &str = "Default";

pub async fn login(state: &AppState, route: Route, fields: &Fields, ip: IpAddr) -> Response {
    // OpenCart reads the key from the POST body only; one in the URL has leaked into logs.
    if fields.get("key").is_some() {
        return reply::error(ApiError::secret_in_query(), route, ip);
    }
    let username = match fields.post("username").filter(|u| !u.is_empty()) {
        Some(username) => username,
        None if route == Route::Login3 => OPENCART_3_DEFAULT_USER,
        None => return missing(route, ip),
    };
    let Some(key) = fields.post("key").filter(|k| !k.is_empty()) else {
        return missing(route, ip);
    };
    match state
        .auth
        .login(username, Secret::new(key.to_owned()), ip)
        .await
    {
        Ok(login) => {
            let mut response = reply::success(json!({
                "success": TEXT_LOGIN,
                "api_token": login.token.expose(),
            }));
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response.extensions_mut().insert(login.caller.call_info());
            response.extensions_mut().insert(login.session);
            response
        }
        Err(refusal) => {
            let mut response = reply::error(refusal.error, route, ip);
            response.extensions_mut().insert(refusal.info);
            response
        }
    }
}

fn missing(route: Route, ip: IpAddr) -> Response {
    reply::error(
        ApiError::unauthorized(Outcome::MissingCredentials),
        route,
        ip,
    )
}
