//! The process's turn to write to the SQLite file.
//!
//! SQLite lets one connection write at a time, and a connection that finds the lock taken
//! sleeps in its busy handler (1 ms, 2 ms, 5 ms… between tries). So this process's writers
//! take turns in Rust first, in the order they asked: the write pool's statements and
//! transactions, and the history writer on its thread, which keeps its turn while its batches
//! follow each other. A turn is a lock in memory: taking a free one and giving it back cost no
//! system call, where handing a pooled connection back costs sqlx a round trip through the
//! connection's thread for every batch.

use crate::store::{Result, StoreError};
use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqliteConnection, SqlitePool, Transaction};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// How long a writer waits for its turn, as long as for a pooled connection.
pub(super) const TURN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Default)]
pub(super) struct WriteGate(Arc<Mutex<()>>);

/// A writer's turn; the next writer's begins when it is dropped.
pub(super) struct Turn {
    _guard: OwnedMutexGuard<()>,
}

impl WriteGate {
    pub(super) async fn turn(&self) -> Result<Turn> {
        match tokio::time::timeout(TURN_TIMEOUT, self.0.clone().lock_owned()).await {
            Ok(guard) => Ok(Turn { _guard: guard }),
            // As a pool that found no connection in time: the caller answers "unavailable".
            Err(_) => Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut)),
        }
    }

    /// The turn, for a thread outside the runtime (the history writer's).
    pub(super) fn turn_blocking(&self, runtime: &Handle) -> Result<Turn> {
        runtime.block_on(self.turn())
    }

    /// A write transaction (`BEGIN IMMEDIATE`) on the write pool, in this writer's turn.
    pub(super) async fn begin(&self, pool: &SqlitePool) -> Result<WriteTx> {
        let turn = self.turn().await?;
        let tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(WriteTx {
            tx: Some(tx),
            turn: Some(turn),
        })
    }

    /// The write pool's connection, for a statement that is its own transaction.
    pub(super) async fn connection(&self, pool: &SqlitePool) -> Result<WriteConnection> {
        let turn = self.turn().await?;
        let conn = pool.acquire().await?;
        Ok(WriteConnection { conn, _turn: turn })
    }
}

/// A write transaction and its turn.
pub(super) struct WriteTx {
    /// Present until `commit` or drop.
    tx: Option<Transaction<'static, Sqlite>>,
    turn: Option<Turn>,
}

impl WriteTx {
    pub(super) async fn commit(mut self) -> Result<()> {
        if let Some(tx) = self.tx.take() {
            tx.commit().await?;
        }
        Ok(())
    }
}

const TAKEN: &str = "a transaction until it is committed or dropped";

impl Drop for WriteTx {
    /// Left without `commit` (an error, a refusal, a cancelled call): rolled back before the
    /// turn passes. sqlx would only send the `ROLLBACK` to its connection's thread, and the
    /// next writer (the history writer, on its own connection) could find the file still
    /// locked and sleep in SQLite's busy handler.
    fn drop(&mut self) {
        let Some(tx) = self.tx.take() else { return };
        let turn = self.turn.take();
        match Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(error) = tx.rollback().await {
                        tracing::warn!(%error, "a write transaction could not be rolled back");
                    }
                    drop(turn);
                });
            }
            // No runtime left (the process is ending): sqlx sends the rollback as it drops.
            Err(_) => drop(tx),
        }
    }
}

impl Deref for WriteTx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        self.tx.as_ref().expect(TAKEN)
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.tx.as_mut().expect(TAKEN)
    }
}

/// The write connection and its turn. A statement cut short (its call timed out) still runs
/// to its end on the connection's thread after the turn has passed: the next writer may then
/// wait in SQLite's busy handler, as any writer would for another process.
pub(super) struct WriteConnection {
    conn: PoolConnection<Sqlite>,
    _turn: Turn,
}

impl Deref for WriteConnection {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.conn
    }
}

impl DerefMut for WriteConnection {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_writer_kept_waiting_past_the_turn_timeout_is_told_the_store_is_unavailable() {
        let gate = WriteGate::default();
        let held = gate.turn().await.expect("the first turn");
        let asked = tokio::time::Instant::now();
        let waited = gate.turn().await;
        assert!(asked.elapsed() >= TURN_TIMEOUT);
        assert!(
            waited.as_ref().err().is_some_and(StoreError::waited_out),
            "answered as a pool with no connection in time"
        );
        drop(held);
        gate.turn().await.expect("the turn, once given back");
    }

    #[tokio::test]
    async fn a_transaction_dropped_without_commit_is_rolled_back_before_the_next_turn() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("gate.db");
        let url = format!("sqlite://{}?mode=rwc", file.display());
        let pool = SqlitePool::connect(&url).await.expect("pool");
        sqlx::query("CREATE TABLE t (n INTEGER)")
            .execute(&pool)
            .await
            .expect("table");
        // Another writer of the file, as the history writer is: it does not wait at all.
        let other = rusqlite::Connection::open(&file).expect("open");
        other.busy_timeout(Duration::ZERO).expect("busy timeout");
        let gate = WriteGate::default();
        for _ in 0..20 {
            let mut tx = gate.begin(&pool).await.expect("begin");
            sqlx::query("INSERT INTO t VALUES (1)")
                .execute(&mut *tx)
                .await
                .expect("insert");
            drop(tx);
            let _turn = gate.turn().await.expect("the next turn");
            other
                .execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (2); ROLLBACK;")
                .expect("the file is free as soon as the turn passes");
        }
        let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
            .fetch_one(&pool)
            .await
            .expect("count");
        assert_eq!(kept, 0, "nothing of the dropped transactions stays");
    }
}
