//! Remembered answers for `Idempotency-Key`.

use super::{SqliteStore, ts};
use crate::domain::ids::ApiUserId;
use crate::store::rows::idempotency::{IDEMPOTENCY_COLUMNS, IdempotencyRow};
use crate::store::{IdempotencyClaim, IdempotencyStore, Result, StoredResponse};
use async_trait::async_trait;
use time::OffsetDateTime;

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn claim_idempotency(
        &self,
        api_user: ApiUserId,
        key: &str,
        fingerprint: &[u8],
        now: OffsetDateTime,
    ) -> Result<IdempotencyClaim> {
        let mut tx = self.begin_write().await?;
        let existing: Option<IdempotencyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {IDEMPOTENCY_COLUMNS} FROM idempotency_keys WHERE api_user_id = ? AND idem_key = ?"
        )))
        .bind(api_user.0)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        let claim = match existing {
            // Past its day, a key may be used again.
            Some(row) if row.expired(now) => None,
            Some(row) => Some(row.claim(fingerprint)),
            None => None,
        };
        if let Some(claim) = claim {
            return Ok(claim);
        }
        sqlx::query(
            "INSERT OR REPLACE INTO idempotency_keys (api_user_id, idem_key, fingerprint, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(api_user.0)
        .bind(key)
        .bind(fingerprint)
        .bind(ts(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(IdempotencyClaim::Claimed)
    }

    async fn complete_idempotency(
        &self,
        api_user: ApiUserId,
        key: &str,
        response: &StoredResponse,
    ) -> Result<()> {
        sqlx::query("UPDATE idempotency_keys SET status = ?, content_type = ?, location = ?, body = ? WHERE api_user_id = ? AND idem_key = ?")
            .bind(i64::from(response.status))
            .bind(&response.content_type)
            .bind(&response.location)
            .bind(&response.body)
            .bind(api_user.0)
            .bind(key)
            .execute(&mut *self.write_connection().await?)
            .await?;
        Ok(())
    }

    async fn release_idempotency(&self, api_user: ApiUserId, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM idempotency_keys WHERE api_user_id = ? AND idem_key = ? AND status IS NULL")
            .bind(api_user.0)
            .bind(key)
            .execute(&mut *self.write_connection().await?)
            .await?;
        Ok(())
    }
}
