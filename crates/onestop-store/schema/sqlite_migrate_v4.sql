-- Migrates a version 4 database to version 5 (SQLite), in the transaction that opens it, after
-- the schema: an audit row names the interface the request came by. Rows written before keep
-- the empty text (channel not known). Run only when the column is missing (SQLite has no ADD
-- COLUMN IF NOT EXISTS); the version is raised either way.
ALTER TABLE audit_log ADD COLUMN channel TEXT NOT NULL DEFAULT '';
