//! `keyward serve`.

use super::CliError;
use super::output::Output;
use crate::clock::SystemClock;
use crate::config::{Config, MetricsListen, Overrides};
use crate::demo;
use crate::startup::{App, StopSignals};
use std::sync::Arc;

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Also seed a demo store and a demo API user, and print its key with a ready cURL line
    #[arg(long)]
    pub demo: bool,
    #[command(flatten)]
    pub overrides: Overrides,
}

/// What `serve` tells its operator once it listens.
pub struct Started {
    pub base: String,
    /// Where `/metrics` is served, if anywhere.
    pub metrics: Option<String>,
    pub database_url: String,
    pub first_admin: Option<(String, Option<String>)>,
    pub seeded: bool,
    pub demo: Option<demo::DemoKey>,
}

pub async fn run(config: Config, with_demo: bool, out: &Output) -> Result<(), CliError> {
    crate::telemetry::init(config.log_format, &config.log_level);
    // From the start: a signal during start-up (migrations, the first admin) waits for it.
    let signals = StopSignals::listen()
        .map_err(|e| CliError::Failed(format!("cannot listen for stop signals: {e}")))?;
    // A start-up that hangs (a database that does not answer) ends at a second signal.
    let mut app = tokio::select! {
        built = App::build(&config, Arc::new(SystemClock)) => {
            built.map_err(|e| CliError::Failed(crate::telemetry::error_chain(&e)))?
        }
        () = signals.nth(2) => {
            return Err(CliError::Failed("stopped during start-up by a second signal".to_owned()));
        }
    };
    let base = format!("http://{}", app.local_addr());
    let metrics = match config.metrics_listen {
        MetricsListen::Main => Some(format!("{base}/metrics")),
        MetricsListen::Addr(_) => app
            .metrics_addr()
            .map(|addr| format!("http://{addr}/metrics")),
        MetricsListen::Off => None,
    };
    let mut started = Started {
        base,
        metrics,
        database_url: crate::config::redact_url(&config.database_url),
        first_admin: app.take_first_admin().map(|first| {
            let password = first.password.map(|p| p.expose().to_owned());
            (first.username, password)
        }),
        seeded: false,
        demo: None,
    };
    if with_demo {
        let state = app.state();
        started.seeded = demo::seed_store(&state.db, state.clock.now()).await?;
        started.demo = Some(demo::demo_user(&state.credentials).await?);
    }
    out.started(&started);
    app.run_until(signals.nth(1), signals.nth(2))
        .await
        .map_err(|e| CliError::Failed(format!("the server stopped: {e}")))
}
