//! When each API user and session was last used. Kept in memory and written in one batch every
//! few seconds, so a call never costs a write of its own.

use crate::domain::api_user::ApiUser;
use crate::domain::ids::{ApiUserId, SessionId};
use crate::store::Usage;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use time::OffsetDateTime;

#[derive(Default)]
pub struct UsageTracker {
    users: Mutex<HashMap<ApiUserId, (OffsetDateTime, IpAddr)>>,
    sessions: Mutex<HashMap<SessionId, OffsetDateTime>>,
}

impl UsageTracker {
    pub fn touch(
        &self,
        user: ApiUserId,
        ip: IpAddr,
        session: Option<SessionId>,
        now: OffsetDateTime,
    ) {
        self.users
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(user, (now, ip));
        if let Some(session) = session {
            self.sessions
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(session, now);
        }
    }

    /// The unwritten last use of an API user (time and address), newer than the database's.
    pub fn user_seen(&self, user: ApiUserId) -> Option<(OffsetDateTime, IpAddr)> {
        self.users
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&user)
            .copied()
    }

    /// An API user's last use (time and address): the database's, or the newer one not yet
    /// written to it.
    pub fn last_use(&self, user: &ApiUser) -> (Option<OffsetDateTime>, Option<String>) {
        match self.user_seen(user.id) {
            Some((at, ip)) if user.last_used_at.is_none_or(|db| db < at) => {
                (Some(at), Some(ip.to_string()))
            }
            _ => (user.last_used_at, user.last_used_ip.clone()),
        }
    }

    /// The unwritten last use of a session, newer than the database's.
    pub fn session_seen(&self, session: SessionId) -> Option<OffsetDateTime> {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&session)
            .copied()
    }

    /// Takes what is to be written.
    pub fn take(&self) -> Usage {
        let users = std::mem::take(&mut *self.users.lock().unwrap_or_else(PoisonError::into_inner));
        let sessions =
            std::mem::take(&mut *self.sessions.lock().unwrap_or_else(PoisonError::into_inner));
        Usage {
            users: users
                .into_iter()
                .map(|(id, (at, ip))| (id, at, ip.to_string()))
                .collect(),
            sessions: sessions.into_iter().collect(),
        }
    }

    /// Puts back what could not be written, unless newer use arrived meanwhile.
    pub fn restore(&self, usage: Usage) {
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        for (id, at, ip) in usage.users {
            if let Ok(ip) = ip.parse() {
                users.entry(id).or_insert((at, ip));
            }
        }
        drop(users);
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        for (id, at) in usage.sessions {
            sessions.entry(id).or_insert(at);
        }
    }
}
