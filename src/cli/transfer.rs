//! `keyward export` and `keyward import`: a whole store from one database to another, such as
//! from SQLite to PostgreSQL, keys and history included; and the progress bars of long work.

use super::CliError;
use super::output::{Output, print_json};
use crate::config::Config;
use crate::store::Db;
use crate::store::transfer::{Part, Table, Value};
use crate::transfer::{self, ImportCheck, Summary, TransferError};
use crate::webhooks::SealingKey;
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
    /// Leave webhook endpoints, their deliveries, raised alerts and rolled secrets out (kept
    /// in, their signing secrets open only with this database's webhook key, which the
    /// importing side must then use too)
    #[arg(long)]
    pub no_webhooks: bool,
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
    let leave_out: Vec<Part> = [
        (args.no_sessions, Part::Sessions),
        (args.no_webhooks, Part::Webhooks),
    ]
    .into_iter()
    .filter_map(|(left, part)| left.then_some(part))
    .collect();
    let summary = transfer::export(
        db,
        source_name(database_url),
        &leave_out,
        &mut writer,
        |total| bar.set_length(total),
        |rows| bar.inc(rows),
    )
    .await;
    bar.finish_and_clear();
    let summary = summary?;
    report(out, "Exported", &summary, &args.file, started);
    Ok(())
}

/// What an import tells about a webhook whose secret it cannot open.
const WEBHOOK_KEY_HINT: &str = "use the webhook key of the database the file comes from (a \
     SQLite database keeps it in the file named after it with -webhook-key): set \
     KEYWARD_WEBHOOK_KEY (or webhook_key in keyward.toml) to it, or copy that file to this \
     SQLite database's; or export again with --no-webhooks";

/// The import's check of the webhooks it brings: each signing secret, sealed with the webhook
/// key of the database it comes from, must open with this database's key, or the server could
/// never sign a delivery. The key is looked for as soon as the header announces a webhook
/// (a file's webhooks come after its history), and none is made.
struct WebhookSecretsOpen<'a> {
    config: &'a Config,
    key: Option<SealingKey>,
    /// Whether the file brought any webhook.
    any: bool,
}

impl WebhookSecretsOpen<'_> {
    fn key(&mut self) -> Result<&SealingKey, String> {
        let config = self.config;
        Ok(match &mut self.key {
            Some(key) => key,
            slot => slot.insert(
                SealingKey::existing(config.webhook_key.as_ref(), &config.database_url)
                    .map_err(|error| error.to_string())?
                    .ok_or_else(|| {
                        format!(
                            "the file holds webhooks, whose signing secrets are sealed, and this \
                             database has no webhook key yet{}: {WEBHOOK_KEY_HINT}",
                            SealingKey::file_of(&config.database_url)
                                .map(|path| format!(" (nor a file {})", path.display()))
                                .unwrap_or_default()
                        )
                    })?,
            ),
        })
    }
}

/// The tables that hold sealed signing secrets, each with its column of the webhook's id.
const SEALED: [(&str, &str, &str); 2] = [
    ("webhooks", "id", "signing secret"),
    (
        "webhook_previous_secrets",
        "webhook_id",
        "rolled signing secret",
    ),
];

impl ImportCheck for WebhookSecretsOpen<'_> {
    fn announced(&mut self, tables: &[(&str, u64)]) -> Result<(), String> {
        if tables
            .iter()
            .any(|&(name, rows)| SEALED.iter().any(|&(t, _, _)| t == name) && rows > 0)
        {
            self.key()?;
        }
        Ok(())
    }

    fn row(&mut self, table: &'static Table, row: &[Value]) -> Result<(), String> {
        let Some(&(_, id_column, what)) = SEALED.iter().find(|&&(name, _, _)| name == table.name)
        else {
            return Ok(());
        };
        self.any = true;
        let column = |name| table.columns.iter().position(|c| c.name == name);
        let (Some(Value::Int(id)), Some(Value::Bytes(sealed))) = (
            column(id_column).and_then(|i| row.get(i)),
            column("sealed_secret").and_then(|i| row.get(i)),
        ) else {
            return Err("a webhook without its id or its sealed secret".to_owned());
        };
        let id = *id;
        self.key()?.open(sealed).map(drop).map_err(|_| {
            format!(
                "the {what} of webhook {id} does not open with this database's webhook key: \
                 {WEBHOOK_KEY_HINT}"
            )
        })
    }
}

/// The file an import reads, opened before its database is: a file that is not there
/// makes no database either.
pub fn import_source(args: &ImportArgs) -> Result<Box<dyn std::io::Read>, CliError> {
    if args.file.as_os_str() == "-" {
        return Ok(Box::new(std::io::stdin()));
    }
    let file = std::fs::File::open(&args.file)
        .map_err(|e| CliError::Failed(format!("cannot open {}: {e}", args.file.display())))?;
    Ok(Box::new(file))
}

pub async fn import(
    args: ImportArgs,
    reader: Box<dyn std::io::Read>,
    db: &Db,
    config: &Config,
    out: &Output,
) -> Result<(), CliError> {
    let bar = progress_bar(out, "importing");
    let started = Instant::now();
    let mut check = WebhookSecretsOpen {
        config,
        key: None,
        any: false,
    };
    let summary = transfer::import(
        db,
        BufReader::with_capacity(1 << 20, reader),
        &mut check,
        |total| bar.set_length(total),
        |rows| bar.inc(rows),
    )
    .await;
    bar.finish_and_clear();
    let summary = summary?;
    report(out, "Imported", &summary, &args.file, started);
    if check.any {
        // A SQLite file keeps its key beside it: once the setting that opened the imported
        // secrets is gone, the next command would otherwise make a new key, and no delivery
        // could be signed again.
        match SealingKey::keep_beside(config.webhook_key.as_ref(), &config.database_url) {
            Ok(Some(path)) => eprintln!(
                "note: the webhook key that opened the imported secrets is now in {} too.",
                path.display()
            ),
            Ok(None) => {}
            Err(error) => eprintln!(
                "warning: {error}: keep KEYWARD_WEBHOOK_KEY set for this database, or its \
                 webhooks' secrets will not open."
            ),
        }
    }
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
        lines.push(format!("  {:<24} {}", table.name, table.rows));
    }
    for line in lines {
        if file.as_os_str() == "-" {
            eprintln!("{line}");
        } else {
            say!("{line}");
        }
    }
}
