-- Migrates a version 4 database to version 5 (PostgreSQL), in the transaction that opens it,
-- after the schema: an audit row names the interface the request came by. Rows written before
-- keep the empty text (channel not known). Idempotent: run on every open.
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS channel TEXT NOT NULL DEFAULT '';
UPDATE schema_version SET version = 5 WHERE version < 5;
