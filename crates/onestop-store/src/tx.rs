//! The storage primitives one transaction offers. `ops` writes every operation once in terms of
//! these; `sqlite` and `postgres` implement them in their dialects. A `Tx` is always inside a
//! transaction: nothing it writes is visible until the caller commits, and an error aborts it.

use onestop_core::{Accumulators, Date, Fen, Line};
use onestop_ledger::Posting;

use crate::later::{Explain, Explained};
use crate::model;
use crate::model::{
    AssistanceEntry, Enrolment, Institution, Journal, LineOrigin, NhsaKeys, NhsaMessage, PersonKey,
    PersonRow, SettlementRow, StoredResponse, VisitRow, VisitStatus,
};

/// An operating failure of the database (I/O, constraint, connection): never a business answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgres: {0}")]
    Postgres(#[from] postgres::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("the store is shutting down")]
    Closed,
    #[error("too many requests are waiting for the store")]
    Busy,
    #[error("a value does not fit its column: {0}")]
    OutOfRange(String),
    #[error("store configuration: {0}")]
    Config(String),
}

impl StoreError {
    /// What failed, in words an operator can act on, without the details (which are logged):
    /// a full disk, a read-only or locked file, a lost connection.
    pub fn kind(&self) -> &'static str {
        use rusqlite::ffi::ErrorCode as C;
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => match e.code {
                C::DiskFull => "磁盘已满 the disk is full",
                C::ReadOnly => "数据库只读 the database is read-only",
                C::DatabaseBusy | C::DatabaseLocked => "数据库被占用 the database is locked",
                C::SystemIoFailure => "磁盘读写错误 an I/O error",
                C::DatabaseCorrupt | C::NotADatabase => "数据库损坏 the database file is damaged",
                _ => "数据库错误 a database error",
            },
            StoreError::Sqlite(_) => "数据库错误 a database error",
            StoreError::Postgres(e) if e.is_closed() => "数据库连接中断 the connection was lost",
            StoreError::Postgres(_) => "数据库错误 a database error",
            StoreError::Pool(_) => "无法连接数据库 no connection to the database",
            StoreError::Corrupt(_) => "数据损坏 stored data is damaged",
            StoreError::Closed => "服务正在停止 the store is shutting down",
            StoreError::Busy => "请求过多 too many waiting requests",
            StoreError::OutOfRange(_) => "数值超出范围 a value does not fit its column",
            StoreError::Config(_) => "存储配置错误 the store's configuration",
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A stored assistance row with its key, for imports.
pub struct NewAssistance<'a> {
    pub key: &'a PersonKey,
    pub entry_id: String,
    pub entry: AssistanceEntry,
    pub import_id: &'a str,
}

/// A credit to a person's personal account (个人账户划入), as stored.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AccountCredit {
    pub credit_id: String,
    /// The month the credit is for, `YYYY-MM`.
    pub period: String,
    pub amount: Fen,
    pub balance_after: Fen,
    pub note: String,
    pub actor: String,
    pub at: String,
}

pub trait Tx {
    fn institution_by_token(&mut self, token_sha256: &str) -> Result<Option<Institution>>;
    fn institution(&mut self, institution_id: &str) -> Result<Option<Institution>>;
    fn insert_institution(
        &mut self,
        row: &Institution,
        token_sha256: &str,
        now: &str,
    ) -> Result<()>;

    /// Reads a person; with `lock`, holds them until the transaction ends, so that two
    /// settlements of one person serialize.
    fn person(&mut self, key: &PersonKey, lock: bool) -> Result<Option<PersonRow>>;
    /// The people of `region` with this identity number, in order of person id, at most two
    /// (one is the rule; two say it is broken).
    fn persons_by_id_number(&mut self, region: &str, id_number: &str) -> Result<Vec<PersonKey>>;
    /// Serializes, to the end of the transaction, the transactions that take the lock of this
    /// name (such as an identity number of a region, or an institution id), so that two
    /// registrations cannot both find it free and both take it. SQLite has one writer already.
    fn lock_name(&mut self, _name: &str) -> Result<()> {
        Ok(())
    }
    fn upsert_person(&mut self, row: &PersonRow) -> Result<()>;
    /// Takes the person's next sequence number (for ids); the person must be locked.
    fn next_seq(&mut self, key: &PersonKey) -> Result<i64>;
    /// As [`Tx::next_seq`], and sets the personal account's balance in the same write of the
    /// person's row (a settlement or reversal does both); the person must be locked.
    fn next_seq_with_balance(&mut self, key: &PersonKey, balance: Fen) -> Result<i64>;

    fn enrolment(&mut self, key: &PersonKey, year: i16) -> Result<Option<Enrolment>>;
    fn upsert_enrolment(&mut self, key: &PersonKey, enrolment: &Enrolment) -> Result<()>;
    fn assistance(&mut self, key: &PersonKey) -> Result<Vec<AssistanceEntry>>;
    fn insert_assistance(&mut self, row: &NewAssistance<'_>) -> Result<()>;
    fn insert_account_credit(&mut self, key: &PersonKey, credit: &AccountCredit) -> Result<()>;
    /// The person's credits whose period begins with `prefix` (`2024`, `2024-07`), in the
    /// order made.
    fn account_credits(&mut self, key: &PersonKey, prefix: &str) -> Result<Vec<AccountCredit>>;
    /// The greatest import id of the region's assistance lists (in byte order), if any.
    fn last_assistance_import(&mut self, region: &str) -> Result<Option<String>>;
    fn insert_assistance_import(
        &mut self,
        import_id: &str,
        region: &str,
        file_name: &str,
        rows: usize,
        by: &str,
        now: &str,
    ) -> Result<()>;

    fn accumulators(&mut self, key: &PersonKey, year: i16) -> Result<Accumulators>;
    /// Adds what `journal` moves to the person's accumulators of its year (the totals; the
    /// moves themselves are the settlement's journal entry, written with its row).
    fn add_to_accumulators(&mut self, key: &PersonKey, journal: &Journal<'_>) -> Result<()>;

    fn visit(&mut self, key: &PersonKey, visit_id: &str) -> Result<Option<VisitRow>>;
    fn insert_visit(&mut self, row: &VisitRow) -> Result<()>;
    fn set_visit_status(
        &mut self,
        key: &PersonKey,
        visit_id: &str,
        status: VisitStatus,
    ) -> Result<()>;
    /// Marks a visit settled, and keeps `admission_number` as its number unless it has one, so
    /// that settling it again after a cancel (a refund, 退费重结) is the same admission.
    fn set_visit_settled(
        &mut self,
        key: &PersonKey,
        visit_id: &str,
        admission_number: Option<u16>,
    ) -> Result<()>;
    fn lines(&mut self, key: &PersonKey, visit_id: &str) -> Result<Vec<(i64, Line)>>;
    /// The lines with their origin in the hospital's system.
    fn lines_with_origin(
        &mut self,
        key: &PersonKey,
        visit_id: &str,
    ) -> Result<Vec<(i64, Line, LineOrigin)>>;
    fn insert_line(
        &mut self,
        key: &PersonKey,
        visit_id: &str,
        line_no: i64,
        line: &Line,
        origin: &LineOrigin,
    ) -> Result<()>;
    /// Deletes the lines of one upload batch, or every line when `batch` is `None`.
    fn delete_lines_of_batch(
        &mut self,
        key: &PersonKey,
        visit_id: &str,
        batch: Option<&str>,
    ) -> Result<u64>;
    fn set_visit_type(
        &mut self,
        key: &PersonKey,
        visit_id: &str,
        visit: onestop_core::VisitType,
    ) -> Result<()>;
    fn set_discharged(&mut self, key: &PersonKey, visit_id: &str, at: Option<&str>) -> Result<()>;
    fn set_visit_disease(
        &mut self,
        key: &PersonKey,
        visit_id: &str,
        disease: Option<&str>,
    ) -> Result<()>;
    fn delete_line(&mut self, key: &PersonKey, visit_id: &str, line_no: i64) -> Result<bool>;

    fn settlement(&mut self, key: &PersonKey, settlement_id: &str)
    -> Result<Option<SettlementRow>>;
    fn reversal_of(
        &mut self,
        key: &PersonKey,
        settlement_id: &str,
    ) -> Result<Option<SettlementRow>>;
    /// Books a settlement or reversal: its row, with its journal entry inside. The row's JSON
    /// may still be being built ([`Tx::explain`]): the store writes it before the commit.
    fn insert_settlement(&mut self, row: &SettlementRow, journal: &Journal<'_>) -> Result<()>;
    /// Serializes a settlement just computed: inline by default; the SQLite writer hands it to
    /// a helper thread and goes on (`later`).
    fn explain(&mut self, explain: Explain) -> Explained {
        explain.now()
    }
    /// The settlement of a visit that is in force (made and not reversed), if any.
    fn visit_settlement(&mut self, key: &PersonKey, visit_id: &str) -> Result<Option<String>>;
    /// The postings of one settlement, in order.
    fn postings(&mut self, key: &PersonKey, settlement_id: &str) -> Result<Vec<Posting>>;

    fn idempotency(
        &mut self,
        key: &PersonKey,
        institution_id: &str,
        idempotency_key: &str,
    ) -> Result<Option<StoredResponse>>;
    /// The institution's answered (200) requests about the person whose idempotency key starts
    /// with `prefix`: each key and its stored response.
    fn idempotency_answers(
        &mut self,
        key: &PersonKey,
        institution_id: &str,
        prefix: &str,
    ) -> Result<Vec<(String, String)>>;
    fn insert_idempotency(
        &mut self,
        key: &PersonKey,
        institution_id: &str,
        idempotency_key: &str,
        response: &StoredResponse,
        now: &str,
    ) -> Result<()>;

    /// Writes an audit row (see [`crate::audit::record`]).
    fn insert_audit(&mut self, row: &crate::audit::AuditRow) -> Result<()>;
    /// Audit rows in time order (`at`, then `audit_id`), at most `query.limit` of them.
    fn audit_rows(
        &mut self,
        query: &crate::audit::AuditQuery,
    ) -> Result<Vec<crate::audit::AuditRow>>;

    /// Settlements and reversals an institution booked on a day.
    fn settlements_booked(&mut self, institution_id: &str, day: Date)
    -> Result<Vec<SettlementRow>>;
    /// Streams every settlement and reversal booked on a day in `from..until` to `each`, in no
    /// particular order (clearing and statistics sum them).
    fn booked_between(
        &mut self,
        from: Date,
        until: Date,
        each: &mut dyn FnMut(onestop_clearing::Entry),
    ) -> Result<()>;
    /// The opening prepayment (预付金) balance an agency recorded for a month.
    fn prepayment(&mut self, region: onestop_core::Region, month: &str) -> Result<Option<Fen>>;
    fn set_prepayment(
        &mut self,
        region: onestop_core::Region,
        month: &str,
        balance: Fen,
        by: &str,
        at: &str,
    ) -> Result<()>;

    /// Streams the visitor settlements recorded on a day in `from..until`.
    fn visitors_between(
        &mut self,
        from: Date,
        until: Date,
        each: &mut dyn FnMut(onestop_clearing::Entry),
    ) -> Result<()>;
    /// Records a visitor settlement; `false` if it was already recorded.
    fn insert_visitor_settlement(&mut self, row: &model::VisitorSettlement) -> Result<bool>;
    fn visitor_settlements_booked(
        &mut self,
        institution_id: &str,
        day: Date,
    ) -> Result<Vec<model::VisitorSettlement>>;
    /// Remembers a forwarded settle whose answer was lost: (institution, visit, key, when).
    fn insert_pending_forward(&mut self, pending: &model::PendingForward) -> Result<()>;
    fn pending_forwards(&mut self) -> Result<Vec<model::PendingForward>>;
    /// Forgets every pending forward of a visit (its outcome is known).
    fn delete_pending_forwards(&mut self, institution_id: &str, visit_id: &str) -> Result<()>;
    fn insert_window(&mut self, window: &model::MaintenanceWindow) -> Result<()>;
    /// Every maintenance window not cancelled, in order of start.
    fn windows(&mut self) -> Result<Vec<model::MaintenanceWindow>>;
    /// Cancels a window; `false` if there is no such window still in force.
    fn cancel_window(&mut self, window_id: &str, at: &str) -> Result<bool>;

    fn insert_filing(&mut self, filing: &model::Filing) -> Result<()>;
    fn filings(&mut self, key: &PersonKey) -> Result<Vec<model::Filing>>;
    fn set_filing_status(
        &mut self,
        key: &PersonKey,
        filing_id: &str,
        status: model::FilingStatus,
    ) -> Result<()>;

    fn nhsa_message(&mut self, institution_id: &str, msgid: &str) -> Result<Option<NhsaMessage>>;
    fn insert_nhsa_message(&mut self, message: &NhsaMessage) -> Result<()>;
    fn nhsa_sign_in(
        &mut self,
        institution_id: &str,
        sign_no: &str,
        opter: &str,
        now: &str,
    ) -> Result<()>;
    /// Whether a sign-in session is open (signed in, not signed out).
    fn nhsa_session_open(&mut self, institution_id: &str, sign_no: &str) -> Result<bool>;
    fn nhsa_sign_out(&mut self, institution_id: &str, sign_no: &str, now: &str) -> Result<bool>;
    fn nhsa_keys(&mut self, institution_id: &str) -> Result<Option<NhsaKeys>>;
    fn set_nhsa_keys(&mut self, institution_id: &str, keys: &NhsaKeys) -> Result<()>;

    /// Runs a query whose rows are one text column (for the invariant checks).
    fn query_strings(&mut self, sql: &str) -> Result<Vec<String>>;
    /// Every ledger posting an institution booked on a day, with its settlement id.
    fn postings_booked(
        &mut self,
        institution_id: &str,
        day: Date,
    ) -> Result<Vec<(String, Posting)>>;
}
