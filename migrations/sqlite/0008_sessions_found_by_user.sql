-- A session's key lost its foreign key and its index. Keys are deleted only with their user,
-- whose cascade already takes the sessions; the login checks the key as it writes the session;
-- and each login wrote a page of that index. The user's index now holds the key as well, so it
-- finds the sessions of a user and those of one of its keys alike.
-- SQLite drops a foreign key only by copying the table.
CREATE TABLE api_sessions_copy (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    api_user_id    INTEGER NOT NULL REFERENCES api_users (id) ON DELETE CASCADE,
    api_key_id     INTEGER NOT NULL,
    token_hash     BLOB    NOT NULL,
    ip             TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    last_seen_at   INTEGER NOT NULL,
    idle_timeout_s INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    revoked_at     INTEGER
);
INSERT INTO api_sessions_copy (id, api_user_id, api_key_id, token_hash, ip, created_at,
                               last_seen_at, idle_timeout_s, expires_at, revoked_at)
SELECT id, api_user_id, api_key_id, token_hash, ip, created_at, last_seen_at, idle_timeout_s,
       expires_at, revoked_at
FROM api_sessions;
-- Numbers already given out or reserved are never given again.
INSERT INTO sqlite_sequence (name, seq)
SELECT 'api_sessions_copy', seq FROM sqlite_sequence WHERE name = 'api_sessions'
  AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'api_sessions_copy');
UPDATE sqlite_sequence
SET seq = max(coalesce(seq, 0),
              coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'api_sessions'), 0))
WHERE name = 'api_sessions_copy';
DROP TABLE api_sessions;
ALTER TABLE api_sessions_copy RENAME TO api_sessions;

CREATE INDEX api_sessions_user_key ON api_sessions (api_user_id, api_key_id);
CREATE INDEX api_sessions_expiry ON api_sessions (expires_at);
CREATE TRIGGER api_sessions_revoked AFTER UPDATE OF revoked_at, expires_at ON api_sessions BEGIN
    INSERT INTO credential_changes (api_user_id) VALUES (NEW.api_user_id);
END;
