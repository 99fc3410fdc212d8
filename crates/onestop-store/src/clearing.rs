//! Clearing (清算), prepayment balances and statistics over the ledger: the store streams the
//! settlements booked in the period into the pure sums of `onestop-clearing`.

use onestop_api::{ServiceCode, ServiceError};
use onestop_clearing::{Clearing, Month, RegionStatistics, Statement, Statistics};
use onestop_core::{Date, Fen, Region};

use crate::model::{Institution, Role};
use crate::ops::{Answer, Env, forbidden};
use crate::tx::{Result, StoreError, Tx};

/// The longest period statistics are computed over, in days.
pub const STATISTICS_DAYS_MAX: i32 = 366;

fn month_of(text: &str) -> Answer<Month> {
    Month::parse(text).ok_or_else(|| {
        ServiceError::new(
            ServiceCode::PeriodInvalid,
            format!("`{text}` is not a month written YYYY-MM"),
        )
        .field("month")
    })
}

/// Sums every settlement booked in the month: this node's ledger, and the settlements its
/// institutions made for people of other nodes.
pub fn clearing(tx: &mut dyn Tx, month: Month) -> Result<Clearing> {
    let mut clearing = Clearing::new(month);
    let mut outside = None;
    let (from, until) = (month.first_day(), month.next().first_day());
    let mut add = |entry: onestop_clearing::Entry| {
        if let Err(error) = clearing.add(&entry) {
            outside.get_or_insert(error);
        }
    };
    tx.booked_between(from, until, &mut add)?;
    // In a federation, what this node's institutions settled for other nodes' people.
    tx.visitors_between(from, until, &mut add)?;
    match outside {
        Some(error) => Err(StoreError::Corrupt(error.to_string())),
        None => Ok(clearing),
    }
}

/// The clearing statement of the actor's region (agency or auditor) for a month.
pub fn statement(tx: &mut dyn Tx, actor: &Institution, month: &str) -> Result<Answer<Statement>> {
    if actor.role == Role::Institution {
        return Ok(Err(forbidden(actor)));
    }
    let month = match month_of(month) {
        Ok(month) => month,
        Err(error) => return Ok(Err(error)),
    };
    let opening = tx.prepayment(actor.region, &month.to_string())?;
    Ok(Ok(clearing(tx, month)?.statement(actor.region, opening)))
}

/// Every region's statement for a month (the clearing house's run, from the command line).
pub fn statements(tx: &mut dyn Tx, month: Month) -> Result<Vec<Statement>> {
    let clearing = clearing(tx, month)?;
    let mut out = Vec::new();
    for region in clearing.regions() {
        let opening = tx.prepayment(region, &month.to_string())?;
        out.push(clearing.statement(region, opening));
    }
    Ok(out)
}

/// Records the opening prepayment balance of the agency's region for a month.
pub fn set_prepayment(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    month: &str,
    balance: &str,
) -> Result<Answer<PrepaymentDto>> {
    if actor.role != Role::Agency {
        return Ok(Err(forbidden(actor)));
    }
    let month = match month_of(month) {
        Ok(month) => month,
        Err(error) => return Ok(Err(error)),
    };
    let Some(balance) = Fen::parse_yuan(balance).ok().filter(|b| *b >= Fen::ZERO) else {
        let message =
            format!("`{balance}` is not an amount of yuan, 0 or more, such as 1000000.00");
        return Ok(Err(ServiceError::new(ServiceCode::BodyMalformed, message).field("balance")));
    };
    let text = month.to_string();
    tx.set_prepayment(actor.region, &text, balance, &actor.institution_id, &env.now)?;
    Ok(Ok(PrepaymentDto {
        region: actor.region.to_string(),
        month: text,
        balance: balance.to_string(),
    }))
}

/// A region's opening prepayment balance for a month.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct PrepaymentDto {
    pub region: String,
    pub month: String,
    pub balance: String,
}

/// Statistics of a region over `from..=to` (at most a year): anyone may read them for their
/// own region; they name no person.
pub fn statistics(
    tx: &mut dyn Tx,
    actor: &Institution,
    region: Region,
    from: Date,
    to: Date,
) -> Result<Answer<RegionStatistics>> {
    if actor.role == Role::Institution || actor.region != region {
        return Ok(Err(forbidden(actor)));
    }
    let days = (to - from).get_days();
    if !(0..STATISTICS_DAYS_MAX).contains(&days) {
        return Ok(Err(ServiceError::new(
            ServiceCode::PeriodInvalid,
            format!(
                "the period {from} to {to} must run forward (`to` not before `from`, which is \
                 the first of this month unless given) for at most {STATISTICS_DAYS_MAX} days"
            ),
        )
        .field("to")));
    }
    let mut stats = Statistics::new(from, to);
    let until = to.tomorrow().map_err(|_| StoreError::OutOfRange(format!("date {to}")))?;
    let mut add = |entry: onestop_clearing::Entry| {
        stats.add(&entry);
    };
    tx.booked_between(from, until, &mut add)?;
    tx.visitors_between(from, until, &mut add)?;
    Ok(Ok(stats.region(region)))
}
