//! Rows of remembered answers for `Idempotency-Key`, and what a claim finds in one.

use crate::store::columns::from_ts;
use crate::store::{IdempotencyClaim, StoredResponse};
use sqlx::FromRow;
use time::OffsetDateTime;

/// How long a key is remembered; past that, it may be used again.
pub(crate) const IDEMPOTENCY_TTL: time::Duration = time::Duration::hours(24);

pub(crate) const IDEMPOTENCY_COLUMNS: &str =
    "fingerprint, status, content_type, location, body, created_at, claim, applied";

#[derive(FromRow)]
pub(crate) struct IdempotencyRow {
    fingerprint: Vec<u8>,
    /// 32 bits in PostgreSQL.
    status: Option<i32>,
    content_type: Option<String>,
    location: Option<String>,
    body: Option<Vec<u8>>,
    /// When the key was claimed, by its first request or by the retry that took it over.
    created_at: i64,
    /// The number of the run holding the claim; none in claims made by binaries from before
    /// claims were marked, whose outcome is unknown.
    claim: Option<i64>,
    /// Whether a change of the request committed.
    applied: bool,
}

impl IdempotencyRow {
    /// What a request with `fingerprint` gets from this row at `now`: `None` when it may claim
    /// the key (past its day, or abandoned by a request cut off before any change), else the
    /// mismatch, the answer remembered, or the news that the first request is at work or, once
    /// it would have timed out, took effect (or may have: a claim of an older binary) without an
    /// answer.
    pub(crate) fn judge(
        self,
        fingerprint: &[u8],
        now: OffsetDateTime,
        abandoned_before: OffsetDateTime,
    ) -> Option<IdempotencyClaim> {
        let claimed_at = from_ts(self.created_at);
        if claimed_at + IDEMPOTENCY_TTL <= now {
            return None;
        }
        if self.fingerprint != fingerprint {
            return Some(IdempotencyClaim::Mismatch);
        }
        Some(match self.status {
            Some(status) => IdempotencyClaim::Replay(StoredResponse {
                status: u16::try_from(status).unwrap_or(500),
                content_type: self.content_type,
                location: self.location,
                body: self.body.unwrap_or_default(),
            }),
            // At work, or committed with its answer still being read back and stored.
            None if claimed_at >= abandoned_before => IdempotencyClaim::InProgress { claimed_at },
            None if self.applied || self.claim.is_none() => IdempotencyClaim::Applied {
                location: self.location,
            },
            None => return None,
        })
    }
}
