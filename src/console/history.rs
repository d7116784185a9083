//! An API user's History tab: filters, keyset pagination, refusals in words, addresses not on
//! the list marked, suggested addresses to allow, and a CSV export streamed row by row.

use super::session::Signed;
use super::view::{ago, precise};
use super::{ConsoleError, Frame};
use super::{Path, Query};
use crate::domain::history::{HistoryQuery, HistoryRecord, Outcome};
use crate::domain::ip_rule;
use crate::domain::username::Username;
use crate::http::AppState;
use askama::Template;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::net::IpAddr;
use time::Duration;

pub const PAGE: u32 = 50;

#[derive(Deserialize, Default, Clone)]
pub struct Filters {
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    ip: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    before: Option<i64>,
    after: Option<i64>,
}

impl Filters {
    fn query(&self, limit: u32) -> Result<HistoryQuery, ConsoleError> {
        let query = HistoryQuery::filtered(&self.outcome, &self.ip, &self.from, &self.to)
            .map_err(|error| ConsoleError::BadRequest(error.message))?;
        Ok(HistoryQuery {
            before_id: self.before,
            after_id: self.after,
            limit,
            ..query
        })
    }

    /// The filters as a query string, for links that keep them.
    fn keep(&self) -> String {
        serde_urlencoded::to_string([
            ("outcome", self.outcome.as_str()),
            ("ip", self.ip.as_str()),
            ("from", self.from.as_str()),
            ("to", self.to.as_str()),
        ])
        .unwrap_or_default()
    }
}

struct Row {
    added: String,
    modified: String,
    call: String,
    ip: String,
    off_list: bool,
    status: u16,
    ok: bool,
    reason: String,
    duration: String,
    request_id: String,
}

struct Suggestion {
    ip: String,
    calls: String,
    last: String,
}

#[derive(Template)]
#[template(path = "console/api_history.html")]
struct HistoryPage {
    frame: Frame,
    username: String,
    filters: Filters,
    outcomes: Vec<(&'static str, &'static str)>,
    rows: Vec<Row>,
    next: Option<String>,
    newer: Option<String>,
    first_page: Option<String>,
    csv: String,
    suggestions: Vec<Suggestion>,
    tab: &'static str,
    elapsed_ms: String,
}

fn describe(record: &HistoryRecord) -> String {
    record
        .outcome
        .parse::<Outcome>()
        .map_or_else(|_| record.outcome.clone(), |o| o.describe().to_owned())
}

/// Whether a row matching `filters` lies before (older than) or after (newer than) a page's
/// edge.
async fn any_beyond(
    state: &AppState,
    username: &str,
    filters: &Filters,
    before_id: Option<i64>,
    after_id: Option<i64>,
) -> Result<bool, ConsoleError> {
    let query = HistoryQuery {
        before_id,
        after_id,
        ..filters.query(1)?
    };
    Ok(!state.credentials.history(username, query).await?.is_empty())
}

async fn load(
    state: &AppState,
    signed: &Signed,
    username: &str,
    filters: Filters,
) -> Result<HistoryPage, ConsoleError> {
    let started = std::time::Instant::now();
    // A deleted user's history stays readable: it has no IP list and no suggestions left.
    let (user_id, ips) = match state.credentials.get(username).await {
        Ok(user) => (Some(user.id), user.ips),
        Err(crate::credentials::ServiceError::NoSuchUser(_)) => (None, Vec::new()),
        Err(other) => return Err(other.into()),
    };
    let mut records = state
        .credentials
        .history(username, filters.query(PAGE + 1)?)
        .await?;
    let elapsed_ms = format!("{:.1}", started.elapsed().as_secs_f64() * 1000.0);
    let now = state.clock.now();
    // One row more than a page tells whether there is another page that way: older, or for a
    // page read upwards ("Newer"), newer, whose extra row comes first.
    let more = records.len() > PAGE as usize;
    if more && filters.after.is_some() {
        records.remove(0);
    }
    records.truncate(PAGE as usize);
    let rows: Vec<Row> = records
        .iter()
        .map(|r| Row {
            added: precise(r.date_added),
            modified: precise(r.date_modified),
            call: r.call.clone(),
            off_list: r
                .ip
                .parse::<IpAddr>()
                .is_ok_and(|ip| user_id.is_some() && !ip_rule::allows(&ips, ip)),
            ip: r.ip.clone(),
            status: r.status,
            ok: r.outcome == "ok",
            reason: describe(r),
            duration: format!("{:.1} ms", r.duration_ms),
            request_id: r.request_id.clone(),
        })
        .collect();
    let keep = filters.keep();
    // The page's extra row tells the way it was read; the other way, one row is looked for
    // past the page's edge (a cursor typed by hand may start anywhere).
    let (first, last) = (records.first().map(|r| r.id), records.last().map(|r| r.id));
    let older = match (filters.after, last) {
        (None, _) => more,
        (Some(_), Some(last)) => any_beyond(state, username, &filters, Some(last), None).await?,
        (Some(_), None) => false,
    };
    let newer = match (filters.before, filters.after, first) {
        (None, None, _) | (_, _, None) => false,
        (None, Some(_), Some(_)) => more,
        (Some(_), _, Some(first)) => {
            any_beyond(state, username, &filters, None, Some(first)).await?
        }
    };
    let next = last
        .filter(|_| older)
        .map(|id| format!("?{keep}&before={id}"));
    let newer = first
        .filter(|_| newer)
        .map(|id| format!("?{keep}&after={id}"));
    let paged = filters.before.is_some() || filters.after.is_some();
    let first_page = paged.then(|| format!("?{keep}"));
    let refused = match user_id {
        Some(id) => {
            state
                .db
                .refused_ips(id, now - Duration::days(7), 10)
                .await?
        }
        None => Vec::new(),
    };
    let suggestions = refused
        .into_iter()
        .filter(|s| {
            s.ip.parse::<IpAddr>()
                .is_ok_and(|ip| !ip_rule::allows(&ips, ip))
        })
        .map(|s| Suggestion {
            ip: s.ip,
            calls: super::view::calls(s.calls),
            last: ago(Some(s.last_at), now),
        })
        .collect();
    let mut outcomes = vec![
        ("", "all calls"),
        ("ok", "answered"),
        ("refused", "refused"),
    ];
    outcomes.extend(
        Outcome::ALL
            .iter()
            .filter(|o| **o != Outcome::Ok)
            .map(|o| (o.as_str(), o.describe())),
    );
    Ok(HistoryPage {
        frame: Frame::new(signed, "apis"),
        username: username.to_owned(),
        csv: format!("/admin/apis/{username}/history.csv?{keep}"),
        filters,
        outcomes,
        rows,
        next,
        newer,
        first_page,
        suggestions,
        tab: "history",
        elapsed_ms,
    })
}

/// Only a name that can be a username has a history (kept when its user is deleted):
/// anything else (`%00`, `..%2f`, a quote meant for a header) is not found.
fn history_name(username: &str) -> Result<Username, ConsoleError> {
    Username::parse(username).map_err(|_| ConsoleError::NotFound)
}

pub async fn page(
    State(state): State<AppState>,
    signed: Signed,
    Path(username): Path<String>,
    Query(filters): Query<Filters>,
) -> Result<Response, ConsoleError> {
    let username = history_name(&username)?;
    Ok(super::page(
        load(&state, &signed, username.as_str(), filters).await?,
    ))
}

/// The history as CSV, written in slices of 1,000 rows as the client reads: a million rows
/// never sit in memory.
pub async fn csv(
    State(state): State<AppState>,
    _signed: Signed,
    Path(username): Path<String>,
    Query(filters): Query<Filters>,
) -> Result<Response, ConsoleError> {
    let username = history_name(&username)?.as_str().to_owned();
    // The export runs from `before` (or the newest row) to the oldest, in slices read downwards.
    let query = HistoryQuery {
        after_id: None,
        ..filters.query(1000)?
    };
    let header_row = "date_added,date_modified,call,ip,status,outcome,duration_ms,username,key_hint,session_id,request_id,api_user_id\n";
    let credentials = state.credentials.clone();
    let name = username.clone();
    let stream = futures_stream(credentials, name, query, header_row);
    // A username is `A-Z a-z 0-9 . _ -`: nothing in it can end the quoted name or the header.
    let filename = format!("keyward-history-{username}.csv");
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

fn futures_stream(
    credentials: crate::credentials::Credentials,
    username: String,
    query: HistoryQuery,
    header_row: &'static str,
) -> impl futures_util::Stream<Item = Result<String, std::io::Error>> + Send {
    struct Cursor {
        credentials: crate::credentials::Credentials,
        username: String,
        query: HistoryQuery,
        started: bool,
        done: bool,
    }
    let cursor = Cursor {
        credentials,
        username,
        query,
        started: false,
        done: false,
    };
    futures_util::stream::unfold(cursor, move |mut cursor| async move {
        if cursor.done {
            return None;
        }
        if !cursor.started {
            cursor.started = true;
            return Some((Ok(header_row.to_owned()), cursor));
        }
        match cursor
            .credentials
            .history(&cursor.username, cursor.query.clone())
            .await
        {
            Ok(records) if records.is_empty() => None,
            Ok(records) => {
                cursor.query.before_id = records.last().map(|r| r.id);
                cursor.done = records.len() < cursor.query.limit as usize;
                let mut chunk = String::with_capacity(records.len() * 160);
                for r in &records {
                    chunk.push_str(&csv_line(r));
                }
                Some((Ok(chunk), cursor))
            }
            Err(error) => {
                tracing::error!(%error, "history export failed");
                cursor.done = true;
                Some((
                    Err(std::io::Error::other("the history could not be read")),
                    cursor,
                ))
            }
        }
    })
}

fn csv_line(r: &HistoryRecord) -> String {
    let fields = [
        r.date_added
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        r.date_modified
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        r.call.clone(),
        r.ip.clone(),
        r.status.to_string(),
        r.outcome.clone(),
        format!("{:.3}", r.duration_ms),
        r.username.clone().unwrap_or_default(),
        r.key_hint.clone().unwrap_or_default(),
        r.session_id.map(|s| s.to_string()).unwrap_or_default(),
        r.request_id.clone(),
        r.api_user_id.map(|id| id.0.to_string()).unwrap_or_default(),
    ];
    let mut line = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    line.push('\n');
    line
}

/// Quotes a field when needed, and defuses a leading `=`, `+`, `-` or `@` so a spreadsheet
/// never runs it as a formula.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
    }

    #[test]
    fn filters_read_dates_and_outcomes() {
        let filters = Filters {
            outcome: "refused".into(),
            from: "2026-11-01".into(),
            ..Filters::default()
        };
        let query = filters.query(10).expect("query");
        assert_eq!(
            query.outcome,
            Some(crate::domain::history::OutcomeFilter::Refused)
        );
        assert!(query.from.is_some());
        let bad = Filters {
            from: "yesterday".into(),
            ..Filters::default()
        };
        assert!(bad.query(10).is_err());
    }
}
