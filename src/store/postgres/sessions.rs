//! Sessions, their last use, and the hourly purge of what can never be used again.

use super::admin::insert_audit;
use super::{PgStore, ts, ts_opt};
use crate::domain::admin::AuditEntry;
use crate::domain::api_user::{NewSession, SessionRecord};
use crate::domain::ids::{ApiUserId, SessionId};
use crate::store::rows::sessions::{SESSION_COLUMNS, SessionRow};
use crate::store::{Result, SessionStore, Usage};
use async_trait::async_trait;
use sqlx::Postgres;
use sqlx::postgres::PgArguments;
use sqlx::query::QueryScalar;
use time::OffsetDateTime;

/// New sessions in one statement, a column per array. Only sessions whose key still belongs
/// to their user, and whose user is enabled, are written, and never over a taken number; the
/// statement returns the numbers written. The user's row is read `FOR KEY SHARE`, which a
/// disable's `FOR UPDATE` waits for and makes wait (see `update_api_user` in `api_users.rs`), so a
/// session is either written before the disable ends every session, or not at all.
pub(super) fn insert_sessions(
    sessions: &[NewSession],
) -> QueryScalar<'static, Postgres, i64, PgArguments> {
    let column = |f: fn(&NewSession) -> i64| sessions.iter().map(f).collect::<Vec<_>>();
    sqlx::query_scalar(
        "INSERT INTO api_sessions (id, api_user_id, api_key_id, token_hash, ip, created_at, \
         last_seen_at, idle_timeout_s, expires_at) \
         SELECT s.id, s.user_id, s.key_id, s.hash, s.ip, s.created, s.created, s.idle, s.expires \
         FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bytea[], $5::text[], \
                     $6::bigint[], $7::bigint[], $8::bigint[]) \
              AS s (id, user_id, key_id, hash, ip, created, idle, expires) \
         JOIN api_keys k ON k.id = s.key_id AND k.api_user_id = s.user_id \
         JOIN api_users u ON u.id = s.user_id \
         WHERE u.status = 'enabled' \
         FOR KEY SHARE OF u \
         ON CONFLICT DO NOTHING \
         RETURNING id",
    )
    .bind(column(|s| s.id.0))
    .bind(column(|s| s.api_user_id.0))
    .bind(column(|s| s.api_key_id.0))
    .bind(
        sessions
            .iter()
            .map(|s| s.token_hash.as_bytes().to_vec())
            .collect::<Vec<_>>(),
    )
    .bind(
        sessions
            .iter()
            .map(|s| s.ip.to_string())
            .collect::<Vec<_>>(),
    )
    .bind(column(|s| ts(s.created_at)))
    .bind(column(|s| s.idle_timeout_s))
    .bind(column(|s| ts(s.expires_at)))
}

#[async_trait]
impl SessionStore for PgStore {
    async fn reserve_session_ids(&self, count: u32) -> Result<Vec<SessionId>> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT nextval(pg_get_serial_sequence('api_sessions', 'id')) \
             FROM generate_series(1, $1::bigint)",
        )
        .bind(i64::from(count))
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.into_iter().map(SessionId).collect())
    }

    async fn session_by_id(&self, id: SessionId) -> Result<Option<SessionRecord>> {
        let row: Option<SessionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM api_sessions WHERE id = $1"
        )))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        row.map(SessionRow::into_record).transpose()
    }

    async fn sessions(
        &self,
        id: ApiUserId,
        active_at: Option<OffsetDateTime>,
    ) -> Result<Vec<SessionRecord>> {
        let rows: Vec<SessionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM api_sessions WHERE api_user_id = $1 \
             AND ($2::bigint IS NULL OR (revoked_at IS NULL AND expires_at > $2 \
                  AND last_seen_at + idle_timeout_s * 1000000 > $2 \
                  AND EXISTS (SELECT 1 FROM api_keys k WHERE k.id = api_sessions.api_key_id \
                              AND k.revoked_at IS NULL \
                              AND (k.expires_at IS NULL OR k.expires_at > $2)))) \
             ORDER BY created_at DESC, id DESC"
        )))
        .bind(id.0)
        .bind(ts_opt(active_at))
        .fetch_all(&self.pool)
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
        let mut tx = self.begin_credentials().await?;
        let revoked = sqlx::query(
            "UPDATE api_sessions SET revoked_at = $1 WHERE api_user_id = $2 \
             AND ($3::bigint IS NULL OR id = $3) AND revoked_at IS NULL AND expires_at > $1",
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
             WHERE s.revoked_at IS NULL AND s.expires_at > $1 \
             AND s.last_seen_at + s.idle_timeout_s * 1000000 > $1 \
             AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > $1)",
        )
        .bind(ts(now))
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn record_usage(&self, usage: &Usage) -> Result<()> {
        if usage.users.is_empty() && usage.sessions.is_empty() {
            return Ok(());
        }
        // Two statements whatever the numbers; rows in id order, so two nodes writing at once
        // lock them in the same order.
        let mut users: Vec<_> = usage.users.iter().collect();
        users.sort_unstable_by_key(|(id, _, _)| *id);
        let mut sessions: Vec<_> = usage.sessions.iter().collect();
        sessions.sort_unstable_by_key(|(id, _)| *id);
        let mut tx = self.begin().await?;
        if !users.is_empty() {
            sqlx::query(
                "UPDATE api_users u SET last_used_at = v.at, last_used_ip = v.ip \
                 FROM (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS v (id, at, ip) \
                       ORDER BY id) AS v \
                 WHERE u.id = v.id AND (u.last_used_at IS NULL OR u.last_used_at < v.at)",
            )
            .bind(users.iter().map(|(id, _, _)| id.0).collect::<Vec<_>>())
            .bind(users.iter().map(|(_, at, _)| ts(*at)).collect::<Vec<_>>())
            .bind(users.iter().map(|(_, _, ip)| ip.as_str()).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        if !sessions.is_empty() {
            sqlx::query(
                "UPDATE api_sessions s SET last_seen_at = greatest(s.last_seen_at, v.at) \
                 FROM (SELECT * FROM unnest($1::bigint[], $2::bigint[]) AS v (id, at) ORDER BY id) AS v \
                 WHERE s.id = v.id",
            )
            .bind(sessions.iter().map(|(id, _)| id.0).collect::<Vec<_>>())
            .bind(sessions.iter().map(|(_, at)| ts(*at)).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<()> {
        let day_ago = ts(now - time::Duration::days(1));
        let mut tx = self.begin().await?;
        sqlx::query(
            "DELETE FROM api_sessions WHERE expires_at < $1 OR revoked_at < $1 \
             OR last_seen_at + idle_timeout_s * 1000000 < $1",
        )
        .bind(day_ago)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM admin_sessions WHERE expires_at < $1 OR revoked_at < $1")
            .bind(day_ago)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(day_ago)
            .execute(&mut *tx)
            .await?;
        // A bucket untouched for a minute is full: forgetting it changes nothing. By the
        // database's clock, as the buckets are.
        sqlx::query(
            "DELETE FROM rate_buckets \
             WHERE tat < (extract(epoch FROM clock_timestamp()) * 1000000)::bigint - 60000000",
        )
        .execute(&mut *tx)
        .await?;
        // Keep the last change, as SQLite must, so both backends keep the same log.
        sqlx::query(
            "DELETE FROM credential_changes WHERE changed_at < $1 \
             AND seq < (SELECT max(seq) FROM credential_changes)",
        )
        .bind(day_ago)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
