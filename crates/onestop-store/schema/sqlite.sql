-- onestop schema, version 3 (SQLite; the PostgreSQL schema is the same tables and keys).
--
-- Per-person tables are WITHOUT ROWID: a row lives in its primary key's B-tree, so an insert
-- dirties one page instead of two (the table's and the key's). A settlement writes to half a
-- dozen tables at random places (its row, the person, the visit, the totals, the idempotency
-- record, the day index); the pages it dirties are what the log writes and checkpoints.
--
-- Every table a settlement writes is keyed first by (region, person_id), the distribution key:
-- on Citus they are distributed by person_id and colocated, and one settlement is a single-shard
-- transaction (citus.sql). Money is BIGINT fen; dates are ISO text; booleans are 0/1 integers,
-- so that both stores read the same rows. The journal (the ledger and the accumulator postings,
-- inside the settlement rows) is append-only: nothing ever updates or deletes a settlement.

CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);

-- Reference data: small, read on every request, replicated to every node on Citus.
CREATE TABLE IF NOT EXISTS institutions (
    institution_id TEXT PRIMARY KEY,
    region TEXT NOT NULL,
    name TEXT NOT NULL,
    level TEXT,
    role TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS assistance_imports (
    import_id TEXT PRIMARY KEY,
    region TEXT NOT NULL,
    file_name TEXT NOT NULL,
    rows_count INTEGER NOT NULL,
    imported_by TEXT NOT NULL,
    imported_at TEXT NOT NULL
);

-- Per-person data: distribution key first in every key.
CREATE TABLE IF NOT EXISTS persons (
    region TEXT NOT NULL,
    person_id TEXT NOT NULL,
    name TEXT NOT NULL,
    id_number TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    gender TEXT NOT NULL,
    account_balance BIGINT NOT NULL,
    next_seq BIGINT NOT NULL,
    PRIMARY KEY (region, person_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS persons_by_id_number ON persons (region, id_number);

CREATE TABLE IF NOT EXISTS enrolments (
    region TEXT NOT NULL,
    person_id TEXT NOT NULL,
    year INTEGER NOT NULL,
    category TEXT NOT NULL,
    civil_servant INTEGER NOT NULL,
    enterprise_supplementary INTEGER NOT NULL,
    needy INTEGER NOT NULL,
    PRIMARY KEY (region, person_id, year)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS assistance (
    region TEXT NOT NULL,
    person_id TEXT NOT NULL,
    entry_id TEXT NOT NULL,
    category TEXT NOT NULL,
    effective_from TEXT NOT NULL,
    effective_to TEXT,
    import_id TEXT NOT NULL,
    PRIMARY KEY (region, person_id, entry_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS visits (
    region TEXT NOT NULL,
    person_id TEXT NOT NULL,
    visit_id TEXT NOT NULL,
    institution_id TEXT NOT NULL,
    treatment_region TEXT NOT NULL,
    visit_type TEXT NOT NULL,
    date_of_service TEXT NOT NULL,
    admission_number INTEGER,
    status TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    discharged_at TEXT,
    -- The disease treated (病种编码), for rules that select by disease group. Version 4.
    disease TEXT,
    PRIMARY KEY (region, person_id, visit_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS fee_lines (
    region TEXT NOT NULL,
    person_id TEXT NOT NULL,
    visit_id TEXT NOT NULL,
    line_no INTEGER NOT NULL,
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    class TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    unit_price BIGINT NOT NULL,
    amount BIGINT NOT NULL,
    price_limit BIGINT,
    -- The hospital's own line serial (feedetl_sn) and upload batch (chrg_bchno), if it sent them.
    serial TEXT,
    batch TEXT,
    PRIMARY KEY (region, person_id, visit_id, line_no)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS settlements (
    region TEXT NOT NULL,
    person_id TEXT NOT NULL,
    settlement_id TEXT NOT NULL,
    visit_id TEXT NOT NULL,
    institution_id TEXT NOT NULL,
    -- The region of the institution that settled (就医地), and the visit type: for clearing
    -- between regions and statistics, which must not depend on the institution being known here.
    treatment_region TEXT NOT NULL,
    visit_type TEXT NOT NULL,
    reverses TEXT,
    date_of_service TEXT NOT NULL,
    booked_on TEXT NOT NULL,
    booked_at TEXT NOT NULL,
    total BIGINT NOT NULL,
    fund_total BIGINT NOT NULL,
    personal_account BIGINT NOT NULL,
    cash BIGINT NOT NULL,
    -- The settlement's JSON with its explanation, LZ4-compressed (its length first).
    result BLOB NOT NULL,
    -- Its journal entry: the balanced postings, [["account", fen], ...] in order, and what it
    -- added to the person's counters of the year of service, [["tier", "pool", "counter",
    -- delta], ...] (read through the `ledger` and `accumulator_postings` views below).
    postings TEXT NOT NULL,
    counters TEXT NOT NULL,
    PRIMARY KEY (region, person_id, settlement_id)
);
-- A settlement is reversed at most once.
CREATE UNIQUE INDEX IF NOT EXISTS settlements_one_reversal
    ON settlements (region, person_id, reverses) WHERE reverses IS NOT NULL;
-- One index serves an institution's day (reconciliation: day and institution, a prefix) and
-- clearing and statistics (a month of days), covering the columns clearing reads so that its
-- scan stays off the wide rows (the stored result). One index, not two: each is one more page
-- written at a random place by every settlement.
CREATE INDEX IF NOT EXISTS settlements_by_day ON settlements (booked_on, institution_id, region,
    treatment_region, visit_type, reverses, total, fund_total, personal_account, cash);

-- The journal: balanced postings per settlement; a reversal posts the negation. Each entry is
-- kept inside its settlement's row, which is only ever inserted, so the journal is append-only
-- by construction and one settlement writes its entry where it writes its row (version 1 kept
-- it in two tables of its own, keyed by person: two more pages at random places a settlement,
-- a fifth of the writer's time). These views read it as rows.
CREATE VIEW IF NOT EXISTS ledger (region, person_id, settlement_id, posting_no, account, amount,
    institution_id, booked_on) AS
    SELECT s.region, s.person_id, s.settlement_id, p.key, p.value ->> 0, p.value ->> 1,
        s.institution_id, s.booked_on
    FROM settlements s, json_each(s.postings) p;

-- What each settlement added to the accumulators; the accumulators are their running sum.
CREATE VIEW IF NOT EXISTS accumulator_postings (region, person_id, settlement_id, year, tier,
    pool, counter, delta) AS
    SELECT s.region, s.person_id, s.settlement_id, CAST(substr(s.date_of_service, 1, 4) AS
        INTEGER), c.value ->> 0, c.value ->> 1, c.value ->> 2, c.value ->> 3
    FROM settlements s, json_each(s.counters) c;

CREATE TABLE IF NOT EXISTS accumulators (
    region TEXT NOT NULL,
    person_id TEXT NOT NULL,
    year INTEGER NOT NULL,
    tier TEXT NOT NULL,
    pool TEXT NOT NULL,
    counter TEXT NOT NULL,
    value BIGINT NOT NULL,
    PRIMARY KEY (region, person_id, year, tier, pool, counter)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS idempotency (
    region TEXT NOT NULL,
    person_id TEXT NOT NULL,
    institution_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_sha256 TEXT NOT NULL,
    status INTEGER NOT NULL,
    response TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (region, person_id, institution_id, idempotency_key)
) WITHOUT ROWID;

-- Every read of a person's data, and every change to their registration and filings: by whom,
-- when, and what (审计日志). Rows are only inserted.
CREATE TABLE IF NOT EXISTS audit_log (
    region TEXT NOT NULL,
    person_id TEXT NOT NULL,
    audit_id TEXT NOT NULL,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    -- The interface the request came by: `v1`, `nhsa:INFNO:MSGID` (`nhsa-replay:...` when a
    -- repeated msgid was answered with the first answer), `local`; empty before version 5.
    channel TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (region, person_id, audit_id)
) WITHOUT ROWID;
-- The audit log read by actor (who read what) and by time (what was read on a day).
CREATE INDEX IF NOT EXISTS audit_log_by_actor ON audit_log (region, actor, at);
CREATE INDEX IF NOT EXISTS audit_log_by_time ON audit_log (region, at);

-- The opening prepayment fund (预付金) balance of a region for a month, as its agency recorded it
-- for clearing (清算). Reference data: replaced, not journaled.
CREATE TABLE IF NOT EXISTS prepayments (
    region TEXT NOT NULL,
    month TEXT NOT NULL,
    balance BIGINT NOT NULL,
    set_by TEXT NOT NULL,
    set_at TEXT NOT NULL,
    PRIMARY KEY (region, month)
);

-- In a federation of nodes: settlements of people insured elsewhere at this node's
-- institutions, as the insured region's node answered them (its ledger holds the postings). The
-- place of treatment's own record, for its hospitals' reconciliation and what it is owed at
-- clearing. Append-only; a replayed answer is recorded once.
CREATE TABLE IF NOT EXISTS visitor_settlements (
    settlement_id TEXT PRIMARY KEY,
    institution_id TEXT NOT NULL,
    insured_region TEXT NOT NULL,
    treatment_region TEXT NOT NULL,
    visit_type TEXT NOT NULL,
    reverses TEXT,
    booked_on TEXT NOT NULL,
    total BIGINT NOT NULL,
    fund_total BIGINT NOT NULL,
    personal_account BIGINT NOT NULL,
    cash BIGINT NOT NULL,
    tiers TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    -- The person's scheme (险种, since version 3), for the institution's reconciliation by
    -- scheme over the national interface (3201); NULL on rows recorded before.
    scheme TEXT
);
CREATE INDEX IF NOT EXISTS visitor_settlements_by_day ON visitor_settlements (booked_on);
CREATE INDEX IF NOT EXISTS visitor_settlements_by_institution_day
    ON visitor_settlements (institution_id, booked_on);

-- Requests this node forwarded whose outcome it does not know (a lost answer, or a record it
-- could not fetch): asked of the insured region's node until known, so that this node's record
-- misses nothing. `visit_id` names what to ask about: the visit of a settle, the settlement of
-- a cancel, or the settlement or reversal itself (ids tell their kind).
CREATE TABLE IF NOT EXISTS pending_forwards (
    institution_id TEXT NOT NULL,
    visit_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    forwarded_at TEXT NOT NULL,
    PRIMARY KEY (institution_id, visit_id, idempotency_key)
);

-- Maintenance windows a region's agency announces: settlement for its people stops and resumes.
CREATE TABLE IF NOT EXISTS maintenance_windows (
    window_id TEXT PRIMARY KEY,
    region TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    cancelled_at TEXT
);

-- Filings (备案) for care outside the insured region.
CREATE TABLE IF NOT EXISTS filings (
    region TEXT NOT NULL,
    person_id TEXT NOT NULL,
    filing_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    destination TEXT NOT NULL,
    start_date TEXT NOT NULL,
    end_date TEXT,
    commitment INTEGER NOT NULL,
    status TEXT NOT NULL,
    filed_on TEXT NOT NULL,
    filed_at TEXT NOT NULL,
    PRIMARY KEY (region, person_id, filing_id)
) WITHOUT ROWID;

-- The national interface (docs/national-interface.md): every message an institution sent, by
-- its msgid (a repeated msgid replays the first answer); sign-in sessions; each institution's
-- keys for the encrypted and signed mode. Keyed by institution, not by person.
CREATE TABLE IF NOT EXISTS nhsa_messages (
    institution_id TEXT NOT NULL,
    msgid TEXT NOT NULL,
    infno TEXT NOT NULL,
    request_sha256 TEXT NOT NULL,
    response TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (institution_id, msgid)
);

CREATE TABLE IF NOT EXISTS nhsa_sessions (
    institution_id TEXT NOT NULL,
    sign_no TEXT NOT NULL,
    opter TEXT NOT NULL,
    signed_in_at TEXT NOT NULL,
    signed_out_at TEXT,
    PRIMARY KEY (institution_id, sign_no)
);

CREATE TABLE IF NOT EXISTS nhsa_keys (
    institution_id TEXT PRIMARY KEY,
    encrypted INTEGER NOT NULL,
    sm4_key TEXT NOT NULL,
    sm2_public_key TEXT
);

-- Credits to a person's personal account (个人账户划入): the agency's monthly or yearly
-- allocation, and corrections (补划). Rows are only inserted; the person's `account_balance`
-- moves with each in the same transaction, as it does with each settlement and reversal.
CREATE TABLE IF NOT EXISTS account_credits (
    region TEXT NOT NULL,
    person_id TEXT NOT NULL,
    -- `C-<region>-<person>-<n>`, from the person's sequence.
    credit_id TEXT NOT NULL,
    -- The month the credit is for, `YYYY-MM`.
    period TEXT NOT NULL,
    amount BIGINT NOT NULL,
    balance_after BIGINT NOT NULL,
    note TEXT NOT NULL,
    actor TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (region, person_id, credit_id)
) WITHOUT ROWID;

-- The schema's version, written once; a later version migrates from it (sqlite_migrate_v*.sql).
INSERT INTO schema_version (version) SELECT 6 WHERE NOT EXISTS (SELECT 1 FROM schema_version);
