//! What the Management API takes and answers. Never a key's digest; a key itself only in the
//! answer that issued it.

use crate::auth::UsageTracker;
use crate::credentials::IssuedKey;
use crate::domain::api_user::{
    ApiUser, ApiUserSummary, Environment, KeyInfo, SessionRecord, Status,
};
use crate::domain::history::HistoryRecord;
use crate::domain::ip_rule::IpRule;
use crate::domain::validation::{empty_if_null, not_null};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// A scope name, for the description (the service reads and checks the strings).
#[derive(ToSchema)]
#[allow(dead_code)]
pub enum ScopeName {
    #[schema(rename = "products:read")]
    ProductsRead,
    #[schema(rename = "products:write")]
    ProductsWrite,
    #[schema(rename = "orders:read")]
    OrdersRead,
    #[schema(rename = "orders:write")]
    OrdersWrite,
    #[schema(rename = "customers:read")]
    CustomersRead,
    #[schema(rename = "customers:write")]
    CustomersWrite,
    #[schema(rename = "api_users:read")]
    ApiUsersRead,
    #[schema(rename = "api_users:write")]
    ApiUsersWrite,
}

/// An API user: its settings, IP rules and keys (hints only).
#[derive(Serialize, ToSchema)]
pub struct ApiUserView {
    pub username: String,
    pub description: String,
    pub environment: Environment,
    pub status: Status,
    #[schema(value_type = Vec<ScopeName>)]
    pub scopes: Vec<&'static str>,
    pub rate_limit_per_minute: u32,
    /// A management key may hold the `api_users:*` scopes.
    pub management: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    pub last_used_ip: Option<String>,
    /// Addresses, CIDR blocks, `a.b.c.*` wildcards or `*`; an empty list allows no address.
    pub ips: Vec<String>,
    /// Newest first.
    pub keys: Vec<KeyView>,
    /// What an admin should know about these settings (an empty IP list, `*`, no scope…).
    pub warnings: Vec<&'static str>,
}

impl ApiUserView {
    pub fn new(user: &ApiUser, usage: &UsageTracker, now: OffsetDateTime) -> Self {
        let (last_used_at, last_used_ip) = usage.last_use(user);
        Self {
            username: user.username.clone(),
            description: user.description.clone(),
            environment: user.environment,
            status: user.status,
            scopes: user.scopes.iter().map(|s| s.as_str()).collect(),
            rate_limit_per_minute: user.rate_limit_per_minute,
            management: user.management,
            created_at: user.created_at,
            updated_at: user.updated_at,
            last_used_at,
            last_used_ip,
            ips: rules(&user.ips),
            keys: user.keys.iter().map(|k| KeyView::new(k, now)).collect(),
            warnings: user.warnings(now),
        }
    }
}

pub fn rules(ips: &[IpRule]) -> Vec<String> {
    ips.iter().map(ToString::to_string).collect()
}

/// The visible side of a key: its hint (`kw_` and the last 4 characters) and dates.
#[derive(Serialize, ToSchema)]
pub struct KeyView {
    pub hint: String,
    /// `live`, `expired` or `revoked`.
    pub state: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    pub revoked_reason: Option<String>,
    /// Brought from another system rather than generated here.
    pub imported: bool,
}

impl KeyView {
    fn new(key: &KeyInfo, now: OffsetDateTime) -> Self {
        Self {
            hint: key.hint.clone(),
            state: key.state(now),
            created_at: key.created_at,
            expires_at: key.expires_at,
            revoked_at: key.revoked_at,
            revoked_reason: key.revoked_reason.clone(),
            imported: key.imported,
        }
    }
}

/// An API user in a list, with its calls of the last 24 hours.
#[derive(Serialize, ToSchema)]
pub struct ApiUserListItem {
    /// The cursor's position.
    #[serde(skip)]
    pub id: i64,
    #[serde(flatten)]
    pub user: ApiUserView,
    pub calls_24h: i64,
    pub refused_24h: i64,
}

impl ApiUserListItem {
    pub fn new(summary: &ApiUserSummary, usage: &UsageTracker, now: OffsetDateTime) -> Self {
        Self {
            id: summary.user.id.0,
            user: ApiUserView::new(&summary.user, usage, now),
            calls_24h: summary.calls_24h,
            refused_24h: summary.refused_24h,
        }
    }
}

/// A new key, shown this once: store it in a secrets manager now.
#[derive(Serialize, ToSchema)]
pub struct IssuedKeyView {
    pub username: String,
    /// The key. It is stored only as a digest and cannot be shown again.
    pub key: String,
    /// Hints of keys that stopped at once because of this roll.
    pub stopped_now: Vec<String>,
    pub api_user: ApiUserView,
}

impl IssuedKeyView {
    pub fn new(issued: &IssuedKey, usage: &UsageTracker, now: OffsetDateTime) -> Self {
        Self {
            username: issued.user.username.clone(),
            key: issued.key.expose().to_owned(),
            stopped_now: issued.stopped_now.clone(),
            api_user: ApiUserView::new(&issued.user, usage, now),
        }
    }
}

/// A new API user. Only `username` is required; nothing is granted by default.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiUserBody {
    #[schema(pattern = "^[A-Za-z0-9._-]{3,20}$", example = "inventory-sync")]
    pub username: String,
    #[serde(default)]
    #[schema(max_length = 255)]
    pub description: String,
    #[serde(default)]
    #[schema(default = "production")]
    pub environment: Option<Environment>,
    #[serde(default)]
    #[schema(default = "enabled")]
    pub status: Option<Status>,
    #[serde(default)]
    #[schema(value_type = Vec<ScopeName>)]
    pub scopes: Vec<String>,
    /// The allowed addresses. An empty list allows none: the key cannot be used yet.
    #[serde(default)]
    #[schema(example = json!(["203.0.113.7", "198.51.100.0/24"]))]
    pub ips: Vec<String>,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1_000_000, default = 600)]
    pub rate_limit_per_minute: Option<u32>,
    /// Make a management key (administrators only: always refused here).
    #[serde(default)]
    pub management: bool,
    #[serde(default)]
    #[schema(minimum = 64, maximum = 256, default = 64)]
    pub key_length: Option<usize>,
    /// The key stops working after this long: `90d`, `24h`, `15m`, `90s`. Never later than
    /// the management key making it; without it, the key ends when that one does (or never).
    #[serde(default)]
    #[schema(example = "90d")]
    pub expires_in: Option<String>,
}

/// Changes to an API user; fields left out stay as they are.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ApiUserPatch {
    #[schema(max_length = 255)]
    #[serde(default, deserialize_with = "empty_if_null")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    pub environment: Option<Environment>,
    /// `disabled` refuses the key from the next request on and ends its sessions.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    pub status: Option<Status>,
    /// Replaces the list.
    #[schema(value_type = Option<Vec<ScopeName>>)]
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    pub scopes: Option<Vec<String>>,
    /// Replaces the IP list.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    pub ips: Option<Vec<String>>,
    #[schema(minimum = 1, maximum = 1_000_000)]
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    pub rate_limit_per_minute: Option<u32>,
    /// Only `false` (a no-op) is accepted here: management keys are made by administrators.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    pub management: Option<bool>,
}

/// How long the old key keeps working after a roll: the console's choices.
#[derive(ToSchema)]
#[allow(dead_code)]
pub enum Grace {
    /// The old key stops at once.
    #[schema(rename = "none")]
    None,
    #[schema(rename = "1h")]
    OneHour,
    #[schema(rename = "24h")]
    OneDay,
    #[schema(rename = "7d")]
    OneWeek,
}

/// A key roll. An empty body rolls with no grace period.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// The old key keeps working this long, never past its own expiry (default `none`).
    #[serde(default)]
    #[schema(value_type = Option<Grace>)]
    pub grace: Option<String>,
    #[serde(default)]
    #[schema(minimum = 64, maximum = 256, default = 64)]
    pub key_length: Option<usize>,
    /// The new key stops working after this long (`90d`, `24h`, `15m`, `90s`), or `never`.
    /// Without it, the new key lasts as long as the old one was made to. Never later than the
    /// management key making it.
    #[serde(default)]
    #[schema(example = "90d")]
    pub expires_in: Option<String>,
}

/// An API user's IP list.
#[derive(Serialize, ToSchema)]
pub struct IpList {
    pub ips: Vec<String>,
    /// Whether the call changed the list (an added rule may already be on it).
    pub changed: bool,
    pub warnings: Vec<&'static str>,
}

/// One IP rule to add.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IpRuleBody {
    /// An address, a CIDR block, an `a.b.c.*` wildcard, or `*` (any address).
    #[schema(example = "203.0.113.7")]
    pub rule: String,
}

/// The whole IP list, replacing the current one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IpListBody {
    #[schema(example = json!(["203.0.113.7", "198.51.100.0/24"]))]
    pub ips: Vec<String>,
}

/// An open session of an API user (never its token).
#[derive(Serialize, ToSchema)]
pub struct SessionView {
    pub id: i64,
    pub ip: String,
    /// The hint of the key it was opened with.
    pub key_hint: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    pub idle_timeout_s: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

impl SessionView {
    pub fn new(session: &SessionRecord, user: &ApiUser, usage: &UsageTracker) -> Self {
        let last_seen_at = usage
            .session_seen(session.id)
            .map_or(session.last_seen_at, |seen| seen.max(session.last_seen_at));
        Self {
            id: session.id.0,
            ip: session.ip.clone(),
            key_hint: user
                .keys
                .iter()
                .find(|k| k.id == session.api_key_id)
                .map(|k| k.hint.clone()),
            created_at: session.created_at,
            last_seen_at,
            idle_timeout_s: session.idle_timeout_s,
            expires_at: session.expires_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SessionList {
    pub data: Vec<SessionView>,
}

#[derive(Serialize, ToSchema)]
pub struct Revoked {
    /// How many open sessions were ended.
    pub revoked: u64,
}

/// One call in an API user's history.
#[derive(Serialize, ToSchema)]
pub struct HistoryRow {
    /// The cursor's position.
    #[serde(skip)]
    pub id: i64,
    /// The API user the call was made as; null when the username it presented is unknown.
    pub api_user_id: Option<i64>,
    /// The username the call presented.
    pub username: Option<String>,
    pub key_hint: Option<String>,
    pub session_id: Option<i64>,
    /// Method and route, such as `GET /api/v1/products`.
    pub call: String,
    pub ip: String,
    pub status: u16,
    /// `ok`, or the refusal reason (`wrong_key`, `ip_not_allowed`…).
    pub outcome: String,
    /// The outcome in words.
    pub reason: &'static str,
    /// When the request came in.
    #[serde(with = "time::serde::rfc3339")]
    pub date_added: OffsetDateTime,
    /// When its answer was finished.
    #[serde(with = "time::serde::rfc3339")]
    pub date_modified: OffsetDateTime,
    pub duration_ms: f64,
    pub request_id: String,
}

impl From<HistoryRecord> for HistoryRow {
    fn from(record: HistoryRecord) -> Self {
        Self {
            id: record.id,
            reason: record.reason(),
            api_user_id: record.api_user_id.map(|id| id.0),
            username: record.username,
            key_hint: record.key_hint,
            session_id: record.session_id.map(|s| s.0),
            call: record.call,
            ip: record.ip,
            status: record.status,
            outcome: record.outcome,
            date_added: record.date_added,
            date_modified: record.date_modified,
            duration_ms: record.duration_ms,
            request_id: record.request_id,
        }
    }
}
