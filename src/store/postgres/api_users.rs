//! API users, their keys and IP rules.

use super::admin::insert_audit;
use super::{PgStore, ts, ts_opt, unique_violation};
use crate::domain::admin::AuditEntry;
use crate::domain::api_user::{
    ApiUser, ApiUserChanges, ApiUserSummary, KeyInfo, NewApiUser, NewKey, Status,
};
use crate::domain::catalog::PageRequest;
use crate::domain::ids::{ApiKeyId, ApiUserId};
use crate::domain::ip_rule::IpRule;
use crate::store::rows::api_users::{
    KEY_COLUMNS, KeyRow, USER_COLUMNS, UserRow, parse_rule, parse_rules,
};
use crate::store::{
    ApiUserStore, NEWEST_KEY_SQL, Replacing, Result, RetireOld, RolledKey, StoreError,
};
use async_trait::async_trait;
use sqlx::PgConnection;
use std::collections::HashMap;
use time::OffsetDateTime;

pub(super) async fn ip_rules(conn: &mut PgConnection, id: i64) -> Result<Vec<IpRule>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT rule FROM api_ip_rules WHERE api_user_id = $1 ORDER BY created_at, rule",
    )
    .bind(id)
    .fetch_all(conn)
    .await?;
    parse_rules(rows)
}

async fn insert_key(
    conn: &mut PgConnection,
    user: i64,
    key: &NewKey,
    now: OffsetDateTime,
) -> Result<ApiKeyId> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO api_keys (api_user_id, key_hash, hint, imported, created_at, expires_at, \
         issued_by_key_id) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(user)
    .bind(key.hash.as_bytes())
    .bind(&key.hint)
    .bind(key.imported)
    .bind(ts(now))
    .bind(ts_opt(key.expires_at))
    .bind(key.issued_by.map(|k| k.0))
    .fetch_one(conn)
    .await
    .map_err(|e| unique_violation(e, "key", "this key is already in use; generate a new one"))?;
    Ok(ApiKeyId(id))
}

/// Adds the rules in one statement; those already on the list are left as they are.
async fn insert_rules(
    conn: &mut PgConnection,
    user: i64,
    rules: &[IpRule],
    now: OffsetDateTime,
) -> Result<u64> {
    if rules.is_empty() {
        return Ok(0);
    }
    let rules: Vec<String> = rules.iter().map(ToString::to_string).collect();
    Ok(sqlx::query(
        "INSERT INTO api_ip_rules (api_user_id, rule, created_at) \
         SELECT $1, rule, $3 FROM unnest($2::text[]) AS r (rule) \
         ON CONFLICT (api_user_id, rule) DO NOTHING",
    )
    .bind(user)
    .bind(rules)
    .bind(ts(now))
    .execute(conn)
    .await?
    .rows_affected())
}

async fn revoke_all_sessions(
    conn: &mut PgConnection,
    user: i64,
    now: OffsetDateTime,
) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE api_sessions SET revoked_at = $1 WHERE api_user_id = $2 AND revoked_at IS NULL",
    )
    .bind(ts(now))
    .bind(user)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Marks the user changed and locks its row for the rest of the transaction.
async fn touch_user(conn: &mut PgConnection, id: ApiUserId, now: OffsetDateTime) -> Result<()> {
    let found = sqlx::query("UPDATE api_users SET updated_at = $1 WHERE id = $2")
        .bind(ts(now))
        .bind(id.0)
        .execute(conn)
        .await?
        .rows_affected();
    if found == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

impl PgStore {
    async fn load_user(&self, row: UserRow) -> Result<ApiUser> {
        let mut conn = self.pool.acquire().await?;
        let ips = ip_rules(&mut conn, row.id).await?;
        let keys: Vec<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE api_user_id = $1 ORDER BY id DESC"
        )))
        .bind(row.id)
        .fetch_all(&mut *conn)
        .await?;
        row.into_user(ips, keys.iter().map(KeyRow::info).collect())
    }
}

#[async_trait]
impl ApiUserStore for PgStore {
    async fn create_api_user(
        &self,
        user: &NewApiUser,
        key: &NewKey,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<ApiUserId> {
        let mut tx = self.begin_credentials().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO api_users (username, description, environment, status, scopes, rate_limit_per_minute, \
             management, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
        )
        .bind(user.username.as_str())
        .bind(&user.description)
        .bind(user.environment.as_str())
        .bind(user.status.as_str())
        .bind(user.scopes.to_db())
        .bind(i64::from(user.rate_limit_per_minute))
        .bind(user.management)
        .bind(ts(now))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| unique_violation(e, "username", "an API user with this username already exists"))?;
        insert_key(&mut tx, id, key, now).await?;
        insert_rules(&mut tx, id, &user.ips, now).await?;
        insert_audit(&mut tx, audit).await?;
        self.commit_credentials(tx).await?;
        Ok(ApiUserId(id))
    }

    async fn api_user(&self, username: &str) -> Result<Option<ApiUser>> {
        let row: Option<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM api_users WHERE username = $1"
        )))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(Some(self.load_user(row).await?)),
            None => Ok(None),
        }
    }

    async fn list_api_users(
        &self,
        search: Option<&str>,
        stats_since: OffsetDateTime,
        page: Option<PageRequest>,
    ) -> Result<Vec<ApiUserSummary>> {
        // ILIKE: SQLite's LIKE ignores the case of ASCII letters, and the search should too.
        let pattern = search.map(crate::store::columns::contains_pattern);
        let mut conn = self.pool.acquire().await?;
        let order = if page.is_some() { "id" } else { "username" };
        let rows: Vec<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM api_users \
             WHERE ($1::text IS NULL OR username ILIKE $1 ESCAPE '\\' OR description ILIKE $1 ESCAPE '\\') AND id > $2 \
             ORDER BY {order} LIMIT $3"
        )))
        .bind(pattern)
        .bind(page.and_then(|p| p.after).unwrap_or(0))
        .bind(page.map(|p| i64::from(p.limit)))
        .fetch_all(&mut *conn)
        .await?;
        // Rules, keys and figures of the users listed only.
        let (Some(low), Some(high)) = (
            rows.iter().map(|r| r.id).min(),
            rows.iter().map(|r| r.id).max(),
        ) else {
            return Ok(Vec::new());
        };
        let mut rules: HashMap<i64, Vec<IpRule>> = HashMap::new();
        for (user, rule) in sqlx::query_as::<_, (i64, String)>(
            "SELECT api_user_id, rule FROM api_ip_rules WHERE api_user_id BETWEEN $1 AND $2 \
             ORDER BY created_at, rule",
        )
        .bind(low)
        .bind(high)
        .fetch_all(&mut *conn)
        .await?
        {
            let rule = parse_rule(&rule)?;
            rules.entry(user).or_default().push(rule);
        }
        let mut keys: HashMap<i64, Vec<KeyInfo>> = HashMap::new();
        let key_rows: Vec<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE api_user_id BETWEEN $1 AND $2 ORDER BY id DESC"
        )))
        .bind(low)
        .bind(high)
        .fetch_all(&mut *conn)
        .await?;
        for key in key_rows {
            keys.entry(key.api_user_id).or_default().push(key.info());
        }
        let mut stats: HashMap<i64, (i64, i64)> = HashMap::new();
        for (user, calls, refused) in sqlx::query_as::<_, (i64, i64, i64)>(
            "SELECT api_user_id, (sum(ok) + sum(refused))::bigint, sum(refused)::bigint \
             FROM api_usage_hourly WHERE hour >= $1 AND api_user_id BETWEEN $2 AND $3 \
             GROUP BY api_user_id",
        )
        // Counted by hour: the window starts at the top of the hour it falls in.
        .bind(ts(stats_since) - ts(stats_since).rem_euclid(3_600_000_000))
        .bind(low)
        .bind(high)
        .fetch_all(&mut *conn)
        .await?
        {
            stats.insert(user, (calls, refused));
        }
        rows.into_iter()
            .map(|row| {
                let id = row.id;
                let (calls_24h, refused_24h) = stats.get(&id).copied().unwrap_or_default();
                let user = row.into_user(
                    rules.remove(&id).unwrap_or_default(),
                    keys.remove(&id).unwrap_or_default(),
                )?;
                Ok(ApiUserSummary {
                    user,
                    calls_24h,
                    refused_24h,
                })
            })
            .collect()
    }

    async fn update_api_user(
        &self,
        id: ApiUserId,
        changes: &ApiUserChanges,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<()> {
        let mut tx = self.begin_credentials().await?;
        if changes.status == Some(Status::Disabled) {
            // Locked `FOR UPDATE` first: a new session's insert reads the row `FOR KEY SHARE`
            // (which a last use's plain `UPDATE` does not wait for, nor this transaction's own
            // update alone), so it waits for this lock. A login's session is then either
            // committed before the lock is granted, and the sessions' revocation below sees
            // it, or checked against the disabled row once this transaction commits.
            sqlx::query("SELECT 1 FROM api_users WHERE id = $1 FOR UPDATE")
                .bind(id.0)
                .execute(&mut *tx)
                .await?;
        }
        touch_user(&mut tx, id, now).await?;
        sqlx::query(
            "UPDATE api_users SET description = coalesce($1, description), environment = coalesce($2, environment), \
             status = coalesce($3, status), scopes = coalesce($4, scopes), \
             rate_limit_per_minute = coalesce($5, rate_limit_per_minute), management = coalesce($6, management) \
             WHERE id = $7",
        )
        .bind(&changes.description)
        .bind(changes.environment.map(|e| e.as_str()))
        .bind(changes.status.map(|s| s.as_str()))
        .bind(changes.scopes.map(|s| s.to_db()))
        .bind(changes.rate_limit_per_minute.map(i64::from))
        .bind(changes.management)
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        if let Some(ips) = &changes.ips {
            sqlx::query("DELETE FROM api_ip_rules WHERE api_user_id = $1")
                .bind(id.0)
                .execute(&mut *tx)
                .await?;
            insert_rules(&mut tx, id.0, ips, now).await?;
        }
        // Disabling ends every session: enabling again must not bring them back.
        if changes.status == Some(Status::Disabled) {
            revoke_all_sessions(&mut tx, id.0, now).await?;
        }
        insert_audit(&mut tx, audit).await?;
        self.commit_credentials(tx).await
    }

    async fn delete_api_user(&self, id: ApiUserId, audit: &AuditEntry) -> Result<()> {
        let mut tx = self.begin_credentials().await?;
        let deleted = sqlx::query("DELETE FROM api_users WHERE id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        insert_audit(&mut tx, audit).await?;
        self.commit_credentials(tx).await
    }

    async fn roll_key(
        &self,
        id: ApiUserId,
        key: &NewKey,
        replacing: Replacing,
        retire: RetireOld,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<Option<RolledKey>> {
        let mut tx = self.begin_credentials().await?;
        touch_user(&mut tx, id, now).await?;
        let live: Vec<(i64, Option<i64>, String)> = sqlx::query_as(
            "SELECT id, expires_at, hint FROM api_keys WHERE api_user_id = $1 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $2) ORDER BY id DESC",
        )
        .bind(id.0)
        .bind(ts(now))
        .fetch_all(&mut *tx)
        .await?;
        let newest: Option<(i64, Option<i64>)> = sqlx::query_as(NEWEST_KEY_SQL)
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?;
        if !replacing.allows(newest) {
            // Dropped unfinished, the transaction changes nothing.
            return Ok(None);
        }
        let old_hint = live.first().map(|(_, _, hint)| hint.clone());
        let mut stopped_now = Vec::new();
        for (index, (key_id, expires_at, hint)) in live.into_iter().enumerate() {
            match retire {
                // Only the current key gets a grace period, and never past its own expiry;
                // a key already in its grace period stops now (at most two live keys).
                RetireOld::At(until) if index == 0 => {
                    let until = expires_at.map_or(ts(until), |own| own.min(ts(until)));
                    sqlx::query("UPDATE api_keys SET expires_at = $1 WHERE id = $2")
                        .bind(until)
                        .bind(key_id)
                        .execute(&mut *tx)
                        .await?;
                }
                _ => {
                    stopped_now.push(hint);
                    sqlx::query(
                        "UPDATE api_keys SET revoked_at = $1, revoked_reason = 'rolled' WHERE id = $2",
                    )
                    .bind(ts(now))
                    .bind(key_id)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        // Sessions made with a key that stops now stop with it.
        sqlx::query(
            "UPDATE api_sessions SET revoked_at = $1 WHERE api_user_id = $2 AND revoked_at IS NULL \
             AND api_key_id IN (SELECT id FROM api_keys WHERE api_user_id = $2 AND revoked_at = $1)",
        )
        .bind(ts(now))
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        let new_id = insert_key(&mut tx, id.0, key, now).await?;
        insert_audit(
            &mut tx,
            &RolledKey::audit_of(audit, old_hint.as_deref(), &stopped_now),
        )
        .await?;
        self.commit_credentials(tx).await?;
        Ok(Some(RolledKey {
            id: new_id,
            old_hint,
            stopped_now,
        }))
    }

    async fn revoke_key(
        &self,
        key: ApiKeyId,
        reason: &str,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<u64> {
        let mut tx = self.begin_credentials().await?;
        sqlx::query(
            "UPDATE api_keys SET revoked_at = $1, revoked_reason = $2 WHERE id = $3 AND revoked_at IS NULL",
        )
        .bind(ts(now))
        .bind(reason)
        .bind(key.0)
        .execute(&mut *tx)
        .await?;
        let ended = sqlx::query(
            "UPDATE api_sessions SET revoked_at = $1 WHERE api_key_id = $2 AND revoked_at IS NULL",
        )
        .bind(ts(now))
        .bind(key.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        insert_audit(&mut tx, audit).await?;
        self.commit_credentials(tx).await?;
        Ok(ended)
    }

    async fn add_ip_rule(
        &self,
        id: ApiUserId,
        rule: &IpRule,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<bool> {
        let mut tx = self.begin_credentials().await?;
        touch_user(&mut tx, id, now).await?;
        let added = insert_rules(&mut tx, id.0, std::slice::from_ref(rule), now).await? > 0;
        if added {
            insert_audit(&mut tx, audit).await?;
        }
        self.commit_credentials(tx).await?;
        Ok(added)
    }

    async fn remove_ip_rule(
        &self,
        id: ApiUserId,
        rule: &IpRule,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<bool> {
        let mut tx = self.begin_credentials().await?;
        touch_user(&mut tx, id, now).await?;
        let removed = sqlx::query("DELETE FROM api_ip_rules WHERE api_user_id = $1 AND rule = $2")
            .bind(id.0)
            .bind(rule.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if removed {
            insert_audit(&mut tx, audit).await?;
        }
        self.commit_credentials(tx).await?;
        Ok(removed)
    }
}
