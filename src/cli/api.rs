//! `keyward api …`: API users, their keys, IP rules, scopes, history and sessions.

use super::CliError;
use super::output::Output;
use crate::clock::SystemClock;
use crate::credentials::{CreateApiUser, Credentials, KeySource, NewExpiry, UpdateApiUser};
use crate::domain::admin::Actor;
use crate::domain::api_key::{ApiKey, DEFAULT_KEY_LEN};
use crate::domain::api_user::{Environment, Status};
use crate::domain::duration::HumanDuration;
use crate::domain::history::{HistoryQuery, OutcomeFilter};
use crate::domain::ids::SessionId;
use crate::store::Db;
use clap::Subcommand;
use std::io::{BufRead, IsTerminal, Read};
use std::sync::Arc;
use time::Duration;

#[derive(Debug, Subcommand)]
pub enum ApiCommand {
    /// Create an API user and print its key (shown once)
    Create(CreateArgs),
    /// List API users
    List {
        /// Only users whose username or description contains this text
        #[arg(long)]
        search: Option<String>,
    },
    /// Show one API user: settings, IP rules, keys (hints only), warnings
    Show { name: String },
    /// Let the user's credentials work again
    Enable { name: String },
    /// Refuse the user's credentials from the next request on, and end its sessions
    Disable { name: String },
    /// Delete the user, its keys and sessions (its history stays)
    Delete { name: String },
    /// Issue a new key and print it once; without --grace the old key stops at once
    Rotate(RotateArgs),
    /// Add or remove IP rules
    #[command(subcommand)]
    Ip(IpCommand),
    /// Change the description, environment, rate limit or management flag
    Update(UpdateArgs),
    /// Set the scopes (replaces the list; give no scope at all to clear it)
    Scopes {
        name: String,
        #[arg(value_name = "SCOPE")]
        scopes: Vec<String>,
    },
    /// Show the user's API history, newest first
    History {
        name: String,
        /// Rows to show
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
        /// ok, refused, or one refusal reason such as wrong_key or ip_not_allowed
        #[arg(long, value_name = "ok|refused|REASON")]
        outcome: Option<OutcomeFilter>,
    },
    /// List open sessions, or revoke them
    Sessions {
        name: String,
        /// End this session
        #[arg(long, value_name = "ID", conflicts_with = "revoke_all")]
        revoke: Option<i64>,
        /// End every session of the user
        #[arg(long)]
        revoke_all: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// 3 to 20 characters: letters, digits, `.`, `_` and `-`
    #[arg(long)]
    username: String,
    /// An allowed address, CIDR block, a.b.c.* wildcard, or * (repeatable)
    #[arg(long = "ip", value_name = "RULE")]
    ips: Vec<String>,
    /// A scope such as products:read or orders:write (repeatable)
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    #[arg(long, default_value = "")]
    description: String,
    #[arg(long, default_value = "production")]
    environment: Environment,
    /// Length of the generated key (64-256)
    #[arg(long, default_value_t = DEFAULT_KEY_LEN)]
    key_length: usize,
    /// Import an existing key read from stdin instead of generating one
    #[arg(long, conflicts_with = "key_length")]
    key_stdin: bool,
    /// The key stops working after this long, such as 90d
    #[arg(long, value_name = "DURATION")]
    expires: Option<HumanDuration>,
    /// Calls per minute
    #[arg(long, value_name = "N")]
    rate_limit: Option<u32>,
    /// A management key: may hold the api_users:* scopes
    #[arg(long)]
    management: bool,
    /// Create the user disabled
    #[arg(long)]
    disabled: bool,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("change").required(true).multiple(true)))]
pub struct UpdateArgs {
    name: String,
    #[arg(long, group = "change")]
    description: Option<String>,
    #[arg(long, group = "change")]
    environment: Option<Environment>,
    /// Calls per minute
    #[arg(long, value_name = "N", group = "change")]
    rate_limit: Option<u32>,
    /// Whether it is a management key, which may hold the api_users:* scopes
    #[arg(long, value_name = "BOOL", group = "change")]
    management: Option<bool>,
}

#[derive(Debug, clap::Args)]
pub struct RotateArgs {
    name: String,
    /// How long the old key keeps working, such as 1h, 24h or 7d (never past its own expiry)
    #[arg(long, value_name = "DURATION")]
    grace: Option<HumanDuration>,
    /// Length of the new key (64-256)
    #[arg(long, default_value_t = DEFAULT_KEY_LEN)]
    key_length: usize,
    /// Import the new key from stdin instead of generating one
    #[arg(long, conflicts_with = "key_length")]
    key_stdin: bool,
    /// The new key stops working after this long, or `never` [default: as long as the
    /// current key was made to last]
    #[arg(long, value_name = "DURATION")]
    expires: Option<NewExpiry>,
}

#[derive(Debug, Subcommand)]
pub enum IpCommand {
    /// Allow an address, CIDR block, a.b.c.* wildcard, or * (everyone)
    Add { name: String, rule: String },
    /// Remove a rule
    Remove { name: String, rule: String },
}

fn key_source(from_stdin: bool, length: usize) -> Result<KeySource, CliError> {
    if !from_stdin {
        return Ok(KeySource::Generate { length });
    }
    // A line typed at a terminal; from a pipe, all of it, which must be the key alone: a
    // second line (a file of several keys, a key and its note) is refused, not dropped.
    let mut input = String::new();
    let stdin = std::io::stdin();
    let read = if stdin.is_terminal() {
        stdin.lock().read_line(&mut input)
    } else {
        stdin.lock().take(1 << 20).read_to_string(&mut input)
    };
    read.map_err(|e| CliError::Usage(format!("cannot read the key from stdin: {e}")))?;
    let mut lines = input.lines();
    let line = lines.next().unwrap_or_default();
    if line.is_empty() {
        return Err(CliError::Usage(
            "--key-stdin reads the key from standard input, which gave none".to_owned(),
        ));
    }
    if lines.any(|more| !more.trim().is_empty()) {
        return Err(CliError::Invalid(
            "key: standard input holds more than one line; give the key alone".to_owned(),
        ));
    }
    let key = ApiKey::import(line).map_err(|e| CliError::Invalid(format!("key: {e}")))?;
    Ok(KeySource::Import(key))
}

pub async fn run(command: ApiCommand, db: &Db, out: &Output) -> Result<(), CliError> {
    let credentials = Credentials::new(db.clone(), Arc::new(SystemClock));
    let actor = Actor::cli();
    let result = execute(command, &credentials, &actor, out).await;
    db.close().await;
    result
}

async fn execute(
    command: ApiCommand,
    credentials: &Credentials,
    actor: &Actor,
    out: &Output,
) -> Result<(), CliError> {
    match command {
        ApiCommand::Create(args) => {
            let imported = args.key_stdin;
            let request = CreateApiUser {
                key: key_source(args.key_stdin, args.key_length)?,
                username: args.username,
                description: args.description,
                environment: args.environment,
                status: if args.disabled {
                    Status::Disabled
                } else {
                    Status::Enabled
                },
                scopes: args.scopes,
                ips: args.ips,
                rate_limit_per_minute: args.rate_limit,
                management: args.management,
                expires_in: args
                    .expires
                    .map_or(NewExpiry::AsBefore, |d| NewExpiry::In(d.0)),
            };
            let issued = credentials.create(actor, request).await?;
            let done = format!("Created API user {}.", issued.user.username);
            out.issued_key(&done, &issued, credentials.now(), imported);
        }
        ApiCommand::List { search } => out.user_list(
            &credentials.list(search.as_deref()).await?,
            search.as_deref(),
            credentials.now(),
        ),
        ApiCommand::Show { name } => out.user(&credentials.get(&name).await?, credentials.now()),
        ApiCommand::Enable { name } => {
            let user = credentials
                .set_status(actor, &name, Status::Enabled)
                .await?;
            out.changed(&format!("Enabled {name}."), &user);
        }
        ApiCommand::Disable { name } => {
            let user = credentials
                .set_status(actor, &name, Status::Disabled)
                .await?;
            out.changed(&format!("Disabled {name}: its key is refused from the next request on, its sessions are ended."), &user);
        }
        ApiCommand::Delete { name } => {
            let user = credentials.delete(actor, &name).await?;
            out.done(
                &format!("Deleted {name}, its keys and sessions. Its history is kept."),
                &user,
            );
        }
        ApiCommand::Rotate(args) => {
            let grace = args.grace.map_or(Duration::ZERO, |g| g.0);
            let imported = args.key_stdin;
            let key = key_source(args.key_stdin, args.key_length)?;
            let issued = credentials
                .rotate(
                    actor,
                    &args.name,
                    grace,
                    key,
                    args.expires.unwrap_or_default(),
                )
                .await?;
            let now = credentials.now();
            // The grace asked for, or less: an old key never outlives its own expiry.
            let keys = &issued.user.keys;
            let new_key = keys.iter().map(|k| k.id).max();
            let old_key = keys
                .iter()
                .filter(|k| k.is_live(now) && Some(k.id) != new_key)
                .max_by_key(|k| k.id);
            let old = match old_key.map(|k| k.expires_at) {
                _ if grace == Duration::ZERO => "the old key stopped at once".to_owned(),
                None => "no key was live".to_owned(),
                // (`now` is read after the roll: a second's leeway.)
                Some(Some(end)) if end + Duration::SECOND < now + grace => format!(
                    "the old key works until {}, its own expiry, not {} more",
                    crate::clock::rfc3339(end),
                    HumanDuration(grace)
                ),
                Some(_) => format!("the old key works for {} more", HumanDuration(grace)),
            };
            let done = format!(
                "Rolled the key of API user {}: {old}.",
                issued.user.username
            );
            out.issued_key(&done, &issued, now, imported);
        }
        ApiCommand::Ip(IpCommand::Add { name, rule }) => {
            let (user, added) = credentials.add_ip(actor, &name, &rule).await?;
            let message = if added {
                format!("Added {rule} to {name}.")
            } else {
                format!("{rule} was already on {name}'s list.")
            };
            out.changed(&message, &user);
        }
        ApiCommand::Ip(IpCommand::Remove { name, rule }) => {
            let (user, removed) = credentials.remove_ip(actor, &name, &rule).await?;
            if !removed {
                return Err(CliError::NotFound(format!(
                    "{rule} is not on {name}'s IP list"
                )));
            }
            out.changed(&format!("Removed {rule} from {name}."), &user);
        }
        ApiCommand::Update(args) => {
            let update = UpdateApiUser {
                description: args.description,
                environment: args.environment,
                rate_limit_per_minute: args.rate_limit,
                management: args.management,
                ..UpdateApiUser::default()
            };
            let user = credentials.update(actor, &args.name, update).await?;
            out.changed(&format!("Updated {}.", args.name), &user);
        }
        ApiCommand::Scopes { name, scopes } => {
            let user = credentials.set_scopes(actor, &name, scopes).await?;
            out.changed(&format!("Set the scopes of {name}."), &user);
        }
        ApiCommand::History {
            name,
            limit,
            outcome,
        } => {
            let query = HistoryQuery {
                outcome,
                limit,
                ..HistoryQuery::default()
            };
            out.history(&credentials.history_of_name(&name, query).await?);
        }
        ApiCommand::Sessions {
            name,
            revoke,
            revoke_all,
        } => {
            if revoke.is_some() || revoke_all {
                let revoked = credentials
                    .revoke_sessions(actor, &name, revoke.map(SessionId))
                    .await?;
                out.revoked(revoked);
            } else {
                out.sessions(&credentials.sessions(&name, true).await?);
            }
        }
    }
    Ok(())
}
