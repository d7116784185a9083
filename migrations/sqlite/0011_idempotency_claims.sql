-- The claim of an idempotent request: the number of the run that holds the key, and whether a
-- change of that run committed (marked in the change's own transaction). A claim never marked
-- was cut off before any change, and a retry takes it over once it is abandoned. A claim without
-- a number was made by a binary from before them, which never marks its changes: such a claim
-- left unanswered is never run again, as before. New columns with defaults, so binaries from
-- before them still run on the file.
ALTER TABLE idempotency_keys ADD COLUMN claim INTEGER;
ALTER TABLE idempotency_keys ADD COLUMN applied INTEGER NOT NULL DEFAULT 0;
