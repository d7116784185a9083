//! Rows of customers.

use crate::domain::catalog::Customer;
use crate::domain::ids::CustomerId;
use crate::store::columns::from_ts;
use sqlx::FromRow;

#[derive(FromRow)]
pub(crate) struct CustomerRow {
    id: i64,
    name: String,
    email: String,
    phone: Option<String>,
    created_at: i64,
    updated_at: i64,
}

pub(crate) const CUSTOMER_COLUMNS: &str = "id, name, email, phone, created_at, updated_at";

impl From<CustomerRow> for Customer {
    fn from(row: CustomerRow) -> Self {
        Self {
            id: CustomerId(row.id),
            name: row.name,
            email: row.email,
            phone: row.phone,
            created_at: from_ts(row.created_at),
            updated_at: from_ts(row.updated_at),
        }
    }
}
