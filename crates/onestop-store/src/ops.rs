//! Every operation of the service, written once over [`Tx`]: both stores run exactly this code.
//!
//! An operation returns `Ok(Ok(answer))` or `Ok(Err(service error))` for every business outcome,
//! and `Err(StoreError)` only when the database failed, in which case the caller rolls back.
//! Settle and cancel return a [`StoredResponse`]: what was answered, which is also what an
//! idempotency key replays.

use onestop_api::service::{SettleRequest, SettlementRecordDto};
use onestop_api::{ServiceCode, ServiceError, SettlementDto, settlement_json};
use onestop_core::accumulators::Deltas;
use onestop_core::{Claim, Date, Line, Person, PolicyBook};

use crate::later::{Explain, Later, SettlementJson, spliced};
use crate::model::{
    IdKind, Institution, Journal, PersonKey, PersonRow, Role, SettlementRow, StoredResponse,
    VisitRow, VisitStatus, make_id, parse_id,
};
use crate::tx::{Result, Tx};

/// A business answer: the value, or the error to send.
pub type Answer<T> = std::result::Result<T, ServiceError>;

/// What every operation may need besides the transaction: the policies, the time and the
/// request's channel.
#[derive(Clone)]
pub struct Env<'a> {
    pub book: &'a PolicyBook,
    /// Now, as an RFC 3339 timestamp (booking time, audit).
    pub now: String,
    /// Today in the service's time zone (booking day, reconciliation).
    pub today: Date,
    /// The interface the request came by, for its audit rows.
    pub channel: crate::audit::Channel,
}

/// The idempotency key of a request and the hash of what it asked.
pub struct Idempotency<'a> {
    pub key: &'a str,
    /// The request's hash, as stored with its answer.
    pub request_sha256: &'a str,
    /// Another hash the same request was stored under by an earlier version (of its body's
    /// bytes as sent), so that a retry across an upgrade still replays.
    pub also: Option<&'a str>,
}

pub(crate) fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("wire types always serialize")
}

/// Turns an answer into the response stored and sent: 200 with the body, or the error.
pub fn respond<T: serde::Serialize>(answer: Answer<T>, request_sha256: &str) -> StoredResponse {
    let (status, body) = match answer {
        Ok(value) => (200, json(&value)),
        Err(error) => (error.status, json(&error.body)),
    };
    StoredResponse { request_sha256: request_sha256.to_owned(), status, body: Later::ready(body) }
}

fn id_of(id: &str, want: &[IdKind], not_found: ServiceCode) -> Answer<(IdKind, PersonKey)> {
    match parse_id(id) {
        Some((kind, key)) if want.contains(&kind) => Ok((kind, key)),
        Some(_) => Err(ServiceError::new(not_found, format!("`{id}` is not an id of this kind"))),
        None => Err(ServiceError::new(
            ServiceCode::IdInvalid,
            format!("`{id}` is not an id this service issued (such as V-110000-P0001-1)"),
        )),
    }
}

/// The institution must own what it touches; agencies and auditors read their region.
fn may_read(actor: &Institution, key: &PersonKey, owner: &str) -> Answer<()> {
    let allowed = match actor.role {
        Role::Institution => actor.institution_id == owner,
        Role::Agency | Role::Auditor => actor.region == key.region,
    };
    if allowed { Ok(()) } else { Err(forbidden(actor)) }
}

fn may_act(actor: &Institution, owner: &str) -> Answer<()> {
    if actor.role == Role::Institution && actor.institution_id == owner {
        Ok(())
    } else {
        Err(forbidden(actor))
    }
}

pub(crate) fn forbidden(actor: &Institution) -> ServiceError {
    ServiceError::new(
        ServiceCode::Forbidden,
        format!("{} `{}` may not do this", actor.role.code(), actor.institution_id),
    )
}

/// Settles a visit: idempotent under `idempotency`, serialized per person.
pub fn settle(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    visit_id: &str,
    request: &SettleRequest,
    idempotency: &Idempotency<'_>,
) -> Result<StoredResponse> {
    let key = match id_of(visit_id, &[IdKind::Visit], ServiceCode::VisitNotFound) {
        Ok((_, key)) => key,
        Err(error) => return Ok(respond::<()>(Err(error), idempotency.request_sha256)),
    };
    // Without a person there is no row to lock and nothing to settle: the answer is the same
    // on every retry, so it is not stored.
    let Some(person) = tx.person(&key, true)? else {
        return Ok(respond::<()>(Err(not_found_visit(visit_id)), idempotency.request_sha256));
    };
    if let Some(replay) = replayed(tx, &key, actor, idempotency)? {
        return Ok(replay);
    }
    let answer = settle_visit(tx, env, actor, &person, visit_id, request)?;
    remember(tx, env, &key, actor, idempotency, answer)
}

/// The stored response of a retried request, or the refusal of a reused key.
pub(crate) fn replayed(
    tx: &mut dyn Tx,
    key: &PersonKey,
    actor: &Institution,
    idempotency: &Idempotency<'_>,
) -> Result<Option<StoredResponse>> {
    let Some(stored) = tx.idempotency(key, &actor.institution_id, idempotency.key)? else {
        return Ok(None);
    };
    if stored.request_sha256 == idempotency.request_sha256
        || idempotency.also == Some(stored.request_sha256.as_str())
    {
        return Ok(Some(resolve(tx, key, stored)?));
    }
    let error = ServiceError::new(
        ServiceCode::IdempotencyKeyReused,
        format!("idempotency key `{}` was used for another request", idempotency.key),
    );
    Ok(Some(respond::<()>(Err(error), idempotency.request_sha256)))
}

/// A stored success names its settlement instead of repeating its record (which carries the
/// whole explanation): the ledger row is the single copy, and the replay rebuilds the exact
/// bytes first answered (serialisation is deterministic).
pub const SETTLEMENT_REFERENCE: &str = "@settlement:";

/// Stores the answer under the idempotency key and returns it.
fn remember(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    key: &PersonKey,
    actor: &Institution,
    idempotency: &Idempotency<'_>,
    answer: Answer<RecordJson>,
) -> Result<StoredResponse> {
    let reference = answer.as_ref().ok().map(|record| record.settlement_id.clone());
    let response = match answer {
        Ok(record) => StoredResponse {
            request_sha256: idempotency.request_sha256.to_owned(),
            status: 200,
            body: record.body,
        },
        Err(error) => respond::<()>(Err(error), idempotency.request_sha256),
    };
    let stored = match reference {
        Some(id) => StoredResponse {
            body: Later::ready(format!("{SETTLEMENT_REFERENCE}{id}")),
            ..response.clone()
        },
        None => response.clone(),
    };
    tx.insert_idempotency(key, &actor.institution_id, idempotency.key, &stored, &env.now)?;
    Ok(response)
}

/// The response as first answered, rebuilt from its settlement if it names one; a settlement
/// cancelled since is answered as it stands (`cancelled`, with `reversed_by`), so that a key
/// reused for the settlement after a refund is not taken for a new settlement.
fn resolve(tx: &mut dyn Tx, key: &PersonKey, stored: StoredResponse) -> Result<StoredResponse> {
    let Some(id) = stored.body.get()?.strip_prefix(SETTLEMENT_REFERENCE) else { return Ok(stored) };
    let row = tx.settlement(key, id)?.ok_or_else(|| {
        crate::tx::StoreError::Corrupt(format!(
            "idempotency record names a missing settlement {id}"
        ))
    })?;
    let reversed_by = reversed_by(tx, key, &row)?;
    let body = record_json(&row, reversed_by, &row.result.get()?.text)?.body;
    Ok(StoredResponse { body, ..stored })
}

/// The reversal of a settlement, if it was cancelled; a reversal is reversed by nothing.
fn reversed_by(tx: &mut dyn Tx, key: &PersonKey, row: &SettlementRow) -> Result<Option<String>> {
    match row.reverses {
        Some(_) => Ok(None),
        None => Ok(tx.reversal_of(key, &row.settlement_id)?.map(|r| r.settlement_id)),
    }
}

fn not_found_visit(visit_id: &str) -> ServiceError {
    ServiceError::new(ServiceCode::VisitNotFound, format!("no visit `{visit_id}`"))
}

/// The visit, checked for the actor and its state, with its lines.
fn open_visit_with_lines(
    tx: &mut dyn Tx,
    actor: &Institution,
    key: &PersonKey,
    visit_id: &str,
) -> Result<Answer<(VisitRow, Vec<Line>)>> {
    let Some(visit) = tx.visit(key, visit_id)? else { return Ok(Err(not_found_visit(visit_id))) };
    if let Err(error) = may_act(actor, &visit.institution_id) {
        return Ok(Err(error));
    }
    if let Err(error) = crate::visits::require_open(&visit) {
        return Ok(Err(error));
    }
    let lines: Vec<Line> = tx.lines(key, visit_id)?.into_iter().map(|(_, line)| line).collect();
    if lines.is_empty() {
        return Ok(Err(ServiceError::new(
            ServiceCode::VisitHasNoLines,
            format!("visit `{visit_id}` has no fee lines to settle"),
        )));
    }
    Ok(Ok((visit, lines)))
}

/// The claim of a visit: the person as enrolled on the date of service, the institution's
/// region and level, and the person's accumulators of that year.
pub(crate) fn claim_of(
    tx: &mut dyn Tx,
    book: &PolicyBook,
    actor: &Institution,
    person: &PersonRow,
    visit: &VisitRow,
    lines: Vec<Line>,
    use_personal_account: bool,
) -> Result<Answer<(Claim, onestop_core::Accumulators)>> {
    let date = visit.date_of_service;
    let year = date.year();
    let Some(enrolment) = tx.enrolment(&person.key, year)? else {
        return Ok(Err(ServiceError::new(
            ServiceCode::PersonNotEnrolled,
            format!("person `{}` is not enrolled for {year}", person.key.person_id),
        )));
    };
    let Some(level) = actor.level else { return Ok(Err(forbidden(actor))) };
    let assistance = tx.assistance(&person.key)?;
    let on_list = crate::model::assistance_on(&assistance, date);
    let filing = crate::filings::filing_for(tx, book, &person.key, actor.region, date)?;
    let claim = Claim {
        bill: onestop_core::Bill {
            filing,
            date_of_service: date,
            treatment_region: actor.region,
            visit: visit.visit_type,
            level,
            admission_number: visit.admission_number,
            use_personal_account,
            disease: visit.disease.clone(),
            days: None,
            lines,
        },
        person: Person {
            insured_region: person.key.region,
            category: enrolment.category,
            age: person.age_on(date),
            assistance: on_list,
            needy: enrolment.needy,
            civil_servant: enrolment.civil_servant,
            enterprise_supplementary: enrolment.enterprise_supplementary,
            account_balance: person.account_balance,
        },
    };
    let ytd = tx.accumulators(&person.key, year)?;
    Ok(Ok((claim, ytd)))
}

/// An admission's days (住院天数): from the date of service to the date of discharge, or to
/// `today` while the person is still in, the first day counted and not the last (算入不算出), at
/// least 1. `None` for other visits, or a discharge that is not a date on or after admission.
fn stay_days(visit: &VisitRow, today: Date) -> Option<u16> {
    if visit.visit_type != onestop_core::VisitType::Inpatient {
        return None;
    }
    let out = match visit.discharged_at.as_deref() {
        Some(at) => at.get(..10)?.parse().ok()?,
        None => today,
    };
    let days = (out - visit.date_of_service).get_days();
    if days < 0 {
        return None;
    }
    let days = u16::try_from(days.max(1)).ok()?;
    Some(days).filter(|days| *days <= onestop_core::claim::DAYS_MAX)
}

/// Computes a visit's split without writing anything (预结算).
pub fn presettle(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    visit_id: &str,
    request: &SettleRequest,
) -> Result<Answer<SettlementDto>> {
    presettled(tx, env, actor, visit_id, request, |claim, insured, treatment, ytd, settlement| {
        SettlementDto::from_core(claim, insured, treatment, ytd, settlement)
    })
}

/// As [`presettle`], the answer as its JSON, written straight from the engine's values (the
/// same bytes as the DTO's, without building it: `onestop_api::settlement_json`).
pub fn presettle_json(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    visit_id: &str,
    request: &SettleRequest,
) -> Result<Answer<String>> {
    presettled(tx, env, actor, visit_id, request, settlement_json)
}

/// A visit's split, computed on what `tx` reads and given to `answer`.
fn presettled<T>(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    visit_id: &str,
    request: &SettleRequest,
    answer: impl FnOnce(
        &Claim,
        &onestop_core::policy::Policy,
        &onestop_core::policy::Policy,
        &onestop_core::Accumulators,
        &onestop_core::Settlement,
    ) -> T,
) -> Result<Answer<T>> {
    let key = match id_of(visit_id, &[IdKind::Visit], ServiceCode::VisitNotFound) {
        Ok((_, key)) => key,
        Err(error) => return Ok(Err(error)),
    };
    let Some(person) = tx.person(&key, false)? else { return Ok(Err(not_found_visit(visit_id))) };
    let (_, claim, ytd) = match visit_claim(tx, env, actor, &person, visit_id, request)? {
        Ok(found) => found,
        Err(error) => return Ok(Err(error)),
    };
    Ok(env
        .book
        .split(&claim, &ytd)
        .map_err(ServiceError::from)
        .map(|(s, insured, treatment)| answer(&claim, insured, treatment, &ytd, &s)))
}

/// The visit (open, the actor's, with lines) and its claim with the person's totals: what
/// pre-settle and settle compute on.
fn visit_claim(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    person: &PersonRow,
    visit_id: &str,
    request: &SettleRequest,
) -> Result<Answer<(VisitRow, Claim, onestop_core::Accumulators)>> {
    let (visit, lines) = match open_visit_with_lines(tx, actor, &person.key, visit_id)? {
        Ok(found) => found,
        Err(error) => return Ok(Err(error)),
    };
    let use_account = request.use_personal_account.unwrap_or(true);
    let days = match request.days.as_ref().map(onestop_api::claim::parse_days).transpose() {
        Ok(days) => days.or_else(|| stay_days(&visit, env.today)),
        Err(rejection) => return Ok(Err(rejection.into())),
    };
    let claimed = claim_of(tx, env.book, actor, person, &visit, lines, use_account)?;
    Ok(claimed.map(|(mut claim, ytd)| {
        claim.bill.days = days;
        (visit, claim, ytd)
    }))
}

fn settle_visit(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    person: &PersonRow,
    visit_id: &str,
    request: &SettleRequest,
) -> Result<Answer<RecordJson>> {
    let key = &person.key;
    let (visit, claim, ytd) = match visit_claim(tx, env, actor, person, visit_id, request)? {
        Ok(found) => found,
        Err(error) => return Ok(Err(error)),
    };
    let (settlement, insured, treatment) = match env.book.split(&claim, &ytd) {
        Ok((settlement, insured, treatment)) => (settlement, insured.clone(), treatment.clone()),
        Err(rejection) => return Ok(Err(rejection.into())),
    };
    let balance = person.account_balance - settlement.personal_account;
    let settlement_id = make_id(IdKind::Settlement, key, tx.next_seq_with_balance(key, balance)?);
    let postings = onestop_ledger::postings(&settlement);
    let (year, deltas) = (ytd.year, settlement.deltas.clone());
    let admission_number = settlement.admission_number;
    let mut row = SettlementRow {
        key: key.clone(),
        settlement_id: settlement_id.clone(),
        visit_id: visit_id.to_owned(),
        institution_id: actor.institution_id.clone(),
        treatment_region: actor.region,
        visit_type: visit.visit_type,
        reverses: None,
        date_of_service: visit.date_of_service,
        booked_on: env.today,
        booked_at: env.now.clone(),
        total: settlement.totals.total,
        fund_total: settlement.fund_total(),
        personal_account: settlement.personal_account,
        cash: settlement.cash,
        result: Later::ready(SettlementJson::new(String::new())),
    };
    // The explanation is serialized on the side (a helper of the SQLite writer) while this
    // goes on; the row is written with it before the commit.
    let explained = tx.explain(Explain {
        settlement: Box::new(move || {
            settlement_json(&claim, &insured, &treatment, &ytd, &settlement)
        }),
        head: record_head(&row, None),
    });
    row.result = explained.result;
    let journal = Journal { postings: &postings, year, deltas: &deltas, sign: 1 };
    tx.insert_settlement(&row, &journal)?;
    tx.add_to_accumulators(key, &journal)?;
    tx.set_visit_settled(key, visit_id, admission_number)?;
    Ok(Ok(RecordJson { settlement_id, body: explained.body }))
}

/// A settlement record serialized: its id, and the JSON body (which may still be being built).
pub(crate) struct RecordJson {
    pub settlement_id: String,
    pub body: Later<String>,
}

/// The record of `row` as JSON, with the stored settlement JSON spliced in rather than parsed
/// and serialized again. The bytes are exactly `json(&record(row, reversed_by, dto))`. The
/// stored JSON is checked first: a damaged row is reported, never sent.
pub(crate) fn record_json(
    row: &SettlementRow,
    reversed_by: Option<String>,
    dto_json: &str,
) -> Result<RecordJson> {
    serde_json::from_str::<serde::de::IgnoredAny>(dto_json)
        .map_err(|e| crate::tx::StoreError::Corrupt(format!("{}: {e}", row.settlement_id)))?;
    Ok(fresh_record_json(row, reversed_by, dto_json))
}

/// As [`record_json`], for a settlement JSON serialized by this very request (no check: the
/// serializer wrote it a moment ago).
pub(crate) fn fresh_record_json(
    row: &SettlementRow,
    reversed_by: Option<String>,
    dto_json: &str,
) -> RecordJson {
    let body = spliced(record_head(row, reversed_by), dto_json);
    RecordJson { settlement_id: row.settlement_id.clone(), body: Later::ready(body) }
}

/// The JSON of the record of `row` up to its settlement: `{..., "settlement":`.
fn record_head(row: &SettlementRow, reversed_by: Option<String>) -> String {
    let out = RecordOut {
        settlement_id: &row.settlement_id,
        visit_id: &row.visit_id,
        person_id: &row.key.person_id,
        insured_region: row.key.region_text(),
        institution_id: &row.institution_id,
        status: status_of(row, &reversed_by),
        reverses: &row.reverses,
        reversed_by: &reversed_by,
        booked_at: &row.booked_at,
        total: row.total.to_string(),
        fund_total: row.fund_total.to_string(),
        personal_account: row.personal_account.to_string(),
        cash: row.cash.to_string(),
    };
    let mut head = json(&out);
    assert_eq!(head.pop(), Some('}'), "an object");
    head.push_str(",\"settlement\":");
    head
}

/// `SettlementRecordDto` for serializing, its fields in the same order; the last one,
/// `settlement`, is spliced in after them.
#[derive(serde::Serialize)]
struct RecordOut<'a> {
    settlement_id: &'a str,
    visit_id: &'a str,
    person_id: &'a str,
    insured_region: String,
    institution_id: &'a str,
    status: &'static str,
    reverses: &'a Option<String>,
    reversed_by: &'a Option<String>,
    booked_at: &'a str,
    total: String,
    fund_total: String,
    personal_account: String,
    cash: String,
}

fn status_of(row: &SettlementRow, reversed_by: &Option<String>) -> &'static str {
    match (&row.reverses, reversed_by) {
        (Some(_), _) => "reversal",
        (None, Some(_)) => "cancelled",
        (None, None) => "settled",
    }
}

/// The wire form of a stored settlement or reversal.
pub(crate) fn record(
    row: &SettlementRow,
    reversed_by: Option<String>,
    settlement: SettlementDto,
) -> SettlementRecordDto {
    let status = status_of(row, &reversed_by);
    SettlementRecordDto {
        settlement_id: row.settlement_id.clone(),
        visit_id: row.visit_id.clone(),
        person_id: row.key.person_id.clone(),
        insured_region: row.key.region_text(),
        institution_id: row.institution_id.clone(),
        status: status.to_owned(),
        reverses: row.reverses.clone(),
        reversed_by,
        booked_at: row.booked_at.clone(),
        total: row.total.to_string(),
        fund_total: row.fund_total.to_string(),
        personal_account: row.personal_account.to_string(),
        cash: row.cash.to_string(),
        settlement,
    }
}

pub(crate) fn stored_dto(row: &SettlementRow) -> Result<SettlementDto> {
    serde_json::from_str(&row.result.get()?.text).map_err(|e| {
        crate::tx::StoreError::Corrupt(format!("settlement {}: {e}", row.settlement_id))
    })
}

/// Cancels a settlement with a reversing entry (冲销); cancelling twice returns the same
/// reversal.
pub fn cancel(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    settlement_id: &str,
    idempotency: &Idempotency<'_>,
) -> Result<StoredResponse> {
    let kinds = [IdKind::Settlement, IdKind::Reversal];
    let key = match id_of(settlement_id, &kinds, ServiceCode::SettlementNotFound) {
        Ok((IdKind::Reversal, _)) => {
            let error = ServiceError::new(
                ServiceCode::SettlementIsAReversal,
                format!(
                    "`{settlement_id}` is a reversal; cancel the settlement it reverses instead"
                ),
            );
            return Ok(respond::<()>(Err(error), idempotency.request_sha256));
        }
        Ok((_, key)) => key,
        Err(error) => return Ok(respond::<()>(Err(error), idempotency.request_sha256)),
    };
    let Some(person) = tx.person(&key, true)? else {
        let error = not_found_settlement(settlement_id);
        return Ok(respond::<()>(Err(error), idempotency.request_sha256));
    };
    if let Some(replay) = replayed(tx, &key, actor, idempotency)? {
        return Ok(replay);
    }
    let answer = reverse(tx, env, actor, &person, settlement_id)?;
    remember(tx, env, &key, actor, idempotency, answer)
}

fn not_found_settlement(settlement_id: &str) -> ServiceError {
    ServiceError::new(ServiceCode::SettlementNotFound, format!("no settlement `{settlement_id}`"))
}

fn reverse(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    person: &PersonRow,
    settlement_id: &str,
) -> Result<Answer<RecordJson>> {
    let key = &person.key;
    let Some(original) = tx.settlement(key, settlement_id)? else {
        return Ok(Err(not_found_settlement(settlement_id)));
    };
    if let Err(error) = may_act(actor, &original.institution_id) {
        return Ok(Err(error));
    }
    if let Some(existing) = tx.reversal_of(key, settlement_id)? {
        return record_json(&existing, None, &existing.result.get()?.text).map(Ok);
    }
    let dto = stored_dto(&original)?;
    let balance = person.account_balance + original.personal_account;
    let reversal_id = make_id(IdKind::Reversal, key, tx.next_seq_with_balance(key, balance)?);
    let row = SettlementRow {
        settlement_id: reversal_id.clone(),
        reverses: Some(settlement_id.to_owned()),
        booked_on: env.today,
        booked_at: env.now.clone(),
        total: -original.total,
        fund_total: -original.fund_total,
        personal_account: -original.personal_account,
        cash: -original.cash,
        ..original.clone()
    };
    let postings = onestop_ledger::reversal(&tx.postings(key, settlement_id)?);
    let (year, deltas) = deltas_of(&dto)?;
    let journal = Journal { postings: &postings, year, deltas: &deltas, sign: -1 };
    tx.insert_settlement(&row, &journal)?;
    tx.add_to_accumulators(key, &journal)?;
    tx.set_visit_status(key, &original.visit_id, VisitStatus::Open)?;
    // The original's JSON, parsed by `stored_dto` above.
    Ok(Ok(fresh_record_json(&row, None, &row.result.get()?.text)))
}

/// The accumulator deltas a stored settlement posted.
fn deltas_of(dto: &SettlementDto) -> Result<(i16, Deltas)> {
    let corrupt = |what: String| crate::tx::StoreError::Corrupt(what);
    let year: i16 = dto
        .date_of_service
        .get(..4)
        .and_then(|y| y.parse().ok())
        .ok_or_else(|| corrupt(format!("date {}", dto.date_of_service)))?;
    let accumulators = dto.accumulator_deltas.parse(year).map_err(|r| corrupt(r.message))?;
    let admissions = accumulators.admissions;
    let entries = accumulators.entries().to_vec();
    Ok((year, Deltas { admissions, entries }))
}

/// A stored settlement or reversal, for its owner or the region's agency and auditors. The read
/// is audited.
pub fn get_settlement(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    settlement_id: &str,
) -> Result<Answer<SettlementRecordDto>> {
    let kinds = [IdKind::Settlement, IdKind::Reversal];
    let key = match id_of(settlement_id, &kinds, ServiceCode::SettlementNotFound) {
        Ok((_, key)) => key,
        Err(error) => return Ok(Err(error)),
    };
    let Some(row) = tx.settlement(&key, settlement_id)? else {
        return Ok(Err(not_found_settlement(settlement_id)));
    };
    if let Err(error) = may_read(actor, &key, &row.institution_id) {
        return Ok(Err(error));
    }
    let reversed_by = reversed_by(tx, &key, &row)?;
    let dto = stored_dto(&row)?;
    let action = crate::audit::AuditAction::ReadSettlement;
    crate::audit::record(tx, env, &key, &actor.institution_id, action, settlement_id)?;
    Ok(Ok(record(&row, reversed_by, dto)))
}

/// Checks of the whole store, each a query that returns one line per violation. They hold after
/// every commit; the crash test and the contract suite run them.
pub const INVARIANTS: [(&str, &str); 4] = [
    (
        "every journal entry balances",
        "SELECT settlement_id FROM ledger GROUP BY region, person_id, settlement_id HAVING \
        SUM(amount) <> 0",
    ),
    (
        "every accumulator equals the sum of its postings",
        "SELECT a.person_id || ' ' || a.tier || '/' || a.pool || '/' || a.counter FROM \
        accumulators a LEFT JOIN (SELECT region, person_id, year, tier, pool, counter, SUM(delta) \
        AS total FROM accumulator_postings GROUP BY region, person_id, year, tier, pool, counter) \
        p ON a.region = p.region AND a.person_id = p.person_id AND a.year = p.year AND a.tier = \
        p.tier AND a.pool = p.pool AND a.counter = p.counter WHERE a.value <> COALESCE(p.total, 0)",
    ),
    (
        "every accumulator posting is counted",
        "SELECT p.person_id || ' ' || p.tier FROM (SELECT region, person_id, year, tier, pool, \
        counter, SUM(delta) AS total FROM accumulator_postings GROUP BY region, person_id, year, \
        tier, pool, counter) p LEFT JOIN accumulators a ON a.region = p.region AND a.person_id = \
        p.person_id AND a.year = p.year AND a.tier = p.tier AND a.pool = p.pool AND a.counter = \
        p.counter WHERE a.value IS NULL AND p.total <> 0",
    ),
    (
        "every settlement's total is its journal's medical cost",
        "SELECT s.settlement_id FROM settlements s LEFT JOIN ledger l ON l.region = s.region AND \
        l.person_id = s.person_id AND l.settlement_id = s.settlement_id AND l.account = \
        'medical_cost' WHERE COALESCE(-l.amount, 0) <> s.total",
    ),
];

/// Every violated invariant, with the rows that violate it (empty when the store is sound).
pub fn violations(tx: &mut dyn Tx) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for (name, sql) in INVARIANTS {
        for row in tx.query_strings(sql)? {
            found.push(format!("{name}: {row}"));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(on: Date, discharged_at: Option<&str>) -> VisitRow {
        VisitRow {
            key: PersonKey { region: onestop_core::Region(110_000), person_id: "P1".into() },
            visit_id: "V1".into(),
            institution_id: "H1".into(),
            treatment_region: onestop_core::Region(110_000),
            visit_type: onestop_core::VisitType::Inpatient,
            date_of_service: on,
            admission_number: None,
            status: VisitStatus::Open,
            opened_at: "2024-06-01T08:00:00+08:00".into(),
            discharged_at: discharged_at.map(str::to_owned),
            disease: None,
        }
    }

    #[test]
    fn an_admission_counts_its_days_from_admission_to_discharge_or_today() {
        let today = Date::constant(2024, 6, 20);
        let on = Date::constant(2024, 6, 1);
        // The day of admission counts, the day of discharge does not (算入不算出).
        assert_eq!(stay_days(&admission(on, Some("2024-06-10 09:00:00")), today), Some(9));
        // In and out on one day is one day.
        assert_eq!(stay_days(&admission(on, Some("2024-06-01 18:00:00")), today), Some(1));
        // Still in: counted to today.
        assert_eq!(stay_days(&admission(on, None), today), Some(19));
        // A discharge before the admission, or not a date, gives no days.
        assert_eq!(stay_days(&admission(on, Some("2024-05-30 09:00:00")), today), None);
        assert_eq!(stay_days(&admission(on, Some("")), today), None);
        let mut outpatient = admission(on, None);
        outpatient.visit_type = onestop_core::VisitType::GeneralOutpatient;
        assert_eq!(stay_days(&outpatient, today), None);
    }
}
