//! Export and import of a whole store (see `store::transfer`).

use super::SqliteStore;
use super::sessions::SESSION_COUNTER;
use crate::store::transfer::{
    ExportItem, ImportItem, Table, TransferStore, count_rows, counts_of, insert_statements,
    next_rows, not_empty, occupied_tables, send, send_table,
};
use crate::store::{Result, StoreError};
use async_trait::async_trait;
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
        let counted: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(count_rows(&tables)))
            .fetch_all(&mut *tx)
            .await?;
        let counts = counts_of(&tables, &counted);
        send(&sink, ExportItem::Counts(counts)).await?;
        for table in tables {
            let rows = sqlx::query(sqlx::AssertSqlSafe(table.select())).fetch(&mut *tx);
            send_table(table, rows, &sink).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn import_store(&self, mut source: mpsc::Receiver<ImportItem>) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let occupied: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(occupied_tables()))
            .fetch_all(&mut *tx)
            .await?;
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
        // The sessions' table has no foreign key to the keys (migration 8): a session must
        // still have been made with a key of its own user.
        let stray: Option<i64> = sqlx::query_scalar(
            "SELECT s.id FROM api_sessions s WHERE NOT EXISTS (SELECT 1 FROM api_keys k \
             WHERE k.id = s.api_key_id AND k.api_user_id = s.api_user_id) LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = stray {
            return Err(StoreError::invalid(
                "api_sessions",
                format!("session {id} names a key that its API user does not have"),
            ));
        }
        // AUTOINCREMENT tables note the largest id inserted themselves. Session numbers go
        // on after those the history names too: its sessions may have been purged.
        sqlx::query(SESSION_COUNTER).execute(&mut *tx).await?;
        sqlx::query(
            "UPDATE sqlite_sequence SET seq = max(coalesce(seq, 0), \
             coalesce((SELECT max(session_id) FROM api_history), 0)) WHERE name = 'api_sessions'",
        )
        .execute(&mut *tx)
        .await?;
        self.commit_credentials(tx).await?;
        // The imported rows keep their stamps: the next catalog write reads the newest.
        self.forget_stamps();
        Ok(total)
    }
}
