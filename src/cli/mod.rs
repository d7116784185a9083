//! The command line. `main.rs` only calls `run`; each command is a function over the same
//! services the server uses, against the database named by `--database-url`.

/// `println!` without the panic: a closed stdout (`keyward api list | head -1`, or a
/// supervisor that stopped reading) must not bring a command or the server down.
macro_rules! say {
    () => {{
        use std::io::Write as _;
        let _ = writeln!(anstream::stdout());
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(anstream::stdout(), $($arg)*);
    }};
}

macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(anstream::stdout(), $($arg)*);
    }};
}

mod admin;
mod api;
mod migrate;
mod output;
mod serve;
mod transfer;
mod webhook;

use crate::config::{Config, FileConfig, Overrides};
use crate::credentials::ServiceError;
use crate::credentials::admins::AdminError;
use crate::domain::duration::HumanDuration;
use crate::store::{self, ConnectOptions, Db, StoreError};
use clap::{Parser, Subcommand};
use output::Output;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "keyward",
    version,
    about = "The integration API of an online store, built around its API credentials"
)]
pub struct Cli {
    /// Database: sqlite://PATH (the default is sqlite://keyward.db) or
    /// postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE
    #[arg(
        long,
        global = true,
        env = "KEYWARD_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    database_url: Option<String>,
    /// Machine-readable output on stdout; errors as JSON on stderr
    #[arg(long, global = true)]
    json: bool,
    /// Configuration file (default: ./keyward.toml when it exists)
    #[arg(
        long,
        global = true,
        env = "KEYWARD_CONFIG",
        hide_env_values = true,
        value_name = "PATH"
    )]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server
    Serve(serve::ServeArgs),
    /// Manage API users, their keys, IP rules, scopes, history and sessions
    #[command(subcommand)]
    Api(api::ApiCommand),
    /// Manage admin users of the console
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Work on the API history
    #[command(subcommand)]
    History(HistoryCommand),
    /// Apply pending database migrations (safe while servers run) and report them
    Migrate(migrate::MigrateArgs),
    /// Write the whole store to a file: API users with their key digests, IP rules, sessions,
    /// admin users, audit log, products, customers, orders and the API history
    Export(transfer::ExportArgs),
    /// Load a file of `keyward export` into an empty database (one transaction: all or nothing)
    Import(transfer::ImportArgs),
    /// Manage alert webhooks: endpoints, test events, deliveries and dead letters
    #[command(subcommand)]
    Webhook(webhook::WebhookCommand),
    /// Print the configuration in effect (flags > environment > keyward.toml > defaults)
    Config(ConfigArgs),
    /// Print a shell completion script, for example:
    /// `keyward completions bash > /etc/bash_completion.d/keyward`
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
enum HistoryCommand {
    /// Show history rows of all API users, newest first: find a refusal by its request id,
    /// address or outcome, even when no user could be tied to it
    List {
        /// The X-Request-Id of the call (the request_id of its error body)
        #[arg(long)]
        request_id: Option<String>,
        /// The username the calls presented
        #[arg(long)]
        username: Option<String>,
        /// The client address
        #[arg(long)]
        ip: Option<std::net::IpAddr>,
        /// ok, refused, or one refusal reason such as unknown_key or secret_in_query
        #[arg(long, value_name = "ok|refused|REASON")]
        outcome: Option<crate::domain::history::OutcomeFilter>,
        /// Rows to show
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
    },
    /// Delete history rows older than the retention (or --older-than)
    Prune {
        /// Age past which rows go, such as 90d (default: the configured retention)
        #[arg(long, value_name = "DURATION", value_parser = longer_than_zero)]
        older_than: Option<HumanDuration>,
    },
}

/// An age for `history prune`: longer than 0, which would delete the whole history, as a
/// retention of 0 is refused in the configuration.
fn longer_than_zero(text: &str) -> Result<HumanDuration, String> {
    let age: HumanDuration = text.parse().map_err(|e| format!("{e}"))?;
    if age.0 > time::Duration::ZERO {
        Ok(age)
    } else {
        Err(
            "must be longer than 0, such as 1h or 30d (0 would delete the whole history)"
                .to_owned(),
        )
    }
}

#[derive(Debug, clap::Args)]
struct ConfigArgs {
    #[command(flatten)]
    overrides: Overrides,
}

/// What went wrong, for stderr and the exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    fn code(&self) -> &'static str {
        match self {
            Self::Usage(_) => "bad_request",
            Self::NotFound(_) => "not_found",
            Self::Invalid(_) => "invalid",
            Self::Conflict(_) => "conflict",
            Self::Failed(_) => "failed",
        }
    }
}

impl From<StoreError> for CliError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => Self::NotFound("not found".to_owned()),
            StoreError::Conflict { message, .. } => Self::Conflict(message),
            StoreError::Invalid(details) => {
                Self::Invalid(ServiceError::Invalid(details).to_string())
            }
            StoreError::Config(message) => Self::Usage(message),
            other => Self::Failed(crate::telemetry::error_chain(&other)),
        }
    }
}

impl From<ServiceError> for CliError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::NoSuchUser(_) | ServiceError::NoSuchSession { .. } => {
                Self::NotFound(error.to_string())
            }
            // The CLI acts with full authority: it never meets the other two.
            ServiceError::Invalid(_) | ServiceError::Forbidden(_) => {
                Self::Invalid(error.to_string())
            }
            ServiceError::Unconfirmed(_) => Self::Conflict(error.to_string()),
            ServiceError::Store(store) => store.into(),
        }
    }
}

impl From<AdminError> for CliError {
    fn from(error: AdminError) -> Self {
        match error {
            AdminError::NoSuchAdmin(_) => Self::NotFound(error.to_string()),
            AdminError::Store(store) => store.into(),
            other => Self::Invalid(other.to_string()),
        }
    }
}

/// A clap error in one line: its first, and the indented lines under it that name what it is
/// about (`the following required arguments were not provided:` lists them there).
fn usage_message(error: &clap::Error) -> String {
    let text = error.render().to_string();
    let mut lines = text.lines();
    let mut message = lines
        .next()
        .unwrap_or("")
        .trim_start_matches("error: ")
        .to_owned();
    for named in lines.take_while(|l| l.starts_with("  ")) {
        message.push(' ');
        message.push_str(named.trim());
    }
    message
}

/// Parses the command line, runs the command, and returns the process's exit code.
pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // With --json, a usage error is JSON on stderr too, so scripts can read every failure.
        Err(error) if error.use_stderr() && std::env::args().any(|a| a == "--json") => {
            return Output::new(true).fail(&CliError::Usage(usage_message(&error)));
        }
        Err(error) => error.exit(),
    };
    let out = Output::new(cli.json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            return out.fail(&CliError::Failed(format!(
                "cannot start the async runtime: {error}"
            )));
        }
    };
    match runtime.block_on(dispatch(cli, &out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => out.fail(&error),
    }
}

fn load_config(
    cli_database_url: Option<String>,
    config: Option<&std::path::Path>,
    overrides: Overrides,
) -> Result<Config, CliError> {
    let file = FileConfig::load(config).map_err(|e| CliError::Usage(e.to_string()))?;
    Config::resolve(cli_database_url, overrides, file).map_err(|e| CliError::Usage(e.to_string()))
}

async fn open_with(config: &Config, migrate: store::OnOpen) -> Result<Db, CliError> {
    let options = ConnectOptions {
        sync_full: config.sync_full,
        max_connections: Some(2),
        migrate,
        watch_changes: false,
        checkpoint_in_background: false,
    };
    Ok(store::connect(&config.database_url, &options).await?)
}

/// The settings of the `KEYWARD_*` environment variables, for the commands that take no
/// setting as a flag: `history prune` keeps the retention, and every command the migration
/// rule, that `serve` and `keyward config` would use.
fn environment() -> Result<Overrides, CliError> {
    #[derive(Parser)]
    struct Environment {
        #[command(flatten)]
        overrides: Overrides,
    }
    Environment::try_parse_from(["keyward"])
        .map(|environment| environment.overrides)
        .map_err(|error| {
            // clap names the flag the variable stands for: name the variable instead.
            use clap::CommandFactory as _;
            use clap::error::{ContextKind, ContextValue};
            let mut message = usage_message(&error);
            if let Some(ContextValue::String(flag)) = error.get(ContextKind::InvalidArg) {
                let long = flag
                    .split(' ')
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("--");
                let variable = Environment::command()
                    .get_arguments()
                    .find(|arg| arg.get_long() == Some(long))
                    .and_then(|arg| arg.get_env())
                    .map(|name| name.to_string_lossy().into_owned());
                if let Some(variable) = variable {
                    message = message.replace(&format!("'{flag}'"), &variable);
                }
            }
            CliError::Usage(message)
        })
}

/// The configuration of a command that takes no settings beyond the database's.
fn plain_config(
    cli_database_url: Option<String>,
    config: Option<&std::path::Path>,
) -> Result<Config, CliError> {
    let config = load_config(cli_database_url, config, environment()?)?;
    // An export streams a whole table in one statement: no "slow statement" warning for it.
    crate::telemetry::init(config.log_format, "warn,sqlx::query=error");
    Ok(config)
}

/// Whether a command may start a new SQLite file where none is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Opening {
    /// Commands that read or change what is there refuse a file that does not exist: a
    /// mistyped path would otherwise get a new, empty store and answer "No API users yet".
    Existing,
    /// Commands that add the first thing to a store (`api create`, `admin create`, `webhook
    /// add`, `import`) make the file, and say so on stderr.
    MayCreate,
}

/// What a command does with pending migrations: what `serve` does — apply them, or, with
/// `auto_migrate = false`, refuse the older schema and leave it to `keyward migrate`.
fn schema_rule(config: &Config) -> store::OnOpen {
    if config.auto_migrate {
        store::OnOpen::Apply
    } else {
        store::OnOpen::Require
    }
}

/// The SQLite file `url` names, when it is not there (none for PostgreSQL, a database in
/// memory, or a URL that names no file, which opening refuses).
fn missing_file(url: &str) -> Option<PathBuf> {
    store::sqlite_file(url)
        .flatten()
        .filter(|file| !file.as_os_str().is_empty() && !file.exists())
}

/// Opens the command's database as `opening` allows.
async fn open_for(
    config: &Config,
    opening: Opening,
    migrate: store::OnOpen,
    out: &Output,
) -> Result<Db, CliError> {
    let missing = missing_file(&config.database_url);
    if let Some(file) = &missing
        && opening == Opening::Existing
    {
        return Err(CliError::NotFound(format!(
            "no database at {}: check --database-url (or KEYWARD_DATABASE_URL, or keyward.toml); \
             `keyward serve` or `keyward api create` makes a new one",
            file.display()
        )));
    }
    // A new file would have no schema, which this rule refuses: refused before it is made.
    if let Some(file) = &missing
        && migrate == store::OnOpen::Require
    {
        return Err(CliError::Usage(format!(
            "no database at {}, and auto_migrate = false leaves its schema to `keyward migrate`: \
             run that first",
            file.display()
        )));
    }
    let db = open_with(config, migrate).await?;
    if let Some(file) = missing
        && !out.is_json()
    {
        // On stderr, for people; with `--json`, stderr holds only a failure's JSON.
        eprintln!("note: made a new database at {}.", file.display());
    }
    Ok(db)
}

/// The configuration and the database of a command that works on the store; its logs are
/// warnings only, on stderr.
async fn command_db(
    database_url: Option<String>,
    config: Option<&std::path::Path>,
    opening: Opening,
    out: &Output,
) -> Result<(Config, Db), CliError> {
    let config = load_config(database_url, config, environment()?)?;
    crate::telemetry::init(config.log_format, "warn");
    let db = open_for(&config, opening, schema_rule(&config), out).await?;
    Ok((config, db))
}

async fn dispatch(cli: Cli, out: &Output) -> Result<(), CliError> {
    match cli.command {
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "keyward", &mut script);
            say_raw!("{}", String::from_utf8_lossy(&script));
            Ok(())
        }
        Command::Serve(args) => {
            let config = load_config(
                cli.database_url,
                cli.config.as_deref(),
                args.overrides.clone(),
            )?;
            serve::run(config, args.demo, out).await
        }
        Command::Migrate(args) => {
            let mut config = plain_config(cli.database_url, cli.config.as_deref())?;
            // A dry run changes nothing, not even by making the file: a file that is not there
            // yet is planned as the empty database in memory it would start as.
            if args.dry_run && missing_file(&config.database_url).is_some() {
                config.database_url = "sqlite::memory:".to_owned();
            }
            let db = open_for(&config, Opening::MayCreate, store::OnOpen::Leave, out).await?;
            let result = migrate::run(args, &db, out).await;
            db.close().await;
            result
        }
        Command::Export(args) => {
            let config = plain_config(cli.database_url, cli.config.as_deref())?;
            let db = open_for(&config, Opening::Existing, schema_rule(&config), out).await?;
            let result = transfer::export(args, &db, &config.database_url, out).await;
            db.close().await;
            result
        }
        Command::Import(args) => {
            let config = plain_config(cli.database_url, cli.config.as_deref())?;
            let reader = transfer::import_source(&args)?;
            let db = open_for(&config, Opening::MayCreate, schema_rule(&config), out).await?;
            let result = transfer::import(args, reader, &db, &config, out).await;
            db.close().await;
            result
        }
        Command::Config(args) => {
            let config = load_config(cli.database_url, cli.config.as_deref(), args.overrides)?;
            out.config(&config);
            Ok(())
        }
        Command::Api(command) => {
            let opening = match command {
                api::ApiCommand::Create(_) => Opening::MayCreate,
                _ => Opening::Existing,
            };
            let (_, db) = command_db(cli.database_url, cli.config.as_deref(), opening, out).await?;
            api::run(command, &db, out).await
        }
        Command::Admin(command) => {
            let opening = match command {
                admin::AdminCommand::Create { .. } => Opening::MayCreate,
                _ => Opening::Existing,
            };
            let (_, db) = command_db(cli.database_url, cli.config.as_deref(), opening, out).await?;
            admin::run(command, &db, out).await
        }
        Command::Webhook(command) => {
            let opening = match command {
                webhook::WebhookCommand::Add { .. } => Opening::MayCreate,
                _ => Opening::Existing,
            };
            let (config, db) =
                command_db(cli.database_url, cli.config.as_deref(), opening, out).await?;
            webhook::run(command, &db, &config, out).await
        }
        Command::History(HistoryCommand::List {
            request_id,
            username,
            ip,
            outcome,
            limit,
        }) => {
            let (_, db) = command_db(
                cli.database_url,
                cli.config.as_deref(),
                Opening::Existing,
                out,
            )
            .await?;
            let credentials = crate::credentials::Credentials::new(
                db.clone(),
                std::sync::Arc::new(crate::clock::SystemClock),
            );
            let query = crate::domain::history::HistoryQuery {
                request_id,
                username,
                ip: ip.map(crate::domain::history::stored_address),
                outcome,
                limit,
                ..Default::default()
            };
            let rows = credentials.all_history(query).await;
            db.close().await;
            out.history(&rows?);
            Ok(())
        }
        Command::History(HistoryCommand::Prune { older_than }) => {
            let (config, db) = command_db(
                cli.database_url,
                cli.config.as_deref(),
                Opening::Existing,
                out,
            )
            .await?;
            let age = older_than.unwrap_or(config.history_retention);
            let cutoff = time::OffsetDateTime::now_utc() - age.0;
            let bar = transfer::progress_spinner(out, "pruning history:");
            bar.enable_steady_tick(std::time::Duration::from_millis(100));
            let rows = db.prune_history(cutoff, &|rows| bar.inc(rows)).await;
            bar.finish_and_clear();
            let rows = rows?;
            db.close().await;
            out.pruned(rows, age);
            Ok(())
        }
    }
}
