use crate::auth::Caller;
use crate::domain::catalog::{
    Page, Product, ProductFilter, ProductInput, ProductPatch, ProductStatus, StockUpdate,
};
use crate::domain::ids::ProductId;
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
pub struct ProductQuery {
    /// Only the product with this SKU.
    sku: Option<String>,
    /// `enabled` or `disabled`.
    status: Option<String>,
    /// Only products changed at or after this RFC 3339 time.
    updated_since: Option<String>,
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// The `next` cursor of the previous page.
    after: Option<String>,
}

/// Lists products, oldest first, a page at a time.
#[utoipa::path(
    get,
    path = "/products",
    operation_id = "list_products",
    tag = "products",
    params(ProductQuery),
    security(("api_key" = ["products:read"])),
    responses((status = 200, body = Page<Product>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody))
)]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    Query(query): Query<ProductQuery>,
) -> Result<axum::Json<Page<Product>>, ApiError> {
    let request = page_request(query.limit, query.after.as_deref())?;
    let status = query
        .status
        .as_deref()
        .map(|s| {
            s.parse::<ProductStatus>().map_err(|e| {
                ApiError::bad_request(format!("`status`: {e}.")).on_field("status", e.to_string())
            })
        })
        .transpose()?;
    let filter = ProductFilter {
        sku: query.sku,
        status,
        updated_since: timestamp("updated_since", query.updated_since.as_deref())?,
    };
    let products = state.db.products(&filter, request).await?;
    Ok(axum::Json(page(products, request, |p| p.id.0)))
}

/// One product.
#[utoipa::path(
    get,
    path = "/products/{id}",
    operation_id = "show_product",
    tag = "products",
    params(("id" = i64, Path, description = "Product id")),
    security(("api_key" = ["products:read"])),
    responses((status = 200, body = Product), (status = 404, body = ErrorBody))
)]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn show(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<i64>,
) -> Result<axum::Json<Product>, ApiError> {
    let product = state
        .db
        .product(ProductId(id))
        .await?
        .ok_or_else(|| ApiError::not_found("product"))?;
    Ok(axum::Json(product))
}

/// Adds a product. The SKU must be unique.
#[utoipa::path(
    post,
    path = "/products",
    operation_id = "create_product",
    tag = "products",
    request_body = ProductInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe")),
    security(("api_key" = ["products:write"])),
    responses(
        (status = 201, body = Product),
        (status = 409, description = "The SKU is taken", body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn create(
    State(state): State<AppState>,
    _caller: Caller,
    Json(input): Json<ProductInput>,
) -> Result<impl IntoResponse, ApiError> {
    let product = input.validate()?;
    let created = state.db.create_product(&product, state.clock.now()).await?;
    let location = Created::Product.location(created.id.0);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(created),
    ))
}

/// Changes the fields given; the others stay as they are.
#[utoipa::path(
    patch,
    path = "/products/{id}",
    operation_id = "update_product",
    tag = "products",
    params(("id" = i64, Path, description = "Product id")),
    request_body = ProductPatch,
    security(("api_key" = ["products:write"])),
    responses(
        (status = 200, body = Product),
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
    Json(patch): Json<ProductPatch>,
) -> Result<axum::Json<Product>, ApiError> {
    let patch = patch.validate()?;
    let product = state
        .db
        .update_product(ProductId(id), &patch, state.clock.now())
        .await
        .map_err(ApiError::or_not_found("product"))?;
    Ok(axum::Json(product))
}

#[derive(Serialize, ToSchema)]
pub struct StockUpdated {
    pub data: Vec<Product>,
}

/// Sets the stock of up to 1000 products by SKU, all or nothing: if one SKU is unknown, no
/// quantity changes.
#[utoipa::path(
    post,
    operation_id = "set_product_stock",
    path = "/products/stock",
    tag = "products",
    request_body = StockUpdate,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe")),
    security(("api_key" = ["products:write"])),
    responses((status = 200, body = StockUpdated), (status = 422, body = ErrorBody))
)]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn set_stock(
    State(state): State<AppState>,
    _caller: Caller,
    Json(update): Json<StockUpdate>,
) -> Result<axum::Json<StockUpdated>, ApiError> {
    let items = update.validate()?;
    let products = state.db.set_stock(&items, state.clock.now()).await?;
    Ok(axum::Json(StockUpdated { data: products }))
}
