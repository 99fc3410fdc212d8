-- Migrates a version 2 database to version 3 (SQLite), in the transaction that opens it, after
-- the schema: visitor settlements keep the person's scheme (险种), so that an institution's
-- reconciliation over the national interface (3201/3202) counts them by scheme. Rows recorded
-- before keep NULL. Run only when the column is missing (SQLite has no ADD COLUMN IF NOT
-- EXISTS); the version is raised either way.
ALTER TABLE visitor_settlements ADD COLUMN scheme TEXT;
