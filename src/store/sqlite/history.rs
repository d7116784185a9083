use super::history_writer::SqliteHistoryWriter;
use super::sessions::insert_sessions;
use super::{SqliteStore, from_ts, ts};
use crate::domain::api_user::NewSession;
use crate::domain::history::{
    HistoryEntry, HistoryQuery, HistoryRecord, LeftOut, OutcomeFilter, RefusedIp, UsageHour,
    request_time, settle_logins,
};
use crate::domain::ids::ApiUserId;
use crate::store::rows::history::{HistoryRow, newest_first};
use crate::store::rows::sessions::left_out;
use crate::store::{HistoryStore, HistoryWriter, Result, StoreError};
use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::query::Query;
use sqlx::sqlite::SqliteArguments;
use sqlx::{QueryBuilder, Sqlite};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// How long the history writer keeps its turn to write (in memory, the write connection)
/// across its batches before giving it back: another writer (a login's session, an order)
/// waits this long, plus the batch that began before it ran out, where it would otherwise
/// wait for that batch alone.
pub(super) const HOLD: Duration = Duration::from_millis(2);

/// The write connection, kept by the history writer of a database in memory (which lives in
/// that connection) while batches follow each other. Each return to sqlx's pool costs a ping
/// through the connection's thread, which under load cost as much CPU as the batch's insert.
pub(super) struct Held {
    conn: PoolConnection<Sqlite>,
    since: Instant,
}

const COLUMNS: &str = "api_user_id, username, key_hint, session_id, call, ip, status, outcome, \
                       date_added, date_modified, request_id";
pub(super) const COLUMN_COUNT: usize = 11;

/// Batches up to this size are bound as plain values, one prepared statement per size;
/// larger ones go as one JSON array.
pub(super) const VALUES_MAX: usize = 32;

/// `INSERT … VALUES (…), (…)` for 1 to `VALUES_MAX` rows.
pub(super) static VALUES_SQL: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
    (1..=VALUES_MAX)
        .map(|n| {
            let row = format!("({})", ["?"; COLUMN_COUNT].join(", "));
            format!(
                "INSERT INTO api_history ({COLUMNS}) VALUES {}",
                vec![row; n].join(", ")
            )
        })
        .collect()
});

/// The same for a batch of any size, read from one JSONB array.
static JSONB_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let values = (0..COLUMN_COUNT)
        .map(|n| format!("value ->> {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("INSERT INTO api_history ({COLUMNS}) SELECT {values} FROM jsonb_each(jsonb(?))")
});

/// The whole batch in one prepared statement: a single round trip to SQLite and a single
/// implicit transaction, whatever the batch size. A batch of a usual size binds its values
/// (SQLite reads them as they are); a larger one goes as one JSONB array, parsed once.
fn insert_batch(rows: &[HistoryEntry]) -> Result<Query<'static, Sqlite, SqliteArguments>> {
    if let Some(sql) = rows.len().checked_sub(1).and_then(|i| VALUES_SQL.get(i)) {
        let mut insert = sqlx::query(sql.as_str());
        for e in rows {
            insert = insert
                .bind(e.api_user_id.map(|id| id.0))
                .bind(e.username.as_deref().map(str::to_owned))
                .bind(e.key_hint.as_deref().map(str::to_owned))
                .bind(e.session_id.map(|id| id.0))
                .bind(e.call.clone())
                .bind(e.ip.clone())
                .bind(e.status)
                .bind(e.outcome.as_str())
                .bind(ts(e.date_added))
                .bind(ts(e.date_modified))
                .bind(e.request_id.clone());
        }
        return Ok(insert);
    }
    let batch: Vec<_> = rows
        .iter()
        .map(|e| {
            (
                e.api_user_id.map(|id| id.0),
                e.username.as_deref(),
                e.key_hint.as_deref(),
                e.session_id.map(|id| id.0),
                e.call.as_str(),
                e.ip.as_str(),
                e.status,
                e.outcome.as_str(),
                ts(e.date_added),
                ts(e.date_modified),
                e.request_id.as_str(),
            )
        })
        .collect();
    let json = serde_json::to_string(&batch).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(sqlx::query(JSONB_SQL.as_str()).bind(json))
}

#[async_trait]
impl HistoryStore for SqliteStore {
    fn history_writer(&self) -> Result<Option<Box<dyn HistoryWriter>>> {
        let Some(file) = &self.file else {
            // In memory, the database lives in the write pool's one connection.
            return Ok(None);
        };
        let writer = SqliteHistoryWriter::open(
            file,
            self.sync_full,
            self.gate.clone(),
            self.checkpointer.clone(),
        )?;
        Ok(Some(Box::new(writer)))
    }

    async fn insert_history(&self, rows: &[HistoryEntry]) -> Result<()> {
        insert_batch(rows)?
            .execute(&mut *self.write_connection().await?)
            .await?;
        Ok(())
    }

    async fn append_history(
        &self,
        rows: &[HistoryEntry],
        sessions: &[NewSession],
    ) -> Result<Vec<LeftOut>> {
        let mut held = self.history.lock().await;
        let statements = insert_batch(rows).and_then(|insert| {
            let sessions = (!sessions.is_empty())
                .then(|| insert_sessions(sessions))
                .transpose()?;
            Ok((insert, sessions))
        });
        let (insert, session_insert) = match statements {
            Ok(statements) => statements,
            Err(error) => {
                held.take();
                return Err(error);
            }
        };
        if held.as_ref().is_some_and(|h| h.since.elapsed() >= HOLD) {
            // Given back: a writer waiting in the pool's queue gets it before this one.
            held.take();
        }
        let conn = match &mut *held {
            Some(held) => &mut held.conn,
            None => {
                let conn = self.write.acquire().await?;
                let since = Instant::now();
                &mut held.insert(Held { conn, since }).conn
            }
        };
        let left_out = match session_insert {
            // Alone, the insert is its own transaction: one round trip.
            None => insert
                .execute(&mut **conn)
                .await
                .map(|_| Vec::new())
                .map_err(Into::into),
            Some(session_insert) => {
                async {
                    let mut tx = sqlx::Connection::begin(&mut **conn).await?;
                    let written: Vec<i64> = session_insert.fetch_all(&mut *tx).await?;
                    let left_out = left_out::<Sqlite>(&mut *tx, sessions, &written).await?;
                    let insert = match settle_logins(rows, &left_out) {
                        std::borrow::Cow::Borrowed(_) => insert,
                        std::borrow::Cow::Owned(settled) => insert_batch(&settled)?,
                    };
                    insert.execute(&mut *tx).await?;
                    tx.commit().await?;
                    Ok::<_, StoreError>(left_out)
                }
                .await
            }
        };
        left_out.inspect_err(|_| {
            held.take();
        })
    }

    fn history_idle(&self) {
        // Only `append_history`, run by the same writer, holds the lock: it is free here.
        if let Ok(mut held) = self.history.try_lock() {
            held.take();
        }
    }

    async fn history(&self, query: &HistoryQuery) -> Result<Vec<HistoryRecord>> {
        let mut select = QueryBuilder::<Sqlite>::new(
            "SELECT id, api_user_id, username, key_hint, session_id, call, ip, status, outcome, date_added, \
             date_modified, request_id FROM api_history WHERE 1 = 1",
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
        // dates to within a batch, hence the minute of slack; the exact test stays too.
        let slack = time::Duration::minutes(1);
        if let Some(from) = query.from {
            let first: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM api_history WHERE date_added >= ? ORDER BY date_added LIMIT 1",
            )
            .bind(ts(from - slack))
            .fetch_optional(&self.read)
            .await?;
            select
                .push(" AND id >= ")
                .push_bind(first.unwrap_or(i64::MAX));
            select.push(" AND +date_added >= ").push_bind(ts(from));
        }
        if let Some(to) = query.to {
            let last: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM api_history WHERE date_added < ? ORDER BY date_added DESC LIMIT 1",
            )
            .bind(ts(to + slack))
            .fetch_optional(&self.read)
            .await?;
            select.push(" AND id <= ").push_bind(last.unwrap_or(0));
            select.push(" AND +date_added < ").push_bind(ts(to));
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
        let rows: Vec<HistoryRow> = select.build_query_as().fetch_all(&self.read).await?;
        Ok(newest_first(rows, query))
    }

    async fn usage_hourly(&self, id: ApiUserId, since: OffsetDateTime) -> Result<Vec<UsageHour>> {
        let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT hour, ok, refused FROM api_usage_hourly WHERE api_user_id = ? AND hour >= ? ORDER BY hour",
        )
        .bind(id.0)
        .bind(ts(since) - ts(since).rem_euclid(3_600_000_000))
        .fetch_all(&self.read)
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
            "SELECT ip, calls, first_at, last_at FROM api_refused_ips WHERE api_user_id = ? AND last_at >= ? \
             ORDER BY calls DESC, last_at DESC LIMIT ?",
        )
        .bind(id.0)
        .bind(ts(since))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
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
        // In slices, so the writer never holds the lock long enough to stall requests.
        let mut total = 0;
        loop {
            let deleted = sqlx::query(
                "DELETE FROM api_history WHERE id IN \
                 (SELECT id FROM api_history WHERE date_added < ? ORDER BY date_added LIMIT 10000)",
            )
            .bind(ts(older_than))
            .execute(&mut *self.write_connection().await?)
            .await?
            .rows_affected();
            total += deleted;
            progress(deleted);
            if deleted == 0 {
                // The aggregates follow the rows they count.
                sqlx::query("DELETE FROM api_usage_hourly WHERE hour < ?")
                    .bind(ts(older_than))
                    .execute(&mut *self.write_connection().await?)
                    .await?;
                sqlx::query("DELETE FROM api_refused_ips WHERE last_at < ?")
                    .bind(ts(older_than))
                    .execute(&mut *self.write_connection().await?)
                    .await?;
                return Ok(total);
            }
        }
    }
}
