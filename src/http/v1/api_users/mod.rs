//! The Management API, `/api/v1/api-users`: what the console and the CLI do to API users, as
//! JSON, for automation. Every handler translates to one call of the credentials service,
//! which validates, applies the escalation rules (`credentials::authority`) and audits with
//! the calling key as the actor (`api:USERNAME`).

mod access;
mod history;
pub mod views;

pub use access::*;
pub use history::*;

use crate::auth::Caller;
use crate::credentials::{CreateApiUser, KeySource, NewExpiry, UpdateApiUser, grace_choice};
use crate::domain::admin::Actor;
use crate::domain::api_key::DEFAULT_KEY_LEN;
use crate::domain::api_user::{Environment, Status};
use crate::domain::catalog::Page;
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{
    Body, Json, Path, Query, parse_json, read_body, unsupported, without_bom,
};
use crate::http::idempotency::OneTimeSecret;
use crate::http::pagination::{page, page_request};
use axum::extract::Request;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use views::{
    ApiUserListItem, ApiUserPatch, ApiUserView, IssuedKeyView, NewApiUserBody, RotateBody,
};

/// The calling management key as the service's actor.
fn actor(caller: &Caller, confirm: Option<&str>) -> Actor {
    Actor::api_key(
        &caller.user.username,
        caller.user.id,
        (caller.key_id, &caller.key_hint),
        caller.user.scopes,
        caller.ip.to_string(),
        confirm == Some(&*caller.user.username),
        caller.key_expires_at,
    )
}

/// A key's `expires_in`: a duration or `never`; refused here under its own name.
fn expiry(text: Option<&str>) -> Result<NewExpiry, ApiError> {
    NewExpiry::from_field(text).map_err(|e| ApiError::invalid_field("expires_in", e))
}

/// An answer that carries a new key: never cached, and never kept by the idempotency layer.
fn with_key(status: StatusCode, view: IssuedKeyView, location: Option<String>) -> Response {
    let mut response = (status, axum::Json(view)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(location) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(header::LOCATION, location);
    }
    response.extensions_mut().insert(OneTimeSecret);
    response
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only users whose username or description contains this text (any case).
    search: Option<String>,
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// The `next` cursor of the previous page.
    after: Option<String>,
}

/// Lists API users, oldest first, a page at a time.
#[utoipa::path(
    get,
    path = "/api-users",
    operation_id = "list_api_users",
    tag = "api_users",
    params(ListQuery),
    security(("api_key" = ["api_users:read"])),
    responses((status = 200, body = Page<ApiUserListItem>))
)]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<axum::Json<Page<ApiUserListItem>>, ApiError> {
    let request = page_request(query.limit, query.after.as_deref())?;
    let users = state
        .credentials
        .list_page(query.search.as_deref(), request)
        .await?;
    let now = state.clock.now();
    let items = users
        .iter()
        .map(|u| ApiUserListItem::new(u, state.auth.usage(), now))
        .collect();
    Ok(axum::Json(page(items, request, |u: &ApiUserListItem| u.id)))
}

/// Creates an API user and answers its key, this once. A management key grants only scopes
/// it holds itself, and never makes another management key.
#[utoipa::path(
    post,
    path = "/api-users",
    operation_id = "create_api_user",
    tag = "api_users",
    request_body = NewApiUserBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe; the retry of a request that ran answers 409, as the key is never kept")),
    security(("api_key" = ["api_users:write"])),
    responses((status = 201, body = IssuedKeyView, headers(("Location" = String))))
)]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewApiUserBody>,
) -> Result<Response, ApiError> {
    let request = CreateApiUser {
        username: body.username,
        description: body.description,
        environment: body.environment.unwrap_or(Environment::Production),
        status: body.status.unwrap_or(Status::Enabled),
        scopes: body.scopes,
        ips: body.ips,
        rate_limit_per_minute: body.rate_limit_per_minute,
        management: body.management,
        key: KeySource::Generate {
            length: body.key_length.unwrap_or(DEFAULT_KEY_LEN),
        },
        expires_in: expiry(body.expires_in.as_deref())?,
    };
    let issued = state
        .credentials
        .create(&actor(&caller, None), request)
        .await?;
    let location = format!("/api/v1/api-users/{}", issued.user.username);
    let view = IssuedKeyView::new(&issued, state.auth.usage(), state.clock.now());
    Ok(with_key(StatusCode::CREATED, view, Some(location)))
}

/// One API user.
#[utoipa::path(
    get,
    path = "/api-users/{username}",
    operation_id = "show_api_user",
    tag = "api_users",
    params(("username" = String, Path, description = "The API user's username")),
    security(("api_key" = ["api_users:read"])),
    responses((status = 200, body = ApiUserView), (status = 404, body = ErrorBody))
)]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn show(
    State(state): State<AppState>,
    _caller: Caller,
    Path(username): Path<String>,
) -> Result<axum::Json<ApiUserView>, ApiError> {
    let user = state.credentials.get(&username).await?;
    Ok(axum::Json(ApiUserView::new(
        &user,
        state.auth.usage(),
        state.clock.now(),
    )))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConfirmQuery {
    /// The caller's own username, to confirm that a management key disables or deletes
    /// itself.
    confirm: Option<String>,
}

/// Changes the fields given; the others stay as they are. The change holds from the next
/// request on.
#[utoipa::path(
    patch,
    path = "/api-users/{username}",
    operation_id = "update_api_user",
    tag = "api_users",
    params(("username" = String, Path, description = "The API user's username"), ConfirmQuery),
    request_body = ApiUserPatch,
    security(("api_key" = ["api_users:write"])),
    responses((status = 200, body = ApiUserView), (status = 404, body = ErrorBody))
)]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
    Query(query): Query<ConfirmQuery>,
    Json(patch): Json<ApiUserPatch>,
) -> Result<axum::Json<ApiUserView>, ApiError> {
    let update = UpdateApiUser {
        description: patch.description,
        environment: patch.environment,
        status: patch.status,
        scopes: patch.scopes,
        ips: patch.ips,
        rate_limit_per_minute: patch.rate_limit_per_minute,
        management: patch.management,
    };
    let user = state
        .credentials
        .update(&actor(&caller, query.confirm.as_deref()), &username, update)
        .await?;
    Ok(axum::Json(ApiUserView::new(
        &user,
        state.auth.usage(),
        state.clock.now(),
    )))
}

/// Deletes the API user, its keys and sessions; its history stays.
#[utoipa::path(
    delete,
    path = "/api-users/{username}",
    operation_id = "delete_api_user",
    tag = "api_users",
    params(("username" = String, Path, description = "The API user's username"), ConfirmQuery),
    security(("api_key" = ["api_users:write"])),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody))
)]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
    Query(query): Query<ConfirmQuery>,
) -> Result<StatusCode, ApiError> {
    state
        .credentials
        .delete(&actor(&caller, query.confirm.as_deref()), &username)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Issues a new key and answers it, this once. With a grace period the old key keeps
/// working that long (never past its own expiry); without one it stops at once.
#[utoipa::path(
    post,
    path = "/api-users/{username}/rotate",
    operation_id = "rotate_api_user_key",
    tag = "api_users",
    params(
        ("username" = String, Path, description = "The API user's username"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe; the retry of a request that ran answers 409, as the key is never kept"),
    ),
    request_body = RotateBody,
    security(("api_key" = ["api_users:write"])),
    responses((status = 200, body = IssuedKeyView), (status = 404, body = ErrorBody))
)]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    // `curl -X POST …/rotate` with no body rolls with the defaults; a body is JSON, as on
    // every other call (415 otherwise).
    let (kind, body) = read_body(request, &()).await?;
    let body: RotateBody = if without_bom(&body).iter().all(u8::is_ascii_whitespace) {
        RotateBody::default()
    } else if kind == Body::Json {
        parse_json(&body)?
    } else {
        return Err(unsupported());
    };
    let grace = grace_choice(body.grace.as_deref().unwrap_or("none"))?;
    let key = KeySource::Generate {
        length: body.key_length.unwrap_or(DEFAULT_KEY_LEN),
    };
    let issued = state
        .credentials
        .rotate(
            &actor(&caller, None),
            &username,
            grace,
            key,
            expiry(body.expires_in.as_deref())?,
        )
        .await?;
    let view = IssuedKeyView::new(&issued, state.auth.usage(), state.clock.now());
    Ok(with_key(StatusCode::OK, view, None))
}
