//! `keyward serve`.

use super::CliError;
use super::output::Output;
use crate::clock::SystemClock;
use crate::config::{Config, Overrides};
use crate::demo;
use crate::startup::{App, shutdown_signal};
use std::sync::Arc;

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Also seed a demo store and a demo API user, and print its key with a ready cURL line
    #[arg(long)]
    pub demo: bool,
    #[command(flatten)]
    pub overrides: Overrides,
}

pub async fn run(config: Config, with_demo: bool, _out: &Output) -> Result<(), CliError> {
    crate::telemetry::init(config.log_format, &config.log_level);
    let mut app = App::build(&config, Arc::new(SystemClock))
        .await
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let addr = app.local_addr();
    let base = format!("http://{addr}");
    say!(
        "Keyward {} is listening on {base} (database: {})",
        env!("CARGO_PKG_VERSION"),
        crate::config::redact_url(&config.database_url)
    );
    if let Some(first) = app.take_first_admin() {
        match first.password {
            Some(password) => say!(
                "First run: created the admin user `{}` with the password {} (shown once).",
                first.username,
                password.expose()
            ),
            None => say!(
                "First run: created the admin user `{}` with KEYWARD_ADMIN_PASSWORD.",
                first.username
            ),
        }
    }
    if with_demo {
        let state = app.state();
        if demo::seed_store(&state.db, state.clock.now()).await? {
            say!("Demo: seeded the store with products, customers and orders.");
        }
        let issued = demo::demo_user(&state.credentials).await?;
        let key = issued.key.expose();
        say!();
        say!(
            "Demo API user `{}` (scopes: {}; allowed from 127.0.0.1 and ::1).",
            issued.user.username,
            issued.user.scopes
        );
        say!("Its key, shown once:");
        say!();
        say!("    {key}");
        say!();
        say!("Try it:");
        say!();
        say!("    curl -H 'Authorization: Bearer {key}' {base}/api/v1/me");
        say!("    curl -H 'Authorization: Bearer {key}' '{base}/api/v1/products?limit=5'");
        say!();
    }
    app.run_until(shutdown_signal())
        .await
        .map_err(|e| CliError::Failed(format!("the server stopped: {e}")))
}
