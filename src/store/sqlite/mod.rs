//! The embedded default: one SQLite file in WAL mode.
//!
//! Writes go through a pool of one connection, so writers in this process queue in Rust
//! instead of fighting over SQLite's lock; reads use a pool of their own. Write transactions
//! start with `BEGIN IMMEDIATE` so a second process (the CLI) waits on the busy timeout
//! instead of failing on a lock upgrade.

mod admin;
mod catalog;
mod credentials;
mod history;
mod signal;

use super::{ConnectOptions, Result, Store, StoreError};
use async_trait::async_trait;
use signal::Signal;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use std::str::FromStr;
use std::time::Duration;
use time::OffsetDateTime;

pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
    signal: Signal,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl SqliteStore {
    pub async fn open(url: &str, options: &ConnectOptions) -> Result<Self> {
        let base = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("bad SQLite URL `{url}`: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if options.sync_full {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            })
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-16000");
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(base.clone())
            .await
            .map_err(|e| open_error(url, e))?;
        MIGRATOR.run(&write).await?;
        // An in-memory database lives in its one connection: reads must share it.
        let read = if in_memory {
            write.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(options.max_connections.max(1))
                .acquire_timeout(Duration::from_secs(10))
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(base.clone().read_only(true))
                .await
                .map_err(|e| open_error(url, e))?
        };
        let signal = if in_memory {
            Signal::in_process()
        } else {
            Signal::beside(base.get_filename())?
        };
        Ok(Self {
            read,
            write,
            signal,
        })
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>> {
        Ok(self.write.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Commits a transaction that changed credentials, then tells other processes.
    async fn commit_credentials(&self, tx: Transaction<'static, Sqlite>) -> Result<()> {
        tx.commit().await?;
        self.signal.raise();
        Ok(())
    }
}

fn open_error(url: &str, error: sqlx::Error) -> StoreError {
    StoreError::Config(format!("cannot open the SQLite database `{url}`: {error}"))
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

/// Microseconds since the epoch: the form times take in this database.
pub(crate) fn ts(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

pub(crate) fn ts_opt(t: Option<OffsetDateTime>) -> Option<i64> {
    t.map(ts)
}

pub(crate) fn from_ts(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub(crate) fn from_ts_opt(us: Option<i64>) -> Option<OffsetDateTime> {
    us.map(from_ts)
}

/// Parses a stored text column into its domain type, or reports the row as corrupt.
pub(crate) fn parse_col<T: FromStr>(value: &str, column: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

/// Maps a unique-constraint violation to a conflict on `field`.
pub(crate) fn unique_violation(error: sqlx::Error, field: &str, message: &str) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::conflict(field, message)
        }
        _ => error.into(),
    }
}
