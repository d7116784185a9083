//! Rows of products, and money as stored (cents).

use crate::domain::catalog::{Product, StockItem};
use crate::domain::ids::ProductId;
use crate::domain::money::Money;
use crate::domain::validation::Errors;
use crate::store::columns::{from_ts, parse_col};
use crate::store::{Result, StoreError};
use sqlx::FromRow;

/// A product row, read by sqlx or, for a page on SQLite, from one JSON array of arrays: a page
/// is one row handed from SQLite's thread instead of one hand-off per product.
#[derive(FromRow, serde::Deserialize)]
pub(crate) struct ProductRow {
    pub(crate) id: i64,
    sku: String,
    name: String,
    description: String,
    price: i64,
    quantity: i64,
    status: String,
    created_at: i64,
    updated_at: i64,
}

pub(crate) const PRODUCT_COLUMNS: &str =
    "id, sku, name, description, price, quantity, status, created_at, updated_at";

/// An amount in cents, as stored.
pub(crate) fn money(cents: i64) -> Result<Money> {
    Money::from_cents(cents).map_err(|e| StoreError::Corrupt(format!("money: {e}")))
}

impl ProductRow {
    pub(crate) fn into_product(self) -> Result<Product> {
        Ok(Product {
            id: ProductId(self.id),
            price: money(self.price)?,
            status: parse_col(&self.status, "status")?,
            created_at: from_ts(self.created_at),
            updated_at: from_ts(self.updated_at),
            sku: self.sku,
            name: self.name,
            description: self.description,
            quantity: self.quantity,
        })
    }
}

/// Refuses a stock update naming SKUs no product has, each at its place in the items.
pub(crate) fn refuse_unknown_skus(items: &[StockItem], unknown: &[String]) -> Result<()> {
    let mut errors = Errors::new();
    for (i, item) in items.iter().enumerate() {
        if unknown.contains(&item.sku) {
            errors.add(
                format!("items[{i}].sku"),
                format!("no product has the SKU `{}`", item.sku),
            );
        }
    }
    errors.finish().map_err(StoreError::Invalid)
}
