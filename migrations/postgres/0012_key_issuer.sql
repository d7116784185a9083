-- The key that issued a key, when a management key rolled itself (none when an administrator,
-- the command line or a creation made it): a key replaced by its own roll may roll again (its
-- answer was lost, say), one an administrator replaced may not. Nullable, so binaries from
-- before it keep writing keys.
ALTER TABLE api_keys ADD COLUMN issued_by_key_id BIGINT;
