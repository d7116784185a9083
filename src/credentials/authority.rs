//! Who may do what to API users. The console's roles and the Management API's keys follow the
//! same rules, here, so no entry can grant more than another:
//!
//! - An administrator (and the CLI) may do everything.
//! - An `api_manager` changes API users, but never makes a management key nor changes one:
//!   it could otherwise hand itself the `api_users:*` scopes.
//! - A management key follows the `api_manager` rules, and in addition acts only on API users
//!   whose every scope it holds itself, and grants only scopes it holds: rotating a key hands
//!   the new key to the caller, so acting on a stronger user would be an escalation. On itself
//!   it may rotate its key (while no key an administrator issued came after it: see
//!   `Replacing::Own`) and end its sessions (what a secrets manager needs), and disable or
//!   delete itself only when the request confirms it; its other settings are an
//!   administrator's to change.
//! - A `viewer` only reads.

use super::{Result, ServiceError};
use crate::domain::admin::Authority;
use crate::domain::api_user::{ApiUser, Status};
use crate::domain::ids::ApiKeyId;
use crate::domain::scope::{Scope, Scopes};

/// What a change does to an API user, as far as the rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Description, environment, scopes, IP rules, rate limit, management flag.
    Settings,
    Status(Status),
    Rotate,
    Sessions,
    Delete,
}

const ADMINISTRATORS_ONLY: &str =
    "Management keys are changed only by administrators, in the console or with the CLI.";

impl Authority {
    /// Whether this authority may make `change` to `target`.
    pub fn may_change(&self, target: &ApiUser, change: Change) -> Result<()> {
        self.writes()?;
        match self {
            Authority::Full => Ok(()),
            Authority::ReadOnly => Err(read_only()),
            Authority::ApiManager if target.management => {
                Err(ServiceError::Forbidden(ADMINISTRATORS_ONLY.to_owned()))
            }
            Authority::ApiManager => Ok(()),
            Authority::Key {
                id,
                key,
                self_lockout_confirmed,
                ..
            } if *id == target.id => match change {
                // A key a roll replaced (in its grace period, perhaps because it leaked) does
                // not undo the roll by stopping the user, its new key, or the new key's
                // sessions. Its own roll is held to the same by the store (`Replacing::Own`).
                Change::Sessions | Change::Status(Status::Disabled) | Change::Delete
                    if replaced(target, *key) =>
                {
                    Err(ServiceError::Forbidden(
                        "This key was replaced by a roll and works only until its grace period \
                         ends: only the current key disables or deletes its API user or ends \
                         its sessions (or an administrator, in the console or with the CLI)."
                            .to_owned(),
                    ))
                }
                Change::Rotate | Change::Sessions | Change::Status(Status::Enabled) => Ok(()),
                Change::Status(Status::Disabled) | Change::Delete if *self_lockout_confirmed => {
                    Ok(())
                }
                Change::Status(Status::Disabled) | Change::Delete => {
                    Err(ServiceError::Unconfirmed(format!(
                        "This would stop the key making this call, and the automation that uses it, until an \
                         administrator steps in. To do it anyway, repeat the request with `?confirm={}`.",
                        target.username
                    )))
                }
                Change::Settings => Err(ServiceError::Forbidden(
                    "A management key may rotate its own key and end its own sessions, but its other \
                     settings are changed only by administrators, in the console or with the CLI."
                        .to_owned(),
                )),
            },
            Authority::Key { .. } if target.management => {
                Err(ServiceError::Forbidden(ADMINISTRATORS_ONLY.to_owned()))
            }
            Authority::Key { scopes, .. } => match scopes.first_missing(&target.scopes) {
                None => Ok(()),
                Some(scope) => Err(ServiceError::Forbidden(format!(
                    "`{}` holds the scope `{scope}`, which this management key does not hold: a management \
                     key manages only API users within its own scopes.",
                    target.username
                ))),
            },
        }
    }

    /// Whether this authority may give a user `scopes`, and make it a management key.
    pub fn may_grant(&self, scopes: &Scopes, management: bool) -> Result<()> {
        self.writes()?;
        match self {
            Authority::Full => Ok(()),
            Authority::ReadOnly => Err(read_only()),
            Authority::ApiManager | Authority::Key { .. } if management => {
                Err(ServiceError::Forbidden(
                    "Only administrators make management keys, in the console or with the CLI."
                        .to_owned(),
                ))
            }
            Authority::ApiManager => Ok(()),
            Authority::Key { scopes: held, .. } => match held.first_missing(scopes) {
                None => Ok(()),
                Some(scope) => Err(ServiceError::Forbidden(format!(
                    "Granting `{scope}` needs a management key that holds `{scope}` itself."
                ))),
            },
        }
    }
}

impl Authority {
    /// A key changes API users only with `api_users:write`. The route already demands it; this
    /// keeps the rule true for any other way a key's request might reach the service.
    fn writes(&self) -> Result<()> {
        match self {
            Authority::Key { scopes, .. } if !scopes.allows(Scope::ApiUsersWrite) => {
                Err(ServiceError::Forbidden(
                    "Changing API users needs the scope `api_users:write`.".to_owned(),
                ))
            }
            _ => Ok(()),
        }
    }
}

fn read_only() -> ServiceError {
    ServiceError::Forbidden(
        "This role only reads: ask an administrator or an API manager.".to_owned(),
    )
}

/// Whether a newer key than `key`, not revoked, was issued to `user`.
fn replaced(user: &ApiUser, key: ApiKeyId) -> bool {
    user.keys
        .iter()
        .any(|k| k.id > key && k.revoked_at.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::api_user::Environment;
    use crate::domain::ids::{ApiKeyId, ApiUserId};
    use time::OffsetDateTime;

    fn user(id: i64, scopes: &str, management: bool) -> ApiUser {
        ApiUser {
            id: ApiUserId(id),
            username: format!("user{id}"),
            description: String::new(),
            environment: Environment::Production,
            status: Status::Enabled,
            scopes: Scopes::parse([scopes]).expect("scopes"),
            rate_limit_per_minute: 600,
            management,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
            last_used_at: None,
            last_used_ip: None,
            ips: Vec::new(),
            keys: Vec::new(),
        }
    }

    fn key(id: i64, scopes: &str, confirmed: bool) -> Authority {
        Authority::Key {
            id: ApiUserId(id),
            key: ApiKeyId(id),
            key_hint: "kw_…test".to_owned(),
            scopes: Scopes::parse([scopes]).expect("scopes"),
            self_lockout_confirmed: confirmed,
            key_expires_at: None,
        }
    }

    const ALL: [Change; 6] = [
        Change::Settings,
        Change::Status(Status::Enabled),
        Change::Status(Status::Disabled),
        Change::Rotate,
        Change::Sessions,
        Change::Delete,
    ];

    #[test]
    fn administrators_do_everything_and_viewers_nothing() {
        let target = user(2, "api_users:write", true);
        for change in ALL {
            assert!(Authority::Full.may_change(&target, change).is_ok());
            assert!(Authority::ReadOnly.may_change(&target, change).is_err());
        }
        assert!(Authority::Full.may_grant(&target.scopes, true).is_ok());
    }

    #[test]
    fn api_managers_leave_management_keys_alone() {
        let plain = user(2, "orders:write", false);
        let management = user(3, "api_users:read", true);
        for change in ALL {
            assert!(Authority::ApiManager.may_change(&plain, change).is_ok());
            assert!(
                Authority::ApiManager
                    .may_change(&management, change)
                    .is_err()
            );
        }
        assert!(
            Authority::ApiManager
                .may_grant(&plain.scopes, false)
                .is_ok()
        );
        assert!(
            Authority::ApiManager
                .may_grant(&Scopes::empty(), true)
                .is_err()
        );
    }

    #[test]
    fn a_management_key_acts_only_within_its_own_scopes() {
        let actor = key(1, "api_users:write products:write", false);
        let weaker = user(2, "products:read", false);
        let stronger = user(3, "products:read orders:read", false);
        let other_manager = user(4, "api_users:read", true);
        for change in ALL {
            assert!(actor.may_change(&weaker, change).is_ok(), "{change:?}");
            assert!(actor.may_change(&stronger, change).is_err(), "{change:?}");
            assert!(
                actor.may_change(&other_manager, change).is_err(),
                "{change:?}"
            );
        }
        assert!(actor.may_grant(&weaker.scopes, false).is_ok());
        assert!(actor.may_grant(&stronger.scopes, false).is_err());
        assert!(actor.may_grant(&weaker.scopes, true).is_err());
    }

    #[test]
    fn a_read_only_management_key_changes_nothing() {
        let reader = key(1, "api_users:read products:write", true);
        let target = user(2, "", false);
        for change in ALL {
            assert!(reader.may_change(&target, change).is_err());
        }
        assert!(reader.may_grant(&Scopes::empty(), false).is_err());
    }

    #[test]
    fn a_management_key_rotates_itself_but_stops_itself_only_when_confirmed() {
        let me = user(1, "api_users:write", true);
        let unconfirmed = key(1, "api_users:write", false);
        let confirmed = key(1, "api_users:write", true);
        for change in [
            Change::Rotate,
            Change::Sessions,
            Change::Status(Status::Enabled),
        ] {
            assert!(unconfirmed.may_change(&me, change).is_ok(), "{change:?}");
        }
        for change in [Change::Status(Status::Disabled), Change::Delete] {
            assert!(matches!(
                unconfirmed.may_change(&me, change),
                Err(ServiceError::Unconfirmed(_))
            ));
            assert!(confirmed.may_change(&me, change).is_ok());
        }
        assert!(matches!(
            confirmed.may_change(&me, Change::Settings),
            Err(ServiceError::Forbidden(_))
        ));
    }
}
