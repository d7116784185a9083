//! The auth pipeline: every form of credentials goes through `Authenticator::authenticate`,
//! which checks, in the spec's order, credentials → status and expiry → IP → scope → rate limit.
//! `layer` applies it to every `/api/v1` route; handlers receive the result as a `Caller`.

mod cache;
mod client_ip;
mod headers;
mod layer;
mod limits;
pub mod policy;
mod session_numbers;
mod shared_limits;
mod usage;

pub use client_ip::{ClientIp, ForwardedHeader, TrustedProxies, resolve_client_ip};
pub use headers::{HeaderProblem, Presented, has_secret_param, presented};
pub use layer::{AuthState, add_rate_headers, admit, answered_before_checks, pipeline};
pub use limits::{AddressLimit, LoginThrottle, RateLimits, RateState, RetryAfter};
pub use usage::UsageTracker;

use crate::clock::SharedClock;
use crate::domain::api_key::{self, KeyError};
use crate::domain::api_user::{AuthKey, AuthUser, NewSession, Status};
use crate::domain::history::Outcome;
use crate::domain::ids::{ApiKeyId, SessionId};
use crate::domain::ip_rule;
use crate::domain::scope::Scope;
use crate::domain::secret::{Secret, SecretHash};
use crate::domain::token::{self, SessionToken, TokenSecret};
use crate::domain::username::Username;
use crate::history::CallInfo;
use crate::history::PendingSession;
use crate::http::error::ApiError;
use crate::store::{Db, StoreError};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use cache::{CachedSession, CredentialCache};
use session_numbers::SessionNumbers;
use std::net::IpAddr;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// What a route requires beyond valid credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Nothing,
    Scope(Scope),
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: Arc<AuthUser>,
    pub key_id: ApiKeyId,
    pub key_hint: Arc<str>,
    pub key_expires_at: Option<OffsetDateTime>,
    pub session: Option<SessionInfo>,
    pub ip: IpAddr,
    pub rate: RateState,
}

#[derive(Debug, Clone, Copy)]
pub struct SessionInfo {
    pub id: SessionId,
    pub hash: SecretHash,
    pub expires_at: OffsetDateTime,
    pub idle_timeout_s: i64,
    pub idle_expires_at: OffsetDateTime,
}

impl Caller {
    pub fn call_info(&self) -> CallInfo {
        CallInfo {
            api_user_id: Some(self.user.id),
            username: Some(self.user.username.clone()),
            key_hint: Some(self.key_hint.clone()),
            session_id: self.session.map(|s| s.id),
            route: None,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            tracing::error!(
                "a handler asked for the caller on a route the auth pipeline does not guard"
            );
            ApiError::internal()
        })
    }
}

/// A refused call: the answer for the client and what the history should know.
#[derive(Debug)]
pub struct Refusal {
    pub error: ApiError,
    pub info: CallInfo,
}

impl Refusal {
    fn new(error: ApiError) -> Self {
        Self {
            error,
            info: CallInfo::default(),
        }
    }

    fn about(
        mut self,
        user: Option<&AuthUser>,
        username: Option<&str>,
        key_hint: Option<Arc<str>>,
    ) -> Self {
        self.info.api_user_id = user.map(|u| u.id);
        self.info.username = user
            .map(|u| u.username.clone())
            .or_else(|| username.map(clip));
        self.info.key_hint = key_hint;
        self
    }
}

impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Self {
        Self::new(error.into())
    }
}

/// A presented username goes to the history as sent when it could be one; anything else (a key
/// pasted into the wrong field, say) is never stored.
pub fn clip(username: &str) -> Arc<str> {
    match Username::parse(username) {
        Ok(name) => Arc::from(name.as_str()),
        Err(_) => Arc::from(INVALID_USERNAME),
    }
}

/// What the history shows for a presented username that cannot be one; the parentheses and
/// space make it impossible to confuse with a real username.
pub const INVALID_USERNAME: &str = "(invalid username)";

#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    pub idle_timeout: Duration,
    pub lifetime: Duration,
}

pub struct Authenticator {
    db: Db,
    clock: SharedClock,
    cache: CredentialCache,
    limits: RateLimits,
    throttle: LoginThrottle,
    usage: UsageTracker,
    sessions: SessionSettings,
    session_numbers: SessionNumbers,
}

/// A successful login. Its session is written with the login's history row: the answer
/// carries `session` to the history layer.
#[derive(Debug)]
pub struct Login {
    pub caller: Caller,
    pub token: SessionToken,
    pub session: PendingSession,
    pub expires_at: OffsetDateTime,
    pub idle_timeout_s: i64,
}

impl Authenticator {
    pub async fn new(
        db: Db,
        clock: SharedClock,
        sessions: SessionSettings,
        throttle: LoginThrottle,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            limits: RateLimits::for_store(&db),
            cache: CredentialCache::new(db.clone()).await?,
            session_numbers: SessionNumbers::new(db.clone()),
            db,
            clock,
            throttle,
            usage: UsageTracker::default(),
            sessions,
        })
    }

    pub fn usage(&self) -> &UsageTracker {
        &self.usage
    }

    pub fn throttle(&self) -> &LoginThrottle {
        &self.throttle
    }

    /// Reads the change log and drops what it names (the safety net's timer).
    pub async fn sync(&self) -> Result<(), StoreError> {
        self.cache.sync(true).await
    }

    /// Reads the change log if the store's change marker moved (an announced change).
    pub async fn refresh(&self) -> Result<(), StoreError> {
        self.cache.ensure_fresh().await
    }

    pub async fn authenticate(
        &self,
        presented: &Presented,
        ip: IpAddr,
        need: Need,
    ) -> Result<Caller, Refusal> {
        self.cache.ensure_fresh().await?;
        let now = self.clock.now();
        let (user, key, session) = match presented {
            Presented::Key { username, key } => {
                let (user, key) = self.check_key(username.as_deref(), key, now).await?;
                (user, key, None)
            }
            Presented::Token(token) => {
                let (user, session) = self.check_token(token, now).await?;
                (user, session.key.clone(), Some(session))
            }
        };
        let refuse =
            |error: ApiError| Refusal::new(error).about(Some(&user), None, Some(key.hint.clone()));
        if !ip_rule::allows(&user.ips, ip) {
            return Err(refuse(ApiError::ip_not_allowed(ip)));
        }
        if let Need::Scope(scope) = need
            && !user.scopes.allows(scope)
        {
            return Err(refuse(ApiError::insufficient_scope(scope)));
        }
        let rate = self
            .limits
            .check(user.id, user.rate_limit_per_minute)
            .await
            .map_err(|error| refuse(error.into()))?
            .map_err(|retry| refuse(ApiError::rate_limited(user.rate_limit_per_minute, retry.0)))?;
        let session = session.map(|s| {
            s.seen(now);
            SessionInfo {
                id: s.record.id,
                hash: s.record.token_hash,
                expires_at: s.record.expires_at,
                idle_timeout_s: s.record.idle_timeout_s,
                idle_expires_at: now + Duration::seconds(s.record.idle_timeout_s),
            }
        });
        self.usage.touch(user.id, ip, session.map(|s| s.id), now);
        Ok(Caller {
            key_id: key.id,
            key_hint: key.hint.clone(),
            key_expires_at: key.expires_at,
            user,
            session,
            ip,
            rate,
        })
    }

    /// Whose credentials a call carries, for the history row of an answer given before the
    /// checks (a route or method the API does not have, a body too large): the API user and key
    /// when they are valid, else what a refusal would name. Nothing else is checked or spent:
    /// no IP rule, scope or rate limit, and the call keeps no session alive.
    pub async fn identify(&self, presented: &Presented) -> CallInfo {
        if self.cache.ensure_fresh().await.is_err() {
            return CallInfo::default();
        }
        let now = self.clock.now();
        let found = match presented {
            Presented::Key { username, key } => self
                .check_key(username.as_deref(), key, now)
                .await
                .map(|(user, key)| (user, key, None)),
            Presented::Token(token) => self
                .check_token(token, now)
                .await
                .map(|(user, session)| (user, session.key.clone(), Some(session.record.id))),
        };
        match found {
            Ok((user, key, session_id)) => CallInfo {
                api_user_id: Some(user.id),
                username: Some(user.username.clone()),
                key_hint: Some(key.hint.clone()),
                session_id,
                route: None,
            },
            Err(refusal) => refusal.info,
        }
    }

    async fn check_key(
        &self,
        username: Option<&str>,
        key: &Secret,
        now: OffsetDateTime,
    ) -> Result<(Arc<AuthUser>, Arc<AuthKey>), Refusal> {
        // Typos and truncations are refused without a lookup.
        let shape = api_key::inspect(key.expose());
        let found = match shape {
            Ok(_) => self.cache.key(&SecretHash::of(key.expose())).await?,
            Err(_) => None,
        };
        let owner = match &found {
            Some(found) => self.cache.user(found.api_user_id).await?,
            None => None,
        };
        if let (Some(found), Some(user)) = (found, owner)
            && username.is_none_or(|name| name == &*user.username)
        {
            let refuse = |outcome| {
                let error = ApiError::unauthorized(outcome);
                Refusal::new(error).about(Some(&user), None, Some(found.hint.clone()))
            };
            if user.status == Status::Disabled {
                return Err(refuse(Outcome::DisabledUser));
            }
            if found.revoked_at.is_some() {
                return Err(refuse(Outcome::RevokedKey));
            }
            if found.is_expired(now) {
                return Err(refuse(Outcome::ExpiredKey));
            }
            return Ok((user, found));
        }
        // Refused: find out, for the history only, whom the caller meant, by a lookup that
        // takes as long for a username that exists as for one that does not.
        let named = match username.filter(|name| Username::parse(name).is_ok()) {
            Some(name) => self.db.api_user_id_by_name(name).await?,
            None => None,
        };
        let outcome = match (&shape, username, &named) {
            (Err(KeyError::Checksum), _, _) => Outcome::BadChecksum,
            (Err(_), _, _) => Outcome::MalformedCredentials,
            (Ok(_), Some(_), Some(_)) => Outcome::WrongKey,
            (Ok(_), Some(_), None) => Outcome::UnknownUser,
            (Ok(_), None, _) => Outcome::UnknownKey,
        };
        // A hint only of what has a key's shape: anything else may be another system's secret.
        let hint = matches!(shape, Ok(_) | Err(KeyError::Checksum))
            .then(|| Arc::from(api_key::hint(key.expose())));
        let mut refusal = Refusal::new(ApiError::unauthorized(outcome)).about(None, username, hint);
        refusal.info.api_user_id = named;
        Err(refusal)
    }

    async fn check_token(
        &self,
        token: &Secret,
        now: OffsetDateTime,
    ) -> Result<(Arc<AuthUser>, Arc<CachedSession>), Refusal> {
        let unknown = || Refusal::new(ApiError::unauthorized(Outcome::UnknownToken));
        let Some((id, hash)) = token::parse(token.expose()) else {
            return Err(unknown());
        };
        let Some(session) = self
            .cache
            .session(id, &hash, |id| self.usage.session_seen(id))
            .await?
        else {
            return Err(unknown());
        };
        let user = self.cache.user(session.record.api_user_id).await?;
        let hint = Some(session.key.hint.clone());
        let refuse = |outcome| {
            let mut refusal = Refusal::new(ApiError::unauthorized(outcome)).about(
                user.as_deref(),
                None,
                hint.clone(),
            );
            refusal.info.session_id = Some(session.record.id);
            refusal
        };
        let Some(user) = user.clone() else {
            return Err(refuse(Outcome::RevokedToken));
        };
        if session.record.revoked_at.is_some() {
            return Err(refuse(Outcome::RevokedToken));
        }
        let idle = Duration::seconds(session.record.idle_timeout_s);
        if session.last_seen() + idle <= now
            && session.record.expires_at > now
            && let Some(stored) = self.db.session_by_id(id).await?
        {
            // Idle here, but other nodes may have served it since: their last use reaches the
            // database every few seconds.
            session.seen(stored.last_seen_at);
        }
        if session.record.expires_at <= now || session.last_seen() + idle <= now {
            return Err(refuse(Outcome::ExpiredToken));
        }
        if user.status == Status::Disabled {
            return Err(refuse(Outcome::DisabledUser));
        }
        if session.key.revoked_at.is_some() {
            return Err(refuse(Outcome::RevokedKey));
        }
        if session.key.is_expired(now) {
            return Err(refuse(Outcome::ExpiredKey));
        }
        Ok((user, session))
    }

    /// `POST /api/v1/login`: the same checks as any call, then a new session.
    pub async fn login(&self, username: &str, key: Secret, ip: IpAddr) -> Result<Login, Refusal> {
        let attempt = match self.throttle.attempt(ip, username).await {
            Ok(attempt) => attempt,
            Err(retry) => {
                let error = ApiError::login_throttled(retry.0);
                return Err(Refusal::new(error).about(None, Some(username), None));
            }
        };
        let presented = Presented::Key {
            username: Some(username.to_owned()),
            key,
        };
        let caller = match self.authenticate(&presented, ip, Need::Nothing).await {
            Ok(caller) => caller,
            Err(refusal) => {
                if refusal.error.status() == axum::http::StatusCode::UNAUTHORIZED {
                    attempt.failed();
                }
                return Err(refusal);
            }
        };
        drop(attempt);
        let now = self.clock.now();
        let lifetime_end = now + self.sessions.lifetime;
        let expires_at = match caller.key_expires_at {
            Some(key_end) => key_end.min(lifetime_end),
            None => lifetime_end,
        };
        let id = self.session_numbers.next().await.map_err(|e| {
            let mut refusal = Refusal::new(e.into());
            refusal.info = caller.call_info();
            refusal
        })?;
        let secret = TokenSecret::generate();
        let idle_timeout_s = self.sessions.idle_timeout.whole_seconds();
        let new = NewSession {
            id,
            api_user_id: caller.user.id,
            api_key_id: caller.key_id,
            token_hash: secret.hash(),
            ip,
            created_at: now,
            idle_timeout_s,
            expires_at,
        };
        let mut caller = caller;
        caller.session = Some(SessionInfo {
            id,
            hash: new.token_hash,
            expires_at,
            idle_timeout_s,
            idle_expires_at: now + self.sessions.idle_timeout,
        });
        Ok(Login {
            caller,
            token: secret.into_token(id),
            session: PendingSession(Box::new(new)),
            expires_at,
            idle_timeout_s,
        })
    }

    /// Ends the caller's session.
    pub async fn logout(&self, caller: &Caller) -> Result<(), ApiError> {
        let Some(session) = caller.session else {
            return Err(ApiError::bad_request(
                "This call used a key, not a session token: there is no session to end. \
                 Log out with the token that /api/v1/login returned.",
            ));
        };
        self.db
            .revoke_sessions(caller.user.id, Some(session.id), self.clock.now(), None)
            .await?;
        self.cache.forget_session(&session.hash);
        Ok(())
    }
}
