-- Migrates a version 3 database to version 4 (PostgreSQL), in the transaction that opens it,
-- after the schema: a visit keeps the disease it treats (病种编码), for rules that select by
-- disease group. Visits opened before keep NULL (no disease named). Idempotent: run on every
-- open.
ALTER TABLE visits ADD COLUMN IF NOT EXISTS disease TEXT;
UPDATE schema_version SET version = 4 WHERE version < 4;
