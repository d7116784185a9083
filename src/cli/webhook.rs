//! `keyward webhook …`: alert endpoints, their test events and their deliveries.

use super::CliError;
use super::output::{Output, print_json, table, when};
use crate::clock::SystemClock;
use crate::config::Config;
use crate::domain::admin::Actor;
use crate::domain::api_user::Status;
use crate::domain::duration::HumanDuration;
use crate::domain::ids::{DeliveryId, WebhookId};
use crate::domain::webhook::{DeliveryQuery, DeliveryRecord, DeliveryState, EventType, Webhook};
use crate::store::Db;
use crate::webhooks::{AddWebhook, CreatedWebhook, SealingKey, WebhookError, Webhooks};
use clap::Subcommand;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::Notify;

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Add an endpoint and print its signing secret (shown once)
    Add {
        /// Where events are POSTed: an https:// (or http://) URL
        #[arg(long)]
        url: String,
        /// An event to send (repeatable): key.exposed, key.expiring, refusals.burst,
        /// ip.not_allowed; all of them when none is given
        #[arg(long = "event", value_name = "EVENT")]
        events: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List endpoints with their pending and dead deliveries
    List,
    /// Delete an endpoint and its deliveries
    Remove { id: i64 },
    /// Send events to the endpoint again (deliveries that waited go out now)
    Enable { id: i64 },
    /// Stop sending to the endpoint; its deliveries wait until it is enabled
    Disable { id: i64 },
    /// Give the endpoint a new signing secret and print it (shown once); without --grace the
    /// old secret stops at once
    RollSecret {
        /// The endpoint's id, as `keyward webhook list` shows it
        id: i64,
        /// How long the old secret keeps signing deliveries beside the new one, such as 1h or
        /// 24h (at most 7d), while the receiver switches to the new one
        #[arg(long, value_name = "DURATION")]
        grace: Option<HumanDuration>,
    },
    /// Queue a webhook.test event for the endpoint; a running server sends it at once
    Test { id: i64 },
    /// Show deliveries, newest first; --state dead lists the dead letters
    Deliveries {
        /// Only this endpoint's deliveries
        id: Option<i64>,
        /// pending, delivered or dead
        #[arg(long)]
        state: Option<DeliveryState>,
        /// Rows to show
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// Send a delivery again now; a dead letter gets one more attempt
    Retry { delivery: i64 },
}

impl From<WebhookError> for CliError {
    fn from(error: WebhookError) -> Self {
        match error {
            WebhookError::NoSuchWebhook(_) | WebhookError::NoSuchDelivery(_) => {
                Self::NotFound(error.to_string())
            }
            WebhookError::Invalid(_) | WebhookError::Disabled(_) => {
                Self::Invalid(error.to_string())
            }
            WebhookError::NoKey(message) => Self::Usage(message),
            WebhookError::Key(_) => Self::Failed(error.to_string()),
            WebhookError::Store(store) => store.into(),
        }
    }
}

pub async fn run(
    command: WebhookCommand,
    db: &Db,
    config: &Config,
    out: &Output,
) -> Result<(), CliError> {
    let key = SealingKey::resolve(config.webhook_key.as_ref(), &config.database_url);
    // The server's sender picks up what this process queues: nothing to wake here.
    let webhooks = Webhooks::new(
        db.clone(),
        Arc::new(SystemClock),
        Arc::new(key),
        Arc::new(Notify::new()),
    );
    let result = execute(command, &webhooks, &Actor::cli(), out).await;
    db.close().await;
    result
}

/// Names, on stderr (`--json` keeps its stdout a document), each webhook whose signing secret
/// does not open with the webhook key in effect.
async fn warn_sealed_elsewhere(webhooks: &Webhooks, listed: &[Webhook]) -> Result<(), CliError> {
    for id in webhooks.sealed_under_another_key(listed).await? {
        eprintln!(
            "note: the signing secret of webhook {id} does not open with the webhook key in \
             effect (was it changed?): its deliveries fail until the key is restored or its \
             secret is rolled (keyward webhook roll-secret {id})"
        );
    }
    Ok(())
}

async fn execute(
    command: WebhookCommand,
    webhooks: &Webhooks,
    actor: &Actor,
    out: &Output,
) -> Result<(), CliError> {
    match command {
        WebhookCommand::Add {
            url,
            events,
            description,
        } => {
            let request = AddWebhook {
                url,
                description,
                events,
            };
            out.webhook_created(&webhooks.add(actor, request).await?);
            // Added under a key the others were not sealed with: say so now, not at the next
            // list (restoring their key would then leave this one unopened). The endpoint is
            // added either way: a failed look is not the command's failure.
            if let Ok(listed) = webhooks.list().await {
                let _ = warn_sealed_elsewhere(webhooks, &listed).await;
            }
        }
        WebhookCommand::List => {
            let listed = webhooks.list().await?;
            out.webhooks(&listed);
            warn_sealed_elsewhere(webhooks, &listed).await?;
        }
        WebhookCommand::Remove { id } => {
            let webhook = webhooks.remove(actor, WebhookId(id)).await?;
            out.webhook_changed(
                &format!("Deleted webhook {id} ({}) and its deliveries.", webhook.url),
                &webhook,
            );
        }
        WebhookCommand::Enable { id } => {
            let webhook = webhooks
                .set_status(actor, WebhookId(id), Status::Enabled)
                .await?;
            out.webhook_changed(&format!("Enabled webhook {id}."), &webhook);
        }
        WebhookCommand::Disable { id } => {
            let webhook = webhooks
                .set_status(actor, WebhookId(id), Status::Disabled)
                .await?;
            out.webhook_changed(
                &format!("Disabled webhook {id}: its deliveries wait until it is enabled."),
                &webhook,
            );
        }
        WebhookCommand::RollSecret { id, grace } => {
            let grace = grace.map_or(time::Duration::ZERO, |g| g.0);
            out.secret_rolled(
                &webhooks
                    .roll_secret(actor, WebhookId(id), grace, None)
                    .await?,
            );
        }
        WebhookCommand::Test { id } => {
            let event = webhooks.send_test(actor, WebhookId(id)).await?;
            out.test_queued(WebhookId(id), &event);
        }
        WebhookCommand::Deliveries { id, state, limit } => {
            let query = DeliveryQuery {
                webhook_id: id.map(WebhookId),
                state,
                limit,
                ..DeliveryQuery::default()
            };
            out.deliveries(&webhooks.deliveries(&query).await?);
        }
        WebhookCommand::Retry { delivery } => {
            let record = webhooks.retry(actor, DeliveryId(delivery)).await?;
            // Queued either way: a failed look at its webhook is not the command's failure.
            let enabled = webhooks
                .get(record.webhook_id)
                .await
                .map_or(true, |webhook| webhook.status == Status::Enabled);
            out.retried(&record, enabled);
        }
    }
    Ok(())
}

impl Output {
    fn webhook_created(&self, created: &CreatedWebhook) {
        let secret = created.secret.expose();
        if self.json {
            print_json(&json!({ "webhook": created.webhook, "secret": secret }));
            return;
        }
        let webhook = &created.webhook;
        say!("Added webhook {} for {}.", webhook.id, webhook.url);
        say!("Events: {}", webhook.events);
        say!();
        say!(
            "Signing secret (shown once; store it with the receiver now, it cannot be shown again):"
        );
        say!();
        say!("    {secret}");
        say!();
        say!("Check the Keyward-Signature header of every request with it (see the README).");
        say!("Send a test event: keyward webhook test {}", webhook.id);
    }

    fn secret_rolled(&self, rolled: &CreatedWebhook) {
        let secret = rolled.secret.expose();
        let webhook = &rolled.webhook;
        if self.json {
            print_json(&json!({ "webhook": webhook, "secret": secret }));
            return;
        }
        say!(
            "Rolled the signing secret of webhook {} ({}).",
            webhook.id,
            webhook.url
        );
        say!();
        say!("New signing secret (shown once; store it with the receiver now):");
        say!();
        say!("    {secret}");
        say!();
        match &webhook.previous_secret {
            Some(previous) => say!(
                "The old secret ({}) signs every delivery beside the new one until {}: the \
                 receiver may switch to the new one meanwhile.",
                previous.hint,
                when(Some(previous.expires_at))
            ),
            None => {
                say!("The old secret stopped now: deliveries are signed with the new one only.")
            }
        }
    }

    fn webhooks(&self, webhooks: &[Webhook]) {
        if self.json {
            print_json(&webhooks);
            return;
        }
        if webhooks.is_empty() {
            say!(
                "No webhooks yet. Add one with: keyward webhook add --url https://HOST/PATH [--event {}]",
                EventType::KeyExposed
            );
            return;
        }
        let rows: Vec<Vec<String>> = webhooks
            .iter()
            .map(|w| {
                vec![
                    w.id.to_string(),
                    w.status.to_string(),
                    w.url.to_string(),
                    w.events.to_string().replace(' ', ","),
                    match &w.previous_secret {
                        Some(previous) => format!(
                            "{} (+{} until {})",
                            w.secret_hint,
                            previous.hint,
                            when(Some(previous.expires_at))
                        ),
                        None => w.secret_hint.clone(),
                    },
                    w.pending.to_string(),
                    w.dead.to_string(),
                ]
            })
            .collect();
        table(
            &["ID", "STATUS", "URL", "EVENTS", "SECRET", "PENDING", "DEAD"],
            &rows,
        );
    }

    fn webhook_changed(&self, message: &str, webhook: &Webhook) {
        if self.json {
            print_json(&json!({ "ok": true, "message": message, "webhook": webhook }));
        } else {
            say!("{message}");
        }
    }

    fn test_queued(&self, id: WebhookId, event_id: &str) {
        if self.json {
            print_json(&json!({ "ok": true, "webhook_id": id, "event_id": event_id }));
        } else {
            say!(
                "Queued the test event {event_id} for webhook {id}; a running server sends it at once. \
                 See it with: keyward webhook deliveries {id}"
            );
        }
    }

    fn deliveries(&self, deliveries: &[DeliveryRecord]) {
        if self.json {
            print_json(&deliveries);
            return;
        }
        if deliveries.is_empty() {
            say!("No deliveries.");
            return;
        }
        let rows: Vec<Vec<String>> = deliveries
            .iter()
            .map(|d| {
                vec![
                    d.id.to_string(),
                    d.webhook_id.to_string(),
                    d.event_type.clone(),
                    d.state.to_string(),
                    d.attempts.to_string(),
                    when(d.last_attempt_at),
                    d.next_attempt_at
                        .map_or_else(|| "-".to_owned(), |t| when(Some(t))),
                    d.last_error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        table(
            &[
                "ID",
                "WEBHOOK",
                "EVENT",
                "STATE",
                "ATTEMPTS",
                "LAST ATTEMPT",
                "NEXT",
                "LAST ERROR",
            ],
            &rows,
        );
    }

    fn retried(&self, delivery: &DeliveryRecord, enabled: bool) {
        if self.json {
            print_json(&json!({ "ok": true, "delivery": delivery, "webhook_enabled": enabled }));
        } else {
            let when = if enabled {
                "a running server sends it at once".to_owned()
            } else {
                format!(
                    "the webhook is disabled: it is sent once the webhook is enabled \
                     (keyward webhook enable {})",
                    delivery.webhook_id
                )
            };
            say!(
                "Delivery {} ({} to webhook {}) is queued again; {when}.",
                delivery.id,
                delivery.event_type,
                delivery.webhook_id
            );
        }
    }
}
