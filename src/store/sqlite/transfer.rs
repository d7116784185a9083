//! Export and import of a whole store (see `store::transfer`).

use super::SqliteStore;
use crate::store::transfer::{
    BATCH_ROWS, ExportItem, ImportItem, TABLES, Table, TransferStore, decode_row,
    insert_statements, not_empty,
};
use crate::store::{Result, StoreError};
use async_trait::async_trait;
use futures_util::TryStreamExt;
use tokio::sync::mpsc;

#[async_trait]
impl TransferStore for SqliteStore {
    async fn export_store(
        &self,
        tables: Vec<&'static Table>,
        sink: mpsc::Sender<ExportItem>,
    ) -> Result<()> {
        // One read transaction, so one snapshot for every table (WAL mode): rows committed
        // meanwhile are not half in the file.
        let mut tx = self.read.begin().await?;
        let mut counts = Vec::with_capacity(tables.len());
        for table in &tables {
            let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM {}",
                table.name
            )))
            .fetch_one(&mut *tx)
            .await?;
            counts.push((*table, u64::try_from(count).unwrap_or(0)));
        }
        let closed = || StoreError::Config("the export was cancelled".to_owned());
        sink.send(ExportItem::Counts(counts))
            .await
            .map_err(|_| closed())?;
        for table in tables {
            sink.send(ExportItem::Table(table))
                .await
                .map_err(|_| closed())?;
            let mut rows = sqlx::query(sqlx::AssertSqlSafe(table.select())).fetch(&mut *tx);
            let mut batch = Vec::with_capacity(BATCH_ROWS);
            while let Some(row) = rows.try_next().await? {
                batch.push(decode_row(&row, table)?);
                if batch.len() == BATCH_ROWS {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
                    sink.send(ExportItem::Rows(full))
                        .await
                        .map_err(|_| closed())?;
                }
            }
            if !batch.is_empty() {
                sink.send(ExportItem::Rows(batch))
                    .await
                    .map_err(|_| closed())?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn import_store(&self, mut source: mpsc::Receiver<ImportItem>) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let mut occupied = Vec::new();
        for table in TABLES {
            let taken: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT EXISTS (SELECT 1 FROM {})",
                table.name
            )))
            .fetch_one(&mut *tx)
            .await?;
            if taken {
                occupied.push(table.name);
            }
        }
        if !occupied.is_empty() {
            return Err(not_empty(&occupied));
        }
        let mut current: Option<&'static Table> = None;
        let mut total = 0u64;
        loop {
            let Some(item) = source.recv().await else {
                return Err(StoreError::Config("the import was cancelled".to_owned()));
            };
            match item {
                ImportItem::End => break,
                ImportItem::Table(table) => current = Some(table),
                ImportItem::Rows(rows) => {
                    let Some(table) = current else {
                        return Err(StoreError::Config("rows before their table".to_owned()));
                    };
                    for mut insert in insert_statements(table, &rows) {
                        insert.build().execute(&mut *tx).await?;
                    }
                    total += rows.len() as u64;
                }
            }
        }
        // AUTOINCREMENT tables note the largest id inserted themselves.
        self.commit_credentials(tx).await?;
        Ok(total)
    }
}
