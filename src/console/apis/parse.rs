//! The API user forms' fields, read into the values the credentials service takes.

use crate::console::view::Fields;
use crate::credentials::ServiceError;
use crate::domain::api_user::MAX_RATE_LIMIT;
use crate::domain::duration::HumanDuration;
use crate::domain::validation::{Errors, FieldError};
use crate::store::StoreError;
use time::Duration;

/// A whole number in `range` (`what` it counts), or none and the error that says which.
pub(super) fn parse_number<T>(
    field: &str,
    text: &str,
    range: std::ops::RangeInclusive<T>,
    what: &str,
    errors: &mut Errors,
) -> Option<T>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    if text.is_empty() {
        return None;
    }
    let parsed = text.parse().ok().filter(|n| range.contains(n));
    errors.check(
        field,
        parsed.ok_or_else(|| {
            format!(
                "must be a whole number from {} to {}{what}",
                range.start(),
                range.end()
            )
        }),
    )
}

pub(super) fn parse_rate_limit(fields: &Fields, errors: &mut Errors) -> Option<u32> {
    parse_number(
        "rate_limit_per_minute",
        &fields.get("rate_limit"),
        1..=MAX_RATE_LIMIT,
        " calls per minute",
        errors,
    )
}

/// One of a list's choices (an environment, a status); empty is none, anything else not on
/// the list is an error, never silently replaced.
pub(super) fn parse_choice<T>(field: &str, fields: &Fields, errors: &mut Errors) -> Option<T>
where
    T: std::str::FromStr<Err = String>,
{
    let text = fields.get(field);
    if text.is_empty() {
        return None;
    }
    errors.check(field, text.parse())
}

pub(super) fn parse_expiry(text: &str, errors: &mut Errors) -> Option<Duration> {
    if text.is_empty() {
        return None;
    }
    errors
        .check("expires", text.parse::<HumanDuration>())
        .map(|d| d.0)
}

/// The field errors of a change the store refused (a username taken), if it was that.
pub(super) fn conflict(error: ServiceError) -> Result<Vec<FieldError>, ServiceError> {
    match error {
        ServiceError::Invalid(found) => Ok(found),
        ServiceError::Store(StoreError::Conflict { details, .. }) if !details.is_empty() => {
            Ok(details)
        }
        other => Err(other),
    }
}
