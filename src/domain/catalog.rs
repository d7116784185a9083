//! The store: products, customers, orders with their lines and status history.

use super::api_user::{Status, text_enum};
use super::ids::{CustomerId, OrderId, OrderStatusId, ProductId};
use super::money::Money;
use super::validation::{Errors, FieldError, text};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

pub const MAX_QUANTITY: i64 = 1_000_000_000;
pub const MAX_BULK_ITEMS: usize = 1000;
pub const MAX_ORDER_LINES: usize = 500;

text_enum!(ProductStatus { Enabled = "enabled", Disabled = "disabled" });

impl From<ProductStatus> for Status {
    fn from(s: ProductStatus) -> Self {
        match s {
            ProductStatus::Enabled => Status::Enabled,
            ProductStatus::Disabled => Status::Disabled,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Product {
    pub id: ProductId,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub price: Money,
    pub quantity: i64,
    pub status: ProductStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// `POST /api/v1/products`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    pub sku: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub price: Money,
    pub quantity: i64,
    #[serde(default)]
    pub status: Option<ProductStatus>,
}

/// `PATCH /api/v1/products/{id}`: only the fields present change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    pub sku: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub price: Option<Money>,
    pub quantity: Option<i64>,
    pub status: Option<ProductStatus>,
}

/// A product ready to be stored.
#[derive(Debug, Clone)]
pub struct NewProduct {
    pub sku: String,
    pub name: String,
    pub description: String,
    pub price: Money,
    pub quantity: i64,
    pub status: ProductStatus,
}

pub fn sku(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() || value.len() > 64 {
        return Err("must be 1 to 64 characters".to_owned());
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
    {
        return Err("may contain only letters, digits, '-', '_', '.' and '/'".to_owned());
    }
    Ok(value.to_owned())
}

pub fn quantity(value: i64) -> Result<i64, String> {
    if (0..=MAX_QUANTITY).contains(&value) {
        Ok(value)
    } else {
        Err(format!("must be between 0 and {MAX_QUANTITY}"))
    }
}

impl ProductInput {
    pub fn validate(self) -> Result<NewProduct, Vec<FieldError>> {
        let mut errors = Errors::new();
        let sku = errors.check("sku", sku(&self.sku));
        let name = errors.check("name", text(&self.name, 1, 255));
        let description = errors.check(
            "description",
            text(self.description.as_deref().unwrap_or(""), 0, 10_000),
        );
        let quantity = errors.check("quantity", quantity(self.quantity));
        errors.into_result(|| NewProduct {
            sku: sku.unwrap_or_default(),
            name: name.unwrap_or_default(),
            description: description.unwrap_or_default(),
            price: self.price,
            quantity: quantity.unwrap_or_default(),
            status: self.status.unwrap_or(ProductStatus::Enabled),
        })
    }
}

impl ProductPatch {
    pub fn validate(mut self) -> Result<ProductPatch, Vec<FieldError>> {
        let mut errors = Errors::new();
        if let Some(v) = &self.sku {
            self.sku = errors.check("sku", sku(v));
        }
        if let Some(v) = &self.name {
            self.name = errors.check("name", text(v, 1, 255));
        }
        if let Some(v) = &self.description {
            self.description = errors.check("description", text(v, 0, 10_000));
        }
        if let Some(v) = self.quantity {
            self.quantity = errors.check("quantity", quantity(v));
        }
        errors.into_result(|| self)
    }
}

/// `POST /api/v1/products/stock`: set the quantity of many products by SKU, all or nothing.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockUpdate {
    pub items: Vec<StockItem>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockItem {
    pub sku: String,
    pub quantity: i64,
}

impl StockUpdate {
    pub fn validate(self) -> Result<Vec<StockItem>, Vec<FieldError>> {
        let mut errors = Errors::new();
        if self.items.is_empty() || self.items.len() > MAX_BULK_ITEMS {
            errors.add("items", format!("must hold 1 to {MAX_BULK_ITEMS} items"));
        }
        let mut seen = std::collections::HashSet::new();
        let mut items = Vec::with_capacity(self.items.len());
        for (i, item) in self.items.into_iter().enumerate() {
            let sku = errors.check(&format!("items[{i}].sku"), sku(&item.sku));
            let quantity = errors.check(&format!("items[{i}].quantity"), quantity(item.quantity));
            if let Some(sku) = &sku
                && !seen.insert(sku.clone())
            {
                errors.add(
                    format!("items[{i}].sku"),
                    "appears more than once in this update",
                );
            }
            if let (Some(sku), Some(quantity)) = (sku, quantity) {
                items.push(StockItem { sku, quantity });
            }
        }
        errors.into_result(|| items)
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Customer {
    pub id: CustomerId,
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerInput {
    pub name: String,
    pub email: String,
    #[serde(default)]
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerPatch {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

pub fn email(value: &str) -> Result<String, String> {
    let value = value.trim();
    let valid = value.len() <= 254
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        && value.matches('@').count() == 1;
    if valid {
        Ok(value.to_owned())
    } else {
        Err("must be an email address such as name@example.com".to_owned())
    }
}

pub fn phone(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.len() > 32
        || !value
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
    {
        return Err("must be up to 32 digits, spaces and + - ( ) .".to_owned());
    }
    Ok(value.to_owned())
}

impl CustomerInput {
    pub fn validate(self) -> Result<CustomerInput, Vec<FieldError>> {
        let mut errors = Errors::new();
        let name = errors.check("name", text(&self.name, 1, 255));
        let email = errors.check("email", email(&self.email));
        let phone = match self
            .phone
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            Some(p) => errors.check("phone", phone(p)),
            None => None,
        };
        errors.into_result(|| CustomerInput {
            name: name.unwrap_or_default(),
            email: email.unwrap_or_default(),
            phone,
        })
    }
}

impl CustomerPatch {
    pub fn validate(mut self) -> Result<CustomerPatch, Vec<FieldError>> {
        let mut errors = Errors::new();
        if let Some(v) = &self.name {
            self.name = errors.check("name", text(v, 1, 255));
        }
        if let Some(v) = &self.email {
            self.email = errors.check("email", email(v));
        }
        if let Some(v) = &self.phone {
            self.phone = errors.check("phone", phone(v));
        }
        errors.into_result(|| self)
    }
}

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
    /// Present on `GET /orders/{id}`.
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
    pub currency: String,
    pub lines: Vec<OrderLineInput>,
    #[serde(default)]
    pub comment: Option<String>,
}

/// One line: the product by `product_id` or by `sku`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLineInput {
    pub product_id: Option<ProductId>,
    pub sku: Option<String>,
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
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
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
                    .map(|v| StatusRef::Id(OrderStatusId(v)))
                    .map_err(E::custom)
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
pub struct ProductFilter {
    pub sku: Option<String>,
    pub status: Option<ProductStatus>,
    pub updated_since: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub status: Option<OrderStatusId>,
    pub updated_since: Option<OffsetDateTime>,
    pub customer_id: Option<CustomerId>,
}

/// Keyset pagination: items after `after`, at most `limit`.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub after: Option<i64>,
    pub limit: u32,
}

/// A page of a list: `{"data": [...], "next": "<cursor>" | null}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    pub data: Vec<T>,
    /// Pass as `after` to get the next page; `null` on the last page.
    pub next: Option<String>,
}
