//! The embedded default: one SQLite file in WAL mode.
//!
//! Writers in this process take turns in Rust (`gate`) instead of fighting over SQLite's lock:
//! the write pool's one connection, and the history writer with a connection of its own
//! (`history_writer`); reads use a pool of their own. Write transactions start with
//! `BEGIN IMMEDIATE` so a second process (the CLI) waits on the busy timeout instead of
//! failing on a lock upgrade.

mod admin;
mod api_users;
mod auth;
mod checkpoint;
mod customers;
mod gate;
mod history;
mod history_writer;
mod idempotency;
mod orders;
mod products;
mod rate_limits;
mod sessions;
mod signal;
mod transfer;
mod webhooks;

use super::migrations::{self, MigrationStatus, OnOpen};
use super::{ConnectOptions, Result, Store, StoreError, claims};
use async_trait::async_trait;
use gate::{WriteConnection, WriteGate, WriteTx};
use signal::Signal;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use time::OffsetDateTime;

pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
    /// Whose turn it is to write: see `gate`.
    gate: WriteGate,
    signal: Signal,
    /// The hold on the write connection between the batches of a database in memory's history
    /// writer: see `history::Held`.
    history: tokio::sync::Mutex<Option<history::Held>>,
    /// A server's: see `checkpoint`.
    checkpointer: Option<Arc<checkpoint::Checkpointer>>,
    /// The database's file (none in memory) and whether commits wait for the disk: for the
    /// history writer's own connection.
    file: Option<PathBuf>,
    /// The file's device and inode as opened: a file deleted or replaced under the server
    /// takes its writes with it.
    file_id: Option<(u64, u64)>,
    sync_full: bool,
    /// The newest `updated_at` a catalog write was given (see `begin_stamped`).
    last_stamp: AtomicI64,
}

/// What every connection to the file is set to, sqlx's and the history writer's own.
const PRAGMAS: [(&str, &str); 3] = [
    ("foreign_keys", "ON"),
    ("temp_store", "memory"),
    // 8 MB of pages per connection, seven connections at most (one writing, four reading,
    // the checkpointer's, the history writer's): the server stays well under 100 MB; the
    // kernel's page cache keeps the rest of a large file close.
    ("cache_size", "-8000"),
];

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

static MIGRATOR: std::sync::LazyLock<sqlx::migrate::Migrator> =
    std::sync::LazyLock::new(|| super::migrations::tolerant(sqlx::migrate!("./migrations/sqlite")));

impl SqliteStore {
    pub async fn open(url: &str, options: &ConnectOptions) -> Result<Self> {
        let mut base = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("bad SQLite URL `{url}`: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if options.sync_full {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            })
            .busy_timeout(BUSY_TIMEOUT);
        for (name, value) in PRAGMAS {
            base = base.pragma(name, value);
        }
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let background_checkpoints = options.checkpoint_in_background && !in_memory;
        let writer = if background_checkpoints {
            base.clone().pragma("wal_autocheckpoint", "0")
        } else {
            base.clone()
        };
        // Two processes opening a new file at once race for the lock that switching it to WAL
        // takes, and SQLite does not wait on that lock: retry for a few seconds.
        let mut attempt = 0;
        let write = loop {
            match connect_writer(writer.clone(), options.migrate == OnOpen::Apply).await {
                Ok(write) => break write,
                Err(error) if attempt < 100 && is_busy(&error) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => return Err(error.into_open_error(url)),
            }
        };
        if options.migrate == OnOpen::Require {
            migrations::prepare(&MIGRATOR, &write, OnOpen::Require).await?;
        }
        // An in-memory database lives in its one connection: reads must share it.
        let read = if in_memory {
            write.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(options.max_connections.unwrap_or(4).max(1))
                .test_before_acquire(false)
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
            gate: WriteGate::default(),
            signal,
            history: tokio::sync::Mutex::new(None),
            file: (!in_memory).then(|| base.get_filename().to_owned()),
            file_id: (!in_memory)
                .then(|| file_id(base.get_filename()).ok())
                .flatten(),
            sync_full: options.sync_full,
            last_stamp: AtomicI64::new(i64::MIN),
            checkpointer: background_checkpoints
                .then(|| Arc::new(checkpoint::Checkpointer::start(base))),
        })
    }

    /// A write transaction. Begun by an idempotent request, it first marks the request's claim
    /// applied, so the mark commits with the change or not at all (see `store::claims`).
    async fn begin_write(&self) -> Result<WriteTx> {
        let mut tx = self.gate.begin(&self.write).await?;
        if let Some(run) = claims::running() {
            let marked = sqlx::query(claims::MARK_APPLIED_SQL)
                .bind(run.api_user.0)
                .bind(&*run.key)
                .bind(run.token)
                .execute(&mut *tx)
                .await?;
            if marked.rows_affected() == 0 {
                return Err(claims::taken_over());
            }
        }
        Ok(tx)
    }

    /// Notes on the claim of the idempotent request this task runs, if any, what `tx` made.
    async fn note_created(tx: &mut WriteTx, created: claims::Created, id: i64) -> Result<()> {
        if let Some(run) = claims::running() {
            sqlx::query(claims::NOTE_CREATED_SQL)
                .bind(created.location(id))
                .bind(run.api_user.0)
                .bind(&*run.key)
                .bind(run.token)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// A write of the catalog (products, customers, orders), and the time to stamp its rows'
    /// `updated_at` with: `now`, or the newest stamp already in the file if the clock is behind
    /// that. Taken once the write is this one's turn, so stamps follow the order of the
    /// commits: a sync that asks for what changed since the newest `updated_at` it has seen
    /// never misses a write committed after it looked.
    async fn begin_stamped(&self, now: OffsetDateTime) -> Result<(WriteTx, OffsetDateTime)> {
        let mut tx = self.begin_write().await?;
        if self.last_stamp.load(Ordering::SeqCst) == i64::MIN {
            // This process's first catalog write, or the first since an import: what the file
            // holds was written before this process started, perhaps with another clock.
            let newest: Option<i64> = sqlx::query_scalar(
                "SELECT max(newest) FROM (SELECT max(updated_at) AS newest FROM products \
                 UNION ALL SELECT max(updated_at) FROM customers \
                 UNION ALL SELECT max(updated_at) FROM orders)",
            )
            .fetch_one(&mut *tx)
            .await?;
            self.last_stamp
                .fetch_max(newest.unwrap_or(i64::MIN), Ordering::SeqCst);
        }
        let stamp = self
            .last_stamp
            .fetch_max(ts(now), Ordering::SeqCst)
            .max(ts(now));
        Ok((tx, from_ts(stamp)))
    }

    /// Makes the next catalog write read the newest stamp from the file again.
    fn forget_stamps(&self) {
        self.last_stamp.store(i64::MIN, Ordering::SeqCst);
    }

    /// The write connection, for a statement that is a transaction of its own.
    async fn write_connection(&self) -> Result<WriteConnection> {
        self.gate.connection(&self.write).await
    }

    /// Commits a transaction that changed credentials, then tells other processes.
    async fn commit_credentials(&self, tx: WriteTx) -> Result<()> {
        tx.commit().await?;
        self.signal.raise();
        Ok(())
    }
}

enum OpenError {
    Connect(sqlx::Error),
    Migrate(sqlx::migrate::MigrateError),
}

impl OpenError {
    fn into_open_error(self, url: &str) -> StoreError {
        match self {
            Self::Connect(error) => open_error(url, error),
            Self::Migrate(error) => StoreError::Migration(error),
        }
    }
}

/// Whether opening may succeed if tried again: the file was locked, or another process was
/// applying the same migration (ours then fails on a table that now exists, and the next try
/// finds the migration applied).
fn is_busy(error: &OpenError) -> bool {
    match error {
        OpenError::Connect(sqlx::Error::Database(db)) => db.code().is_some_and(|c| {
            c.parse::<i32>()
                .is_ok_and(|n| n & 0xff == 5 || n & 0xff == 6)
        }),
        OpenError::Migrate(
            sqlx::migrate::MigrateError::Execute(_)
            | sqlx::migrate::MigrateError::ExecuteMigration(..),
        ) => true,
        _ => false,
    }
}

async fn connect_writer(
    options: SqliteConnectOptions,
    migrate: bool,
) -> std::result::Result<SqlitePool, OpenError> {
    // An embedded connection cannot go stale: testing it before each use would only add a
    // round trip to its thread (the history writer's commits showed it in profiles).
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(10))
        .idle_timeout(None)
        .max_lifetime(None)
        // The history's inserts keep one statement per batch size (up to 32) here, besides
        // every other write's.
        .connect_with(options.statement_cache_capacity(256))
        .await
        .map_err(OpenError::Connect)?;
    if migrate {
        MIGRATOR.run(&pool).await.map_err(OpenError::Migrate)?;
    }
    Ok(pool)
}

fn open_error(url: &str, error: sqlx::Error) -> StoreError {
    StoreError::Open(format!("cannot open the SQLite database `{url}`: {error}"))
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        if let (Some(file), Some(opened)) = (&self.file, self.file_id)
            && file_id(file).ok() != Some(opened)
        {
            return Err(StoreError::Open(format!(
                "the database file {} was deleted or replaced while the server ran: what it \
                 writes now is lost when it stops; restart it",
                file.display()
            )));
        }
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    async fn ping_write(&self) -> Result<()> {
        // A write that reaches the file: taking the lock alone succeeds on a full disk. The
        // database's user version, set to what it is, writes one page (Keyward reads it
        // nowhere).
        let mut tx = self.begin_write().await?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "PRAGMA user_version = {version}"
        )))
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    async fn migration_status(&self) -> Result<MigrationStatus> {
        let mut conn = self.write.acquire().await?;
        migrations::status(&MIGRATOR, &mut *conn).await
    }

    async fn migrate(&self) -> Result<()> {
        // Another process applying the same migration makes ours fail on what it created;
        // the next try finds it applied (as on opening).
        let _turn = self.gate.turn().await?;
        let mut attempt = 0;
        loop {
            match MIGRATOR.run(&self.write).await {
                Ok(()) => return Ok(()),
                Err(
                    sqlx::migrate::MigrateError::Execute(_)
                    | sqlx::migrate::MigrateError::ExecuteMigration(..),
                ) if attempt < 100 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    async fn close(&self) {
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.stop().await;
        }
        // A held connection would keep the pool from closing.
        self.history.lock().await.take();
        self.read.close().await;
        self.write.close().await;
    }
}

pub(crate) use super::columns::{from_ts, ts, ts_opt, unique_violation};

/// A file's device and inode.
fn file_id(path: &std::path::Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map(|m| (m.dev(), m.ino()))
}
