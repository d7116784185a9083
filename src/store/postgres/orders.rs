//! Orders: lines, status history, and the stock they take and give back.
//!
//! Stock moves under row locks taken in product id order, by orders and bulk stock updates
//! alike, so concurrent orders queue on the products they share and never deadlock; a locked
//! row is read at its newest, so `quantity >= wanted` can never oversell.

use super::customers::customer_in;
use super::{PgStore, note_created, ts};
use crate::domain::catalog::{
    MAX_HISTORY_SHOWN, NewOrder, NewOrderHistory, Order, OrderFilter, OrderHistory, OrderStatus,
    PageRequest, Product, ProductRef, ProductStatus, StatusRef,
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
use sqlx::{PgConnection, Postgres, QueryBuilder};
use std::collections::{BTreeMap, HashMap};
use time::OffsetDateTime;

/// Orders with their lines, and with their history when `with_history`.
async fn assemble_orders(
    conn: &mut PgConnection,
    rows: Vec<OrderRow>,
    with_history: bool,
) -> Result<Vec<Order>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
    let line_rows: Vec<LineRow> = sqlx::query_as(
        "SELECT order_id, product_id, sku, name, price, quantity, total FROM order_lines \
         WHERE order_id = ANY($1) ORDER BY id",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
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

async fn order_history(conn: &mut PgConnection, order: i64) -> Result<Vec<OrderHistory>> {
    // The newest entries only, oldest first: an order updated thousands of times (a status
    // pushed by a misbehaving integration) must not make every answer about it huge.
    let rows: Vec<OrderHistoryRow> = sqlx::query_as(
        "SELECT name, order_status_id, comment, notify, date_added FROM ( \
           SELECT h.id, s.name, h.order_status_id, h.comment, h.notify, h.date_added FROM order_history h \
           JOIN order_statuses s ON s.id = h.order_status_id WHERE h.order_id = $1 ORDER BY h.id DESC LIMIT $2 \
         ) AS newest ORDER BY id",
    )
    .bind(order)
    .bind(i64::try_from(MAX_HISTORY_SHOWN).unwrap_or(i64::MAX))
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(OrderHistory::from).collect())
}

async fn order_in(conn: &mut PgConnection, id: i64) -> Result<Order> {
    let row: OrderRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{ORDER_SELECT} WHERE o.id = $1"
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

/// Locks the products' rows, in id order, for the rest of the transaction.
async fn lock_products(conn: &mut PgConnection, ids: Vec<i64>) -> Result<()> {
    sqlx::query("SELECT id FROM products WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
        .bind(ids)
        .execute(conn)
        .await?;
    Ok(())
}

/// Takes stock of each product, or fails with the list of products that are short. The rows
/// are locked first, so the update that follows reads their newest quantities.
async fn move_stock(
    conn: &mut PgConnection,
    take: &BTreeMap<i64, i64>,
    now: OffsetDateTime,
) -> Result<()> {
    let ids: Vec<i64> = take.keys().copied().collect();
    lock_products(&mut *conn, ids.clone()).await?;
    let taken: Vec<i64> = sqlx::query_scalar(
        "UPDATE products p SET quantity = p.quantity - w.quantity, updated_at = greatest(p.updated_at, $3) \
         FROM unnest($1::bigint[], $2::bigint[]) AS w (id, quantity) \
         WHERE p.id = w.id AND p.quantity >= w.quantity RETURNING p.id",
    )
    .bind(&ids)
    .bind(take.values().copied().collect::<Vec<_>>())
    .bind(ts(now))
    .fetch_all(&mut *conn)
    .await?;
    if taken.len() == take.len() {
        return Ok(());
    }
    let short_ids: Vec<i64> = ids.into_iter().filter(|id| !taken.contains(id)).collect();
    let rows: Vec<(i64, String, i64)> =
        sqlx::query_as("SELECT id, sku, quantity FROM products WHERE id = ANY($1) ORDER BY id")
            .bind(short_ids)
            .fetch_all(&mut *conn)
            .await?;
    let short: Vec<FieldError> = rows
        .into_iter()
        .map(|(id, sku, available)| FieldError {
            message: format!(
                "{available} in stock, {} wanted",
                take.get(&id).copied().unwrap_or_default()
            ),
            field: sku,
        })
        .collect();
    let skus: Vec<&str> = short.iter().map(|f| f.field.as_str()).collect();
    Err(StoreError::Conflict {
        message: format!("not enough stock for {}", skus.join(", ")),
        details: short,
    })
}

async fn return_stock(conn: &mut PgConnection, order: i64, now: OffsetDateTime) -> Result<()> {
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT DISTINCT product_id FROM order_lines WHERE order_id = $1")
            .bind(order)
            .fetch_all(&mut *conn)
            .await?;
    lock_products(&mut *conn, ids).await?;
    sqlx::query(
        "UPDATE products SET quantity = products.quantity + l.quantity, \
         updated_at = greatest(products.updated_at, $1) \
         FROM (SELECT product_id, sum(quantity)::bigint AS quantity FROM order_lines \
               WHERE order_id = $2 GROUP BY product_id) AS l \
         WHERE products.id = l.product_id",
    )
    .bind(ts(now))
    .bind(order)
    .execute(conn)
    .await?;
    Ok(())
}

async fn resolve_status(conn: &mut PgConnection, status: &StatusRef) -> Result<(i64, bool)> {
    let found: Option<(i64, bool)> = match status {
        StatusRef::Id(id) => {
            sqlx::query_as("SELECT id, holds_stock FROM order_statuses WHERE id = $1")
                .bind(id.0)
                .fetch_optional(conn)
                .await?
        }
        // Names match whatever their case, as in SQLite's NOCASE.
        StatusRef::Name(name) => {
            sqlx::query_as(
                "SELECT id, holds_stock FROM order_statuses WHERE lower(name) = lower($1)",
            )
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

/// The products an order names, by id and by SKU, in one query.
async fn products_named(
    conn: &mut PgConnection,
    order: &NewOrder,
) -> Result<(HashMap<i64, Product>, HashMap<String, i64>)> {
    let mut ids = Vec::new();
    let mut skus = Vec::new();
    for (reference, _) in &order.lines {
        match reference {
            ProductRef::Id(id) => ids.push(id.0),
            ProductRef::Sku(sku) => skus.push(sku.as_str()),
        }
    }
    let rows: Vec<ProductRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {PRODUCT_COLUMNS} FROM products WHERE id = ANY($1) OR sku = ANY($2)"
    )))
    .bind(ids)
    .bind(skus)
    .fetch_all(conn)
    .await?;
    let mut by_id = HashMap::with_capacity(rows.len());
    let mut by_sku = HashMap::with_capacity(rows.len());
    for row in rows {
        let product = row.into_product()?;
        by_sku.insert(product.sku.clone(), product.id.0);
        by_id.insert(product.id.0, product);
    }
    Ok((by_id, by_sku))
}

#[async_trait]
impl OrderStore for PgStore {
    async fn order_statuses(&self) -> Result<Vec<OrderStatus>> {
        let rows: Vec<(i64, String, bool)> =
            sqlx::query_as("SELECT id, name, holds_stock FROM order_statuses ORDER BY id")
                .fetch_all(&self.pool)
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
        let mut select = QueryBuilder::<Postgres>::new(format!("{ORDER_SELECT} WHERE o.id > "));
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
        let mut conn = self.pool.acquire().await?;
        let rows: Vec<OrderRow> = select.build_query_as().fetch_all(&mut *conn).await?;
        assemble_orders(&mut conn, rows, false).await
    }

    async fn order(&self, id: OrderId) -> Result<Option<Order>> {
        let mut conn = self.pool.acquire().await?;
        match order_in(&mut conn, id.0).await {
            Err(StoreError::NotFound) => Ok(None),
            other => other.map(Some),
        }
    }

    async fn create_order(&self, order: &NewOrder, now: OffsetDateTime) -> Result<Order> {
        let mut tx = self.begin().await?;
        let mut errors = Errors::new();
        match customer_in(&mut tx, order.customer_id.0).await {
            Ok(_) => {}
            Err(StoreError::NotFound) => errors.add("customer_id", "no customer has this id"),
            Err(other) => return Err(other),
        }
        let (by_id, by_sku) = products_named(&mut tx, order).await?;
        let mut lines = Vec::with_capacity(order.lines.len());
        for (i, (reference, quantity)) in order.lines.iter().enumerate() {
            let (field, product) = match reference {
                ProductRef::Id(id) => (format!("lines[{i}].product_id"), by_id.get(&id.0)),
                ProductRef::Sku(sku) => (
                    format!("lines[{i}].sku"),
                    by_sku.get(sku).and_then(|id| by_id.get(id)),
                ),
            };
            match product {
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

        let id: i64 = sqlx::query_scalar(
            "INSERT INTO orders (customer_id, currency, total, order_status_id, comment, created_at, updated_at) \
             VALUES ($1, $2, $3, 1, $4, $5, $5) RETURNING id",
        )
        .bind(order.customer_id.0)
        .bind(&order.currency)
        .bind(total.cents())
        .bind(&order.comment)
        .bind(ts(now))
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO order_lines (order_id, product_id, sku, name, price, quantity, total) \
             SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[])",
        )
        .bind(id)
        .bind(lines.iter().map(|(p, _, _)| p.id.0).collect::<Vec<_>>())
        .bind(lines.iter().map(|(p, _, _)| p.sku.as_str()).collect::<Vec<_>>())
        .bind(lines.iter().map(|(p, _, _)| p.name.as_str()).collect::<Vec<_>>())
        .bind(lines.iter().map(|(p, _, _)| p.price.cents()).collect::<Vec<_>>())
        .bind(lines.iter().map(|(_, q, _)| *q).collect::<Vec<_>>())
        .bind(lines.iter().map(|(_, _, t)| t.cents()).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO order_history (order_id, order_status_id, comment, notify, date_added) \
             VALUES ($1, 1, $2, false, $3)",
        )
        .bind(id)
        .bind(&order.comment)
        .bind(ts(now))
        .execute(&mut *tx)
        .await?;
        let created = order_in(&mut tx, id).await?;
        note_created(&mut tx, Created::Order, id).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn add_order_history(
        &self,
        id: OrderId,
        entry: &NewOrderHistory,
        now: OffsetDateTime,
    ) -> Result<Order> {
        let mut tx = self.begin().await?;
        // The order's row lock makes concurrent status changes of one order take turns, so
        // its stock is returned or taken once per change. The lock is taken alone: joined to
        // its status, a row whose status another change just moved fails PostgreSQL's
        // recheck of the join after the wait, and the order would seem not to exist.
        let current: i64 = sqlx::query_scalar(
            "SELECT order_status_id FROM orders WHERE id = $1 FOR NO KEY UPDATE",
        )
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let current: (i64, bool) =
            resolve_status(&mut tx, &StatusRef::Id(OrderStatusId(current))).await?;
        let (status, holds) = resolve_status(&mut tx, &entry.status).await?;
        match (current.1, holds) {
            // Canceling or refunding puts the goods back on the shelf…
            (true, false) => return_stock(&mut tx, id.0, now).await?,
            // …and reopening takes them again, if they are still there.
            (false, true) => {
                let take: Vec<(i64, i64)> = sqlx::query_as(
                    "SELECT product_id, sum(quantity)::bigint FROM order_lines WHERE order_id = $1 \
                     GROUP BY product_id",
                )
                .bind(id.0)
                .fetch_all(&mut *tx)
                .await?;
                move_stock(&mut tx, &take.into_iter().collect(), now).await?;
            }
            _ => {}
        }
        sqlx::query("UPDATE orders SET order_status_id = $1, updated_at = greatest(updated_at, $2) WHERE id = $3")
            .bind(status)
            .bind(ts(now))
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO order_history (order_id, order_status_id, comment, notify, date_added) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id.0)
        .bind(status)
        .bind(&entry.comment)
        .bind(entry.notify)
        .bind(ts(now))
        .execute(&mut *tx)
        .await?;
        let order = order_in(&mut tx, id.0).await?;
        tx.commit().await?;
        Ok(order)
    }
}
