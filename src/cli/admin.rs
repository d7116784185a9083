//! `keyward admin …`: admin users of the console.

use super::CliError;
use super::output::Output;
use crate::clock::SystemClock;
use crate::credentials::admins::Admins;
use crate::domain::admin::{Actor, Role};
use crate::domain::secret::Secret;
use crate::store::Db;
use clap::Subcommand;
use std::io::{BufRead, IsTerminal};
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an admin user; the password is asked for, or read from stdin
    Create {
        #[arg(long)]
        username: String,
        /// administrator, api_manager or viewer
        #[arg(long)]
        role: Role,
    },
    /// Set an admin user's password (asked for, or read from stdin)
    Passwd { name: String },
}

/// From a prompt (typed twice, not echoed) on a terminal, else the first line of stdin.
fn read_password() -> Result<Secret, CliError> {
    if std::io::stdin().is_terminal() {
        let first =
            rpassword::prompt_password("Password: ").map_err(|e| CliError::Usage(e.to_string()))?;
        let again =
            rpassword::prompt_password("Again: ").map_err(|e| CliError::Usage(e.to_string()))?;
        if first != again {
            return Err(CliError::Invalid("the two passwords differ".to_owned()));
        }
        return Ok(Secret::new(first));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::Usage(format!("cannot read stdin: {e}")))?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(CliError::Invalid(
            "no password was given: type it at the prompt, or send it as one line on stdin"
                .to_owned(),
        ));
    }
    Ok(Secret::new(password.to_owned()))
}

pub async fn run(command: AdminCommand, db: &Db, out: &Output) -> Result<(), CliError> {
    let admins = Admins::new(db.clone(), Arc::new(SystemClock));
    let actor = Actor::cli();
    let result = match command {
        AdminCommand::Create { username, role } => {
            let password = read_password()?;
            let admin = admins.create(&actor, &username, role, password).await?;
            out.admin_created(&admin);
            Ok(())
        }
        AdminCommand::Passwd { name } => {
            admins.get(&name).await?;
            let password = read_password()?;
            admins.set_password(&actor, &name, password).await?;
            out.message(&format!("Changed the password of {name}."));
            Ok(())
        }
    };
    db.close().await;
    result
}
