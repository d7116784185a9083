//! The export file of `keyward export` / `keyward import`: JSON lines, from any backend to any.
//!
//! ```text
//! {"format":"keyward-export","version":1,"exported_at":"…","source":"sqlite","tables":[{"name":"api_users","rows":12},…]}
//! {"table":"api_users","columns":["id","username",…],"rows":12}
//! [1,"inventory-sync",…]                       one JSON array per row, in the columns' order
//! …
//! {"end":true,"rows":1234567}
//! ```
//!
//! Integers, text and booleans are JSON's own; bytes (key and token digests) are base64.
//! The last line proves the file whole: an import without it keeps nothing.

use crate::store::transfer::{
    self, BATCH_ROWS, ExportItem, ImportItem, Kind, Part, TABLES, Table, Value,
};
use crate::store::{Db, StoreError};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value as Json, json};
use std::io::{BufRead, Write};
use tokio::sync::mpsc;

pub const FORMAT: &str = "keyward-export";
pub const VERSION: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: {message}")]
    Format { line: u64, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The database side stopped first; its own error says why.
    #[error("the import stopped")]
    Stopped,
}

fn format_error(line: u64, message: impl Into<String>) -> TransferError {
    TransferError::Format {
        line,
        message: message.into(),
    }
}

/// Rows per table, in the file's order.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    pub tables: Vec<TableCount>,
    pub rows: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TableCount {
    pub name: &'static str,
    pub rows: u64,
}

/// Writes the whole store but the parts in `leave_out` to `out`. `started` learns the number
/// of rows to come, `progress` each batch written.
pub async fn export(
    db: &Db,
    source: &str,
    leave_out: &[Part],
    out: &mut impl Write,
    started: impl FnOnce(u64),
    mut progress: impl FnMut(u64),
) -> Result<Summary, TransferError> {
    let tables: Vec<&'static Table> = TABLES
        .iter()
        .filter(|t| !leave_out.contains(&t.part))
        .collect();
    let (sink, mut items) = mpsc::channel(8);
    let reader = {
        let db = db.clone();
        tokio::spawn(async move { db.export_store(tables, sink).await })
    };
    let mut summary = Summary::default();
    let mut started = Some(started);
    let mut written = Ok(());
    while let Some(item) = items.recv().await {
        written = write_item(out, item, &mut summary, &mut started, source, &mut progress);
        if written.is_err() {
            break;
        }
    }
    drop(items);
    let read = reader
        .await
        .map_err(|e| std::io::Error::other(format!("the export stopped: {e}")))?;
    written?;
    read?;
    writeln!(out, "{}", json!({ "end": true, "rows": summary.rows }))?;
    out.flush()?;
    Ok(summary)
}

fn write_item(
    out: &mut impl Write,
    item: ExportItem,
    summary: &mut Summary,
    started: &mut Option<impl FnOnce(u64)>,
    source: &str,
    progress: &mut impl FnMut(u64),
) -> Result<(), TransferError> {
    match item {
        ExportItem::Counts(counts) => {
            summary.tables = counts
                .iter()
                .map(|(table, rows)| TableCount {
                    name: table.name,
                    rows: *rows,
                })
                .collect();
            let header = json!({
                "format": FORMAT,
                "version": VERSION,
                "exported_at": time::OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                "source": source,
                "tables": summary.tables,
            });
            writeln!(out, "{header}")?;
            if let Some(started) = started.take() {
                started(summary.tables.iter().map(|t| t.rows).sum());
            }
        }
        ExportItem::Table(table) => {
            let rows = summary
                .tables
                .iter()
                .find(|t| t.name == table.name)
                .map_or(0, |t| t.rows);
            let columns: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
            writeln!(
                out,
                "{}",
                json!({ "table": table.name, "columns": columns, "rows": rows })
            )?;
        }
        ExportItem::Rows(rows) => {
            for row in &rows {
                let values: Vec<Json> = row.iter().map(to_json).collect();
                serde_json::to_writer(&mut *out, &values).map_err(std::io::Error::from)?;
                out.write_all(b"\n")?;
            }
            summary.rows += rows.len() as u64;
            progress(rows.len() as u64);
        }
    }
    Ok(())
}

fn to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Int(v) => json!(v),
        Value::Text(v) => json!(v),
        Value::Bool(v) => json!(v),
        Value::Bytes(v) => json!(BASE64.encode(v)),
    }
}

fn from_json(line: u64, column: &transfer::Column, value: &Json) -> Result<Value, TransferError> {
    let wrong = || {
        format_error(
            line,
            format!(
                "`{}` is not a valid {:?} value: {value}",
                column.name, column.kind
            ),
        )
    };
    Ok(match (column.kind, value) {
        (_, Json::Null) => Value::Null,
        (Kind::Int, Json::Number(n)) => Value::Int(n.as_i64().ok_or_else(wrong)?),
        (Kind::Int32, Json::Number(n)) => {
            let v = n.as_i64().ok_or_else(wrong)?;
            i32::try_from(v).map_err(|_| wrong())?;
            Value::Int(v)
        }
        (Kind::Text, Json::String(s)) => Value::Text(s.clone()),
        (Kind::Bool, Json::Bool(b)) => Value::Bool(*b),
        (Kind::Bytes, Json::String(s)) => Value::Bytes(BASE64.decode(s).map_err(|_| wrong())?),
        _ => return Err(wrong()),
    })
}

/// What an import checks of a file beyond its form: what it refuses stops the import, and
/// nothing is kept.
pub trait ImportCheck {
    /// The tables the header announces, with their rows, before any row is read.
    fn announced(&mut self, tables: &[(&str, u64)]) -> Result<(), String>;
    /// Each row, before it is loaded.
    fn row(&mut self, table: &'static Table, row: &[Value]) -> Result<(), String>;
}

/// Loads an export into an empty database, in one transaction, with `check`'s consent.
/// `started` learns the number of rows to come, `progress` each batch read.
pub async fn import(
    db: &Db,
    input: impl BufRead,
    check: &mut impl ImportCheck,
    started: impl FnOnce(u64),
    mut progress: impl FnMut(u64),
) -> Result<Summary, TransferError> {
    let (sink, items) = mpsc::channel(8);
    let writer = {
        let db = db.clone();
        tokio::spawn(async move { db.import_store(items).await })
    };
    let read = read_file(input, &sink, check, started, &mut progress).await;
    if read.is_ok() {
        // Only a whole file commits; without `End` the store rolls back.
        let _ = sink.send(ImportItem::End).await;
    }
    drop(sink);
    let written = writer
        .await
        .map_err(|e| std::io::Error::other(format!("the import stopped: {e}")))?;
    match (read, written) {
        (Err(TransferError::Stopped), Err(written)) => Err(written.into()),
        (Err(read), _) => Err(read),
        (Ok(_), Err(written)) => Err(written.into()),
        (Ok(summary), Ok(_)) => Ok(summary),
    }
}

async fn read_file(
    input: impl BufRead,
    sink: &mpsc::Sender<ImportItem>,
    check: &mut impl ImportCheck,
    started: impl FnOnce(u64),
    progress: &mut impl FnMut(u64),
) -> Result<Summary, TransferError> {
    let closed = || TransferError::Stopped;
    let mut lines = input.lines();
    let mut next = |line: u64| -> Result<Option<Json>, TransferError> {
        match lines.next() {
            None => Ok(None),
            Some(text) => serde_json::from_str(&text?)
                .map(Some)
                .map_err(|e| format_error(line, format!("not JSON: {e}"))),
        }
    };
    let header = next(1)?.ok_or_else(|| format_error(1, "the file is empty"))?;
    if header["format"] != FORMAT {
        return Err(format_error(
            1,
            "not a Keyward export (no `format: keyward-export`)",
        ));
    }
    if header["version"].as_u64() != Some(VERSION) {
        return Err(format_error(
            1,
            format!(
                "export format version {} is not one this keyward reads ({VERSION})",
                header["version"]
            ),
        ));
    }
    let announced: Vec<(&str, u64)> = header["tables"]
        .as_array()
        .map(|tables| {
            tables
                .iter()
                .filter_map(|t| Some((t["name"].as_str()?, t["rows"].as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    check
        .announced(&announced)
        .map_err(|message| format_error(1, message))?;
    started(announced.iter().map(|(_, rows)| rows).sum());
    let mut summary = Summary::default();
    let mut current: Option<(&'static Table, u64, u64)> = None;
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    let mut line = 1u64;
    loop {
        line += 1;
        let Some(item) = next(line)? else {
            return Err(format_error(
                line,
                "the file ends early (no end line): nothing was imported",
            ));
        };
        let section_done = !item.is_array();
        if section_done {
            if !batch.is_empty() {
                let rows = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
                progress(rows.len() as u64);
                sink.send(ImportItem::Rows(rows))
                    .await
                    .map_err(|_| closed())?;
            }
            if let Some((table, expected, seen)) = current.take() {
                if expected != seen {
                    return Err(format_error(
                        line,
                        format!("{} declares {expected} rows but has {seen}", table.name),
                    ));
                }
                summary.tables.push(TableCount {
                    name: table.name,
                    rows: seen,
                });
            }
        }
        match &item {
            Json::Array(values) => {
                let Some((table, _, seen)) = current.as_mut() else {
                    return Err(format_error(line, "a row before any table"));
                };
                if values.len() != table.columns.len() {
                    return Err(format_error(
                        line,
                        format!("{} values, not {}", values.len(), table.columns.len()),
                    ));
                }
                let row = table
                    .columns
                    .iter()
                    .zip(values)
                    .map(|(column, value)| from_json(line, column, value))
                    .collect::<Result<Vec<_>, _>>()?;
                check
                    .row(table, &row)
                    .map_err(|message| format_error(line, message))?;
                *seen += 1;
                summary.rows += 1;
                batch.push(row);
                if batch.len() == BATCH_ROWS {
                    let rows = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
                    progress(rows.len() as u64);
                    sink.send(ImportItem::Rows(rows))
                        .await
                        .map_err(|_| closed())?;
                }
            }
            Json::Object(fields) if fields.contains_key("end") => {
                if item["rows"].as_u64() != Some(summary.rows) {
                    return Err(format_error(
                        line,
                        "the end line's row count does not match the rows read",
                    ));
                }
                return Ok(summary);
            }
            Json::Object(_) => {
                let name = item["table"].as_str().unwrap_or_default();
                let table = transfer::table(name)
                    .ok_or_else(|| format_error(line, format!("unknown table `{name}`")))?;
                let columns: Vec<&str> = item["columns"]
                    .as_array()
                    .map(|c| c.iter().filter_map(Json::as_str).collect())
                    .unwrap_or_default();
                let expected: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
                if columns != expected {
                    return Err(format_error(
                        line,
                        format!("{name}: columns {columns:?}, expected {expected:?}"),
                    ));
                }
                let rows = item["rows"].as_u64().unwrap_or(0);
                sink.send(ImportItem::Table(table))
                    .await
                    .map_err(|_| closed())?;
                current = Some((table, rows, 0));
            }
            _ => return Err(format_error(line, "neither a table, a row nor the end")),
        }
    }
}
