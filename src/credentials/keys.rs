//! Rolling an API user's key: a new key, the old one stopped at once or after a grace.

use super::{Change, Credentials, IssuedKey, KeySource, NewExpiry, Result, Roll, ServiceError};
use crate::domain::admin::{Actor, Authority};
use crate::domain::api_user::NewKey;
use crate::domain::ids::ApiKeyId;
use crate::store::{Replacing, RetireOld, StoreError};
use serde_json::json;
use time::Duration;

impl Credentials {
    /// Issues a new key. With a grace period the current key keeps working until it ends (but
    /// never past its own expiry); without one it stops at once.
    #[tracing::instrument(level = "debug", skip_all, fields(%username))]
    pub async fn rotate(
        &self,
        actor: &Actor,
        username: &str,
        grace: Duration,
        key: KeySource,
        expiry: NewExpiry,
    ) -> Result<IssuedKey> {
        match self
            .roll(actor, username, Replacing::Current, grace, key, expiry)
            .await?
        {
            Roll::Issued(issued) => Ok(issued),
            Roll::AlreadyRolled(user) if actor.authority.calling_key_of(user.id).is_some() => {
                Err(ServiceError::Forbidden(
                    "A newer key, which this key's own roll did not make, replaced this key: \
                     only the newest key rolls itself (or an administrator, in the console or \
                     with the CLI)."
                        .to_owned(),
                ))
            }
            // A roll of whichever key is current always finds it.
            Roll::AlreadyRolled(_) => Err(ServiceError::Store(StoreError::Conflict {
                message: "the key was rolled meanwhile".to_owned(),
                details: Vec::new(),
            })),
        }
    }

    /// [`Credentials::rotate`], only while `seen` (none: no live key) is still the current
    /// key, as the store's transaction finds it: a form sent twice, or two admins rolling at
    /// once on any nodes, roll once and keep the grace the first roll gave.
    #[tracing::instrument(level = "debug", skip_all, fields(%username))]
    pub async fn rotate_seen(
        &self,
        actor: &Actor,
        username: &str,
        seen: Option<ApiKeyId>,
        grace: Duration,
        key: KeySource,
        expiry: NewExpiry,
    ) -> Result<Roll> {
        self.roll(actor, username, Replacing::Seen(seen), grace, key, expiry)
            .await
    }

    async fn roll(
        &self,
        actor: &Actor,
        username: &str,
        replacing: Replacing,
        grace: Duration,
        key: KeySource,
        expiry: NewExpiry,
    ) -> Result<Roll> {
        let user = self.changeable(actor, username, Change::Rotate).await?;
        if grace < Duration::ZERO {
            return Err(ServiceError::invalid("grace", "must not be negative"));
        }
        if grace > super::requests::MAX_ROLL_GRACE {
            return Err(ServiceError::invalid(
                "grace",
                format!(
                    "must be at most {} days: a longer grace leaves two keys live for good",
                    super::requests::MAX_ROLL_GRACE.whole_days()
                ),
            ));
        }
        // A management key rolling itself rolls only while it is the newest key, or the newest
        // came from its own roll (whose answer was lost): one an administrator replaced (in its
        // grace period, perhaps because it leaked) must not replace in turn the key just issued.
        let own = actor.authority.calling_key_of(user.id);
        let replacing = match (own, replacing) {
            (Some(key), _) => Replacing::Own(key),
            (None, replacing) => replacing,
        };
        let now = self.clock.now();
        // The newest key, live or not: a key rolled because it expired or leaked is replaced
        // by one made to last as long.
        let newest = user.keys.iter().max_by_key(|k| k.id);
        let expires_in = match expiry {
            NewExpiry::AsBefore => newest.and_then(|k| k.expires_at.map(|at| at - k.created_at)),
            NewExpiry::In(duration) => Some(duration),
            NewExpiry::Never => None,
        };
        let (plain, mut stored) = self.new_key(key, expires_in)?;
        stored.issued_by = own;
        within_issuer(actor, &mut stored, expiry != NewExpiry::AsBefore)?;
        let retire = if grace == Duration::ZERO {
            RetireOld::Now
        } else {
            RetireOld::At(now + grace)
        };
        // The current key keeps its grace; any older one still in a grace period stops now,
        // so at most two keys ever live. Which keys those are, the store's transaction says
        // (and writes the old key's hint in the audit entry): a roll made at the same time may
        // have replaced the ones read above.
        let audit = self.audit(
            actor,
            "api_user.rotate",
            username,
            json!({
                "old_key_hint": null,
                "new_key_hint": stored.hint,
                "grace_seconds": grace.whole_seconds(),
                "key_expires_at": stored.expires_at.map(crate::clock::rfc3339),
            }),
        );
        let rolled = self
            .db
            .roll_key(user.id, &stored, replacing, retire, now, &audit)
            .await?;
        let user = self.get(username).await?;
        Ok(match rolled {
            Some(rolled) => Roll::Issued(IssuedKey {
                user,
                key: plain,
                stopped_now: rolled.stopped_now,
            }),
            None => Roll::AlreadyRolled(user),
        })
    }
}

/// Holds a new key to what `actor` may issue: a management key never issues a key that
/// outlives its own, so no key it makes keeps its access past the end an administrator gave
/// it. An expiry asked for beyond that is refused; the default one is cut to it.
pub(super) fn within_issuer(actor: &Actor, stored: &mut NewKey, asked: bool) -> Result<()> {
    let Authority::Key {
        key_expires_at: Some(limit),
        ..
    } = actor.authority
    else {
        return Ok(());
    };
    match stored.expires_at {
        Some(at) if at <= limit => Ok(()),
        _ if asked => Err(ServiceError::invalid(
            "expires_in",
            format!(
                "must end by {}, when the management key making it expires: a management key \
                 issues no key that outlives its own (an administrator extends it)",
                crate::clock::rfc3339(limit)
            ),
        )),
        _ => {
            stored.expires_at = Some(limit);
            Ok(())
        }
    }
}
