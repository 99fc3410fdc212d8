-- Migrates a version 1 database to version 2 (PostgreSQL), in the transaction that opens it.
-- Version 1 kept the journal in two tables, `ledger` and `accumulator_postings`; version 2
-- keeps each settlement's entry inside its row and reads the same rows through views. Every
-- posting and counter moves, in order; then the tables go and the views take their names.

ALTER TABLE settlements ADD COLUMN postings TEXT NOT NULL DEFAULT '[]',
    ADD COLUMN counters TEXT NOT NULL DEFAULT '[]';
UPDATE settlements s SET
    postings = COALESCE((SELECT json_agg(json_build_array(l.account, l.amount)
        ORDER BY l.posting_no)::TEXT FROM ledger l WHERE l.region = s.region
        AND l.person_id = s.person_id AND l.settlement_id = s.settlement_id), '[]'),
    counters = COALESCE((SELECT json_agg(json_build_array(c.tier, c.pool, c.counter, c.delta)
        ORDER BY c.tier, c.pool, c.counter)::TEXT FROM accumulator_postings c
        WHERE c.region = s.region AND c.person_id = s.person_id
        AND c.settlement_id = s.settlement_id), '[]');
DROP TABLE ledger;
DROP TABLE accumulator_postings;
DROP INDEX IF EXISTS settlements_by_institution_day;
DROP INDEX IF EXISTS settlements_for_clearing;
UPDATE schema_version SET version = 2;
