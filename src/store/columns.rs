//! How values take the form of columns, the same in every backend: times as microseconds since
//! the epoch, domain types as their text, unique violations as conflicts.

use super::{Result, StoreError};
use std::str::FromStr;
use time::OffsetDateTime;

/// Microseconds since the epoch: the form times take in the database.
pub(crate) fn ts(t: OffsetDateTime) -> i64 {
    crate::clock::to_micros(t)
}

pub(crate) fn ts_opt(t: Option<OffsetDateTime>) -> Option<i64> {
    t.map(ts)
}

pub(crate) fn from_ts(us: i64) -> OffsetDateTime {
    crate::clock::from_micros(us)
}

pub(crate) fn from_ts_opt(us: Option<i64>) -> Option<OffsetDateTime> {
    us.map(from_ts)
}

/// A `LIKE … ESCAPE '\'` pattern that finds `text` anywhere, its `%`, `_` and `\` taken
/// literally.
pub(crate) fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Parses a stored text column into its domain type, or reports the row as corrupt.
pub(crate) fn parse_col<T: FromStr>(value: &str, column: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

/// Maps a unique-constraint violation to a conflict on `field`.
pub(crate) fn unique_violation(error: sqlx::Error, field: &str, message: &str) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::conflict(field, message)
        }
        _ => error.into(),
    }
}
