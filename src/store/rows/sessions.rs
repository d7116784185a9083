//! Rows of API sessions.

use crate::domain::api_user::{NewSession, SessionRecord, Status};
use crate::domain::history::{LeftOut, Outcome};
use crate::domain::ids::{ApiKeyId, ApiUserId, SessionId};
use crate::domain::secret::SecretHash;
use crate::store::columns::{from_ts, from_ts_opt};
use crate::store::{Result, StoreError};
use sqlx::FromRow;

#[derive(FromRow)]
pub(crate) struct SessionRow {
    id: i64,
    api_user_id: i64,
    api_key_id: i64,
    token_hash: Vec<u8>,
    ip: String,
    created_at: i64,
    last_seen_at: i64,
    idle_timeout_s: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
}

pub(crate) const SESSION_COLUMNS: &str = "id, api_user_id, api_key_id, token_hash, ip, created_at, last_seen_at, \
     idle_timeout_s, expires_at, revoked_at";

impl SessionRow {
    pub(crate) fn into_record(self) -> Result<SessionRecord> {
        Ok(SessionRecord {
            id: SessionId(self.id),
            api_user_id: ApiUserId(self.api_user_id),
            api_key_id: ApiKeyId(self.api_key_id),
            token_hash: SecretHash::from_slice(&self.token_hash)
                .ok_or_else(|| StoreError::Corrupt("token_hash".into()))?,
            ip: self.ip,
            created_at: from_ts(self.created_at),
            last_seen_at: from_ts(self.last_seen_at),
            idle_timeout_s: self.idle_timeout_s,
            expires_at: from_ts(self.expires_at),
            revoked_at: from_ts_opt(self.revoked_at),
        })
    }
}

/// What a store reads of a left-out session's user, after the batch's insert, to tell why: the
/// user's status, and whether the key is still one of the user's. SQLite numbers `$N`
/// parameters in the order they first appear and sqlx binds `$N` to the N-th argument: they
/// must appear in order.
pub(crate) const LEFT_OUT_SQL: &str = "SELECT u.status, EXISTS (SELECT 1 FROM api_keys k \
     WHERE k.api_user_id = $1 AND k.id = $2) FROM api_users u WHERE u.id = $1";

/// Why `session` was left out, from what [`LEFT_OUT_SQL`] found: no user, or its status and
/// whether the key is still one of its keys.
pub(crate) fn left_out_because(session: SessionId, user: Option<(String, bool)>) -> LeftOut {
    let outcome = match user {
        None => Outcome::UnknownUser,
        Some((_, false)) => Outcome::RevokedKey,
        Some((status, true)) if status == Status::Enabled.as_str() => Outcome::Unavailable,
        Some(_) => Outcome::DisabledUser,
    };
    LeftOut { session, outcome }
}

/// Why each of `sessions` that a batch's insert did not write (`written` lists those it did)
/// was left out, read in the batch's transaction on `conn`: see [`LeftOut`].
pub(crate) async fn left_out<DB>(
    conn: &mut DB::Connection,
    sessions: &[NewSession],
    written: &[i64],
) -> Result<Vec<LeftOut>>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'r> (String, bool): FromRow<'r, DB::Row>,
    DB::Arguments: sqlx::IntoArguments<DB>,
{
    let mut left_out = Vec::new();
    if written.len() == sessions.len() {
        // Every one written, as nearly always: no search through a large batch of logins.
        return Ok(left_out);
    }
    for session in sessions.iter().filter(|s| !written.contains(&s.id.0)) {
        let user: Option<(String, bool)> = sqlx::query_as(LEFT_OUT_SQL)
            .bind(session.api_user_id.0)
            .bind(session.api_key_id.0)
            .fetch_optional(&mut *conn)
            .await?;
        left_out.push(left_out_because(session.id, user));
    }
    Ok(left_out)
}
