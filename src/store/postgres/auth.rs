//! What the auth pipeline reads: credentials by id, hash or name, and the change log.

use super::PgStore;
use super::api_users::ip_rules;
use crate::domain::api_user::{AuthKey, AuthUser};
use crate::domain::ids::{ApiKeyId, ApiUserId};
use crate::domain::secret::SecretHash;
use crate::store::rows::api_users::{KEY_COLUMNS, KeyRow, USER_COLUMNS, UserRow};
use crate::store::{AuthStore, CredentialChanges, Result, changes_limit};
use async_trait::async_trait;
use std::time::Duration;

#[async_trait]
impl AuthStore for PgStore {
    async fn auth_user(&self, id: ApiUserId) -> Result<Option<AuthUser>> {
        let mut conn = self.pool.acquire().await?;
        let row: Option<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM api_users WHERE id = $1"
        )))
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let ips = ip_rules(&mut conn, row.id).await?;
        Ok(Some(row.into_auth(ips)?))
    }

    async fn api_user_id_by_name(&self, username: &str) -> Result<Option<ApiUserId>> {
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM api_users WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
        Ok(id.map(ApiUserId))
    }

    async fn auth_key(&self, hash: &SecretHash) -> Result<Option<AuthKey>> {
        let row: Option<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = $1"
        )))
        .bind(hash.as_bytes())
        .fetch_optional(&self.pool)
        .await?;
        row.map(KeyRow::into_auth).transpose()
    }

    async fn auth_key_by_id(&self, id: ApiKeyId) -> Result<Option<AuthKey>> {
        let row: Option<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"
        )))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        row.map(KeyRow::into_auth).transpose()
    }

    /// This process's own credential commits, and in a server the notifications of every
    /// other process's (`listener`).
    fn change_marker(&self) -> u64 {
        self.feed.marker()
    }

    async fn change_announced(&self) {
        self.feed.wait().await;
    }

    fn change_poll_interval(&self) -> Duration {
        self.feed.poll_interval()
    }

    async fn credential_changes_since(&self, seq: i64, most: usize) -> Result<CredentialChanges> {
        // Writers of the log commit in the order of its numbers (`begin_credentials`), so
        // nothing can appear later below the last number read here, nor below its end.
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT seq, api_user_id FROM credential_changes WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(seq)
        .bind(changes_limit(most))
        .fetch_all(&self.pool)
        .await?;
        if let Some(changes) = CredentialChanges::listed(seq, rows, most) {
            return Ok(changes);
        }
        let last = sqlx::query_scalar("SELECT max(seq) FROM credential_changes")
            .fetch_one(&self.pool)
            .await?;
        Ok(CredentialChanges::all(seq, last))
    }
}
