//! Rows of remembered answers for `Idempotency-Key`, and what a claim finds in one.

use crate::store::columns::from_ts;
use crate::store::{IdempotencyClaim, StoredResponse};
use sqlx::FromRow;
use time::OffsetDateTime;

/// How long a key is remembered; past that, it may be used again.
pub(crate) const IDEMPOTENCY_TTL: time::Duration = time::Duration::hours(24);

pub(crate) const IDEMPOTENCY_COLUMNS: &str =
    "fingerprint, status, content_type, location, body, created_at";

#[derive(FromRow)]
pub(crate) struct IdempotencyRow {
    fingerprint: Vec<u8>,
    /// 32 bits in PostgreSQL.
    status: Option<i32>,
    content_type: Option<String>,
    location: Option<String>,
    body: Option<Vec<u8>>,
    created_at: i64,
}

impl IdempotencyRow {
    /// Whether the key is past its day at `now`.
    pub(crate) fn expired(&self, now: OffsetDateTime) -> bool {
        from_ts(self.created_at) + IDEMPOTENCY_TTL <= now
    }

    /// What a new request with `fingerprint` gets from a live key: a mismatch, the answer
    /// remembered, or the news that the first request is still at work.
    pub(crate) fn claim(self, fingerprint: &[u8]) -> IdempotencyClaim {
        if self.fingerprint != fingerprint {
            return IdempotencyClaim::Mismatch;
        }
        match self.status {
            Some(status) => IdempotencyClaim::Replay(StoredResponse {
                status: u16::try_from(status).unwrap_or(500),
                content_type: self.content_type,
                location: self.location,
                body: self.body.unwrap_or_default(),
            }),
            None => IdempotencyClaim::InProgress,
        }
    }
}
