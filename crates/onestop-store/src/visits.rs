//! Visits and their fee lines: register (挂号/入院), upload lines (费用明细上传), withdraw a
//! line (明细撤销), look a visit up.

use onestop_api::claim::{parse_date, parse_lines, parse_region};
use onestop_api::service::{
    AddLinesRequest, OpenVisitRequest, UpdateVisitRequest, VisitDto, VisitLineDto,
};
use onestop_api::{ServiceCode, ServiceError};
use onestop_core::claim::{ADMISSION_NUMBER_MAX, LINES_COUNT_MAX};
use onestop_core::{Line, Rejection, RejectionCode, VisitType, classify_line};

use crate::model::{
    IdKind, Institution, LineOrigin, PersonKey, Role, VisitRow, VisitStatus, make_id, parse_id,
};
use crate::ops::{Answer, Env, forbidden};
use crate::tx::{Result, Tx};

fn person_key(actor: &Institution, request: &OpenVisitRequest) -> Answer<PersonKey> {
    let region = match &request.insured_region {
        Some(text) => parse_region(text.as_str(), "insured_region")?,
        None => actor.region,
    };
    let id = request.person_id.as_deref().unwrap_or_default();
    PersonKey::new(region, id).ok_or_else(|| {
        ServiceError::new(
            ServiceCode::IdInvalid,
            format!("person id `{id}` must be 1 to 30 letters and digits"),
        )
        .field("person_id")
    })
}

/// The visit type, date of service, admission number and disease a request opens.
type VisitFields = (VisitType, onestop_core::Date, Option<u16>, Option<String>);

fn visit_fields(env: &Env<'_>, request: &OpenVisitRequest) -> Answer<VisitFields> {
    let visit_text = request.visit.as_ref().map(|v| v.as_str()).unwrap_or_default();
    let visit = VisitType::parse(visit_text).ok_or_else(|| {
        Rejection::new(
            RejectionCode::VisitTypeUnknown,
            format!("`{visit_text}` is not a visit type; expected one of: {}", VisitType::codes()),
        )
        .field("visit")
    })?;
    let date = match &request.date_of_service {
        Some(text) => parse_date(text.as_str(), "date_of_service")?,
        None => env.today,
    };
    if date > env.today {
        // Care not yet given is not settled: it would count on the year's totals before it
        // happened.
        let message = format!("the date of service {date} is after today, {}", env.today);
        return Err(Rejection::new(RejectionCode::DateOfServiceInvalid, message)
            .field("date_of_service")
            .into());
    }
    let admission =
        match &request.admission_number {
            None => None,
            Some(text) => {
                Some(
                    text.as_str()
                        .parse::<u16>()
                        .ok()
                        .filter(|n| (1..=ADMISSION_NUMBER_MAX).contains(n))
                        .ok_or_else(|| {
                            Rejection::new(RejectionCode::AdmissionNumberOutOfRange, format!(
                "`{}` is not an admission number from 1 to {ADMISSION_NUMBER_MAX}", text.as_str()))
                .field("admission_number")
                        })?,
                )
            }
        };
    let disease = onestop_api::claim::parse_disease(request.disease.as_ref())?;
    Ok((visit, date, admission, disease))
}

/// Registers a visit for a person enrolled in the year of the date of service.
pub fn open_visit(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    request: &OpenVisitRequest,
) -> Result<Answer<VisitDto>> {
    if actor.role != Role::Institution {
        return Ok(Err(forbidden(actor)));
    }
    let (key, (visit_type, date, admission_number, disease)) =
        match person_key(actor, request).and_then(|key| Ok((key, visit_fields(env, request)?))) {
            Ok(found) => found,
            Err(error) => return Ok(Err(error)),
        };
    if tx.person(&key, true)?.is_none() {
        return Ok(Err(ServiceError::new(
            ServiceCode::PersonNotFound,
            format!("no person `{}` in region {}", key.person_id, key.region),
        )));
    }
    if tx.enrolment(&key, date.year())?.is_none() {
        return Ok(Err(ServiceError::new(
            ServiceCode::PersonNotEnrolled,
            format!("person `{}` is not enrolled for {}", key.person_id, date.year()),
        )));
    }
    let row = VisitRow {
        visit_id: make_id(IdKind::Visit, &key, tx.next_seq(&key)?),
        key,
        institution_id: actor.institution_id.clone(),
        treatment_region: actor.region,
        visit_type,
        date_of_service: date,
        admission_number,
        status: VisitStatus::Open,
        opened_at: env.now.clone(),
        discharged_at: None,
        disease,
    };
    tx.insert_visit(&row)?;
    view(tx, env, &row).map(Ok)
}

/// The visit, for the institution that owns it (or its region's agency and auditors).
pub fn owned_visit(
    tx: &mut dyn Tx,
    actor: &Institution,
    visit_id: &str,
    acting: bool,
) -> Result<Answer<VisitRow>> {
    let not_found =
        || ServiceError::new(ServiceCode::VisitNotFound, format!("no visit `{visit_id}`"));
    let key = match parse_id(visit_id) {
        Some((IdKind::Visit, key)) => key,
        _ => return Ok(Err(not_found())),
    };
    if acting {
        // Changing a visit holds its person, as settling does: otherwise, on a store with
        // concurrent writers, a line could land on a visit settled meanwhile without it.
        tx.person(&key, true)?;
    }
    let Some(visit) = tx.visit(&key, visit_id)? else { return Ok(Err(not_found())) };
    let owner = actor.role == Role::Institution && actor.institution_id == visit.institution_id;
    let reader = !acting && actor.role != Role::Institution && actor.region == key.region;
    if !(owner || reader) {
        return Ok(Err(forbidden(actor)));
    }
    Ok(Ok(visit))
}

pub fn require_open(visit: &VisitRow) -> Answer<()> {
    let why = match visit.status {
        VisitStatus::Open => return Ok(()),
        VisitStatus::Settled => "is settled; cancel its settlement before changing it",
        VisitStatus::Cancelled => "was cancelled",
    };
    Err(ServiceError::new(ServiceCode::VisitNotOpen, format!("visit `{}` {why}", visit.visit_id)))
}

/// The visit that `actor` may change: its own, open.
pub fn open_visit_of(
    tx: &mut dyn Tx,
    actor: &Institution,
    visit_id: &str,
) -> Result<Answer<VisitRow>> {
    Ok(owned_visit(tx, actor, visit_id, true)?.and_then(|v| require_open(&v).map(|()| v)))
}

/// Withdraws an open visit that has not been settled (挂号撤销, 入院撤销).
pub fn cancel_visit(tx: &mut dyn Tx, actor: &Institution, visit_id: &str) -> Result<Answer<()>> {
    let visit = match open_visit_of(tx, actor, visit_id)? {
        Ok(visit) => visit,
        Err(error) => return Ok(Err(error)),
    };
    tx.delete_lines_of_batch(&visit.key, visit_id, None)?;
    tx.set_visit_status(&visit.key, visit_id, VisitStatus::Cancelled)?;
    Ok(Ok(()))
}

/// Whether an open visit of type `from` may become `to`: an admission stays an admission, an
/// outpatient visit an outpatient one and long-term care long-term care (only the type within
/// each kind changes); `Err` says why not.
pub fn kind_change(
    visit_id: &str,
    from: VisitType,
    to: VisitType,
) -> std::result::Result<(), String> {
    // The kinds are the clearing's buckets: outpatient, inpatient, long-term care.
    if onestop_clearing::Bucket::of(from) == onestop_clearing::Bucket::of(to) {
        return Ok(());
    }
    Err(format!(
        "visit `{visit_id}` is {}: it cannot become {}; withdraw it and open one of the other kind",
        from.code(),
        to.code()
    ))
}

/// Changes an open visit's type (within its kind) or disease (`PATCH /v1/visits/{id}`, as 2203
/// does); a field left out stays as it was.
pub fn update_visit(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    visit_id: &str,
    request: &UpdateVisitRequest,
) -> Result<Answer<VisitDto>> {
    let mut visit = match open_visit_of(tx, actor, visit_id)? {
        Ok(visit) => visit,
        Err(error) => return Ok(Err(error)),
    };
    let visit_type = match &request.visit {
        None => None,
        Some(text) => match VisitType::parse(text.as_str()) {
            None => {
                let message = format!(
                    "`{}` is not a visit type; expected one of: {}",
                    text.as_str(),
                    VisitType::codes()
                );
                let rejection = Rejection::new(RejectionCode::VisitTypeUnknown, message);
                return Ok(Err(rejection.field("visit").into()));
            }
            Some(to) => match kind_change(visit_id, visit.visit_type, to) {
                Ok(()) => Some(to),
                Err(why) => {
                    let error = ServiceError::new(ServiceCode::VisitTypeChangeInvalid, why);
                    return Ok(Err(error.field("visit")));
                }
            },
        },
    };
    let disease = match &request.disease {
        None => None,
        Some(code) => match onestop_api::claim::parse_disease(code.as_ref()) {
            Ok(disease) => Some(disease),
            Err(rejection) => return Ok(Err(rejection.into())),
        },
    };
    if let Some(to) = visit_type {
        tx.set_visit_type(&visit.key, visit_id, to)?;
        visit.visit_type = to;
    }
    if let Some(disease) = disease {
        tx.set_visit_disease(&visit.key, visit_id, disease.as_deref())?;
        visit.disease = disease;
    }
    view(tx, env, &visit).map(Ok)
}

/// Appends fee lines to an open visit.
pub fn add_lines(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    visit_id: &str,
    request: &AddLinesRequest,
) -> Result<Answer<VisitDto>> {
    let lines = match parse_lines(&request.lines) {
        Ok(lines) => lines,
        Err(rejection) => return Ok(Err(rejection.into())),
    };
    let lines = lines.into_iter().map(|line| (line, LineOrigin::default())).collect();
    append_lines(tx, env, actor, visit_id, lines)
}

/// Appends lines, each with where it came from, to an open visit of `actor`'s.
pub fn append_lines(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    visit_id: &str,
    lines: Vec<(Line, LineOrigin)>,
) -> Result<Answer<VisitDto>> {
    let visit = match open_visit_of(tx, actor, visit_id)? {
        Ok(visit) => visit,
        Err(error) => return Ok(Err(error)),
    };
    let existing = tx.lines(&visit.key, visit_id)?;
    if existing.len() + lines.len() > LINES_COUNT_MAX {
        let count = existing.len() + lines.len();
        let message = format!("the visit would have {count} lines; at most {LINES_COUNT_MAX}");
        let rejection = Rejection::new(RejectionCode::LinesCountExceedsMax, message);
        return Ok(Err(rejection.field("lines").into()));
    }
    let first = existing.iter().map(|(no, _)| *no).max().unwrap_or(0) + 1;
    for (line_no, (line, origin)) in (first..).zip(&lines) {
        tx.insert_line(&visit.key, visit_id, line_no, line, origin)?;
    }
    view(tx, env, &visit).map(Ok)
}

/// Withdraws one line of an open visit (a refund before settlement; after settlement, cancel
/// first: the national practice for a partial refund is a cancel and a new settlement).
pub fn delete_line(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    visit_id: &str,
    line_no: i64,
) -> Result<Answer<VisitDto>> {
    let visit =
        match owned_visit(tx, actor, visit_id, true)?.and_then(|v| require_open(&v).map(|()| v)) {
            Ok(visit) => visit,
            Err(error) => return Ok(Err(error)),
        };
    if !tx.delete_line(&visit.key, visit_id, line_no)? {
        return Ok(Err(ServiceError::new(
            ServiceCode::VisitNotFound,
            format!("visit `{visit_id}` has no line {line_no}"),
        )
        .field("line_no")));
    }
    view(tx, env, &visit).map(Ok)
}

/// A visit with its lines. The read is audited.
pub fn get_visit(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    visit_id: &str,
) -> Result<Answer<VisitDto>> {
    let visit = match owned_visit(tx, actor, visit_id, false)? {
        Ok(visit) => visit,
        Err(error) => return Ok(Err(error)),
    };
    let action = crate::audit::AuditAction::ReadVisit;
    crate::audit::record(tx, env, &visit.key, &actor.institution_id, action, visit_id)?;
    view(tx, env, &visit).map(Ok)
}

/// The wire form of a visit. Lines carry the catalog's split when the place of treatment has a
/// catalog in force and the person is enrolled; otherwise their parts show as `-`.
pub fn view(tx: &mut dyn Tx, env: &Env<'_>, visit: &VisitRow) -> Result<VisitDto> {
    let lines = tx.lines(&visit.key, &visit.visit_id)?;
    let scheme =
        tx.enrolment(&visit.key, visit.date_of_service.year())?.map(|e| e.category.scheme());
    let policy = env.book.at(visit.treatment_region, visit.date_of_service).ok();
    let catalog = policy.as_ref().and_then(|p| p.catalog.as_ref().map(|c| (c, p.rounding.value)));
    let lines =
        lines.iter().map(|(line_no, line)| line_dto(*line_no, line, scheme.zip(catalog))).collect();
    Ok(VisitDto {
        visit_id: visit.visit_id.clone(),
        person_id: visit.key.person_id.clone(),
        insured_region: visit.key.region_text(),
        institution_id: visit.institution_id.clone(),
        visit: visit.visit_type.code().to_owned(),
        date_of_service: visit.date_of_service.to_string(),
        admission_number: visit.admission_number,
        disease: visit.disease.clone(),
        status: visit.status.code().to_owned(),
        settlement_id: match visit.status {
            VisitStatus::Settled => tx.visit_settlement(&visit.key, &visit.visit_id)?,
            VisitStatus::Open | VisitStatus::Cancelled => None,
        },
        opened_at: visit.opened_at.clone(),
        lines,
    })
}

fn line_dto(
    line_no: i64,
    line: &Line,
    classify: Option<(
        onestop_core::Scheme,
        (&onestop_core::policy::Catalog, onestop_core::Rounding),
    )>,
) -> VisitLineDto {
    let split = classify
        .map(|(scheme, (catalog, rounding))| classify_line(line, scheme, catalog, rounding));
    let part = |f: fn(&onestop_core::LineSplit) -> onestop_core::Fen| {
        split.as_ref().map_or_else(|| "-".to_owned(), |s| f(s).to_string())
    };
    VisitLineDto {
        line_no,
        code: line.code.clone(),
        name: line.name.clone(),
        class: split.as_ref().map_or(line.class, |s| s.class).code().to_owned(),
        quantity: line.quantity.to_string(),
        unit_price: line.unit_price.to_string(),
        amount: line.amount.to_string(),
        price_limit: line.price_limit.map(|p| p.to_string()),
        outside_catalog: part(|s| s.outside_catalog),
        over_limit: part(|s| s.over_limit),
        class_b_first_self_pay: part(|s| s.class_b_first_self_pay),
        in_scope: part(|s| s.in_scope),
        first_self_pay_ratio: split
            .as_ref()
            .map_or_else(|| "-".to_owned(), |s| s.first_self_pay_ratio.to_string()),
    }
}
