//! Personal accounts (个人账户): the agency's credits to them (个人账户划入). A credit is a row
//! of its own, only ever inserted, and moves the person's balance in the same transaction, as
//! settlements (which spend it) and reversals (which give it back) do. So the balance is always
//! the one given at registration, plus the credits, less what standing settlements took.

use onestop_api::service::{AccountCreditDto, AccountCreditRequest};
use onestop_api::{ServiceCode, ServiceError};
use onestop_core::Fen;

use crate::Answer;
use crate::audit::{self, AuditAction};
use crate::model::{IdKind, Institution, PersonKey, PersonRow, Role, make_id};
use crate::ops::{Env, Idempotency, forbidden, replayed, respond};
use crate::tx::{AccountCredit, Result, Tx};

/// The most one credit adds: 100,000.00 yuan, far above a year's allocation.
pub const ACCOUNT_CREDIT_MAX: Fen = Fen(10_000_000);

/// The longest note, in characters.
pub const NOTE_CHARS_MAX: usize = 100;

/// Credits the person's account: idempotent under `idempotency` (the same key and body answer
/// the credit first made; failures too), serialized with the person's settlements.
pub fn credit_account(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    key: &PersonKey,
    request: &AccountCreditRequest,
    idempotency: &Idempotency<'_>,
) -> Result<crate::model::StoredResponse> {
    if actor.role != Role::Agency || actor.region != key.region {
        return Ok(respond::<()>(Err(forbidden(actor)), idempotency.request_sha256));
    }
    // Without the person there is nothing to lock or credit, on every retry alike.
    let Some(person) = tx.person(key, true)? else {
        let message = format!("no person `{}` in region {}", key.person_id, key.region);
        let error = ServiceError::new(ServiceCode::PersonNotFound, message);
        return Ok(respond::<()>(Err(error), idempotency.request_sha256));
    };
    if let Some(replay) = replayed(tx, key, actor, idempotency)? {
        return Ok(replay);
    }
    let answer = credit(tx, env, actor, key, &person, request)?;
    let mut response = respond(answer, idempotency.request_sha256);
    if response.status == 200 {
        response.status = 201;
    }
    tx.insert_idempotency(key, &actor.institution_id, idempotency.key, &response, &env.now)?;
    Ok(response)
}

fn credit(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    key: &PersonKey,
    person: &PersonRow,
    request: &AccountCreditRequest,
) -> Result<Answer<AccountCreditDto>> {
    let (amount, period, note) = match parse(request) {
        Ok(parsed) => parsed,
        Err(error) => return Ok(Err(error)),
    };
    // Only employees (职工医保) have a personal account; residents (城乡居民) have none.
    let year = period[..4].parse::<i16>().expect("a checked month begins with its year");
    let enrolment = tx.enrolment(key, year)?;
    if enrolment.is_none_or(|e| e.category.scheme() != onestop_core::Scheme::Employee) {
        let message = format!(
            "person {} is not enrolled in the employee scheme (职工医保) in {year}: only \
             employees have a personal account (个人账户)",
            key.person_id
        );
        return Ok(Err(invalid("period", message)));
    }
    let balance_after = person.account_balance + amount;
    let seq = tx.next_seq_with_balance(key, balance_after)?;
    let credit = AccountCredit {
        credit_id: make_id(IdKind::Credit, key, seq),
        period,
        amount,
        balance_after,
        note,
        actor: actor.institution_id.clone(),
        at: env.now.clone(),
    };
    tx.insert_account_credit(key, &credit)?;
    let detail = format!("{} of {} for {}", credit.credit_id, credit.amount, credit.period);
    audit::record(tx, env, key, &actor.institution_id, AuditAction::CreditAccount, &detail)?;
    Ok(Ok(credit_dto(key, &credit)))
}

fn invalid(field: &str, message: String) -> ServiceError {
    ServiceError::new(ServiceCode::AccountCreditInvalid, message).field(field)
}

/// The amount (above 0, at most [`ACCOUNT_CREDIT_MAX`]), the month and the note.
fn parse(request: &AccountCreditRequest) -> Answer<(Fen, String, String)> {
    let text = request.amount.as_str();
    let amount = Fen::parse_yuan(text).ok().filter(|a| *a > Fen::ZERO && *a <= ACCOUNT_CREDIT_MAX);
    let Some(amount) = amount else {
        let message = format!(
            "`{text}` is not an amount of yuan above 0 and at most {ACCOUNT_CREDIT_MAX} (划入金额)"
        );
        return Err(invalid("amount", message));
    };
    let period = request.period.trim();
    if !is_month(period) {
        let message =
            format!("`{period}` is not a month written YYYY-MM, 1900-01 to 2100-12 (划入期间)");
        return Err(invalid("period", message));
    }
    let note = request.note.trim();
    if note.chars().count() > NOTE_CHARS_MAX {
        return Err(invalid("note", format!("a note is at most {NOTE_CHARS_MAX} characters")));
    }
    Ok((amount, period.to_owned(), note.to_owned()))
}

fn is_month(text: &str) -> bool {
    let Some((year, month)) = text.split_once('-') else { return false };
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    digits(year, 4)
        && digits(month, 2)
        && year.parse::<u16>().is_ok_and(|y| (1900..=2100).contains(&y))
        && month.parse::<u8>().is_ok_and(|m| (1..=12).contains(&m))
}

/// A credit as answered and as listed with the person.
pub fn credit_dto(key: &PersonKey, credit: &AccountCredit) -> AccountCreditDto {
    AccountCreditDto {
        credit_id: credit.credit_id.clone(),
        person_id: key.person_id.clone(),
        insured_region: key.region_text(),
        period: credit.period.clone(),
        amount: credit.amount.to_string(),
        balance_after: credit.balance_after.to_string(),
        note: credit.note.clone(),
        credited_by: credit.actor.clone(),
        credited_at: credit.at.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::is_month;

    #[test]
    fn a_period_is_a_month_written_year_dash_month() {
        for good in ["2024-01", "2024-12", "1900-01", "2100-12"] {
            assert!(is_month(good), "{good}");
        }
        for bad in ["2024-1", "2024-13", "2024-00", "24-01", "2024/01", "1899-12", "2024-01-01", ""]
        {
            assert!(!is_month(bad), "{bad}");
        }
    }
}
