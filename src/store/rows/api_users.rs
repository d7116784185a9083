//! Rows of API users and their keys, and their IP rules as stored.

use crate::domain::api_user::{ApiUser, AuthKey, AuthUser, KeyInfo};
use crate::domain::ids::{ApiKeyId, ApiUserId};
use crate::domain::ip_rule::IpRule;
use crate::domain::scope::Scopes;
use crate::domain::secret::SecretHash;
use crate::store::columns::{from_ts, from_ts_opt, parse_col};
use crate::store::{Result, StoreError};
use sqlx::FromRow;

#[derive(FromRow)]
pub(crate) struct UserRow {
    pub(crate) id: i64,
    username: String,
    description: String,
    environment: String,
    status: String,
    scopes: String,
    rate_limit_per_minute: i64,
    management: bool,
    created_at: i64,
    updated_at: i64,
    last_used_at: Option<i64>,
    last_used_ip: Option<String>,
}

#[derive(FromRow)]
pub(crate) struct KeyRow {
    id: i64,
    pub(crate) api_user_id: i64,
    key_hash: Vec<u8>,
    hint: String,
    imported: bool,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    revoked_reason: Option<String>,
}

pub(crate) const USER_COLUMNS: &str = "id, username, description, environment, status, scopes, rate_limit_per_minute, \
     management, created_at, updated_at, last_used_at, last_used_ip";
pub(crate) const KEY_COLUMNS: &str =
    "id, api_user_id, key_hash, hint, imported, created_at, expires_at, revoked_at, revoked_reason";

fn rate_limit(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

impl UserRow {
    pub(crate) fn into_user(self, ips: Vec<IpRule>, keys: Vec<KeyInfo>) -> Result<ApiUser> {
        Ok(ApiUser {
            id: ApiUserId(self.id),
            environment: parse_col(&self.environment, "environment")?,
            status: parse_col(&self.status, "status")?,
            scopes: Scopes::parse([&self.scopes])
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            rate_limit_per_minute: rate_limit(self.rate_limit_per_minute),
            management: self.management,
            created_at: from_ts(self.created_at),
            updated_at: from_ts(self.updated_at),
            last_used_at: from_ts_opt(self.last_used_at),
            last_used_ip: self.last_used_ip,
            username: self.username,
            description: self.description,
            ips,
            keys,
        })
    }

    pub(crate) fn into_auth(self, ips: Vec<IpRule>) -> Result<AuthUser> {
        Ok(AuthUser {
            id: ApiUserId(self.id),
            status: parse_col(&self.status, "status")?,
            scopes: Scopes::parse([&self.scopes])
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            rate_limit_per_minute: rate_limit(self.rate_limit_per_minute),
            username: self.username.into(),
            ips,
        })
    }
}

impl KeyRow {
    pub(crate) fn info(&self) -> KeyInfo {
        KeyInfo {
            id: ApiKeyId(self.id),
            hint: self.hint.clone(),
            created_at: from_ts(self.created_at),
            expires_at: from_ts_opt(self.expires_at),
            revoked_at: from_ts_opt(self.revoked_at),
            revoked_reason: self.revoked_reason.clone(),
            imported: self.imported,
        }
    }

    pub(crate) fn into_auth(self) -> Result<AuthKey> {
        Ok(AuthKey {
            id: ApiKeyId(self.id),
            api_user_id: ApiUserId(self.api_user_id),
            hash: SecretHash::from_slice(&self.key_hash)
                .ok_or_else(|| StoreError::Corrupt("key_hash".into()))?,
            hint: self.hint.into(),
            expires_at: from_ts_opt(self.expires_at),
            revoked_at: from_ts_opt(self.revoked_at),
        })
    }
}

/// A stored IP rule.
pub(crate) fn parse_rule(rule: &str) -> Result<IpRule> {
    IpRule::parse(rule).map_err(|e| StoreError::Corrupt(format!("ip rule: {e}")))
}

/// The stored IP rules of one user, as `SELECT rule` gives them.
pub(crate) fn parse_rules(rows: Vec<(String,)>) -> Result<Vec<IpRule>> {
    rows.into_iter().map(|(rule,)| parse_rule(&rule)).collect()
}
