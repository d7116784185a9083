//! Customers.

use super::{SqliteStore, ts, unique_violation};
use crate::domain::catalog::{Customer, CustomerFilter, CustomerInput, CustomerPatch, PageRequest};
use crate::domain::ids::CustomerId;
use crate::store::claims::Created;
use crate::store::rows::customers::CustomerRow;
use crate::store::{CustomerStore, Result, StoreError};
use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use time::OffsetDateTime;

pub(super) async fn customer_in(conn: &mut SqliteConnection, id: i64) -> Result<Customer> {
    let row: CustomerRow = sqlx::query_as(
        "SELECT id, name, email, phone, created_at, updated_at FROM customers WHERE id = ?",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(StoreError::NotFound)?;
    Ok(row.into())
}

#[async_trait]
impl CustomerStore for SqliteStore {
    async fn customers(&self, filter: &CustomerFilter, page: PageRequest) -> Result<Vec<Customer>> {
        let mut select = QueryBuilder::<Sqlite>::new(
            "SELECT id, name, email, phone, created_at, updated_at FROM customers WHERE id > ",
        );
        select.push_bind(page.after.unwrap_or(0));
        if let Some(email) = &filter.email {
            // The column compares without case (`COLLATE NOCASE`), in its unique index.
            select.push(" AND email = ").push_bind(email.clone());
        }
        select
            .push(" ORDER BY id LIMIT ")
            .push_bind(i64::from(page.limit));
        let rows: Vec<CustomerRow> = select.build_query_as().fetch_all(&self.read).await?;
        Ok(rows.into_iter().map(Customer::from).collect())
    }

    async fn customer(&self, id: CustomerId) -> Result<Option<Customer>> {
        let mut conn = self.read.acquire().await?;
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
        let (mut tx, now) = self.begin_stamped(now).await?;
        let id = sqlx::query(
            "INSERT INTO customers (name, email, phone, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&customer.name)
        .bind(&customer.email)
        .bind(&customer.phone)
        .bind(ts(now))
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_violation(e, "email", "a customer with this email already exists"))?
        .last_insert_rowid();
        let created = customer_in(&mut tx, id).await?;
        Self::note_created(&mut tx, Created::Customer, id).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn update_customer(
        &self,
        id: CustomerId,
        patch: &CustomerPatch,
        now: OffsetDateTime,
    ) -> Result<Customer> {
        let (mut tx, now) = self.begin_stamped(now).await?;
        let updated = sqlx::query(
            // `updated_at` moves only when a value does (see the products').
            "UPDATE customers SET name = coalesce(?1, name), email = coalesce(?2, email), \
             phone = CASE WHEN ?3 THEN ?4 ELSE phone END, \
             updated_at = CASE WHEN coalesce(?1, name) IS NOT name OR coalesce(?2, email) IS NOT email COLLATE BINARY \
             OR (?3 AND ?4 IS NOT phone) THEN ?5 ELSE updated_at END WHERE id = ?6",
        )
        .bind(&patch.name)
        .bind(&patch.email)
        .bind(patch.phone.is_some())
        .bind(patch.phone.clone().flatten())
        .bind(ts(now))
        .bind(id.0)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_violation(e, "email", "a customer with this email already exists"))?
        .rows_affected();
        if updated == 0 {
            return Err(StoreError::NotFound);
        }
        let customer = customer_in(&mut tx, id.0).await?;
        tx.commit().await?;
        Ok(customer)
    }
}
