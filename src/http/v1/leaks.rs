//! `POST /api/v1/leaks`: where secret scanners report keys they found in public. Every real,
//! live key among them is revoked before the answer leaves, and its owners are alerted.
//!
//! The answer is no oracle: it counts the strings received and those shaped like Keyward keys
//! (prefix and checksum, checked offline), never which keys were real, and it takes the same
//! time either way (a fixed floor well above the work a real key adds).

use crate::auth::ClientIp;
use crate::domain::api_key::{self, KeyShape};
use crate::domain::secret::SecretHash;
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::Json;
use axum::extract::{FromRequest, Request, State};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;

/// Keys per report; a scanner with more sends several reports.
pub const MAX_KEYS: usize = 100;
/// The largest report body: 100 keys of 256 characters fit with room to spare.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Every answer takes at least this long, so a real key's revocation does not show in the
/// time taken.
pub const ANSWER_FLOOR: Duration = Duration::from_millis(200);

/// Strings a secret scanner found.
#[derive(Deserialize, ToSchema)]
pub struct LeakReport {
    /// The leaked strings, such as `kw_…` keys; at most 100. Strings that are not Keyward keys
    /// are ignored.
    #[schema(max_items = 100)]
    pub keys: Vec<String>,
}

/// What was received. It never says which keys were real.
#[derive(Serialize, ToSchema)]
pub struct LeakReceipt {
    /// Strings in the report.
    pub received: usize,
    /// Strings shaped like Keyward keys (prefix and checksum), real or not.
    pub recognised: usize,
}

/// Reports leaked keys. Public: no credentials, limited per client address. Every live key
/// among them is revoked at once (its sessions end with it), the change is in the admin audit
/// log, and `key.exposed` webhooks are sent.
#[utoipa::path(
    post,
    operation_id = "report_leaked_keys",
    path = "/leaks",
    tag = "leaks",
    security(()),
    request_body = LeakReport,
    responses(
        (status = 200, description = "Received; every live key among them is revoked", body = LeakReceipt),
        (status = 413, description = "The report is over 64 KiB", body = ErrorBody),
        (status = 422, description = "No keys, or more than 100", body = ErrorBody),
        (status = 429, description = "Too many reports from this address", body = ErrorBody),
    )
)]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn report(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    request: Request,
) -> Result<axum::Json<LeakReceipt>, ApiError> {
    let started = tokio::time::Instant::now();
    state
        .leak_limit
        .check(ip)
        .map_err(|retry| ApiError::rate_limited(state.leak_limit.per_minute(), retry.0))?;
    let request = request
        .map(|body| axum::body::Body::new(http_body_util::Limited::new(body, MAX_BODY_BYTES)));
    let Json(report) = Json::<LeakReport>::from_request(request, &()).await?;
    if report.keys.is_empty() {
        return Err(ApiError::invalid_field(
            "keys",
            "must list at least one key",
        ));
    }
    if report.keys.len() > MAX_KEYS {
        return Err(ApiError::invalid_field(
            "keys",
            format!("at most {MAX_KEYS} keys per report; send the rest in another"),
        ));
    }
    let mut recognised = 0;
    let mut hashes: Vec<SecretHash> = Vec::new();
    for key in &report.keys {
        // Anything else is not looked up at all.
        if api_key::inspect(key.trim()) == Ok(KeyShape::Generated) {
            recognised += 1;
            let hash = SecretHash::of(key.trim());
            if !hashes.contains(&hash) {
                hashes.push(hash);
            }
        }
    }
    let exposed = state
        .credentials
        .revoke_exposed(ip, &hashes)
        .await
        .map_err(|error| match error {
            crate::credentials::ServiceError::Store(store) => ApiError::from(store),
            other => {
                tracing::error!(error = %other, "revoking reported keys failed");
                ApiError::internal()
            }
        })?;
    for key in &exposed {
        if let Err(error) = state.alerts.key_exposed(key, ip).await {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "the key.exposed alert could not be stored"
            );
        }
    }
    tokio::time::sleep_until(started + ANSWER_FLOOR).await;
    Ok(axum::Json(LeakReceipt {
        received: report.keys.len(),
        recognised,
    }))
}
