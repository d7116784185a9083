//! Remembered answers for `Idempotency-Key`.

use super::{SqliteStore, from_ts, ts};
use crate::domain::ids::ApiUserId;
use crate::store::{IdempotencyClaim, IdempotencyStore, Result, StoredResponse};
use async_trait::async_trait;
use sqlx::FromRow;
use time::OffsetDateTime;

const IDEMPOTENCY_TTL: time::Duration = time::Duration::hours(24);

#[derive(FromRow)]
struct IdempotencyRow {
    fingerprint: Vec<u8>,
    status: Option<i64>,
    content_type: Option<String>,
    location: Option<String>,
    body: Option<Vec<u8>>,
    created_at: i64,
}

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
        let existing: Option<IdempotencyRow> = sqlx::query_as(
            "SELECT fingerprint, status, content_type, location, body, created_at FROM idempotency_keys \
             WHERE api_user_id = ? AND idem_key = ?",
        )
        .bind(api_user.0)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        let claim = match existing {
            // Past its day, a key may be used again.
            Some(row) if from_ts(row.created_at) + IDEMPOTENCY_TTL <= now => None,
            Some(row) if row.fingerprint != fingerprint => Some(IdempotencyClaim::Mismatch),
            Some(IdempotencyRow {
                status: Some(status),
                content_type,
                location,
                body,
                ..
            }) => Some(IdempotencyClaim::Replay(StoredResponse {
                status: u16::try_from(status).unwrap_or(500),
                content_type,
                location,
                body: body.unwrap_or_default(),
            })),
            Some(_) => Some(IdempotencyClaim::InProgress),
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
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn release_idempotency(&self, api_user: ApiUserId, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM idempotency_keys WHERE api_user_id = ? AND idem_key = ? AND status IS NULL")
            .bind(api_user.0)
            .bind(key)
            .execute(&self.write)
            .await?;
        Ok(())
    }
}
