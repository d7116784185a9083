//! What can be done to API users, in one place for the CLI, the console and the management
//! API: each change is validated here, audited, and made in one transaction by the store.

mod activity;
pub mod admins;
pub mod authority;
mod keys;
mod leaks;
pub mod password;
mod requests;

pub use authority::Change;
pub use leaks::{ExposedKey, LEAK_REPORT_ACTOR};
pub use requests::{
    CreateApiUser, IssuedKey, KeySource, NewExpiry, Result, ServiceError, UpdateApiUser,
    grace_choice,
};

use crate::clock::SharedClock;
use crate::domain::admin::{Actor, AuditEntry};
use crate::domain::api_key::{ApiKey, KeyError};
use crate::domain::api_user::{
    ApiUser, ApiUserChanges, ApiUserSummary, DEFAULT_RATE_LIMIT, NewApiUser, NewKey, Status,
};
use crate::domain::catalog::PageRequest;
use crate::domain::ip_rule::IpRule;
use crate::domain::scope::Scopes;
use crate::domain::username::Username;
use crate::domain::validation::{Errors, FieldError};
use crate::store::Db;
use keys::within_issuer;
use requests::{check_description, check_management, check_rate_limit, parse_rules};
use serde_json::json;
use time::{Duration, OffsetDateTime};

#[derive(Clone)]
pub struct Credentials {
    db: Db,
    clock: SharedClock,
}

/// What a roll of the key a caller saw as current did.
#[derive(Debug)]
pub enum Roll {
    Issued(IssuedKey),
    /// The key the caller saw is no longer the current one (another roll came first, or the
    /// same form was sent again): nothing was rolled.
    AlreadyRolled(ApiUser),
}

impl Credentials {
    pub fn new(db: Db, clock: SharedClock) -> Self {
        Self { db, clock }
    }

    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    fn audit(
        &self,
        actor: &Actor,
        action: &str,
        target: &str,
        details: serde_json::Value,
    ) -> AuditEntry {
        actor.audit(self.clock.now(), action, target, details)
    }

    fn new_key(&self, source: KeySource, expires_in: Option<Duration>) -> Result<(ApiKey, NewKey)> {
        let key = match source {
            KeySource::Generate { length } => ApiKey::generate(length).map_err(|e| match e {
                KeyError::Length => ServiceError::invalid("key_length", e.to_string()),
                other => ServiceError::invalid("key", other.to_string()),
            })?,
            KeySource::Import(key) => key,
        };
        if let Some(expires_in) = expires_in
            && expires_in <= Duration::ZERO
        {
            return Err(ServiceError::invalid(
                "expires",
                "must be a duration in the future, such as 90d",
            ));
        }
        let stored = NewKey {
            hash: key.hash(),
            hint: key.hint(),
            imported: matches!(key.shape(), crate::domain::api_key::KeyShape::Imported),
            expires_at: expires_in.map(|d| self.clock.now() + d),
            issued_by: None,
        };
        Ok((key, stored))
    }

    /// The API user `request` asks for, or every field that is wrong with it (all at once,
    /// so a form can show them together). Its key is checked when it is made.
    pub fn new_user(request: &CreateApiUser) -> std::result::Result<NewApiUser, Vec<FieldError>> {
        let mut errors = Errors::new();
        let username = errors.check("username", Username::parse(request.username.trim()));
        let description = check_description(&mut errors, &request.description);
        let scopes = errors
            .check("scopes", Scopes::parse(&request.scopes))
            .unwrap_or_default();
        check_management(&mut errors, &scopes, request.management);
        let ips = parse_rules(&mut errors, "ips", &request.ips);
        let rate_limit = request.rate_limit_per_minute.unwrap_or(DEFAULT_RATE_LIMIT);
        check_rate_limit(&mut errors, rate_limit);
        match (errors.finish(), username) {
            (Ok(()), Some(username)) => Ok(NewApiUser {
                username,
                description,
                environment: request.environment,
                status: request.status,
                scopes,
                rate_limit_per_minute: rate_limit,
                management: request.management,
                ips,
            }),
            (Err(details), _) => Err(details),
            (Ok(()), None) => Err(vec![FieldError {
                field: "username".to_owned(),
                message: "is required".to_owned(),
            }]),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(username = %request.username))]
    pub async fn create(&self, actor: &Actor, request: CreateApiUser) -> Result<IssuedKey> {
        let user = Self::new_user(&request).map_err(ServiceError::Invalid)?;
        actor
            .authority
            .may_grant(&user.scopes, request.management)?;
        let expires_in = match request.expires_in {
            NewExpiry::In(duration) => Some(duration),
            NewExpiry::Never | NewExpiry::AsBefore => None,
        };
        let (key, mut stored) = self.new_key(request.key, expires_in)?;
        within_issuer(
            actor,
            &mut stored,
            request.expires_in != NewExpiry::AsBefore,
        )?;
        let audit = self.audit(
            actor,
            "api_user.create",
            user.username.as_str(),
            json!({
                "environment": user.environment,
                "status": user.status,
                "scopes": user.scopes,
                "ips": user.ips,
                "rate_limit_per_minute": user.rate_limit_per_minute,
                "management": user.management,
                "key_hint": stored.hint,
                "key_imported": stored.imported,
                "key_expires_at": stored.expires_at.map(crate::clock::rfc3339),
            }),
        );
        self.db
            .create_api_user(&user, &stored, self.clock.now(), &audit)
            .await?;
        let user = self.get(user.username.as_str()).await?;
        Ok(IssuedKey {
            user,
            key,
            stopped_now: Vec::new(),
        })
    }

    #[tracing::instrument(level = "debug", skip_all, fields(%username))]
    pub async fn get(&self, username: &str) -> Result<ApiUser> {
        self.db
            .api_user(username)
            .await?
            .ok_or_else(|| ServiceError::NoSuchUser(username.to_owned()))
    }

    /// Every API user matching `search`, by username.
    pub async fn list(&self, search: Option<&str>) -> Result<Vec<ApiUserSummary>> {
        self.list_users(search, None).await
    }

    /// One page of the API users matching `search`, oldest first.
    pub async fn list_page(
        &self,
        search: Option<&str>,
        page: PageRequest,
    ) -> Result<Vec<ApiUserSummary>> {
        self.list_users(search, Some(page)).await
    }

    async fn list_users(
        &self,
        search: Option<&str>,
        page: Option<PageRequest>,
    ) -> Result<Vec<ApiUserSummary>> {
        let since = self.clock.now() - Duration::hours(24);
        Ok(self
            .db
            .list_api_users(search.filter(|s| !s.trim().is_empty()), since, page)
            .await?)
    }

    /// The user, when `actor` may make `change` to it (also for pages that offer the change).
    pub async fn changeable(
        &self,
        actor: &Actor,
        username: &str,
        change: Change,
    ) -> Result<ApiUser> {
        let user = self.get(username).await?;
        actor.authority.may_change(&user, change)?;
        Ok(user)
    }

    /// The changes `update` asks of `user`, or every field that is wrong with them (all at
    /// once, so a form can show them together).
    pub fn changes(
        user: &ApiUser,
        update: &UpdateApiUser,
    ) -> std::result::Result<ApiUserChanges, Vec<FieldError>> {
        let mut errors = Errors::new();
        let description = update
            .description
            .as_deref()
            .map(|d| check_description(&mut errors, d));
        let scopes = match &update.scopes {
            Some(list) => errors.check("scopes", Scopes::parse(list)),
            None => None,
        };
        let management = update.management.unwrap_or(user.management);
        check_management(&mut errors, &scopes.unwrap_or(user.scopes), management);
        let ips = update
            .ips
            .as_ref()
            .map(|rules| parse_rules(&mut errors, "ips", rules));
        if let Some(limit) = update.rate_limit_per_minute {
            check_rate_limit(&mut errors, limit);
        }
        errors.into_result(|| ApiUserChanges {
            description,
            environment: update.environment,
            status: update.status,
            scopes,
            rate_limit_per_minute: update.rate_limit_per_minute,
            management: update.management,
            ips,
        })
    }

    #[tracing::instrument(level = "debug", skip_all, fields(%username))]
    pub async fn update(
        &self,
        actor: &Actor,
        username: &str,
        update: UpdateApiUser,
    ) -> Result<ApiUser> {
        let user = self.get(username).await?;
        let settings = update.description.is_some()
            || update.environment.is_some()
            || update.scopes.is_some()
            || update.ips.is_some()
            || update.rate_limit_per_minute.is_some()
            || update.management.is_some();
        if settings || update.status.is_none() {
            actor.authority.may_change(&user, Change::Settings)?;
        }
        if let Some(status) = update.status {
            actor.authority.may_change(&user, Change::Status(status))?;
        }
        let changes = Self::changes(&user, &update).map_err(ServiceError::Invalid)?;
        if changes.scopes.is_some() || update.management == Some(true) {
            actor.authority.may_grant(
                &changes.scopes.unwrap_or_default(),
                update.management == Some(true),
            )?;
        }
        let mut details = serde_json::Map::new();
        let mut note =
            |field: &str, before: serde_json::Value, after: Option<serde_json::Value>| {
                if let Some(after) = after
                    && after != before
                {
                    details.insert(field.to_owned(), json!({"from": before, "to": after}));
                }
            };
        note(
            "description",
            json!(user.description),
            changes.description.as_ref().map(|v| json!(v)),
        );
        note(
            "environment",
            json!(user.environment),
            changes.environment.map(|v| json!(v)),
        );
        note(
            "status",
            json!(user.status),
            changes.status.map(|v| json!(v)),
        );
        note(
            "scopes",
            json!(user.scopes),
            changes.scopes.map(|v| json!(v)),
        );
        note(
            "ips",
            json!(user.ips),
            changes.ips.as_ref().map(|v| json!(v)),
        );
        note(
            "rate_limit_per_minute",
            json!(user.rate_limit_per_minute),
            changes.rate_limit_per_minute.map(|v| json!(v)),
        );
        note(
            "management",
            json!(user.management),
            changes.management.map(|v| json!(v)),
        );
        if details.is_empty() {
            // Nothing differs from what is stored: no write, and no audit entry saying nothing.
            return Ok(user);
        }
        let audit = self.audit(
            actor,
            "api_user.update",
            username,
            serde_json::Value::Object(details),
        );
        self.db
            .update_api_user(user.id, &changes, self.clock.now(), &audit)
            .await?;
        self.get(username).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(%username))]
    pub async fn set_status(
        &self,
        actor: &Actor,
        username: &str,
        status: Status,
    ) -> Result<ApiUser> {
        self.update(
            actor,
            username,
            UpdateApiUser {
                status: Some(status),
                ..Default::default()
            },
        )
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(%username))]
    pub async fn set_scopes(
        &self,
        actor: &Actor,
        username: &str,
        scopes: Vec<String>,
    ) -> Result<ApiUser> {
        self.update(
            actor,
            username,
            UpdateApiUser {
                scopes: Some(scopes),
                ..Default::default()
            },
        )
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(%username))]
    pub async fn delete(&self, actor: &Actor, username: &str) -> Result<ApiUser> {
        let user = self.changeable(actor, username, Change::Delete).await?;
        let open_sessions = self
            .db
            .sessions(user.id, Some(self.clock.now()))
            .await?
            .len();
        let audit = self.audit(
            actor,
            "api_user.delete",
            username,
            json!({
                "last_used_at": user.last_used_at.map(crate::clock::rfc3339),
                "last_used_ip": user.last_used_ip,
                "open_sessions": open_sessions,
            }),
        );
        self.db.delete_api_user(user.id, &audit).await?;
        Ok(user)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(%username))]
    pub async fn add_ip(
        &self,
        actor: &Actor,
        username: &str,
        rule: &str,
    ) -> Result<(ApiUser, bool)> {
        let user = self.changeable(actor, username, Change::Settings).await?;
        let rule = IpRule::parse(rule).map_err(|e| ServiceError::invalid("rule", e.to_string()))?;
        let audit = self.audit(actor, "api_user.ip_add", username, json!({ "rule": rule }));
        let added = self
            .db
            .add_ip_rule(user.id, &rule, self.clock.now(), &audit)
            .await?;
        Ok((self.get(username).await?, added))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(%username))]
    pub async fn remove_ip(
        &self,
        actor: &Actor,
        username: &str,
        rule: &str,
    ) -> Result<(ApiUser, bool)> {
        let user = self.changeable(actor, username, Change::Settings).await?;
        let rule = IpRule::parse(rule).map_err(|e| ServiceError::invalid("rule", e.to_string()))?;
        let audit = self.audit(
            actor,
            "api_user.ip_remove",
            username,
            json!({ "rule": rule }),
        );
        let removed = self
            .db
            .remove_ip_rule(user.id, &rule, self.clock.now(), &audit)
            .await?;
        Ok((self.get(username).await?, removed))
    }
}
