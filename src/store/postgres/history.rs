//! The API history, its console aggregates, and its retention.

use super::sessions::insert_sessions;
use super::{PgStore, from_ts, ts};
use crate::domain::api_user::NewSession;
use crate::domain::history::{
    HistoryEntry, HistoryQuery, HistoryRecord, LeftOut, OutcomeFilter, RefusedIp, UsageHour,
    request_time, settle_logins,
};
use crate::domain::ids::ApiUserId;
use crate::store::rows::history::{HistoryRow, newest_first};
use crate::store::rows::sessions::left_out;
use crate::store::{HistoryStore, Result};
use async_trait::async_trait;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{Postgres, QueryBuilder};
use time::OffsetDateTime;

/// The whole batch in one statement, a column per array: one round trip and one run of the
/// aggregates' trigger, whatever its size.
fn insert_batch(rows: &[HistoryEntry]) -> Query<'_, Postgres, PgArguments> {
    sqlx::query(
        "INSERT INTO api_history (api_user_id, username, key_hint, session_id, call, ip, status, outcome, \
         date_added, date_modified, request_id) \
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], \
                  $7::integer[], $8::text[], $9::bigint[], $10::bigint[], $11::text[])",
    )
    .bind(rows.iter().map(|e| e.api_user_id.map(|id| id.0)).collect::<Vec<_>>())
    .bind(rows.iter().map(|e| e.username.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|e| e.key_hint.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|e| e.session_id.map(|id| id.0)).collect::<Vec<_>>())
    .bind(rows.iter().map(|e| e.call.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|e| e.ip.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|e| i32::from(e.status)).collect::<Vec<_>>())
    .bind(rows.iter().map(|e| e.outcome.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|e| ts(e.date_added)).collect::<Vec<_>>())
    .bind(rows.iter().map(|e| ts(e.date_modified)).collect::<Vec<_>>())
    .bind(rows.iter().map(|e| e.request_id.as_str()).collect::<Vec<_>>())
}

#[async_trait]
impl HistoryStore for PgStore {
    async fn insert_history(&self, rows: &[HistoryEntry]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        insert_batch(rows).execute(&self.pool).await?;
        Ok(())
    }

    async fn append_history(
        &self,
        rows: &[HistoryEntry],
        sessions: &[NewSession],
    ) -> Result<Vec<LeftOut>> {
        if sessions.is_empty() {
            self.insert_history(rows).await?;
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let written: Vec<i64> = insert_sessions(sessions).fetch_all(&mut *tx).await?;
        let left_out = left_out::<Postgres>(&mut *tx, sessions, &written).await?;
        insert_batch(&settle_logins(rows, &left_out))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(left_out)
    }

    async fn history(&self, query: &HistoryQuery) -> Result<Vec<HistoryRecord>> {
        let mut select = QueryBuilder::<Postgres>::new(
            "SELECT id, api_user_id, username, key_hint, session_id, call, ip, status, outcome, date_added, \
             date_modified, request_id FROM api_history WHERE true",
        );
        if let Some(user) = query.api_user_id {
            select.push(" AND api_user_id = ").push_bind(user.0);
        }
        match query.outcome {
            Some(OutcomeFilter::Ok) => {
                select.push(" AND outcome = 'ok'");
            }
            Some(OutcomeFilter::Refused) => {
                select.push(" AND outcome <> 'ok'");
            }
            Some(OutcomeFilter::Only(outcome)) => {
                select.push(" AND outcome = ").push_bind(outcome.as_str());
            }
            None => {}
        }
        if let Some(ip) = &query.ip {
            select.push(" AND ip = ").push_bind(ip.clone());
        }
        if let Some(username) = &query.username {
            select.push(" AND username = ").push_bind(username.clone());
        }
        if let Some(request_id) = &query.request_id {
            select
                .push(" AND request_id = ")
                .push_bind(request_id.clone());
            if let Some(at) = request_time(request_id) {
                let window = time::Duration::minutes(1);
                select
                    .push(" AND date_added BETWEEN ")
                    .push_bind(ts(at - window));
                select.push(" AND ").push_bind(ts(at + window));
            }
        }
        // Dates become id bounds, found on the date index, so the page is still read newest
        // first along the user's index instead of sorting a whole date range. Ids follow
        // dates to within a batch (and, with several nodes, to within their clocks' drift),
        // hence the minute of slack; the exact test stays too.
        let slack = time::Duration::minutes(1);
        if let Some(from) = query.from {
            let first: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM api_history WHERE date_added >= $1 ORDER BY date_added LIMIT 1",
            )
            .bind(ts(from - slack))
            .fetch_optional(&self.pool)
            .await?;
            select
                .push(" AND id >= ")
                .push_bind(first.unwrap_or(i64::MAX));
            select.push(" AND date_added >= ").push_bind(ts(from));
        }
        if let Some(to) = query.to {
            let last: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM api_history WHERE date_added < $1 ORDER BY date_added DESC LIMIT 1",
            )
            .bind(ts(to + slack))
            .fetch_optional(&self.pool)
            .await?;
            select.push(" AND id <= ").push_bind(last.unwrap_or(0));
            select.push(" AND date_added < ").push_bind(ts(to));
        }
        if let Some(before) = query.before_id {
            select.push(" AND id < ").push_bind(before);
        }
        if let Some(after) = query.after_id {
            select.push(" AND id > ").push_bind(after);
        }
        let order = match query.after_id {
            // The rows nearest the id, read upwards along the same index, then turned over.
            Some(_) => " ORDER BY id LIMIT ",
            None => " ORDER BY id DESC LIMIT ",
        };
        select
            .push(order)
            .push_bind(i64::from(query.limit.clamp(1, 10_000)));
        let rows: Vec<HistoryRow> = select.build_query_as().fetch_all(&self.pool).await?;
        Ok(newest_first(rows, query))
    }

    async fn usage_hourly(&self, id: ApiUserId, since: OffsetDateTime) -> Result<Vec<UsageHour>> {
        let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT hour, ok, refused FROM api_usage_hourly WHERE api_user_id = $1 AND hour >= $2 ORDER BY hour",
        )
        .bind(id.0)
        .bind(ts(since) - ts(since).rem_euclid(3_600_000_000))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(hour, ok, refused)| UsageHour {
                hour: from_ts(hour),
                ok,
                refused,
            })
            .collect())
    }

    async fn refused_ips(
        &self,
        id: ApiUserId,
        since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<RefusedIp>> {
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT ip, calls, first_at, last_at FROM api_refused_ips WHERE api_user_id = $1 AND last_at >= $2 \
             ORDER BY calls DESC, last_at DESC LIMIT $3",
        )
        .bind(id.0)
        .bind(ts(since))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(ip, calls, first_at, last_at)| RefusedIp {
                ip,
                calls,
                first_at: from_ts(first_at),
                last_at: from_ts(last_at),
            })
            .collect())
    }

    async fn prune_history(
        &self,
        older_than: OffsetDateTime,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<u64> {
        // In slices, so no statement holds its locks or its snapshot for long.
        let mut total = 0;
        loop {
            let deleted = sqlx::query(
                "DELETE FROM api_history WHERE id IN \
                 (SELECT id FROM api_history WHERE date_added < $1 ORDER BY date_added LIMIT 10000)",
            )
            .bind(ts(older_than))
            .execute(&self.pool)
            .await?
            .rows_affected();
            total += deleted;
            progress(deleted);
            if deleted == 0 {
                // The aggregates follow the rows they count.
                sqlx::query("DELETE FROM api_usage_hourly WHERE hour < $1")
                    .bind(ts(older_than))
                    .execute(&self.pool)
                    .await?;
                sqlx::query("DELETE FROM api_refused_ips WHERE last_at < $1")
                    .bind(ts(older_than))
                    .execute(&self.pool)
                    .await?;
                return Ok(total);
            }
        }
    }
}
