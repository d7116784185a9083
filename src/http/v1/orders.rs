use crate::auth::Caller;
use crate::domain::catalog::{
    Order, OrderFilter, OrderHistoryInput, OrderInput, OrderStatus, Page, StatusRef,
};
use crate::domain::ids::{CustomerId, OrderId, OrderStatusId};
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{Json, Path, Query};
use crate::http::pagination::{page, page_request, timestamp};
use crate::store::claims::Created;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OrderQuery {
    /// An order status, by name (`Pending`) or id (`1`).
    status: Option<String>,
    /// Only orders changed at or after this RFC 3339 time.
    updated_since: Option<String>,
    customer_id: Option<i64>,
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// The `next` cursor of the previous page.
    after: Option<String>,
}

/// Lists orders with their lines, oldest first, a page at a time.
#[utoipa::path(
    get,
    path = "/orders",
    operation_id = "list_orders",
    tag = "orders",
    params(OrderQuery),
    security(("api_key" = ["orders:read"])),
    responses((status = 200, body = Page<Order>), (status = 400, body = ErrorBody))
)]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    Query(query): Query<OrderQuery>,
) -> Result<axum::Json<Page<Order>>, ApiError> {
    let request = page_request(query.limit, query.after.as_deref())?;
    let status = match query.status.as_deref() {
        None => None,
        Some(text) => {
            let wanted = match text.trim().parse::<i64>() {
                Ok(id) => StatusRef::Id(OrderStatusId(id)),
                Err(_) => StatusRef::Name(text.trim().to_owned()),
            };
            let statuses = state.db.order_statuses().await?;
            let found = statuses.iter().find(|s| match &wanted {
                StatusRef::Id(id) => s.id == *id,
                StatusRef::Name(name) => s.name.eq_ignore_ascii_case(name),
            });
            Some(found.map(|s| s.id).ok_or_else(|| {
                ApiError::bad_request(
                    "`status` is not an order status; see GET /api/v1/order-statuses.",
                )
                .on_field("status", "is not an order status")
            })?)
        }
    };
    let filter = OrderFilter {
        status,
        updated_since: timestamp("updated_since", query.updated_since.as_deref())?,
        customer_id: query.customer_id.map(CustomerId),
    };
    let orders = state.db.orders(&filter, request).await?;
    Ok(axum::Json(page(orders, request, |o| o.id.0)))
}

/// One order, with its lines and status history.
#[utoipa::path(
    get,
    path = "/orders/{id}",
    operation_id = "show_order",
    tag = "orders",
    params(("id" = i64, Path, description = "Order id")),
    security(("api_key" = ["orders:read"])),
    responses((status = 200, body = Order), (status = 404, body = ErrorBody))
)]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn show(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<i64>,
) -> Result<axum::Json<Order>, ApiError> {
    let order = state
        .db
        .order(OrderId(id))
        .await?
        .ok_or_else(|| ApiError::not_found("order"))?;
    Ok(axum::Json(order))
}

/// Places an order. Its stock is taken in the same transaction: when a product is short the
/// order is refused with 409 and nothing changes, so concurrent orders never oversell. Name
/// and price are copied from the product.
#[utoipa::path(
    post,
    path = "/orders",
    operation_id = "create_order",
    tag = "orders",
    request_body = OrderInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe: no double orders")),
    security(("api_key" = ["orders:write"])),
    responses(
        (status = 201, body = Order),
        (status = 409, description = "Not enough stock", body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn create(
    State(state): State<AppState>,
    _caller: Caller,
    Json(input): Json<OrderInput>,
) -> Result<impl IntoResponse, ApiError> {
    let order = input.validate()?;
    let created = state.db.create_order(&order, state.clock.now()).await?;
    let location = Created::Order.location(created.id.0);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(created),
    ))
}

/// Changes the order's status and adds an entry to its history. Moving to a status that does
/// not hold stock (Canceled, Refunded, …) puts the goods back; moving out of one takes them
/// again.
#[utoipa::path(
    post,
    operation_id = "add_order_history",
    path = "/orders/{id}/history",
    tag = "orders",
    params(
        ("id" = i64, Path, description = "Order id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe"),
    ),
    request_body = OrderHistoryInput,
    security(("api_key" = ["orders:write"])),
    responses(
        (status = 201, body = Order),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Reopening needs stock that is gone", body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn add_history(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<i64>,
    Json(input): Json<OrderHistoryInput>,
) -> Result<impl IntoResponse, ApiError> {
    let order = change_status(&state, OrderId(id), input).await?;
    Ok((StatusCode::CREATED, axum::Json(order)))
}

/// The status update, shared with the OpenCart-compatible `api/order/history`.
pub async fn change_status(
    state: &AppState,
    id: OrderId,
    input: OrderHistoryInput,
) -> Result<Order, ApiError> {
    let entry = input.validate()?;
    state
        .db
        .add_order_history(id, &entry, state.clock.now())
        .await
        .map_err(ApiError::or_not_found("order"))
}

#[derive(Serialize, ToSchema)]
pub struct OrderStatuses {
    pub data: Vec<OrderStatus>,
}

/// The order statuses, with OpenCart's ids.
#[utoipa::path(
    get,
    operation_id = "list_order_statuses",
    path = "/order-statuses",
    tag = "orders",
    security(("api_key" = ["orders:read"])),
    responses((status = 200, body = OrderStatuses))
)]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn statuses(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<axum::Json<OrderStatuses>, ApiError> {
    Ok(axum::Json(OrderStatuses {
        data: state.db.order_statuses().await?,
    }))
}
