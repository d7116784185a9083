//! Products and their stock.

use super::{SqliteStore, ts, unique_violation};
use crate::domain::catalog::{
    NewProduct, PageRequest, Product, ProductFilter, ProductPatch, ProductStatus, StockItem,
};
use crate::domain::ids::ProductId;
use crate::domain::money::Money;
use crate::store::claims::Created;
use crate::store::rows::products::{PRODUCT_COLUMNS, ProductRow, refuse_unknown_skus};
use crate::store::{ProductStore, Result, StoreError};
use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use std::collections::HashMap;
use time::OffsetDateTime;

pub(super) async fn product_in(conn: &mut SqliteConnection, id: i64) -> Result<Product> {
    let row: ProductRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {PRODUCT_COLUMNS} FROM products WHERE id = ?"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(StoreError::NotFound)?;
    row.into_product()
}

#[async_trait]
impl ProductStore for SqliteStore {
    async fn products(&self, filter: &ProductFilter, page: PageRequest) -> Result<Vec<Product>> {
        let mut select = QueryBuilder::<Sqlite>::new(format!(
            "SELECT json_group_array(json_array({PRODUCT_COLUMNS})) FROM \
             (SELECT {PRODUCT_COLUMNS} FROM products WHERE id > "
        ));
        select.push_bind(page.after.unwrap_or(0));
        if let Some(sku) = &filter.sku {
            select.push(" AND sku = ").push_bind(sku.clone());
        }
        if let Some(status) = filter.status {
            select.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(since) = filter.updated_since {
            select.push(" AND updated_at >= ").push_bind(ts(since));
        }
        select
            .push(" ORDER BY id LIMIT ")
            .push_bind(i64::from(page.limit))
            .push(")");
        let page: String = select.build_query_scalar().fetch_one(&self.read).await?;
        let mut rows: Vec<ProductRow> = serde_json::from_str(&page)
            .map_err(|e| StoreError::Corrupt(format!("product page: {e}")))?;
        // An aggregate keeps its input's order in practice, not by contract.
        rows.sort_unstable_by_key(|row| row.id);
        rows.into_iter().map(ProductRow::into_product).collect()
    }

    async fn product(&self, id: ProductId) -> Result<Option<Product>> {
        let mut conn = self.read.acquire().await?;
        match product_in(&mut conn, id.0).await {
            Err(StoreError::NotFound) => Ok(None),
            other => other.map(Some),
        }
    }

    async fn create_product(&self, product: &NewProduct, now: OffsetDateTime) -> Result<Product> {
        let (mut tx, now) = self.begin_stamped(now).await?;
        let id = sqlx::query(
            "INSERT INTO products (sku, name, description, price, quantity, status, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&product.sku)
        .bind(&product.name)
        .bind(&product.description)
        .bind(product.price.cents())
        .bind(product.quantity)
        .bind(product.status.as_str())
        .bind(ts(now))
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_violation(e, "sku", "a product with this SKU already exists"))?
        .last_insert_rowid();
        let created = product_in(&mut tx, id).await?;
        Self::note_created(&mut tx, Created::Product, id).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn update_product(
        &self,
        id: ProductId,
        patch: &ProductPatch,
        now: OffsetDateTime,
    ) -> Result<Product> {
        let (mut tx, now) = self.begin_stamped(now).await?;
        let updated = sqlx::query(
            // `updated_at` moves only when a value does: a sync that sends what is already
            // there is no change for those that list products `updated_since`.
            "UPDATE products SET sku = coalesce(?1, sku), name = coalesce(?2, name), \
             description = coalesce(?3, description), price = coalesce(?4, price), \
             quantity = coalesce(?5, quantity), status = coalesce(?6, status), \
             updated_at = CASE WHEN coalesce(?1, sku) IS NOT sku OR coalesce(?2, name) IS NOT name \
             OR coalesce(?3, description) IS NOT description OR coalesce(?4, price) IS NOT price \
             OR coalesce(?5, quantity) IS NOT quantity OR coalesce(?6, status) IS NOT status \
             THEN ?7 ELSE updated_at END WHERE id = ?8",
        )
        .bind(&patch.sku)
        .bind(&patch.name)
        .bind(&patch.description)
        .bind(patch.price.map(Money::cents))
        .bind(patch.quantity)
        .bind(patch.status.map(ProductStatus::as_str))
        .bind(ts(now))
        .bind(id.0)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_violation(e, "sku", "a product with this SKU already exists"))?
        .rows_affected();
        if updated == 0 {
            return Err(StoreError::NotFound);
        }
        let product = product_in(&mut tx, id.0).await?;
        tx.commit().await?;
        Ok(product)
    }

    async fn set_stock(&self, items: &[StockItem], now: OffsetDateTime) -> Result<Vec<Product>> {
        // One statement for the whole list, the items as a JSON array; the products are read
        // back after the commit, so the single writer is held for the update alone.
        let json = serde_json::to_string(items).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let (mut tx, now) = self.begin_stamped(now).await?;
        let updated = sqlx::query(
            "UPDATE products SET quantity = item.quantity, \
             updated_at = CASE WHEN products.quantity IS NOT item.quantity THEN ?2 ELSE updated_at END \
             FROM (SELECT value ->> 'sku' AS sku, value ->> 'quantity' AS quantity FROM json_each(?1)) AS item \
             WHERE products.sku = item.sku",
        )
        .bind(&json)
        .bind(ts(now))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated != items.len() as u64 {
            let unknown: Vec<String> = sqlx::query_scalar(
                "SELECT value ->> 'sku' FROM json_each(?) WHERE value ->> 'sku' NOT IN (SELECT sku FROM products)",
            )
            .bind(&json)
            .fetch_all(&mut *tx)
            .await?;
            // Dropping the transaction rolls every change back: all or nothing.
            refuse_unknown_skus(items, &unknown)?;
            return Err(StoreError::Corrupt(format!(
                "{updated} products updated for {} items",
                items.len()
            )));
        }
        tx.commit().await?;
        let page: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT json_group_array(json_array({PRODUCT_COLUMNS})) FROM products \
             WHERE sku IN (SELECT value ->> 'sku' FROM json_each(?))"
        )))
        .bind(&json)
        .fetch_one(&self.read)
        .await?;
        let rows: Vec<ProductRow> = serde_json::from_str(&page)
            .map_err(|e| StoreError::Corrupt(format!("stock page: {e}")))?;
        let mut by_sku: HashMap<String, Product> = HashMap::with_capacity(rows.len());
        for row in rows {
            let product = row.into_product()?;
            by_sku.insert(product.sku.clone(), product);
        }
        // In the order of the items; a product deleted since the commit is no longer shown.
        Ok(items
            .iter()
            .filter_map(|item| by_sku.remove(&item.sku))
            .collect())
    }
}
