-- The sessions' index on `expires_at` served no query: the hourly purge of dead sessions
-- scans the table whatever its indexes (its conditions are joined by OR, one of them a sum
-- of two columns), and the active-sessions count reads nearly every row either way (a
-- million sessions: 0.13 s by the table, 0.15 s through the index). Each login wrote a page
-- of it. Servers of the previous version work on the schema without it.
DROP INDEX IF EXISTS api_sessions_expiry;
