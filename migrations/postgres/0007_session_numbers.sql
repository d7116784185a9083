-- Session tokens now carry their session's number (see src/domain/token.rs): a session is found
-- by its primary key and its secret's digest checked. Tokens issued before cannot be read any
-- more: their sessions end here (the trigger tells every node's cache).
-- The unique index over token digests stays while nodes of the previous version may run: they
-- still find their sessions through it. A later release drops it.
UPDATE api_sessions SET revoked_at = (extract(epoch FROM clock_timestamp()) * 1000000)::BIGINT
WHERE revoked_at IS NULL;
