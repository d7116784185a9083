//! Customers.

use super::{PgStore, note_created, ts, unique_violation};
use crate::domain::catalog::{Customer, CustomerFilter, CustomerInput, CustomerPatch, PageRequest};
use crate::domain::ids::CustomerId;
use crate::store::claims::Created;
use crate::store::rows::customers::{CUSTOMER_COLUMNS, CustomerRow};
use crate::store::{CustomerStore, Result, StoreError};
use async_trait::async_trait;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use time::OffsetDateTime;

/// Emails are unique whatever their case (an index on `lower(email)`).
const EMAIL_TAKEN: &str = "a customer with this email already exists";

pub(super) async fn customer_in(conn: &mut PgConnection, id: i64) -> Result<Customer> {
    let row: CustomerRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(StoreError::NotFound)?;
    Ok(row.into())
}

#[async_trait]
impl CustomerStore for PgStore {
    async fn customers(&self, filter: &CustomerFilter, page: PageRequest) -> Result<Vec<Customer>> {
        let mut select = QueryBuilder::<Postgres>::new(format!(
            "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id > "
        ));
        select.push_bind(page.after.unwrap_or(0));
        if let Some(email) = &filter.email {
            // Through the unique index on `lower(email)`.
            select
                .push(" AND lower(email) = lower(")
                .push_bind(email.clone())
                .push(")");
        }
        select
            .push(" ORDER BY id LIMIT ")
            .push_bind(i64::from(page.limit));
        let rows: Vec<CustomerRow> = select.build_query_as().fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(Customer::from).collect())
    }

    async fn customer(&self, id: CustomerId) -> Result<Option<Customer>> {
        let mut conn = self.pool.acquire().await?;
        match customer_in(&mut conn, id.0).await {
            Err(StoreError::NotFound) => Ok(None),
            other => other.map(Some),
        }
    }

    async fn create_customer(
        &self,
        customer: &CustomerInput,
        now: OffsetDateTime,
    ) -> Result<Customer> {
        // A transaction of its own, whose beginning marks an idempotent request's claim.
        let mut tx = self.begin().await?;
        let row: CustomerRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO customers (name, email, phone, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) RETURNING {CUSTOMER_COLUMNS}"
        )))
        .bind(&customer.name)
        .bind(&customer.email)
        .bind(&customer.phone)
        .bind(ts(now))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| unique_violation(e, "email", EMAIL_TAKEN))?;
        let created: Customer = row.into();
        note_created(&mut tx, Created::Customer, created.id.0).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn update_customer(
        &self,
        id: CustomerId,
        patch: &CustomerPatch,
        now: OffsetDateTime,
    ) -> Result<Customer> {
        let row: Option<CustomerRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE customers SET name = coalesce($1, name), email = coalesce($2, email), \
             phone = CASE WHEN $3 THEN $4 ELSE phone END, \
             updated_at = CASE WHEN coalesce($1, name) IS DISTINCT FROM name \
             OR coalesce($2, email) IS DISTINCT FROM email \
             OR ($3 AND $4 IS DISTINCT FROM phone) THEN greatest(updated_at, $5) ELSE updated_at END \
             WHERE id = $6 RETURNING {CUSTOMER_COLUMNS}"
        )))
        .bind(&patch.name)
        .bind(&patch.email)
        .bind(patch.phone.is_some())
        .bind(patch.phone.clone().flatten())
        .bind(ts(now))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| unique_violation(e, "email", EMAIL_TAKEN))?;
        Ok(row.ok_or(StoreError::NotFound)?.into())
    }
}
