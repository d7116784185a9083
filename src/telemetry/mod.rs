//! Structured logs on stderr (stdout belongs to command output), and Prometheus metrics
//! (`metrics`). Keys and tokens never reach a log: the request span carries the path without
//! its query, and secrets are types whose `Debug` hides them.

pub mod metrics;

use crate::config::LogFormat;
use tracing_subscriber::EnvFilter;

pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A log that cannot be written (a full disk, a pipe whose reader went) is skipped:
        // reporting it would print to the same stderr, which panics on failure.
        .log_internal_errors(false)
        .with_ansi(ansi);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.with_target(false).try_init(),
    };
    // A second initialisation (tests) keeps the first subscriber.
    drop(result);
}

/// An error and its causes on one line: "client error (Connect): tcp connect error: …".
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        // A message may already end with its cause's ("cannot listen on …: {source}").
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
