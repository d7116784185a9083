//! Rate limits per API user and throttling of failed logins.
//!
//! One server counts calls in memory (GCRA, from governor). Servers that share a PostgreSQL
//! database share each user's bucket instead (`shared`): the limit holds for the cluster.

use crate::domain::ids::ApiUserId;
use crate::store::{Db, StoreError};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

type UserLimiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;
type FailureLimiter<K> =
    RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// Where a caller stands against its limit, for the `RateLimit-*` headers and `/me`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RateState {
    pub limit_per_minute: u32,
    pub remaining: u32,
    /// Seconds until the full allowance is back.
    pub reset_seconds: u64,
}

/// A refusal: retry after this many seconds.
#[derive(Debug, Clone, Copy)]
pub struct RetryAfter(pub u64);

impl RetryAfter {
    /// `wait` in whole seconds, a started second counted: retrying sooner is refused again.
    pub fn rounded_up(wait: Duration) -> Self {
        Self(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
    }
}

/// Rate limits of this server alone, or of every server on the database.
pub enum RateLimits {
    Local(LocalLimits),
    Shared(super::shared_limits::SharedLimits),
}

impl RateLimits {
    /// Shared when the store counts for several servers (PostgreSQL), local otherwise.
    pub fn for_store(db: &Db) -> Self {
        if db.shares_rate_limits() {
            Self::Shared(super::shared_limits::SharedLimits::new(db.clone()))
        } else {
            Self::Local(LocalLimits::default())
        }
    }

    /// Counts one call of `user`, whose limit is `per_minute` calls (bursts up to that many).
    pub async fn check(
        &self,
        user: ApiUserId,
        per_minute: u32,
    ) -> Result<Result<RateState, RetryAfter>, StoreError> {
        match self {
            Self::Local(limits) => Ok(limits.check(user, per_minute)),
            Self::Shared(limits) => limits.check(user, per_minute).await,
        }
    }
}

#[derive(Default)]
pub struct LocalLimits {
    limiters: RwLock<HashMap<ApiUserId, (u32, Arc<UserLimiter>)>>,
}

impl LocalLimits {
    /// Counts one call of `user`, whose limit is `per_minute` calls (bursts up to that many).
    pub fn check(&self, user: ApiUserId, per_minute: u32) -> Result<RateState, RetryAfter> {
        let limiter = self.limiter(user, per_minute);
        match limiter.check() {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Ok(RateState {
                    limit_per_minute: per_minute,
                    remaining,
                    reset_seconds: reset_seconds(per_minute, remaining),
                })
            }
            Err(not_until) => {
                // The limiter's own clock: a new `DefaultClock` calibrates itself (CPUID) each
                // time, which made a refused call cost more than an admitted one.
                Err(RetryAfter::rounded_up(
                    not_until.wait_time_from(limiter.clock().now()),
                ))
            }
        }
    }

    fn limiter(&self, user: ApiUserId, per_minute: u32) -> Arc<UserLimiter> {
        if let Some((limit, limiter)) = self
            .limiters
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&user)
            && *limit == per_minute
        {
            return limiter.clone();
        }
        let quota = Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN));
        let limiter =
            Arc::new(RateLimiter::direct(quota).with_middleware::<StateInformationMiddleware>());
        let mut map = self
            .limiters
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = map
            .entry(user)
            .or_insert_with(|| (per_minute, limiter.clone()));
        if entry.0 != per_minute {
            *entry = (per_minute, limiter);
        }
        entry.1.clone()
    }
}

pub(super) fn reset_seconds(per_minute: u32, remaining: u32) -> u64 {
    let used = u64::from(per_minute.saturating_sub(remaining));
    (used * 60).div_ceil(u64::from(per_minute.max(1)))
}

/// Calls per client address to a public endpoint (leak reports): a flood from one address
/// is refused before it does any work.
pub struct AddressLimit {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    per_minute: u32,
}

impl AddressLimit {
    pub fn new(per_minute: u32) -> Self {
        let per_minute = per_minute.max(1);
        let quota = Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN));
        Self {
            limiter: RateLimiter::keyed(quota),
            per_minute,
        }
    }

    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    /// Counts one call from `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        self.limiter.check_key(&ip).map_err(|not_until| {
            RetryAfter::rounded_up(not_until.wait_time_from(self.limiter.clock().now()))
        })
    }

    /// Drops addresses whose allowance is back in full.
    pub fn tidy(&self) {
        self.limiter.retain_recent();
    }
}

/// Failed logins, counted per address and per username. After the allowance is spent, every
/// login attempt (right or wrong) waits, so guessing gains nothing.
///
/// Attempts from one address, and for one username, are checked one after another (striped
/// locks): a burst of parallel guesses cannot all pass the check before the first failure is
/// counted.
pub struct LoginThrottle {
    by_ip: FailureLimiter<IpAddr>,
    by_user: FailureLimiter<String>,
    blocked_ips: Mutex<HashMap<IpAddr, Instant>>,
    blocked_users: Mutex<HashMap<String, Instant>>,
    ip_stripes: Vec<tokio::sync::Mutex<()>>,
    user_stripes: Vec<tokio::sync::Mutex<()>>,
    /// Attempts refused for being throttled (a metric).
    refused: metrics::Counter,
}

const STRIPES: usize = 64;

/// One login attempt in progress: holds its address's and username's turn until dropped.
/// Dropped without a verdict (its client hung up, or the call ran out of time), it counts
/// nothing: its client learned nothing about the key either.
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    ip: IpAddr,
    username: String,
    _ip_turn: tokio::sync::MutexGuard<'a, ()>,
    _user_turn: tokio::sync::MutexGuard<'a, ()>,
}

impl Attempt<'_> {
    /// The credentials were wrong: count it before the next attempt may start.
    pub fn failed(self) {
        self.throttle.failed(self.ip, &self.username);
    }
}

fn stripe<K: Hash + ?Sized>(key: &K) -> usize {
    use std::hash::{BuildHasher, RandomState};
    static SEED: std::sync::LazyLock<RandomState> = std::sync::LazyLock::new(RandomState::new);
    (SEED.hash_one(key) % STRIPES as u64) as usize
}

impl LoginThrottle {
    pub fn new(failures_per_ip: u32, failures_per_user: u32) -> Self {
        Self {
            by_ip: failure_limiter(failures_per_ip),
            by_user: failure_limiter(failures_per_user),
            blocked_ips: Mutex::default(),
            blocked_users: Mutex::default(),
            ip_stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            user_stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            refused: metrics::Counter::noop(),
        }
    }

    /// Counts every attempt this throttle refuses on `counter`.
    pub fn counted_by(mut self, counter: metrics::Counter) -> Self {
        self.refused = counter;
        self
    }

    /// Waits for this address's and username's turn, then refuses if either is blocked.
    pub async fn attempt(&self, ip: IpAddr, username: &str) -> Result<Attempt<'_>, RetryAfter> {
        // Always the address first, then the username: no two attempts wait on each other.
        let ip_turn = self.ip_stripes[stripe(&ip)].lock().await;
        let user_turn = self.user_stripes[stripe(username)].lock().await;
        self.check(ip, username)
            .inspect_err(|_| self.refused.increment(1))?;
        Ok(Attempt {
            throttle: self,
            ip,
            username: username.to_owned(),
            _ip_turn: ip_turn,
            _user_turn: user_turn,
        })
    }

    /// Is this address or username blocked?
    pub fn check(&self, ip: IpAddr, username: &str) -> Result<(), RetryAfter> {
        let now = Instant::now();
        let wait = [
            blocked_for(&self.blocked_ips, &ip, now),
            blocked_for(&self.blocked_users, username, now),
        ]
        .into_iter()
        .flatten()
        .max();
        match wait {
            Some(wait) => Err(RetryAfter(wait.as_secs().max(1))),
            None => Ok(()),
        }
    }

    /// After a failed login.
    pub fn failed(&self, ip: IpAddr, username: &str) {
        if let Some(wait) = spent(&self.by_ip, &ip) {
            block(&self.blocked_ips, ip, wait);
        }
        // A name that cannot be a username can never log in: the address limit covers it.
        if crate::domain::username::Username::parse(username).is_err() {
            return;
        }
        let username = username.to_owned();
        if let Some(wait) = spent(&self.by_user, &username) {
            block(&self.blocked_users, username, wait);
        }
    }

    /// Drops state that no longer matters, so memory does not grow with every address seen.
    pub fn tidy(&self) {
        self.by_ip.retain_recent();
        self.by_user.retain_recent();
        let now = Instant::now();
        self.blocked_ips
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, until| *until > now);
        self.blocked_users
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, until| *until > now);
    }
}

/// `n` failures a minute, one back every minute / n: the failure that takes the last one
/// blocks the next attempt until one is back, so no attempt is ever made past the allowance
/// (n in a fresh minute, then one per minute / n).
fn failure_limiter<K: Hash + Eq + Clone>(n: u32) -> FailureLimiter<K> {
    RateLimiter::keyed(Quota::per_minute(
        NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN),
    ))
    .with_middleware::<StateInformationMiddleware>()
}

/// Counts a failure for `key`: how long it is blocked, if this failure spent its allowance.
fn spent<K: Hash + Eq + Clone>(limiter: &FailureLimiter<K>, key: &K) -> Option<Duration> {
    let now = limiter.clock().now();
    match limiter.check_key(key) {
        // The last cell: blocked until the next one is back.
        Ok(state) if state.remaining_burst_capacity() == 0 => {
            Some(state.quota().replenish_interval())
        }
        Ok(_) => None,
        // Failures counted while blocked elsewhere (by the other key) find none.
        Err(not_until) => Some(not_until.wait_time_from(now)),
    }
}

fn blocked_for<K: Hash + Eq + std::borrow::Borrow<Q>, Q: Hash + Eq + ?Sized>(
    map: &Mutex<HashMap<K, Instant>>,
    key: &Q,
    now: Instant,
) -> Option<Duration> {
    map.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(key)
        .and_then(|until| until.checked_duration_since(now))
}

fn block<K: Hash + Eq>(map: &Mutex<HashMap<K, Instant>>, key: K, wait: Duration) {
    map.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key, Instant::now() + wait);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_over_the_limit_are_refused_with_a_retry_time() {
        let limits = LocalLimits::default();
        let user = ApiUserId(1);
        let first = limits.check(user, 3).expect("first call");
        assert_eq!(first.remaining, 2);
        assert!(limits.check(user, 3).is_ok());
        assert!(limits.check(user, 3).is_ok());
        let refused = limits.check(user, 3).expect_err("fourth call");
        assert!((1..=20).contains(&refused.0), "{}", refused.0);
        assert!(
            limits.check(ApiUserId(2), 3).is_ok(),
            "users have separate limits"
        );
    }

    #[tokio::test]
    async fn only_a_failed_login_attempt_counts() {
        let throttle = LoginThrottle::new(100, 1);
        let ip: IpAddr = [127, 0, 0, 1].into();
        let cut_short = throttle.attempt(ip, "erp").await.expect("first");
        drop(cut_short);
        let failed = throttle
            .attempt(ip, "erp")
            .await
            .expect("after one cut short");
        failed.failed();
        assert!(throttle.attempt(ip, "erp").await.is_err(), "one strike");
        assert!(throttle.attempt(ip, "other").await.is_ok());
    }

    #[test]
    fn a_changed_limit_takes_effect_at_once() {
        let limits = LocalLimits::default();
        let user = ApiUserId(1);
        assert!(limits.check(user, 1).is_ok());
        assert!(limits.check(user, 1).is_err());
        assert!(limits.check(user, 100).is_ok());
    }

    #[test]
    fn each_address_has_its_own_allowance() {
        let limit = AddressLimit::new(2);
        let a: IpAddr = "203.0.113.1".parse().expect("ip");
        let b: IpAddr = "203.0.113.2".parse().expect("ip");
        assert!(limit.check(a).is_ok());
        assert!(limit.check(a).is_ok());
        let refused = limit.check(a).expect_err("third call");
        assert!((1..=60).contains(&refused.0), "{}", refused.0);
        assert!(limit.check(b).is_ok());
    }

    #[test]
    fn failed_logins_block_the_address_and_the_username() {
        let throttle = LoginThrottle::new(3, 100);
        let ip: IpAddr = "203.0.113.9".parse().expect("ip");
        for _ in 0..3 {
            assert!(throttle.check(ip, "erp").is_ok());
            throttle.failed(ip, "erp");
        }
        assert!(
            throttle.check(ip, "someone-else").is_err(),
            "the address is blocked"
        );
        let other: IpAddr = "203.0.113.10".parse().expect("ip");
        assert!(throttle.check(other, "someone-else").is_ok());

        let throttle = LoginThrottle::new(100, 2);
        for _ in 0..2 {
            assert!(throttle.check(other, "erp").is_ok());
            throttle.failed(ip, "erp");
        }
        assert!(
            throttle.check(other, "erp").is_err(),
            "the username is blocked from everywhere"
        );

        // A limit of 1: the first failure blocks.
        let throttle = LoginThrottle::new(1, 1);
        assert!(throttle.check(ip, "erp").is_ok());
        throttle.failed(ip, "erp");
        let blocked = throttle.check(other, "erp").expect_err("the username");
        assert!((1..=60).contains(&blocked.0), "{}", blocked.0);
        assert!(throttle.check(ip, "another").is_err(), "the address");
    }

    #[test]
    fn past_its_allowance_a_username_gets_one_attempt_per_cell_back_never_two() {
        // 600 a minute: a failure back every 100 ms.
        let throttle = LoginThrottle::new(100_000, 600);
        let ip: IpAddr = "203.0.113.9".parse().expect("ip");
        for _ in 0..600 {
            assert!(throttle.check(ip, "erp").is_ok());
            throttle.failed(ip, "erp");
        }
        assert!(throttle.check(ip, "erp").is_err(), "the allowance is spent");
        for round in 0..3 {
            std::thread::sleep(Duration::from_millis(120));
            assert!(
                throttle.check(ip, "erp").is_ok(),
                "round {round}: a cell is back"
            );
            throttle.failed(ip, "erp");
            assert!(
                throttle.check(ip, "erp").is_err(),
                "round {round}: the attempt that took it blocks the next"
            );
        }
    }
}
