//! What callers ask of the API-user service, the answers it gives, and the checks shared by
//! its operations.

use crate::domain::api_key::{ApiKey, DEFAULT_KEY_LEN};
use crate::domain::api_user::{ApiUser, Environment, MAX_RATE_LIMIT, Status};
use crate::domain::ids::SessionId;
use crate::domain::ip_rule::IpRule;
use crate::domain::scope::Scopes;
use crate::domain::validation::{Errors, FieldError};
use crate::store::StoreError;
use time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("no API user is named `{0}`")]
    NoSuchUser(String),
    #[error("session {id} is not an open session of `{username}`")]
    NoSuchSession { id: SessionId, username: String },
    #[error("{}", crate::domain::validation::describe(.0))]
    Invalid(Vec<FieldError>),
    /// The actor's authority does not cover the change (see `authority`).
    #[error("{0}")]
    Forbidden(String),
    /// A management key would disable or delete itself without saying it means to.
    #[error("{0}")]
    Unconfirmed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ServiceError {
    pub(super) fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
        }])
    }
}

pub type Result<T> = std::result::Result<T, ServiceError>;

/// Where a new key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    Generate {
        length: usize,
    },
    /// An existing key brought from another system, for migrations.
    Import(ApiKey),
}

impl Default for KeySource {
    fn default() -> Self {
        Self::Generate {
            length: DEFAULT_KEY_LEN,
        }
    }
}

/// A request to create an API user, as the CLI, console or management API received it.
#[derive(Debug, Clone)]
pub struct CreateApiUser {
    pub username: String,
    pub description: String,
    pub environment: Environment,
    pub status: Status,
    pub scopes: Vec<String>,
    pub ips: Vec<String>,
    pub rate_limit_per_minute: Option<u32>,
    pub management: bool,
    pub key: KeySource,
    /// [`NewExpiry::AsBefore`] when none was asked for: no expiry, or, made with an expiring
    /// management key, that key's (where asking for more is refused).
    pub expires_in: NewExpiry,
}

impl Default for CreateApiUser {
    fn default() -> Self {
        Self {
            username: String::new(),
            description: String::new(),
            environment: Environment::Production,
            status: Status::Enabled,
            scopes: Vec::new(),
            ips: Vec::new(),
            rate_limit_per_minute: None,
            management: false,
            key: KeySource::default(),
            expires_in: NewExpiry::AsBefore,
        }
    }
}

/// When a rotated key stops working.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NewExpiry {
    /// As long after its making as the key it replaces was made to last (no expiry if that
    /// one had none).
    #[default]
    AsBefore,
    In(Duration),
    Never,
}

impl NewExpiry {
    /// A form's or a body's field: left out or empty is [`NewExpiry::AsBefore`].
    pub fn from_field(text: Option<&str>) -> std::result::Result<Self, String> {
        match text.map(str::trim) {
            None | Some("") => Ok(Self::AsBefore),
            Some(text) => text.parse(),
        }
    }
}

impl std::str::FromStr for NewExpiry {
    type Err = String;

    /// `never`, or a duration (`90d`).
    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("never") {
            return Ok(Self::Never);
        }
        match text.parse::<crate::domain::duration::HumanDuration>() {
            Ok(duration) if duration.0 <= time::Duration::ZERO => {
                Err("must be a duration in the future, such as 90d, or never".to_owned())
            }
            Ok(duration) => Ok(Self::In(duration.0)),
            Err(crate::domain::duration::DurationError::Format(_)) => Err(format!(
                "`{text}` is neither a duration nor never; write 90s, 15m, 24h, 90d or never"
            )),
            Err(other) => Err(other.to_string()),
        }
    }
}

/// Changes to an API user's settings; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UpdateApiUser {
    pub description: Option<String>,
    pub environment: Option<Environment>,
    pub status: Option<Status>,
    pub scopes: Option<Vec<String>>,
    pub ips: Option<Vec<String>>,
    pub rate_limit_per_minute: Option<u32>,
    pub management: Option<bool>,
}

/// A new key, shown once.
#[derive(Debug)]
pub struct IssuedKey {
    pub user: ApiUser,
    pub key: ApiKey,
    /// Hints of keys that stopped at once because of this roll.
    pub stopped_now: Vec<String>,
}

/// The longest an old key keeps working beside the new one after a roll.
pub const MAX_ROLL_GRACE: Duration = Duration::days(7);

/// The grace periods the console offers, and the Management API takes, for a key roll: none,
/// 1 h, 24 h or 7 d. (The CLI takes any duration up to [`MAX_ROLL_GRACE`].)
pub fn grace_choice(choice: &str) -> Result<Duration> {
    match choice.trim() {
        "" | "0" | "none" => Ok(Duration::ZERO),
        "1h" => Ok(Duration::hours(1)),
        "24h" => Ok(Duration::hours(24)),
        "7d" => Ok(Duration::days(7)),
        _ => Err(ServiceError::invalid("grace", "choose none, 1h, 24h or 7d")),
    }
}

pub(super) fn parse_rules(errors: &mut Errors, field: &str, rules: &[String]) -> Vec<IpRule> {
    let mut parsed = Vec::with_capacity(rules.len());
    for (i, text) in rules.iter().enumerate() {
        if let Some(rule) = errors.check(&format!("{field}[{i}]"), IpRule::parse(text))
            && !parsed.contains(&rule)
        {
            parsed.push(rule);
        }
    }
    parsed
}

pub(super) fn check_rate_limit(errors: &mut Errors, limit: u32) {
    if !(1..=MAX_RATE_LIMIT).contains(&limit) {
        errors.add(
            "rate_limit_per_minute",
            format!("must be between 1 and {MAX_RATE_LIMIT} calls per minute"),
        );
    }
}

pub(super) fn check_management(errors: &mut Errors, scopes: &Scopes, management: bool) {
    if scopes.has_management() && !management {
        errors.add(
            "scopes",
            "api_users:read and api_users:write are granted only to management keys; mark the API user as a management key",
        );
    }
}

pub(super) fn check_description(errors: &mut Errors, description: &str) -> String {
    errors
        .check(
            "description",
            crate::domain::validation::text(description, 0, 255),
        )
        .unwrap_or_default()
}
