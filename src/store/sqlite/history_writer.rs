//! The history writer's own connection to the SQLite file, used from the writer's thread.
//!
//! Through sqlx, every statement is a hand-over to the connection's thread and back, and each
//! wakes a sleeping thread: one per `/api/v1/me` batch, four per batch of logins (`BEGIN`, the
//! sessions, the rows, `COMMIT`). Here the writer's thread is SQLite's thread: it binds the
//! batch, steps it and commits without waking anyone until it answers the calls.

use super::checkpoint::Checkpointer;
use super::gate::{Turn, WriteGate};
use super::history::{COLUMN_COUNT, HOLD, VALUES_MAX, VALUES_SQL};
use super::ts;
use super::{BUSY_TIMEOUT, PRAGMAS};
use crate::domain::api_user::NewSession;
use crate::domain::history::{HistoryEntry, LeftOut, settle_logins};
use crate::store::rows::sessions::{LEFT_OUT_SQL, left_out_because};
use crate::store::{HistoryWriter, Result, StoreError};
use rusqlite::{Connection, OptionalExtension};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use tokio::runtime::Handle;

/// A login's session, written only while its key still belongs to its user and the user is
/// enabled, and never over a taken number. A login checked just before its user was disabled
/// is left out when it reaches the file after the disable, which ended every session before
/// it: written, it would come back to life when the user is enabled again (see [`LeftOut`]).
const INSERT_SESSION: &str = "INSERT INTO api_sessions (id, api_user_id, api_key_id, token_hash, \
     ip, created_at, last_seen_at, idle_timeout_s, expires_at) \
     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8 \
     WHERE EXISTS (SELECT 1 FROM api_keys k JOIN api_users u ON u.id = k.api_user_id \
                   WHERE k.id = ?3 AND k.api_user_id = ?2 AND u.status = 'enabled') \
     ON CONFLICT DO NOTHING";

pub(super) struct SqliteHistoryWriter {
    conn: Connection,
    /// The writer keeps the process's turn to write while its batches follow each other (up
    /// to [`HOLD`]), so the process's other writers wait in Rust behind it instead of sleeping
    /// in SQLite's busy handler.
    gate: WriteGate,
    turn: Option<(Turn, Instant)>,
    runtime: Handle,
    checkpointer: Option<Arc<Checkpointer>>,
}

impl SqliteHistoryWriter {
    /// A connection to `file`, set as the store's others are; `sync_full` as the store was
    /// opened with.
    pub(super) fn open(
        file: &Path,
        sync_full: bool,
        gate: WriteGate,
        checkpointer: Option<Arc<Checkpointer>>,
    ) -> Result<Self> {
        let conn = Connection::open(file).map_err(StoreError::Embedded)?;
        let synchronous = if sync_full { "FULL" } else { "NORMAL" };
        let set = || {
            conn.busy_timeout(BUSY_TIMEOUT)?;
            conn.pragma_update(None, "synchronous", synchronous)?;
            for (name, value) in PRAGMAS {
                conn.pragma_update(None, name, value)?;
            }
            // The background checkpointer copies the log back, off the writer's path.
            if checkpointer.is_some() {
                conn.pragma_update(None, "wal_autocheckpoint", 0)?;
            }
            Ok(())
        };
        set().map_err(StoreError::Embedded)?;
        conn.set_prepared_statement_cache_capacity(VALUES_MAX + 8);
        Ok(Self {
            conn,
            gate,
            turn: None,
            runtime: Handle::current(),
            checkpointer,
        })
    }

    fn keep_turn(&mut self) -> Result<()> {
        if self
            .turn
            .as_ref()
            .is_some_and(|(_, since)| since.elapsed() >= HOLD)
        {
            // Given back: a writer waiting for its turn goes before this one.
            self.turn = None;
        }
        if self.turn.is_none() {
            let turn = self.gate.turn_blocking(&self.runtime)?;
            self.turn = Some((turn, Instant::now()));
        }
        Ok(())
    }
}

impl HistoryWriter for SqliteHistoryWriter {
    fn append(&mut self, rows: &[HistoryEntry], sessions: &[NewSession]) -> Result<Vec<LeftOut>> {
        self.keep_turn()?;
        write_batch(&self.conn, rows, sessions).map_err(|error| {
            // Let the process's other writers through while the writer waits to retry.
            self.turn = None;
            StoreError::Embedded(error)
        })
    }

    fn answered(&mut self) {
        // Only after a batch that was committed, while it is still the writer's turn.
        if self.turn.is_none() {
            return;
        }
        if let Some(checkpointer) = &self.checkpointer
            && checkpointer.committed()
        {
            checkpointer.restart(&self.conn);
        }
    }

    fn idle(&mut self) {
        self.turn = None;
    }
}

/// Writes the batch in one transaction, rolled back if any part fails. `BEGIN` and `COMMIT`
/// are prepared once, like the inserts: parsing them again for every batch showed in profiles.
fn write_batch(
    conn: &Connection,
    rows: &[HistoryEntry],
    sessions: &[NewSession],
) -> rusqlite::Result<Vec<LeftOut>> {
    if !conn.is_autocommit() {
        // A previous batch whose rollback failed too: its transaction goes first.
        conn.execute_batch("ROLLBACK")?;
    }
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let left_out = insert_sessions_and_rows(conn, rows, sessions)
        .and_then(|left_out| conn.prepare_cached("COMMIT")?.execute([]).map(|_| left_out));
    if left_out.is_err() && !conn.is_autocommit() {
        // A failed COMMIT (busy) leaves the transaction open as well.
        if let Err(error) = conn.execute_batch("ROLLBACK") {
            tracing::error!(%error, "history batch could not be rolled back");
        }
    }
    left_out
}

fn insert_sessions_and_rows(
    conn: &Connection,
    rows: &[HistoryEntry],
    sessions: &[NewSession],
) -> rusqlite::Result<Vec<LeftOut>> {
    let mut left_out = Vec::new();
    if !sessions.is_empty() {
        let mut insert = conn.prepare_cached(INSERT_SESSION)?;
        for s in sessions {
            let inserted = insert.execute(rusqlite::params![
                s.id.0,
                s.api_user_id.0,
                s.api_key_id.0,
                s.token_hash.as_bytes(),
                s.ip.to_string(),
                ts(s.created_at),
                s.idle_timeout_s,
                ts(s.expires_at),
            ])?;
            if inserted == 0 {
                left_out.push(why_left_out(conn, s)?);
            }
        }
    }
    let rows = settle_logins(rows, &left_out);
    for chunk in rows.chunks(VALUES_MAX) {
        insert_rows(conn, chunk)?;
    }
    Ok(left_out)
}

/// Why `session` was not written, read in the batch's transaction.
fn why_left_out(conn: &Connection, session: &NewSession) -> rusqlite::Result<LeftOut> {
    let user: Option<(String, bool)> = conn
        .prepare_cached(LEFT_OUT_SQL)?
        .query_row(
            rusqlite::params![session.api_user_id.0, session.api_key_id.0],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    Ok(left_out_because(session.id, user))
}

/// Up to [`VALUES_MAX`] rows in one prepared statement, bound value by value.
fn insert_rows(conn: &Connection, rows: &[HistoryEntry]) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(&VALUES_SQL[rows.len() - 1])?;
    for (n, e) in rows.iter().enumerate() {
        let at = n * COLUMN_COUNT;
        insert.raw_bind_parameter(at + 1, e.api_user_id.map(|id| id.0))?;
        insert.raw_bind_parameter(at + 2, e.username.as_deref())?;
        insert.raw_bind_parameter(at + 3, e.key_hint.as_deref())?;
        insert.raw_bind_parameter(at + 4, e.session_id.map(|id| id.0))?;
        insert.raw_bind_parameter(at + 5, e.call.as_str())?;
        insert.raw_bind_parameter(at + 6, e.ip.as_str())?;
        insert.raw_bind_parameter(at + 7, e.status)?;
        insert.raw_bind_parameter(at + 8, e.outcome.as_str())?;
        insert.raw_bind_parameter(at + 9, ts(e.date_added))?;
        insert.raw_bind_parameter(at + 10, ts(e.date_modified))?;
        insert.raw_bind_parameter(at + 11, e.request_id.as_str())?;
    }
    insert.raw_execute()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::SqliteStore;
    use super::*;
    use crate::store::ConnectOptions;

    /// `PRAGMA synchronous` of the store's write and read connections and of the history
    /// writer's own, opened as the store opens it: 1 is NORMAL, 2 FULL.
    async fn synchronous(sync_full: bool) -> [i64; 3] {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite://{}", dir.path().join("sync.db").display());
        let options = ConnectOptions {
            sync_full,
            ..ConnectOptions::default()
        };
        let store = SqliteStore::open(&url, &options).await.expect("open");
        let level = |pool| async move {
            sqlx::query_scalar::<_, i64>("PRAGMA synchronous")
                .fetch_one(pool)
                .await
                .expect("pragma")
        };
        let (write, read) = (level(&store.write).await, level(&store.read).await);
        let file = store.file.as_deref().expect("a file");
        let writer = SqliteHistoryWriter::open(file, store.sync_full, store.gate.clone(), None)
            .expect("the history writer");
        let history = writer
            .conn
            .pragma_query_value(None, "synchronous", |row| row.get(0))
            .expect("pragma");
        [write, read, history]
    }

    #[tokio::test]
    async fn every_connection_waits_for_the_disk_only_when_the_store_is_opened_to() {
        assert_eq!(synchronous(false).await, [1, 1, 1], "NORMAL by default");
        assert_eq!(synchronous(true).await, [2, 2, 2], "FULL with sync_full");
    }
}
