//! onestop-clearing: what regions owe each other for a month (清算), and statistics, as sums
//! streamed over settlements.
//!
//! The store feeds every settlement and reversal booked in a period, one [`Entry`] at a time;
//! nothing here keeps them, so ten million settlements need as much memory as ten. A reversal
//! counts in the month it was booked, never back in the month of the settlement it cancels: a
//! closed month's statement never changes.
//!
//! Who owes whom: a settlement of a person insured in region I at an institution of region T
//! was paid at the window by I's funds and I's personal account, but the money was advanced by
//! T's hospital; at clearing I owes T that amount (`payable`: fund + personal account). Cash is
//! the person's own and is not cleared. Each pair of regions is netted, and each region's net
//! moves its prepayment fund (预付金) balance.
//!
//! Architecture Invariant: pure, deterministic, no I/O but rendering to strings.

mod render;
mod stats;

use std::collections::BTreeMap;

use onestop_core::{Date, Fen, Region, VisitType};
use serde::Serialize;

pub use render::statement_csv;
pub use stats::{Bucket, RegionStatistics, Statistics, StatisticsLine, payout_ratio};

/// A calendar month, `YYYY-MM`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Month {
    pub year: i16,
    pub month: i8,
}

impl Month {
    /// Reads `YYYY-MM`.
    pub fn parse(text: &str) -> Option<Month> {
        let (year, month) = text.split_once('-')?;
        if year.len() != 4 || month.len() != 2 {
            return None;
        }
        let year: i16 = year.parse().ok().filter(|y| (1900..=9999).contains(y))?;
        let month: i8 = month.parse().ok().filter(|m| (1..=12).contains(m))?;
        Some(Month { year, month })
    }

    pub fn of(date: Date) -> Month {
        Month { year: date.year(), month: date.month() }
    }

    pub fn first_day(self) -> Date {
        Date::new(self.year, self.month, 1).expect("a month's first day exists")
    }

    pub fn next(self) -> Month {
        if self.month == 12 {
            Month { year: self.year + 1, month: 1 }
        } else {
            Month { year: self.year, month: self.month + 1 }
        }
    }

    /// Whether `date` falls in this month.
    pub fn contains(self, date: Date) -> bool {
        Month::of(date) == self
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// One settlement or reversal as clearing sees it. A reversal carries negated amounts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Entry {
    /// Where the person is insured (参保地): whose funds paid.
    pub insured: Region,
    /// Where the institution is (就医地): who advanced the money.
    pub treatment: Region,
    pub visit: VisitType,
    pub booked_on: Date,
    pub reversal: bool,
    pub medical_cost: Fen,
    /// Paid by the insured region's funds (every tier).
    pub fund: Fen,
    pub personal_account: Fen,
    pub cash: Fen,
}

/// Counts and sums of settlements.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize)]
pub struct Sums {
    pub settlements: u64,
    pub reversals: u64,
    #[serde(serialize_with = "yuan")]
    pub medical_cost: Fen,
    #[serde(serialize_with = "yuan")]
    pub fund: Fen,
    #[serde(serialize_with = "yuan")]
    pub personal_account: Fen,
    #[serde(serialize_with = "yuan")]
    pub cash: Fen,
}

impl Sums {
    pub fn add(&mut self, entry: &Entry) {
        if entry.reversal {
            self.reversals += 1;
        } else {
            self.settlements += 1;
        }
        self.medical_cost += entry.medical_cost;
        self.fund += entry.fund;
        self.personal_account += entry.personal_account;
        self.cash += entry.cash;
    }

    pub fn merge(&mut self, other: &Sums) {
        self.settlements += other.settlements;
        self.reversals += other.reversals;
        self.medical_cost += other.medical_cost;
        self.fund += other.fund;
        self.personal_account += other.personal_account;
        self.cash += other.cash;
    }

    /// What the insured region owes the region of treatment: fund and personal account.
    pub fn payable(&self) -> Fen {
        self.fund + self.personal_account
    }
}

pub(crate) fn yuan<S: serde::Serializer>(fen: &Fen, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(fen)
}

/// An entry booked outside the month being cleared: the caller's query is wrong.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct OutsideMonth {
    pub month: Month,
    pub booked_on: Date,
}

impl std::fmt::Display for OutsideMonth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "an entry booked on {} is not in month {}", self.booked_on, self.month)
    }
}

/// The month's sums for every (insured, treatment) pair of regions, local care included, so that
/// the statements add up to the whole ledger of the month.
#[derive(Clone, Debug)]
pub struct Clearing {
    pub month: Month,
    pairs: BTreeMap<(Region, Region), Sums>,
}

impl Clearing {
    pub fn new(month: Month) -> Clearing {
        Clearing { month, pairs: BTreeMap::new() }
    }

    pub fn add(&mut self, entry: &Entry) -> Result<(), OutsideMonth> {
        if !self.month.contains(entry.booked_on) {
            return Err(OutsideMonth { month: self.month, booked_on: entry.booked_on });
        }
        self.pairs.entry((entry.insured, entry.treatment)).or_default().add(entry);
        Ok(())
    }

    /// Adds another part of the same month (another node's ledger).
    pub fn merge(&mut self, other: &Clearing) {
        assert_eq!(self.month, other.month, "only parts of one month merge");
        for (pair, sums) in &other.pairs {
            self.pairs.entry(*pair).or_default().merge(sums);
        }
    }

    /// The (insured, treatment) pairs with their sums, in order.
    pub fn pairs(&self) -> impl Iterator<Item = (Region, Region, &Sums)> {
        self.pairs.iter().map(|((insured, treatment), sums)| (*insured, *treatment, sums))
    }

    /// Every region that paid or was paid this month.
    pub fn regions(&self) -> Vec<Region> {
        let mut regions: Vec<Region> = self.pairs.keys().flat_map(|(i, t)| [*i, *t]).collect();
        regions.sort();
        regions.dedup();
        regions
    }

    /// Everything booked this month, all pairs together.
    pub fn total(&self) -> Sums {
        let mut total = Sums::default();
        for sums in self.pairs.values() {
            total.merge(sums);
        }
        total
    }

    /// The statement of one region: what it owes and is owed, by counterpart, netted, and its
    /// prepayment balance before and after.
    pub fn statement(&self, region: Region, opening_balance: Option<Fen>) -> Statement {
        let zero = Sums::default();
        let local = self.pairs.get(&(region, region)).copied().unwrap_or_default();
        let mut counterparts: Vec<Region> = self
            .pairs
            .keys()
            .filter_map(|(i, t)| match (*i == region, *t == region) {
                (true, false) => Some(*t),
                (false, true) => Some(*i),
                _ => None,
            })
            .collect();
        counterparts.sort();
        counterparts.dedup();
        let lines: Vec<CounterpartLine> = counterparts
            .into_iter()
            .map(|counterpart| {
                let payable = *self.pairs.get(&(region, counterpart)).unwrap_or(&zero);
                let receivable = *self.pairs.get(&(counterpart, region)).unwrap_or(&zero);
                let net = receivable.payable() - payable.payable();
                CounterpartLine { counterpart, payable, receivable, net }
            })
            .collect();
        let payable_total: Fen = lines.iter().map(|l| l.payable.payable()).sum();
        let receivable_total: Fen = lines.iter().map(|l| l.receivable.payable()).sum();
        let net_total = receivable_total - payable_total;
        let opening = opening_balance.unwrap_or(Fen::ZERO);
        let closing = opening + net_total;
        Statement {
            month: self.month,
            region,
            local,
            counterparts: lines,
            payable_total,
            receivable_total,
            net_total,
            opening_balance_set: opening_balance.is_some(),
            opening_balance: opening,
            closing_balance: closing,
            top_up_required: if closing < Fen::ZERO { -closing } else { Fen::ZERO },
        }
    }
}

/// One counterpart of a region's statement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CounterpartLine {
    #[serde(serialize_with = "region_code")]
    pub counterpart: Region,
    /// This region's people treated in the counterpart: owed to it.
    pub payable: Sums,
    /// The counterpart's people treated here: owed by it.
    pub receivable: Sums,
    /// Receivable minus payable (fund and personal account): positive when the counterpart
    /// pays this region.
    #[serde(serialize_with = "yuan")]
    pub net: Fen,
}

pub(crate) fn region_code<S: serde::Serializer>(r: &Region, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(r)
}

/// A region's clearing statement for a month (清算单).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Statement {
    #[serde(serialize_with = "month_code")]
    pub month: Month,
    #[serde(serialize_with = "region_code")]
    pub region: Region,
    /// Care of this region's people at its own institutions: not cleared, shown so that the
    /// statement adds up to the region's ledger.
    pub local: Sums,
    pub counterparts: Vec<CounterpartLine>,
    #[serde(serialize_with = "yuan")]
    pub payable_total: Fen,
    #[serde(serialize_with = "yuan")]
    pub receivable_total: Fen,
    #[serde(serialize_with = "yuan")]
    pub net_total: Fen,
    /// Whether the agency recorded the month's opening prepayment balance (otherwise 0).
    pub opening_balance_set: bool,
    /// The prepayment fund (预付金) balance at the start of the month.
    #[serde(serialize_with = "yuan")]
    pub opening_balance: Fen,
    #[serde(serialize_with = "yuan")]
    pub closing_balance: Fen,
    /// What the region must pay in to bring its prepayment back to zero.
    #[serde(serialize_with = "yuan")]
    pub top_up_required: Fen,
}

fn month_code<S: serde::Serializer>(m: &Month, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(m)
}

#[cfg(test)]
mod tests;
