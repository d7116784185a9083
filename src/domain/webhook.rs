//! Webhooks: endpoints an administrator registers, the events they receive, and the deliveries
//! that carry each event to each endpoint.

use super::api_user::{Status, text_enum};
use super::ids::{DeliveryId, WebhookId};
use super::secret::{Secret, random_base62};
use serde::Serialize;
use std::fmt;
use time::OffsetDateTime;

/// What happened. Endpoints choose the types they receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    KeyExposed,
    KeyExpiring,
    RefusalsBurst,
    IpNotAllowed,
    WebhookTest,
}

impl EventType {
    pub const ALL: [EventType; 5] = [
        EventType::KeyExposed,
        EventType::KeyExpiring,
        EventType::RefusalsBurst,
        EventType::IpNotAllowed,
        EventType::WebhookTest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeyExposed => "key.exposed",
            Self::KeyExpiring => "key.expiring",
            Self::RefusalsBurst => "refusals.burst",
            Self::IpNotAllowed => "ip.not_allowed",
            Self::WebhookTest => "webhook.test",
        }
    }
}

impl std::str::FromStr for EventType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not an event type"))
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl EventType {
    /// The types an endpoint can subscribe to (the test event goes to the endpoint asked).
    pub const SUBSCRIBABLE: [EventType; 4] = [
        EventType::KeyExposed,
        EventType::KeyExpiring,
        EventType::RefusalsBurst,
        EventType::IpNotAllowed,
    ];

    pub fn describe(self) -> &'static str {
        match self {
            Self::KeyExposed => "A key was reported leaked and revoked",
            Self::KeyExpiring => "A key expires within 7 days",
            Self::RefusalsBurst => "A burst of refused calls for one API user",
            Self::IpNotAllowed => "Calls from an address not on the user's IP list",
            Self::WebhookTest => "A test event sent on request",
        }
    }
}

/// The event types an endpoint receives: a non-empty set of subscribable types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct EventTypes(Vec<EventType>);

impl EventTypes {
    pub fn all() -> Self {
        Self(EventType::SUBSCRIBABLE.to_vec())
    }

    /// Parses names; none at all means every type.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, String> {
        let mut types = Vec::new();
        for name in names.iter().flat_map(|n| n.as_ref().split([' ', ','])) {
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            let kind: EventType = name.parse().map_err(|_| {
                format!(
                    "`{name}` is not an event; use {}",
                    EventType::SUBSCRIBABLE.map(EventType::as_str).join(", ")
                )
            })?;
            if kind == EventType::WebhookTest {
                return Err("webhook.test is sent on request only; it cannot be chosen".into());
            }
            if !types.contains(&kind) {
                types.push(kind);
            }
        }
        if types.is_empty() {
            return Ok(Self::all());
        }
        types.sort_by_key(|t| EventType::SUBSCRIBABLE.iter().position(|s| s == t));
        Ok(Self(types))
    }

    pub fn contains(&self, kind: EventType) -> bool {
        self.0.contains(&kind)
    }

    pub fn iter(&self) -> impl Iterator<Item = EventType> + '_ {
        self.0.iter().copied()
    }

    /// The stored form: names separated by spaces.
    pub fn to_db(&self) -> String {
        self.0
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl fmt::Display for EventTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_db())
    }
}

const MAX_URL_LEN: usize = 2048;

/// Where deliveries go: an absolute `http` or `https` URL without credentials in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("is required".into());
        }
        if text.len() > MAX_URL_LEN {
            return Err(format!("must be at most {MAX_URL_LEN} characters"));
        }
        let url = url::Url::parse(text).map_err(|e| format!("is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must start with https:// or http://; no other scheme is sent to".into());
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("needs a host".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(
                "must not carry a username or password: the signature proves who is calling".into(),
            );
        }
        if url.fragment().is_some() {
            return Err("must not have a #fragment".into());
        }
        Ok(Self(url.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Scheme, host and port only: what logs may say about an endpoint, whose path or query
    /// can hold a token of the receiver's.
    pub fn origin(&self) -> String {
        url::Url::parse(&self.0)
            .map_or_else(|_| String::new(), |u| u.origin().ascii_serialization())
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub const SECRET_PREFIX: &str = "whsec_";
const SECRET_BODY_LEN: usize = 43;

/// An endpoint's signing secret: `whsec_` + 43 base62 characters (256 bits). Shown once; kept
/// sealed (encrypted) at rest, because signing needs it back.
#[derive(Clone)]
pub struct WebhookSecret(Secret);

impl WebhookSecret {
    pub fn generate() -> Self {
        Self(Secret::new(format!(
            "{SECRET_PREFIX}{}",
            random_base62(SECRET_BODY_LEN)
        )))
    }

    pub fn from_opened(text: String) -> Self {
        Self(Secret::new(text))
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// What may be displayed: the prefix and the last four characters.
    pub fn hint(&self) -> String {
        let text = self.expose();
        let tail = text.get(text.len().saturating_sub(4)..).unwrap_or("");
        format!("{SECRET_PREFIX}…{tail}")
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<hidden>)")
    }
}

/// A registered endpoint, as lists and pages show it: never its secret.
#[derive(Debug, Clone, Serialize)]
pub struct Webhook {
    pub id: WebhookId,
    pub url: WebhookUrl,
    pub description: String,
    pub events: EventTypes,
    pub status: Status,
    pub secret_hint: String,
    /// The secret before the last roll, while it still signs deliveries beside the new one.
    pub previous_secret: Option<PreviousSecret>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Deliveries waiting to be sent or retried.
    pub pending: i64,
    /// Deliveries that gave up after every retry.
    pub dead: i64,
}

/// The signing secret an endpoint had before its secret was rolled, as pages show it.
#[derive(Debug, Clone, Serialize)]
pub struct PreviousSecret {
    pub hint: String,
    /// Deliveries are signed with it too until then.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// An endpoint's new signing secret, sealed, and how long the one it replaces keeps signing.
#[derive(Debug, Clone)]
pub struct SecretRoll {
    pub sealed_secret: Vec<u8>,
    pub secret_hint: String,
    /// `None`: the replaced secret stops at once.
    pub previous_until: Option<OffsetDateTime>,
    /// The hint of the secret the caller saw as current, if it names one: when another is
    /// current (the same form sent twice, two admins at once), the roll changes nothing.
    pub replacing: Option<String>,
}

/// A new endpoint, validated, with its sealed secret.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub url: WebhookUrl,
    pub description: String,
    pub events: EventTypes,
    pub sealed_secret: Vec<u8>,
    pub secret_hint: String,
}

/// What the sender needs to reach an endpoint.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    pub id: WebhookId,
    pub url: WebhookUrl,
    pub sealed_secret: Vec<u8>,
    /// The secret before the last roll and until when it signs too (perhaps past already).
    pub previous: Option<(Vec<u8>, OffsetDateTime)>,
}

text_enum!(
    /// Where a delivery stands: waiting (first try or a retry), done, or given up.
    DeliveryState { Pending = "pending", Delivered = "delivered", Dead = "dead" }
);

/// One event, ready to be stored once per endpoint that receives it.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// `evt_…`, the same for every endpoint, so receivers can drop duplicates.
    pub id: String,
    pub kind: EventType,
    pub created_at: OffsetDateTime,
    /// The JSON body sent: `{id, type, created, data}`.
    pub payload: String,
}

/// Which endpoints an event goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipients {
    /// Every enabled endpoint subscribed to the event's type.
    Subscribed,
    /// This endpoint only (a test event).
    One(WebhookId),
}

/// An alert that must fire once: at most once per `quiet` period for its key, across every
/// node sharing the database; `None` means once ever.
#[derive(Debug, Clone)]
pub struct AlertClaim {
    pub key: String,
    pub quiet: Option<time::Duration>,
}

/// A delivery as lists show it.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRecord {
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    pub event_id: String,
    pub event_type: String,
    pub state: DeliveryState,
    pub attempts: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_attempt_at: Option<OffsetDateTime>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
}

/// A delivery claimed for sending.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    pub event_id: String,
    pub event_type: String,
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: i64,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    Delivered {
        status: u16,
    },
    /// Failed; tried again at `next_at`.
    Retry {
        status: Option<u16>,
        error: String,
        next_at: OffsetDateTime,
    },
    /// Failed for the last time: a dead letter until someone retries it by hand.
    Dead {
        status: Option<u16>,
        error: String,
    },
}

/// Which deliveries a list wants.
#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    pub webhook_id: Option<WebhookId>,
    pub state: Option<DeliveryState>,
    /// Keyset pagination: deliveries with an id below this one (newest first).
    pub before_id: Option<i64>,
    pub limit: u32,
}

/// A key that expires soon, for the `key.expiring` alert.
#[derive(Debug, Clone)]
pub struct ExpiringKey {
    pub key_id: super::ids::ApiKeyId,
    pub api_user_id: super::ids::ApiUserId,
    pub username: String,
    pub hint: String,
    pub expires_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_urls_without_credentials_are_accepted() {
        assert!(WebhookUrl::parse("https://hooks.example.com/keyward?x=1").is_ok());
        assert!(WebhookUrl::parse("http://10.0.0.5:8080/in").is_ok());
        for bad in [
            "",
            "ftp://example.com/",
            "file:///etc/passwd",
            "gopher://example.com",
            "javascript:alert(1)",
            "https://user:pass@example.com/",
            "https://example.com/#frag",
            "example.com/hook",
        ] {
            assert!(WebhookUrl::parse(bad).is_err(), "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(3000));
        assert!(WebhookUrl::parse(&long).is_err());
    }

    #[test]
    fn origins_leave_out_paths_and_queries() {
        let url =
            WebhookUrl::parse("https://hooks.example.com:8443/T0/secret?token=x").expect("url");
        assert_eq!(url.origin(), "https://hooks.example.com:8443");
    }

    #[test]
    fn event_lists_parse_and_default_to_every_type() {
        assert_eq!(EventTypes::parse::<&str>(&[]), Ok(EventTypes::all()));
        let picked = EventTypes::parse(&["ip.not_allowed", "key.exposed,key.exposed"]).expect("ok");
        assert_eq!(picked.to_db(), "key.exposed ip.not_allowed");
        assert!(EventTypes::parse(&["key.stolen"]).is_err());
        assert!(EventTypes::parse(&["webhook.test"]).is_err());
    }

    #[test]
    fn secrets_are_long_random_and_hidden_from_debug() {
        let a = WebhookSecret::generate();
        let b = WebhookSecret::generate();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), SECRET_PREFIX.len() + SECRET_BODY_LEN);
        assert!(!format!("{a:?}").contains(a.expose()));
        assert!(a.hint().starts_with("whsec_…"));
        assert_eq!(a.hint().chars().count(), "whsec_…".chars().count() + 4);
    }
}
