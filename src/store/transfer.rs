//! Moving a whole store between databases (`keyward export` / `keyward import`): the tables
//! that move, their columns, and the code both backends share to read and write them.
//!
//! Both backends keep the same columns with the same meaning (times in microseconds, money in
//! cents, digests as bytes), so rows move unchanged: ids, key and token digests and timestamps
//! stay what they were, and no key is issued anew. Webhook endpoints keep their signing secrets
//! sealed as they are: the database they go to must use the same webhook key. What can be
//! rebuilt is not moved: the console's aggregates (the history's triggers recount them on
//! import), the change log, rate-limit buckets, console sessions and idempotency records.

use super::{Result, StoreError};
use async_trait::async_trait;
use sqlx::{Database, Decode, Encode, Row, Type};
use tokio::sync::mpsc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    /// 32 bits in PostgreSQL (`api_history.status`).
    Int32,
    Text,
    Bool,
    Bytes,
}

#[derive(Debug)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
}

#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [Column],
    /// Rows are read in this order, so two exports of one store are the same file.
    pub order_by: &'static str,
    /// Whether `id` is an identity whose next value must follow the imported rows.
    pub identity: bool,
    /// What the table belongs to, which an export may leave out.
    pub part: Part,
}

/// The parts of a store an export may leave out, besides the store itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Store,
    /// Open API sessions: without them, integrations log in again after the move.
    Sessions,
    /// Webhook endpoints, their deliveries and the alerts already raised: their signing
    /// secrets open only with the webhook key of the database they come from.
    Webhooks,
}

macro_rules! columns {
    ($($name:ident: $kind:ident),* $(,)?) => {
        &[$(Column { name: stringify!($name), kind: Kind::$kind }),*]
    };
}

/// Every table that moves, parents before children.
pub static TABLES: &[Table] = &[
    Table {
        name: "admin_users",
        columns: columns!(id: Int, username: Text, password_hash: Text, role: Text, status: Text,
            created_at: Int, updated_at: Int),
        order_by: "id",
        identity: true,
        part: Part::Store,
    },
    Table {
        name: "admin_audit",
        columns: columns!(id: Int, at: Int, actor: Text, actor_ip: Text, action: Text,
            target: Text, details: Text),
        order_by: "id",
        identity: true,
        part: Part::Store,
    },
    Table {
        name: "api_users",
        columns: columns!(id: Int, username: Text, description: Text, environment: Text,
            status: Text, scopes: Text, rate_limit_per_minute: Int, management: Bool,
            created_at: Int, updated_at: Int, last_used_at: Int, last_used_ip: Text),
        order_by: "id",
        identity: true,
        part: Part::Store,
    },
    Table {
        name: "api_keys",
        columns: columns!(id: Int, api_user_id: Int, key_hash: Bytes, hint: Text, imported: Bool,
            created_at: Int, expires_at: Int, revoked_at: Int, revoked_reason: Text),
        order_by: "id",
        identity: true,
        part: Part::Store,
    },
    Table {
        name: "api_ip_rules",
        columns: columns!(api_user_id: Int, rule: Text, created_at: Int),
        order_by: "api_user_id, rule",
        identity: false,
        part: Part::Store,
    },
    Table {
        name: "api_sessions",
        columns: columns!(id: Int, api_user_id: Int, api_key_id: Int, token_hash: Bytes, ip: Text,
            created_at: Int, last_seen_at: Int, idle_timeout_s: Int, expires_at: Int,
            revoked_at: Int),
        order_by: "id",
        identity: true,
        part: Part::Sessions,
    },
    Table {
        name: "products",
        columns: columns!(id: Int, sku: Text, name: Text, description: Text, price: Int,
            quantity: Int, status: Text, created_at: Int, updated_at: Int),
        order_by: "id",
        identity: true,
        part: Part::Store,
    },
    Table {
        name: "customers",
        columns: columns!(id: Int, name: Text, email: Text, phone: Text, created_at: Int,
            updated_at: Int),
        order_by: "id",
        identity: true,
        part: Part::Store,
    },
    Table {
        name: "orders",
        columns: columns!(id: Int, customer_id: Int, currency: Text, total: Int,
            order_status_id: Int, comment: Text, created_at: Int, updated_at: Int),
        order_by: "id",
        identity: true,
        part: Part::Store,
    },
    Table {
        name: "order_lines",
        columns: columns!(id: Int, order_id: Int, product_id: Int, sku: Text, name: Text,
            price: Int, quantity: Int, total: Int),
        order_by: "id",
        identity: true,
        part: Part::Store,
    },
    Table {
        name: "order_history",
        columns: columns!(id: Int, order_id: Int, order_status_id: Int, comment: Text,
            notify: Bool, date_added: Int),
        order_by: "id",
        identity: true,
        part: Part::Store,
    },
    Table {
        name: "api_history",
        columns: columns!(id: Int, api_user_id: Int, username: Text, key_hint: Text,
            session_id: Int, call: Text, ip: Text, status: Int32, outcome: Text,
            date_added: Int, date_modified: Int, request_id: Text),
        order_by: "id",
        identity: true,
        part: Part::Store,
    },
    Table {
        name: "webhooks",
        columns: columns!(id: Int, url: Text, description: Text, events: Text,
            sealed_secret: Bytes, secret_hint: Text, status: Text, created_at: Int,
            updated_at: Int),
        order_by: "id",
        identity: true,
        part: Part::Webhooks,
    },
    Table {
        name: "webhook_previous_secrets",
        columns: columns!(webhook_id: Int, sealed_secret: Bytes, secret_hint: Text,
            expires_at: Int),
        order_by: "webhook_id",
        identity: false,
        part: Part::Webhooks,
    },
    Table {
        name: "webhook_deliveries",
        columns: columns!(id: Int, webhook_id: Int, event_id: Text, event_type: Text,
            payload: Text, state: Text, attempts: Int, created_at: Int, next_attempt_at: Int,
            claimed_until: Int, last_attempt_at: Int, last_status: Int, last_error: Text,
            delivered_at: Int),
        order_by: "id",
        identity: true,
        part: Part::Webhooks,
    },
    Table {
        name: "webhook_alerts",
        columns: columns!(alert_key: Text, raised_at: Int),
        order_by: "alert_key",
        identity: false,
        part: Part::Webhooks,
    },
];

pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

impl Table {
    pub fn select(&self) -> String {
        let columns: Vec<&str> = self.columns.iter().map(|c| c.name).collect();
        format!(
            "SELECT {} FROM {} ORDER BY {}",
            columns.join(", "),
            self.name,
            self.order_by
        )
    }

    pub fn insert_head(&self) -> String {
        let columns: Vec<&str> = self.columns.iter().map(|c| c.name).collect();
        format!("INSERT INTO {} ({}) ", self.name, columns.join(", "))
    }
}

/// One value of a row, typed by its column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Bool(bool),
    Bytes(Vec<u8>),
}

/// What an export sends, in this order: the row counts, then each table's rows in batches.
#[derive(Debug)]
pub enum ExportItem {
    Counts(Vec<(&'static Table, u64)>),
    Table(&'static Table),
    Rows(Vec<Vec<Value>>),
}

/// What an import receives: each table, then its rows in batches, then `End`. Without `End`
/// (the file was cut short, or did not parse) nothing is kept.
#[derive(Debug)]
pub enum ImportItem {
    Table(&'static Table),
    Rows(Vec<Vec<Value>>),
    End,
}

/// Rows per batch handed between the store and the file.
pub const BATCH_ROWS: usize = 1000;

#[async_trait]
pub trait TransferStore {
    /// Sends every row of `tables` from one consistent snapshot (a running server may keep
    /// writing meanwhile).
    async fn export_store(
        &self,
        tables: Vec<&'static Table>,
        sink: mpsc::Sender<ExportItem>,
    ) -> Result<()>;

    /// Loads rows into an empty database, all in one transaction: on any error nothing is
    /// kept. Refused when the database already holds a store.
    async fn import_store(&self, source: mpsc::Receiver<ImportItem>) -> Result<u64>;
}

/// Sends a table, then its rows in batches as `rows` yields them.
pub(super) async fn send_table<R>(
    table: &'static Table,
    mut rows: impl futures_util::Stream<Item = Result<R, sqlx::Error>> + Unpin,
    sink: &mpsc::Sender<ExportItem>,
) -> Result<()>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    use futures_util::TryStreamExt;
    send(sink, ExportItem::Table(table)).await?;
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    while let Some(row) = rows.try_next().await? {
        batch.push(decode_row(&row, table)?);
        if batch.len() == BATCH_ROWS {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
            send(sink, ExportItem::Rows(full)).await?;
        }
    }
    if !batch.is_empty() {
        send(sink, ExportItem::Rows(batch)).await?;
    }
    Ok(())
}

pub(super) async fn send(sink: &mpsc::Sender<ExportItem>, item: ExportItem) -> Result<()> {
    sink.send(item)
        .await
        .map_err(|_| StoreError::Config("the export was cancelled".to_owned()))
}

/// The next batch of rows of an import and their table; `None` after `End`. A source that
/// stops without `End` is an error, so the transaction rolls back.
pub(super) async fn next_rows(
    source: &mut mpsc::Receiver<ImportItem>,
    current: &mut Option<&'static Table>,
) -> Result<Option<(&'static Table, Vec<Vec<Value>>)>> {
    loop {
        match source.recv().await {
            None => return Err(StoreError::Config("the import was cancelled".to_owned())),
            Some(ImportItem::End) => return Ok(None),
            Some(ImportItem::Table(table)) => *current = Some(table),
            Some(ImportItem::Rows(rows)) => {
                let table = current
                    .ok_or_else(|| StoreError::Config("rows before their table".to_owned()))?;
                return Ok(Some((table, rows)));
            }
        }
    }
}

/// Reads one row by its table's columns, on either backend.
fn decode_row<R>(row: &R, table: &Table) -> Result<Vec<Value>>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    let corrupt = |e: sqlx::Error| StoreError::Corrupt(format!("{}: {e}", table.name));
    table
        .columns
        .iter()
        .enumerate()
        .map(|(i, column)| {
            Ok(match column.kind {
                Kind::Int => row
                    .try_get::<Option<i64>, _>(i)
                    .map_err(corrupt)?
                    .map(Value::Int),
                Kind::Int32 => row
                    .try_get::<Option<i32>, _>(i)
                    .map_err(corrupt)?
                    .map(|v| Value::Int(v.into())),
                Kind::Text => row
                    .try_get::<Option<String>, _>(i)
                    .map_err(corrupt)?
                    .map(Value::Text),
                Kind::Bool => row
                    .try_get::<Option<bool>, _>(i)
                    .map_err(corrupt)?
                    .map(Value::Bool),
                Kind::Bytes => row
                    .try_get::<Option<Vec<u8>>, _>(i)
                    .map_err(corrupt)?
                    .map(Value::Bytes),
            }
            .unwrap_or(Value::Null))
        })
        .collect()
}

/// The most bound parameters one statement takes: SQLite's limit, under PostgreSQL's.
const MAX_PARAMETERS: usize = 32_000;

/// Builds multi-row INSERTs of `rows`, as many rows per statement as the parameters allow.
pub(super) fn insert_statements<DB>(
    table: &Table,
    rows: &[Vec<Value>],
) -> Vec<sqlx::QueryBuilder<DB>>
where
    DB: Database,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> i32: Encode<'t, DB> + Type<DB>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Type<DB>,
    for<'t> &'t [u8]: Encode<'t, DB> + Type<DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Type<DB>,
    for<'t> Option<i32>: Encode<'t, DB> + Type<DB>,
    for<'t> Option<&'t str>: Encode<'t, DB> + Type<DB>,
    for<'t> Option<bool>: Encode<'t, DB> + Type<DB>,
    for<'t> Option<&'t [u8]>: Encode<'t, DB> + Type<DB>,
{
    let per_statement = (MAX_PARAMETERS / table.columns.len().max(1)).max(1);
    rows.chunks(per_statement)
        .map(|chunk| {
            let mut insert = sqlx::QueryBuilder::new(table.insert_head());
            insert.push_values(chunk, |mut values, row| {
                for (column, value) in table.columns.iter().zip(row) {
                    match (column.kind, value) {
                        (Kind::Int32, Value::Int(v)) => {
                            values.push_bind(i32::try_from(*v).unwrap_or(i32::MAX))
                        }
                        (Kind::Int32, _) => values.push_bind(None::<i32>),
                        (_, Value::Int(v)) => values.push_bind(*v),
                        (_, Value::Text(v)) => values.push_bind(v.as_str()),
                        (_, Value::Bool(v)) => values.push_bind(*v),
                        (_, Value::Bytes(v)) => values.push_bind(v.as_slice()),
                        (Kind::Int, Value::Null) => values.push_bind(None::<i64>),
                        (Kind::Text, Value::Null) => values.push_bind(None::<&str>),
                        (Kind::Bool, Value::Null) => values.push_bind(None::<bool>),
                        (Kind::Bytes, Value::Null) => values.push_bind(None::<&[u8]>),
                    };
                }
            });
            insert
        })
        .collect()
}

/// One query for the rows of every table: `(name, count)` rows.
pub(super) fn count_rows(tables: &[&Table]) -> String {
    let parts: Vec<String> = tables
        .iter()
        .map(|t| format!("SELECT '{0}', count(*) FROM {0}", t.name))
        .collect();
    parts.join(" UNION ALL ")
}

pub(super) fn counts_of(
    tables: &[&'static Table],
    counted: &[(String, i64)],
) -> Vec<(&'static Table, u64)> {
    tables
        .iter()
        .map(|table| {
            let rows = counted
                .iter()
                .find(|(name, _)| name == table.name)
                .map_or(0, |(_, rows)| u64::try_from(*rows).unwrap_or(0));
            (*table, rows)
        })
        .collect()
}

/// One query for the names of the tables that hold rows.
pub(super) fn occupied_tables() -> String {
    let parts: Vec<String> = TABLES
        .iter()
        .map(|t| format!("SELECT '{0}' WHERE EXISTS (SELECT 1 FROM {0})", t.name))
        .collect();
    parts.join(" UNION ALL ")
}

/// The refusal of an import into a database that holds a store already.
pub(super) fn not_empty(tables: &[String]) -> StoreError {
    StoreError::conflict(
        "database",
        format!(
            "the target database is not empty ({} already hold rows): import only into a new \
             database (createdb, or a new SQLite file), so no row is mixed with another store's",
            tables.join(", ")
        ),
    )
}
