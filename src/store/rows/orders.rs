//! Rows of orders, their lines and their status history.

use super::products::money;
use crate::domain::catalog::{Order, OrderHistory, OrderLine};
use crate::domain::ids::{CustomerId, OrderId, OrderStatusId, ProductId};
use crate::store::Result;
use crate::store::columns::from_ts;
use sqlx::FromRow;
use std::collections::HashMap;

#[derive(FromRow)]
pub(crate) struct OrderRow {
    pub(crate) id: i64,
    customer_id: i64,
    currency: String,
    total: i64,
    order_status_id: i64,
    status: String,
    comment: String,
    created_at: i64,
    updated_at: i64,
}

pub(crate) const ORDER_SELECT: &str = "SELECT o.id, o.customer_id, o.currency, o.total, o.order_status_id, s.name AS status, \
     o.comment, o.created_at, o.updated_at FROM orders o JOIN order_statuses s ON s.id = o.order_status_id";

impl OrderRow {
    pub(crate) fn into_order(
        self,
        lines: Vec<OrderLine>,
        history: Option<Vec<OrderHistory>>,
    ) -> Result<Order> {
        Ok(Order {
            id: OrderId(self.id),
            customer_id: CustomerId(self.customer_id),
            total: money(self.total)?,
            order_status_id: OrderStatusId(self.order_status_id),
            lines,
            history,
            created_at: from_ts(self.created_at),
            updated_at: from_ts(self.updated_at),
            currency: self.currency,
            status: self.status,
            comment: self.comment,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct LineRow {
    order_id: i64,
    product_id: i64,
    sku: String,
    name: String,
    price: i64,
    quantity: i64,
    total: i64,
}

/// The lines of each order, by order id, in the order they come.
pub(crate) fn lines_by_order(rows: Vec<LineRow>) -> Result<HashMap<i64, Vec<OrderLine>>> {
    let mut lines: HashMap<i64, Vec<OrderLine>> = HashMap::new();
    for line in rows {
        lines.entry(line.order_id).or_default().push(OrderLine {
            product_id: ProductId(line.product_id),
            sku: line.sku,
            name: line.name,
            price: money(line.price)?,
            quantity: line.quantity,
            total: money(line.total)?,
        });
    }
    Ok(lines)
}

#[derive(FromRow)]
pub(crate) struct OrderHistoryRow {
    name: String,
    order_status_id: i64,
    comment: String,
    notify: bool,
    date_added: i64,
}

impl From<OrderHistoryRow> for OrderHistory {
    fn from(row: OrderHistoryRow) -> Self {
        Self {
            status: row.name,
            order_status_id: OrderStatusId(row.order_status_id),
            comment: row.comment,
            notify: row.notify,
            date_added: from_ts(row.date_added),
        }
    }
}
