//! Reports an institution or agency reads: the daily reconciliation (对账), and the check of a
//! hospital's own totals and list against the ledger.

use std::collections::BTreeMap;

use onestop_api::claim::parse_date;
use onestop_api::service::{
    ReconcileItem, ReconcileRequest, ReconcileResultDto, ReconciliationDto,
    SettlementDifferenceDto, TotalDifferenceDto,
};
use onestop_api::wire::Scalar;
use onestop_api::{ServiceCode, ServiceError};
use onestop_core::{Date, Fen};
use onestop_ledger::Account;

use crate::model::{Institution, Role, SettlementRow};
use crate::ops::{Answer, forbidden};
use crate::tx::{Result, Tx};

/// Counts and sums per account of what an institution booked on a day, reversals netted, to
/// match the hospital's own books. An institution reads its own; the region's agency and
/// auditors read any institution of the region.
pub fn reconciliation(
    tx: &mut dyn Tx,
    actor: &Institution,
    institution_id: &str,
    day: Date,
) -> Result<Answer<ReconciliationDto>> {
    let Some(institution) = tx.institution(institution_id)? else {
        return Ok(Err(ServiceError::new(
            ServiceCode::InstitutionNotFound,
            format!("no institution `{institution_id}`"),
        )));
    };
    let allowed = match actor.role {
        Role::Institution => actor.institution_id == institution_id,
        Role::Agency | Role::Auditor => actor.region == institution.region,
    };
    if !allowed {
        return Ok(Err(forbidden(actor)));
    }
    let rows = tx.settlements_booked(institution_id, day)?;
    let reversals = rows.iter().filter(|r| r.reverses.is_some()).count() as u64;
    let settlements = rows.len() as u64 - reversals;
    let mut amounts: BTreeMap<String, Fen> = BTreeMap::new();
    for (_, posting) in tx.postings_booked(institution_id, day)? {
        *amounts.entry(posting.account.code()).or_default() += posting.amount;
    }
    let fund_total: Fen =
        amounts.iter().filter(|(account, _)| account.starts_with("tier:")).map(|(_, a)| *a).sum();
    Ok(Ok(ReconciliationDto {
        institution_id: institution_id.to_owned(),
        day: day.to_string(),
        settlements,
        reversals,
        amounts: amounts.into_iter().map(|(k, v)| (k, v.to_string())).collect(),
        fund_total: fund_total.to_string(),
    }))
}

fn amount(text: &Scalar, field: &str) -> Answer<Fen> {
    Fen::parse_yuan(text.as_str()).map_err(|_| {
        let message = format!("`{}` is not an amount of yuan such as 123.45", text.as_str());
        ServiceError::new(ServiceCode::BodyMalformed, message).field(field)
    })
}

fn item_of(row: &SettlementRow) -> ReconcileItem {
    ReconcileItem {
        settlement_id: row.settlement_id.clone(),
        total: Scalar(row.total.to_string()),
        fund_total: Scalar(row.fund_total.to_string()),
        personal_account: Scalar(row.personal_account.to_string()),
        cash: Scalar(row.cash.to_string()),
    }
}

/// An item with its amounts parsed and written back in canonical form, to compare.
fn canonical(item: &ReconcileItem, index: usize) -> Answer<ReconcileItem> {
    let field = |name: &str| format!("list[{index}].{name}");
    let yuan = |text: &Scalar, name: &str| -> Answer<Scalar> {
        Ok(Scalar(amount(text, &field(name))?.to_string()))
    };
    Ok(ReconcileItem {
        settlement_id: item.settlement_id.clone(),
        total: yuan(&item.total, "total")?,
        fund_total: yuan(&item.fund_total, "fund_total")?,
        personal_account: yuan(&item.personal_account, "personal_account")?,
        cash: yuan(&item.cash, "cash")?,
    })
}

/// The hospital's totals of a day against the ledger; with its list, every settlement that
/// differs. An institution reconciles its own day.
pub fn reconcile(
    tx: &mut dyn Tx,
    actor: &Institution,
    request: &ReconcileRequest,
) -> Result<Answer<ReconcileResultDto>> {
    if actor.role != Role::Institution {
        return Ok(Err(forbidden(actor)));
    }
    let day = match parse_date(&request.day, "day") {
        Ok(day) => day,
        Err(rejection) => return Ok(Err(rejection.into())),
    };
    let theirs = match their_totals(request) {
        Ok(theirs) => theirs,
        Err(error) => return Ok(Err(error)),
    };
    let rows = tx.settlements_booked(&actor.institution_id, day)?;
    let mut tiers: BTreeMap<String, Fen> = BTreeMap::new();
    for (_, posting) in tx.postings_booked(&actor.institution_id, day)? {
        if let Account::Tier(id) = posting.account {
            *tiers.entry(id).or_default() += posting.amount;
        }
    }
    let ours = our_totals(&rows, &tiers, request);
    let totals: Vec<TotalDifferenceDto> = ours
        .iter()
        .zip(&theirs)
        .filter(|((_, a), (_, b))| a != b)
        .map(|((field, a), (_, b))| TotalDifferenceDto {
            field: field.clone(),
            ours: a.clone(),
            yours: b.clone(),
        })
        .collect();
    let settlements = match &request.list {
        Some(list) => match compare_lists(&rows, list) {
            Ok(differences) => differences,
            Err(error) => return Ok(Err(error)),
        },
        None => Vec::new(),
    };
    Ok(Ok(ReconcileResultDto {
        institution_id: actor.institution_id.clone(),
        day: day.to_string(),
        matched: totals.is_empty() && settlements.is_empty(),
        list_needed: !totals.is_empty() && request.list.is_none(),
        totals,
        settlements,
    }))
}

/// The hospital's totals as (field, canonical text), in the order `our_totals` gives ours.
fn their_totals(request: &ReconcileRequest) -> Answer<Vec<(String, String)>> {
    let mut out = vec![
        ("settlements".to_owned(), request.settlements.to_string()),
        ("reversals".to_owned(), request.reversals.to_string()),
    ];
    for (field, text) in [
        ("medical_cost", &request.medical_cost),
        ("fund_total", &request.fund_total),
        ("personal_account", &request.personal_account),
        ("cash", &request.cash),
    ] {
        out.push((field.to_owned(), amount(text, field)?.to_string()));
    }
    for (tier, text) in &request.tiers {
        let field = format!("tiers.{tier}");
        out.push((field.clone(), amount(text, &field)?.to_string()));
    }
    Ok(out)
}

fn our_totals(
    rows: &[SettlementRow],
    tiers: &BTreeMap<String, Fen>,
    request: &ReconcileRequest,
) -> Vec<(String, String)> {
    let reversals = rows.iter().filter(|r| r.reverses.is_some()).count();
    let sum = |f: fn(&SettlementRow) -> Fen| rows.iter().map(f).sum::<Fen>().to_string();
    let mut out = vec![
        ("settlements".to_owned(), (rows.len() - reversals).to_string()),
        ("reversals".to_owned(), reversals.to_string()),
        ("medical_cost".to_owned(), sum(|r| r.total)),
        ("fund_total".to_owned(), sum(|r| r.fund_total)),
        ("personal_account".to_owned(), sum(|r| r.personal_account)),
        ("cash".to_owned(), sum(|r| r.cash)),
    ];
    for tier in request.tiers.keys() {
        let paid = tiers.get(tier).copied().unwrap_or_default();
        out.push((format!("tiers.{tier}"), paid.to_string()));
    }
    out
}

fn compare_lists(
    rows: &[SettlementRow],
    list: &[ReconcileItem],
) -> Answer<Vec<SettlementDifferenceDto>> {
    if list.len() > RECONCILE_LIST_MAX {
        let message = format!("a list has at most {RECONCILE_LIST_MAX} settlements");
        return Err(ServiceError::new(ServiceCode::BodyMalformed, message).field("list"));
    }
    let mut yours: BTreeMap<&str, ReconcileItem> = BTreeMap::new();
    for (index, item) in list.iter().enumerate() {
        yours.insert(item.settlement_id.as_str(), canonical(item, index)?);
    }
    let mut out = Vec::new();
    for row in rows {
        let ours = item_of(row);
        let (problem, theirs) = match yours.remove(row.settlement_id.as_str()) {
            None => ("missing_in_yours", None),
            Some(theirs) if theirs != ours => ("amounts_differ", Some(theirs)),
            Some(_) => continue,
        };
        out.push(SettlementDifferenceDto {
            settlement_id: row.settlement_id.clone(),
            problem: problem.to_owned(),
            ours: Some(ours),
            yours: theirs,
        });
    }
    for (id, theirs) in yours {
        out.push(SettlementDifferenceDto {
            settlement_id: id.to_owned(),
            problem: "unknown_here".to_owned(),
            ours: None,
            yours: Some(theirs),
        });
    }
    Ok(out)
}

/// The most settlements a reconciliation list may carry.
pub const RECONCILE_LIST_MAX: usize = 100_000;
