//! Admin users of the console, who acts on API users with what authority, and the audit log
//! of what they (the CLI, and management keys) changed.

use super::api_user::text_enum;
use super::ids::{AdminUserId, ApiKeyId, ApiUserId};
use super::scope::Scopes;
use serde::Serialize;
use time::OffsetDateTime;

text_enum!(
    /// `administrator` does everything; `api_manager` manages API users but not admins;
    /// `viewer` only reads.
    Role { Administrator = "administrator", ApiManager = "api_manager", Viewer = "viewer" }
);

#[derive(Debug, Clone, Serialize)]
pub struct AdminUser {
    pub id: AdminUserId,
    pub username: String,
    pub role: Role,
    pub status: super::api_user::Status,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Who made a change: an admin in the console, the CLI, or a management key. The audit log
/// names it by `name`: `admin:NAME`, `cli:USER`, `api:USERNAME` or `system`.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    pub ip: Option<String>,
    /// What it may do to API users; the credentials service enforces it.
    pub authority: Authority,
}

/// What an actor may do to API users (see `credentials::authority` for the rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authority {
    /// Everything: the console's administrators, the CLI (whoever runs it holds the database)
    /// and the program itself.
    Full,
    /// The console's `api_manager`: changes API users, but neither makes nor changes
    /// management keys.
    ApiManager,
    /// The console's `viewer`: reads only.
    ReadOnly,
    /// A management key on the Management API: the `api_manager` rules, and it grants only
    /// scopes it holds itself.
    Key {
        id: ApiUserId,
        /// The key making the call (or the key its session was made with), and its hint.
        key: ApiKeyId,
        key_hint: String,
        scopes: Scopes,
        /// The request confirmed that the key may disable or delete itself.
        self_lockout_confirmed: bool,
        /// When the key making the call expires: it issues no key that outlives it.
        key_expires_at: Option<OffsetDateTime>,
    },
}

impl Authority {
    /// The key making the call, when it is one of `user`'s keys (a management key acting on
    /// itself).
    pub fn calling_key_of(&self, user: ApiUserId) -> Option<ApiKeyId> {
        match self {
            Authority::Key { id, key, .. } if *id == user => Some(*key),
            _ => None,
        }
    }
}

impl Actor {
    pub fn cli() -> Self {
        let home_name = || {
            std::env::var("HOME").ok().and_then(|h| {
                std::path::Path::new(&h)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
        };
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .ok()
            .or_else(home_name)
            .unwrap_or_else(|| "unknown".to_owned());
        Self::full(format!("cli:{user}"))
    }

    pub fn system() -> Self {
        Self::full("system".to_owned())
    }

    /// The program acting on its own behalf under another name (`demo`).
    pub fn full(name: String) -> Self {
        Self {
            name,
            ip: None,
            authority: Authority::Full,
        }
    }

    /// An admin signed in to the console, with the authority of its role.
    pub fn admin(username: &str, role: Role, ip: String) -> Self {
        Self {
            name: format!("admin:{username}"),
            ip: Some(ip),
            authority: match role {
                Role::Administrator => Authority::Full,
                Role::ApiManager => Authority::ApiManager,
                Role::Viewer => Authority::ReadOnly,
            },
        }
    }

    /// A management key calling the Management API.
    pub fn api_key(
        username: &str,
        id: ApiUserId,
        (key, key_hint): (ApiKeyId, &str),
        scopes: Scopes,
        ip: String,
        self_lockout_confirmed: bool,
        key_expires_at: Option<OffsetDateTime>,
    ) -> Self {
        Self {
            name: format!("api:{username}"),
            ip: Some(ip),
            authority: Authority::Key {
                id,
                key,
                key_hint: key_hint.to_owned(),
                scopes,
                self_lockout_confirmed,
                key_expires_at,
            },
        }
    }

    /// The audit entry of a change this actor made at `at`.
    pub fn audit(
        &self,
        at: OffsetDateTime,
        action: &str,
        target: &str,
        details: serde_json::Value,
    ) -> AuditEntry {
        let mut details = details;
        // A user's two keys are both live during a roll's grace: say which one acted.
        if let (Authority::Key { key_hint, .. }, Some(fields)) =
            (&self.authority, details.as_object_mut())
        {
            fields.insert("by_key_hint".to_owned(), key_hint.as_str().into());
        }
        AuditEntry {
            at,
            actor: self.name.clone(),
            actor_ip: self.ip.clone(),
            action: action.to_owned(),
            target: target.to_owned(),
            details,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub at: OffsetDateTime,
    pub actor: String,
    pub actor_ip: Option<String>,
    pub action: String,
    pub target: String,
    /// A JSON object with what changed; never a secret.
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub actor: String,
    pub actor_ip: Option<String>,
    pub action: String,
    pub target: String,
    pub details: serde_json::Value,
}

/// A signed-in admin in the console.
#[derive(Debug, Clone)]
pub struct AdminSession {
    pub id: i64,
    pub admin: AdminUser,
    pub ip: String,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct NewAdminSession {
    pub admin_user_id: AdminUserId,
    pub token_hash: crate::domain::secret::SecretHash,
    pub ip: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

impl Role {
    /// Whether this role may change API users (their keys, IP rules, scopes, sessions).
    pub fn manages_api_users(self) -> bool {
        matches!(self, Role::Administrator | Role::ApiManager)
    }

    /// Whether this role may manage admin users and read the audit log.
    pub fn manages_admins(self) -> bool {
        matches!(self, Role::Administrator)
    }
}
