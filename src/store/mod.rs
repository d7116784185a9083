//! Storage behind one interface. SQL lives only below this module; each backend has its
//! own migrations and is chosen from the database URL's scheme.
//!
//! The interface is split by capability (API users, auth, sessions, history, admin, products,
//! customers, orders, idempotency) so each part reads on its own and each backend implements
//! it file by file; `Store` is all of them, held as `Arc<dyn Store>`.

pub mod claims;
mod columns;
mod error;
pub mod migrations;
pub mod postgres;
mod rows;
pub mod sqlite;
pub mod transfer;

pub use error::StoreError;
pub use migrations::{MigrationInfo, MigrationStatus, OnOpen};

use crate::domain::admin::{
    AdminSession, AdminUser, AuditEntry, AuditRecord, NewAdminSession, Role,
};
use crate::domain::api_user::Status;
use crate::domain::api_user::{
    ApiUser, ApiUserChanges, ApiUserSummary, AuthKey, AuthUser, NewApiUser, NewKey, NewSession,
    SessionRecord,
};
use crate::domain::catalog::{
    Customer, CustomerFilter, CustomerInput, CustomerPatch, NewOrder, NewOrderHistory, NewProduct,
    Order, OrderFilter, OrderStatus, PageRequest, Product, ProductFilter, ProductPatch, StockItem,
};
use crate::domain::history::{
    HistoryEntry, HistoryQuery, HistoryRecord, LeftOut, RefusedIp, UsageHour,
};
use crate::domain::ids::{
    AdminUserId, ApiKeyId, ApiUserId, CustomerId, DeliveryId, OrderId, ProductId, SessionId,
    WebhookId,
};
use crate::domain::ip_rule::IpRule;
use crate::domain::secret::SecretHash;
use crate::domain::webhook::{
    AlertClaim, AttemptResult, DeliveryQuery, DeliveryRecord, DueDelivery, ExpiringKey, NewEvent,
    NewWebhook, Recipients, SecretRoll, Webhook, WebhookTarget,
};
use async_trait::async_trait;
use claims::IdempotentRun;
use std::sync::Arc;
use time::OffsetDateTime;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The shared handle every part of the program uses.
pub type Db = Arc<dyn Store>;

#[async_trait]
pub trait Store:
    ApiUserStore
    + AuthStore
    + SessionStore
    + HistoryStore
    + AdminStore
    + ProductStore
    + CustomerStore
    + OrderStore
    + IdempotencyStore
    + RateLimitStore
    + transfer::TransferStore
    + WebhookStore
    + Send
    + Sync
{
    /// Whether the database answers (for `/readyz`).
    async fn ping(&self) -> Result<()>;
    /// Whether a write can begin now (for `/readyz` while the history cannot be written: a
    /// SQLite file locked by another process still answers reads).
    async fn ping_write(&self) -> Result<()>;
    /// The migrations this binary knows, and whether each is applied.
    async fn migration_status(&self) -> Result<MigrationStatus>;
    /// Applies pending migrations. Safe with servers running and with several migrators at
    /// once: PostgreSQL's advisory lock (SQLite's write lock) lets one apply each migration.
    async fn migrate(&self) -> Result<()>;
    /// Closes connections after the last write.
    async fn close(&self);
}

/// Opens the database named by `url`, creating and migrating it when needed.
pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Db> {
    // SQLite reads an empty name as a temporary database, gone at the end of the process.
    if sqlite_file(url)
        .flatten()
        .is_some_and(|file| file.as_os_str().is_empty())
    {
        return Err(StoreError::Config(format!(
            "the database URL `{url}` names no file; write sqlite://PATH"
        )));
    }
    let scheme = url.split_once(':').map(|(s, _)| s);
    match scheme {
        Some("sqlite") => Ok(Arc::new(sqlite::SqliteStore::open(url, options).await?)),
        Some("postgres" | "postgresql") => {
            Ok(Arc::new(postgres::PgStore::open(url, options).await?))
        }
        Some(other) if url.contains("://") => Err(StoreError::Config(format!(
            "unknown database scheme `{other}:`; use sqlite://PATH or postgres://USER@HOST/DATABASE"
        ))),
        // A bare path is a SQLite file.
        _ => Ok(Arc::new(
            sqlite::SqliteStore::open(&format!("sqlite://{url}"), options).await?,
        )),
    }
}

/// The file of a SQLite database URL: `None` when the URL is not SQLite, `Some(None)` for an
/// in-memory database. For what lives beside the database, as the webhook key file does.
pub fn sqlite_file(url: &str) -> Option<Option<std::path::PathBuf>> {
    let url = match url.split_once(':').map(|(s, _)| s) {
        Some("sqlite") => url.to_owned(),
        Some(_) if url.contains("://") => return None,
        _ => format!("sqlite://{url}"),
    };
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Some(None);
    }
    use std::str::FromStr;
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(&url).ok()?;
    Some(Some(options.get_filename().to_owned()))
}

/// How a backend should open its database.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Wait for every commit to reach the disk (survives power loss), not only the OS
    /// (survives a crash of Keyward). Costs throughput.
    pub sync_full: bool,
    /// The most connections to hold: SQLite's readers (its writer is always one connection),
    /// or PostgreSQL's whole pool. `None` takes the backend's default, sized for a server.
    pub max_connections: Option<u32>,
    /// What to do with pending migrations.
    pub migrate: OnOpen,
    /// Learn of other processes' credential changes as they commit (a server on PostgreSQL
    /// keeps a listening connection for it); the command line does not need to.
    pub watch_changes: bool,
    /// Copy SQLite's write-ahead log back into the database from a connection of its own,
    /// off the writer's path (a server); the command line leaves it to its commits.
    pub checkpoint_in_background: bool,
}

/// Which users' credentials changed since a point in the change log.
#[derive(Debug, Clone)]
pub struct CredentialChanges {
    /// The log's position after the changes read.
    pub last_seq: i64,
    /// The users the changes name, sorted and without repeats; `None` when there were more
    /// changes than the reader asked to list, which then treats every user as changed.
    pub users: Option<Vec<ApiUserId>>,
}

impl CredentialChanges {
    /// From the log's `(seq, user)` rows after `seq`, in order, read with a limit of one more
    /// than `most`: `None` when there were more, for the backend to find the log's end.
    fn listed(seq: i64, rows: Vec<(i64, i64)>, most: usize) -> Option<Self> {
        if rows.len() > most {
            return None;
        }
        // Only rows actually read move the position: a change committed after this read
        // must still be found by the next one.
        let last_seq = rows.last().map_or(seq, |(last, _)| *last);
        let mut users: Vec<ApiUserId> = rows.into_iter().map(|(_, user)| ApiUserId(user)).collect();
        users.sort_unstable();
        users.dedup();
        Some(Self {
            last_seq,
            users: Some(users),
        })
    }

    /// More changes than listed: every user, up to the log's end.
    fn all(seq: i64, last: Option<i64>) -> Self {
        Self {
            last_seq: last.unwrap_or(seq).max(seq),
            users: None,
        }
    }
}

/// The SQL limit that reads one more than `most` changes.
fn changes_limit(most: usize) -> i64 {
    i64::try_from(most).unwrap_or(i64::MAX).saturating_add(1)
}

/// What happens to the keys a roll replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetireOld {
    Now,
    At(OffsetDateTime),
}

/// Refuses a webhook secret's roll made from a page that showed another secret (`seen`, its
/// hint) than the current one; a webhook that is gone is not found.
fn webhook_roll_replaces(current: Option<&str>, seen: &str) -> Result<()> {
    match current {
        None => Err(StoreError::NotFound),
        Some(current) if current != seen => Err(StoreError::Conflict {
            message: format!(
                "The signing secret was rolled meanwhile (this form sent again, or another \
                 admin): it is now {current}, and nothing was changed. Roll again from the \
                 endpoint's page if another secret is still wanted."
            ),
            details: Vec::new(),
        }),
        Some(_) => Ok(()),
    }
}

/// Which live key a roll replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replacing {
    /// Whichever is current when the roll's transaction runs.
    Current,
    /// Only while the user's newest key, live or not, is the one a caller saw (`None`: it had
    /// none). Keys are only ever added, so another key means another roll came first (or the
    /// same form was sent twice), and the roll changes nothing; a key that merely expired or
    /// was revoked meanwhile is still rolled.
    Seen(Option<ApiKeyId>),
    /// A management key rolling itself: only while it is the newest key, or the newest came
    /// from its own roll (whose answer was lost, say), never past a key an administrator
    /// issued since.
    Own(ApiKeyId),
}

/// SQL for a user's newest key, live or not, and the key that issued it: `(id, issued_by)`.
pub(crate) const NEWEST_KEY_SQL: &str = "SELECT id, issued_by_key_id FROM api_keys \
     WHERE api_user_id = $1 ORDER BY id DESC LIMIT 1";

impl Replacing {
    /// Whether a roll replacing `self` may go ahead, `newest` being the user's newest key as
    /// its transaction found it, with the key that issued it.
    pub fn allows(self, newest: Option<(i64, Option<i64>)>) -> bool {
        let id = newest.map(|(id, _)| id);
        match self {
            Replacing::Current => true,
            Replacing::Seen(seen) => seen.map(|key| key.0) == id,
            Replacing::Own(own) => {
                newest.is_some_and(|(id, issuer)| id == own.0 || issuer == Some(own.0))
            }
        }
    }
}

/// What a roll did to the keys it found live, as its transaction saw them (two rolls at once
/// each see the other's key when they come second).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolledKey {
    pub id: ApiKeyId,
    /// The hint of the key that was current, if one was live.
    pub old_hint: Option<String>,
    /// Hints of the keys that stopped at once.
    pub stopped_now: Vec<String>,
}

impl RolledKey {
    /// `audit` with the hint of the key the roll replaced and those it stopped at once, as the
    /// roll's own transaction found them.
    fn audit_of(audit: &AuditEntry, old_hint: Option<&str>, stopped_now: &[String]) -> AuditEntry {
        let mut audit = audit.clone();
        audit.details["old_key_hint"] = serde_json::json!(old_hint);
        audit.details["stopped_key_hints"] = serde_json::json!(stopped_now);
        audit
    }
}

/// Last use of users and sessions, gathered in memory and written in one go.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub users: Vec<(ApiUserId, OffsetDateTime, String)>,
    pub sessions: Vec<(SessionId, OffsetDateTime)>,
}

/// API users, their keys and IP rules, as the service layer changes them.
#[async_trait]
pub trait ApiUserStore {
    async fn create_api_user(
        &self,
        user: &NewApiUser,
        key: &NewKey,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<ApiUserId>;
    async fn api_user(&self, username: &str) -> Result<Option<ApiUser>>;
    /// Users whose username or description contains `search`: all of them by username, or
    /// one page by id (`page.after` excluded, at most `page.limit`).
    async fn list_api_users(
        &self,
        search: Option<&str>,
        stats_since: OffsetDateTime,
        page: Option<PageRequest>,
    ) -> Result<Vec<ApiUserSummary>>;
    async fn update_api_user(
        &self,
        id: ApiUserId,
        changes: &ApiUserChanges,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<()>;
    /// Deletes the user, its keys, IP rules and sessions; its history stays.
    async fn delete_api_user(&self, id: ApiUserId, audit: &AuditEntry) -> Result<()>;
    /// Issues a new key; the live keys it replaces stop `retire`. The audit entry is written
    /// with the `old_key_hint` of the key it found current. `None`, with nothing changed,
    /// when the current key is not the one `replacing` names.
    async fn roll_key(
        &self,
        id: ApiUserId,
        key: &NewKey,
        replacing: Replacing,
        retire: RetireOld,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<Option<RolledKey>>;
    /// Revokes one key and ends the sessions made with it; returns how many were open.
    async fn revoke_key(
        &self,
        key: ApiKeyId,
        reason: &str,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<u64>;
    /// Adds a rule; false when it was already on the list.
    async fn add_ip_rule(
        &self,
        id: ApiUserId,
        rule: &IpRule,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<bool>;
    /// Removes a rule; false when it was not on the list.
    async fn remove_ip_rule(
        &self,
        id: ApiUserId,
        rule: &IpRule,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<bool>;
}

/// What the auth pipeline reads, and the change log that keeps its cache true.
#[async_trait]
pub trait AuthStore {
    async fn auth_user(&self, id: ApiUserId) -> Result<Option<AuthUser>>;
    /// The user of that name: one lookup in the names' index, which costs the same whether or
    /// not there is one, so a refused call's time does not tell whether its username exists.
    async fn api_user_id_by_name(&self, username: &str) -> Result<Option<ApiUserId>>;
    async fn auth_key(&self, hash: &SecretHash) -> Result<Option<AuthKey>>;
    async fn auth_key_by_id(&self, id: ApiKeyId) -> Result<Option<AuthKey>>;

    /// A cheap, synchronous sign that credentials may have changed since the last call:
    /// the auth cache checks it on every request and syncs from the change log when it moves.
    fn change_marker(&self) -> u64;
    /// Resolves when another process announced a change (PostgreSQL's notifications), so the
    /// cache can sync before a request needs it. Never, where changes are not announced
    /// (SQLite: its marker is read on every request instead).
    async fn change_announced(&self) {
        std::future::pending::<()>().await;
    }
    /// How often the cache must read the change log regardless: the safety net for a signal
    /// that was lost.
    fn change_poll_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }
    /// The users named in the change log after `seq`, or, past `most` changes, only the
    /// log's end (a bulk change: listing 200,000 of them took a second while calls waited).
    async fn credential_changes_since(&self, seq: i64, most: usize) -> Result<CredentialChanges>;
}

#[async_trait]
pub trait SessionStore {
    /// Takes `count` session numbers that no session has had nor will be given again; a new
    /// session is written with one of them (see [`HistoryStore::append_history`]).
    async fn reserve_session_ids(&self, count: u32) -> Result<Vec<SessionId>>;
    async fn session_by_id(&self, id: SessionId) -> Result<Option<SessionRecord>>;
    async fn sessions(
        &self,
        id: ApiUserId,
        active_at: Option<OffsetDateTime>,
    ) -> Result<Vec<SessionRecord>>;
    /// Ends one session of the user, or all of them; returns how many were open.
    async fn revoke_sessions(
        &self,
        id: ApiUserId,
        only: Option<SessionId>,
        now: OffsetDateTime,
        audit: Option<&AuditEntry>,
    ) -> Result<u64>;

    /// Sessions usable at `now`, of every user: not revoked, expired or idle past their
    /// timeout, made with a key still live (the same rule as `sessions` with `active_at`).
    async fn count_active_sessions(&self, now: OffsetDateTime) -> Result<u64>;

    async fn record_usage(&self, usage: &Usage) -> Result<()>;

    /// Deletes what can never be used again: dead sessions, old idempotency records and
    /// old entries of the change log.
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<()>;
}

/// What the history's group commit writes its batches with, from a thread of its own. Its
/// methods block: call them from that thread (or `spawn_blocking`), never from a task.
pub trait HistoryWriter: Send {
    /// Writes `rows` and `sessions` in one transaction: see [`HistoryStore::append_history`].
    fn append(&mut self, rows: &[HistoryEntry], sessions: &[NewSession]) -> Result<Vec<LeftOut>>;
    /// The calls of the batch just committed are answered: work that no call should wait for
    /// (SQLite's checkpoints) may run now, before the next batch.
    fn answered(&mut self) {}
    /// No rows are waiting: see [`HistoryStore::history_idle`].
    fn idle(&mut self) {}
}

#[async_trait]
pub trait HistoryStore {
    /// A writer of the store's own for the history's batches, where the store has one that
    /// writes from the caller's thread (SQLite's file: the writer's thread is SQLite's thread,
    /// with no hand-over to another per batch). Otherwise the batches go through
    /// `append_history`. Called within the runtime, which the writer uses to wait for its turn
    /// to write (SQLite's writer takes the process's turn while its batches follow each other).
    fn history_writer(&self) -> Result<Option<Box<dyn HistoryWriter>>> {
        Ok(None)
    }
    async fn insert_history(&self, rows: &[HistoryEntry]) -> Result<()>;
    /// `insert_history` for the group-commit writer, whose batches follow each other, with
    /// the sessions its logins made, in the same transaction: a login's session and its
    /// history row are committed together. The store may keep what it needs for the next
    /// batch (SQLite keeps its write connection for a moment) until
    /// [`HistoryStore::history_idle`].
    /// Returns the sessions left out, and why: one whose user was disabled or deleted
    /// meanwhile, whose key is no longer the user's, or whose number is taken is left out
    /// rather than failing the batch's rows, and its login's row says so (see [`LeftOut`]).
    async fn append_history(
        &self,
        rows: &[HistoryEntry],
        sessions: &[NewSession],
    ) -> Result<Vec<LeftOut>>;
    /// No rows are waiting, or the writer is gone: let go of whatever `append_history` kept.
    /// Synchronous, so the writer can call it as it unwinds.
    fn history_idle(&self) {}
    async fn history(&self, query: &HistoryQuery) -> Result<Vec<HistoryRecord>>;
    /// Deletes rows older than `older_than`, in slices; `progress` learns each slice's count.
    async fn prune_history(
        &self,
        older_than: OffsetDateTime,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<u64>;
    /// Calls per hour of one user since `since`, oldest first (hours without calls omitted).
    async fn usage_hourly(&self, id: ApiUserId, since: OffsetDateTime) -> Result<Vec<UsageHour>>;
    /// Addresses refused as not on the list since `since`, most refused first.
    async fn refused_ips(
        &self,
        id: ApiUserId,
        since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<RefusedIp>>;
}

#[async_trait]
pub trait AdminStore {
    async fn admin_count(&self) -> Result<i64>;
    async fn create_admin(
        &self,
        username: &str,
        password_hash: &str,
        role: Role,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<AdminUserId>;
    /// The admin and its password hash.
    async fn admin_credentials(&self, username: &str) -> Result<Option<(AdminUser, String)>>;
    async fn set_admin_password(
        &self,
        id: AdminUserId,
        password_hash: &str,
        audit: &AuditEntry,
    ) -> Result<()>;
    async fn list_admins(&self) -> Result<Vec<AdminUser>>;
    async fn update_admin(
        &self,
        id: AdminUserId,
        role: Option<Role>,
        status: Option<Status>,
        audit: &AuditEntry,
    ) -> Result<()>;
    async fn create_admin_session(&self, session: &NewAdminSession) -> Result<i64>;
    /// The open session with this token, and its admin (enabled or not).
    async fn admin_session(
        &self,
        hash: &SecretHash,
        now: OffsetDateTime,
    ) -> Result<Option<AdminSession>>;
    async fn touch_admin_session(&self, id: i64, now: OffsetDateTime) -> Result<()>;
    async fn revoke_admin_session(&self, id: i64, now: OffsetDateTime) -> Result<()>;
    async fn append_audit(&self, entry: &AuditEntry) -> Result<()>;
    async fn audit_log(&self, before_id: Option<i64>, limit: u32) -> Result<Vec<AuditRecord>>;
}

/// The result of claiming an idempotency key.
#[derive(Debug, Clone)]
pub enum IdempotencyClaim {
    /// First use, a key past its day, or a claim abandoned before any change: run the request
    /// within `IdempotentRun::scope`, then `complete_idempotency`.
    Claimed,
    /// The same request already ran: send this answer again.
    Replay(StoredResponse),
    /// The first request with this key is still running, or was cut off before any change and
    /// may be taken over once its claim, made at `claimed_at`, is abandoned.
    InProgress { claimed_at: OffsetDateTime },
    /// The first request's change committed, but its answer was never stored (the process
    /// stopped in between, or the answer could not be read back): it is never run again.
    /// `location` names what it made, when it made one thing (`claims::Created`).
    Applied { location: Option<String> },
    /// The key was used with a different request.
    Mismatch,
}

#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub location: Option<String>,
    pub body: Vec<u8>,
}

#[async_trait]
pub trait ProductStore {
    async fn products(&self, filter: &ProductFilter, page: PageRequest) -> Result<Vec<Product>>;
    async fn product(&self, id: ProductId) -> Result<Option<Product>>;
    async fn create_product(&self, product: &NewProduct, now: OffsetDateTime) -> Result<Product>;
    async fn update_product(
        &self,
        id: ProductId,
        patch: &ProductPatch,
        now: OffsetDateTime,
    ) -> Result<Product>;
    /// Sets the quantity of every listed SKU, or of none.
    async fn set_stock(&self, items: &[StockItem], now: OffsetDateTime) -> Result<Vec<Product>>;
}

#[async_trait]
pub trait CustomerStore {
    async fn customers(&self, filter: &CustomerFilter, page: PageRequest) -> Result<Vec<Customer>>;
    async fn customer(&self, id: CustomerId) -> Result<Option<Customer>>;
    async fn create_customer(
        &self,
        customer: &CustomerInput,
        now: OffsetDateTime,
    ) -> Result<Customer>;
    async fn update_customer(
        &self,
        id: CustomerId,
        patch: &CustomerPatch,
        now: OffsetDateTime,
    ) -> Result<Customer>;
}

#[async_trait]
pub trait OrderStore {
    async fn order_statuses(&self) -> Result<Vec<OrderStatus>>;
    async fn orders(&self, filter: &OrderFilter, page: PageRequest) -> Result<Vec<Order>>;
    async fn order(&self, id: OrderId) -> Result<Option<Order>>;
    /// Creates the order and takes its stock in one transaction; short stock is a conflict.
    async fn create_order(&self, order: &NewOrder, now: OffsetDateTime) -> Result<Order>;
    async fn add_order_history(
        &self,
        id: OrderId,
        entry: &NewOrderHistory,
        now: OffsetDateTime,
    ) -> Result<Order>;
}

/// Remembered answers of POSTs sent with an `Idempotency-Key`.
#[async_trait]
pub trait IdempotencyStore {
    /// Claims `run`'s key for it, unless the key is live: a claim made before
    /// `abandoned_before` that no change marked applied counts as dead and is taken over.
    async fn claim_idempotency(
        &self,
        run: &IdempotentRun,
        fingerprint: &[u8],
        now: OffsetDateTime,
        abandoned_before: OffsetDateTime,
    ) -> Result<IdempotencyClaim>;
    /// Stores the answer of `run`, if its claim is still its own.
    async fn complete_idempotency(
        &self,
        run: &IdempotentRun,
        response: &StoredResponse,
    ) -> Result<()>;
    /// Lets the key be used again after a refusal, if `run` still holds it and changed nothing.
    async fn release_idempotency(&self, run: &IdempotentRun) -> Result<()>;
}

/// Calls taken from an API user's rate-limit bucket shared by the servers on one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateGrant {
    /// Calls granted, at most as many as asked for; 0 when the bucket is empty.
    pub granted: u32,
    /// Calls left in the bucket after this grant.
    pub remaining: u32,
    /// When nothing was granted: how long until the next call is free.
    pub retry_after: std::time::Duration,
}

/// Rate limits counted in the database, for servers that share it.
#[async_trait]
pub trait RateLimitStore {
    /// Takes up to `wanted` calls from the user's bucket, which holds `per_minute` calls and
    /// refills one every `60 / per_minute` seconds. `None` where every server counts in its own
    /// memory (SQLite, whose file one server owns).
    async fn take_rate_tokens(
        &self,
        user: ApiUserId,
        per_minute: u32,
        wanted: u32,
    ) -> Result<Option<RateGrant>>;

    /// Whether `take_rate_tokens` counts for the cluster.
    fn shares_rate_limits(&self) -> bool;
}

/// Webhook endpoints and the deliveries of events to them.
#[async_trait]
pub trait WebhookStore {
    async fn create_webhook(
        &self,
        webhook: &NewWebhook,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<WebhookId>;
    /// Every endpoint, oldest first, with its count of pending and dead deliveries.
    async fn webhooks(&self) -> Result<Vec<Webhook>>;
    async fn webhook(&self, id: WebhookId) -> Result<Option<Webhook>>;
    /// Where and how to send to an endpoint (its URL and sealed secret).
    async fn webhook_target(&self, id: WebhookId) -> Result<Option<WebhookTarget>>;
    async fn set_webhook_status(
        &self,
        id: WebhookId,
        status: Status,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<()>;
    /// Gives the endpoint a new signing secret; the one it replaces keeps signing until
    /// `roll.previous_until`, or stops at once (and so does one kept from an earlier roll).
    async fn roll_webhook_secret(
        &self,
        id: WebhookId,
        roll: &SecretRoll,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<()>;
    /// Deletes the endpoint and its deliveries.
    async fn delete_webhook(&self, id: WebhookId, audit: &AuditEntry) -> Result<()>;
    /// Stores one delivery of `event` per recipient, in one transaction. With an `alert`, the
    /// deliveries are stored only if the alert is claimed now (it was not raised within its
    /// quiet period, by this node or another); an event nobody receives claims nothing.
    /// Returns how many deliveries were stored.
    async fn enqueue_event(
        &self,
        event: &NewEvent,
        to: Recipients,
        alert: Option<&AlertClaim>,
    ) -> Result<u64>;
    /// Takes up to `limit` pending deliveries that are due at `now`, of enabled endpoints,
    /// and leases them until `lease_until`: no other node takes them meanwhile.
    async fn claim_deliveries(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<DueDelivery>>;
    /// Records an attempt and releases the delivery's lease.
    async fn finish_delivery(
        &self,
        id: DeliveryId,
        result: &AttemptResult,
        at: OffsetDateTime,
    ) -> Result<()>;
    /// Deliveries, newest first.
    async fn deliveries(&self, query: &DeliveryQuery) -> Result<Vec<DeliveryRecord>>;
    async fn delivery(&self, id: DeliveryId) -> Result<Option<DeliveryRecord>>;
    /// Sends a delivery again at `now`, whatever its state.
    async fn retry_delivery(
        &self,
        id: DeliveryId,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<()>;
    /// The current keys of enabled users that expire after `now` and no later than `until`.
    async fn keys_expiring(
        &self,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Vec<ExpiringKey>>;
    /// Deletes finished (delivered or dead) deliveries and raised alerts older than
    /// `older_than`, and the replaced signing secrets that stopped by `now`; returns how many
    /// deliveries went.
    async fn prune_webhooks(&self, now: OffsetDateTime, older_than: OffsetDateTime) -> Result<u64>;
}
