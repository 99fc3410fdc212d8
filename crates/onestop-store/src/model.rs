//! What the store keeps, as plain rows, and the ids it issues.
//!
//! Every row a settlement writes belongs to one person within their insured region: the pair
//! `(region, person_id)` is the distribution key. Visit and settlement ids carry it, so the
//! service finds the shard of a request from its path alone (ARCHITECTURE.md, "Scaling out").

pub use crate::later::{Later, SettlementJson};
use onestop_core::{AssistanceCategory, Category, Date, Fen, HospitalLevel, Region, VisitType};

/// The distribution key: a person within their insured region.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct PersonKey {
    pub region: Region,
    pub person_id: String,
}

/// Person ids (医保个人编号) are 1 to 30 ASCII letters and digits.
pub fn person_id_is_valid(id: &str) -> bool {
    (1..=30).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl PersonKey {
    pub fn new(region: Region, person_id: &str) -> Option<PersonKey> {
        person_id_is_valid(person_id).then(|| PersonKey { region, person_id: person_id.to_owned() })
    }

    /// The region as stored: six digits.
    pub fn region_text(&self) -> String {
        self.region.to_string()
    }
}

/// The kinds of id the store issues, by their first letter.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IdKind {
    Visit,
    Settlement,
    Reversal,
    Filing,
    /// A credit to the personal account (个人账户划入).
    Credit,
}

impl IdKind {
    fn letter(self) -> char {
        match self {
            IdKind::Visit => 'V',
            IdKind::Settlement => 'S',
            IdKind::Reversal => 'R',
            IdKind::Filing => 'F',
            IdKind::Credit => 'C',
        }
    }
}

/// `V-110000-P000123-7`: kind, region, person, the person's sequence number.
pub fn make_id(kind: IdKind, key: &PersonKey, seq: i64) -> String {
    format!("{}-{}-{}-{seq}", kind.letter(), key.region, key.person_id)
}

/// Reads an id back into its kind and person key.
pub fn parse_id(id: &str) -> Option<(IdKind, PersonKey)> {
    let mut parts = id.split('-');
    let kind = match parts.next()? {
        "V" => IdKind::Visit,
        "S" => IdKind::Settlement,
        "R" => IdKind::Reversal,
        "F" => IdKind::Filing,
        "C" => IdKind::Credit,
        _ => return None,
    };
    let region = Region::parse(parts.next()?)?;
    let key = PersonKey::new(region, parts.next()?)?;
    let seq = parts.next()?;
    let ok = parts.next().is_none() && !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit());
    ok.then_some((kind, key))
}

/// What a credential may do.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    /// A designated hospital or pharmacy (定点医药机构): its own visits and settlements.
    Institution,
    /// The insurance agency of a pooling region (经办机构): its region's people and lists.
    Agency,
    /// A read-only auditor of a region.
    Auditor,
}

impl Role {
    pub fn code(self) -> &'static str {
        match self {
            Role::Institution => "institution",
            Role::Agency => "agency",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "institution" => Some(Role::Institution),
            "agency" => Some(Role::Agency),
            "auditor" => Some(Role::Auditor),
            _ => None,
        }
    }
}

/// A registered institution, agency or auditor.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Institution {
    /// 定点医药机构编号, such as `H11010500001`; 1 to 30 letters and digits.
    pub institution_id: String,
    pub region: Region,
    pub name: String,
    /// The hospital level; agencies and auditors have none.
    pub level: Option<HospitalLevel>,
    pub role: Role,
}

/// A registered person.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PersonRow {
    pub key: PersonKey,
    pub name: String,
    /// 身份证号: never written to logs unmasked.
    pub id_number: String,
    pub birth_date: Date,
    pub gender: String,
    pub account_balance: Fen,
}

impl PersonRow {
    /// The person's age in whole years on `date`.
    pub fn age_on(&self, date: Date) -> u8 {
        let birth = self.birth_date;
        let mut age = i32::from(date.year()) - i32::from(birth.year());
        if (date.month(), date.day()) < (birth.month(), birth.day()) {
            age -= 1;
        }
        u8::try_from(age.clamp(0, 150)).unwrap_or(0)
    }
}

/// Whether `number` is written as an identity number: 15 digits (the old numbers), or 17
/// digits and a check character, a digit or X. The check character itself is not verified
/// here (see [`id_check_matches`]).
pub fn is_identity_number(number: &str) -> bool {
    let number = number.as_bytes();
    match number.len() {
        15 => number.iter().all(u8::is_ascii_digit),
        18 => {
            number[..17].iter().all(u8::is_ascii_digit)
                && (number[17].is_ascii_digit() || number[17] == b'X')
        }
        _ => false,
    }
}

/// The check character of an 18-character identity number's first 17 digits (GB 11643, ISO 7064
/// MOD 11-2). `None` unless they are 17 ASCII digits.
pub fn id_check_character(first17: &str) -> Option<char> {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];
    if first17.len() != 17 || !first17.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sum: u32 = first17.bytes().zip(WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
    Some(CHECK[(sum % 11) as usize])
}

/// Whether an 18-character identity number's check character matches its other 17 digits.
pub fn id_check_matches(number: &str) -> bool {
    number.len() == 18 && id_check_character(&number[..17]) == number[17..].chars().next()
}

/// The ways one person's identity number may be written (uppercase): itself and, for an old
/// 15-digit number (born in the 1900s, no check character), its 18-character form; for an
/// 18-character number of the 1900s whose check character matches, its old 15-digit form. A
/// number written either way finds a person registered under the other.
pub fn identity_number_forms(number: &str) -> Vec<String> {
    let number = number.to_ascii_uppercase();
    let digits = number.bytes().all(|b| b.is_ascii_digit());
    let other = if number.len() == 15 && digits {
        let first17 = format!("{}19{}", &number[..6], &number[6..]);
        id_check_character(&first17).map(|check| format!("{first17}{check}"))
    } else if is_identity_number(&number) && &number[6..8] == "19" && id_check_matches(&number) {
        Some(format!("{}{}", &number[..6], &number[8..17]))
    } else {
        None
    };
    let mut forms = vec![number];
    forms.extend(other);
    forms
}

/// Masks an identity number for logs: the first six and last four characters stay.
pub fn mask_id_number(id_number: &str) -> String {
    let chars: Vec<char> = id_number.chars().collect();
    if chars.len() <= 10 {
        return "*".repeat(chars.len());
    }
    // The last four of an 18-digit number (sequence and check digit) or the last three of a
    // 15-digit one (sequence): never a digit of the birth date.
    let kept = if chars.len() == 15 { 3 } else { 4 };
    let middle = "*".repeat(chars.len() - 6 - kept);
    let head: String = chars[..6].iter().collect();
    let tail: String = chars[chars.len() - kept..].iter().collect();
    format!("{head}{middle}{tail}")
}

/// A person's enrolment for one calendar year.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Enrolment {
    pub year: i16,
    pub category: Category,
    pub civil_servant: bool,
    pub enterprise_supplementary: bool,
    pub needy: bool,
}

/// One entry of an assistance-recipient list.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AssistanceEntry {
    /// Sorts by import (later imports after earlier ones), then by row.
    pub entry_id: String,
    pub category: AssistanceCategory,
    pub effective_from: Date,
    pub effective_to: Option<Date>,
}

impl AssistanceEntry {
    /// The import that brought the entry: its id without the row number.
    fn import(&self) -> &str {
        self.entry_id.rsplit_once('-').map_or(&self.entry_id, |(import, _)| import)
    }
}

/// The entries of a person's list rows that still stand on `date`. A later list speaks for a
/// category from its row's start date on: an entry is set aside by a row of a later import, of
/// the same category, that has started by `date` and does not end before the entry begins. So
/// a row that ends an entitlement (an exit list, 退出名单, or an end date brought forward) ends
/// it, though the earlier row is kept; a correction of an earlier period does not end a later
/// one.
pub fn assistance_standing(
    entries: &[AssistanceEntry],
    date: Date,
) -> impl Iterator<Item = &AssistanceEntry> {
    entries.iter().filter(move |e| {
        !entries.iter().any(|later| {
            later.category == e.category
                && later.import() > e.import()
                && later.effective_from <= date
                && later.effective_to.is_none_or(|to| e.effective_from <= to)
        })
    })
}

/// The assistance category a person has on `date`: of the standing entries that cover it
/// ([`assistance_standing`]), the latest start wins, then the latest import.
pub fn assistance_on(entries: &[AssistanceEntry], date: Date) -> Option<AssistanceCategory> {
    assistance_standing(entries, date)
        .filter(|e| e.effective_from <= date && e.effective_to.is_none_or(|to| date <= to))
        .max_by(|a, b| (a.effective_from, &a.entry_id).cmp(&(b.effective_from, &b.entry_id)))
        .map(|e| e.category)
}

/// Whether a visit can still take lines and be settled.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum VisitStatus {
    Open,
    Settled,
    /// Registration or admission withdrawn before any settlement (挂号撤销/入院撤销).
    Cancelled,
}

impl VisitStatus {
    pub fn code(self) -> &'static str {
        match self {
            VisitStatus::Open => "open",
            VisitStatus::Settled => "settled",
            VisitStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<VisitStatus> {
        match text {
            "open" => Some(VisitStatus::Open),
            "settled" => Some(VisitStatus::Settled),
            "cancelled" => Some(VisitStatus::Cancelled),
            _ => None,
        }
    }
}

/// A visit (就诊): outpatient registration or admission.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VisitRow {
    pub key: PersonKey,
    pub visit_id: String,
    pub institution_id: String,
    /// The institution's region (就医地): its catalog classifies the lines.
    pub treatment_region: Region,
    pub visit_type: VisitType,
    pub date_of_service: Date,
    pub admission_number: Option<u16>,
    pub status: VisitStatus,
    pub opened_at: String,
    /// When the person was discharged (出院), for admissions.
    pub discharged_at: Option<String>,
    /// The disease treated (病种编码), for rules that select by disease group.
    pub disease: Option<String>,
}

/// Where a filing stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FilingStatus {
    /// Waiting for the agency's approval.
    Pending,
    Approved,
    Withdrawn,
}

impl FilingStatus {
    pub fn code(self) -> &'static str {
        match self {
            FilingStatus::Pending => "pending",
            FilingStatus::Approved => "approved",
            FilingStatus::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(text: &str) -> Option<FilingStatus> {
        match text {
            "pending" => Some(FilingStatus::Pending),
            "approved" => Some(FilingStatus::Approved),
            "withdrawn" => Some(FilingStatus::Withdrawn),
            _ => None,
        }
    }
}

/// A filing (备案) for care in another region.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Filing {
    pub key: PersonKey,
    pub filing_id: String,
    pub kind: onestop_core::FilingKind,
    /// The region of treatment the filing is for.
    pub destination: Region,
    pub start: Date,
    pub end: Option<Date>,
    /// The person's personal commitment (个人承诺) instead of supporting documents.
    pub commitment: bool,
    pub status: FilingStatus,
    /// The day it was filed: an emergency may be filed after the visit, within a limit.
    pub filed_on: Date,
    pub filed_at: String,
}

/// Where a fee line came from in the hospital's system: its serial and upload batch.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct LineOrigin {
    /// 费用明细流水号 (feedetl_sn).
    pub serial: Option<String>,
    /// 收费批次号 (chrg_bchno).
    pub batch: Option<String>,
}

/// A message of the national interface, stored under its msgid.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NhsaMessage {
    pub institution_id: String,
    pub msgid: String,
    pub infno: String,
    pub request_sha256: String,
    /// The whole response envelope as first answered.
    pub response: String,
    pub at: String,
}

/// A settlement of a person insured elsewhere at one of this node's institutions, as the
/// insured region's node answered it (a federation's place-of-treatment record).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VisitorSettlement {
    pub settlement_id: String,
    pub institution_id: String,
    pub insured: Region,
    pub treatment: Region,
    pub visit_type: VisitType,
    pub reverses: Option<String>,
    pub booked_on: Date,
    pub total: Fen,
    pub fund_total: Fen,
    pub personal_account: Fen,
    pub cash: Fen,
    /// What each tier paid, by tier id (signed like the amounts).
    pub tiers: std::collections::BTreeMap<String, Fen>,
    /// The person's scheme (险种), for reconciliation by scheme; `None` on rows recorded before
    /// version 3 of the schema kept it.
    pub scheme: Option<onestop_core::Scheme>,
    pub recorded_at: String,
}

impl VisitorSettlement {
    pub fn entry(&self) -> onestop_clearing::Entry {
        onestop_clearing::Entry {
            insured: self.insured,
            treatment: self.treatment,
            visit: self.visit_type,
            booked_on: self.booked_on,
            reversal: self.reverses.is_some(),
            medical_cost: self.total,
            fund: self.fund_total,
            personal_account: self.personal_account,
            cash: self.cash,
        }
    }
}

/// A request this node forwarded whose outcome it does not know.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PendingForward {
    pub institution_id: String,
    /// What to ask about: the visit of a settle, the settlement of a cancel, or the settlement
    /// or reversal whose record could not be fetched.
    pub visit_id: String,
    pub idempotency_key: String,
    pub forwarded_at: String,
}

/// A window in which a region's settlement stops (系统维护), announced by its agency.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MaintenanceWindow {
    pub window_id: String,
    pub region: Region,
    pub starts_at: jiff::Timestamp,
    pub ends_at: jiff::Timestamp,
    pub reason: String,
    pub created_by: String,
    pub created_at: String,
    pub cancelled_at: Option<String>,
}

/// An institution's keys for the national interface's encrypted and signed mode.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NhsaKeys {
    /// Whether the institution must send encrypted input.
    pub encrypted: bool,
    /// The SM4 key: 16 ASCII characters or 32 hex digits.
    pub sm4_key: String,
    /// The institution's SM2 public key (hex), to verify `cainfo`.
    pub sm2_public_key: Option<String>,
}

/// A settlement or the reversal of one, as stored.
#[derive(Clone, PartialEq, Debug)]
pub struct SettlementRow {
    pub key: PersonKey,
    pub settlement_id: String,
    pub visit_id: String,
    pub institution_id: String,
    /// The region of the institution (就医地).
    pub treatment_region: Region,
    pub visit_type: VisitType,
    /// For a reversal, the settlement it cancels.
    pub reverses: Option<String>,
    pub date_of_service: Date,
    /// The day it was booked, for daily reconciliation.
    pub booked_on: Date,
    pub booked_at: String,
    pub total: Fen,
    pub fund_total: Fen,
    pub personal_account: Fen,
    pub cash: Fen,
    /// The settlement's full wire form (`SettlementDto` JSON), with its explanation: as stored,
    /// or, for a row the writer is writing, being built by one of its helpers.
    pub result: Later<SettlementJson>,
}

/// A response stored under an idempotency key: replayed byte for byte on a retry.
#[derive(Clone, PartialEq, Debug)]
pub struct StoredResponse {
    pub request_sha256: String,
    pub status: u16,
    /// The JSON body; a settlement's record may still be being built by a helper of the writer
    /// when the request's work returns (it is built before the commit is acknowledged).
    pub body: Later<String>,
}

/// A settlement's journal entry, kept inside its row: the balanced postings, and what it adds to
/// the person's counters of the year of service (`sign` = 1 for a settlement, -1 for its
/// reversal). Both stores write it as the same JSON text (`postings`, `counters` columns) and
/// read it back as rows through the `ledger` and `accumulator_postings` views.
pub struct Journal<'a> {
    pub postings: &'a [onestop_ledger::Posting],
    pub year: i16,
    pub deltas: &'a onestop_core::Deltas,
    pub sign: i64,
}

impl Journal<'_> {
    /// `[["account", fen], ...]`, in posting order.
    pub(crate) fn postings_json(&self) -> String {
        onestop_ledger::assert_balanced(self.postings);
        let rows: Vec<(String, i64)> =
            self.postings.iter().map(|p| (p.account.code(), p.amount.0)).collect();
        serde_json::to_string(&rows).expect("strings and integers serialize")
    }

    /// `[["tier", "pool", "counter", delta], ...]`, admissions as the counter `_/_/admissions`.
    pub(crate) fn counters_json(&self) -> String {
        serde_json::to_string(&self.counters()).expect("strings and integers serialize")
    }

    /// Each counter the entry moves, with its signed delta.
    pub(crate) fn counters(&self) -> Vec<(&str, &str, &str, i64)> {
        let admissions =
            (ADMISSIONS.0, ADMISSIONS.1, ADMISSIONS.2, i64::from(self.deltas.admissions));
        self.deltas
            .entries
            .iter()
            .map(|(k, v)| (&*k.tier, &*k.pool, k.counter.code(), v.0))
            .chain((self.deltas.admissions > 0).then_some(admissions))
            .map(|(tier, pool, counter, delta)| (tier, pool, counter, delta * self.sign))
            .collect()
    }
}

/// The key of a counter row; admissions are kept as a counter of the pseudo-tier `_`.
pub(crate) const ADMISSIONS: (&str, &str, &str) = ("_", "_", "admissions");

/// A stored journal's postings, `[["account", fen], ...]`, back as postings.
pub(crate) fn postings_from_json(
    settlement_id: &str,
    json: &str,
) -> crate::tx::Result<Vec<onestop_ledger::Posting>> {
    let corrupt = |what: String| crate::tx::StoreError::Corrupt(format!("{settlement_id}: {what}"));
    let rows: Vec<(String, i64)> =
        serde_json::from_str(json).map_err(|e| corrupt(format!("postings: {e}")))?;
    rows.into_iter()
        .map(|(account, amount)| {
            let parsed = onestop_ledger::Account::parse(&account)
                .ok_or_else(|| corrupt(format!("account `{account}`")))?;
            Ok(onestop_ledger::Posting { account: parsed, amount: Fen(amount) })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{
        AssistanceCategory as C, AssistanceEntry, Date, assistance_on, mask_id_number,
        postings_from_json,
    };

    #[test]
    fn masked_identity_numbers_show_no_digit_of_the_birth_date() {
        assert_eq!(mask_id_number("110101197001011234"), "110101********1234");
        assert_eq!(mask_id_number("11010119700101123X"), "110101********123X");
        assert_eq!(mask_id_number("110105491231002"), "110105******002");
        assert_eq!(mask_id_number("1234567890"), "**********");
    }

    #[test]
    fn an_old_15_digit_number_and_its_18_character_form_are_one_number() {
        use super::{id_check_character, id_check_matches, identity_number_forms};
        // The standard's own example (GB 11643-1999).
        assert_eq!(id_check_character("11010519491231002"), Some('X'));
        assert!(id_check_matches("11010519491231002X"));
        assert!(!id_check_matches("110105194912310021"));
        assert_eq!(
            identity_number_forms("110105491231002"),
            ["110105491231002", "11010519491231002X"]
        );
        assert_eq!(
            identity_number_forms("11010519491231002x"),
            ["11010519491231002X", "110105491231002"]
        );
        // A number whose check character does not match, or of the 2000s, has one form.
        assert_eq!(identity_number_forms("110105194912310021"), ["110105194912310021"]);
        assert_eq!(identity_number_forms("110105200912310028"), ["110105200912310028"]);
        assert_eq!(identity_number_forms("P0001"), ["P0001"]);
        assert_eq!(id_check_character("1101051949123100"), None);
    }

    /// A list row: its import (in the order imported), category, start and end (`None` open).
    fn row(import: u8, category: C, from: &str, to: Option<&str>) -> AssistanceEntry {
        AssistanceEntry {
            entry_id: format!("110000-2026010100000000{import}-abcdefgh-000002"),
            category,
            effective_from: from.parse().expect("date"),
            effective_to: to.map(|d| d.parse().expect("date")),
        }
    }

    fn on(entries: &[AssistanceEntry], date: &str) -> Option<C> {
        assistance_on(entries, date.parse::<Date>().expect("date"))
    }

    #[test]
    fn a_later_list_ends_or_replaces_an_entitlement_of_its_category() {
        let allowance = row(1, C::SubsistenceAllowance, "2026-01-01", None);
        // The exit list (退出名单) restates the row with an end date.
        let exit = row(2, C::SubsistenceAllowance, "2026-01-01", Some("2026-06-30"));
        let entries = [allowance.clone(), exit];
        assert_eq!(on(&entries, "2026-03-01"), Some(C::SubsistenceAllowance));
        assert_eq!(on(&entries, "2026-11-01"), None, "ended by the later list");
        // A later list's new period replaces the old from its start; before it, the old holds.
        let renewed = row(2, C::SubsistenceAllowance, "2026-03-01", Some("2026-12-31"));
        let entries = [allowance.clone(), renewed];
        assert_eq!(on(&entries, "2026-02-01"), Some(C::SubsistenceAllowance));
        assert_eq!(on(&entries, "2027-01-05"), None, "the renewed period ended");
        // A correction of last year's period does not end this year's entitlement.
        let last_year = row(2, C::SubsistenceAllowance, "2025-06-01", Some("2025-12-31"));
        assert_eq!(
            on(&[allowance.clone(), last_year], "2026-04-01"),
            Some(C::SubsistenceAllowance)
        );
        // Another category's list is another statement: both stand, the later start wins.
        let illness = row(2, C::ImpoverishedByIllness, "2026-03-01", Some("2026-05-31"));
        let entries = [allowance.clone(), illness];
        assert_eq!(on(&entries, "2026-04-01"), Some(C::ImpoverishedByIllness));
        assert_eq!(on(&entries, "2026-07-01"), Some(C::SubsistenceAllowance));
        // The same row imported twice is one entitlement; an earlier import never ends a later.
        let again = row(0, C::SubsistenceAllowance, "2026-01-01", Some("2026-01-31"));
        assert_eq!(on(&[again, allowance], "2026-09-01"), Some(C::SubsistenceAllowance));
    }

    #[test]
    fn a_stored_journal_reads_back_or_is_reported_damaged_with_its_settlement() {
        let postings = postings_from_json("S-1", r#"[["medical_cost",-1000],["cash",1000]]"#)
            .expect("a sound entry");
        let read: Vec<(String, i64)> =
            postings.iter().map(|p| (p.account.code(), p.amount.0)).collect();
        assert_eq!(read, [("medical_cost".to_owned(), -1000), ("cash".to_owned(), 1000)]);
        for (damaged, says) in [
            (r#"[["medical_cost",-1000],["cash""#, "postings:"),
            (r#"[["no_such_account",5]]"#, "account `no_such_account`"),
        ] {
            let error = postings_from_json("S-1", damaged).expect_err(damaged).to_string();
            assert!(
                error.contains("corrupt") && error.contains("S-1") && error.contains(says),
                "{error}"
            );
        }
    }
}
