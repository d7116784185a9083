//! Cursor pagination: `limit` (1–1000) and `after`, an opaque cursor from the last page's
//! `next`.

use super::error::ApiError;
use crate::domain::catalog::{Page, PageRequest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use utoipa::ToSchema;

pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;

pub fn page_request(limit: Option<i64>, after: Option<&str>) -> Result<PageRequest, ApiError> {
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(n) => u32::try_from(n)
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!("`limit` must be between 1 and {MAX_LIMIT}."))
                    .on_field("limit", format!("must be between 1 and {MAX_LIMIT}"))
            })?,
    };
    let after = match after {
        None | Some("") => None,
        Some(cursor) => Some(decode(cursor).ok_or_else(|| {
            ApiError::bad_request(
                "`after` is not a cursor this API returned; pass the `next` of the previous page.",
            )
            .on_field("after", "is not a cursor this API returned")
        })?),
    };
    // One more than asked tells whether another page follows.
    Ok(PageRequest {
        after,
        limit: limit + 1,
    })
}

/// Cuts the extra item off and makes the cursor of the next page.
pub fn page<T: ToSchema>(
    mut items: Vec<T>,
    request: PageRequest,
    id: impl Fn(&T) -> i64,
) -> Page<T> {
    let limit = (request.limit - 1) as usize;
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|last| encode(id(last)))
    } else {
        None
    };
    Page { data: items, next }
}

fn encode(id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("id:{id}"))
}

fn decode(cursor: &str) -> Option<i64> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.strip_prefix("id:")?.parse().ok().filter(|id| *id >= 0)
}

/// Parses an RFC 3339 timestamp filter.
pub fn timestamp(
    name: &str,
    value: Option<&str>,
) -> Result<Option<time::OffsetDateTime>, ApiError> {
    value
        .map(|v| {
            time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339).map_err(
                |_| {
                    ApiError::bad_request(format!(
                        "`{name}` must be an RFC 3339 time such as 2026-01-31T12:00:00Z."
                    ))
                    .on_field(name, "must be an RFC 3339 time")
                },
            )
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        assert_eq!(decode(&encode(42)), Some(42));
        assert_eq!(decode("not-a-cursor"), None);
        assert_eq!(decode(&URL_SAFE_NO_PAD.encode("id:-1")), None);
        assert!(page_request(Some(0), None).is_err());
        assert!(page_request(Some(1001), None).is_err());
        assert!(page_request(Some(-1), None).is_err());
        assert!(page_request(None, Some("%%%")).is_err());
    }
}
