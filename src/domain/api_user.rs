//! API users (OpenCart's "APIs"), their keys and sessions, as the rest of the program sees them.

use super::ids::{ApiKeyId, ApiUserId, SessionId};
use super::ip_rule::IpRule;
use super::scope::Scopes;
use super::secret::SecretHash;
use super::username::Username;
use serde::Serialize;
use std::net::IpAddr;
use std::sync::Arc;
use time::OffsetDateTime;

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)*
                    _ => Err(format!(
                        "`{s}` is not one of {}",
                        [$($text),*].join(", ")
                    )),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        // By hand, not derived: serde's derived enum reads a number or `true` as broken
        // JSON (a 400 for the whole body), where it is a wrong value of this field.
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl serde::de::Visitor<'_> for Visitor {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        write!(f, "one of {}", [$(concat!("`", $text, "`")),*].join(", "))
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        match v {
                            $($text => Ok($name::$variant),)*
                            _ => Err(E::unknown_variant(v, &[$($text),*])),
                        }
                    }
                }
                deserializer.deserialize_str(Visitor)
            }
        }
    };
}
pub(crate) use text_enum;

text_enum!(Environment { Production = "production", Staging = "staging", Development = "development" });
text_enum!(
    /// Whether an API user's credentials work at all.
    Status { Enabled = "enabled", Disabled = "disabled" }
);

pub const DEFAULT_RATE_LIMIT: u32 = 600;
pub const MAX_RATE_LIMIT: u32 = 1_000_000;

/// Everything about one API user except its secrets.
#[derive(Debug, Clone, Serialize)]
pub struct ApiUser {
    pub id: ApiUserId,
    pub username: String,
    pub description: String,
    pub environment: Environment,
    pub status: Status,
    pub scopes: Scopes,
    pub rate_limit_per_minute: u32,
    pub management: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    pub last_used_ip: Option<String>,
    pub ips: Vec<IpRule>,
    pub keys: Vec<KeyInfo>,
}

impl ApiUser {
    /// The key new calls should use: the newest one that still works.
    pub fn current_key(&self, now: OffsetDateTime) -> Option<&KeyInfo> {
        self.keys
            .iter()
            .filter(|k| k.is_live(now))
            .max_by_key(|k| k.id)
    }

    /// Warnings an admin should see next to this user.
    pub fn warnings(&self, now: OffsetDateTime) -> Vec<&'static str> {
        let mut warnings = ip_warnings(&self.ips);
        if self.scopes.is_empty() {
            warnings.push("No scope is granted: the key can call only /api/v1/me.");
        }
        if self.current_key(now).is_none() {
            warnings.push("No live key: roll the key to issue a new one.");
        }
        warnings
    }
}

/// Warnings an admin should see next to an IP list.
pub fn ip_warnings(ips: &[IpRule]) -> Vec<&'static str> {
    let mut warnings = Vec::new();
    if ips.is_empty() {
        warnings.push("The IP list is empty: no address may use this key.");
    }
    if ips.iter().any(IpRule::is_any) {
        warnings.push("`*` allows every address on the internet.");
    }
    if ips.iter().any(IpRule::admits_all_ipv4) {
        warnings.push("`0.0.0.0/0` allows every IPv4 address on the internet.");
    }
    if ips.iter().any(IpRule::admits_all_ipv6) {
        warnings.push("`::/0` allows every IPv6 address on the internet.");
    }
    warnings
}

/// The visible side of a key: never the key, only its hint and dates.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub id: ApiKeyId,
    pub hint: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    pub revoked_reason: Option<String>,
    pub imported: bool,
}

impl KeyInfo {
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|t| t > now)
    }

    pub fn state(&self, now: OffsetDateTime) -> &'static str {
        match (self.revoked_at, self.expires_at) {
            (Some(_), _) => "revoked",
            (None, Some(t)) if t <= now => "expired",
            _ => "live",
        }
    }
}

/// A new API user, validated.
#[derive(Debug, Clone)]
pub struct NewApiUser {
    pub username: Username,
    pub description: String,
    pub environment: Environment,
    pub status: Status,
    pub scopes: Scopes,
    pub rate_limit_per_minute: u32,
    pub management: bool,
    pub ips: Vec<IpRule>,
}

/// A new key's stored form.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub hash: SecretHash,
    pub hint: String,
    pub imported: bool,
    pub expires_at: Option<OffsetDateTime>,
    /// The key that issued it: a management key rolling itself (none for an administrator,
    /// the command line, a creation).
    pub issued_by: Option<ApiKeyId>,
}

/// Changes to an API user's settings; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ApiUserChanges {
    pub description: Option<String>,
    pub environment: Option<Environment>,
    pub status: Option<Status>,
    pub scopes: Option<Scopes>,
    pub rate_limit_per_minute: Option<u32>,
    pub management: Option<bool>,
    pub ips: Option<Vec<IpRule>>,
}

/// A one-line view for lists.
#[derive(Debug, Clone, Serialize)]
pub struct ApiUserSummary {
    #[serde(flatten)]
    pub user: ApiUser,
    pub calls_24h: i64,
    pub refused_24h: i64,
}

/// The credential record the auth pipeline works from.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: ApiUserId,
    pub username: Arc<str>,
    pub status: Status,
    pub scopes: Scopes,
    pub rate_limit_per_minute: u32,
    pub ips: Vec<IpRule>,
}

#[derive(Debug, Clone)]
pub struct AuthKey {
    pub id: ApiKeyId,
    pub api_user_id: ApiUserId,
    pub hash: SecretHash,
    pub hint: Arc<str>,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

impl AuthKey {
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

#[derive(Debug, Clone)]
pub struct NewSession {
    /// Reserved before the session is written: its token carries it.
    pub id: SessionId,
    pub api_user_id: ApiUserId,
    pub api_key_id: ApiKeyId,
    pub token_hash: SecretHash,
    pub ip: IpAddr,
    pub created_at: OffsetDateTime,
    pub idle_timeout_s: i64,
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionRecord {
    pub id: SessionId,
    pub api_user_id: ApiUserId,
    pub api_key_id: ApiKeyId,
    #[serde(skip)]
    pub token_hash: SecretHash,
    pub ip: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    pub idle_timeout_s: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

impl SessionRecord {
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none()
            && self.expires_at > now
            && self.last_seen_at + time::Duration::seconds(self.idle_timeout_s) > now
    }
}
