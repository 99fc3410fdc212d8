-- Distributes the onestop schema on Citus (distributed PostgreSQL). Run once, after
-- postgres.sql, only where the citus extension is installed (`onestop serve` does so when it
-- finds the extension; the test suite runs on plain PostgreSQL and never executes this file).
--
-- Every per-person table is distributed by person_id and colocated with `persons`, so all the
-- rows one settlement reads and writes (person, enrolment, assistance, visit, lines,
-- settlement with its journal entry, accumulators, idempotency record, audit) live on
-- one shard and the settlement commits as a single-shard transaction. Every primary and unique
-- key includes person_id, as Citus requires. Person ids are unique across regions within one
-- deployment of the national platform, so distributing by person_id alone spreads regions'
-- people evenly while keeping each person's rows together. The national interface's message log
-- and sessions are distributed by institution: a settlement made through that interface also
-- writes its message to the institution's shard (a two-shard transaction); through /v1 it stays
-- on the person's shard alone. The journal views (`ledger`, `accumulator_postings`) read the
-- settlements' rows; Citus propagates views over distributed tables.

SELECT create_reference_table('institutions');
SELECT create_reference_table('assistance_imports');
SELECT create_reference_table('nhsa_keys');
SELECT create_distributed_table('nhsa_messages', 'institution_id');
SELECT create_distributed_table('nhsa_sessions', 'institution_id', colocate_with => 'nhsa_messages');
SELECT create_distributed_table('persons', 'person_id');
SELECT create_distributed_table('enrolments', 'person_id', colocate_with => 'persons');
SELECT create_distributed_table('assistance', 'person_id', colocate_with => 'persons');
SELECT create_distributed_table('visits', 'person_id', colocate_with => 'persons');
SELECT create_distributed_table('fee_lines', 'person_id', colocate_with => 'persons');
SELECT create_distributed_table('settlements', 'person_id', colocate_with => 'persons');
SELECT create_distributed_table('accumulators', 'person_id', colocate_with => 'persons');
SELECT create_distributed_table('idempotency', 'person_id', colocate_with => 'persons');
SELECT create_distributed_table('audit_log', 'person_id', colocate_with => 'persons');
SELECT create_distributed_table('filings', 'person_id', colocate_with => 'persons');
SELECT create_distributed_table('account_credits', 'person_id', colocate_with => 'persons');
SELECT create_reference_table('prepayments');
SELECT create_reference_table('maintenance_windows');
SELECT create_distributed_table('visitor_settlements', 'settlement_id');
SELECT create_reference_table('pending_forwards');
