//! Sessions, their last use, and the hourly purge of what can never be used again.

use super::admin::insert_audit;
use super::{SqliteStore, ts, ts_opt};
use crate::domain::admin::AuditEntry;
use crate::domain::api_user::{NewSession, SessionRecord};
use crate::domain::ids::{ApiUserId, SessionId};
use crate::store::rows::sessions::{SESSION_COLUMNS, SessionRow};
use crate::store::{Result, SessionStore, StoreError, Usage};
use async_trait::async_trait;
use sqlx::Sqlite;
use sqlx::query::QueryScalar;
use sqlx::sqlite::SqliteArguments;
use time::OffsetDateTime;

/// New sessions in one statement, read from one JSONB array: a single round trip to SQLite's
/// thread however many logins the batch holds. Only sessions whose key still belongs to their
/// user, and whose user is enabled, are written, and never over a taken number; the statement
/// returns the numbers written.
pub(super) fn insert_sessions(
    sessions: &[NewSession],
) -> Result<QueryScalar<'static, Sqlite, i64, SqliteArguments>> {
    let batch: Vec<_> = sessions
        .iter()
        .map(|session| {
            (
                session.id.0,
                session.api_user_id.0,
                session.api_key_id.0,
                hex::encode(session.token_hash.as_bytes()),
                session.ip.to_string(),
                ts(session.created_at),
                session.idle_timeout_s,
                ts(session.expires_at),
            )
        })
        .collect();
    let json = serde_json::to_string(&batch).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(sqlx::query_scalar(
        "INSERT INTO api_sessions (id, api_user_id, api_key_id, token_hash, ip, created_at, \
         last_seen_at, idle_timeout_s, expires_at) \
         SELECT value ->> 0, value ->> 1, value ->> 2, unhex(value ->> 3), value ->> 4, \
                value ->> 5, value ->> 5, value ->> 6, value ->> 7 \
         FROM jsonb_each(jsonb(?)) \
         WHERE EXISTS (SELECT 1 FROM api_keys k JOIN api_users u ON u.id = k.api_user_id \
                       WHERE k.id = value ->> 2 AND k.api_user_id = value ->> 1 \
                       AND u.status = 'enabled') \
         ON CONFLICT DO NOTHING \
         RETURNING id",
    )
    .bind(json))
}

/// Makes sure AUTOINCREMENT's counter of session numbers has its row, so it can be raised.
pub(super) const SESSION_COUNTER: &str = "INSERT INTO sqlite_sequence (name, seq) \
     SELECT 'api_sessions', 0 \
     WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'api_sessions')";

#[async_trait]
impl SessionStore for SqliteStore {
    async fn reserve_session_ids(&self, count: u32) -> Result<Vec<SessionId>> {
        // AUTOINCREMENT's counter: SQLite never gives a number at or below it, and a session
        // written with a reserved number leaves it as it is.
        let mut tx = self.begin_write().await?;
        sqlx::query(SESSION_COUNTER).execute(&mut *tx).await?;
        // Migration 7's copy of the table left the counter NULL where the old table had no row
        // in `sqlite_sequence` (no session ever written).
        let last: i64 = sqlx::query_scalar(
            "UPDATE sqlite_sequence \
             SET seq = max(coalesce(seq, 0), coalesce((SELECT max(id) FROM api_sessions), 0)) + ?1 \
             WHERE name = 'api_sessions' RETURNING seq",
        )
        .bind(i64::from(count))
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((last - i64::from(count) + 1..=last)
            .map(SessionId)
            .collect())
    }

    async fn session_by_id(&self, id: SessionId) -> Result<Option<SessionRecord>> {
        let row: Option<SessionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM api_sessions WHERE id = ?"
        )))
        .bind(id.0)
        .fetch_optional(&self.read)
        .await?;
        row.map(SessionRow::into_record).transpose()
    }

    async fn sessions(
        &self,
        id: ApiUserId,
        active_at: Option<OffsetDateTime>,
    ) -> Result<Vec<SessionRecord>> {
        let rows: Vec<SessionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM api_sessions WHERE api_user_id = ?1 \
             AND (?2 IS NULL OR (revoked_at IS NULL AND expires_at > ?2 \
                  AND last_seen_at + idle_timeout_s * 1000000 > ?2 \
                  AND EXISTS (SELECT 1 FROM api_keys k WHERE k.id = api_sessions.api_key_id \
                              AND k.revoked_at IS NULL \
                              AND (k.expires_at IS NULL OR k.expires_at > ?2)))) \
             ORDER BY created_at DESC, id DESC"
        )))
        .bind(id.0)
        .bind(ts_opt(active_at))
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(SessionRow::into_record).collect()
    }

    async fn revoke_sessions(
        &self,
        id: ApiUserId,
        only: Option<SessionId>,
        now: OffsetDateTime,
        audit: Option<&AuditEntry>,
    ) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let revoked = sqlx::query(
            "UPDATE api_sessions SET revoked_at = ?1 WHERE api_user_id = ?2 AND (?3 IS NULL OR id = ?3) \
             AND revoked_at IS NULL AND expires_at > ?1",
        )
        .bind(ts(now))
        .bind(id.0)
        .bind(only.map(|s| s.0))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if let Some(audit) = audit {
            insert_audit(&mut tx, audit).await?;
        }
        self.commit_credentials(tx).await?;
        Ok(revoked)
    }

    async fn count_active_sessions(&self, now: OffsetDateTime) -> Result<u64> {
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM api_sessions s JOIN api_keys k ON k.id = s.api_key_id \
             WHERE s.revoked_at IS NULL AND s.expires_at > ?1 \
             AND s.last_seen_at + s.idle_timeout_s * 1000000 > ?1 \
             AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > ?1)",
        )
        .bind(ts(now))
        .fetch_one(&self.read)
        .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn record_usage(&self, usage: &Usage) -> Result<()> {
        if usage.users.is_empty() && usage.sessions.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for (user, at, ip) in &usage.users {
            sqlx::query(
                "UPDATE api_users SET last_used_at = ?, last_used_ip = ? \
                 WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
            )
            .bind(ts(*at))
            .bind(ip)
            .bind(user.0)
            .bind(ts(*at))
            .execute(&mut *tx)
            .await?;
        }
        for (session, at) in &usage.sessions {
            sqlx::query("UPDATE api_sessions SET last_seen_at = max(last_seen_at, ?) WHERE id = ?")
                .bind(ts(*at))
                .bind(session.0)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<()> {
        let day_ago = ts(now - time::Duration::days(1));
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "DELETE FROM api_sessions WHERE expires_at < ?1 OR revoked_at < ?1 \
             OR last_seen_at + idle_timeout_s * 1000000 < ?1",
        )
        .bind(day_ago)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM admin_sessions WHERE expires_at < ?1 OR revoked_at < ?1")
            .bind(day_ago)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at < ?")
            .bind(day_ago)
            .execute(&mut *tx)
            .await?;
        // Keep the last change so the sequence never restarts.
        sqlx::query(
            "DELETE FROM credential_changes WHERE changed_at < ? AND seq < (SELECT max(seq) FROM credential_changes)",
        )
        .bind(day_ago)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
