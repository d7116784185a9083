//! Admin users of the console: creation, passwords, and the first-run bootstrap.

use super::password::{self, PasswordError};
use crate::clock::SharedClock;
use crate::domain::admin::{Actor, AdminUser, AuditEntry, Role};
use crate::domain::secret::{Secret, random_base62};
use crate::domain::username::Username;
use crate::store::{Db, StoreError};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("username: {0}")]
    Username(#[from] crate::domain::username::UsernameError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("no admin user is named `{0}`")]
    NoSuchAdmin(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone)]
pub struct Admins {
    db: Db,
    clock: SharedClock,
}

impl Admins {
    pub fn new(db: Db, clock: SharedClock) -> Self {
        Self { db, clock }
    }

    pub async fn create(
        &self,
        actor: &Actor,
        username: &str,
        role: Role,
        password: Secret,
    ) -> Result<AdminUser, AdminError> {
        let username = Username::parse(username.trim())?;
        let hash = password::hash(password).await?;
        let audit = AuditEntry {
            at: self.clock.now(),
            actor: actor.name.clone(),
            actor_ip: actor.ip.clone(),
            action: "admin.create".to_owned(),
            target: username.to_string(),
            details: json!({ "role": role }),
        };
        self.db
            .create_admin(username.as_str(), &hash, role, self.clock.now(), &audit)
            .await?;
        self.get(username.as_str()).await
    }

    pub async fn get(&self, username: &str) -> Result<AdminUser, AdminError> {
        self.db
            .admin_credentials(username)
            .await?
            .map(|(admin, _)| admin)
            .ok_or_else(|| AdminError::NoSuchAdmin(username.to_owned()))
    }

    /// Changes an admin's role or status; disabling signs the admin out everywhere.
    pub async fn update(
        &self,
        actor: &Actor,
        username: &str,
        role: Option<Role>,
        status: Option<crate::domain::api_user::Status>,
    ) -> Result<(), AdminError> {
        let admin = self.get(username).await?;
        let audit = AuditEntry {
            at: self.clock.now(),
            actor: actor.name.clone(),
            actor_ip: actor.ip.clone(),
            action: "admin.update".to_owned(),
            target: username.to_owned(),
            details: json!({ "role": role, "status": status }),
        };
        self.db.update_admin(admin.id, role, status, &audit).await?;
        Ok(())
    }

    pub async fn set_password(
        &self,
        actor: &Actor,
        username: &str,
        password: Secret,
    ) -> Result<(), AdminError> {
        let admin = self.get(username).await?;
        let hash = password::hash(password).await?;
        let audit = AuditEntry {
            at: self.clock.now(),
            actor: actor.name.clone(),
            actor_ip: actor.ip.clone(),
            action: "admin.password".to_owned(),
            target: username.to_owned(),
            details: json!({}),
        };
        self.db.set_admin_password(admin.id, &hash, &audit).await?;
        Ok(())
    }

    /// Checks a console sign-in; `None` for any failure, in about the same time.
    pub async fn verify(
        &self,
        username: &str,
        password: Secret,
    ) -> Result<Option<AdminUser>, AdminError> {
        let found = self.db.admin_credentials(username).await?;
        let (admin, stored) = match found {
            Some((admin, hash)) => (Some(admin), Some(hash)),
            None => (None, None),
        };
        let ok = password::verify(password, stored).await;
        Ok(admin.filter(|a| ok && a.status == crate::domain::api_user::Status::Enabled))
    }

    /// On a database without admins, creates `admin` with `preset` or a random password, and
    /// returns the random one so it can be printed once.
    pub async fn bootstrap(&self, preset: Option<Secret>) -> Result<Option<Bootstrap>, AdminError> {
        if self.db.admin_count().await? > 0 {
            return Ok(None);
        }
        let (password, generated) = match preset {
            Some(p) => (p, false),
            None => (Secret::new(random_base62(20)), true),
        };
        let created = self
            .create(
                &Actor::system(),
                "admin",
                Role::Administrator,
                password.clone(),
            )
            .await;
        match created {
            Ok(_) => Ok(Some(Bootstrap {
                username: "admin".to_owned(),
                password: generated.then_some(password),
            })),
            // Another process created it first.
            Err(AdminError::Store(StoreError::Conflict { .. })) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The first admin, made on first run.
#[derive(Debug)]
pub struct Bootstrap {
    pub username: String,
    /// Present when the password was generated: print it once.
    pub password: Option<Secret>,
}
