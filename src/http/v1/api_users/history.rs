//! An API user's history, with the console's filters and keyset pagination.

use super::views::HistoryRow;
use crate::auth::Caller;
use crate::domain::catalog::Page;
use crate::domain::history::HistoryQuery;
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{Path, Query};
use crate::http::pagination::{page, page_request};
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryFilters {
    /// `ok`, `refused`, or one refusal reason such as `wrong_key` or `ip_not_allowed`.
    outcome: Option<String>,
    /// Only calls from this address.
    ip: Option<String>,
    /// Calls from this date (`2026-11-23`, the whole day) or RFC 3339 time on.
    from: Option<String>,
    /// Calls up to this date (`2026-11-23`, the whole day included) or before this RFC 3339
    /// time.
    to: Option<String>,
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// The `next` cursor of the previous page.
    after: Option<String>,
}

/// The API user's calls, newest first, refused ones included with their reason. A deleted
/// user's history stays readable by its username.
#[utoipa::path(
    get,
    path = "/api-users/{username}/history",
    operation_id = "api_user_history",
    tag = "api_users",
    params(("username" = String, Path, description = "The API user's username"), HistoryFilters),
    security(("api_key" = ["api_users:read"])),
    responses((status = 200, body = Page<HistoryRow>), (status = 404, body = ErrorBody))
)]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn history(
    State(state): State<AppState>,
    _caller: Caller,
    Path(username): Path<String>,
    Query(filters): Query<HistoryFilters>,
) -> Result<axum::Json<Page<HistoryRow>>, ApiError> {
    let request = page_request(filters.limit, filters.after.as_deref())?;
    let text = |value: &Option<String>| value.as_deref().unwrap_or_default().to_owned();
    let query = HistoryQuery::filtered(
        &text(&filters.outcome),
        &text(&filters.ip),
        &text(&filters.from),
        &text(&filters.to),
    )
    .map_err(|error| {
        ApiError::bad_request(error.message.clone()).on_field(error.field, error.message)
    })?;
    // Newest first: the cursor is the last row's id, and the next page lies below it.
    let query = HistoryQuery {
        before_id: request.after,
        limit: request.limit,
        ..query
    };
    let rows = state.credentials.history_of_name(&username, query).await?;
    let rows = rows.into_iter().map(HistoryRow::from).collect();
    Ok(axum::Json(page(rows, request, |r: &HistoryRow| r.id)))
}
