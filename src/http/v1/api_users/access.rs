//! An API user's IP list and sessions.

use super::actor;
use super::views::{IpList, IpListBody, IpRuleBody, Revoked, SessionList, SessionView, rules};
use crate::auth::Caller;
use crate::credentials::UpdateApiUser;
use crate::domain::api_user::{ApiUser, ip_warnings};
use crate::domain::ids::SessionId;
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{Json, Path, Query};
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

fn ip_list(user: &ApiUser, changed: bool) -> axum::Json<IpList> {
    axum::Json(IpList {
        ips: rules(&user.ips),
        changed,
        warnings: ip_warnings(&user.ips),
    })
}

/// The API user's IP list.
#[utoipa::path(
    get,
    path = "/api-users/{username}/ips",
    operation_id = "list_api_user_ips",
    tag = "api_users",
    params(("username" = String, Path, description = "The API user's username")),
    security(("api_key" = ["api_users:read"])),
    responses((status = 200, body = IpList), (status = 404, body = ErrorBody))
)]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn ips(
    State(state): State<AppState>,
    _caller: Caller,
    Path(username): Path<String>,
) -> Result<axum::Json<IpList>, ApiError> {
    let user = state.credentials.get(&username).await?;
    Ok(ip_list(&user, false))
}

/// Allows one more address, CIDR block, wildcard or `*`; from the next request on.
#[utoipa::path(
    post,
    path = "/api-users/{username}/ips",
    operation_id = "add_api_user_ip",
    tag = "api_users",
    params(
        ("username" = String, Path, description = "The API user's username"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe"),
    ),
    request_body = IpRuleBody,
    security(("api_key" = ["api_users:write"])),
    responses((status = 200, body = IpList), (status = 404, body = ErrorBody))
)]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn add_ip(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
    Json(body): Json<IpRuleBody>,
) -> Result<axum::Json<IpList>, ApiError> {
    let (user, added) = state
        .credentials
        .add_ip(&actor(&caller, None), &username, &body.rule)
        .await?;
    Ok(ip_list(&user, added))
}

/// Replaces the whole IP list; an empty list allows no address.
#[utoipa::path(
    put,
    path = "/api-users/{username}/ips",
    operation_id = "replace_api_user_ips",
    tag = "api_users",
    params(("username" = String, Path, description = "The API user's username")),
    request_body = IpListBody,
    security(("api_key" = ["api_users:write"])),
    responses((status = 200, body = IpList), (status = 404, body = ErrorBody))
)]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn replace_ips(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
    Json(body): Json<IpListBody>,
) -> Result<axum::Json<IpList>, ApiError> {
    let before = state.credentials.get(&username).await?;
    let update = UpdateApiUser {
        ips: Some(body.ips),
        ..UpdateApiUser::default()
    };
    let user = state
        .credentials
        .update(&actor(&caller, None), &username, update)
        .await?;
    let changed = user.ips != before.ips;
    Ok(ip_list(&user, changed))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RuleQuery {
    /// The rule to remove, as listed (`198.51.100.0/24`, `203.0.113.*`, `*`).
    rule: String,
}

/// Removes one rule; the address is refused from the next request on.
#[utoipa::path(
    delete,
    path = "/api-users/{username}/ips",
    operation_id = "remove_api_user_ip",
    tag = "api_users",
    params(("username" = String, Path, description = "The API user's username"), RuleQuery),
    security(("api_key" = ["api_users:write"])),
    responses((status = 200, body = IpList), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody))
)]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn remove_ip(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
    Query(query): Query<RuleQuery>,
) -> Result<axum::Json<IpList>, ApiError> {
    let (user, removed) = state
        .credentials
        .remove_ip(&actor(&caller, None), &username, &query.rule)
        .await?;
    if !removed {
        return Err(ApiError::not_found("rule on this API user's IP list"));
    }
    Ok(ip_list(&user, true))
}

/// The API user's open sessions (never their tokens).
#[utoipa::path(
    get,
    path = "/api-users/{username}/sessions",
    operation_id = "list_api_user_sessions",
    tag = "api_users",
    params(("username" = String, Path, description = "The API user's username")),
    security(("api_key" = ["api_users:read"])),
    responses((status = 200, body = SessionList), (status = 404, body = ErrorBody))
)]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn sessions(
    State(state): State<AppState>,
    _caller: Caller,
    Path(username): Path<String>,
) -> Result<axum::Json<SessionList>, ApiError> {
    let user = state.credentials.get(&username).await?;
    let open = state.credentials.sessions(&username, true).await?;
    let data = open
        .iter()
        .map(|s| SessionView::new(s, &user, state.auth.usage()))
        .collect();
    Ok(axum::Json(SessionList { data }))
}

/// Ends every open session of the API user at once.
#[utoipa::path(
    delete,
    path = "/api-users/{username}/sessions",
    operation_id = "revoke_api_user_sessions",
    tag = "api_users",
    params(("username" = String, Path, description = "The API user's username")),
    security(("api_key" = ["api_users:write"])),
    responses((status = 200, body = Revoked), (status = 404, body = ErrorBody))
)]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn revoke_sessions(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
) -> Result<axum::Json<Revoked>, ApiError> {
    let revoked = state
        .credentials
        .revoke_sessions(&actor(&caller, None), &username, None)
        .await?;
    Ok(axum::Json(Revoked { revoked }))
}

/// Ends one open session.
#[utoipa::path(
    delete,
    path = "/api-users/{username}/sessions/{id}",
    operation_id = "revoke_api_user_session",
    tag = "api_users",
    params(
        ("username" = String, Path, description = "The API user's username"),
        ("id" = i64, Path, description = "Session id"),
    ),
    security(("api_key" = ["api_users:write"])),
    responses((status = 200, body = Revoked), (status = 404, body = ErrorBody))
)]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn revoke_session(
    State(state): State<AppState>,
    caller: Caller,
    Path((username, id)): Path<(String, i64)>,
) -> Result<axum::Json<Revoked>, ApiError> {
    let revoked = state
        .credentials
        .revoke_sessions(&actor(&caller, None), &username, Some(SessionId(id)))
        .await?;
    Ok(axum::Json(Revoked { revoked }))
}
