//! Remembered answers for `Idempotency-Key`.

use super::{PgStore, ts};
use crate::domain::ids::ApiUserId;
use crate::store::rows::idempotency::{IDEMPOTENCY_COLUMNS, IDEMPOTENCY_TTL, IdempotencyRow};
use crate::store::{IdempotencyClaim, IdempotencyStore, Result, StoredResponse};
use async_trait::async_trait;
use time::OffsetDateTime;

#[async_trait]
impl IdempotencyStore for PgStore {
    async fn claim_idempotency(
        &self,
        api_user: ApiUserId,
        key: &str,
        fingerprint: &[u8],
        now: OffsetDateTime,
    ) -> Result<IdempotencyClaim> {
        // A claim is one upsert: a new key is inserted, a key past its day is taken over, and
        // anything else is left alone. Two nodes claiming the same key at once meet on its
        // primary key, and only one of them gets a row back.
        for _ in 0..3 {
            let claimed: Option<bool> = sqlx::query_scalar(
                "INSERT INTO idempotency_keys (api_user_id, idem_key, fingerprint, created_at) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (api_user_id, idem_key) DO UPDATE \
                     SET fingerprint = excluded.fingerprint, created_at = excluded.created_at, \
                         status = NULL, content_type = NULL, location = NULL, body = NULL \
                     WHERE idempotency_keys.created_at <= $5 \
                 RETURNING true",
            )
            .bind(api_user.0)
            .bind(key)
            .bind(fingerprint)
            .bind(ts(now))
            .bind(ts(now - IDEMPOTENCY_TTL))
            .fetch_optional(&self.pool)
            .await?;
            if claimed.is_some() {
                return Ok(IdempotencyClaim::Claimed);
            }
            let existing: Option<IdempotencyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {IDEMPOTENCY_COLUMNS} FROM idempotency_keys \
                 WHERE api_user_id = $1 AND idem_key = $2"
            )))
            .bind(api_user.0)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
            return Ok(match existing {
                // Released or purged in between: claim again.
                None => continue,
                Some(row) => row.claim(fingerprint),
            });
        }
        // The key keeps coming and going: another request is busy with it.
        Ok(IdempotencyClaim::InProgress)
    }

    async fn complete_idempotency(
        &self,
        api_user: ApiUserId,
        key: &str,
        response: &StoredResponse,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE idempotency_keys SET status = $1, content_type = $2, location = $3, body = $4 \
             WHERE api_user_id = $5 AND idem_key = $6",
        )
        .bind(i32::from(response.status))
        .bind(&response.content_type)
        .bind(&response.location)
        .bind(&response.body)
        .bind(api_user.0)
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn release_idempotency(&self, api_user: ApiUserId, key: &str) -> Result<()> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE api_user_id = $1 AND idem_key = $2 AND status IS NULL",
        )
        .bind(api_user.0)
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
