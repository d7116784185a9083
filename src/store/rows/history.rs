//! Rows of the API history.

use crate::domain::history::{HistoryQuery, HistoryRecord};
use crate::domain::ids::{ApiUserId, SessionId};
use crate::store::columns::from_ts;
use sqlx::FromRow;

#[derive(FromRow)]
pub(crate) struct HistoryRow {
    id: i64,
    api_user_id: Option<i64>,
    username: Option<String>,
    key_hint: Option<String>,
    session_id: Option<i64>,
    call: String,
    ip: String,
    /// 32 bits in PostgreSQL.
    status: i32,
    outcome: String,
    date_added: i64,
    date_modified: i64,
    request_id: String,
}

impl From<HistoryRow> for HistoryRecord {
    fn from(row: HistoryRow) -> Self {
        Self {
            id: row.id,
            api_user_id: row.api_user_id.map(ApiUserId),
            username: row.username,
            key_hint: row.key_hint,
            session_id: row.session_id.map(SessionId),
            call: row.call,
            ip: row.ip,
            status: u16::try_from(row.status).unwrap_or(0),
            outcome: row.outcome,
            date_added: from_ts(row.date_added),
            date_modified: from_ts(row.date_modified),
            duration_ms: (row.date_modified - row.date_added) as f64 / 1000.0,
            request_id: row.request_id,
        }
    }
}

/// A page of `query`'s rows as read, newest first: a page read upwards from its `after_id`
/// came oldest first.
pub(crate) fn newest_first(rows: Vec<HistoryRow>, query: &HistoryQuery) -> Vec<HistoryRecord> {
    let records = rows.into_iter().map(HistoryRecord::from);
    match query.after_id {
        Some(_) => records.rev().collect(),
        None => records.collect(),
    }
}
