-- The signing secret an endpoint had before its secret was rolled: deliveries are signed with
-- it too, beside the new one, until `expires_at`, so a receiver switches to the new secret
-- without refusing a delivery meanwhile. One per endpoint: a second roll replaces it. A new
-- table, so nodes of the previous version run on it unchanged (signing with the new secret
-- only). Like the SQLite schema of the same number.
CREATE TABLE webhook_previous_secrets (
    webhook_id    BIGINT  PRIMARY KEY REFERENCES webhooks (id) ON DELETE CASCADE,
    sealed_secret BYTEA   NOT NULL,
    secret_hint   TEXT    NOT NULL,
    expires_at    BIGINT  NOT NULL
);
