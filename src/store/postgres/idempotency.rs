//! Remembered answers for `Idempotency-Key`.

use super::{PgStore, ts};
use crate::store::claims::IdempotentRun;
use crate::store::rows::idempotency::{IDEMPOTENCY_COLUMNS, IDEMPOTENCY_TTL, IdempotencyRow};
use crate::store::{IdempotencyClaim, IdempotencyStore, Result, StoredResponse};
use async_trait::async_trait;
use time::OffsetDateTime;

#[async_trait]
impl IdempotencyStore for PgStore {
    async fn claim_idempotency(
        &self,
        run: &IdempotentRun,
        fingerprint: &[u8],
        now: OffsetDateTime,
        abandoned_before: OffsetDateTime,
    ) -> Result<IdempotencyClaim> {
        // A claim is one upsert: a new key is inserted, a key past its day or abandoned before
        // any change is taken over, and anything else is left alone. Two nodes claiming the
        // same key at once meet on its primary key, and only one of them gets a row back; a
        // change marking the claim holds the row's lock, and the upsert then finds it applied.
        for _ in 0..3 {
            let claimed: Option<bool> = sqlx::query_scalar(
                "INSERT INTO idempotency_keys (api_user_id, idem_key, fingerprint, created_at, claim) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (api_user_id, idem_key) DO UPDATE \
                     SET fingerprint = excluded.fingerprint, created_at = excluded.created_at, \
                         claim = excluded.claim, applied = false, \
                         status = NULL, content_type = NULL, location = NULL, body = NULL \
                     WHERE idempotency_keys.created_at <= $6 \
                        OR (idempotency_keys.status IS NULL AND NOT idempotency_keys.applied \
                            AND idempotency_keys.claim IS NOT NULL \
                            AND idempotency_keys.fingerprint = excluded.fingerprint \
                            AND idempotency_keys.created_at < $7) \
                 RETURNING true",
            )
            .bind(run.api_user.0)
            .bind(&*run.key)
            .bind(fingerprint)
            .bind(ts(now))
            .bind(run.token)
            .bind(ts(now - IDEMPOTENCY_TTL))
            .bind(ts(abandoned_before))
            .fetch_optional(&self.pool)
            .await?;
            if claimed.is_some() {
                return Ok(IdempotencyClaim::Claimed);
            }
            let existing: Option<IdempotencyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {IDEMPOTENCY_COLUMNS} FROM idempotency_keys \
                 WHERE api_user_id = $1 AND idem_key = $2"
            )))
            .bind(run.api_user.0)
            .bind(&*run.key)
            .fetch_optional(&self.pool)
            .await?;
            // Released, purged or abandoned in between: claim again.
            if let Some(found) =
                existing.and_then(|row| row.judge(fingerprint, now, abandoned_before))
            {
                return Ok(found);
            }
        }
        // The key keeps coming and going: another request is busy with it.
        Ok(IdempotencyClaim::InProgress { claimed_at: now })
    }

    async fn complete_idempotency(
        &self,
        run: &IdempotentRun,
        response: &StoredResponse,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE idempotency_keys SET status = $1, content_type = $2, location = $3, body = $4 \
             WHERE api_user_id = $5 AND idem_key = $6 AND claim = $7",
        )
        .bind(i32::from(response.status))
        .bind(&response.content_type)
        .bind(&response.location)
        .bind(&response.body)
        .bind(run.api_user.0)
        .bind(&*run.key)
        .bind(run.token)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn release_idempotency(&self, run: &IdempotentRun) -> Result<()> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE api_user_id = $1 AND idem_key = $2 AND claim = $3 \
             AND status IS NULL AND NOT applied",
        )
        .bind(run.api_user.0)
        .bind(&*run.key)
        .bind(run.token)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
