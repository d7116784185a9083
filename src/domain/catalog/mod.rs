//! The store: products, customers, orders with their lines and status history.

mod customer;
mod order;
mod product;

pub use customer::*;
pub use order::*;
pub use product::*;

use serde::Serialize;
use utoipa::ToSchema;

pub const MAX_QUANTITY: i64 = 1_000_000_000;
pub const MAX_BULK_ITEMS: usize = 1000;
pub const MAX_ORDER_LINES: usize = 500;
/// How many of an order's history entries an answer shows (the newest).
pub const MAX_HISTORY_SHOWN: usize = 100;

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
