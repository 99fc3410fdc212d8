//! Reports an institution or agency reads: the daily reconciliation (对账), and the check of a
//! hospital's own totals and list against the ledger.

use std::collections::BTreeMap;

use onestop_api::claim::parse_date_as;
use onestop_api::service::{
    ReconcileItem, ReconcileRequest, ReconcileResultDto, ReconciliationDto,
    SettlementDifferenceDto, TotalDifferenceDto,
};
use onestop_api::wire::Scalar;
use onestop_api::{ServiceCode, ServiceError};
use onestop_core::{Date, Fen};
use onestop_ledger::Account;

use crate::model::{Institution, Role};
use crate::ops::{Answer, forbidden};
use crate::tx::{Result, Tx};

/// One settlement or reversal an institution booked, as reconciliation compares it.
struct Booked {
    item: ReconcileItem,
    reversal: bool,
    amounts: [Fen; 4],
}

/// What an institution booked on a day: its settlements in this node's ledger and, in a
/// federation, those the insured regions' nodes made for its visitors; with the sums per
/// ledger account (`medical_cost` debited, payers credited).
struct DayBook {
    items: Vec<Booked>,
    accounts: BTreeMap<String, Fen>,
}

fn day_book(tx: &mut dyn Tx, institution_id: &str, day: Date) -> Result<DayBook> {
    let mut accounts: BTreeMap<String, Fen> = BTreeMap::new();
    for (_, posting) in tx.postings_booked(institution_id, day)? {
        *accounts.entry(posting.account.code()).or_default() += posting.amount;
    }
    let mut items: Vec<Booked> = tx
        .settlements_booked(institution_id, day)?
        .iter()
        .map(|row| {
            let amounts = [row.total, row.fund_total, row.personal_account, row.cash];
            Booked {
                item: item_of(&row.settlement_id, amounts),
                reversal: row.reverses.is_some(),
                amounts,
            }
        })
        .collect();
    for visitor in tx.visitor_settlements_booked(institution_id, day)? {
        let amounts = [visitor.total, visitor.fund_total, visitor.personal_account, visitor.cash];
        // As the ledger posts them: zero-amount payers left out.
        let mut credit = |account: String, amount: Fen| {
            if !amount.is_zero() {
                *accounts.entry(account).or_default() += amount;
            }
        };
        credit(Account::MedicalCost.code(), -visitor.total);
        for (tier, paid) in &visitor.tiers {
            credit(Account::Tier(tier.clone()).code(), *paid);
        }
        credit(Account::PersonalAccount.code(), visitor.personal_account);
        credit(Account::Cash.code(), visitor.cash);
        let item = item_of(&visitor.settlement_id, amounts);
        items.push(Booked { item, reversal: visitor.reverses.is_some(), amounts });
    }
    Ok(DayBook { items, accounts })
}

/// Counts and sums per account of what an institution booked on a day, reversals netted, to
/// match the hospital's own books. An institution reads its own; the region's agency and
/// auditors read any institution of the region.
pub fn reconciliation(
    tx: &mut dyn Tx,
    actor: &Institution,
    institution_id: &str,
    day: Date,
) -> Result<Answer<ReconciliationDto>> {
    let institution = tx.institution(institution_id)?.filter(|i| i.role == Role::Institution);
    let Some(institution) = institution else {
        return Ok(Err(ServiceError::new(
            ServiceCode::InstitutionNotFound,
            format!("no institution `{institution_id}` (a hospital or pharmacy, 定点医药机构)"),
        )
        .field("institution_id")));
    };
    let allowed = match actor.role {
        Role::Institution => actor.institution_id == institution_id,
        Role::Agency | Role::Auditor => actor.region == institution.region,
    };
    if !allowed {
        return Ok(Err(forbidden(actor)));
    }
    let book = day_book(tx, institution_id, day)?;
    let reversals = book.items.iter().filter(|r| r.reversal).count() as u64;
    let settlements = book.items.len() as u64 - reversals;
    let mut amounts = book.accounts;
    // The accounts every day has, shown at zero rather than left out.
    for account in [Account::MedicalCost, Account::PersonalAccount, Account::Cash] {
        amounts.entry(account.code()).or_insert(Fen::ZERO);
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

fn item_of(settlement_id: &str, amounts: [Fen; 4]) -> ReconcileItem {
    let [total, fund_total, personal_account, cash] = amounts.map(|a| Scalar(a.to_string()));
    ReconcileItem {
        settlement_id: settlement_id.to_owned(),
        total,
        fund_total,
        personal_account,
        cash,
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
    let day = match parse_date_as(&request.day, "day", ServiceCode::PeriodInvalid) {
        Ok(day) => day,
        Err(error) => return Ok(Err(error)),
    };
    let theirs = match their_totals(request) {
        Ok(theirs) => theirs,
        Err(error) => return Ok(Err(error)),
    };
    let book = day_book(tx, &actor.institution_id, day)?;
    let ours = our_totals(&book, request);
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
        Some(list) => match compare_lists(&book.items, list) {
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

fn our_totals(book: &DayBook, request: &ReconcileRequest) -> Vec<(String, String)> {
    let items = &book.items;
    let reversals = items.iter().filter(|r| r.reversal).count();
    let sum = |index: usize| items.iter().map(|b| b.amounts[index]).sum::<Fen>().to_string();
    let mut out = vec![
        ("settlements".to_owned(), (items.len() - reversals).to_string()),
        ("reversals".to_owned(), reversals.to_string()),
        ("medical_cost".to_owned(), sum(0)),
        ("fund_total".to_owned(), sum(1)),
        ("personal_account".to_owned(), sum(2)),
        ("cash".to_owned(), sum(3)),
    ];
    for tier in request.tiers.keys() {
        let account = Account::Tier(tier.clone()).code();
        let paid = book.accounts.get(&account).copied().unwrap_or_default();
        out.push((format!("tiers.{tier}"), paid.to_string()));
    }
    out
}

fn compare_lists(rows: &[Booked], list: &[ReconcileItem]) -> Answer<Vec<SettlementDifferenceDto>> {
    if list.len() > RECONCILE_LIST_MAX {
        let message = format!("a list has at most {RECONCILE_LIST_MAX} settlements");
        return Err(ServiceError::new(ServiceCode::BodyMalformed, message).field("list"));
    }
    let mut yours: BTreeMap<&str, ReconcileItem> = BTreeMap::new();
    let mut out = Vec::new();
    for (index, item) in list.iter().enumerate() {
        let item = canonical(item, index)?;
        // A settlement listed twice is counted twice in the hospital's totals: said as such.
        if yours.contains_key(item.settlement_id.as_str()) {
            out.push(SettlementDifferenceDto {
                settlement_id: item.settlement_id.clone(),
                problem: "listed_twice_in_yours".to_owned(),
                ours: None,
                yours: Some(item),
            });
            continue;
        }
        yours.insert(list[index].settlement_id.as_str(), item);
    }
    for row in rows {
        let ours = row.item.clone();
        let (problem, theirs) = match yours.remove(ours.settlement_id.as_str()) {
            None => ("missing_in_yours", None),
            Some(theirs) if theirs != ours => ("amounts_differ", Some(theirs)),
            Some(_) => continue,
        };
        out.push(SettlementDifferenceDto {
            settlement_id: ours.settlement_id.clone(),
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
