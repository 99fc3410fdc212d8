//! Filings (异地就医备案): an agency files a person of its region for care in another region;
//! a settlement there finds the person's valid filing and the insured region's policy says
//! what it changes (a cut of the basic fund's ratios) or whether unfiled care is refused.

use crate::audit::AuditAction;
use onestop_api::claim::{parse_date_as, parse_region};
use onestop_api::service::{FilingDto, FilingRequest};
use onestop_api::{ServiceCode, ServiceError};
use onestop_core::{Date, FilingKind, PolicyBook, Region};

use crate::model::{Filing, FilingStatus, IdKind, Institution, PersonKey, Role, make_id, parse_id};
use crate::ops::{Answer, Env, forbidden};
use crate::tx::{Result, Tx};

/// The most filings one person may hold: a bound on what a settlement reads.
pub const FILINGS_PER_PERSON_MAX: usize = 64;

fn invalid(field: &str, message: String) -> ServiceError {
    ServiceError::new(ServiceCode::FilingInvalid, message).field(field)
}

/// The kind of the person's filing that covers care in `treatment` on `date`, if any.
///
/// A filing covers a visit when it is approved, names the region of treatment, and its period
/// holds the date. An emergency (急诊抢救) may be filed after the visit, but only within the
/// insured region's `emergency_filing_days`. Of several filings, the one with the smallest cut
/// wins: the person is settled as favourably as their filings allow.
pub fn filing_for(
    tx: &mut dyn Tx,
    book: &PolicyBook,
    key: &PersonKey,
    treatment: Region,
    date: Date,
) -> Result<Option<FilingKind>> {
    if treatment == key.region {
        return Ok(None);
    }
    let Ok(policy) = book.at(key.region, date) else { return Ok(None) };
    let Some(rules) = policy.cross_region.as_ref() else { return Ok(None) };
    let late_days = i64::from(rules.emergency_filing_days.value);
    let covers = |f: &Filing| {
        let late = (f.filed_on - date).get_days().max(0);
        f.status == FilingStatus::Approved
            && f.destination == treatment
            && f.start <= date
            && f.end.is_none_or(|end| date <= end)
            && (f.kind != FilingKind::Emergency || i64::from(late) <= late_days)
    };
    let best = tx
        .filings(key)?
        .into_iter()
        .filter(covers)
        .min_by_key(|f| (rules.cut(f.kind).value, f.filing_id.clone()))
        .map(|f| f.kind);
    Ok(best)
}

/// Files a person of the agency's region for care elsewhere; pending when the insured
/// region's policy requires approval for the kind, approved otherwise.
pub fn file(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    request: &FilingRequest,
) -> Result<Answer<FilingDto>> {
    if actor.role != Role::Agency {
        return Ok(Err(forbidden(actor)));
    }
    let Some(key) = PersonKey::new(actor.region, &request.person_id) else {
        let message = format!("`{}` is not a person id", request.person_id);
        return Ok(Err(invalid("person_id", message)));
    };
    if tx.person(&key, false)?.is_none() {
        return Ok(Err(ServiceError::new(
            ServiceCode::PersonNotFound,
            format!("no person `{}` in region {}", key.person_id, key.region),
        )));
    }
    let mut filing = match parse_request(env, &key, request) {
        Ok(filing) => filing,
        Err(error) => return Ok(Err(error)),
    };
    if tx.filings(&key)?.len() >= FILINGS_PER_PERSON_MAX {
        let message = format!("a person holds at most {FILINGS_PER_PERSON_MAX} filings");
        return Ok(Err(invalid("person_id", message)));
    }
    let needs_approval = env.book.at(key.region, env.today).ok().and_then(|p| {
        p.cross_region.as_ref().map(|r| r.approval_required.value & filing.kind.bit() != 0)
    });
    if needs_approval == Some(true) {
        filing.status = FilingStatus::Pending;
    }
    filing.filing_id = make_id(IdKind::Filing, &key, tx.next_seq(&key)?);
    tx.insert_filing(&filing)?;
    let detail = format!("{} {} to {}", filing.filing_id, filing.kind.code(), filing.destination);
    crate::audit::record(tx, env, &key, &actor.institution_id, AuditAction::File, &detail)?;
    Ok(Ok(dto(&filing)))
}

fn parse_request(env: &Env<'_>, key: &PersonKey, request: &FilingRequest) -> Answer<Filing> {
    let kind = FilingKind::parse(&request.kind).ok_or_else(|| {
        let codes = FilingKind::codes();
        invalid(
            "kind",
            format!("`{}` is not a filing kind; expected one of: {codes}", request.kind),
        )
    })?;
    let destination = parse_region(request.destination.as_str(), "destination")?;
    // Care there is settled with its catalog: a region this service has no policy for is no
    // destination (a typo such as 999999 would file the person for nowhere).
    if env.book.timeline(destination).is_empty() {
        let message = format!("region {destination} has no policy here: no care there is settled");
        return Err(invalid("destination", message));
    }
    if destination == key.region {
        let message = format!("region {destination} is the insured region: no filing is needed");
        return Err(invalid("destination", message));
    }
    let start = parse_date_as(&request.start, "start", ServiceCode::FilingInvalid)?;
    let end = request.end.as_deref();
    let end = end.map(|end| parse_date_as(end, "end", ServiceCode::FilingInvalid)).transpose()?;
    let plausible = |date: Date| (1900..=2100).contains(&date.year());
    if !plausible(start) || end.is_some_and(|end| !plausible(end)) {
        let field = if plausible(start) { "end" } else { "start" };
        return Err(invalid(field, "a filing's dates are in the years 1900 to 2100".to_owned()));
    }
    if end.is_some_and(|end| end < start) {
        return Err(invalid("end", format!("the filing ends before it starts on {start}")));
    }
    let filed_on = match request.filed_on.as_deref() {
        Some(text) => parse_date_as(text, "filed_on", ServiceCode::FilingInvalid)?,
        None => env.today,
    };
    if filed_on > env.today {
        return Err(invalid("filed_on", format!("{filed_on} is after today ({})", env.today)));
    }
    Ok(Filing {
        key: key.clone(),
        filing_id: String::new(),
        kind,
        destination,
        start,
        end,
        commitment: request.commitment,
        status: FilingStatus::Approved,
        filed_on,
        filed_at: env.now.clone(),
    })
}

/// Moves a filing of the agency's region: `approve` a pending one, or `withdraw` any.
pub fn set_status(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    filing_id: &str,
    to: FilingStatus,
) -> Result<Answer<FilingDto>> {
    let mut filing = match find(tx, actor, filing_id)? {
        Ok(filing) => filing,
        Err(error) => return Ok(Err(error)),
    };
    if actor.role != Role::Agency {
        return Ok(Err(forbidden(actor)));
    }
    let allowed = match to {
        FilingStatus::Approved => filing.status == FilingStatus::Pending,
        FilingStatus::Withdrawn => filing.status != FilingStatus::Withdrawn,
        FilingStatus::Pending => false,
    };
    if !allowed {
        return Ok(Err(ServiceError::new(
            ServiceCode::FilingNotPending,
            format!(
                "filing `{filing_id}` is {}; it cannot become {}",
                filing.status.code(),
                to.code()
            ),
        )));
    }
    tx.set_filing_status(&filing.key, &filing.filing_id, to)?;
    filing.status = to;
    let action = match to {
        FilingStatus::Withdrawn => AuditAction::WithdrawFiling,
        FilingStatus::Approved | FilingStatus::Pending => AuditAction::ApproveFiling,
    };
    crate::audit::record(tx, env, &filing.key, &actor.institution_id, action, filing_id)?;
    Ok(Ok(dto(&filing)))
}

fn find(tx: &mut dyn Tx, actor: &Institution, filing_id: &str) -> Result<Answer<Filing>> {
    let not_found = || {
        let message = format!("no filing `{filing_id}`");
        ServiceError::new(ServiceCode::FilingNotFound, message)
    };
    let key = match parse_id(filing_id) {
        Some((IdKind::Filing, key)) => key,
        _ => return Ok(Err(not_found())),
    };
    if actor.region != key.region {
        return Ok(Err(forbidden(actor)));
    }
    let found = tx.filings(&key)?.into_iter().find(|f| f.filing_id == filing_id);
    Ok(found.ok_or_else(not_found))
}

/// A person's filings: all of them for the agency and auditors of the insured region; for an
/// institution, those naming its region (what it checks before settling a visitor).
pub fn list(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    key: &PersonKey,
) -> Result<Answer<Vec<FilingDto>>> {
    let home = actor.role != Role::Institution && actor.region == key.region;
    if actor.role != Role::Institution && !home {
        return Ok(Err(forbidden(actor)));
    }
    let mut filings = tx.filings(key)?;
    filings.retain(|f| home || f.destination == actor.region);
    filings.sort_by_key(|f| parse_seq(&f.filing_id));
    let detail = format!("{} filings", filings.len());
    crate::audit::record(tx, env, key, &actor.institution_id, AuditAction::ReadFilings, &detail)?;
    Ok(Ok(filings.iter().map(dto).collect()))
}

fn parse_seq(id: &str) -> i64 {
    id.rsplit('-').next().and_then(|seq| seq.parse().ok()).unwrap_or(i64::MAX)
}

fn dto(filing: &Filing) -> FilingDto {
    FilingDto {
        filing_id: filing.filing_id.clone(),
        person_id: filing.key.person_id.clone(),
        insured_region: filing.key.region_text(),
        kind: filing.kind.code().to_owned(),
        kind_zh: filing.kind.zh().to_owned(),
        destination: filing.destination.to_string(),
        start: filing.start.to_string(),
        end: filing.end.map(|d| d.to_string()),
        commitment: filing.commitment,
        status: filing.status.code().to_owned(),
        filed_on: filing.filed_on.to_string(),
    }
}
