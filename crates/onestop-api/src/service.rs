//! Requests and responses of the settlement service (`/v1`), beside the claim and settlement
//! formats they reuse.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::claim::{LineDto, YtdDto};
use crate::settlement::SettlementDto;
use crate::wire::Scalar;

/// `POST /v1/visits`: register an outpatient visit or an admission (挂号/入院).
#[derive(Clone, Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OpenVisitRequest {
    pub person_id: Option<String>,
    /// The person's insured region; defaults to the institution's own region.
    pub insured_region: Option<Scalar>,
    pub visit: Option<Scalar>,
    pub date_of_service: Option<Scalar>,
    pub admission_number: Option<Scalar>,
    /// The disease treated (病种编码), for policies whose rules differ by disease group
    /// (门诊慢特病).
    pub disease: Option<Scalar>,
}

/// A fee line as stored on a visit, with the catalog's split of it (as 2204 answers).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct VisitLineDto {
    pub line_no: i64,
    pub code: String,
    pub name: String,
    pub class: String,
    pub quantity: String,
    pub unit_price: String,
    pub amount: String,
    pub price_limit: Option<String>,
    pub outside_catalog: String,
    pub over_limit: String,
    pub class_b_first_self_pay: String,
    pub in_scope: String,
    pub first_self_pay_ratio: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct VisitDto {
    pub visit_id: String,
    pub person_id: String,
    pub insured_region: String,
    pub institution_id: String,
    pub visit: String,
    pub date_of_service: String,
    pub admission_number: Option<u16>,
    /// The disease treated (病种编码), if the visit names one.
    #[serde(default)]
    pub disease: Option<String>,
    /// `open` or `settled`.
    pub status: String,
    /// The settlement in force when settled: what to cancel, or what an unknown outcome was.
    #[serde(default)]
    pub settlement_id: Option<String>,
    pub opened_at: String,
    pub lines: Vec<VisitLineDto>,
}

/// `PATCH /v1/visits/{visit_id}`: change an open visit's kind or disease (就诊信息上传, as
/// 2203 does). A field left out is left as it was.
#[derive(Clone, Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateVisitRequest {
    /// Another visit type of the same kind (outpatient or inpatient).
    pub visit: Option<Scalar>,
    /// The disease treated (病种编码); `null` to name none.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub disease: Option<Option<Scalar>>,
}

/// A field that is present, even as `null` (`Some(None)`), unlike one left out (`None`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `POST /v1/visits/{visit_id}/lines`: upload fee lines (费用明细上传).
#[derive(Clone, Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AddLinesRequest {
    pub lines: Vec<LineDto>,
}

/// `POST /v1/visits/{visit_id}/pre-settle` and `/settle`.
#[derive(Clone, Debug, Deserialize, Serialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SettleRequest {
    /// Pay the personal share from the personal account where the policy allows (default true).
    pub use_personal_account: Option<bool>,
    /// The days the bill covers (住院天数, 护理天数), 1 to 3,660, for rules that pay at most so
    /// much a day. An admission discharged through the national interface (2402) counts them
    /// itself: from admission to discharge, the day of admission counted and not the day of
    /// discharge, at least 1.
    pub days: Option<Scalar>,
}

/// A stored settlement or reversal.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct SettlementRecordDto {
    pub settlement_id: String,
    pub visit_id: String,
    pub person_id: String,
    pub insured_region: String,
    pub institution_id: String,
    /// `settled`, `cancelled` (a settlement that was reversed) or `reversal`.
    pub status: String,
    /// For a reversal, the settlement it cancels; for a cancelled settlement, its reversal.
    pub reverses: Option<String>,
    pub reversed_by: Option<String>,
    pub booked_at: String,
    /// Signed: a reversal's amounts are negative.
    pub total: String,
    pub fund_total: String,
    pub personal_account: String,
    pub cash: String,
    /// The full split with its explanation (for a reversal: the split it cancels).
    pub settlement: SettlementDto,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct EnrolmentDto {
    pub year: i16,
    pub scheme: String,
    pub category: String,
    pub civil_servant: bool,
    pub enterprise_supplementary: bool,
    pub needy: bool,
}

/// `GET /v1/persons/{region}/{person_id}`: a person and what they used this year (5206).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct PersonViewDto {
    pub person_id: String,
    pub insured_region: String,
    pub name: String,
    pub id_number: String,
    pub birth_date: String,
    pub gender: String,
    /// Age on `as_of`.
    pub age: u8,
    pub account_balance: String,
    pub enrolment: Option<EnrolmentDto>,
    /// The assistance-recipient category in force on `as_of`, if any.
    pub assistance: Option<String>,
    /// The day the age and assistance category are of: today, or the last day of a past year
    /// asked for (`?year=`).
    pub as_of: String,
    pub ytd: YtdDto,
    /// The credits to the personal account (个人账户划入) for months of the year shown, in the
    /// order made.
    #[serde(default)]
    pub account_credits: Vec<AccountCreditDto>,
}

/// `POST /v1/persons/{region}/{person_id}/account-credits` (agency): credit the person's
/// personal account (个人账户划入) for a month. Needs an `Idempotency-Key`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AccountCreditRequest {
    /// Yuan, above 0: `"236.50"`.
    pub amount: Scalar,
    /// The month the credit is for, `YYYY-MM`.
    pub period: String,
    /// Why, as the clerk writes it (月度划入, 补划); at most 100 characters.
    #[serde(default)]
    pub note: String,
}

/// A credit to a personal account, as made.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct AccountCreditDto {
    /// `C-<region>-<person>-<n>`.
    pub credit_id: String,
    pub person_id: String,
    pub insured_region: String,
    pub period: String,
    pub amount: String,
    /// The account's balance after this credit.
    pub balance_after: String,
    pub note: String,
    /// The agency that made it, and when.
    pub credited_by: String,
    pub credited_at: String,
}

/// `POST /v1/persons` (agency): register or update a person and their enrolments.
#[derive(Clone, Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RegisterPersonRequest {
    pub person_id: String,
    pub name: String,
    pub id_number: String,
    pub birth_date: String,
    pub gender: String,
    pub account_balance: Option<Scalar>,
    pub enrolments: Vec<EnrolmentRequest>,
}

#[derive(Clone, Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EnrolmentRequest {
    pub year: i16,
    pub category: String,
    #[serde(default)]
    pub civil_servant: bool,
    #[serde(default)]
    pub enterprise_supplementary: bool,
    #[serde(default)]
    pub needy: bool,
}

/// `POST /v1/institutions` (agency): register an institution of the agency's region.
#[derive(Clone, Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RegisterInstitutionRequest {
    pub institution_id: String,
    pub name: String,
    /// `community`, `1`, `2` or `3`.
    pub level: Scalar,
}

/// The credential of a newly registered institution: shown once, stored only as a hash.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct CredentialDto {
    pub institution_id: String,
    pub token: String,
}

/// `GET /v1/reconciliation?day=YYYY-MM-DD`: an institution's day, to match its own books.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct ReconciliationDto {
    pub institution_id: String,
    pub day: String,
    pub settlements: u64,
    pub reversals: u64,
    /// Net amounts of the day (reversals subtract), by account: `medical_cost`, `tier:<id>`,
    /// `personal_account`, `cash`.
    pub amounts: BTreeMap<String, String>,
    pub fund_total: String,
}

/// `POST /v1/assistance-lists`: the outcome of an import.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct AssistanceImportDto {
    pub import_id: String,
    pub file_name: String,
    /// The rows kept: the list's rows less the repeated ones.
    pub rows: usize,
    /// Rows that repeat an earlier row of the file (the same person, category and dates), not
    /// kept twice.
    pub duplicates: Vec<DuplicateRowDto>,
}

/// A list row that repeats an earlier one: `row` says what `same_as` said already.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct DuplicateRowDto {
    pub row: usize,
    pub same_as: usize,
}

/// `POST /v1/filings`: an agency files a person of its region for care elsewhere (异地就医备案).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FilingRequest {
    pub person_id: String,
    /// One of `long_term_resident`, `resettled_retiree`, `referral`, `emergency`,
    /// `other_temporary`.
    pub kind: String,
    /// The region of treatment (就医地), six digits.
    pub destination: Scalar,
    /// First day covered, `YYYY-MM-DD`.
    pub start: String,
    /// Last day covered; absent: until withdrawn.
    #[serde(default)]
    pub end: Option<String>,
    /// Filed on the person's own commitment (个人承诺制) instead of documents.
    #[serde(default)]
    pub commitment: bool,
    /// The day the filing was made when it is recorded later (an emergency filed after the
    /// visit); defaults to today.
    #[serde(default)]
    pub filed_on: Option<String>,
}

/// A filing as stored.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct FilingDto {
    pub filing_id: String,
    pub person_id: String,
    pub insured_region: String,
    pub kind: String,
    /// The kind's Chinese name.
    pub kind_zh: String,
    pub destination: String,
    pub start: String,
    pub end: Option<String>,
    pub commitment: bool,
    /// `pending`, `approved` or `withdrawn`.
    pub status: String,
    pub filed_on: String,
}

/// `GET /v1/audit-log`: a page of the audit log (审计日志) of a region, in time order.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct AuditLogDto {
    /// The insured region whose people the rows are about.
    pub region: String,
    pub entries: Vec<AuditEntryDto>,
    /// Whether more rows follow now: read on with `after = next`.
    pub more: bool,
    /// The cursor after the last row (or the one given, for an empty page): pass it as `after`
    /// to read on, now or later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// One audited request about a person.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct AuditEntryDto {
    /// When, RFC 3339 with milliseconds.
    pub at: String,
    /// The institution, agency or auditor whose credential made the request.
    pub actor: String,
    /// `read_person`, `register_person`, `read_filings`, `file`, `approve_filing`,
    /// `withdraw_filing`, `read_visit`, `read_settlement` or `read_audit_log`.
    pub action: String,
    /// The action's Chinese name, such as 查询结算信息.
    pub action_zh: String,
    pub person_id: String,
    pub insured_region: String,
    /// What was read or changed: a visit, settlement or filing id, a year; identity numbers
    /// masked.
    pub detail: String,
    /// The interface the request came by (渠道): `v1` (this API), `nhsa` (the national
    /// interface, directly or forwarded by another node) or `local` (a command run on the
    /// server). Absent for rows written before channels were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The national interface's transaction number (`infno`), for `nhsa`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infno: Option<String>,
    /// The national interface's message id (`msgid`), for `nhsa`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msgid: Option<String>,
    /// True when a repeated `msgid` was answered with the first answer (重发应答): the data was
    /// sent again, so the read is recorded again.
    #[serde(default)]
    pub replayed: bool,
}

/// `POST /v1/reconciliation`: a hospital's own totals for a day (对账), and, when they do not
/// match, its list of settlements. Amounts are net of reversals.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReconcileRequest {
    /// `YYYY-MM-DD`, the day the settlements were booked.
    pub day: String,
    pub settlements: u64,
    pub reversals: u64,
    pub medical_cost: Scalar,
    pub fund_total: Scalar,
    pub personal_account: Scalar,
    pub cash: Scalar,
    /// What each tier paid, by tier id (`basic`, `critical_illness`, ...); tiers left out are
    /// not compared.
    #[serde(default)]
    pub tiers: BTreeMap<String, Scalar>,
    /// Every settlement and reversal of the day in the hospital's books; compared one by one.
    #[serde(default)]
    pub list: Option<Vec<ReconcileItem>>,
}

/// One settlement or reversal as the hospital booked it.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReconcileItem {
    pub settlement_id: String,
    pub total: Scalar,
    pub fund_total: Scalar,
    pub personal_account: Scalar,
    pub cash: Scalar,
}

/// The answer to a reconciliation: matched, or exactly what differs.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct ReconcileResultDto {
    pub institution_id: String,
    pub day: String,
    /// `true` when the totals match (and the list, if sent).
    pub matched: bool,
    /// The totals that differ: `{field, ours, yours}`.
    pub totals: Vec<TotalDifferenceDto>,
    /// The settlements that differ, when a list was sent.
    pub settlements: Vec<SettlementDifferenceDto>,
    /// Totals differ and no list was sent: send the list to find the settlements.
    pub list_needed: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct TotalDifferenceDto {
    pub field: String,
    pub ours: String,
    pub yours: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct SettlementDifferenceDto {
    pub settlement_id: String,
    /// `missing_in_yours` (booked here, not in the list), `unknown_here` (in the list, not
    /// booked here that day), `amounts_differ`, or `listed_twice_in_yours`.
    pub problem: String,
    pub ours: Option<ReconcileItem>,
    pub yours: Option<ReconcileItem>,
}

/// `POST /v1/maintenance-windows`: an agency announces a window in which settlement for its
/// region's people stops (系统维护).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindowRequest {
    /// RFC 3339 with an offset, such as `2024-06-15T22:00:00+08:00`.
    pub starts_at: String,
    pub ends_at: String,
    pub reason: String,
}

/// An announced maintenance window.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct MaintenanceWindowDto {
    pub window_id: String,
    pub region: String,
    pub starts_at: String,
    pub ends_at: String,
    pub reason: String,
}

/// `GET /v1/status`: every region this node knows, whether settlement works for its people now,
/// and its next maintenance window.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct StatusDto {
    pub node: String,
    pub now: String,
    pub regions: Vec<RegionStatusDto>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct RegionStatusDto {
    pub region: String,
    /// The region's name from its policy, when this node has it.
    pub name: Option<String>,
    /// `local`, or the name of the peer node that holds the region's people.
    pub served_by: String,
    /// `up`, `maintenance` or `unreachable`.
    pub state: String,
    pub state_zh: String,
    pub current_window: Option<MaintenanceWindowDto>,
    pub next_window: Option<MaintenanceWindowDto>,
    /// The region's windows not yet over, in order.
    pub windows: Vec<MaintenanceWindowDto>,
}
