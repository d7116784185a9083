//! Webhook endpoints and their deliveries. Claims need no row locks here: every write goes
//! through the one writer connection, so a claim's select and update are one step.

use super::admin::insert_audit;
use super::{SqliteStore, ts};
use crate::domain::admin::AuditEntry;
use crate::domain::api_user::Status;
use crate::domain::ids::{DeliveryId, WebhookId};
use crate::domain::webhook::{
    AlertClaim, AttemptResult, DeliveryQuery, DeliveryRecord, DueDelivery, ExpiringKey, NewEvent,
    NewWebhook, Recipients, SecretRoll, Webhook, WebhookTarget,
};
use crate::store::rows::webhooks::{
    AttemptColumns, DELIVERY_COLUMNS, DUE_COLUMNS, DeliveryRow, DueRow, ExpiringRow,
    TARGET_COLUMNS, TargetRow, WEBHOOK_COLUMNS, WebhookRow, expiring_keys_sql, micros, recipients,
};
use crate::store::{Result, StoreError, WebhookStore};
use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use time::OffsetDateTime;

/// Claims `alert` at `at`; false when it was raised within its quiet period.
async fn claim_alert(conn: &mut SqliteConnection, alert: &AlertClaim, at: i64) -> Result<bool> {
    let claimed = match alert.quiet {
        None => sqlx::query(
            "INSERT INTO webhook_alerts (alert_key, raised_at) VALUES (?, ?) ON CONFLICT (alert_key) DO NOTHING",
        )
        .bind(&alert.key)
        .bind(at)
        .execute(conn)
        .await?,
        Some(quiet) => sqlx::query(
            "INSERT INTO webhook_alerts (alert_key, raised_at) VALUES (?1, ?2) \
             ON CONFLICT (alert_key) DO UPDATE SET raised_at = excluded.raised_at \
             WHERE webhook_alerts.raised_at <= ?2 - ?3",
        )
        .bind(&alert.key)
        .bind(at)
        .bind(micros(quiet))
        .execute(conn)
        .await?,
    };
    Ok(claimed.rows_affected() > 0)
}

impl SqliteStore {
    /// Makes one audited change to one row, in one transaction; not found when the row is not
    /// there.
    async fn change_one(
        &self,
        change: sqlx::query::Query<'_, Sqlite, sqlx::sqlite::SqliteArguments>,
        audit: &AuditEntry,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        if change.execute(&mut *tx).await?.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn create_webhook(
        &self,
        webhook: &NewWebhook,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<WebhookId> {
        let mut tx = self.begin_write().await?;
        let id = sqlx::query(
            "INSERT INTO webhooks (url, description, events, sealed_secret, secret_hint, status, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, 'enabled', ?, ?)",
        )
        .bind(webhook.url.as_str())
        .bind(&webhook.description)
        .bind(webhook.events.to_db())
        .bind(&webhook.sealed_secret)
        .bind(&webhook.secret_hint)
        .bind(ts(now))
        .bind(ts(now))
        .execute(&mut *tx)
        .await?
        .last_insert_rowid();
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(WebhookId(id))
    }

    async fn webhooks(&self) -> Result<Vec<Webhook>> {
        let rows: Vec<WebhookRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks w ORDER BY w.id"
        )))
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(WebhookRow::into_webhook).collect()
    }

    async fn webhook(&self, id: WebhookId) -> Result<Option<Webhook>> {
        let row: Option<WebhookRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks w WHERE w.id = ?"
        )))
        .bind(id.0)
        .fetch_optional(&self.read)
        .await?;
        row.map(WebhookRow::into_webhook).transpose()
    }

    async fn webhook_target(&self, id: WebhookId) -> Result<Option<WebhookTarget>> {
        let row: Option<TargetRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {TARGET_COLUMNS} FROM webhooks w WHERE w.id = ?"
        )))
        .bind(id.0)
        .fetch_optional(&self.read)
        .await?;
        row.map(TargetRow::into_target).transpose()
    }

    async fn set_webhook_status(
        &self,
        id: WebhookId,
        status: Status,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<()> {
        let change = sqlx::query("UPDATE webhooks SET status = ?, updated_at = ? WHERE id = ?")
            .bind(status.as_str())
            .bind(ts(now))
            .bind(id.0);
        self.change_one(change, audit).await
    }

    async fn roll_webhook_secret(
        &self,
        id: WebhookId,
        roll: &SecretRoll,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        // The replaced secret is read inside the transaction that replaces it (SQLite writes
        // one transaction at a time).
        if let Some(seen) = &roll.replacing {
            let current: Option<String> =
                sqlx::query_scalar("SELECT secret_hint FROM webhooks WHERE id = ?")
                    .bind(id.0)
                    .fetch_optional(&mut *tx)
                    .await?;
            super::super::webhook_roll_replaces(current.as_deref(), seen)?;
        }
        match roll.previous_until {
            Some(until) => sqlx::query(
                "INSERT INTO webhook_previous_secrets (webhook_id, sealed_secret, secret_hint, expires_at) \
                 SELECT id, sealed_secret, secret_hint, ? FROM webhooks WHERE id = ? \
                 ON CONFLICT (webhook_id) DO UPDATE SET sealed_secret = excluded.sealed_secret, \
                 secret_hint = excluded.secret_hint, expires_at = excluded.expires_at",
            )
            .bind(ts(until))
            .bind(id.0),
            None => sqlx::query("DELETE FROM webhook_previous_secrets WHERE webhook_id = ?")
                .bind(id.0),
        }
        .execute(&mut *tx)
        .await?;
        let changed = sqlx::query(
            "UPDATE webhooks SET sealed_secret = ?, secret_hint = ?, updated_at = ? WHERE id = ?",
        )
        .bind(&roll.sealed_secret)
        .bind(&roll.secret_hint)
        .bind(ts(now))
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        if changed.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_webhook(&self, id: WebhookId, audit: &AuditEntry) -> Result<()> {
        let change = sqlx::query("DELETE FROM webhooks WHERE id = ?").bind(id.0);
        self.change_one(change, audit).await
    }

    async fn enqueue_event(
        &self,
        event: &NewEvent,
        to: Recipients,
        alert: Option<&AlertClaim>,
    ) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let candidates: Vec<(i64, String)> = match to {
            Recipients::Subscribed => {
                sqlx::query_as(
                    "SELECT id, events FROM webhooks WHERE status = 'enabled' ORDER BY id",
                )
                .fetch_all(&mut *tx)
                .await?
            }
            Recipients::One(id) => {
                sqlx::query_as("SELECT id, events FROM webhooks WHERE id = ?")
                    .bind(id.0)
                    .fetch_all(&mut *tx)
                    .await?
            }
        };
        let recipients = recipients(candidates, to, event.kind)?;
        let at = ts(event.created_at);
        if recipients.is_empty() {
            return Ok(0);
        }
        if let Some(alert) = alert
            && !claim_alert(&mut tx, alert, at).await?
        {
            return Ok(0);
        }
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, payload, state, created_at, next_attempt_at) ",
        );
        insert.push_values(&recipients, |mut row, id| {
            row.push_bind(*id)
                .push_bind(&event.id)
                .push_bind(event.kind.as_str())
                .push_bind(&event.payload)
                .push_bind("pending")
                .push_bind(at)
                .push_bind(at);
        });
        insert.build().execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(recipients.len() as u64)
    }

    async fn claim_deliveries(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<DueDelivery>> {
        let mut tx = self.begin_write().await?;
        let rows: Vec<DueRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE webhook_deliveries SET claimed_until = ?1 WHERE id IN ( \
                 SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
                 WHERE d.state = 'pending' AND d.next_attempt_at <= ?2 \
                 AND (d.claimed_until IS NULL OR d.claimed_until <= ?2) AND w.status = 'enabled' \
                 ORDER BY d.next_attempt_at, d.id LIMIT ?3) \
             RETURNING {DUE_COLUMNS}"
        )))
        .bind(ts(lease_until))
        .bind(ts(now))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut due: Vec<DueDelivery> = rows.into_iter().map(DueDelivery::from).collect();
        due.sort_by_key(|d| d.id);
        Ok(due)
    }

    async fn finish_delivery(
        &self,
        id: DeliveryId,
        result: &AttemptResult,
        at: OffsetDateTime,
    ) -> Result<()> {
        let set = AttemptColumns::of(result, ts(at));
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE webhook_deliveries SET state = ?, attempts = attempts + 1, last_attempt_at = ?, \
             last_status = ?, last_error = ?, next_attempt_at = ?, delivered_at = coalesce(?, delivered_at), \
             claimed_until = NULL WHERE id = ?",
        )
        .bind(set.state)
        .bind(ts(at))
        .bind(set.status)
        .bind(set.error)
        .bind(set.next_at)
        .bind(set.delivered_at)
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn deliveries(&self, query: &DeliveryQuery) -> Result<Vec<DeliveryRecord>> {
        let rows: Vec<DeliveryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
             WHERE (?1 IS NULL OR webhook_id = ?1) AND (?2 IS NULL OR state = ?2) AND (?3 IS NULL OR id < ?3) \
             ORDER BY id DESC LIMIT ?4"
        )))
        .bind(query.webhook_id.map(|id| id.0))
        .bind(query.state.map(|s| s.as_str()))
        .bind(query.before_id)
        .bind(i64::from(query.limit))
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(DeliveryRow::into_record).collect()
    }

    async fn delivery(&self, id: DeliveryId) -> Result<Option<DeliveryRecord>> {
        let row: Option<DeliveryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ?"
        )))
        .bind(id.0)
        .fetch_optional(&self.read)
        .await?;
        row.map(DeliveryRow::into_record).transpose()
    }

    async fn retry_delivery(
        &self,
        id: DeliveryId,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<()> {
        let change = sqlx::query(
            "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = ?, claimed_until = NULL WHERE id = ?",
        )
        .bind(ts(now))
        .bind(id.0);
        self.change_one(change, audit).await
    }

    async fn keys_expiring(
        &self,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Vec<ExpiringKey>> {
        let rows: Vec<ExpiringRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(expiring_keys_sql("?1", "?2")))
                .bind(ts(now))
                .bind(ts(until))
                .fetch_all(&self.read)
                .await?;
        Ok(rows.into_iter().map(ExpiringKey::from).collect())
    }

    async fn prune_webhooks(&self, now: OffsetDateTime, older_than: OffsetDateTime) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let deliveries = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE state IN ('delivered', 'dead') AND created_at < ?",
        )
        .bind(ts(older_than))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM webhook_alerts WHERE raised_at < ?")
            .bind(ts(older_than))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM webhook_previous_secrets WHERE expires_at <= ?")
            .bind(ts(now))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(deliveries)
    }
}
