//! The SQLite writer's transaction over one group of requests, with settlement rows written
//! late.
//!
//! A settlement's JSON (its explanation, some 10 KB, serialized and compressed) is a third of
//! the writer's work; the writer hands it to helper threads (`later`) and goes on with the
//! request, then with the next requests of the group. The row waits in the group, with its
//! journal entry, until its JSON is built; the group writes it before the commit, so what
//! commits is exactly what the request asked. Until then a request of the same group could
//! read the `settlements` table without it, so every primitive that may read it writes the
//! waiting rows first (`flush`). Only the primitives of a settlement's own path, which read
//! and write other tables, go straight through; a primitive added to [`Tx`] must be placed on
//! one side or the other here before this compiles.
//!
//! Each request runs inside its own savepoint. If one fails and rolls back, its waiting rows go
//! with it, and the rows of earlier requests that it had written go back to waiting (the roll
//! back undid them too). A row whose JSON failed to build is never written: the group notes
//! whose it was ([`Group::poisoned`]) and the writer runs the group again without that request.

use onestop_core::{Accumulators, Date, Fen, Line};
use onestop_ledger::Posting;

use crate::later::{Explain, Explained, Helpers};
use crate::model;
use crate::model::{
    AssistanceEntry, Enrolment, Institution, Journal, LineOrigin, NhsaKeys, NhsaMessage, PersonKey,
    PersonRow, SettlementRow, StoredResponse, VisitRow, VisitStatus,
};
use crate::sqlite_tx::{SqliteTx, compressed};
use crate::tx::{NewAssistance, Result, StoreError, Tx};

/// A settlement row waiting for its JSON.
struct Waiting {
    /// The request (its index in the group) that booked it.
    request: usize,
    row: SettlementRow,
    postings: String,
    counters: String,
    /// The request during which it was written, if it was.
    written_during: Option<usize>,
}

/// One group's transaction: the connection, the helpers, and the rows waiting.
pub(crate) struct Group<'c> {
    conn: &'c rusqlite::Connection,
    helpers: &'c Helpers,
    waiting: Vec<Waiting>,
    request: usize,
    /// The first request whose row's JSON failed to build, with the failure.
    poisoned: Option<(usize, String)>,
}

/// Marks rows written by the final flush, outside every request's savepoint.
const NO_REQUEST: usize = usize::MAX;

impl<'c> Group<'c> {
    pub(crate) fn new(conn: &'c rusqlite::Connection, helpers: &'c Helpers) -> Group<'c> {
        Group { conn, helpers, waiting: Vec::new(), request: NO_REQUEST, poisoned: None }
    }

    /// The transaction that request number `request` of the group runs in.
    pub(crate) fn tx(&mut self, request: usize) -> WriterTx<'_, 'c> {
        assert_ne!(request, NO_REQUEST);
        self.request = request;
        WriterTx { group: self }
    }

    /// The request rolled back to its savepoint: its rows are gone, and those it wrote for
    /// others wait again.
    pub(crate) fn rolled_back(&mut self, request: usize) {
        self.waiting.retain(|row| row.request != request);
        for row in &mut self.waiting {
            if row.written_during == Some(request) {
                row.written_during = None;
            }
        }
    }

    /// Writes every waiting row, outside any request; the group may commit after this.
    pub(crate) fn finish(&mut self) -> Result<()> {
        self.request = NO_REQUEST;
        self.flush()
    }

    /// The request whose settlement's JSON failed to build, if one did, and the failure. The
    /// group cannot commit: that request released its savepoint, and only a new transaction
    /// without it can leave it out.
    pub(crate) fn poisoned(&self) -> Option<(usize, StoreError)> {
        self.poisoned.as_ref().map(|(request, failure)| {
            let message = format!("a settlement's explanation could not be built: {failure}");
            (*request, StoreError::Corrupt(message))
        })
    }

    /// Writes the waiting rows (waiting for their JSON first).
    fn flush(&mut self) -> Result<()> {
        let tx = SqliteTx { conn: self.conn };
        for waiting in self.waiting.iter_mut().filter(|row| row.written_during.is_none()) {
            let json = match waiting.row.result.get() {
                Ok(json) => json,
                Err(error) => {
                    self.poisoned.get_or_insert((waiting.request, error.to_string()));
                    return Err(error);
                }
            };
            tx.insert_settlement_row(&waiting.row, json, &waiting.postings, &waiting.counters)?;
            waiting.written_during = Some(self.request);
        }
        Ok(())
    }

    #[cfg(test)]
    fn rows_waiting(&self) -> usize {
        self.waiting.iter().filter(|row| row.written_during.is_none()).count()
    }
}

/// The [`Tx`] of one request of a group.
pub(crate) struct WriterTx<'g, 'c> {
    group: &'g mut Group<'c>,
}

impl WriterTx<'_, '_> {
    fn inner(&self) -> SqliteTx<'_> {
        SqliteTx { conn: self.group.conn }
    }
}

/// Primitives that never read `settlements` (nor its views): straight through.
macro_rules! straight {
    ($(fn $name:ident(&mut self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)*) => {
        $(fn $name(&mut self $(, $arg: $ty)*) -> $ret {
            self.inner().$name($($arg),*)
        })*
    };
}

/// Every other primitive: the waiting rows are written first.
macro_rules! after_flush {
    ($(fn $name:ident(&mut self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)*) => {
        $(fn $name(&mut self $(, $arg: $ty)*) -> $ret {
            self.group.flush()?;
            self.inner().$name($($arg),*)
        })*
    };
}

impl Tx for WriterTx<'_, '_> {
    // A settlement's own path: the person, their enrolment, assistance, filings, visit, lines,
    // totals and idempotency record, and what a settlement writes besides its row.
    straight! {
        fn institution_by_token(&mut self, token_sha256: &str) -> Result<Option<Institution>>;
        fn institution(&mut self, institution_id: &str) -> Result<Option<Institution>>;
        fn person(&mut self, key: &PersonKey, lock: bool) -> Result<Option<PersonRow>>;
        fn next_seq_with_balance(&mut self, key: &PersonKey, balance: Fen) -> Result<i64>;
        fn enrolment(&mut self, key: &PersonKey, year: i16) -> Result<Option<Enrolment>>;
        fn assistance(&mut self, key: &PersonKey) -> Result<Vec<AssistanceEntry>>;
        fn accumulators(&mut self, key: &PersonKey, year: i16) -> Result<Accumulators>;
        fn add_to_accumulators(&mut self, key: &PersonKey, journal: &Journal<'_>) -> Result<()>;
        fn visit(&mut self, key: &PersonKey, visit_id: &str) -> Result<Option<VisitRow>>;
        fn set_visit_status(
            &mut self,
            key: &PersonKey,
            visit_id: &str,
            status: VisitStatus
        ) -> Result<()>;
        fn set_visit_settled(
            &mut self,
            key: &PersonKey,
            visit_id: &str,
            admission_number: Option<u16>
        ) -> Result<()>;
        fn lines(&mut self, key: &PersonKey, visit_id: &str) -> Result<Vec<(i64, Line)>>;
        fn lines_with_origin(
            &mut self,
            key: &PersonKey,
            visit_id: &str
        ) -> Result<Vec<(i64, Line, LineOrigin)>>;
        fn filings(&mut self, key: &PersonKey) -> Result<Vec<model::Filing>>;
        fn idempotency(
            &mut self,
            key: &PersonKey,
            institution_id: &str,
            idempotency_key: &str
        ) -> Result<Option<StoredResponse>>;
        fn idempotency_answers(
            &mut self,
            key: &PersonKey,
            institution_id: &str,
            prefix: &str
        ) -> Result<Vec<(String, String)>>;
        fn insert_idempotency(
            &mut self,
            key: &PersonKey,
            institution_id: &str,
            idempotency_key: &str,
            response: &StoredResponse,
            now: &str
        ) -> Result<()>;
        fn insert_audit(&mut self, row: &crate::audit::AuditRow) -> Result<()>;
        fn audit_rows(
            &mut self,
            query: &crate::audit::AuditQuery
        ) -> Result<Vec<crate::audit::AuditRow>>;
    }

    after_flush! {
        fn insert_institution(
            &mut self,
            row: &Institution,
            token_sha256: &str,
            now: &str
        ) -> Result<()>;
        fn persons_by_id_number(
            &mut self,
            region: &str,
            id_number: &str
        ) -> Result<Vec<PersonKey>>;
        fn upsert_person(&mut self, row: &PersonRow) -> Result<()>;
        fn next_seq(&mut self, key: &PersonKey) -> Result<i64>;
        fn upsert_enrolment(&mut self, key: &PersonKey, enrolment: &Enrolment) -> Result<()>;
        fn insert_assistance(&mut self, row: &NewAssistance<'_>) -> Result<()>;
        fn insert_account_credit(
            &mut self,
            key: &PersonKey,
            credit: &crate::tx::AccountCredit
        ) -> Result<()>;
        fn account_credits(
            &mut self,
            key: &PersonKey,
            prefix: &str
        ) -> Result<Vec<crate::tx::AccountCredit>>;
        fn last_assistance_import(&mut self, region: &str) -> Result<Option<String>>;
        fn insert_assistance_import(
            &mut self,
            import_id: &str,
            region: &str,
            file_name: &str,
            rows: usize,
            by: &str,
            now: &str
        ) -> Result<()>;
        fn insert_visit(&mut self, row: &VisitRow) -> Result<()>;
        fn insert_line(
            &mut self,
            key: &PersonKey,
            visit_id: &str,
            line_no: i64,
            line: &Line,
            origin: &LineOrigin
        ) -> Result<()>;
        fn delete_lines_of_batch(
            &mut self,
            key: &PersonKey,
            visit_id: &str,
            batch: Option<&str>
        ) -> Result<u64>;
        fn set_visit_type(
            &mut self,
            key: &PersonKey,
            visit_id: &str,
            visit: onestop_core::VisitType
        ) -> Result<()>;
        fn set_visit_disease(
            &mut self,
            key: &PersonKey,
            visit_id: &str,
            disease: Option<&str>
        ) -> Result<()>;
        fn set_discharged(
            &mut self,
            key: &PersonKey,
            visit_id: &str,
            at: Option<&str>
        ) -> Result<()>;
        fn delete_line(&mut self, key: &PersonKey, visit_id: &str, line_no: i64) -> Result<bool>;
        fn settlement(
            &mut self,
            key: &PersonKey,
            settlement_id: &str
        ) -> Result<Option<SettlementRow>>;
        fn reversal_of(
            &mut self,
            key: &PersonKey,
            settlement_id: &str
        ) -> Result<Option<SettlementRow>>;
        fn visit_settlement(&mut self, key: &PersonKey, visit_id: &str) -> Result<Option<String>>;
        fn postings(&mut self, key: &PersonKey, settlement_id: &str) -> Result<Vec<Posting>>;
        fn settlements_booked(
            &mut self,
            institution_id: &str,
            day: Date
        ) -> Result<Vec<SettlementRow>>;
        fn booked_between(
            &mut self,
            from: Date,
            until: Date,
            each: &mut dyn FnMut(onestop_clearing::Entry)
        ) -> Result<()>;
        fn prepayment(&mut self, region: onestop_core::Region, month: &str) -> Result<Option<Fen>>;
        fn set_prepayment(
            &mut self,
            region: onestop_core::Region,
            month: &str,
            balance: Fen,
            by: &str,
            at: &str
        ) -> Result<()>;
        fn visitors_between(
            &mut self,
            from: Date,
            until: Date,
            each: &mut dyn FnMut(onestop_clearing::Entry)
        ) -> Result<()>;
        fn insert_visitor_settlement(&mut self, row: &model::VisitorSettlement) -> Result<bool>;
        fn visitor_settlements_booked(
            &mut self,
            institution_id: &str,
            day: Date
        ) -> Result<Vec<model::VisitorSettlement>>;
        fn insert_pending_forward(&mut self, pending: &model::PendingForward) -> Result<()>;
        fn pending_forwards(&mut self) -> Result<Vec<model::PendingForward>>;
        fn delete_pending_forwards(&mut self, institution_id: &str, visit_id: &str) -> Result<()>;
        fn insert_window(&mut self, window: &model::MaintenanceWindow) -> Result<()>;
        fn windows(&mut self) -> Result<Vec<model::MaintenanceWindow>>;
        fn cancel_window(&mut self, window_id: &str, at: &str) -> Result<bool>;
        fn insert_filing(&mut self, filing: &model::Filing) -> Result<()>;
        fn set_filing_status(
            &mut self,
            key: &PersonKey,
            filing_id: &str,
            status: model::FilingStatus
        ) -> Result<()>;
        fn nhsa_message(
            &mut self,
            institution_id: &str,
            msgid: &str
        ) -> Result<Option<NhsaMessage>>;
        fn insert_nhsa_message(&mut self, message: &NhsaMessage) -> Result<()>;
        fn nhsa_sign_in(
            &mut self,
            institution_id: &str,
            sign_no: &str,
            opter: &str,
            now: &str
        ) -> Result<()>;
        fn nhsa_session_open(&mut self, institution_id: &str, sign_no: &str) -> Result<bool>;
        fn nhsa_sign_out(&mut self, institution_id: &str, sign_no: &str, now: &str) -> Result<bool>;
        fn nhsa_keys(&mut self, institution_id: &str) -> Result<Option<NhsaKeys>>;
        fn set_nhsa_keys(&mut self, institution_id: &str, keys: &NhsaKeys) -> Result<()>;
        fn query_strings(&mut self, sql: &str) -> Result<Vec<String>>;
        fn postings_booked(
            &mut self,
            institution_id: &str,
            day: Date
        ) -> Result<Vec<(String, Posting)>>;
    }

    /// A row whose JSON is ready is written now; one whose JSON is being built waits in the
    /// group.
    fn insert_settlement(&mut self, row: &SettlementRow, journal: &Journal<'_>) -> Result<()> {
        if row.result.is_ready() {
            return self.inner().insert_settlement(row, journal);
        }
        assert_eq!(journal.year, row.date_of_service.year(), "counters of the year of service");
        self.group.waiting.push(Waiting {
            request: self.group.request,
            row: row.clone(),
            postings: journal.postings_json(),
            counters: journal.counters_json(),
            written_during: None,
        });
        Ok(())
    }

    fn explain(&mut self, explain: Explain) -> Explained {
        self.group.helpers.explain(explain, compressed)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use onestop_core::accumulators::Deltas;
    use onestop_core::{Date, Fen, Region, VisitType};
    use rusqlite::Connection;

    use super::*;
    use crate::later::{Later, SettlementJson};

    fn schema() -> Connection {
        let conn = Connection::open_in_memory().expect("memory");
        conn.execute_batch(crate::sqlite::SCHEMA).expect("schema");
        conn.execute_batch("BEGIN").expect("begin");
        conn
    }

    pub(crate) fn key() -> PersonKey {
        PersonKey::new(Region::parse("110000").expect("region"), "P1").expect("key")
    }

    fn row(settlement_id: &str) -> SettlementRow {
        let day = Date::constant(2026, 6, 1);
        SettlementRow {
            key: key(),
            settlement_id: settlement_id.to_owned(),
            visit_id: "V-110000-P1-1".into(),
            institution_id: "H1".into(),
            treatment_region: Region::parse("110000").expect("region"),
            visit_type: VisitType::ALL[0],
            reverses: None,
            date_of_service: day,
            booked_on: day,
            booked_at: "2026-06-01T09:00:00+08:00".into(),
            total: Fen(0),
            fund_total: Fen(0),
            personal_account: Fen(0),
            cash: Fen(0),
            result: Later::ready(SettlementJson::new(String::new())),
        }
    }

    /// Books a settlement whose JSON a helper builds (slowly, so that it is still being built).
    pub(crate) fn book(tx: &mut dyn Tx, settlement_id: &str, json: &'static str) -> Result<()> {
        let explained = tx.explain(Explain {
            settlement: Box::new(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                assert!(!json.is_empty(), "a bug in the build");
                json.to_owned()
            }),
            head: "{\"settlement\":".into(),
        });
        let mut row = row(settlement_id);
        row.result = explained.result;
        let deltas = Deltas { admissions: 0, entries: Vec::new() };
        let journal = Journal { postings: &[], year: 2026, deltas: &deltas, sign: 1 };
        tx.insert_settlement(&row, &journal)
    }

    pub(crate) fn stored(conn: &Connection) -> Vec<String> {
        let mut statement =
            conn.prepare("SELECT settlement_id FROM settlements ORDER BY 1").expect("prepare");
        let ids = statement.query_map([], |row| row.get(0)).expect("query");
        ids.collect::<rusqlite::Result<_>>().expect("ids")
    }

    #[test]
    fn a_row_waits_for_its_json_and_a_later_read_of_the_group_writes_it_first() {
        let (conn, helpers) = (schema(), Helpers::start(1, "test-helper").expect("helpers"));
        let mut group = Group::new(&conn, &helpers);
        book(&mut group.tx(0), "S-110000-P1-1", "{\"n\":1}").expect("booked");
        assert_eq!(group.rows_waiting(), 1);
        assert!(stored(&conn).is_empty(), "not written while its JSON is being built");

        // The next request reads it: the row is written first, with its JSON.
        conn.execute_batch("SAVEPOINT request").expect("savepoint");
        let read = group.tx(1).settlement(&key(), "S-110000-P1-1").expect("read");
        let read = read.expect("the waiting row is found");
        assert_eq!(read.result.get().expect("json").text, "{\"n\":1}");
        assert_eq!(group.rows_waiting(), 0);

        // That request fails: its savepoint undoes the write, so the row waits again...
        conn.execute_batch("ROLLBACK TO request; RELEASE request").expect("rollback");
        group.rolled_back(1);
        assert!(stored(&conn).is_empty());
        assert_eq!(group.rows_waiting(), 1);
        // ...and the group writes it before it commits.
        group.finish().expect("written");
        assert_eq!(stored(&conn), ["S-110000-P1-1"]);
        assert_eq!(group.rows_waiting(), 0);
    }

    #[test]
    fn a_request_rolled_back_takes_its_waiting_rows_with_it() {
        let (conn, helpers) = (schema(), Helpers::start(2, "test-helper").expect("helpers"));
        let mut group = Group::new(&conn, &helpers);
        book(&mut group.tx(0), "S-110000-P1-1", "{\"n\":1}").expect("booked");
        book(&mut group.tx(1), "S-110000-P1-2", "{\"n\":2}").expect("booked");
        group.rolled_back(1);
        book(&mut group.tx(2), "S-110000-P1-3", "{\"n\":3}").expect("booked");
        group.finish().expect("written");
        assert_eq!(stored(&conn), ["S-110000-P1-1", "S-110000-P1-3"]);
        let third = SqliteTx { conn: &conn }.settlement(&key(), "S-110000-P1-3").expect("read");
        assert_eq!(third.expect("stored").result.get().expect("json").text, "{\"n\":3}");
    }

    #[test]
    fn a_json_that_fails_to_build_fails_the_group_instead_of_writing_a_row_without_it() {
        let (conn, helpers) = (schema(), Helpers::start(1, "test-helper").expect("helpers"));
        let mut group = Group::new(&conn, &helpers);
        book(&mut group.tx(0), "S-110000-P1-1", "{\"n\":1}").expect("booked");
        book(&mut group.tx(1), "S-110000-P1-2", "").expect("booked");
        assert!(matches!(group.finish(), Err(StoreError::Corrupt(_))));
        let (request, _) = group.poisoned().expect("the group knows whose JSON failed");
        assert_eq!(request, 1);
    }

    #[test]
    fn a_row_whose_json_is_ready_is_written_at_once() {
        let (conn, helpers) = (schema(), Helpers::start(1, "test-helper").expect("helpers"));
        let mut group = Group::new(&conn, &helpers);
        let mut ready = row("S-110000-P1-1");
        ready.result = Later::ready(SettlementJson::new("{}".into()));
        let deltas = Deltas { admissions: 0, entries: Vec::new() };
        let journal = Journal { postings: &[], year: 2026, deltas: &deltas, sign: 1 };
        group.tx(0).insert_settlement(&ready, &journal).expect("written");
        assert_eq!(group.rows_waiting(), 0);
        assert_eq!(stored(&conn), ["S-110000-P1-1"]);
    }
}
