//! Export and import of a whole store (see `store::transfer`).

use super::PgStore;
use crate::store::Result;
use crate::store::transfer::{
    ExportItem, ImportItem, TABLES, Table, TransferStore, Value, count_rows, counts_of, next_rows,
    not_empty, occupied_tables, send, send_table,
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
        let mut tx = self.begin_credentials().await?;
        let occupied: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(occupied_tables()))
            .fetch_all(&mut *tx)
            .await?;
        if !occupied.is_empty() {
            return Err(not_empty(&occupied));
        }
        let (mut current, mut total) = (None, 0u64);
        while let Some((table, rows)) = next_rows(&mut source, &mut current).await? {
            // COPY: one round trip per batch, and PostgreSQL's fastest way in.
            let columns: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
            let mut copy = tx
                .copy_in_raw(&format!(
                    "COPY {} ({}) FROM STDIN",
                    table.name,
                    columns.join(", ")
                ))
                .await?;
            copy.send(copy_text(&rows)).await?;
            copy.finish().await?;
            total += rows.len() as u64;
        }
        // Identities continue after the imported ids; session numbers after those the history
        // names too, as its sessions may have been purged.
        for table in TABLES.iter().filter(|t| t.identity) {
            let named = if table.name == "api_sessions" {
                "(SELECT max(session_id) FROM api_history)"
            } else {
                "0"
            };
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT setval(pg_get_serial_sequence('{0}', 'id'), \
                 greatest(coalesce((SELECT max(id) FROM {0}), 0), coalesce({named}, 0)) + 1, false)",
                table.name
            )))
            .execute(&mut *tx)
            .await?;
        }
        self.commit_credentials(tx).await?;
        Ok(total)
    }
}

/// Rows in COPY's text format: tab-separated, `\N` for NULL, backslash escapes in text, and
/// bytes as `\\x` and hex.
fn copy_text(rows: &[Vec<Value>]) -> Vec<u8> {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(rows.len() * 128);
    for row in rows {
        for (i, value) in row.iter().enumerate() {
            if i > 0 {
                out.push('\t');
            }
            match value {
                Value::Null => out.push_str("\\N"),
                Value::Int(v) => {
                    let _ = write!(out, "{v}");
                }
                Value::Bool(v) => out.push(if *v { 't' } else { 'f' }),
                Value::Text(text) => {
                    for c in text.chars() {
                        match c {
                            '\\' => out.push_str("\\\\"),
                            '\t' => out.push_str("\\t"),
                            '\n' => out.push_str("\\n"),
                            '\r' => out.push_str("\\r"),
                            c => out.push(c),
                        }
                    }
                }
                Value::Bytes(bytes) => {
                    out.push_str("\\\\x");
                    for byte in bytes {
                        let _ = write!(out, "{byte:02x}");
                    }
                }
            }
        }
        out.push('\n');
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_what_copy_reads_specially() {
        let rows = vec![vec![
            Value::Int(-7),
            Value::Null,
            Value::Text("a\tb\nc\\d\re".to_owned()),
            Value::Bool(true),
            Value::Bytes(vec![0, 255]),
        ]];
        assert_eq!(
            String::from_utf8(copy_text(&rows)).expect("utf-8"),
            "-7\t\\N\ta\\tb\\nc\\\\d\\re\tt\t\\\\x00ff\n"
        );
    }
}
