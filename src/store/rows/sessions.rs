//! Rows of API sessions.

use crate::domain::api_user::{NewSession, SessionRecord};
use crate::domain::history::{LEFT_OUT_SQL, LeftOut};
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
    for session in sessions.iter().filter(|s| !written.contains(&s.id.0)) {
        let user: Option<(String, bool)> = sqlx::query_as(LEFT_OUT_SQL)
            .bind(session.api_user_id.0)
            .bind(session.api_key_id.0)
            .fetch_optional(&mut *conn)
            .await?;
        left_out.push(LeftOut::because(
            session.id,
            user.as_ref().map(|(status, key)| (status.as_str(), *key)),
        ));
    }
    Ok(left_out)
}
