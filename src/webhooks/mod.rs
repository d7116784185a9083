//! Alerts and webhooks: endpoints an administrator registers (the service below, shared by the
//! CLI and the console), the events raised for them (`alerts`, fed by `detect` and the hourly
//! scan), and their delivery (`deliver`), signed (`signature`) with secrets sealed at rest
//! (`seal`).

pub mod alerts;
pub mod deliver;
pub mod detect;
pub mod events;
pub mod seal;
pub mod signature;

pub use alerts::Alerts;
pub use deliver::Deliverer;
pub use detect::{BurstSettings, Detector};
pub use seal::SealingKey;

use crate::clock::SharedClock;
use crate::domain::admin::Actor;
use crate::domain::api_user::Status;
use crate::domain::ids::{DeliveryId, WebhookId};
use crate::domain::validation::{Errors, FieldError};
use crate::domain::webhook::{
    DeliveryQuery, DeliveryRecord, EventType, EventTypes, NewWebhook, Recipients, SecretRoll,
    Webhook, WebhookSecret, WebhookUrl,
};
use crate::store::{Db, StoreError};
use serde_json::json;
use std::sync::Arc;
use tokio::sync::Notify;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("no webhook has the id {0}")]
    NoSuchWebhook(WebhookId),
    #[error("no delivery has the id {0}")]
    NoSuchDelivery(DeliveryId),
    #[error("webhook {0} is disabled: enable it to send it a test event")]
    Disabled(WebhookId),
    #[error("{}", crate::domain::validation::describe(.0))]
    Invalid(Vec<FieldError>),
    /// No webhook key could be had (its message says what to set).
    #[error("{0}")]
    NoKey(String),
    #[error(transparent)]
    Key(#[from] seal::KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type Result<T, E = WebhookError> = std::result::Result<T, E>;

/// A request to add an endpoint, as the CLI or the console received it.
#[derive(Debug, Clone, Default)]
pub struct AddWebhook {
    pub url: String,
    pub description: String,
    /// Event type names; none means every type.
    pub events: Vec<String>,
}

/// The longest a rolled secret may keep signing beside its successor.
pub const MAX_ROLL_GRACE: time::Duration = time::Duration::days(7);

/// An endpoint with its new signing secret (added, or its secret rolled), shown once.
#[derive(Debug)]
pub struct CreatedWebhook {
    pub webhook: Webhook,
    pub secret: WebhookSecret,
}

/// Endpoints and their deliveries, for the CLI and the console: each change validated here and
/// audited with it.
#[derive(Clone)]
pub struct Webhooks {
    db: Db,
    clock: SharedClock,
    /// `Err` keeps why there is no key, for the one command that needs it.
    key: Arc<Result<SealingKey, seal::KeyError>>,
    /// Wakes this process's deliverer when a delivery is due now (a test, a retry).
    wake: Arc<Notify>,
}

impl Webhooks {
    pub fn new(
        db: Db,
        clock: SharedClock,
        key: Arc<Result<SealingKey, seal::KeyError>>,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            db,
            clock,
            key,
            wake,
        }
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn add(&self, actor: &Actor, request: AddWebhook) -> Result<CreatedWebhook> {
        let mut errors = Errors::new();
        let url = errors.check("url", WebhookUrl::parse(&request.url));
        let description = errors
            .check(
                "description",
                crate::domain::validation::text(&request.description, 0, 255),
            )
            .unwrap_or_default();
        let events = errors.check("events", EventTypes::parse(&request.events));
        errors.finish().map_err(WebhookError::Invalid)?;
        let (Some(url), Some(events)) = (url, events) else {
            return Err(WebhookError::Invalid(vec![FieldError {
                field: "url".into(),
                message: "is required".into(),
            }]));
        };
        let key = match self.key.as_ref() {
            Ok(key) => key,
            Err(error) => return Err(WebhookError::NoKey(error.to_string())),
        };
        let now = self.clock.now();
        let secret = WebhookSecret::generate();
        let new = NewWebhook {
            sealed_secret: key.seal(secret.expose())?,
            secret_hint: secret.hint(),
            url,
            description,
            events,
        };
        // The id is known only after the insert: the audit names the endpoint by its URL.
        let audit = actor.audit(
            now,
            "webhook.create",
            new.url.as_str(),
            json!({ "events": new.events, "description": new.description, "secret_hint": new.secret_hint }),
        );
        let id = self.db.create_webhook(&new, now, &audit).await?;
        Ok(CreatedWebhook {
            webhook: self.get(id).await?,
            secret,
        })
    }

    pub async fn list(&self) -> Result<Vec<Webhook>> {
        let now = self.clock.now();
        let webhooks = self.db.webhooks().await?;
        Ok(webhooks.into_iter().map(|w| current(w, now)).collect())
    }

    pub async fn get(&self, id: WebhookId) -> Result<Webhook> {
        let webhook = self
            .db
            .webhook(id)
            .await?
            .ok_or(WebhookError::NoSuchWebhook(id))?;
        Ok(current(webhook, self.clock.now()))
    }

    /// Those of `webhooks` whose signing secret does not open with the webhook key in effect
    /// (the key was changed): their deliveries fail until their secret is rolled.
    pub async fn sealed_under_another_key(&self, webhooks: &[Webhook]) -> Result<Vec<WebhookId>> {
        let Ok(key) = self.key.as_ref() else {
            return Ok(Vec::new());
        };
        let mut ids = Vec::new();
        for webhook in webhooks {
            if let Some(target) = self.db.webhook_target(webhook.id).await?
                && key.open(&target.sealed_secret).is_err()
            {
                ids.push(webhook.id);
            }
        }
        Ok(ids)
    }

    /// Gives the endpoint a new signing secret, shown once. The one it replaces keeps signing
    /// deliveries beside it for `grace` (at most [`MAX_ROLL_GRACE`]), so the receiver can take
    /// the new one without refusing a delivery meanwhile; with no grace it stops at once, and
    /// so does a secret still kept from an earlier roll. With `replacing` (the hint of the
    /// secret a page showed), only while that secret is still the current one.
    #[tracing::instrument(level = "debug", skip_all, fields(%id))]
    pub async fn roll_secret(
        &self,
        actor: &Actor,
        id: WebhookId,
        grace: time::Duration,
        replacing: Option<String>,
    ) -> Result<CreatedWebhook> {
        let webhook = self.get(id).await?;
        let invalid_grace = |message: String| {
            WebhookError::Invalid(vec![FieldError {
                field: "grace".into(),
                message,
            }])
        };
        if grace.is_negative() || grace > MAX_ROLL_GRACE {
            return Err(invalid_grace(format!(
                "must be between 0 and {} days",
                MAX_ROLL_GRACE.whole_days()
            )));
        }
        let key = match self.key.as_ref() {
            Ok(key) => key,
            Err(error) => return Err(WebhookError::NoKey(error.to_string())),
        };
        if grace > time::Duration::ZERO {
            // Sealed under another webhook key, the current secret could not sign beside the
            // new one: a grace would promise deliveries the receiver's secret still checks.
            let sealed = self
                .db
                .webhook_target(id)
                .await?
                .ok_or(WebhookError::NoSuchWebhook(id))?
                .sealed_secret;
            if key.open(&sealed).is_err() {
                return Err(invalid_grace(
                    "cannot be given: the current secret does not open with the webhook key in \
                     effect (was webhook_key changed?), so it cannot sign any more; roll without \
                     a grace"
                        .to_owned(),
                ));
            }
        }
        let now = self.clock.now();
        let secret = WebhookSecret::generate();
        let roll = SecretRoll {
            sealed_secret: key.seal(secret.expose())?,
            secret_hint: secret.hint(),
            previous_until: (grace > time::Duration::ZERO).then(|| now + grace),
            replacing,
        };
        let audit = actor.audit(
            now,
            "webhook.roll_secret",
            webhook.url.as_str(),
            json!({
                "webhook_id": id,
                "secret_hint": { "from": webhook.secret_hint, "to": roll.secret_hint },
                "previous_signs_until": roll.previous_until.map(crate::clock::rfc3339),
            }),
        );
        self.db
            .roll_webhook_secret(id, &roll, now, &audit)
            .await
            .map_err(|e| not_found(e, id))?;
        Ok(CreatedWebhook {
            webhook: self.get(id).await?,
            secret,
        })
    }

    #[tracing::instrument(level = "debug", skip_all, fields(%id))]
    pub async fn set_status(
        &self,
        actor: &Actor,
        id: WebhookId,
        status: Status,
    ) -> Result<Webhook> {
        let webhook = self.get(id).await?;
        let audit = actor.audit(
            self.clock.now(),
            "webhook.update",
            webhook.url.as_str(),
            json!({ "webhook_id": id, "status": { "from": webhook.status, "to": status } }),
        );
        self.db
            .set_webhook_status(id, status, self.clock.now(), &audit)
            .await
            .map_err(|e| not_found(e, id))?;
        if status == Status::Enabled {
            // Deliveries that waited while it was disabled may be due.
            self.wake.notify_one();
        }
        self.get(id).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(%id))]
    pub async fn remove(&self, actor: &Actor, id: WebhookId) -> Result<Webhook> {
        let webhook = self.get(id).await?;
        let audit = actor.audit(
            self.clock.now(),
            "webhook.delete",
            webhook.url.as_str(),
            json!({ "webhook_id": id, "pending": webhook.pending, "dead": webhook.dead }),
        );
        self.db
            .delete_webhook(id, &audit)
            .await
            .map_err(|e| not_found(e, id))?;
        Ok(webhook)
    }

    /// Queues a `webhook.test` event for this endpoint; returns the event's id.
    #[tracing::instrument(level = "debug", skip_all, fields(%id))]
    pub async fn send_test(&self, actor: &Actor, id: WebhookId) -> Result<String> {
        let webhook = self.get(id).await?;
        if webhook.status == Status::Disabled {
            return Err(WebhookError::Disabled(id));
        }
        let event = events::event(
            EventType::WebhookTest,
            json!({
                "webhook_id": id,
                "requested_by": actor.name,
                "message": "A test event from Keyward: the endpoint receives and verifies events.",
            }),
            self.clock.now(),
        );
        self.db
            .enqueue_event(&event, Recipients::One(id), None)
            .await?;
        self.wake.notify_one();
        Ok(event.id)
    }

    pub async fn deliveries(&self, query: &DeliveryQuery) -> Result<Vec<DeliveryRecord>> {
        if let Some(id) = query.webhook_id {
            self.get(id).await?;
        }
        Ok(self.db.deliveries(query).await?)
    }

    /// Sends a delivery again now: a dead letter gets one more attempt.
    #[tracing::instrument(level = "debug", skip_all, fields(%id))]
    pub async fn retry(&self, actor: &Actor, id: DeliveryId) -> Result<DeliveryRecord> {
        let delivery = self
            .db
            .delivery(id)
            .await?
            .ok_or(WebhookError::NoSuchDelivery(id))?;
        let audit = actor.audit(
            self.clock.now(),
            "webhook.retry",
            &format!("delivery {id}"),
            json!({
                "webhook_id": delivery.webhook_id,
                "event_id": delivery.event_id,
                "event_type": delivery.event_type,
                "state": delivery.state,
                "attempts": delivery.attempts,
            }),
        );
        self.db
            .retry_delivery(id, self.clock.now(), &audit)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => WebhookError::NoSuchDelivery(id),
                other => other.into(),
            })?;
        self.wake.notify_one();
        self.db
            .delivery(id)
            .await?
            .ok_or(WebhookError::NoSuchDelivery(id))
    }
}

/// The endpoint as it stands at `now`: a replaced secret that stopped signing is not shown.
fn current(mut webhook: Webhook, now: time::OffsetDateTime) -> Webhook {
    if webhook
        .previous_secret
        .as_ref()
        .is_some_and(|previous| previous.expires_at <= now)
    {
        webhook.previous_secret = None;
    }
    webhook
}

fn not_found(error: StoreError, id: WebhookId) -> WebhookError {
    match error {
        StoreError::NotFound => WebhookError::NoSuchWebhook(id),
        other => other.into(),
    }
}
