use crate::auth::Caller;
use crate::domain::catalog::{Customer, CustomerFilter, CustomerInput, CustomerPatch, Page};
use crate::domain::ids::CustomerId;
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{Json, Path, Query};
use crate::http::pagination::{page, page_request};
use crate::store::claims::Created;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa::IntoParams;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CustomerQuery {
    /// Only the customer with this email, case aside (emails are unique so): "find or create"
    /// in one call.
    email: Option<String>,
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// The `next` cursor of the previous page.
    after: Option<String>,
}

/// Lists customers, oldest first, a page at a time; or finds one by email.
#[utoipa::path(
    get,
    path = "/customers",
    operation_id = "list_customers",
    tag = "customers",
    params(CustomerQuery),
    security(("api_key" = ["customers:read"])),
    responses((status = 200, body = Page<Customer>), (status = 400, body = ErrorBody))
)]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    Query(query): Query<CustomerQuery>,
) -> Result<axum::Json<Page<Customer>>, ApiError> {
    let request = page_request(query.limit, query.after.as_deref())?;
    let filter = CustomerFilter {
        // As a customer's email is kept: without the blanks around it.
        email: query.email.map(|email| email.trim().to_owned()),
    };
    let customers = state.db.customers(&filter, request).await?;
    Ok(axum::Json(page(customers, request, |c| c.id.0)))
}

/// One customer.
#[utoipa::path(
    get,
    path = "/customers/{id}",
    operation_id = "show_customer",
    tag = "customers",
    params(("id" = i64, Path, description = "Customer id")),
    security(("api_key" = ["customers:read"])),
    responses((status = 200, body = Customer), (status = 404, body = ErrorBody))
)]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn show(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<i64>,
) -> Result<axum::Json<Customer>, ApiError> {
    let customer = state
        .db
        .customer(CustomerId(id))
        .await?
        .ok_or_else(|| ApiError::not_found("customer"))?;
    Ok(axum::Json(customer))
}

/// Adds a customer. The email must be unique.
#[utoipa::path(
    post,
    path = "/customers",
    operation_id = "create_customer",
    tag = "customers",
    request_body = CustomerInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe")),
    security(("api_key" = ["customers:write"])),
    responses((status = 201, body = Customer), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody))
)]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn create(
    State(state): State<AppState>,
    _caller: Caller,
    Json(input): Json<CustomerInput>,
) -> Result<impl IntoResponse, ApiError> {
    let customer = input.validate()?;
    let created = state
        .db
        .create_customer(&customer, state.clock.now())
        .await?;
    let location = Created::Customer.location(created.id.0);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(created),
    ))
}

/// Changes the fields given; the others stay as they are.
#[utoipa::path(
    patch,
    path = "/customers/{id}",
    operation_id = "update_customer",
    tag = "customers",
    params(("id" = i64, Path, description = "Customer id")),
    request_body = CustomerPatch,
    security(("api_key" = ["customers:write"])),
    responses(
        (status = 200, body = Customer),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn update(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<i64>,
    Json(patch): Json<CustomerPatch>,
) -> Result<axum::Json<Customer>, ApiError> {
    let patch = patch.validate()?;
    let customer = state
        .db
        .update_customer(CustomerId(id), &patch, state.clock.now())
        .await
        .map_err(ApiError::or_not_found("customer"))?;
    Ok(axum::Json(customer))
}
