//! Rate limits shared by the servers on one PostgreSQL database.
//!
//! Each API user has one bucket in the database (GCRA: `per_minute` calls, one more every
//! `60 / per_minute` seconds). A server does not ask the database on every call: it takes a
//! lease of [`lease_size`] calls and counts them down in memory, and only the call that finds
//! its lease spent waits for the next one. An empty bucket is remembered until its next call
//! is due, so refusals cost no query either.
//!
//! Tolerance: calls are taken from the bucket when leased, before they are made, so the
//! cluster never admits more than one server would, except for the calls that servers hold
//! leased and unspent — at most `nodes × (lease_size − 1)`, 1 % of the limit per server.
//! Those held calls are also the most it can fall short by, for a moment: the bucket
//! refills a lease in 0.6 s.

use super::limits::{RateState, RetryAfter, reset_seconds};
use crate::domain::ids::ApiUserId;
use crate::store::{Db, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// Calls a server takes from the shared bucket at a time: 1 % of the limit, at least one.
/// A busy user costs the database at most about a hundred small queries per minute's worth
/// of calls, whatever the traffic.
pub fn lease_size(per_minute: u32) -> u32 {
    (per_minute / 100).max(1)
}

pub struct SharedLimits {
    db: Db,
    users: RwLock<HashMap<ApiUserId, Arc<UserLease>>>,
}

#[derive(Default)]
struct UserLease {
    state: Mutex<Lease>,
    /// One lease request at a time per user on this server; the others wait and share it.
    refill: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Lease {
    per_minute: u32,
    /// Calls leased and not yet made.
    left: u32,
    /// What the shared bucket held after the last lease: for the `RateLimit-Remaining` header.
    bucket: u32,
    /// The bucket was empty: refuse without asking until then.
    empty_until: Option<Instant>,
}

impl Lease {
    fn for_limit(&mut self, per_minute: u32) -> &mut Self {
        if self.per_minute != per_minute {
            // A changed limit starts afresh (the database's bucket does too).
            *self = Self {
                per_minute,
                ..Self::default()
            };
        }
        self
    }

    /// Spends a leased call, or says how long the bucket stays empty; `None`: lease more.
    fn take(&mut self, now: Instant) -> Option<Result<RateState, RetryAfter>> {
        if self.left > 0 {
            self.left -= 1;
            let remaining = self.left.saturating_add(self.bucket);
            return Some(Ok(RateState {
                limit_per_minute: self.per_minute,
                remaining,
                reset_seconds: reset_seconds(self.per_minute, remaining.min(self.per_minute)),
            }));
        }
        let until = self.empty_until.filter(|until| *until > now)?;
        Some(Err(retry_after(until - now)))
    }
}

fn retry_after(wait: Duration) -> RetryAfter {
    RetryAfter(RetryAfter::rounded_up(wait).0.max(1))
}

impl SharedLimits {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            users: RwLock::default(),
        }
    }

    pub async fn check(
        &self,
        user: ApiUserId,
        per_minute: u32,
    ) -> Result<Result<RateState, RetryAfter>, StoreError> {
        let lease = self.lease(user);
        if let Some(answer) = lock(&lease.state)
            .for_limit(per_minute)
            .take(Instant::now())
        {
            return Ok(answer);
        }
        let _turn = lease.refill.lock().await;
        // Another call may have leased while this one waited for its turn.
        if let Some(answer) = lock(&lease.state)
            .for_limit(per_minute)
            .take(Instant::now())
        {
            return Ok(answer);
        }
        let wanted = lease_size(per_minute);
        let Some(grant) = self.db.take_rate_tokens(user, per_minute, wanted).await? else {
            return Err(StoreError::Config(
                "this database keeps no shared rate limits".to_owned(),
            ));
        };
        let mut state = lock(&lease.state);
        let state = state.for_limit(per_minute);
        if grant.granted == 0 {
            let now = Instant::now();
            state.empty_until = Some(now + grant.retry_after);
            state.bucket = 0;
            return Ok(Err(retry_after(grant.retry_after)));
        }
        state.left += grant.granted;
        state.bucket = grant.remaining;
        state.empty_until = None;
        Ok(state.take(Instant::now()).unwrap_or(Err(RetryAfter(1))))
    }

    fn lease(&self, user: ApiUserId) -> Arc<UserLease> {
        if let Some(lease) = self
            .users
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&user)
        {
            return lease.clone();
        }
        self.users
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(user)
            .or_default()
            .clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_one_percent_of_the_limit_and_at_least_one_call() {
        assert_eq!(lease_size(1), 1);
        assert_eq!(lease_size(199), 1);
        assert_eq!(lease_size(600), 6);
        assert_eq!(lease_size(1_000_000), 10_000);
    }

    #[test]
    fn leased_calls_are_spent_in_memory_and_an_empty_bucket_is_remembered() {
        let mut lease = Lease::default();
        let now = Instant::now();
        let lease = lease.for_limit(600);
        assert!(lease.take(now).is_none(), "nothing leased yet");
        lease.left = 2;
        lease.bucket = 100;
        let state = lease.take(now).expect("leased").expect("admitted");
        assert_eq!(state.remaining, 101);
        assert!(lease.take(now).expect("leased").is_ok());
        assert!(lease.take(now).is_none(), "spent: lease again");
        lease.empty_until = Some(now + Duration::from_millis(1500));
        let refused = lease.take(now).expect("known empty").expect_err("refused");
        assert_eq!(refused.0, 2);
        assert!(
            lease.take(now + Duration::from_secs(2)).is_none(),
            "due again"
        );
        assert_eq!(lease.for_limit(60).left, 0, "a new limit drops the lease");
    }
}
