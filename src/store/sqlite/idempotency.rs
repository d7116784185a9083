//! Remembered answers for `Idempotency-Key`. Every write goes through the one writer, so a
//! claim's read and its write are one step.

use super::{SqliteStore, ts};
use crate::store::claims::IdempotentRun;
use crate::store::rows::idempotency::{IDEMPOTENCY_COLUMNS, IdempotencyRow};
use crate::store::{IdempotencyClaim, IdempotencyStore, Result, StoredResponse};
use async_trait::async_trait;
use time::OffsetDateTime;

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn claim_idempotency(
        &self,
        run: &IdempotentRun,
        fingerprint: &[u8],
        now: OffsetDateTime,
        abandoned_before: OffsetDateTime,
    ) -> Result<IdempotencyClaim> {
        let mut tx = self.begin_write().await?;
        let existing: Option<IdempotencyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {IDEMPOTENCY_COLUMNS} FROM idempotency_keys WHERE api_user_id = ? AND idem_key = ?"
        )))
        .bind(run.api_user.0)
        .bind(&*run.key)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(found) = existing.and_then(|row| row.judge(fingerprint, now, abandoned_before))
        {
            return Ok(found);
        }
        sqlx::query(
            "INSERT OR REPLACE INTO idempotency_keys (api_user_id, idem_key, fingerprint, created_at, claim) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(run.api_user.0)
        .bind(&*run.key)
        .bind(fingerprint)
        .bind(ts(now))
        .bind(run.token)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(IdempotencyClaim::Claimed)
    }

    async fn complete_idempotency(
        &self,
        run: &IdempotentRun,
        response: &StoredResponse,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE idempotency_keys SET status = ?, content_type = ?, location = ?, body = ? \
             WHERE api_user_id = ? AND idem_key = ? AND claim = ?",
        )
        .bind(i64::from(response.status))
        .bind(&response.content_type)
        .bind(&response.location)
        .bind(&response.body)
        .bind(run.api_user.0)
        .bind(&*run.key)
        .bind(run.token)
        .execute(&mut *self.write_connection().await?)
        .await?;
        Ok(())
    }

    async fn release_idempotency(&self, run: &IdempotentRun) -> Result<()> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE api_user_id = ? AND idem_key = ? AND claim = ? \
             AND status IS NULL AND NOT applied",
        )
        .bind(run.api_user.0)
        .bind(&*run.key)
        .bind(run.token)
        .execute(&mut *self.write_connection().await?)
        .await?;
        Ok(())
    }
}
