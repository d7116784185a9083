-- Every change-log entry is also announced on the channel `keyward_credentials`, with its
-- sequence number as payload. PostgreSQL delivers notifications when the transaction commits,
-- in commit order, to every session that listens: each server keeps one connection listening
-- and syncs its credential cache at once, so a change made on one node (or by the command line)
-- holds on every node within milliseconds. The change log stays the source of truth: a server
-- whose listening connection drops reads the log on a timer until it is back, then from the
-- last number it saw.

CREATE OR REPLACE FUNCTION keyward_api_user_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed BIGINT;
BEGIN
    PERFORM keyward_lock_credentials();
    IF TG_OP = 'DELETE' THEN
        INSERT INTO credential_changes (api_user_id) VALUES (OLD.id) RETURNING seq INTO changed;
    ELSE
        INSERT INTO credential_changes (api_user_id) VALUES (NEW.id) RETURNING seq INTO changed;
    END IF;
    PERFORM pg_notify('keyward_credentials', changed::text);
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION keyward_credential_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed BIGINT;
BEGIN
    PERFORM keyward_lock_credentials();
    IF TG_OP = 'DELETE' THEN
        INSERT INTO credential_changes (api_user_id) VALUES (OLD.api_user_id) RETURNING seq INTO changed;
    ELSE
        INSERT INTO credential_changes (api_user_id) VALUES (NEW.api_user_id) RETURNING seq INTO changed;
    END IF;
    PERFORM pg_notify('keyward_credentials', changed::text);
    RETURN NULL;
END;
$$;
