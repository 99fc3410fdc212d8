-- Migrates a version 3 database to version 4 (SQLite), in the transaction that opens it, after
-- the schema: a visit keeps the disease it treats (病种编码), for rules that select by disease
-- group. Visits opened before keep NULL (no disease named). Run only when the column is missing
-- (SQLite has no ADD COLUMN IF NOT EXISTS); the version is raised either way.
ALTER TABLE visits ADD COLUMN disease TEXT;
