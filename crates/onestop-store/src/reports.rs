//! Reports an institution or agency reads: the daily reconciliation (对账).

use std::collections::BTreeMap;

use onestop_api::service::ReconciliationDto;
use onestop_api::{ServiceCode, ServiceError};
use onestop_core::{Date, Fen};

use crate::model::{Institution, Role};
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
