-- Rate limits shared by every server on this database. Each API user has one bucket (GCRA:
-- `tat`, its theoretical arrival time); servers take calls from it in small leases and count
-- them down in memory, so a call rarely waits for the database (see src/auth/limits.rs).
-- UNLOGGED: buckets are worth nothing after a crash, and writing them skips the WAL.
CREATE UNLOGGED TABLE rate_buckets (
    api_user_id      BIGINT PRIMARY KEY,
    limit_per_minute BIGINT NOT NULL,
    tat              BIGINT NOT NULL
);

-- Takes up to `wanted` calls from the user's bucket, by the database's clock, so the servers'
-- clocks do not matter. A bucket holds `per_minute` calls and refills one every
-- 60 / per_minute seconds; a changed limit starts a full bucket, as on a single server.
-- `remaining` is what the bucket holds after the grant; `wait_us`, when nothing was granted,
-- the time until the next call is free.
CREATE FUNCTION keyward_take_rate_tokens(
    user_id BIGINT, per_minute BIGINT, wanted BIGINT,
    OUT granted BIGINT, OUT remaining BIGINT, OUT wait_us BIGINT
) LANGUAGE plpgsql AS $$
DECLARE
    now_us      BIGINT := (extract(epoch FROM clock_timestamp()) * 1000000)::bigint;
    interval_us DOUBLE PRECISION := 60000000.0 / per_minute;
    bucket      rate_buckets;
    base        DOUBLE PRECISION;
    available   BIGINT;
BEGIN
    INSERT INTO rate_buckets (api_user_id, limit_per_minute, tat)
    VALUES (user_id, per_minute, now_us)
    ON CONFLICT (api_user_id) DO NOTHING;
    SELECT * INTO bucket FROM rate_buckets WHERE api_user_id = user_id FOR UPDATE;
    IF bucket.limit_per_minute <> per_minute THEN
        base := now_us;
    ELSE
        base := greatest(bucket.tat, now_us);
    END IF;
    available := greatest(floor((now_us + 60000000 - base) / interval_us), 0)::bigint;
    granted := least(wanted, available);
    remaining := available - granted;
    wait_us := CASE WHEN granted > 0 THEN 0
                    ELSE greatest(ceil(base + interval_us - 60000000 - now_us), 1)::bigint END;
    UPDATE rate_buckets
    SET limit_per_minute = per_minute, tat = round(base + granted * interval_us)::bigint
    WHERE api_user_id = user_id;
END;
$$;
