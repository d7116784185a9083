//! Rows of admin users and their console sessions.

use crate::domain::admin::{AdminSession, AdminUser};
use crate::domain::ids::AdminUserId;
use crate::store::Result;
use crate::store::columns::{from_ts, parse_col};
use sqlx::FromRow;

#[derive(FromRow)]
pub(crate) struct AdminRow {
    id: i64,
    username: String,
    password_hash: String,
    role: String,
    status: String,
    created_at: i64,
}

impl AdminRow {
    /// The admin user and their password hash.
    pub(crate) fn into_admin(self) -> Result<(AdminUser, String)> {
        Ok((
            AdminUser {
                id: AdminUserId(self.id),
                username: self.username,
                role: parse_col(&self.role, "role")?,
                status: parse_col(&self.status, "status")?,
                created_at: from_ts(self.created_at),
            },
            self.password_hash,
        ))
    }
}

/// A console session with its admin user, as [`ADMIN_SESSION_COLUMNS`] reads them.
#[derive(FromRow)]
pub(crate) struct AdminSessionRow {
    session_id: i64,
    ip: String,
    session_created_at: i64,
    last_seen_at: i64,
    expires_at: i64,
    #[sqlx(flatten)]
    admin: AdminRow,
}

/// The columns of `admin_sessions s JOIN admin_users a`.
pub(crate) const ADMIN_SESSION_COLUMNS: &str = "s.id AS session_id, s.ip, \
     s.created_at AS session_created_at, s.last_seen_at, s.expires_at, \
     a.id, a.username, a.password_hash, a.role, a.status, a.created_at";

impl AdminSessionRow {
    pub(crate) fn into_session(self) -> Result<AdminSession> {
        let (admin, _) = self.admin.into_admin()?;
        Ok(AdminSession {
            id: self.session_id,
            admin,
            ip: self.ip,
            created_at: from_ts(self.session_created_at),
            last_seen_at: from_ts(self.last_seen_at),
            expires_at: from_ts(self.expires_at),
        })
    }
}
