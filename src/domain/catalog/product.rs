//! Products, their validation, and the bulk stock update.

use super::{MAX_BULK_ITEMS, MAX_QUANTITY};
use crate::domain::api_user::text_enum;
use crate::domain::ids::ProductId;
use crate::domain::money::Money;
use crate::domain::validation::{Errors, FieldError, empty_if_null, line, not_null, objects, text};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

text_enum!(ProductStatus { Enabled = "enabled", Disabled = "disabled" });

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
    #[schema(pattern = r"^[A-Za-z0-9._/-]{1,64}$")]
    pub sku: String,
    #[schema(min_length = 1, max_length = 255)]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 10000)]
    pub description: Option<String>,
    pub price: Money,
    #[schema(minimum = 0, maximum = 1000000000)]
    pub quantity: i64,
    #[serde(default)]
    pub status: Option<ProductStatus>,
}

/// `PATCH /api/v1/products/{id}`: only the fields present change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    pub sku: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    pub name: Option<String>,
    /// `null` or `""` empties it.
    #[serde(default, deserialize_with = "empty_if_null")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    pub price: Option<Money>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    pub quantity: Option<i64>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
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
        let name = errors.check("name", line(&self.name, 1, 255));
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
            self.name = errors.check("name", line(v, 1, 255));
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
    #[schema(min_items = 1, max_items = 1000)]
    #[serde(deserialize_with = "objects")]
    pub items: Vec<StockItem>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockItem {
    #[schema(pattern = r"^[A-Za-z0-9._/-]{1,64}$")]
    pub sku: String,
    #[schema(minimum = 0, maximum = 1000000000)]
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

#[derive(Debug, Clone, Default)]
pub struct ProductFilter {
    pub sku: Option<String>,
    pub status: Option<ProductStatus>,
    pub updated_since: Option<OffsetDateTime>,
}
