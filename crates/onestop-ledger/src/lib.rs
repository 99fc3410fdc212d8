//! onestop-ledger: the journal model of settlements, pure and append-only.
//!
//! A settlement posts the bill's cost against who paid it: one posting debits the medical cost
//! (医疗费用) with the bill total, and one posting per payer credits each tier, the personal
//! account and cash. The postings of one entry sum to zero. A cancellation is a new entry with
//! every posting negated, never an edit: the ledger only grows, and the sum of all entries of a
//! settlement and its reversal is zero posting by posting.
//!
//! Architecture Invariant: nothing here does I/O; the store persists what this crate computes.

use onestop_core::{Fen, Settlement};

/// Who a posting is about.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Account {
    /// The bill's cost (医疗费用): debited with the total.
    MedicalCost,
    /// A tier of the insured region's policy, by id (`basic`, `critical_illness`, ...).
    Tier(String),
    /// The person's personal account (个人账户).
    PersonalAccount,
    /// Cash paid by the person (个人现金).
    Cash,
}

impl Account {
    /// The stable name stored in the ledger: `medical_cost`, `tier:<id>`, `personal_account`,
    /// `cash`.
    pub fn code(&self) -> String {
        match self {
            Account::MedicalCost => "medical_cost".to_owned(),
            Account::Tier(id) => format!("tier:{id}"),
            Account::PersonalAccount => "personal_account".to_owned(),
            Account::Cash => "cash".to_owned(),
        }
    }

    pub fn parse(code: &str) -> Option<Account> {
        match code {
            "medical_cost" => Some(Account::MedicalCost),
            "personal_account" => Some(Account::PersonalAccount),
            "cash" => Some(Account::Cash),
            other => other.strip_prefix("tier:").map(|id| Account::Tier(id.to_owned())),
        }
    }
}

/// One line of a journal entry. Credits are positive, debits negative.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Posting {
    pub account: Account,
    pub amount: Fen,
}

/// The postings of a settlement: the cost debited, every payer credited, zero-amount payers
/// left out (except the cost itself).
pub fn postings(settlement: &Settlement) -> Vec<Posting> {
    let mut out = Vec::with_capacity(settlement.payments.len() + 3);
    out.push(Posting { account: Account::MedicalCost, amount: -settlement.totals.total });
    for payment in settlement.payments.iter().filter(|p| !p.amount.is_zero()) {
        out.push(Posting {
            account: Account::Tier(payment.id.to_string()),
            amount: payment.amount,
        });
    }
    if !settlement.personal_account.is_zero() {
        out.push(Posting {
            account: Account::PersonalAccount,
            amount: settlement.personal_account,
        });
    }
    if !settlement.cash.is_zero() {
        out.push(Posting { account: Account::Cash, amount: settlement.cash });
    }
    assert_balanced(&out);
    out
}

/// The reversing entry of `postings`: every amount negated.
pub fn reversal(postings: &[Posting]) -> Vec<Posting> {
    assert_balanced(postings);
    let out: Vec<Posting> = postings
        .iter()
        .map(|p| Posting { account: p.account.clone(), amount: -p.amount })
        .collect();
    assert_balanced(&out);
    out
}

/// Whether the postings of one entry sum to zero.
pub fn is_balanced(postings: &[Posting]) -> bool {
    postings.iter().map(|p| p.amount).sum::<Fen>().is_zero()
}

/// Panics unless the postings balance: an unbalanced entry is a bug, and the transaction that
/// would write it must not commit.
pub fn assert_balanced(postings: &[Posting]) {
    assert!(is_balanced(postings), "a journal entry must balance: {postings:?}");
}

/// What a tier, the account or cash paid in an entry (zero if absent).
pub fn amount_of(postings: &[Posting], account: &Account) -> Fen {
    postings.iter().filter(|p| &p.account == account).map(|p| p.amount).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_codes_round_trip() {
        for account in [
            Account::MedicalCost,
            Account::Tier("critical_illness".into()),
            Account::PersonalAccount,
            Account::Cash,
        ] {
            assert_eq!(Account::parse(&account.code()), Some(account));
        }
        assert_eq!(Account::parse("tier"), None);
    }

    #[test]
    fn a_reversal_undoes_every_posting() {
        let entry = vec![
            Posting { account: Account::MedicalCost, amount: Fen(-10_000) },
            Posting { account: Account::Tier("basic".into()), amount: Fen(7_000) },
            Posting { account: Account::Cash, amount: Fen(3_000) },
        ];
        let reversed = reversal(&entry);
        for (a, b) in entry.iter().zip(&reversed) {
            assert_eq!(a.account, b.account);
            assert_eq!(a.amount + b.amount, Fen::ZERO);
        }
        assert_eq!(amount_of(&reversed, &Account::Cash), Fen(-3_000));
    }
}
