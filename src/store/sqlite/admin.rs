use super::{SqliteStore, from_ts, ts, unique_violation};
use crate::domain::admin::{
    AdminSession, AdminUser, AuditEntry, AuditRecord, NewAdminSession, Role,
};
use crate::domain::api_user::Status;
use crate::domain::ids::AdminUserId;
use crate::domain::secret::SecretHash;
use crate::store::rows::admin::{ADMIN_SESSION_COLUMNS, AdminRow, AdminSessionRow};
use crate::store::{AdminStore, Result, StoreError};
use async_trait::async_trait;
use sqlx::SqliteConnection;
use time::OffsetDateTime;

#[async_trait]
impl AdminStore for SqliteStore {
    async fn admin_count(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM admin_users")
            .fetch_one(&self.read)
            .await?)
    }

    async fn create_admin(
        &self,
        username: &str,
        password_hash: &str,
        role: Role,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<AdminUserId> {
        let mut tx = self.begin_write().await?;
        let id = sqlx::query(
            "INSERT INTO admin_users (username, password_hash, role, status, created_at, updated_at) \
             VALUES (?, ?, ?, 'enabled', ?, ?)",
        )
        .bind(username)
        .bind(password_hash)
        .bind(role.as_str())
        .bind(ts(now))
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_violation(e, "username", "an admin user with this username already exists"))?
        .last_insert_rowid();
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(AdminUserId(id))
    }

    async fn admin_credentials(&self, username: &str) -> Result<Option<(AdminUser, String)>> {
        let row: Option<AdminRow> = sqlx::query_as(
            "SELECT id, username, password_hash, role, status, created_at FROM admin_users WHERE username = ?",
        )
        .bind(username)
        .fetch_optional(&self.read)
        .await?;
        row.map(AdminRow::into_admin).transpose()
    }

    async fn set_admin_password(
        &self,
        id: AdminUserId,
        password_hash: &str,
        audit: &AuditEntry,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let updated =
            sqlx::query("UPDATE admin_users SET password_hash = ?, updated_at = ? WHERE id = ?")
                .bind(password_hash)
                .bind(ts(audit.at))
                .bind(id.0)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if updated == 0 {
            return Err(StoreError::NotFound);
        }
        // A new password signs the admin out everywhere: whoever had the old one is out too.
        sqlx::query("UPDATE admin_sessions SET revoked_at = ? WHERE admin_user_id = ? AND revoked_at IS NULL")
            .bind(ts(audit.at))
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_admins(&self) -> Result<Vec<AdminUser>> {
        let rows: Vec<AdminRow> = sqlx::query_as(
            "SELECT id, username, password_hash, role, status, created_at FROM admin_users ORDER BY username",
        )
        .fetch_all(&self.read)
        .await?;
        rows.into_iter()
            .map(|row| row.into_admin().map(|(admin, _)| admin))
            .collect()
    }

    async fn update_admin(
        &self,
        id: AdminUserId,
        role: Option<Role>,
        status: Option<Status>,
        audit: &AuditEntry,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE admin_users SET role = coalesce(?, role), status = coalesce(?, status), updated_at = ? WHERE id = ?",
        )
        .bind(role.map(Role::as_str))
        .bind(status.map(Status::as_str))
        .bind(ts(audit.at))
        .bind(id.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(StoreError::NotFound);
        }
        // The console must always keep one enabled administrator.
        let administrators: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM admin_users WHERE role = 'administrator' AND status = 'enabled'",
        )
        .fetch_one(&mut *tx)
        .await?;
        if administrators == 0 {
            return Err(StoreError::conflict(
                "role",
                "the last enabled administrator must stay one",
            ));
        }
        // A disabled admin is signed out everywhere at once.
        if status == Some(Status::Disabled) {
            sqlx::query("UPDATE admin_sessions SET revoked_at = ? WHERE admin_user_id = ? AND revoked_at IS NULL")
                .bind(ts(audit.at))
                .bind(id.0)
                .execute(&mut *tx)
                .await?;
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_admin_session(&self, session: &NewAdminSession) -> Result<i64> {
        Ok(sqlx::query(
            "INSERT INTO admin_sessions (admin_user_id, token_hash, ip, created_at, last_seen_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(session.admin_user_id.0)
        .bind(session.token_hash.as_bytes())
        .bind(&session.ip)
        .bind(ts(session.created_at))
        .bind(ts(session.created_at))
        .bind(ts(session.expires_at))
        .execute(&mut *self.write_connection().await?)
        .await?
        .last_insert_rowid())
    }

    async fn admin_session(
        &self,
        hash: &SecretHash,
        now: OffsetDateTime,
    ) -> Result<Option<AdminSession>> {
        let row: Option<AdminSessionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ADMIN_SESSION_COLUMNS} \
             FROM admin_sessions s JOIN admin_users a ON a.id = s.admin_user_id \
             WHERE s.token_hash = ? AND s.revoked_at IS NULL AND s.expires_at > ?"
        )))
        .bind(hash.as_bytes())
        .bind(ts(now))
        .fetch_optional(&self.read)
        .await?;
        row.map(AdminSessionRow::into_session).transpose()
    }

    async fn touch_admin_session(&self, id: i64, now: OffsetDateTime) -> Result<()> {
        sqlx::query("UPDATE admin_sessions SET last_seen_at = ? WHERE id = ?")
            .bind(ts(now))
            .bind(id)
            .execute(&mut *self.write_connection().await?)
            .await?;
        Ok(())
    }

    async fn revoke_admin_session(&self, id: i64, now: OffsetDateTime) -> Result<()> {
        sqlx::query("UPDATE admin_sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(ts(now))
            .bind(id)
            .execute(&mut *self.write_connection().await?)
            .await?;
        Ok(())
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<()> {
        let mut tx = self.begin_write().await?;
        insert_audit(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit_log(&self, before_id: Option<i64>, limit: u32) -> Result<Vec<AuditRecord>> {
        let rows: Vec<(i64, i64, String, Option<String>, String, String, String)> = sqlx::query_as(
            "SELECT id, at, actor, actor_ip, action, target, details FROM admin_audit \
             WHERE ?1 IS NULL OR id < ?1 ORDER BY id DESC LIMIT ?2",
        )
        .bind(before_id)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, at, actor, actor_ip, action, target, details)| AuditRecord {
                    id,
                    at: from_ts(at),
                    actor,
                    actor_ip,
                    action,
                    target,
                    details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
                },
            )
            .collect())
    }
}

pub(super) async fn insert_audit(conn: &mut SqliteConnection, entry: &AuditEntry) -> Result<()> {
    sqlx::query("INSERT INTO admin_audit (at, actor, actor_ip, action, target, details) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(ts(entry.at))
        .bind(&entry.actor)
        .bind(&entry.actor_ip)
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(entry.details.to_string())
        .execute(conn)
        .await?;
    Ok(())
}
