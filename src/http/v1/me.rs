use crate::auth::{Caller, RateState};
use crate::domain::ids::ApiUserId;
use crate::domain::ip_rule::IpRule;
use crate::domain::scope::Scopes;
use crate::http::error::ErrorBody;
use axum::Json;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::net::IpAddr;
use time::OffsetDateTime;
use utoipa::ToSchema;

// Serialized straight from the caller: no field is copied into a `String` of its own.
#[derive(Serialize, ToSchema)]
pub struct Me<'a> {
    pub api_user: MeUser<'a>,
    /// The scopes this caller holds.
    #[schema(value_type = Vec<String>)]
    pub scopes: Scopes,
    /// The client address as Keyward sees it (after trusted proxies).
    #[schema(value_type = String)]
    pub ip: IpAddr,
    pub key_hint: &'a str,
    #[serde(with = "time::serde::rfc3339::option")]
    pub key_expires_at: Option<OffsetDateTime>,
    /// Present when the call used a session token.
    pub session: Option<MeSession>,
    #[schema(value_type = MeRateLimit)]
    pub rate_limit: RateState,
}

#[derive(Serialize, ToSchema)]
pub struct MeUser<'a> {
    pub id: ApiUserId,
    pub username: &'a str,
    #[schema(value_type = Vec<String>)]
    pub ips: &'a [IpRule],
}

#[derive(Serialize, ToSchema)]
pub struct MeSession {
    #[schema(value_type = i64)]
    pub id: crate::domain::ids::SessionId,
    /// The absolute end of the session.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// When the session ends if it stays idle from now.
    #[serde(with = "time::serde::rfc3339")]
    pub idle_expires_at: OffsetDateTime,
    pub idle_timeout_s: i64,
}

/// Where the caller stands against its rate limit.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MeRateLimit {
    pub limit_per_minute: u32,
    pub remaining: u32,
    pub reset_seconds: u64,
}

/// Who is calling: the API user, its scopes, the address seen, session and rate-limit state.
#[utoipa::path(
    get,
    path = "/me",
    tag = "auth",
    security(("api_key" = [])),
    responses(
        (status = 200, body = Me),
        (status = 401, description = "Missing or invalid credentials", body = ErrorBody),
        (status = 403, description = "Address not on the IP list", body = ErrorBody),
        (status = 429, description = "Over the rate limit", body = ErrorBody),
    )
)]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn me(caller: Caller) -> Response {
    let user = &caller.user;
    Json(Me {
        api_user: MeUser {
            id: user.id,
            username: &user.username,
            ips: &user.ips,
        },
        scopes: user.scopes,
        ip: caller.ip,
        key_hint: &caller.key_hint,
        key_expires_at: caller.key_expires_at,
        session: caller.session.map(|s| MeSession {
            id: s.id,
            expires_at: s.expires_at,
            idle_expires_at: s.idle_expires_at,
            idle_timeout_s: s.idle_timeout_s,
        }),
        rate_limit: caller.rate,
    })
    .into_response()
}
