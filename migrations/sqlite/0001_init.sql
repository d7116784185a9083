-- Keyward schema for SQLite. Times are INTEGER microseconds since the Unix epoch (UTC).
-- Money is INTEGER cents. Secrets are stored only as SHA-256 digests (BLOB).

CREATE TABLE api_users (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    username              TEXT    NOT NULL UNIQUE,
    description           TEXT    NOT NULL DEFAULT '',
    environment           TEXT    NOT NULL CHECK (environment IN ('production', 'staging', 'development')),
    status                TEXT    NOT NULL CHECK (status IN ('enabled', 'disabled')),
    scopes                TEXT    NOT NULL DEFAULT '',
    rate_limit_per_minute INTEGER NOT NULL CHECK (rate_limit_per_minute > 0),
    management            INTEGER NOT NULL DEFAULT 0,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    last_used_at          INTEGER,
    last_used_ip          TEXT
);

CREATE TABLE api_keys (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    api_user_id    INTEGER NOT NULL REFERENCES api_users (id) ON DELETE CASCADE,
    key_hash       BLOB    NOT NULL UNIQUE,
    hint           TEXT    NOT NULL,
    imported       INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER,
    revoked_at     INTEGER,
    revoked_reason TEXT
);
CREATE INDEX api_keys_user ON api_keys (api_user_id);

CREATE TABLE api_ip_rules (
    api_user_id INTEGER NOT NULL REFERENCES api_users (id) ON DELETE CASCADE,
    rule        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (api_user_id, rule)
) WITHOUT ROWID;

CREATE TABLE api_sessions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    api_user_id    INTEGER NOT NULL REFERENCES api_users (id) ON DELETE CASCADE,
    api_key_id     INTEGER NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    token_hash     BLOB    NOT NULL UNIQUE,
    ip             TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    last_seen_at   INTEGER NOT NULL,
    idle_timeout_s INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    revoked_at     INTEGER
);
CREATE INDEX api_sessions_user ON api_sessions (api_user_id);
CREATE INDEX api_sessions_expiry ON api_sessions (expires_at);

-- The change log of credentials: every server keeps credentials in memory and drops the
-- entries of the users listed here. Triggers fill it, so no writer can forget to.
CREATE TABLE credential_changes (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    api_user_id INTEGER NOT NULL,
    changed_at  INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000000 AS INTEGER))
);

CREATE TRIGGER api_users_changed AFTER UPDATE OF username, status, scopes, rate_limit_per_minute, management
ON api_users BEGIN
    INSERT INTO credential_changes (api_user_id) VALUES (NEW.id);
END;
CREATE TRIGGER api_users_deleted AFTER DELETE ON api_users BEGIN
    INSERT INTO credential_changes (api_user_id) VALUES (OLD.id);
END;
CREATE TRIGGER api_keys_inserted AFTER INSERT ON api_keys BEGIN
    INSERT INTO credential_changes (api_user_id) VALUES (NEW.api_user_id);
END;
CREATE TRIGGER api_keys_changed AFTER UPDATE OF expires_at, revoked_at ON api_keys BEGIN
    INSERT INTO credential_changes (api_user_id) VALUES (NEW.api_user_id);
END;
CREATE TRIGGER api_ip_rules_inserted AFTER INSERT ON api_ip_rules BEGIN
    INSERT INTO credential_changes (api_user_id) VALUES (NEW.api_user_id);
END;
CREATE TRIGGER api_ip_rules_deleted AFTER DELETE ON api_ip_rules BEGIN
    INSERT INTO credential_changes (api_user_id) VALUES (OLD.api_user_id);
END;
CREATE TRIGGER api_sessions_revoked AFTER UPDATE OF revoked_at, expires_at ON api_sessions BEGIN
    INSERT INTO credential_changes (api_user_id) VALUES (NEW.api_user_id);
END;

CREATE TABLE api_history (
    id            INTEGER PRIMARY KEY,
    api_user_id   INTEGER,
    username      TEXT,
    key_hint      TEXT,
    session_id    INTEGER,
    call          TEXT    NOT NULL,
    ip            TEXT    NOT NULL,
    status        INTEGER NOT NULL,
    outcome       TEXT    NOT NULL,
    date_added    INTEGER NOT NULL,
    date_modified INTEGER NOT NULL,
    request_id    TEXT    NOT NULL
);
CREATE INDEX api_history_user ON api_history (api_user_id, id);
CREATE INDEX api_history_date ON api_history (date_added);

CREATE TABLE admin_users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('administrator', 'api_manager', 'viewer')),
    status        TEXT    NOT NULL CHECK (status IN ('enabled', 'disabled')),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE admin_audit (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       INTEGER NOT NULL,
    actor    TEXT    NOT NULL,
    actor_ip TEXT,
    action   TEXT    NOT NULL,
    target   TEXT    NOT NULL,
    details  TEXT    NOT NULL DEFAULT '{}'
);

CREATE TABLE products (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    sku         TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    price       INTEGER NOT NULL CHECK (price >= 0),
    quantity    INTEGER NOT NULL CHECK (quantity >= 0),
    status      TEXT    NOT NULL CHECK (status IN ('enabled', 'disabled')),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX products_updated ON products (updated_at);

CREATE TABLE customers (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL,
    email      TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    phone      TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- OpenCart's ids, so OpenCart clients' order_status_id values mean the same here.
CREATE TABLE order_statuses (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    holds_stock INTEGER NOT NULL
);
INSERT INTO order_statuses (id, name, holds_stock) VALUES
    (1, 'Pending', 1), (2, 'Processing', 1), (3, 'Shipped', 1), (5, 'Complete', 1),
    (7, 'Canceled', 0), (8, 'Denied', 0), (9, 'Canceled Reversal', 1), (10, 'Failed', 0),
    (11, 'Refunded', 0), (12, 'Reversed', 0), (13, 'Chargeback', 0), (14, 'Expired', 0),
    (15, 'Processed', 1), (16, 'Voided', 0);

CREATE TABLE orders (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id     INTEGER NOT NULL REFERENCES customers (id),
    currency        TEXT    NOT NULL,
    total           INTEGER NOT NULL,
    order_status_id INTEGER NOT NULL REFERENCES order_statuses (id),
    comment         TEXT    NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX orders_customer ON orders (customer_id, id);
CREATE INDEX orders_status ON orders (order_status_id, id);
CREATE INDEX orders_updated ON orders (updated_at);

CREATE TABLE order_lines (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id   INTEGER NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    product_id INTEGER NOT NULL REFERENCES products (id),
    sku        TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    price      INTEGER NOT NULL,
    quantity   INTEGER NOT NULL CHECK (quantity > 0),
    total      INTEGER NOT NULL
);
CREATE INDEX order_lines_order ON order_lines (order_id);

CREATE TABLE order_history (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id        INTEGER NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    order_status_id INTEGER NOT NULL REFERENCES order_statuses (id),
    comment         TEXT    NOT NULL DEFAULT '',
    notify          INTEGER NOT NULL DEFAULT 0,
    date_added      INTEGER NOT NULL
);
CREATE INDEX order_history_order ON order_history (order_id, id);

CREATE TABLE idempotency_keys (
    api_user_id  INTEGER NOT NULL,
    idem_key     TEXT    NOT NULL,
    fingerprint  BLOB    NOT NULL,
    status       INTEGER,
    content_type TEXT,
    location     TEXT,
    body         BLOB,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (api_user_id, idem_key)
) WITHOUT ROWID;
CREATE INDEX idempotency_created ON idempotency_keys (created_at);
