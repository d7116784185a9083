//! `keyward export` and `keyward import`: a whole store from one database to another, such as
//! from SQLite to PostgreSQL, keys and history included; and the progress bars of long work.

use super::CliError;
use super::output::{Output, print_json};
use crate::store::Db;
use crate::transfer::{self, Summary, TransferError};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The file to write (JSON lines), or - for stdout
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Leave API sessions out (their integrations log in again after the move)
    #[arg(long)]
    pub no_sessions: bool,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// An export of `keyward export`, or - for stdin
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

impl From<TransferError> for CliError {
    fn from(error: TransferError) -> Self {
        match error {
            TransferError::Store(store) => store.into(),
            TransferError::Format { .. } => Self::Invalid(error.to_string()),
            TransferError::Io(_) | TransferError::Stopped => Self::Failed(error.to_string()),
        }
    }
}

/// A bar on stderr for people at a terminal; nothing for scripts (`--json`) or pipes.
pub fn progress_bar(out: &Output, what: &str) -> ProgressBar {
    if out.is_json() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(&format!(
        "{what} {{wide_bar}} {{human_pos}}/{{human_len}} rows, {{elapsed}} so far, {{eta}} left"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// A spinner with a count, for work whose total is not known in advance.
pub fn progress_spinner(out: &Output, what: &str) -> ProgressBar {
    if out.is_json() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(&format!("{{spinner}} {what} {{human_pos}} rows"))
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    bar.set_style(style);
    bar
}

fn source_name(database_url: &str) -> &'static str {
    if database_url.starts_with("postgres") {
        "postgres"
    } else {
        "sqlite"
    }
}

pub async fn export(
    args: ExportArgs,
    db: &Db,
    database_url: &str,
    out: &Output,
) -> Result<(), CliError> {
    let to_stdout = args.file.as_os_str() == "-";
    if to_stdout && out.is_json() {
        return Err(CliError::Usage(
            "--json prints a report on stdout: export to a file, not -".to_owned(),
        ));
    }
    let mut writer: BufWriter<Box<dyn Write>> = BufWriter::with_capacity(
        1 << 20,
        if to_stdout {
            Box::new(std::io::stdout())
        } else {
            Box::new(std::fs::File::create(&args.file).map_err(|e| {
                CliError::Failed(format!("cannot create {}: {e}", args.file.display()))
            })?)
        },
    );
    let bar = progress_bar(out, "exporting");
    let started = Instant::now();
    let summary = transfer::export(
        db,
        source_name(database_url),
        !args.no_sessions,
        &mut writer,
        |total| bar.set_length(total),
        |rows| bar.inc(rows),
    )
    .await;
    bar.finish_and_clear();
    let summary = summary?;
    report(out, "Exported", &summary, &args.file, started);
    // Told after the export succeeded: a failure to count them does not undo it.
    let webhooks = db.webhooks().await.map_or(0, |w| w.len());
    if webhooks > 0 {
        // On stderr, beside the report: a `--json` report on stdout stays one document.
        eprintln!(
            "note: the {webhooks} webhook endpoint(s) are not in the file: their signing secrets \
             are sealed under a key kept outside the database. Add them again where the file \
             is imported (keyward webhook add), and give their receivers the new secrets."
        );
    }
    Ok(())
}

pub async fn import(args: ImportArgs, db: &Db, out: &Output) -> Result<(), CliError> {
    let reader: Box<dyn std::io::Read> =
        if args.file.as_os_str() == "-" {
            Box::new(std::io::stdin())
        } else {
            Box::new(std::fs::File::open(&args.file).map_err(|e| {
                CliError::Failed(format!("cannot open {}: {e}", args.file.display()))
            })?)
        };
    let bar = progress_bar(out, "importing");
    let started = Instant::now();
    let summary = transfer::import(
        db,
        BufReader::with_capacity(1 << 20, reader),
        |total| bar.set_length(total),
        |rows| bar.inc(rows),
    )
    .await;
    bar.finish_and_clear();
    let summary = summary?;
    report(out, "Imported", &summary, &args.file, started);
    Ok(())
}

fn report(out: &Output, verb: &str, summary: &Summary, file: &std::path::Path, started: Instant) {
    let seconds = started.elapsed().as_secs_f64();
    let per_second = (summary.rows as f64 / seconds.max(0.001)).round();
    if out.is_json() {
        print_json(&json!({
            "file": file,
            "rows": summary.rows,
            "tables": summary.tables,
            "seconds": seconds,
            "rows_per_second": per_second,
        }));
        return;
    }
    // On stderr when the export itself went to stdout.
    let mut lines = vec![format!(
        "{verb} {} rows in {seconds:.1} s ({per_second} rows/s):",
        summary.rows
    )];
    for table in &summary.tables {
        lines.push(format!("  {:<14} {}", table.name, table.rows));
    }
    for line in lines {
        if file.as_os_str() == "-" {
            eprintln!("{line}");
        } else {
            say!("{line}");
        }
    }
}
