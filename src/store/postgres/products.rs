//! Products and their stock.

use super::{PgStore, note_created, ts, unique_violation};
use crate::domain::catalog::{
    NewProduct, PageRequest, Product, ProductFilter, ProductPatch, ProductStatus, StockItem,
};
use crate::domain::ids::ProductId;
use crate::domain::money::Money;
use crate::store::claims::Created;
use crate::store::rows::products::{PRODUCT_COLUMNS, ProductRow, refuse_unknown_skus};
use crate::store::{ProductStore, Result, StoreError, claims};
use async_trait::async_trait;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use std::collections::HashMap;
use time::OffsetDateTime;

/// The columns again, for statements that join products with something else.
const PRODUCT_COLUMNS_OF_P: &str = "p.id, p.sku, p.name, p.description, p.price, p.quantity, \
     p.status, p.created_at, p.updated_at";

pub(super) async fn product_in(conn: &mut PgConnection, id: i64) -> Result<Product> {
    let row: ProductRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {PRODUCT_COLUMNS} FROM products WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(StoreError::NotFound)?;
    row.into_product()
}

#[async_trait]
impl ProductStore for PgStore {
    async fn products(&self, filter: &ProductFilter, page: PageRequest) -> Result<Vec<Product>> {
        let mut select = QueryBuilder::<Postgres>::new(format!(
            "SELECT {PRODUCT_COLUMNS} FROM products WHERE id > "
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
            .push_bind(i64::from(page.limit));
        let rows: Vec<ProductRow> = select.build_query_as().fetch_all(&self.pool).await?;
        rows.into_iter().map(ProductRow::into_product).collect()
    }

    async fn product(&self, id: ProductId) -> Result<Option<Product>> {
        let mut conn = self.pool.acquire().await?;
        match product_in(&mut conn, id.0).await {
            Err(StoreError::NotFound) => Ok(None),
            other => other.map(Some),
        }
    }

    async fn create_product(&self, product: &NewProduct, now: OffsetDateTime) -> Result<Product> {
        // A transaction of its own, whose beginning marks an idempotent request's claim.
        let mut tx = self.begin().await?;
        let row: ProductRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO products (sku, name, description, price, quantity, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {PRODUCT_COLUMNS}"
        )))
        .bind(&product.sku)
        .bind(&product.name)
        .bind(&product.description)
        .bind(product.price.cents())
        .bind(product.quantity)
        .bind(product.status.as_str())
        .bind(ts(now))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| unique_violation(e, "sku", "a product with this SKU already exists"))?;
        let created = row.into_product()?;
        note_created(&mut tx, Created::Product, created.id.0).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn update_product(
        &self,
        id: ProductId,
        patch: &ProductPatch,
        now: OffsetDateTime,
    ) -> Result<Product> {
        let row: Option<ProductRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE products SET sku = coalesce($1, sku), name = coalesce($2, name), \
             description = coalesce($3, description), price = coalesce($4, price), \
             quantity = coalesce($5, quantity), status = coalesce($6, status), \
             updated_at = CASE WHEN coalesce($1, sku) IS DISTINCT FROM sku \
             OR coalesce($2, name) IS DISTINCT FROM name \
             OR coalesce($3, description) IS DISTINCT FROM description \
             OR coalesce($4, price) IS DISTINCT FROM price \
             OR coalesce($5, quantity) IS DISTINCT FROM quantity \
             OR coalesce($6, status) IS DISTINCT FROM status THEN greatest(updated_at, $7) ELSE updated_at END \
             WHERE id = $8 RETURNING {PRODUCT_COLUMNS}"
        )))
        .bind(&patch.sku)
        .bind(&patch.name)
        .bind(&patch.description)
        .bind(patch.price.map(Money::cents))
        .bind(patch.quantity)
        .bind(patch.status.map(ProductStatus::as_str))
        .bind(ts(now))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| unique_violation(e, "sku", "a product with this SKU already exists"))?;
        row.ok_or(StoreError::NotFound)?.into_product()
    }

    async fn set_stock(&self, items: &[StockItem], now: OffsetDateTime) -> Result<Vec<Product>> {
        let skus: Vec<&str> = items.iter().map(|i| i.sku.as_str()).collect();
        let quantities: Vec<i64> = items.iter().map(|i| i.quantity).collect();
        // A few tries, for SKUs renamed or created between the update and the look-up below.
        for _ in 0..3 {
            let updated = match claims::running() {
                None => update_all_or_none(&self.pool, &skus, &quantities, now).await?,
                // An idempotent request's update commits with its claim's mark, and only when
                // it changed every product: a refusal must leave the claim unmarked.
                Some(_) => {
                    let mut tx = self.begin().await?;
                    let updated = update_all_or_none(&mut *tx, &skus, &quantities, now).await?;
                    if updated.len() == items.len() {
                        tx.commit().await?;
                    }
                    updated
                }
            };
            if updated.len() == items.len() {
                let mut by_sku: HashMap<String, Product> = HashMap::with_capacity(updated.len());
                for row in updated {
                    let product = row.into_product()?;
                    by_sku.insert(product.sku.clone(), product);
                }
                return items
                    .iter()
                    .map(|item| {
                        by_sku.remove(&item.sku).ok_or_else(|| {
                            StoreError::Corrupt(format!("no row for `{}`", item.sku))
                        })
                    })
                    .collect();
            }
            let unknown: Vec<String> = sqlx::query_scalar(
                "SELECT i.sku FROM unnest($1::text[]) AS i (sku) \
                 WHERE NOT EXISTS (SELECT 1 FROM products t WHERE t.sku = i.sku)",
            )
            .bind(&skus)
            .fetch_all(&self.pool)
            .await?;
            refuse_unknown_skus(items, &unknown)?;
        }
        Err(StoreError::Corrupt(format!(
            "the stock of {} products changed nothing though every SKU is known",
            items.len()
        )))
    }
}

/// Sets the quantities in one statement, its own transaction, so the row locks are held for
/// the statement alone and not across round trips. It changes every product or, when a SKU
/// is unknown, none (fewer rows come back). The products are locked in id order, as orders
/// lock them, so concurrent bulk updates and orders never wait for each other in a circle.
async fn update_all_or_none<'e>(
    conn: impl sqlx::PgExecutor<'e>,
    skus: &[&str],
    quantities: &[i64],
    now: OffsetDateTime,
) -> Result<Vec<ProductRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH item AS MATERIALIZED ( \
             SELECT t.id, i.quantity FROM products t \
             JOIN unnest($1::text[], $2::bigint[]) AS i (sku, quantity) ON t.sku = i.sku \
             ORDER BY t.id FOR NO KEY UPDATE OF t) \
         UPDATE products p SET quantity = item.quantity, \
         updated_at = CASE WHEN p.quantity IS DISTINCT FROM item.quantity THEN greatest(p.updated_at, $3) ELSE p.updated_at END \
         FROM item \
         WHERE p.id = item.id AND (SELECT count(*) FROM item) = cardinality($1::text[]) \
         RETURNING {PRODUCT_COLUMNS_OF_P}"
    )))
    .bind(skus)
    .bind(quantities)
    .bind(ts(now))
    .fetch_all(conn)
    .await?)
}
