//! Orders, their lines and status history.

use super::{MAX_ORDER_LINES, MAX_QUANTITY, sku};
use crate::domain::ids::{CustomerId, OrderId, OrderStatusId, ProductId};
use crate::domain::money::Money;
use crate::domain::validation::{Errors, FieldError, objects, text};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderStatus {
    pub id: OrderStatusId,
    pub name: String,
    /// Whether an order in this status holds its stock (false for Canceled, Refunded, …).
    pub holds_stock: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Order {
    pub id: OrderId,
    pub customer_id: CustomerId,
    pub currency: String,
    pub total: Money,
    pub status: String,
    pub order_status_id: OrderStatusId,
    pub comment: String,
    pub lines: Vec<OrderLine>,
    /// Present on `GET /orders/{id}` and the status update: the newest 100 entries, oldest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<OrderHistory>>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderLine {
    pub product_id: ProductId,
    pub sku: String,
    pub name: String,
    pub price: Money,
    pub quantity: i64,
    pub total: Money,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderHistory {
    pub status: String,
    pub order_status_id: OrderStatusId,
    pub comment: String,
    pub notify: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub date_added: OffsetDateTime,
}

/// `POST /api/v1/orders`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderInput {
    pub customer_id: CustomerId,
    /// ISO 4217, such as USD.
    #[schema(pattern = r"^[A-Z]{3}$")]
    pub currency: String,
    #[schema(min_items = 1, max_items = 500)]
    #[serde(deserialize_with = "objects")]
    pub lines: Vec<OrderLineInput>,
    #[serde(default)]
    pub comment: Option<String>,
}

/// One line: the product by `product_id` or by `sku`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLineInput {
    pub product_id: Option<ProductId>,
    #[schema(pattern = r"^[A-Za-z0-9._/-]{1,64}$")]
    pub sku: Option<String>,
    #[schema(minimum = 1, maximum = 1000000000)]
    pub quantity: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductRef {
    Id(ProductId),
    Sku(String),
}

#[derive(Debug, Clone)]
pub struct NewOrder {
    pub customer_id: CustomerId,
    pub currency: String,
    pub lines: Vec<(ProductRef, i64)>,
    pub comment: String,
}

impl OrderInput {
    pub fn validate(self) -> Result<NewOrder, Vec<FieldError>> {
        let mut errors = Errors::new();
        let currency = self.currency.trim().to_owned();
        if iso_currency::Currency::from_code(&currency).is_none() {
            errors.add(
                "currency",
                "must be a three-letter ISO 4217 code such as USD",
            );
        }
        if self.lines.is_empty() || self.lines.len() > MAX_ORDER_LINES {
            errors.add("lines", format!("must hold 1 to {MAX_ORDER_LINES} lines"));
        }
        let comment = errors.check(
            "comment",
            text(self.comment.as_deref().unwrap_or(""), 0, 10_000),
        );
        let mut lines = Vec::with_capacity(self.lines.len());
        for (i, line) in self.lines.into_iter().enumerate() {
            let product = match (line.product_id, line.sku) {
                (Some(id), None) => Some(ProductRef::Id(id)),
                (None, Some(s)) => errors
                    .check(&format!("lines[{i}].sku"), sku(&s))
                    .map(ProductRef::Sku),
                _ => {
                    errors.add(
                        format!("lines[{i}]"),
                        "give exactly one of product_id and sku",
                    );
                    None
                }
            };
            if !(1..=MAX_QUANTITY).contains(&line.quantity) {
                errors.add(
                    format!("lines[{i}].quantity"),
                    format!("must be between 1 and {MAX_QUANTITY}"),
                );
            }
            if let Some(product) = product {
                lines.push((product, line.quantity));
            }
        }
        errors.into_result(|| NewOrder {
            customer_id: self.customer_id,
            currency,
            lines,
            comment: comment.unwrap_or_default(),
        })
    }
}

/// An order status named by its id (`5`) or its name (`"Complete"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusRef {
    Id(OrderStatusId),
    Name(String),
}

impl<'de> Deserialize<'de> for StatusRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = StatusRef;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an order status name or id")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<StatusRef, E> {
                Ok(StatusRef::Id(OrderStatusId(v)))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<StatusRef, E> {
                i64::try_from(v)
                    .map(|id| StatusRef::Id(OrderStatusId(id)))
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<StatusRef, E> {
                Ok(match v.trim().parse::<i64>() {
                    Ok(id) => StatusRef::Id(OrderStatusId(id)),
                    Err(_) => StatusRef::Name(v.trim().to_owned()),
                })
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// `POST /api/v1/orders/{id}/history`: the status update.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderHistoryInput {
    /// The new status, by name (`"Shipped"`) or OpenCart id (`3`).
    #[schema(value_type = String, example = "Shipped")]
    pub status: StatusRef,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub notify: bool,
}

#[derive(Debug, Clone)]
pub struct NewOrderHistory {
    pub status: StatusRef,
    pub comment: String,
    pub notify: bool,
}

impl OrderHistoryInput {
    pub fn validate(self) -> Result<NewOrderHistory, Vec<FieldError>> {
        let mut errors = Errors::new();
        let comment = errors.check(
            "comment",
            text(self.comment.as_deref().unwrap_or(""), 0, 10_000),
        );
        errors.into_result(|| NewOrderHistory {
            status: self.status,
            comment: comment.unwrap_or_default(),
            notify: self.notify,
        })
    }
}

/// Filters of `GET /products`.

#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub status: Option<OrderStatusId>,
    pub updated_since: Option<OffsetDateTime>,
    pub customer_id: Option<CustomerId>,
}
