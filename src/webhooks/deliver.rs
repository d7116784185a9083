//! Sending deliveries: a background task claims due deliveries (on PostgreSQL with
//! `FOR UPDATE SKIP LOCKED`, so each goes out from one node), signs each with its endpoint's
//! secret, POSTs it with a time limit, and records the attempt: delivered on any 2xx answer;
//! otherwise tried again after 1 min, 5 min, 30 min, 2 h, 6 h, 12 h and 24 h, then kept as
//! a dead letter until someone retries it. Pending deliveries are rows, so a restart loses
//! none; a node that dies mid-send leaves a lease that runs out, and another node sends it
//! again (receivers drop duplicates by event id).

use super::seal::{KeyError, SealingKey};
use super::signature;
use crate::clock::SharedClock;
use crate::domain::ids::WebhookId;
use crate::domain::webhook::{AttemptResult, DueDelivery, WebhookTarget};
use crate::store::{Db, StoreError};
use axum::body::Bytes;
use axum::http::{Request, header};
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// The waits between attempts: after the first failure 1 minute, and so on.
pub const BACKOFF: [time::Duration; 7] = [
    time::Duration::minutes(1),
    time::Duration::minutes(5),
    time::Duration::minutes(30),
    time::Duration::hours(2),
    time::Duration::hours(6),
    time::Duration::hours(12),
    time::Duration::hours(24),
];
/// Attempts before a delivery is a dead letter: the first and one after each wait.
pub const MAX_ATTEMPTS: i64 = BACKOFF.len() as i64 + 1;
/// Longest one attempt may take, connecting and answering included.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// How often due deliveries are looked for (and at once when this process queues one).
const POLL: Duration = Duration::from_millis(500);
/// How long a claimed delivery is this node's: well past an attempt's time limit.
const LEASE: time::Duration = time::Duration::minutes(2);
const BATCH: u32 = 32;
const CONCURRENT: usize = 8;
/// How much of a refusing endpoint's answer is kept as the delivery's error.
const ANSWER_KEPT: usize = 200;

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

pub struct Deliverer {
    db: Db,
    clock: SharedClock,
    key: Arc<Result<SealingKey, KeyError>>,
    client: Option<HttpClient>,
    wake: Arc<Notify>,
}

/// Why an attempt failed: the endpoint's status, if it answered, and what went wrong.
struct Failure(Option<u16>, String);

impl Deliverer {
    pub fn new(
        db: Db,
        clock: SharedClock,
        key: Arc<Result<SealingKey, KeyError>>,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            db,
            clock,
            key,
            client: http_client(),
            wake,
        }
    }

    /// Sends due deliveries until `stopped` changes.
    pub async fn run(self, mut stopped: watch::Receiver<bool>) {
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stopped.changed() => return,
                _ = poll.tick() => {}
                () = self.wake.notified() => {}
            }
            loop {
                match self.round().await {
                    Ok(sent) if sent == BATCH as usize => continue,
                    Ok(_) => break,
                    Err(error) => {
                        tracing::warn!(
                            error = &error as &dyn std::error::Error,
                            "claiming webhook deliveries failed; retrying"
                        );
                        break;
                    }
                }
            }
        }
    }

    /// Claims and attempts one batch; returns its size.
    async fn round(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let due = self.db.claim_deliveries(now, now + LEASE, BATCH).await?;
        let count = due.len();
        let mut targets: HashMap<WebhookId, WebhookTarget> = HashMap::new();
        for delivery in &due {
            if !targets.contains_key(&delivery.webhook_id)
                && let Some(target) = self.db.webhook_target(delivery.webhook_id).await?
            {
                targets.insert(target.id, target);
            }
        }
        futures_util::stream::iter(due)
            .for_each_concurrent(CONCURRENT, |delivery| {
                let target = targets.get(&delivery.webhook_id);
                async move {
                    // An endpoint deleted meanwhile took its deliveries with it.
                    if let Some(target) = target {
                        self.attempt(delivery, target).await;
                    }
                }
            })
            .await;
        Ok(count)
    }

    async fn attempt(&self, delivery: DueDelivery, target: &WebhookTarget) {
        let attempt = delivery.attempts + 1;
        let sent = self.send(&delivery, target).await;
        let at = self.clock.now();
        let result = match sent {
            Ok(status) => AttemptResult::Delivered { status },
            Err(Failure(status, error)) if attempt >= MAX_ATTEMPTS => {
                tracing::warn!(
                    delivery = %delivery.id, webhook = %target.id, endpoint = %target.url.origin(),
                    attempt, error, "webhook delivery failed for the last time: it is a dead letter"
                );
                AttemptResult::Dead { status, error }
            }
            Err(Failure(status, error)) => {
                let wait = BACKOFF
                    .get(usize::try_from(attempt - 1).unwrap_or(0))
                    .copied()
                    .unwrap_or(BACKOFF[BACKOFF.len() - 1]);
                tracing::info!(
                    delivery = %delivery.id, webhook = %target.id, endpoint = %target.url.origin(),
                    attempt, error, retry_in_s = wait.whole_seconds(), "webhook delivery failed"
                );
                AttemptResult::Retry {
                    status,
                    error,
                    next_at: at + wait,
                }
            }
        };
        if let Err(error) = self.db.finish_delivery(delivery.id, &result, at).await {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                delivery = %delivery.id,
                "recording a webhook attempt failed; it will be sent again when its lease ends"
            );
        }
    }

    /// POSTs the delivery, signed; the status of a 2xx answer, or why it failed.
    async fn send(&self, delivery: &DueDelivery, target: &WebhookTarget) -> Result<u16, Failure> {
        let key = self
            .key
            .as_ref()
            .as_ref()
            .map_err(|e| Failure(None, e.to_string()))?;
        let secret = key.open(&target.sealed_secret).map_err(|_| {
            Failure(
                None,
                "the endpoint's signing secret cannot be opened with the webhook key in effect \
                 (was webhook_key changed?): roll its secret (keyward webhook roll-secret)"
                    .to_owned(),
            )
        })?;
        let now = self.clock.now();
        // A rolled secret still signs beside its successor until its time is up.
        let previous = target
            .previous
            .as_ref()
            .filter(|(_, until)| *until > now)
            .and_then(|(sealed, _)| key.open(sealed).ok());
        let secrets: Vec<&str> = std::iter::once(secret.expose())
            .chain(previous.as_ref().map(|p| p.expose()))
            .collect();
        let signed = signature::sign(&secrets, now.unix_timestamp(), delivery.payload.as_bytes());
        let request = Request::post(target.url.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("Keyward-Webhooks/", env!("CARGO_PKG_VERSION")),
            )
            .header(signature::HEADER, signed)
            .header("keyward-event-id", &delivery.event_id)
            .header("keyward-event-type", &delivery.event_type)
            .header("keyward-delivery-id", delivery.id.to_string())
            .body(Full::new(Bytes::from(delivery.payload.clone())))
            .map_err(|e| Failure(None, format!("the request could not be made: {e}")))?;
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| Failure(None, "TLS could not be set up on this node".to_owned()))?;
        let exchange = async {
            let response = client.request(request).await?;
            let status = response.status();
            let answer = Limited::new(response.into_body(), ANSWER_KEPT * 4)
                .collect()
                .await
                .map(|body| body.to_bytes())
                .unwrap_or_default();
            Ok::<_, hyper_util::client::legacy::Error>((status, answer))
        };
        match tokio::time::timeout(TIMEOUT, exchange).await {
            Err(_) => Err(Failure(
                None,
                format!("no answer within {} s", TIMEOUT.as_secs()),
            )),
            // hyper's errors name no URL and no secret.
            Ok(Err(error)) => Err(Failure(None, crate::telemetry::error_chain(&error))),
            Ok(Ok((status, _))) if status.is_success() => Ok(status.as_u16()),
            Ok(Ok((status, answer))) => {
                let text: String = String::from_utf8_lossy(&answer)
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(ANSWER_KEPT)
                    .collect();
                let error = match text.trim() {
                    "" => format!("HTTP {}", status.as_u16()),
                    text => format!("HTTP {}: {text}", status.as_u16()),
                };
                Err(Failure(Some(status.as_u16()), error))
            }
        }
    }
}

/// hyper's client over rustls (aws-lc-rs) with the system's root certificates. Redirects are
/// not followed: an endpoint answers for itself. `None` only if TLS cannot be set up at all.
fn http_client() -> Option<HttpClient> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = match HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider.clone())
    {
        Ok(builder) => builder,
        Err(error) => {
            tracing::warn!(%error, "no system root certificates: webhooks to https:// endpoints will fail");
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(
                    |error| tracing::error!(%error, "TLS cannot be set up: no webhook can be sent"),
                )
                .ok()?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            HttpsConnectorBuilder::new().with_tls_config(config)
        }
    };
    let connector = builder.https_or_http().enable_http1().build();
    Some(
        Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector),
    )
}
