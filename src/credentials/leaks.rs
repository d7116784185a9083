//! Leaked keys: a reported key is revoked at once, through the same store call and change log
//! as every credential change, so it stops on every node. Only that key: its user and the
//! user's other key (during a roll's grace period) keep working, as Stripe and GitHub do with
//! exposed tokens; the integration's owner rolls a new key.

use super::{Credentials, Result};
use crate::domain::admin::Actor;
use crate::domain::ids::{ApiKeyId, ApiUserId};
use crate::domain::secret::SecretHash;
use serde_json::json;
use std::net::IpAddr;

/// The actor of leak reports in the audit log.
pub const LEAK_REPORT_ACTOR: &str = "leak report";

/// A key a leak report revoked.
#[derive(Debug, Clone)]
pub struct ExposedKey {
    pub api_user_id: ApiUserId,
    pub username: String,
    pub key_id: ApiKeyId,
    pub key_hint: String,
    /// Sessions made with the key, ended with it.
    pub sessions_ended: u64,
}

impl Credentials {
    /// Revokes every live key among `hashes` (digests of well-formed keys a scanner reported)
    /// and ends the sessions made with each; returns what was revoked. Digests that match no
    /// key, or a key already revoked, change nothing.
    #[tracing::instrument(level = "debug", skip_all, fields(%reporter, reported = hashes.len()))]
    pub async fn revoke_exposed(
        &self,
        reporter: IpAddr,
        hashes: &[SecretHash],
    ) -> Result<Vec<ExposedKey>> {
        let actor = Actor {
            ip: Some(reporter.to_string()),
            ..Actor::full(LEAK_REPORT_ACTOR.to_owned())
        };
        let mut exposed = Vec::new();
        for hash in hashes {
            let Some(key) = self.db.auth_key(hash).await? else {
                continue;
            };
            if key.revoked_at.is_some() {
                continue;
            }
            let Some(user) = self.db.auth_user(key.api_user_id).await? else {
                continue;
            };
            let audit = self.audit(
                &actor,
                "api_user.key_exposed",
                &user.username,
                json!({
                    "key_hint": key.hint,
                    "key_id": key.id,
                    "revoked": true,
                    "reason": "reported leaked to POST /api/v1/leaks",
                }),
            );
            let sessions_ended = self
                .db
                .revoke_key(key.id, "exposed", self.clock.now(), &audit)
                .await?;
            tracing::warn!(
                username = %user.username, key_hint = %key.hint, sessions_ended,
                "a leaked key was reported and revoked"
            );
            exposed.push(ExposedKey {
                api_user_id: user.id,
                username: user.username.to_string(),
                key_id: key.id,
                key_hint: key.hint.to_string(),
                sessions_ended,
            });
        }
        Ok(exposed)
    }
}
