-- The admin console: its sessions, and aggregates of the API history kept by triggers, so the
-- console's usage chart, 24-hour counts and refused-address suggestions stay fast at millions
-- of history rows.

CREATE TABLE admin_sessions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    admin_user_id INTEGER NOT NULL REFERENCES admin_users (id) ON DELETE CASCADE,
    token_hash    BLOB    NOT NULL UNIQUE,
    ip            TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    revoked_at    INTEGER
);

-- Calls per API user and hour (hour = microseconds since the epoch, floored to the hour).
CREATE TABLE api_usage_hourly (
    api_user_id INTEGER NOT NULL,
    hour        INTEGER NOT NULL,
    ok          INTEGER NOT NULL DEFAULT 0,
    refused     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (api_user_id, hour)
) WITHOUT ROWID;

-- Addresses refused because they are not on the user's list.
CREATE TABLE api_refused_ips (
    api_user_id INTEGER NOT NULL,
    ip          TEXT    NOT NULL,
    calls       INTEGER NOT NULL,
    first_at    INTEGER NOT NULL,
    last_at     INTEGER NOT NULL,
    PRIMARY KEY (api_user_id, ip)
) WITHOUT ROWID;

CREATE TRIGGER api_history_usage AFTER INSERT ON api_history WHEN NEW.api_user_id IS NOT NULL BEGIN
    INSERT INTO api_usage_hourly (api_user_id, hour, ok, refused)
    VALUES (NEW.api_user_id, NEW.date_added - NEW.date_added % 3600000000,
            NEW.outcome = 'ok', NEW.outcome <> 'ok')
    ON CONFLICT (api_user_id, hour) DO UPDATE
        SET ok = ok + (NEW.outcome = 'ok'), refused = refused + (NEW.outcome <> 'ok');
END;

CREATE TRIGGER api_history_refused_ip AFTER INSERT ON api_history
WHEN NEW.api_user_id IS NOT NULL AND NEW.outcome = 'ip_not_allowed' BEGIN
    INSERT INTO api_refused_ips (api_user_id, ip, calls, first_at, last_at)
    VALUES (NEW.api_user_id, NEW.ip, 1, NEW.date_added, NEW.date_added)
    ON CONFLICT (api_user_id, ip) DO UPDATE
        SET calls = calls + 1, last_at = max(last_at, NEW.date_added);
END;

-- History already written before this migration.
INSERT INTO api_usage_hourly (api_user_id, hour, ok, refused)
SELECT api_user_id, date_added - date_added % 3600000000, sum(outcome = 'ok'), sum(outcome <> 'ok')
FROM api_history WHERE api_user_id IS NOT NULL GROUP BY 1, 2;
INSERT INTO api_refused_ips (api_user_id, ip, calls, first_at, last_at)
SELECT api_user_id, ip, count(*), min(date_added), max(date_added)
FROM api_history WHERE api_user_id IS NOT NULL AND outcome = 'ip_not_allowed' GROUP BY 1, 2;
