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
        Ok(Turned {
            conn: tx,
            _turn: turn,
        })
    }

    /// The write pool's connection, for a statement that is its own transaction.
    pub(super) async fn connection(&self, pool: &SqlitePool) -> Result<WriteConnection> {
        let turn = self.turn().await?;
        let conn = pool.acquire().await?;
        Ok(Turned { conn, _turn: turn })
    }
}

/// A write connection and its turn: the write pool's connection, or a transaction on it.
/// Dropped, it lets go of the connection first (a transaction not committed is rolled back)
/// and then of the turn: fields drop in order.
pub(super) struct Turned<C> {
    conn: C,
    _turn: Turn,
}

/// A write transaction and its turn.
pub(super) type WriteTx = Turned<Transaction<'static, Sqlite>>;

/// The write connection and its turn.
pub(super) type WriteConnection = Turned<PoolConnection<Sqlite>>;

impl WriteTx {
    pub(super) async fn commit(self) -> Result<()> {
        self.conn.commit().await?;
        Ok(())
    }
}

impl<C: Deref<Target = SqliteConnection>> Deref for Turned<C> {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.conn
    }
}

impl<C: DerefMut<Target = SqliteConnection>> DerefMut for Turned<C> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}
