-- Webhooks: endpoints, the deliveries of events to them, and the alerts already raised.
-- Times are INTEGER microseconds since the Unix epoch, as elsewhere.

-- An endpoint. Its signing secret is sealed (AES-256-GCM) with the webhook key, which is not
-- in the database: signing needs the secret back, so it cannot be a digest.
CREATE TABLE webhooks (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    url           TEXT    NOT NULL,
    description   TEXT    NOT NULL DEFAULT '',
    events        TEXT    NOT NULL,
    sealed_secret BLOB    NOT NULL,
    secret_hint   TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('enabled', 'disabled')),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- One event on its way to one endpoint. The payload is the exact body sent, so a retry sends
-- the same bytes. `claimed_until` is the lease of the node sending it now.
CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id      INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER,
    claimed_until   INTEGER,
    last_attempt_at INTEGER,
    last_status     INTEGER,
    last_error      TEXT,
    delivered_at    INTEGER
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at);

-- Alerts already raised, so each fires once (an expiring key) or once per quiet period (a
-- burst of refusals, an address not on the list), whichever node noticed it.
CREATE TABLE webhook_alerts (
    alert_key  TEXT    PRIMARY KEY,
    raised_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- A leaked key's sessions are ended by key (PostgreSQL has had this index from the start).
CREATE INDEX api_sessions_key ON api_sessions (api_key_id);
