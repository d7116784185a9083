//! The API history: one row per call, refused ones included.

use super::ids::{ApiUserId, SessionId};
use serde::Serialize;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use time::OffsetDateTime;

/// Why a call ended as it did. `Ok` is the only success; every other value is a refusal or
/// an error, and the history keeps it even where the client only saw a generic 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ok,
    MissingCredentials,
    MalformedCredentials,
    SecretInQuery,
    UnknownUser,
    UnknownKey,
    WrongKey,
    BadChecksum,
    UnknownToken,
    ExpiredToken,
    RevokedToken,
    DisabledUser,
    ExpiredKey,
    RevokedKey,
    IpNotAllowed,
    InsufficientScope,
    RateLimited,
    LoginThrottled,
    BadRequest,
    NotFound,
    Conflict,
    Invalid,
    Unavailable,
    Cancelled,
    Error,
}

impl Outcome {
    pub const ALL: [Outcome; 25] = [
        Self::Ok,
        Self::MissingCredentials,
        Self::MalformedCredentials,
        Self::SecretInQuery,
        Self::UnknownUser,
        Self::UnknownKey,
        Self::WrongKey,
        Self::BadChecksum,
        Self::UnknownToken,
        Self::ExpiredToken,
        Self::RevokedToken,
        Self::DisabledUser,
        Self::ExpiredKey,
        Self::RevokedKey,
        Self::IpNotAllowed,
        Self::InsufficientScope,
        Self::RateLimited,
        Self::LoginThrottled,
        Self::BadRequest,
        Self::NotFound,
        Self::Conflict,
        Self::Invalid,
        Self::Unavailable,
        Self::Cancelled,
        Self::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::MissingCredentials => "missing_credentials",
            Self::MalformedCredentials => "malformed_credentials",
            Self::SecretInQuery => "secret_in_query",
            Self::UnknownUser => "unknown_user",
            Self::UnknownKey => "unknown_key",
            Self::WrongKey => "wrong_key",
            Self::BadChecksum => "bad_checksum",
            Self::UnknownToken => "unknown_token",
            Self::ExpiredToken => "expired_token",
            Self::RevokedToken => "revoked_token",
            Self::DisabledUser => "disabled_user",
            Self::ExpiredKey => "expired_key",
            Self::RevokedKey => "revoked_key",
            Self::IpNotAllowed => "ip_not_allowed",
            Self::InsufficientScope => "insufficient_scope",
            Self::RateLimited => "rate_limited",
            Self::LoginThrottled => "login_throttled",
            Self::BadRequest => "bad_request",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::Invalid => "invalid",
            Self::Unavailable => "unavailable",
            Self::Cancelled => "cancelled",
            Self::Error => "error",
        }
    }

    /// The reason in words, for the admin who reads the history.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Ok => "Answered",
            Self::MissingCredentials => "No credentials were sent",
            Self::MalformedCredentials => {
                "The credentials could not be read: a malformed key, token or header, or more than one credential"
            }
            Self::SecretInQuery => "A key or token was sent in the URL instead of a header",
            Self::UnknownUser => "No API user has this username",
            Self::UnknownKey => "No API user has this key",
            Self::WrongKey => "The key does not belong to this username",
            Self::BadChecksum => "The key's checksum is wrong: it was mistyped or truncated",
            Self::UnknownToken => "The session token is unknown",
            Self::ExpiredToken => "The session expired",
            Self::RevokedToken => {
                "The session was ended (logout, revoke, or its key or user changed)"
            }
            Self::DisabledUser => "The API user is disabled",
            Self::ExpiredKey => "The key expired",
            Self::RevokedKey => "The key was replaced or revoked",
            Self::IpNotAllowed => "The address is not on the IP list",
            Self::InsufficientScope => "The API user lacks the scope this call needs",
            Self::RateLimited => "Over the rate limit",
            Self::LoginThrottled => "Too many failed logins",
            Self::BadRequest => "The request was malformed",
            Self::NotFound => "Not found",
            Self::Conflict => "Conflict with the store's state",
            Self::Invalid => "The request failed validation",
            Self::Unavailable => "The service was unavailable",
            Self::Cancelled => "The client hung up before the answer",
            Self::Error => "Internal error",
        }
    }

    /// Refusals the pipeline made before any handler ran.
    pub fn is_auth_refusal(self) -> bool {
        !matches!(
            self,
            Self::Ok
                | Self::BadRequest
                | Self::NotFound
                | Self::Conflict
                | Self::Invalid
                | Self::Unavailable
                | Self::Cancelled
                | Self::Error
        )
    }
}

impl FromStr for Outcome {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "`{s}` is not an outcome; use ok, refused or one of {}",
                    Self::ALL.map(|o| o.as_str()).join(", ")
                )
            })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A history row about to be written.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub api_user_id: Option<ApiUserId>,
    pub username: Option<Arc<str>>,
    pub key_hint: Option<Arc<str>>,
    pub session_id: Option<SessionId>,
    pub call: String,
    pub ip: String,
    pub status: u16,
    pub outcome: Outcome,
    pub date_added: OffsetDateTime,
    pub date_modified: OffsetDateTime,
    pub request_id: String,
    /// What a login is answered, and its row says, should its session be left out as refused
    /// (see [`LeftOut`]): its entry's status for a refused login, 401, or the OpenCart
    /// entry's 200.
    pub refused_status: u16,
}

/// A login's session that its batch did not write, and why. A session is written only while
/// its key still belongs to its user and the user is enabled: a login checked just before a
/// disable or a delete, whose session reached the database after it, is refused after all, as
/// it would have been a moment later. (A roll or a revoke keeps the key's row: such a login
/// gets its session, which its key's state refuses at its first use.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeftOut {
    pub session: SessionId,
    /// `DisabledUser` or `UnknownUser` for a login refused after all (`RevokedKey` should its
    /// key's row be gone); `Unavailable` for a session whose number or token was taken
    /// meanwhile (503).
    pub outcome: Outcome,
}

impl LeftOut {
    /// Whether the login is refused after all, rather than unanswerable (503).
    pub fn refused(self) -> bool {
        self.outcome != Outcome::Unavailable
    }
}

/// The rows of a batch as they are kept once its new sessions were written: the row of a login
/// whose session was left out says what that login was answered and why, and names no session.
pub fn settle_logins<'a>(
    rows: &'a [HistoryEntry],
    left_out: &[LeftOut],
) -> std::borrow::Cow<'a, [HistoryEntry]> {
    let why =
        |id: Option<SessionId>| id.and_then(|id| left_out.iter().find(|left| left.session == id));
    if left_out.is_empty() || !rows.iter().any(|row| why(row.session_id).is_some()) {
        return std::borrow::Cow::Borrowed(rows);
    }
    let settled = rows.iter().map(|row| match why(row.session_id) {
        Some(left) => HistoryEntry {
            status: if left.refused() {
                row.refused_status
            } else {
                503
            },
            outcome: left.outcome,
            session_id: None,
            ..row.clone()
        },
        None => row.clone(),
    });
    std::borrow::Cow::Owned(settled.collect())
}

/// A history row as read back.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryRecord {
    pub id: i64,
    pub api_user_id: Option<ApiUserId>,
    pub username: Option<String>,
    pub key_hint: Option<String>,
    pub session_id: Option<SessionId>,
    pub call: String,
    pub ip: String,
    pub status: u16,
    pub outcome: String,
    #[serde(with = "time::serde::rfc3339")]
    pub date_added: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub date_modified: OffsetDateTime,
    pub duration_ms: f64,
    pub request_id: String,
}

impl HistoryRecord {
    /// The outcome in words (empty for an outcome this version does not know).
    pub fn reason(&self) -> &'static str {
        self.outcome
            .parse::<Outcome>()
            .map_or("", Outcome::describe)
    }
}

/// Which outcomes a history query wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeFilter {
    Ok,
    Refused,
    Only(Outcome),
}

impl FromStr for OutcomeFilter {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ok" => Ok(Self::Ok),
            "refused" => Ok(Self::Refused),
            other => other.parse().map(Self::Only),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    pub api_user_id: Option<ApiUserId>,
    /// Rows whose presented username is this one (for users since deleted, or unknown).
    pub username: Option<String>,
    pub request_id: Option<String>,
    pub outcome: Option<OutcomeFilter>,
    pub ip: Option<String>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    /// Keyset pagination: rows with an id below this one (newest first).
    pub before_id: Option<i64>,
    /// Keyset pagination backwards: the `limit` rows just above this id, the oldest of those
    /// newer than it, still listed newest first (a page "Newer" than the one it ends).
    pub after_id: Option<i64>,
    pub limit: u32,
}

impl HistoryQuery {
    /// Whether it leaves out some of the caller's rows (a filter, or a page past the first).
    pub fn narrowed(&self) -> bool {
        self.request_id.is_some()
            || self.outcome.is_some()
            || self.ip.is_some()
            || self.from.is_some()
            || self.to.is_some()
            || self.before_id.is_some()
            || self.after_id.is_some()
    }

    /// The filters of the console's History tab and of the Management API, as typed: an
    /// outcome (`ok`, `refused` or a reason), an address, and a period whose ends are dates
    /// (`2026-11-23`, whole days, `to` included) or RFC 3339 times (`to` excluded). Empty
    /// text filters nothing. The error names the filter that is wrong and says how to write it.
    pub fn filtered(outcome: &str, ip: &str, from: &str, to: &str) -> Result<Self, FilterError> {
        let on = |field| move |message| FilterError { field, message };
        let outcome = match outcome.trim() {
            "" => None,
            other => Some(other.parse::<OutcomeFilter>().map_err(on("outcome"))?),
        };
        let ip = match ip.trim() {
            "" => None,
            other => Some(stored_address(other.parse().map_err(|_| FilterError {
                field: "ip",
                message: "`ip` must be an address such as 192.0.2.7 or 2001:db8::1.".to_owned(),
            })?)),
        };
        let (start, end) = (
            period_end(from, "from", false).map_err(on("from"))?,
            period_end(to, "to", true).map_err(on("to"))?,
        );
        if let (Some(start), Some(end)) = (start, end)
            && start >= end
        {
            return Err(FilterError {
                field: "from",
                message: format!(
                    "`from` ({}) is not before `to` ({}): no call can match. Swap them.",
                    from.trim(),
                    to.trim()
                ),
            });
        }
        Ok(Self {
            outcome,
            ip,
            from: start,
            to: end,
            ..Self::default()
        })
    }
}

/// A history filter that cannot be used: which one, and why in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub field: &'static str,
    pub message: String,
}

/// An address as the history stores it, for a filter to find: `2001:DB8::0:1` is
/// `2001:db8::1`, and `::ffff:192.0.2.7` is `192.0.2.7`.
pub fn stored_address(ip: std::net::IpAddr) -> String {
    ip.to_canonical().to_string()
}

/// One end of a history period: the start of a date's day (`to`: the end of it), or a time.
fn period_end(text: &str, field: &str, end: bool) -> Result<Option<OffsetDateTime>, String> {
    use time::format_description::well_known::Rfc3339;
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(Some(at));
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(text, &format).map_err(|_| {
        format!(
            "`{field}` must be a date such as 2026-11-23, or a time such as 2026-11-23T12:00:00Z."
        )
    })?;
    // The last day of the calendar has no next one.
    let day = if end { date.next_day() } else { Some(date) }
        .ok_or_else(|| format!("`{field}` is out of range."))?;
    Ok(Some(day.with_time(time::Time::MIDNIGHT).assume_utc()))
}

/// Calls of one API user in one hour.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct UsageHour {
    #[serde(with = "time::serde::rfc3339")]
    pub hour: OffsetDateTime,
    pub ok: i64,
    pub refused: i64,
}

/// An address that was refused because it is not on the user's IP list.
#[derive(Debug, Clone, Serialize)]
pub struct RefusedIp {
    pub ip: String,
    pub calls: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub first_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_at: OffsetDateTime,
}

/// When a request id was made: ids are UUIDv7, whose first 48 bits are milliseconds since the
/// epoch. Lets a lookup by request id use the date index instead of scanning.
pub fn request_time(request_id: &str) -> Option<OffsetDateTime> {
    let millis = u64::from_str_radix(request_id.get(..12)?, 16).ok()?;
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_tell_their_time() {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let at = request_time(&id).expect("a time");
        assert!((OffsetDateTime::now_utc() - at).abs() < time::Duration::seconds(5));
        assert!(request_time("zz").is_none());
    }

    #[test]
    fn filters_take_dates_as_whole_days_and_times_as_they_are() {
        let query = HistoryQuery::filtered("refused", " 192.0.2.7 ", "2026-11-23", "2026-11-23")
            .expect("valid");
        assert_eq!(query.outcome, Some(OutcomeFilter::Refused));
        assert_eq!(query.ip.as_deref(), Some("192.0.2.7"));
        assert_eq!(
            query.from,
            Some(time::macros::datetime!(2026-11-23 0:00 UTC))
        );
        assert_eq!(query.to, Some(time::macros::datetime!(2026-11-24 0:00 UTC)));
        let exact = HistoryQuery::filtered("", "", "2026-11-23T10:30:00Z", "").expect("valid");
        assert_eq!(
            exact.from,
            Some(time::macros::datetime!(2026-11-23 10:30 UTC))
        );
        assert_eq!((exact.outcome, exact.to), (None, None));
        assert!(HistoryQuery::filtered("", "", "23/11/2026", "").is_err());
        assert!(HistoryQuery::filtered("", "", "", "9999-12-31").is_err());
        assert!(HistoryQuery::filtered("nonsense", "", "", "").is_err());
        assert!(HistoryQuery::filtered("", "notanip", "", "").is_err());
        let v6 = HistoryQuery::filtered("", "2001:DB8::0:1", "", "").expect("valid");
        assert_eq!(v6.ip.as_deref(), Some("2001:db8::1"));
        let mapped = HistoryQuery::filtered("", "::ffff:192.0.2.7", "", "").expect("valid");
        assert_eq!(mapped.ip.as_deref(), Some("192.0.2.7"));
    }

    #[test]
    fn outcome_filters_parse() {
        assert_eq!("ok".parse(), Ok(OutcomeFilter::Ok));
        assert_eq!("refused".parse(), Ok(OutcomeFilter::Refused));
        assert_eq!(
            "wrong_key".parse(),
            Ok(OutcomeFilter::Only(Outcome::WrongKey))
        );
        assert!("nonsense".parse::<OutcomeFilter>().is_err());
    }
}
