//! Schema migrations, shared by both backends: what `serve` does with them on start, and what
//! `keyward migrate` reports.
//!
//! Migrations are expand-only within a release line (new tables, columns with defaults,
//! replaced functions), so servers of the previous version keep working on the migrated
//! schema: a database that has migrations this binary does not know is accepted.

use super::{Result, StoreError};
use sqlx::migrate::{Migrate, Migrator};
use std::collections::HashSet;

/// What opening a database does to its schema.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnOpen {
    /// Apply pending migrations (PostgreSQL holds an advisory lock meanwhile, so servers
    /// starting together apply each one once).
    #[default]
    Apply,
    /// Refuse to open a database with pending migrations: an operator runs `keyward migrate`.
    Require,
    /// Leave the schema alone (`keyward migrate` itself).
    Leave,
}

/// One migration this binary knows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MigrationInfo {
    pub version: i64,
    pub description: String,
    pub applied: bool,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MigrationStatus {
    pub migrations: Vec<MigrationInfo>,
    /// Applied migrations this binary does not know: the database was migrated by a newer one.
    pub unknown_applied: Vec<i64>,
}

impl MigrationStatus {
    pub fn pending(&self) -> impl Iterator<Item = &MigrationInfo> {
        self.migrations.iter().filter(|m| !m.applied)
    }
}

/// The migrator of a backend, tolerant of a database that a newer binary migrated.
pub(super) fn tolerant(mut migrator: Migrator) -> Migrator {
    migrator.set_ignore_missing(true);
    migrator
}

pub(super) async fn status<C: Migrate + Send + ?Sized>(
    migrator: &Migrator,
    conn: &mut C,
) -> Result<MigrationStatus> {
    // Under the migrators' lock (PostgreSQL's advisory lock; nothing on SQLite, whose write
    // lock serves): two processes creating the table at once collide in PostgreSQL's catalog
    // ("duplicate key value violates unique constraint pg_type_typname_nsp_index").
    conn.lock().await?;
    let ensured = conn.ensure_migrations_table(&migrator.table_name).await;
    conn.unlock().await?;
    ensured?;
    let applied: HashSet<i64> = conn
        .list_applied_migrations(&migrator.table_name)
        .await?
        .into_iter()
        .map(|m| m.version)
        .collect();
    let migrations: Vec<MigrationInfo> = migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| MigrationInfo {
            version: m.version,
            description: m.description.to_string(),
            applied: applied.contains(&m.version),
        })
        .collect();
    let mut unknown_applied: Vec<i64> = applied
        .into_iter()
        .filter(|version| !migrator.version_exists(*version))
        .collect();
    unknown_applied.sort_unstable();
    Ok(MigrationStatus {
        migrations,
        unknown_applied,
    })
}

/// The refusal of `OnOpen::Require` when migrations are pending.
pub(super) fn require_current(status: &MigrationStatus) -> Result<()> {
    let pending: Vec<String> = status
        .pending()
        .map(|m| format!("{:04} {}", m.version, m.description))
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    Err(StoreError::Config(format!(
        "the database schema is behind this keyward: {} migration(s) pending ({}); run \
         `keyward migrate`, or start with auto_migrate = true",
        pending.len(),
        pending.join(", ")
    )))
}

/// Brings the schema to what `on_open` asks for, on opening a database.
pub(super) async fn prepare<DB>(
    migrator: &Migrator,
    pool: &sqlx::Pool<DB>,
    on_open: OnOpen,
) -> Result<()>
where
    DB: sqlx::Database,
    DB::Connection: Migrate,
{
    match on_open {
        OnOpen::Apply => migrator.run(pool).await?,
        OnOpen::Require => {
            let mut conn = pool.acquire().await?;
            require_current(&status(migrator, &mut *conn).await?)?;
        }
        OnOpen::Leave => {}
    }
    Ok(())
}
