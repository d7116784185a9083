//! Export and import of a whole store (see `store::transfer`).

use super::PgStore;
use crate::store::Result;
use crate::store::transfer::{
    ExportItem, ImportItem, TABLES, Table, TransferStore, insert_statements, next_rows, not_empty,
    send, send_table,
};
use async_trait::async_trait;
use tokio::sync::mpsc;

#[async_trait]
impl TransferStore for PgStore {
    async fn export_store(
        &self,
        tables: Vec<&'static Table>,
        sink: mpsc::Sender<ExportItem>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // One snapshot for every table: rows committed meanwhile are not half in the file.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
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
        send(&sink, ExportItem::Counts(counts)).await?;
        for table in tables {
            let rows = sqlx::query(sqlx::AssertSqlSafe(table.select())).fetch(&mut *tx);
            send_table(table, rows, &sink).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn import_store(&self, mut source: mpsc::Receiver<ImportItem>) -> Result<u64> {
        let mut tx = self.begin_credentials().await?;
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
        let (mut current, mut total) = (None, 0u64);
        while let Some((table, rows)) = next_rows(&mut source, &mut current).await? {
            for mut insert in insert_statements(table, &rows) {
                insert.build().execute(&mut *tx).await?;
            }
            total += rows.len() as u64;
        }
        // Identities continue after the imported ids.
        for table in TABLES.iter().filter(|t| t.identity) {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT setval(pg_get_serial_sequence('{0}', 'id'), \
                 coalesce((SELECT max(id) FROM {0}), 0) + 1, false)",
                table.name
            )))
            .execute(&mut *tx)
            .await?;
        }
        self.commit_credentials(tx).await?;
        Ok(total)
    }
}
