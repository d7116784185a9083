//! The claim of a running idempotent request (`Idempotency-Key`), known to the store while the
//! request runs: every write transaction it begins first marks the claim applied, in the same
//! transaction as its change. A claim never marked was cut off before any change committed, so
//! a retry may take it over once it is abandoned; a claim marked but never answered took effect
//! and is never run again. A request whose claim was taken over changes nothing: its mark
//! finds another claim's token and its transaction ends there.

use super::StoreError;
use crate::domain::ids::ApiUserId;
use std::future::Future;
use std::sync::Arc;

/// One run's claim of an `Idempotency-Key`.
#[derive(Debug, Clone)]
pub struct IdempotentRun {
    pub api_user: ApiUserId,
    pub key: Arc<str>,
    /// This run's own number: a retry that takes the claim over writes its own.
    pub token: i64,
}

impl IdempotentRun {
    pub fn new(api_user: ApiUserId, key: &str) -> Self {
        Self {
            api_user,
            key: Arc::from(key),
            token: rand::random(),
        }
    }

    /// Runs `work` (the request) with this claim: its write transactions mark it applied.
    pub async fn scope<F: Future>(self, work: F) -> F::Output {
        RUNNING.scope(self, work).await
    }
}

tokio::task_local! {
    static RUNNING: IdempotentRun;
}

/// The claim of the idempotent request this task runs, if any.
pub(crate) fn running() -> Option<IdempotentRun> {
    RUNNING.try_with(IdempotentRun::clone).ok()
}

/// What a run's write gets once a retry has taken its claim over.
pub(crate) fn taken_over() -> StoreError {
    StoreError::Conflict {
        message: "A retry with the same Idempotency-Key took this request over, as it had run \
                  past `request_timeout`; this one changed nothing."
            .to_owned(),
        details: Vec::new(),
    }
}

/// The mark of a run's write: it changes one row, or none when the claim is another run's now.
/// One text for both dialects: SQLite numbers `$N` parameters in the order they first appear,
/// and sqlx binds `$N` to the N-th argument, so they appear in order.
pub(crate) const MARK_APPLIED_SQL: &str = "UPDATE idempotency_keys SET applied = true \
     WHERE api_user_id = $1 AND idem_key = $2 AND claim = $3";

/// What an idempotent request made, noted on its claim in the same transaction, so that a
/// retry told the request took effect without an answer learns where to look.
#[derive(Debug, Clone, Copy)]
pub enum Created {
    Product,
    Customer,
    Order,
}

impl Created {
    /// The API's address of the one made with `id`: the `Location` of its `201`.
    pub fn location(self, id: i64) -> String {
        let collection = match self {
            Self::Product => "products",
            Self::Customer => "customers",
            Self::Order => "orders",
        };
        format!("/api/v1/{collection}/{id}")
    }
}

/// The note of what a run made, in both dialects (see [`MARK_APPLIED_SQL`]).
pub(crate) const NOTE_CREATED_SQL: &str = "UPDATE idempotency_keys SET location = $1 \
     WHERE api_user_id = $2 AND idem_key = $3 AND claim = $4";
