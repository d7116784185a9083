//! Login and logout: the session form of authentication.

use crate::auth::{Caller, ClientIp};
use crate::domain::secret::Secret;
use crate::history::{CallInfo, CallSlot};
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{Body, FormKind, form_data, form_kind, parse_json, read_body};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// Credentials for a session, as JSON or as form fields.
#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    pub username: String,
    /// The API key. It travels in the body of a POST, never in a URL.
    pub key: String,
}

#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    /// Send it as `Authorization: Bearer <api_token>` or `X-Api-Token: <api_token>`.
    pub api_token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub idle_timeout_s: i64,
}

/// Reads `username` and `key` from a JSON or form body, the form URL-encoded or multipart
/// (`curl -F`).
pub async fn login_credentials(request: Request) -> Result<LoginRequest, ApiError> {
    if form_kind(request.headers()) == Some(FormKind::Multipart) {
        let fields = form_data(request, 100).await?;
        let field = |name: &str| fields.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v);
        return match (field("username"), field("key")) {
            (Some(username), Some(key)) => Ok(LoginRequest {
                username: username.clone(),
                key: key.clone(),
            }),
            _ => Err(ApiError::invalid_field(
                "body",
                "needs the form fields username and key",
            )),
        };
    }
    match read_body(request, &()).await? {
        (Body::Form, bytes) => serde_urlencoded::from_bytes(&bytes).map_err(|e| {
            ApiError::invalid_field(
                "body",
                format!("needs the form fields username and key ({e})"),
            )
        }),
        (Body::Json, bytes) => parse_json(&bytes),
    }
}

/// Starts a session: the key is checked like on any call (status, expiry, IP, rate limit),
/// and failed attempts are throttled per address and per username.
#[utoipa::path(
    post,
    path = "/login",
    tag = "auth",
    security(()),
    request_body(content(
        (LoginRequest = "application/json"),
        (LoginRequest = "application/x-www-form-urlencoded"),
        (LoginRequest = "multipart/form-data"),
    )),
    responses(
        (status = 200, body = LoginResponse),
        (status = 401, description = "Wrong username or key, disabled user or expired key", body = ErrorBody),
        (status = 403, description = "Address not on the IP list", body = ErrorBody),
        (status = 422, description = "username or key missing", body = ErrorBody),
        (status = 429, description = "Too many failed logins", body = ErrorBody),
    )
)]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    request: Request,
) -> Response {
    let slot = request.extensions().get::<CallSlot>().cloned();
    let credentials = match login_credentials(request).await {
        Ok(credentials) => credentials,
        Err(error) => return error.into_response(),
    };
    if let Some(slot) = slot {
        // A login cut short before its answer (its client hung up) still names whom it was for.
        slot.fill(&CallInfo {
            username: Some(crate::auth::clip(&credentials.username)),
            ..CallInfo::default()
        });
    }
    match state
        .auth
        .login(&credentials.username, Secret::new(credentials.key), ip)
        .await
    {
        Ok(login) => {
            let body = LoginResponse {
                api_token: login.token.expose().to_owned(),
                expires_at: login.expires_at,
                idle_timeout_s: login.idle_timeout_s,
            };
            let mut response = (
                StatusCode::OK,
                [(header::CACHE_CONTROL, "no-store")],
                Json(body),
            )
                .into_response();
            response.extensions_mut().insert(login.caller.call_info());
            response.extensions_mut().insert(login.session);
            response
        }
        Err(refusal) => {
            let mut response = refusal.error.into_response();
            response.extensions_mut().insert(refusal.info);
            response
        }
    }
}

/// Ends the session whose token authenticates this call.
#[utoipa::path(
    post,
    path = "/logout",
    tag = "auth",
    security(("api_key" = [])),
    responses(
        (status = 204, description = "The session is over"),
        (status = 400, description = "The call used a key, not a session token", body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn logout(State(state): State<AppState>, caller: Caller) -> Result<StatusCode, ApiError> {
    state.auth.logout(&caller).await?;
    Ok(StatusCode::NO_CONTENT)
}
