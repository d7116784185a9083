//! PostgreSQL, for one node or several sharing one database.
//!
//! One pool serves reads and writes; PostgreSQL orders concurrent writers itself. Where the
//! SQLite backend relies on its single writer, this one says what it needs: row locks taken in
//! id order where stock moves, an upsert for idempotency claims, and an advisory lock that
//! orders the credential change log (see `begin_credentials`).

mod admin;
mod api_users;
mod auth;
mod customers;
mod history;
mod idempotency;
pub mod listener;
mod orders;
mod products;
mod rate_limits;
mod sessions;
mod transfer;
mod webhooks;

use super::migrations::{self, MigrationStatus};
use super::{ConnectOptions, Result, Store, StoreError, claims};
use async_trait::async_trait;
use listener::ChangeFeed;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

pub(crate) use super::columns::{from_ts, ts, ts_opt, unique_violation};

/// Connections a server holds by default. A handful per core keeps PostgreSQL busy without
/// queueing inside it, and leaves room under its default `max_connections` (100) for
/// several nodes and the command line.
const DEFAULT_MAX_CONNECTIONS: u32 = 10;

pub struct PgStore {
    pool: PgPool,
    /// Moved by this process's own credential commits and, in a server, by the listener's
    /// notifications of everyone else's (see `listener`).
    feed: Arc<ChangeFeed>,
    listener: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

static MIGRATOR: std::sync::LazyLock<sqlx::migrate::Migrator> = std::sync::LazyLock::new(|| {
    super::migrations::tolerant(sqlx::migrate!("./migrations/postgres"))
});

impl PgStore {
    /// Connects to an existing database and brings its schema up to date. Migrations hold
    /// PostgreSQL's advisory lock, so nodes starting together apply each one once.
    pub async fn open(url: &str, options: &ConnectOptions) -> Result<Self> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("bad PostgreSQL URL: {e}")))?
            .application_name("keyward");
        let pool = PgPoolOptions::new()
            .max_connections(
                options
                    .max_connections
                    .unwrap_or(DEFAULT_MAX_CONNECTIONS)
                    .max(1),
            )
            // A request waits this long for a connection before it is answered 503.
            .acquire_timeout(Duration::from_secs(5))
            .idle_timeout(Duration::from_secs(600))
            .max_lifetime(Duration::from_secs(1800))
            .connect_with(connect.clone())
            .await;
        let pool = match pool {
            Ok(pool) => pool,
            // The pool retries a refused or unreachable server until its wait is over, and
            // then says only that it timed out: one connection of its own says why.
            Err(sqlx::Error::PoolTimedOut) => {
                use sqlx::Connection as _;
                let why = match sqlx::PgConnection::connect_with(&connect).await {
                    Err(error) => error,
                    Ok(connection) => {
                        let _ = connection.close().await;
                        sqlx::Error::PoolTimedOut
                    }
                };
                return Err(open_error(url, &why));
            }
            Err(error) => return Err(open_error(url, &error)),
        };
        migrations::prepare(&MIGRATOR, &pool, options.migrate).await?;
        let feed = Arc::new(ChangeFeed::default());
        let listener = options
            .watch_changes
            .then(|| tokio::spawn(listener::listen(connect, feed.clone())));
        Ok(Self {
            pool,
            feed,
            listener: Mutex::new(listener),
        })
    }

    /// A transaction. Begun by an idempotent request, it first marks the request's claim
    /// applied, so the mark commits with the change or not at all (see `store::claims`).
    async fn begin(&self) -> Result<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        mark_applied(&mut tx).await?;
        Ok(tx)
    }

    /// Begins a transaction that changes credentials. It takes the change log's lock before
    /// anything else, so such transactions commit one at a time and in the order of their
    /// change-log numbers, and never wait for one another's row locks while holding it.
    async fn begin_credentials(&self) -> Result<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT keyward_lock_credentials()")
            .execute(&mut *tx)
            .await?;
        mark_applied(&mut tx).await?;
        Ok(tx)
    }

    /// Commits a transaction that changed credentials, then moves this process's marker.
    async fn commit_credentials(&self, tx: Transaction<'static, Postgres>) -> Result<()> {
        tx.commit().await?;
        self.feed.moved();
        Ok(())
    }
}

/// Marks the claim of the idempotent request this task runs, if any, as applied by `tx`; the
/// row stays locked until `tx` ends, so a retry cannot take the claim over meanwhile.
async fn mark_applied(tx: &mut PgConnection) -> Result<()> {
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
    Ok(())
}

/// Notes on the claim of the idempotent request this task runs, if any, what `tx` made.
async fn note_created(tx: &mut PgConnection, created: claims::Created, id: i64) -> Result<()> {
    if let Some(run) = claims::running() {
        sqlx::query(claims::NOTE_CREATED_SQL)
            .bind(created.location(id))
            .bind(run.api_user.0)
            .bind(&*run.key)
            .bind(run.token)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Names the database without the password the URL may carry.
fn open_error(url: &str, error: &sqlx::Error) -> StoreError {
    StoreError::Open(format!(
        "cannot open the PostgreSQL database `{}`: {error}",
        crate::config::redact_url(url)
    ))
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn ping_write(&self) -> Result<()> {
        // No lock of another process holds PostgreSQL's writes back as a whole.
        self.ping().await
    }

    async fn migration_status(&self) -> Result<MigrationStatus> {
        let mut conn = self.pool.acquire().await?;
        migrations::status(&MIGRATOR, &mut *conn).await
    }

    async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        let listener = self
            .listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(listener) = listener {
            listener.abort();
        }
        self.pool.close().await;
    }
}
