//! One typed configuration. Each setting comes from the first of: a command-line flag, a
//! `KEYWARD_*` environment variable (clap reads both), `keyward.toml`, the default.

use crate::auth::ForwardedHeader;
use crate::domain::duration::HumanDuration;
use crate::domain::secret::Secret;
use ipnet::IpNet;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://keyward.db";
pub const DEFAULT_CONFIG_FILE: &str = "keyward.toml";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Where `/metrics` is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsListen {
    /// On the main listener, beside the API.
    Main,
    /// Nowhere, and nothing is measured.
    Off,
    /// On a listener of its own, and not on the main one.
    Addr(SocketAddr),
}

impl std::str::FromStr for MetricsListen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "main" => Ok(Self::Main),
            "off" => Ok(Self::Off),
            addr => addr.parse().map(Self::Addr).map_err(|_| {
                format!("`{text}` is not main, off or an address such as 127.0.0.1:9464")
            }),
        }
    }
}

impl std::fmt::Display for MetricsListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Main => f.write_str("main"),
            Self::Off => f.write_str("off"),
            Self::Addr(addr) => write!(f, "{addr}"),
        }
    }
}

impl<'de> Deserialize<'de> for MetricsListen {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for MetricsListen {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The settings in effect.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Config {
    /// Printed without the password it may carry.
    #[serde(serialize_with = "serialize_redacted_url")]
    pub database_url: String,
    pub listen: SocketAddr,
    pub trusted_proxies: Vec<IpNet>,
    pub forwarded_header: ForwardedHeader,
    pub history_retention: HumanDuration,
    pub session_idle_timeout: HumanDuration,
    pub session_lifetime: HumanDuration,
    /// Wait for the disk on every commit (survives power loss), not only for the OS.
    pub sync_full: bool,
    /// Apply pending migrations when the server starts; otherwise refuse to start until an
    /// operator has run `keyward migrate`.
    pub auto_migrate: bool,
    pub max_body_bytes: usize,
    pub request_timeout: HumanDuration,
    pub login_failures_per_ip: u32,
    pub login_failures_per_username: u32,
    pub log_format: LogFormat,
    pub log_level: String,
    /// A console session ends after this long without a page.
    pub console_idle_timeout: HumanDuration,
    /// Mark console cookies `Secure`: set it when the console is served over HTTPS.
    pub cookie_secure: bool,
    /// Where `/metrics` is served: on the main listener, on an address of its own, or not at all.
    pub metrics_listen: MetricsListen,
    /// Leak reports accepted per client address per minute.
    pub leak_reports_per_minute: u32,
    /// Refusals of one API user within `refusal_burst_window` that raise `refusals.burst`.
    pub refusal_burst_threshold: u32,
    pub refusal_burst_window: HumanDuration,
    /// Seals webhook signing secrets at rest; never printed.
    #[serde(skip)]
    pub webhook_key: Option<Secret>,
    /// The first admin's password; otherwise a random one is printed once.
    #[serde(skip)]
    pub admin_password: Option<Secret>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::XForwardedFor,
            history_retention: HumanDuration(time::Duration::days(90)),
            session_idle_timeout: HumanDuration(time::Duration::hours(1)),
            session_lifetime: HumanDuration(time::Duration::hours(24)),
            sync_full: false,
            auto_migrate: true,
            max_body_bytes: 1024 * 1024,
            request_timeout: HumanDuration(time::Duration::seconds(30)),
            login_failures_per_ip: 20,
            login_failures_per_username: 10,
            log_format: LogFormat::Text,
            log_level: "info".to_owned(),
            console_idle_timeout: HumanDuration(time::Duration::minutes(30)),
            cookie_secure: false,
            metrics_listen: MetricsListen::Main,
            leak_reports_per_minute: 10,
            refusal_burst_threshold: 20,
            refusal_burst_window: HumanDuration(time::Duration::minutes(5)),
            webhook_key: None,
            admin_password: None,
        }
    }
}

/// A CIDR block from a flag or the environment, where a list is often written `a, b`.
fn cidr(text: &str) -> Result<IpNet, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("`{}` is not a CIDR block such as 10.0.0.0/8", text.trim()))
}

fn serialize_redacted_url<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_url(url))
}

/// The database URL fit to print: a password in it, before the host or as a `password`
/// parameter, becomes `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let authority_end = before_query.find('/').unwrap_or(before_query.len());
    let (authority, path) = before_query.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let mut redacted = format!("{scheme}://{authority}{path}");
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        redacted.push('?');
        redacted.push_str(&pairs.join("&"));
    }
    redacted
}

/// Settings from flags and environment; `None` where neither gave one.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// Address to listen on
    #[arg(long, env = "KEYWARD_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Proxies whose Forwarded / X-Forwarded-For headers are believed (CIDR, repeatable)
    #[arg(
        long = "trusted-proxy",
        env = "KEYWARD_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_parser = cidr,
        value_name = "CIDR"
    )]
    pub trusted_proxies: Option<Vec<IpNet>>,
    /// The header the trusted proxies maintain: x-forwarded-for or forwarded
    #[arg(long, env = "KEYWARD_FORWARDED_HEADER", value_name = "HEADER")]
    pub forwarded_header: Option<ForwardedHeader>,
    /// How long the API history is kept
    #[arg(long, env = "KEYWARD_HISTORY_RETENTION", value_name = "DURATION")]
    pub history_retention: Option<HumanDuration>,
    /// A session ends after this long without a call
    #[arg(long, env = "KEYWARD_SESSION_IDLE_TIMEOUT", value_name = "DURATION")]
    pub session_idle_timeout: Option<HumanDuration>,
    /// A session ends this long after login, used or not
    #[arg(long, env = "KEYWARD_SESSION_LIFETIME", value_name = "DURATION")]
    pub session_lifetime: Option<HumanDuration>,
    /// Wait for the disk on every commit (survives power loss; slower)
    #[arg(long, env = "KEYWARD_SYNC_FULL", value_name = "BOOL")]
    pub sync_full: Option<bool>,
    /// Apply pending migrations on start (false: refuse to start until `keyward migrate` ran)
    #[arg(long, env = "KEYWARD_AUTO_MIGRATE", value_name = "BOOL")]
    pub auto_migrate: Option<bool>,
    /// Largest request body accepted, in bytes
    #[arg(long, env = "KEYWARD_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Longest a request may take
    #[arg(long, env = "KEYWARD_REQUEST_TIMEOUT", value_name = "DURATION")]
    pub request_timeout: Option<HumanDuration>,
    /// Failed logins per minute from one address before it must wait
    #[arg(long, env = "KEYWARD_LOGIN_FAILURES_PER_IP", value_name = "N")]
    pub login_failures_per_ip: Option<u32>,
    /// Failed logins per minute for one username before it must wait
    #[arg(long, env = "KEYWARD_LOGIN_FAILURES_PER_USERNAME", value_name = "N")]
    pub login_failures_per_username: Option<u32>,
    /// Log format
    #[arg(long, env = "KEYWARD_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Log level or filter (info, debug, keyward=debug,sqlx=warn)
    #[arg(long, env = "KEYWARD_LOG", value_name = "FILTER")]
    pub log_level: Option<String>,
    /// A console session ends after this long without a page
    #[arg(long, env = "KEYWARD_CONSOLE_IDLE_TIMEOUT", value_name = "DURATION")]
    pub console_idle_timeout: Option<HumanDuration>,
    /// Mark console cookies Secure (the console is served over HTTPS)
    #[arg(long, env = "KEYWARD_COOKIE_SECURE", value_name = "BOOL")]
    pub cookie_secure: Option<bool>,
    /// Where /metrics is served: main (the main listener), off, or an address of its own
    #[arg(long, env = "KEYWARD_METRICS_LISTEN", value_name = "main|off|ADDR")]
    pub metrics_listen: Option<MetricsListen>,
    /// Leak reports (POST /api/v1/leaks) accepted per client address per minute
    #[arg(long, env = "KEYWARD_LEAK_REPORTS_PER_MINUTE", value_name = "N")]
    pub leak_reports_per_minute: Option<u32>,
    /// Refusals of one API user within the burst window that raise a refusals.burst alert
    #[arg(long, env = "KEYWARD_REFUSAL_BURST_THRESHOLD", value_name = "N")]
    pub refusal_burst_threshold: Option<u32>,
    /// The window of the refusals.burst alert
    #[arg(long, env = "KEYWARD_REFUSAL_BURST_WINDOW", value_name = "DURATION")]
    pub refusal_burst_window: Option<HumanDuration>,
}

/// `keyward.toml`: every key optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub database_url: Option<String>,
    pub listen: Option<SocketAddr>,
    pub trusted_proxies: Option<Vec<IpNet>>,
    pub forwarded_header: Option<ForwardedHeader>,
    pub history_retention: Option<HumanDuration>,
    pub session_idle_timeout: Option<HumanDuration>,
    pub session_lifetime: Option<HumanDuration>,
    pub sync_full: Option<bool>,
    pub auto_migrate: Option<bool>,
    pub max_body_bytes: Option<usize>,
    pub request_timeout: Option<HumanDuration>,
    pub login_failures_per_ip: Option<u32>,
    pub login_failures_per_username: Option<u32>,
    pub log_format: Option<LogFormat>,
    pub log_level: Option<String>,
    pub console_idle_timeout: Option<HumanDuration>,
    pub cookie_secure: Option<bool>,
    pub metrics_listen: Option<MetricsListen>,
    pub leak_reports_per_minute: Option<u32>,
    pub refusal_burst_threshold: Option<u32>,
    pub refusal_burst_window: Option<HumanDuration>,
    /// 64 hexadecimal characters; `KEYWARD_WEBHOOK_KEY` wins over it.
    pub webhook_key: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl FileConfig {
    /// Reads `path`, or `keyward.toml` in the working directory when it exists.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let (path, required) = match path {
            Some(path) => (path.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::default());
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path,
            message: e.to_string(),
        })
    }
}

impl Config {
    /// Merges the sources: `database_url` and `overrides` (flags and environment) first,
    /// then the file, then the defaults.
    pub fn resolve(
        database_url: Option<String>,
        overrides: Overrides,
        file: FileConfig,
    ) -> Result<Self, ConfigError> {
        let d = Config::default();
        let config = Config {
            database_url: database_url.or(file.database_url).unwrap_or(d.database_url),
            listen: overrides.listen.or(file.listen).unwrap_or(d.listen),
            trusted_proxies: overrides
                .trusted_proxies
                .or(file.trusted_proxies)
                .unwrap_or(d.trusted_proxies),
            forwarded_header: overrides
                .forwarded_header
                .or(file.forwarded_header)
                .unwrap_or(d.forwarded_header),
            history_retention: overrides
                .history_retention
                .or(file.history_retention)
                .unwrap_or(d.history_retention),
            session_idle_timeout: overrides
                .session_idle_timeout
                .or(file.session_idle_timeout)
                .unwrap_or(d.session_idle_timeout),
            session_lifetime: overrides
                .session_lifetime
                .or(file.session_lifetime)
                .unwrap_or(d.session_lifetime),
            sync_full: overrides
                .sync_full
                .or(file.sync_full)
                .unwrap_or(d.sync_full),
            auto_migrate: overrides
                .auto_migrate
                .or(file.auto_migrate)
                .unwrap_or(d.auto_migrate),
            max_body_bytes: overrides
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(d.max_body_bytes),
            request_timeout: overrides
                .request_timeout
                .or(file.request_timeout)
                .unwrap_or(d.request_timeout),
            login_failures_per_ip: overrides
                .login_failures_per_ip
                .or(file.login_failures_per_ip)
                .unwrap_or(d.login_failures_per_ip),
            login_failures_per_username: overrides
                .login_failures_per_username
                .or(file.login_failures_per_username)
                .unwrap_or(d.login_failures_per_username),
            log_format: overrides
                .log_format
                .or(file.log_format)
                .unwrap_or(d.log_format),
            log_level: overrides
                .log_level
                .or(file.log_level)
                .unwrap_or(d.log_level),
            console_idle_timeout: overrides
                .console_idle_timeout
                .or(file.console_idle_timeout)
                .unwrap_or(d.console_idle_timeout),
            cookie_secure: overrides
                .cookie_secure
                .or(file.cookie_secure)
                .unwrap_or(d.cookie_secure),
            metrics_listen: overrides
                .metrics_listen
                .or(file.metrics_listen)
                .unwrap_or(d.metrics_listen),
            leak_reports_per_minute: overrides
                .leak_reports_per_minute
                .or(file.leak_reports_per_minute)
                .unwrap_or(d.leak_reports_per_minute),
            refusal_burst_threshold: overrides
                .refusal_burst_threshold
                .or(file.refusal_burst_threshold)
                .unwrap_or(d.refusal_burst_threshold),
            refusal_burst_window: overrides
                .refusal_burst_window
                .or(file.refusal_burst_window)
                .unwrap_or(d.refusal_burst_window),
            // A secret: from the environment or the file, never a flag (flags show in `ps`).
            webhook_key: std::env::var("KEYWARD_WEBHOOK_KEY")
                .ok()
                .filter(|k| !k.is_empty())
                .or(file.webhook_key)
                .map(Secret::new),
            admin_password: std::env::var("KEYWARD_ADMIN_PASSWORD")
                .ok()
                .filter(|p| !p.is_empty())
                .map(Secret::new),
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let positive = |name: &str, d: HumanDuration| {
            if d.0 > time::Duration::ZERO {
                Ok(())
            } else {
                Err(ConfigError::Invalid(format!(
                    "{name} must be longer than 0 (set it like 1h or 7d)"
                )))
            }
        };
        positive("history_retention", self.history_retention)?;
        positive("session_idle_timeout", self.session_idle_timeout)?;
        positive("session_lifetime", self.session_lifetime)?;
        positive("request_timeout", self.request_timeout)?;
        positive("console_idle_timeout", self.console_idle_timeout)?;
        positive("refusal_burst_window", self.refusal_burst_window)?;
        if self.leak_reports_per_minute == 0 || self.refusal_burst_threshold == 0 {
            return Err(ConfigError::Invalid(
                "leak_reports_per_minute and refusal_burst_threshold must be at least 1".to_owned(),
            ));
        }
        if let Some(key) = &self.webhook_key
            && crate::webhooks::SealingKey::from_hex(key.expose()).is_err()
        {
            return Err(ConfigError::Invalid(
                "webhook_key (KEYWARD_WEBHOOK_KEY) must be 64 hexadecimal characters, such as the output of `openssl rand -hex 32`".to_owned(),
            ));
        }
        if let Some((word, level)) = misspelled_level(&self.log_level) {
            return Err(ConfigError::Invalid(format!(
                "the log level (--log-level, KEYWARD_LOG or log_level) `{word}` is not a level (it would name a module, and \
                 log almost nothing): did you mean {level}?"
            )));
        }
        if let Err(error) = tracing_subscriber::EnvFilter::try_new(&self.log_level) {
            return Err(ConfigError::Invalid(format!(
                "the log level (--log-level, KEYWARD_LOG or log_level) `{}` is not a level or filter, such as info, debug or \
                 keyward=debug,sqlx=warn: {error}",
                self.log_level
            )));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "max_body_bytes must be at least 1024".to_owned(),
            ));
        }
        // Port 0 asks for any free port, so two of them never clash.
        if self.metrics_listen == MetricsListen::Addr(self.listen) && self.listen.port() != 0 {
            return Err(ConfigError::Invalid(
                "metrics_listen must differ from listen; use metrics_listen = \"main\" to serve \
                 /metrics on the main listener"
                    .to_owned(),
            ));
        }
        if self.login_failures_per_ip == 0 || self.login_failures_per_username == 0 {
            return Err(ConfigError::Invalid(
                "login_failures_per_ip and _per_username must be at least 1".to_owned(),
            ));
        }
        Ok(())
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout.0.whole_seconds().unsigned_abs())
    }
}

/// A directive of a log filter that is a level's other name (`warning`, `err`, …), which the
/// filter would take for a module's name; and the level meant.
fn misspelled_level(filter: &str) -> Option<(&str, &'static str)> {
    filter.split(',').map(str::trim).find_map(|word| {
        let level = match word.to_ascii_lowercase().as_str() {
            "warning" | "warnings" => "warn",
            "err" | "errors" | "critical" | "crit" | "fatal" | "alert" | "emerg" => "error",
            "information" | "informational" | "notice" => "info",
            "debugging" | "verbose" => "debug",
            "tracing" | "all" => "trace",
            _ => return None,
        };
        Some((word, level))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_env_win_over_the_file_which_wins_over_defaults() {
        let file: FileConfig = toml::from_str(
            "listen = \"127.0.0.1:9000\"\nsession_lifetime = \"12h\"\ndatabase_url = \"sqlite://file.db\"",
        )
        .expect("toml");
        let overrides = Overrides {
            listen: Some("127.0.0.1:9100".parse().expect("addr")),
            ..Default::default()
        };
        let config = Config::resolve(None, overrides, file).expect("config");
        assert_eq!(config.listen.port(), 9100, "the flag wins");
        assert_eq!(
            config.session_lifetime.to_string(),
            "12h",
            "the file wins over the default"
        );
        assert_eq!(config.database_url, "sqlite://file.db");
        assert_eq!(
            config.session_idle_timeout.to_string(),
            "1h",
            "the default fills the rest"
        );
    }

    #[test]
    fn metrics_listen_reads_main_off_or_an_address() {
        assert_eq!("main".parse(), Ok(MetricsListen::Main));
        assert_eq!("off".parse(), Ok(MetricsListen::Off));
        assert_eq!(
            "127.0.0.1:9464".parse(),
            Ok(MetricsListen::Addr(SocketAddr::from((
                [127, 0, 0, 1],
                9464
            ))))
        );
        assert!("9464".parse::<MetricsListen>().is_err());
        assert!("on".parse::<MetricsListen>().is_err());
        let file: FileConfig = toml::from_str("metrics_listen = \"[::1]:9464\"").expect("toml");
        let config = Config::resolve(None, Overrides::default(), file).expect("config");
        assert_eq!(config.metrics_listen.to_string(), "[::1]:9464");
        let same = FileConfig {
            metrics_listen: Some(MetricsListen::Addr(Config::default().listen)),
            ..Default::default()
        };
        assert!(Config::resolve(None, Overrides::default(), same).is_err());
    }

    #[test]
    fn unknown_keys_and_bad_values_in_the_file_are_reported() {
        assert!(toml::from_str::<FileConfig>("lisen = \"x\"").is_err());
        assert!(toml::from_str::<FileConfig>("session_lifetime = \"forever\"").is_err());
        let zero = FileConfig {
            session_lifetime: Some(HumanDuration(time::Duration::ZERO)),
            ..Default::default()
        };
        assert!(Config::resolve(None, Overrides::default(), zero).is_err());
    }

    #[test]
    fn alert_settings_and_the_webhook_key_come_from_the_file_and_are_checked() {
        let file: FileConfig = toml::from_str(&format!(
            "refusal_burst_threshold = 5\nrefusal_burst_window = \"2m\"\nleak_reports_per_minute = 3\nwebhook_key = \"{}\"",
            "ab".repeat(32)
        ))
        .expect("toml");
        let config = Config::resolve(None, Overrides::default(), file).expect("config");
        assert_eq!(config.refusal_burst_threshold, 5);
        assert_eq!(config.refusal_burst_window.to_string(), "2m");
        assert_eq!(config.leak_reports_per_minute, 3);
        assert!(config.webhook_key.is_some());
        assert!(
            !format!("{config:?}").contains(&"ab".repeat(32)),
            "the key is never printed"
        );
        assert!(
            !serde_json::to_string(&config)
                .expect("json")
                .contains("webhook_key")
        );

        for bad in [
            "webhook_key = \"not hex\"",
            "refusal_burst_threshold = 0",
            "leak_reports_per_minute = 0",
            "refusal_burst_window = \"0\"",
        ] {
            let file: FileConfig = toml::from_str(bad).expect("toml");
            assert!(
                Config::resolve(None, Overrides::default(), file).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn database_passwords_are_redacted_for_printing() {
        use super::redact_url;
        assert_eq!(redact_url("sqlite://keyward.db"), "sqlite://keyward.db");
        assert_eq!(
            redact_url("postgres://keyward:s3cret@db.example:5432/shop?sslmode=require"),
            "postgres://keyward:***@db.example:5432/shop?sslmode=require"
        );
        assert_eq!(
            redact_url("postgresql://kw@localhost/shop?password=s3cret&application_name=x"),
            "postgresql://kw@localhost/shop?password=***&application_name=x"
        );
        assert_eq!(redact_url("postgres://a:b%40c@h/d"), "postgres://a:***@h/d");
    }
}
