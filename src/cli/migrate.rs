//! `keyward migrate`: applies pending schema migrations and says what it did.

use super::CliError;
use super::output::{Output, print_json};
use crate::store::{Db, MigrationInfo, MigrationStatus};
use serde_json::json;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// Only list the pending migrations; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn run(args: MigrateArgs, db: &Db, out: &Output) -> Result<(), CliError> {
    let before = db.migration_status().await?;
    let pending: Vec<MigrationInfo> = before.pending().cloned().collect();
    if args.dry_run || pending.is_empty() {
        report(out, &before, &[], &pending, None);
        return Ok(());
    }
    let started = Instant::now();
    db.migrate().await?;
    let seconds = started.elapsed().as_secs_f64();
    let after = db.migration_status().await?;
    // Another migrator running at the same time may have applied some: both end up current.
    report(out, &after, &pending, &[], Some(seconds));
    Ok(())
}

fn name(migration: &MigrationInfo) -> String {
    format!("{:04} {}", migration.version, migration.description)
}

fn report(
    out: &Output,
    status: &MigrationStatus,
    applied: &[MigrationInfo],
    pending: &[MigrationInfo],
    seconds: Option<f64>,
) {
    let latest = status.migrations.iter().map(|m| m.version).max();
    if out.is_json() {
        print_json(&json!({
            "applied": applied,
            "pending": pending,
            "schema_version": latest,
            "unknown_applied": status.unknown_applied,
            "seconds": seconds,
        }));
        return;
    }
    if applied.is_empty() && pending.is_empty() {
        say!(
            "The database schema is up to date ({} migrations).",
            status.migrations.len()
        );
    }
    if !applied.is_empty() {
        say!(
            "Applied {} migration(s) in {:.2} s:",
            applied.len(),
            seconds.unwrap_or_default()
        );
        for migration in applied {
            say!("  {}", name(migration));
        }
    }
    if !pending.is_empty() {
        say!("{} migration(s) pending:", pending.len());
        for migration in pending {
            say!("  {}", name(migration));
        }
        say!("Run `keyward migrate` to apply them.");
    }
    if !status.unknown_applied.is_empty() {
        say!(
            "The database also has migrations this keyward does not know ({}): a newer version \
             migrated it. This version works on it; upgrade the remaining nodes.",
            status
                .unknown_applied
                .iter()
                .map(|v| format!("{v:04}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}
