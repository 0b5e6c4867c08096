-- name: migration_lock
SELECT pg_advisory_lock($1);

-- name: migration_lock_timeout
-- For the rest of the migrating session: a table lock not had within $1 fails the
-- migration instead of queueing (every order write would queue behind it).
SELECT set_config('lock_timeout', $1, false);

-- name: migration_unlock
SELECT pg_advisory_unlock($1);

-- name: create_schema_migrations
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- name: applied_migrations
SELECT version FROM schema_migrations ORDER BY version;

-- name: record_migration
INSERT INTO schema_migrations (version, name) VALUES ($1, $2);
