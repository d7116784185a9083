//! Rate-limit buckets shared by every server on the database (migration 0006).

use super::PgStore;
use crate::domain::ids::ApiUserId;
use crate::store::{RateGrant, RateLimitStore, Result};
use async_trait::async_trait;
use std::time::Duration;

#[async_trait]
impl RateLimitStore for PgStore {
    async fn take_rate_tokens(
        &self,
        user: ApiUserId,
        per_minute: u32,
        wanted: u32,
    ) -> Result<Option<RateGrant>> {
        let (granted, remaining, wait_us): (i64, i64, i64) = sqlx::query_as(
            "SELECT granted, remaining, wait_us FROM keyward_take_rate_tokens($1, $2, $3)",
        )
        .bind(user.0)
        .bind(i64::from(per_minute.max(1)))
        .bind(i64::from(wanted))
        .fetch_one(&self.pool)
        .await?;
        Ok(Some(RateGrant {
            granted: u32::try_from(granted).unwrap_or(0),
            remaining: u32::try_from(remaining).unwrap_or(0),
            retry_after: Duration::from_micros(u64::try_from(wait_us).unwrap_or(0)),
        }))
    }

    fn shares_rate_limits(&self) -> bool {
        true
    }
}
