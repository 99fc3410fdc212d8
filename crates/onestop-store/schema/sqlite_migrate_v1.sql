-- Migrates a version 1 database to version 2 (SQLite), in the transaction that opens it.
-- Version 1 kept the journal in two tables, `ledger` and `accumulator_postings`; version 2
-- keeps each settlement's entry inside its row and reads the same rows through views. Every
-- posting and counter moves, in order; then the tables go and the views take their names.

ALTER TABLE settlements ADD COLUMN postings TEXT NOT NULL DEFAULT '[]';
ALTER TABLE settlements ADD COLUMN counters TEXT NOT NULL DEFAULT '[]';
UPDATE settlements SET
    postings = COALESCE((SELECT json_group_array(json_array(l.account, l.amount)
        ORDER BY l.posting_no) FROM ledger l WHERE l.region = settlements.region
        AND l.person_id = settlements.person_id AND l.settlement_id = settlements.settlement_id),
        '[]'),
    counters = COALESCE((SELECT json_group_array(json_array(c.tier, c.pool, c.counter, c.delta)
        ORDER BY c.tier, c.pool, c.counter) FROM accumulator_postings c
        WHERE c.region = settlements.region AND c.person_id = settlements.person_id
        AND c.settlement_id = settlements.settlement_id), '[]');
DROP TABLE ledger;
DROP TABLE accumulator_postings;
DROP INDEX IF EXISTS settlements_by_institution_day;
DROP INDEX IF EXISTS settlements_for_clearing;
UPDATE schema_version SET version = 2;
