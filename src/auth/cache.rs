//! Credentials kept in memory, so an authenticated call reads no database.
//!
//! Entries load on first use and are dropped when the change log names their user. Before each
//! request the cache compares the store's change marker (a cheap read) with the one it last
//! acted on, and syncs from the change log when it moved: a change made by the CLI or another
//! node holds on the next request here.

use crate::clock::{from_micros, to_micros};
use crate::domain::api_user::{AuthKey, AuthUser, SessionRecord};
use crate::domain::ids::{ApiUserId, SessionId};
use crate::domain::secret::SecretHash;
use crate::store::{Db, Result, StoreError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use time::OffsetDateTime;

/// Past this many entries a map is emptied rather than grown: it refills with what is in use.
const MAX_ENTRIES: usize = 200_000;

/// Past this many changes since the last sync, a sync empties the maps rather than reading
/// which users the changes name: they refill with what is in use.
const MOST_CHANGES: usize = 1_000;

pub struct CachedSession {
    pub record: SessionRecord,
    pub key: Arc<AuthKey>,
    /// Last use in microseconds since the epoch; slides the idle timeout.
    last_seen_us: AtomicI64,
}

impl CachedSession {
    pub fn last_seen(&self) -> OffsetDateTime {
        from_micros(self.last_seen_us.load(Ordering::Relaxed))
    }

    pub fn seen(&self, at: OffsetDateTime) {
        self.last_seen_us
            .fetch_max(to_micros(at), Ordering::Relaxed);
    }
}

pub struct CredentialCache {
    db: Db,
    users: RwLock<HashMap<ApiUserId, Arc<AuthUser>>>,
    keys: RwLock<HashMap<SecretHash, Arc<AuthKey>>>,
    sessions: RwLock<HashMap<SecretHash, Arc<CachedSession>>>,
    /// Moves on every invalidation; a load that raced one is not cached.
    epoch: AtomicU64,
    marker: AtomicU64,
    seq: tokio::sync::Mutex<i64>,
    /// Failed syncs so far: a request that waited for another's sync and saw it fail answers
    /// at once instead of queueing for the database in turn.
    failures: AtomicU64,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

impl CredentialCache {
    pub async fn new(db: Db) -> Result<Self> {
        let marker = db.change_marker();
        // Only the log's end: an empty cache has nothing to drop.
        let start = db.credential_changes_since(0, 0).await?;
        Ok(Self {
            db,
            users: RwLock::default(),
            keys: RwLock::default(),
            sessions: RwLock::default(),
            epoch: AtomicU64::new(0),
            marker: AtomicU64::new(marker),
            seq: tokio::sync::Mutex::new(start.last_seq),
            failures: AtomicU64::new(0),
        })
    }

    /// Syncs if the change marker moved since the last sync.
    pub async fn ensure_fresh(&self) -> Result<()> {
        if self.is_fresh() {
            return Ok(());
        }
        self.sync(false).await
    }

    fn is_fresh(&self) -> bool {
        self.db.change_marker() == self.marker.load(Ordering::Acquire)
    }

    /// Drops the entries of every user named in the change log since the last sync. Unless
    /// `always`, a sync that another request finished while this one waited is enough.
    pub async fn sync(&self, always: bool) -> Result<()> {
        let failures = self.failures.load(Ordering::Acquire);
        let mut seq = self.seq.lock().await;
        if !always && self.is_fresh() {
            return Ok(());
        }
        if !always && self.failures.load(Ordering::Acquire) != failures {
            return Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut));
        }
        // Read the marker before the log: a change that lands in between moves it again.
        let marker = self.db.change_marker();
        let changes = match self.db.credential_changes_since(*seq, MOST_CHANGES).await {
            Ok(changes) => changes,
            Err(error) => {
                self.failures.fetch_add(1, Ordering::AcqRel);
                return Err(error);
            }
        };
        match changes.users {
            Some(users) if users.is_empty() => {}
            Some(users) => self.invalidate(&users),
            None => self.clear(),
        }
        *seq = changes.last_seq;
        self.marker.store(marker, Ordering::Release);
        Ok(())
    }

    /// Drops the entries of `users`, sorted.
    fn invalidate(&self, users: &[ApiUserId]) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let mut map = write(&self.users);
        for user in users {
            map.remove(user);
        }
        drop(map);
        let changed = |user: &ApiUserId| users.binary_search(user).is_ok();
        write(&self.keys).retain(|_, key| !changed(&key.api_user_id));
        write(&self.sessions).retain(|_, session| !changed(&session.record.api_user_id));
    }

    /// Drops every entry.
    fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        write(&self.users).clear();
        write(&self.keys).clear();
        write(&self.sessions).clear();
    }

    pub async fn user(&self, id: ApiUserId) -> Result<Option<Arc<AuthUser>>> {
        if let Some(user) = read(&self.users).get(&id) {
            return Ok(Some(user.clone()));
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let Some(user) = self.db.auth_user(id).await?.map(Arc::new) else {
            return Ok(None);
        };
        self.insert(&self.users, id, user.clone(), epoch);
        Ok(Some(user))
    }

    pub async fn key(&self, hash: &SecretHash) -> Result<Option<Arc<AuthKey>>> {
        if let Some(key) = read(&self.keys).get(hash) {
            return Ok(Some(key.clone()));
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let Some(key) = self.db.auth_key(hash).await?.map(Arc::new) else {
            return Ok(None);
        };
        self.insert(&self.keys, *hash, key.clone(), epoch);
        Ok(Some(key))
    }

    /// Session `id` and the key it was made with, if `hash` is its secret's digest.
    /// `unwritten_seen` is a last use not yet in the database.
    pub async fn session(
        &self,
        id: SessionId,
        hash: &SecretHash,
        unwritten_seen: impl FnOnce(SessionId) -> Option<OffsetDateTime>,
    ) -> Result<Option<Arc<CachedSession>>> {
        if let Some(session) = read(&self.sessions).get(hash) {
            return Ok((session.record.id == id).then(|| session.clone()));
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        // `SecretHash` compares in constant time.
        let Some(record) = self
            .db
            .session_by_id(id)
            .await?
            .filter(|record| record.token_hash == *hash)
        else {
            return Ok(None);
        };
        let Some(key) = self.db.auth_key_by_id(record.api_key_id).await? else {
            return Ok(None);
        };
        let seen =
            unwritten_seen(record.id).map_or(record.last_seen_at, |t| t.max(record.last_seen_at));
        let session = Arc::new(CachedSession {
            last_seen_us: AtomicI64::new(to_micros(seen)),
            record,
            key: Arc::new(key),
        });
        self.insert(&self.sessions, *hash, session.clone(), epoch);
        Ok(Some(session))
    }

    /// Forgets a session this process just ended (the database already says so).
    pub fn forget_session(&self, hash: &SecretHash) {
        write(&self.sessions).remove(hash);
    }

    fn insert<K: std::hash::Hash + Eq, V>(
        &self,
        map: &RwLock<HashMap<K, V>>,
        key: K,
        value: V,
        epoch: u64,
    ) {
        let mut map = write(map);
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(key, value);
    }
}
