-- Migrates a version 2 database to version 3 (PostgreSQL), in the transaction that opens it,
-- after the schema: visitor settlements keep the person's scheme (险种), so that an
-- institution's reconciliation over the national interface (3201/3202) counts them by scheme.
-- Rows recorded before keep NULL. Idempotent: run on every open.
ALTER TABLE visitor_settlements ADD COLUMN IF NOT EXISTS scheme TEXT;
UPDATE schema_version SET version = 3 WHERE version < 3;
