//! Each older version opens as version 6, on both stores, with what it kept where it was:
//! version 1 (the journal in two tables of its own) with every posting and counter moved inside
//! the settlement rows; version 2 (visitor settlements without their scheme) with its visitor
//! settlements; version 3 (visits without their disease) with its visits; version 4 (audit rows
//! without their channel) with its audit rows.

mod support;

use onestop_store::Store;

/// A settlement and its reversal as version 1 stored them, in SQL both dialects take.
const V1_ROWS: &str = "
INSERT INTO settlements (region, person_id, settlement_id, visit_id, institution_id,
    treatment_region, visit_type, reverses, date_of_service, booked_on, booked_at, total,
    fund_total, personal_account, cash, result) VALUES
    ('110000', 'P1', 'S-110000-P1-1', 'V-110000-P1-0', 'H1', '110000', 'outpatient', NULL,
     '2024-06-10', '2024-06-10', '2024-06-10T09:00:00+08:00', 1000, 700, 0, 300, '{}'),
    ('110000', 'P1', 'R-110000-P1-2', 'V-110000-P1-0', 'H1', '110000', 'outpatient',
     'S-110000-P1-1', '2024-06-10', '2024-06-11', '2024-06-11T09:00:00+08:00', -1000, -700, 0,
     -300, '{}');
INSERT INTO ledger (region, person_id, settlement_id, posting_no, account, amount,
    institution_id, booked_on) VALUES
    ('110000', 'P1', 'S-110000-P1-1', 0, 'medical_cost', -1000, 'H1', '2024-06-10'),
    ('110000', 'P1', 'S-110000-P1-1', 1, 'tier:basic', 700, 'H1', '2024-06-10'),
    ('110000', 'P1', 'S-110000-P1-1', 2, 'cash', 300, 'H1', '2024-06-10'),
    ('110000', 'P1', 'R-110000-P1-2', 0, 'medical_cost', 1000, 'H1', '2024-06-11'),
    ('110000', 'P1', 'R-110000-P1-2', 1, 'tier:basic', -700, 'H1', '2024-06-11'),
    ('110000', 'P1', 'R-110000-P1-2', 2, 'cash', -300, 'H1', '2024-06-11');
INSERT INTO accumulator_postings (region, person_id, settlement_id, year, tier, pool, counter,
    delta) VALUES
    ('110000', 'P1', 'S-110000-P1-1', 2024, 'basic', 'outpatient', 'paid', 700),
    ('110000', 'P1', 'S-110000-P1-1', 2024, 'critical_illness', 'all', 'base', 300),
    ('110000', 'P1', 'R-110000-P1-2', 2024, 'basic', 'outpatient', 'paid', -700),
    ('110000', 'P1', 'R-110000-P1-2', 2024, 'critical_illness', 'all', 'base', -300);
INSERT INTO accumulators (region, person_id, year, tier, pool, counter, value) VALUES
    ('110000', 'P1', 2024, 'basic', 'outpatient', 'paid', 0),
    ('110000', 'P1', 2024, 'critical_illness', 'all', 'base', 0);
";

const LEDGER: &str = "SELECT settlement_id || ' ' || posting_no || ' ' || account || ' ' || \
    amount FROM ledger ORDER BY settlement_id, posting_no";
const COUNTERS: &str = "SELECT settlement_id || ' ' || year || ' ' || tier || '/' || pool || \
    '/' || counter || ' ' || delta FROM accumulator_postings ORDER BY settlement_id, tier";

async fn check_migrated(store: &Store) {
    let (version, ledger, counters, violations) = store
        .read(|tx| {
            Ok((
                tx.query_strings("SELECT CAST(version AS TEXT) FROM schema_version")?,
                tx.query_strings(LEDGER)?,
                tx.query_strings(COUNTERS)?,
                onestop_store::ops::violations(tx)?,
            ))
        })
        .await
        .expect("read the migrated store");
    assert_eq!(version, ["6"], "{}", store.kind());
    assert_eq!(
        ledger,
        [
            "R-110000-P1-2 0 medical_cost 1000",
            "R-110000-P1-2 1 tier:basic -700",
            "R-110000-P1-2 2 cash -300",
            "S-110000-P1-1 0 medical_cost -1000",
            "S-110000-P1-1 1 tier:basic 700",
            "S-110000-P1-1 2 cash 300",
        ],
        "{}",
        store.kind()
    );
    assert_eq!(
        counters,
        [
            "R-110000-P1-2 2024 basic/outpatient/paid -700",
            "R-110000-P1-2 2024 critical_illness/all/base -300",
            "S-110000-P1-1 2024 basic/outpatient/paid 700",
            "S-110000-P1-1 2024 critical_illness/all/base 300",
        ],
        "{}",
        store.kind()
    );
    assert!(violations.is_empty(), "{}: {violations:?}", store.kind());
    // The reversal reads its original's postings from the migrated row.
    let key =
        onestop_store::PersonKey { region: onestop_core::Region(110_000), person_id: "P1".into() };
    let postings =
        store.read(move |tx| tx.postings(&key, "S-110000-P1-1")).await.expect("postings");
    let amounts: Vec<i64> = postings.iter().map(|p| p.amount.0).collect();
    assert_eq!(amounts, [-1000, 700, 300], "{}", store.kind());
}

/// A version 1 SQLite file in `dir` holding `V1_ROWS`, then `extra`; its path.
fn v1_sqlite_file(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("v1.sqlite");
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.execute_batch(include_str!("fixtures/sqlite_v1.sql")).expect("version 1 schema");
    conn.execute_batch(V1_ROWS).expect("version 1 rows");
    conn.execute_batch(extra).expect("extra");
    path
}

#[tokio::test]
async fn a_version_1_sqlite_file_opens_with_its_journal_moved_into_the_settlements() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite:{}", v1_sqlite_file(dir.path(), "").display());
    let store = Store::open(&url).expect("migrate");
    check_migrated(&store).await;
    drop(store);
    // Opening again finds version 6 and changes nothing.
    let store = Store::open(&url).expect("reopen");
    check_migrated(&store).await;
}

#[tokio::test]
async fn a_migration_that_fails_leaves_the_version_1_file_as_it_was() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Something in the file refuses the migration halfway (after the new columns are added).
    let refuse = "CREATE TRIGGER refuse BEFORE UPDATE ON settlements BEGIN SELECT RAISE(ABORT, \
        'refused'); END;";
    let path = v1_sqlite_file(dir.path(), refuse);
    let url = format!("sqlite:{}", path.display());
    let error = Store::open(&url).err().expect("the migration fails");
    assert!(error.to_string().contains("refused"), "{error}");
    let conn = rusqlite::Connection::open(&path).expect("reopen");
    let count = |sql: &str| conn.query_row(sql, [], |row| row.get::<_, i64>(0)).expect(sql);
    assert_eq!(count("SELECT version FROM schema_version"), 1);
    assert_eq!(count("SELECT COUNT(*) FROM ledger"), 6);
    assert_eq!(count("SELECT COUNT(*) FROM accumulator_postings"), 4);
    let columns =
        count("SELECT COUNT(*) FROM pragma_table_info('settlements') WHERE name = 'postings'");
    assert_eq!(columns, 0, "no column of version 2 is left behind");
    conn.execute_batch("DROP TRIGGER refuse").expect("drop the trigger");
    drop(conn);
    check_migrated(&Store::open(&url).expect("migrate")).await;
}

#[tokio::test]
async fn a_version_1_postgres_database_opens_with_its_journal_moved_into_the_settlements() {
    let Some(server) = support::postgres_server() else { return };
    let url = tokio::task::spawn_blocking(move || {
        let url = support::fresh_database(&server);
        let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        client.batch_execute(include_str!("fixtures/postgres_v1.sql")).expect("version 1 schema");
        client.batch_execute(V1_ROWS).expect("version 1 rows");
        url
    })
    .await
    .expect("prepare version 1");
    let store = Store::open(&url).expect("migrate");
    check_migrated(&store).await;
    drop(store);
    let store = Store::open(&url).expect("reopen");
    check_migrated(&store).await;
}

/// A visitor settlement as version 2 recorded it (no scheme).
const V2_VISITOR: &str = "INSERT INTO visitor_settlements (settlement_id, institution_id, \
    insured_region, treatment_region, visit_type, reverses, booked_on, total, fund_total, \
    personal_account, cash, tiers, recorded_at) VALUES ('S-131000-P9-1', 'H1', '131000', \
    '110000', 'inpatient', NULL, '2024-06-10', 1000, 700, 0, 300, '{\"basic\":700}', \
    '2024-06-10T09:00:00+08:00');
    UPDATE schema_version SET version = 2;";

async fn check_v2_migrated(store: &Store) {
    let (version, visitors) = store
        .read(|tx| {
            let version = tx.query_strings("SELECT CAST(version AS TEXT) FROM schema_version")?;
            let day = onestop_core::Date::constant(2024, 6, 10);
            Ok((version, tx.visitor_settlements_booked("H1", day)?))
        })
        .await
        .expect("read the migrated store");
    assert_eq!(version, ["6"], "{}", store.kind());
    assert_eq!(visitors.len(), 1, "{}", store.kind());
    assert_eq!(visitors[0].scheme, None, "{}", store.kind());
    assert_eq!(visitors[0].fund_total, onestop_core::Fen(700), "{}", store.kind());
    // The new column takes what is recorded from now on.
    let mut row = visitors[0].clone();
    row.settlement_id = "S-131000-P9-2".into();
    row.scheme = Some(onestop_core::Scheme::Resident);
    let written = store.write(move |tx| tx.insert_visitor_settlement(&row)).await.expect("write");
    assert!(written);
    let day = onestop_core::Date::constant(2024, 6, 10);
    let visitors = store.read(move |tx| tx.visitor_settlements_booked("H1", day)).await;
    let schemes: Vec<_> = visitors.expect("read").iter().map(|v| v.scheme).collect();
    assert_eq!(schemes, [None, Some(onestop_core::Scheme::Resident)], "{}", store.kind());
}

#[tokio::test]
async fn a_version_2_sqlite_file_opens_as_version_6_with_its_visitor_settlements() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("v2.sqlite");
    let url = format!("sqlite:{}", path.display());
    drop(Store::open(&url).expect("create"));
    // Version 2 is (for this test) the current version without the visitors' scheme.
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.execute_batch("ALTER TABLE visitor_settlements DROP COLUMN scheme").expect("drop");
    conn.execute_batch(V2_VISITOR).expect("version 2 rows");
    drop(conn);
    check_v2_migrated(&Store::open(&url).expect("migrate")).await;
}

#[tokio::test]
async fn a_version_2_postgres_database_opens_as_version_6_with_its_visitor_settlements() {
    let Some(server) = support::postgres_server() else { return };
    let url = tokio::task::spawn_blocking(move || support::fresh_database(&server))
        .await
        .expect("a database");
    drop(Store::open(&url).expect("create"));
    let url2 = url.clone();
    tokio::task::spawn_blocking(move || {
        let mut client = postgres::Client::connect(&url2, postgres::NoTls).expect("connect");
        client.batch_execute("ALTER TABLE visitor_settlements DROP COLUMN scheme").expect("drop");
        client.batch_execute(V2_VISITOR).expect("version 2 rows");
    })
    .await
    .expect("prepare version 2");
    check_v2_migrated(&Store::open(&url).expect("migrate")).await;
}

/// A visit as version 3 recorded it (no disease).
const V3_VISIT: &str = "
INSERT INTO visits (region, person_id, visit_id, institution_id, treatment_region, visit_type,
    date_of_service, admission_number, status, opened_at) VALUES
    ('110000', 'P1', 'V-110000-P1-1', 'H1', '110000', 'chronic_outpatient', '2024-06-10', NULL,
     'open', '2024-06-10T09:00:00.000+08:00');
UPDATE schema_version SET version = 3;";

async fn check_v3_migrated(store: &Store) {
    let key = onestop_store::PersonKey::new(onestop_core::Region(110_000), "P1").expect("key");
    let (version, visit) = store
        .read(move |tx| {
            let version = tx.query_strings("SELECT CAST(version AS TEXT) FROM schema_version")?;
            Ok((version, tx.visit(&key, "V-110000-P1-1")?))
        })
        .await
        .expect("read the migrated store");
    assert_eq!(version, ["6"], "{}", store.kind());
    let visit = visit.expect("the visit is kept");
    assert_eq!((visit.visit_type.code(), visit.disease), ("chronic_outpatient", None));
}

#[tokio::test]
async fn a_version_3_sqlite_file_opens_as_version_6_with_its_visits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("v3.sqlite");
    let url = format!("sqlite:{}", path.display());
    drop(Store::open(&url).expect("create"));
    // Version 3 is (for this test) the current version without the visits' disease.
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.execute_batch("ALTER TABLE visits DROP COLUMN disease").expect("drop");
    conn.execute_batch(V3_VISIT).expect("version 3 rows");
    drop(conn);
    check_v3_migrated(&Store::open(&url).expect("migrate")).await;
}

#[tokio::test]
async fn a_version_3_postgres_database_opens_as_version_6_with_its_visits() {
    let Some(server) = support::postgres_server() else { return };
    let url = tokio::task::spawn_blocking(move || support::fresh_database(&server))
        .await
        .expect("a database");
    drop(Store::open(&url).expect("create"));
    let url3 = url.clone();
    tokio::task::spawn_blocking(move || {
        let mut client = postgres::Client::connect(&url3, postgres::NoTls).expect("connect");
        client.batch_execute("ALTER TABLE visits DROP COLUMN disease").expect("drop");
        client.batch_execute(V3_VISIT).expect("version 3 rows");
    })
    .await
    .expect("prepare version 3");
    check_v3_migrated(&Store::open(&url).expect("migrate")).await;
}

/// An audit row as version 4 recorded it (no channel).
const V4_AUDIT: &str = "
INSERT INTO audit_log (region, person_id, audit_id, at, actor, action, detail) VALUES
    ('110000', 'P1', '0001', '2024-06-10T09:00:00.000+08:00', 'H1', 'read_person', 'year 2024');
UPDATE schema_version SET version = 4;";

async fn check_v4_migrated(store: &Store) {
    let query = onestop_store::audit::AuditQuery {
        region: "110000".into(),
        limit: 10,
        ..Default::default()
    };
    let (version, rows) = store
        .read(move |tx| {
            let version = tx.query_strings("SELECT CAST(version AS TEXT) FROM schema_version")?;
            Ok((version, tx.audit_rows(&query)?))
        })
        .await
        .expect("read the migrated store");
    assert_eq!(version, ["6"], "{}", store.kind());
    let kept: Vec<_> = rows.iter().map(|r| (r.audit_id.as_str(), r.channel.as_str())).collect();
    assert_eq!(kept, [("0001", "")], "{}", store.kind());
}

#[tokio::test]
async fn a_version_4_sqlite_file_opens_as_version_6_with_its_audit_rows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("v4.sqlite");
    let url = format!("sqlite:{}", path.display());
    drop(Store::open(&url).expect("create"));
    // Version 4 is (for this test) the current version without the audit rows' channel.
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.execute_batch("ALTER TABLE audit_log DROP COLUMN channel").expect("drop");
    conn.execute_batch(V4_AUDIT).expect("version 4 rows");
    drop(conn);
    check_v4_migrated(&Store::open(&url).expect("migrate")).await;
}

#[tokio::test]
async fn a_version_4_postgres_database_opens_as_version_6_with_its_audit_rows() {
    let Some(server) = support::postgres_server() else { return };
    let url = tokio::task::spawn_blocking(move || support::fresh_database(&server))
        .await
        .expect("a database");
    drop(Store::open(&url).expect("create"));
    let url4 = url.clone();
    tokio::task::spawn_blocking(move || {
        let mut client = postgres::Client::connect(&url4, postgres::NoTls).expect("connect");
        client.batch_execute("ALTER TABLE audit_log DROP COLUMN channel").expect("drop");
        client.batch_execute(V4_AUDIT).expect("version 4 rows");
    })
    .await
    .expect("prepare version 4");
    check_v4_migrated(&Store::open(&url).expect("migrate")).await;
}
