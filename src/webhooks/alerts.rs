//! Raising alerts: each becomes an event stored once per subscribed endpoint, in the same
//! transaction that claims the alert, so an alert raised by two nodes at once goes out once.

use super::events::{self, api_user};
use crate::clock::SharedClock;
use crate::credentials::ExposedKey;
use crate::domain::history::Outcome;
use crate::domain::ids::ApiUserId;
use crate::domain::webhook::{AlertClaim, EventType, NewEvent, Recipients};
use crate::store::{Db, StoreError};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};
use tokio::sync::{Notify, mpsc, watch};

/// How far ahead the hourly scan looks for expiring keys.
pub const EXPIRING_WITHIN: Duration = Duration::days(7);
/// One `ip.not_allowed` alert per API user and address in this long.
pub const IP_ALERT_QUIET: Duration = Duration::HOUR;

/// One refused call, as a burst alert reports it.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub at: OffsetDateTime,
    pub outcome: Outcome,
    pub ip: String,
}

/// What the detector noticed in the history.
#[derive(Debug, Clone)]
pub enum Alert {
    RefusalsBurst {
        api_user_id: ApiUserId,
        username: String,
        refusals: Vec<Refusal>,
        window: Duration,
    },
    IpNotAllowed {
        api_user_id: ApiUserId,
        username: String,
        ip: String,
        at: OffsetDateTime,
    },
}

#[derive(Clone)]
pub struct Alerts {
    db: Db,
    clock: SharedClock,
    wake: Arc<Notify>,
}

impl Alerts {
    pub fn new(db: Db, clock: SharedClock, wake: Arc<Notify>) -> Self {
        Self { db, clock, wake }
    }

    /// Stores `event` for its subscribers; wakes the sender when there are any.
    async fn emit(&self, event: &NewEvent, claim: Option<AlertClaim>) -> Result<u64, StoreError> {
        let stored = self
            .db
            .enqueue_event(event, Recipients::Subscribed, claim.as_ref())
            .await?;
        if stored > 0 {
            self.wake.notify_one();
            tracing::info!(event = %event.id, kind = %event.kind, endpoints = stored, "alert raised");
        }
        Ok(stored)
    }

    /// `key.exposed`: a leak report revoked this key.
    pub async fn key_exposed(
        &self,
        key: &ExposedKey,
        reported_from: IpAddr,
    ) -> Result<u64, StoreError> {
        let event = events::event(
            EventType::KeyExposed,
            json!({
                "api_user": api_user(key.api_user_id, &key.username),
                "key": { "id": key.key_id, "hint": key.key_hint, "state": "revoked" },
                "sessions_ended": key.sessions_ended,
                "reported_from": reported_from.to_string(),
                "action": "The key was revoked. Roll a new key for this integration and remove the leaked one from where it was found.",
            }),
            self.clock.now(),
        );
        self.emit(&event, None).await
    }

    /// `key.expiring`: the current keys that expire within 7 days, each alerted once.
    pub async fn scan_expiring(&self) -> Result<u64, StoreError> {
        let now = self.clock.now();
        let mut raised = 0;
        for key in self.db.keys_expiring(now, now + EXPIRING_WITHIN).await? {
            let event = events::event(
                EventType::KeyExpiring,
                json!({
                    "api_user": api_user(key.api_user_id, &key.username),
                    "key": { "id": key.key_id, "hint": key.hint, "expires_at": events::time(key.expires_at) },
                    "expires_in_seconds": (key.expires_at - now).whole_seconds(),
                    "action": "Roll the key before it expires, or the integration's calls will be refused.",
                }),
                now,
            );
            let claim = AlertClaim {
                key: format!("key.expiring:{}", key.key_id),
                quiet: None,
            };
            raised += self.emit(&event, Some(claim)).await?;
        }
        Ok(raised)
    }

    /// A burst of refusals or an address not on the list, from the detector.
    pub async fn raise(&self, alert: &Alert) -> Result<u64, StoreError> {
        let (event, claim) = match alert {
            Alert::RefusalsBurst {
                api_user_id,
                username,
                refusals,
                window,
            } => {
                let mut outcomes: BTreeMap<&str, u32> = BTreeMap::new();
                let mut ips: Vec<&str> = Vec::new();
                for refusal in refusals {
                    *outcomes.entry(refusal.outcome.as_str()).or_default() += 1;
                    if !ips.contains(&refusal.ip.as_str()) {
                        ips.push(&refusal.ip);
                    }
                }
                let event = events::event(
                    EventType::RefusalsBurst,
                    json!({
                        "api_user": api_user(*api_user_id, username),
                        "refusals": refusals.len(),
                        "window_seconds": window.whole_seconds(),
                        "first_at": refusals.first().map(|r| events::time(r.at)),
                        "last_at": refusals.last().map(|r| events::time(r.at)),
                        "outcomes": outcomes,
                        "ips": ips,
                    }),
                    self.clock.now(),
                );
                let claim = AlertClaim {
                    key: format!("refusals.burst:{api_user_id}"),
                    quiet: Some(*window),
                };
                (event, claim)
            }
            Alert::IpNotAllowed {
                api_user_id,
                username,
                ip,
                at,
            } => {
                let event = events::event(
                    EventType::IpNotAllowed,
                    json!({
                        "api_user": api_user(*api_user_id, username),
                        "ip": ip,
                        "at": events::time(*at),
                        "action": "If this address is the integration's, add it to the IP list; otherwise its key may be in the wrong hands.",
                    }),
                    self.clock.now(),
                );
                let claim = AlertClaim {
                    key: format!("ip.not_allowed:{api_user_id}:{ip}"),
                    quiet: Some(IP_ALERT_QUIET),
                };
                (event, claim)
            }
        };
        self.emit(&event, Some(claim)).await
    }

    /// Raises what the detector sends; once `stopped` changes, raises what is left and ends.
    pub async fn run(self, mut alerts: mpsc::Receiver<Alert>, mut stopped: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                alert = alerts.recv() => match alert {
                    Some(alert) => self.raise_logged(&alert).await,
                    None => return,
                },
                _ = stopped.changed() => {
                    while let Ok(alert) = alerts.try_recv() {
                        self.raise_logged(&alert).await;
                    }
                    return;
                }
            }
        }
    }

    async fn raise_logged(&self, alert: &Alert) {
        if let Err(error) = self.raise(alert).await {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "an alert could not be stored; it is lost"
            );
        }
    }
}
