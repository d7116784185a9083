//! SQLite keeps no rate-limit buckets: one server owns the file and counts in memory.

use super::SqliteStore;
use crate::domain::ids::ApiUserId;
use crate::store::{RateGrant, RateLimitStore, Result};
use async_trait::async_trait;

#[async_trait]
impl RateLimitStore for SqliteStore {
    async fn take_rate_tokens(&self, _: ApiUserId, _: u32, _: u32) -> Result<Option<RateGrant>> {
        Ok(None)
    }

    fn shares_rate_limits(&self) -> bool {
        false
    }
}
