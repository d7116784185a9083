//! Orders: lines, status history, and the stock they take and give back.

use super::customers::customer_in;
use super::{SqliteStore, ts};
use crate::domain::catalog::{
    NewOrder, NewOrderHistory, Order, OrderFilter, OrderHistory, OrderStatus, PageRequest,
    ProductRef, ProductStatus, StatusRef,
};
use crate::domain::ids::{OrderId, OrderStatusId};
use crate::domain::money::Money;
use crate::domain::validation::{Errors, FieldError};
use crate::store::claims::Created;
use crate::store::rows::orders::{
    LineRow, ORDER_SELECT, OrderHistoryRow, OrderRow, lines_by_order,
};
use crate::store::rows::products::{PRODUCT_COLUMNS, ProductRow};
use crate::store::{OrderStore, Result, StoreError};
use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use std::collections::BTreeMap;
use time::OffsetDateTime;

async fn assemble_orders(
    conn: &mut SqliteConnection,
    rows: Vec<OrderRow>,
    with_history: bool,
) -> Result<Vec<Order>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut lines_query = QueryBuilder::<Sqlite>::new(
        "SELECT order_id, product_id, sku, name, price, quantity, total FROM order_lines WHERE order_id IN (",
    );
    let mut ids = lines_query.separated(", ");
    for row in &rows {
        ids.push_bind(row.id);
    }
    lines_query.push(") ORDER BY id");
    let line_rows: Vec<LineRow> = lines_query.build_query_as().fetch_all(&mut *conn).await?;
    let mut lines = lines_by_order(line_rows)?;
    let mut orders = Vec::with_capacity(rows.len());
    for row in rows {
        let history = if with_history {
            Some(order_history(conn, row.id).await?)
        } else {
            None
        };
        let order_lines = lines.remove(&row.id).unwrap_or_default();
        orders.push(row.into_order(order_lines, history)?);
    }
    Ok(orders)
}

use crate::domain::catalog::MAX_HISTORY_SHOWN;

async fn order_history(conn: &mut SqliteConnection, order: i64) -> Result<Vec<OrderHistory>> {
    // The newest entries only, oldest first: an order updated thousands of times (a status
    // pushed by a misbehaving integration) must not make every answer about it huge.
    let rows: Vec<OrderHistoryRow> = sqlx::query_as(
        "SELECT name, order_status_id, comment, notify, date_added FROM ( \
           SELECT h.id, s.name, h.order_status_id, h.comment, h.notify, h.date_added FROM order_history h \
           JOIN order_statuses s ON s.id = h.order_status_id WHERE h.order_id = ? ORDER BY h.id DESC LIMIT ? \
         ) ORDER BY id",
    )
    .bind(order)
    .bind(i64::try_from(MAX_HISTORY_SHOWN).unwrap_or(i64::MAX))
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(OrderHistory::from).collect())
}

impl SqliteStore {
    /// The order as a write left it, read after its commit on a reader connection: the
    /// single writer is not held for the reads (one order is several queries).
    async fn order_after_write(&self, id: i64) -> Result<Order> {
        let mut conn = self.read.acquire().await?;
        order_in(&mut conn, id).await
    }
}

async fn order_in(conn: &mut SqliteConnection, id: i64) -> Result<Order> {
    let row: OrderRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{ORDER_SELECT} WHERE o.id = ?"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound)?;
    assemble_orders(conn, vec![row], true)
        .await?
        .pop()
        .ok_or(StoreError::NotFound)
}

/// Takes (positive `delta`) or returns (negative) stock of each product, or fails with the
/// list of products that are short. Only called inside a write transaction.
async fn move_stock(
    conn: &mut SqliteConnection,
    take: &BTreeMap<i64, i64>,
    now: OffsetDateTime,
) -> Result<()> {
    let mut short = Vec::new();
    for (&product, &quantity) in take {
        let updated = sqlx::query(
            "UPDATE products SET quantity = quantity - ?1, updated_at = ?2 WHERE id = ?3 AND quantity >= ?1",
        )
        .bind(quantity)
        .bind(ts(now))
        .bind(product)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if updated == 0 {
            let (sku, available): (String, i64) =
                sqlx::query_as("SELECT sku, quantity FROM products WHERE id = ?")
                    .bind(product)
                    .fetch_one(&mut *conn)
                    .await?;
            short.push(FieldError {
                field: sku.clone(),
                message: format!("{available} in stock, {quantity} wanted"),
            });
        }
    }
    if short.is_empty() {
        return Ok(());
    }
    let skus: Vec<&str> = short.iter().map(|f| f.field.as_str()).collect();
    Err(StoreError::Conflict {
        message: format!("not enough stock for {}", skus.join(", ")),
        details: short,
    })
}

async fn return_stock(conn: &mut SqliteConnection, order: i64, now: OffsetDateTime) -> Result<()> {
    sqlx::query(
        "UPDATE products SET quantity = products.quantity + l.quantity, updated_at = ?1 \
         FROM (SELECT product_id, sum(quantity) AS quantity FROM order_lines WHERE order_id = ?2 GROUP BY product_id) l \
         WHERE products.id = l.product_id",
    )
    .bind(ts(now))
    .bind(order)
    .execute(conn)
    .await?;
    Ok(())
}

async fn resolve_status(conn: &mut SqliteConnection, status: &StatusRef) -> Result<(i64, bool)> {
    let found: Option<(i64, bool)> = match status {
        StatusRef::Id(id) => {
            sqlx::query_as("SELECT id, holds_stock FROM order_statuses WHERE id = ?")
                .bind(id.0)
                .fetch_optional(conn)
                .await?
        }
        StatusRef::Name(name) => {
            sqlx::query_as("SELECT id, holds_stock FROM order_statuses WHERE name = ?")
                .bind(name)
                .fetch_optional(conn)
                .await?
        }
    };
    found.ok_or_else(|| {
        StoreError::invalid(
            "status",
            "is not an order status; see GET /api/v1/order-statuses",
        )
    })
}

#[async_trait]
impl OrderStore for SqliteStore {
    async fn order_statuses(&self) -> Result<Vec<OrderStatus>> {
        let rows: Vec<(i64, String, bool)> =
            sqlx::query_as("SELECT id, name, holds_stock FROM order_statuses ORDER BY id")
                .fetch_all(&self.read)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, holds_stock)| OrderStatus {
                id: OrderStatusId(id),
                name,
                holds_stock,
            })
            .collect())
    }

    async fn orders(&self, filter: &OrderFilter, page: PageRequest) -> Result<Vec<Order>> {
        let mut select = QueryBuilder::<Sqlite>::new(format!("{ORDER_SELECT} WHERE o.id > "));
        select.push_bind(page.after.unwrap_or(0));
        if let Some(status) = filter.status {
            select.push(" AND o.order_status_id = ").push_bind(status.0);
        }
        if let Some(customer) = filter.customer_id {
            select.push(" AND o.customer_id = ").push_bind(customer.0);
        }
        if let Some(since) = filter.updated_since {
            select.push(" AND o.updated_at >= ").push_bind(ts(since));
        }
        select
            .push(" ORDER BY o.id LIMIT ")
            .push_bind(i64::from(page.limit));
        let mut conn = self.read.acquire().await?;
        let rows: Vec<OrderRow> = select.build_query_as().fetch_all(&mut *conn).await?;
        assemble_orders(&mut conn, rows, false).await
    }

    async fn order(&self, id: OrderId) -> Result<Option<Order>> {
        let mut conn = self.read.acquire().await?;
        match order_in(&mut conn, id.0).await {
            Err(StoreError::NotFound) => Ok(None),
            other => other.map(Some),
        }
    }

    async fn create_order(&self, order: &NewOrder, now: OffsetDateTime) -> Result<Order> {
        let (mut tx, now) = self.begin_stamped(now).await?;
        let mut errors = Errors::new();
        match customer_in(&mut tx, order.customer_id.0).await {
            Ok(_) => {}
            Err(StoreError::NotFound) => errors.add("customer_id", "no customer has this id"),
            Err(other) => return Err(other),
        }
        let mut lines = Vec::with_capacity(order.lines.len());
        for (i, (reference, quantity)) in order.lines.iter().enumerate() {
            let (field, row): (String, Option<ProductRow>) = match reference {
                ProductRef::Id(id) => (
                    format!("lines[{i}].product_id"),
                    sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT {PRODUCT_COLUMNS} FROM products WHERE id = ?"
                    )))
                    .bind(id.0)
                    .fetch_optional(&mut *tx)
                    .await?,
                ),
                ProductRef::Sku(sku) => (
                    format!("lines[{i}].sku"),
                    sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT {PRODUCT_COLUMNS} FROM products WHERE sku = ?"
                    )))
                    .bind(sku)
                    .fetch_optional(&mut *tx)
                    .await?,
                ),
            };
            match row.map(ProductRow::into_product).transpose()? {
                None => errors.add(field, "no product matches"),
                Some(product) if product.status == ProductStatus::Disabled => {
                    errors.add(field, format!("the product `{}` is disabled", product.sku))
                }
                Some(product) => match product
                    .price
                    .checked_mul(*quantity)
                    .and_then(|t| Money::from_cents(t.cents()).ok())
                {
                    Some(total) => lines.push((product, *quantity, total)),
                    None => errors.add(
                        format!("lines[{i}].quantity"),
                        "makes the line total too large",
                    ),
                },
            }
        }
        let total = lines
            .iter()
            .try_fold(Money::ZERO, |sum, (_, _, line)| sum.checked_add(*line));
        let total = match total.and_then(|t| Money::from_cents(t.cents()).ok()) {
            Some(total) => total,
            None => {
                errors.add("lines", "the order total is too large");
                Money::ZERO
            }
        };
        errors.finish().map_err(StoreError::Invalid)?;

        let mut take: BTreeMap<i64, i64> = BTreeMap::new();
        for (product, quantity, _) in &lines {
            *take.entry(product.id.0).or_default() += quantity;
        }
        move_stock(&mut tx, &take, now).await?;

        let id = sqlx::query(
            "INSERT INTO orders (customer_id, currency, total, order_status_id, comment, created_at, updated_at) \
             VALUES (?, ?, ?, 1, ?, ?, ?)",
        )
        .bind(order.customer_id.0)
        .bind(&order.currency)
        .bind(total.cents())
        .bind(&order.comment)
        .bind(ts(now))
        .bind(ts(now))
        .execute(&mut *tx)
        .await?
        .last_insert_rowid();
        for (product, quantity, line_total) in &lines {
            sqlx::query(
                "INSERT INTO order_lines (order_id, product_id, sku, name, price, quantity, total) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(id)
            .bind(product.id.0)
            .bind(&product.sku)
            .bind(&product.name)
            .bind(product.price.cents())
            .bind(quantity)
            .bind(line_total.cents())
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("INSERT INTO order_history (order_id, order_status_id, comment, notify, date_added) VALUES (?, 1, ?, 0, ?)")
            .bind(id)
            .bind(&order.comment)
            .bind(ts(now))
            .execute(&mut *tx)
            .await?;
        Self::note_created(&mut tx, Created::Order, id).await?;
        tx.commit().await?;
        self.order_after_write(id).await
    }

    async fn add_order_history(
        &self,
        id: OrderId,
        entry: &NewOrderHistory,
        now: OffsetDateTime,
    ) -> Result<Order> {
        let (mut tx, now) = self.begin_stamped(now).await?;
        let current: (i64, bool) = sqlx::query_as(
            "SELECT o.order_status_id, s.holds_stock FROM orders o JOIN order_statuses s ON s.id = o.order_status_id \
             WHERE o.id = ?",
        )
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let (status, holds) = resolve_status(&mut tx, &entry.status).await?;
        match (current.1, holds) {
            // Canceling or refunding puts the goods back on the shelf…
            (true, false) => return_stock(&mut tx, id.0, now).await?,
            // …and reopening takes them again, if they are still there.
            (false, true) => {
                let take: Vec<(i64, i64)> = sqlx::query_as(
                    "SELECT product_id, sum(quantity) FROM order_lines WHERE order_id = ? GROUP BY product_id",
                )
                .bind(id.0)
                .fetch_all(&mut *tx)
                .await?;
                move_stock(&mut tx, &take.into_iter().collect(), now).await?;
            }
            _ => {}
        }
        sqlx::query("UPDATE orders SET order_status_id = ?, updated_at = ? WHERE id = ?")
            .bind(status)
            .bind(ts(now))
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO order_history (order_id, order_status_id, comment, notify, date_added) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(id.0)
        .bind(status)
        .bind(&entry.comment)
        .bind(entry.notify)
        .bind(ts(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.order_after_write(id.0).await
    }
}
