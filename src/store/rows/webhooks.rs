//! Rows of the webhook tables as both backends read them (the columns and their types are the
//! same in both), and their conversion into domain types.

use crate::domain::ids::{ApiKeyId, ApiUserId, DeliveryId, WebhookId};
use crate::domain::webhook::{
    AttemptResult, DeliveryRecord, DeliveryState, DueDelivery, EventType, EventTypes, ExpiringKey,
    PreviousSecret, Recipients, Webhook, WebhookTarget, WebhookUrl,
};
use crate::store::columns::{from_ts, from_ts_opt, parse_col};
use crate::store::{Result, StoreError};
use sqlx::FromRow;

pub(crate) const WEBHOOK_COLUMNS: &str = "w.id, w.url, w.description, w.events, w.status, \
    w.secret_hint, w.created_at, w.updated_at, \
    (SELECT p.secret_hint FROM webhook_previous_secrets p WHERE p.webhook_id = w.id) AS previous_hint, \
    (SELECT p.expires_at FROM webhook_previous_secrets p WHERE p.webhook_id = w.id) AS previous_expires_at, \
    (SELECT count(*) FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.state = 'pending') AS pending, \
    (SELECT count(*) FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.state = 'dead') AS dead";

pub(crate) const DELIVERY_COLUMNS: &str = "id, webhook_id, event_id, event_type, state, attempts, \
    created_at, next_attempt_at, last_attempt_at, last_status, last_error, delivered_at";

/// An endpoint's address and secrets, for [`TargetRow`].
pub(crate) const TARGET_COLUMNS: &str = "w.id, w.url, w.sealed_secret, \
    (SELECT p.sealed_secret FROM webhook_previous_secrets p WHERE p.webhook_id = w.id) AS previous_sealed_secret, \
    (SELECT p.expires_at FROM webhook_previous_secrets p WHERE p.webhook_id = w.id) AS previous_expires_at";

pub(crate) const DUE_COLUMNS: &str = "id, webhook_id, event_id, event_type, payload, attempts";

#[derive(FromRow)]
pub(crate) struct WebhookRow {
    id: i64,
    url: String,
    description: String,
    events: String,
    status: String,
    secret_hint: String,
    previous_hint: Option<String>,
    previous_expires_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    pending: i64,
    dead: i64,
}

impl WebhookRow {
    pub(crate) fn into_webhook(self) -> Result<Webhook> {
        Ok(Webhook {
            id: WebhookId(self.id),
            url: WebhookUrl::parse(&self.url)
                .map_err(|e| StoreError::Corrupt(format!("url: {e}")))?,
            description: self.description,
            events: events(&self.events)?,
            status: parse_col(&self.status, "status")?,
            secret_hint: self.secret_hint,
            previous_secret: self.previous_hint.zip(self.previous_expires_at).map(
                |(hint, expires_at)| PreviousSecret {
                    hint,
                    expires_at: from_ts(expires_at),
                },
            ),
            created_at: from_ts(self.created_at),
            updated_at: from_ts(self.updated_at),
            pending: self.pending,
            dead: self.dead,
        })
    }
}

/// Which candidate endpoints (id and stored event types) an event of `kind` goes to.
pub(crate) fn recipients(
    candidates: Vec<(i64, String)>,
    to: Recipients,
    kind: EventType,
) -> Result<Vec<i64>> {
    let mut recipients = Vec::new();
    for (id, subscribed) in candidates {
        if matches!(to, Recipients::One(_)) || events(&subscribed)?.contains(kind) {
            recipients.push(id);
        }
    }
    Ok(recipients)
}

/// The stored list of event types.
pub(crate) fn events(text: &str) -> Result<EventTypes> {
    EventTypes::parse(&[text]).map_err(|e| StoreError::Corrupt(format!("events: {e}")))
}

#[derive(FromRow)]
pub(crate) struct TargetRow {
    id: i64,
    url: String,
    sealed_secret: Vec<u8>,
    previous_sealed_secret: Option<Vec<u8>>,
    previous_expires_at: Option<i64>,
}

impl TargetRow {
    pub(crate) fn into_target(self) -> Result<WebhookTarget> {
        Ok(WebhookTarget {
            id: WebhookId(self.id),
            url: WebhookUrl::parse(&self.url)
                .map_err(|e| StoreError::Corrupt(format!("url: {e}")))?,
            sealed_secret: self.sealed_secret,
            previous: self
                .previous_sealed_secret
                .zip(self.previous_expires_at.map(from_ts)),
        })
    }
}

#[derive(FromRow)]
pub(crate) struct DeliveryRow {
    id: i64,
    webhook_id: i64,
    event_id: String,
    event_type: String,
    state: String,
    attempts: i64,
    created_at: i64,
    next_attempt_at: Option<i64>,
    last_attempt_at: Option<i64>,
    last_status: Option<i64>,
    last_error: Option<String>,
    delivered_at: Option<i64>,
}

impl DeliveryRow {
    pub(crate) fn into_record(self) -> Result<DeliveryRecord> {
        Ok(DeliveryRecord {
            id: DeliveryId(self.id),
            webhook_id: WebhookId(self.webhook_id),
            event_id: self.event_id,
            event_type: self.event_type,
            state: parse_col::<DeliveryState>(&self.state, "state")?,
            attempts: self.attempts,
            created_at: from_ts(self.created_at),
            next_attempt_at: from_ts_opt(self.next_attempt_at),
            last_attempt_at: from_ts_opt(self.last_attempt_at),
            last_status: self.last_status.and_then(|s| u16::try_from(s).ok()),
            last_error: self.last_error,
            delivered_at: from_ts_opt(self.delivered_at),
        })
    }
}

#[derive(FromRow)]
pub(crate) struct DueRow {
    id: i64,
    webhook_id: i64,
    event_id: String,
    event_type: String,
    payload: String,
    attempts: i64,
}

impl From<DueRow> for DueDelivery {
    fn from(row: DueRow) -> Self {
        Self {
            id: DeliveryId(row.id),
            webhook_id: WebhookId(row.webhook_id),
            event_id: row.event_id,
            event_type: row.event_type,
            payload: row.payload,
            attempts: row.attempts,
        }
    }
}

#[derive(FromRow)]
pub(crate) struct ExpiringRow {
    id: i64,
    api_user_id: i64,
    username: String,
    hint: String,
    expires_at: i64,
}

impl From<ExpiringRow> for ExpiringKey {
    fn from(row: ExpiringRow) -> Self {
        Self {
            key_id: ApiKeyId(row.id),
            api_user_id: ApiUserId(row.api_user_id),
            username: row.username,
            hint: row.hint,
            expires_at: from_ts(row.expires_at),
        }
    }
}

/// The columns an attempt sets: state, status, error, next attempt, delivered at.
pub(crate) struct AttemptColumns<'a> {
    pub state: &'static str,
    pub status: Option<i64>,
    pub error: Option<&'a str>,
    pub next_at: Option<i64>,
    pub delivered_at: Option<i64>,
}

impl<'a> AttemptColumns<'a> {
    pub(crate) fn of(result: &'a AttemptResult, at: i64) -> Self {
        match result {
            AttemptResult::Delivered { status } => Self {
                state: DeliveryState::Delivered.as_str(),
                status: Some(i64::from(*status)),
                error: None,
                next_at: None,
                delivered_at: Some(at),
            },
            AttemptResult::Retry {
                status,
                error,
                next_at,
            } => Self {
                state: DeliveryState::Pending.as_str(),
                status: status.map(i64::from),
                error: Some(error),
                next_at: Some(crate::store::columns::ts(*next_at)),
                delivered_at: None,
            },
            AttemptResult::Dead { status, error } => Self {
                state: DeliveryState::Dead.as_str(),
                status: status.map(i64::from),
                error: Some(error),
                next_at: None,
                delivered_at: None,
            },
        }
    }
}

/// The SQL of the key.expiring scan: the newest live key of each enabled user (an older key
/// in a roll's grace period is meant to stop), expiring in the window, with the backend's
/// placeholders for `now` and `until`.
pub(crate) fn expiring_keys_sql(now: &str, until: &str) -> String {
    format!(
        "SELECT k.id, k.api_user_id, u.username, k.hint, k.expires_at \
         FROM api_keys k JOIN api_users u ON u.id = k.api_user_id \
         WHERE k.revoked_at IS NULL AND k.expires_at > {now} AND k.expires_at <= {until} \
         AND u.status = 'enabled' \
         AND NOT EXISTS (SELECT 1 FROM api_keys n WHERE n.api_user_id = k.api_user_id \
             AND n.id > k.id AND n.revoked_at IS NULL AND (n.expires_at IS NULL OR n.expires_at > {now})) \
         ORDER BY k.expires_at"
    )
}

/// A duration in microseconds, as times are compared in SQL.
pub(crate) fn micros(duration: time::Duration) -> i64 {
    i64::try_from(duration.whole_microseconds()).unwrap_or(i64::MAX)
}
