//! What the auth pipeline reads: credentials by id, hash or name, and the change log.

use super::SqliteStore;
use super::api_users::ip_rules;
use crate::domain::api_user::{AuthKey, AuthUser};
use crate::domain::ids::{ApiKeyId, ApiUserId};
use crate::domain::secret::SecretHash;
use crate::store::rows::api_users::{KEY_COLUMNS, KeyRow, USER_COLUMNS, UserRow};
use crate::store::{AuthStore, CredentialChanges, Result, changes_limit};
use async_trait::async_trait;

#[async_trait]
impl AuthStore for SqliteStore {
    async fn auth_user(&self, id: ApiUserId) -> Result<Option<AuthUser>> {
        let row: Option<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM api_users WHERE id = ?"
        )))
        .bind(id.0)
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut conn = self.read.acquire().await?;
        let ips = ip_rules(&mut conn, row.id).await?;
        Ok(Some(row.into_auth(ips)?))
    }

    async fn api_user_id_by_name(&self, username: &str) -> Result<Option<ApiUserId>> {
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM api_users WHERE username = ?")
            .bind(username)
            .fetch_optional(&self.read)
            .await?;
        Ok(id.map(ApiUserId))
    }

    async fn auth_key(&self, hash: &SecretHash) -> Result<Option<AuthKey>> {
        let row: Option<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = ?"
        )))
        .bind(hash.as_bytes())
        .fetch_optional(&self.read)
        .await?;
        row.map(KeyRow::into_auth).transpose()
    }

    async fn auth_key_by_id(&self, id: ApiKeyId) -> Result<Option<AuthKey>> {
        let row: Option<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?"
        )))
        .bind(id.0)
        .fetch_optional(&self.read)
        .await?;
        row.map(KeyRow::into_auth).transpose()
    }

    fn change_marker(&self) -> u64 {
        self.signal.read()
    }

    async fn credential_changes_since(&self, seq: i64, most: usize) -> Result<CredentialChanges> {
        self.signal.follow();
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT seq, api_user_id FROM credential_changes WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(seq)
        .bind(changes_limit(most))
        .fetch_all(&self.read)
        .await?;
        if let Some(changes) = CredentialChanges::listed(seq, rows, most) {
            return Ok(changes);
        }
        let last = sqlx::query_scalar("SELECT max(seq) FROM credential_changes")
            .fetch_one(&self.read)
            .await?;
        Ok(CredentialChanges::all(seq, last))
    }
}
