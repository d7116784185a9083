-- The signing secret an endpoint had before its secret was rolled: deliveries are signed with
-- it too, beside the new one, until `expires_at`, so a receiver switches to the new secret
-- without refusing a delivery meanwhile. One per endpoint: a second roll replaces it. A new
-- table, so binaries from before it run on the file unchanged (signing with the new secret
-- only).
CREATE TABLE webhook_previous_secrets (
    webhook_id    INTEGER PRIMARY KEY REFERENCES webhooks (id) ON DELETE CASCADE,
    sealed_secret BLOB    NOT NULL,
    secret_hint   TEXT    NOT NULL,
    expires_at    INTEGER NOT NULL
);
