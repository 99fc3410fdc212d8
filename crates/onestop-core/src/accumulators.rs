//! Year-to-date accumulators: what each tier has counted and paid for one person this year.
//!
//! Keys are names from the policy (tier id, pool) so that accumulators survive a policy change
//! in the middle of the year. A settlement's effect on them is a list of deltas, which the
//! ledger stores and a reversal negates.

use std::sync::Arc;

use crate::money::Fen;

/// What a counter counts.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Counter {
    /// Deductible borne by the person (起付线累计).
    DeductibleMet,
    /// In-scope amount counted by a coinsurance tier (政策范围内费用累计).
    InScope,
    /// In-scope amount above the deductible (起付线以上累计).
    Eligible,
    /// A layer's base: for critical illness, the eligible personal burden (大病合规费用累计).
    Base,
    /// What the tier paid (基金支付累计), which its cap limits.
    Paid,
}

impl Counter {
    pub const ALL: [Counter; 5] =
        [Counter::DeductibleMet, Counter::InScope, Counter::Eligible, Counter::Base, Counter::Paid];

    pub fn code(self) -> &'static str {
        match self {
            Counter::DeductibleMet => "deductible_met",
            Counter::InScope => "in_scope",
            Counter::Eligible => "eligible",
            Counter::Base => "base",
            Counter::Paid => "paid",
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            Counter::DeductibleMet => "起付线累计",
            Counter::InScope => "政策范围内累计",
            Counter::Eligible => "起付线以上累计",
            Counter::Base => "计算基数累计",
            Counter::Paid => "支付累计",
        }
    }

    pub fn parse(text: &str) -> Option<Counter> {
        Counter::ALL.into_iter().find(|c| c.code() == text)
    }
}

/// Names one counter: tier id, pool, counter.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct AccumulatorKey {
    pub tier: Arc<str>,
    pub pool: Arc<str>,
    pub counter: Counter,
}

impl AccumulatorKey {
    fn cmp_parts(&self, tier: &str, pool: &str, counter: Counter) -> std::cmp::Ordering {
        // Keys usually share their text with the policy's ids: compare addresses first.
        let same = |a: &str, b: &str| std::ptr::eq(a, b) || a == b;
        let tier_order =
            if same(&self.tier, tier) { std::cmp::Ordering::Equal } else { (*self.tier).cmp(tier) };
        tier_order
            .then_with(|| {
                if same(&self.pool, pool) {
                    std::cmp::Ordering::Equal
                } else {
                    (*self.pool).cmp(pool)
                }
            })
            .then(self.counter.cmp(&counter))
    }
}

/// One person's counters for one calendar year.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Accumulators {
    pub year: i16,
    /// Admissions so far this year (住院次数).
    pub admissions: u16,
    /// Sorted by key, no duplicates, no zero values.
    entries: Vec<(AccumulatorKey, Fen)>,
}

impl Accumulators {
    pub fn new(year: i16) -> Accumulators {
        Accumulators { year, admissions: 0, entries: Vec::new() }
    }

    pub fn get(&self, tier: &str, pool: &str, counter: Counter) -> Fen {
        match self.entries.binary_search_by(|(key, _)| key.cmp_parts(tier, pool, counter)) {
            Ok(index) => self.entries[index].1,
            Err(_) => Fen::ZERO,
        }
    }

    /// Adds `delta` to a counter; a counter that reaches zero is removed.
    pub fn add(&mut self, key: &AccumulatorKey, delta: Fen) {
        if delta.is_zero() {
            return;
        }
        let found = self.entries.binary_search_by(|(existing, _)| {
            existing.cmp_parts(&key.tier, &key.pool, key.counter)
        });
        match found {
            Ok(index) => {
                self.entries[index].1 += delta;
                if self.entries[index].1.is_zero() {
                    self.entries.remove(index);
                }
            }
            Err(index) => self.entries.insert(index, (key.clone(), delta)),
        }
    }

    pub fn entries(&self) -> &[(AccumulatorKey, Fen)] {
        &self.entries
    }

    /// Applies a settlement's deltas (or, with `sign = -1`, reverses them).
    pub fn apply(&mut self, deltas: &Deltas, sign: i64) {
        debug_assert!(sign == 1 || sign == -1);
        for (key, delta) in &deltas.entries {
            self.add(key, Fen(delta.0 * sign));
        }
        let admissions = i64::from(self.admissions) + i64::from(deltas.admissions) * sign;
        self.admissions = u16::try_from(admissions.max(0)).unwrap_or(u16::MAX);
    }
}

/// What one settlement adds to the accumulators.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Deltas {
    pub admissions: u16,
    pub entries: Vec<(AccumulatorKey, Fen)>,
}

impl Deltas {
    pub fn clear(&mut self) {
        self.admissions = 0;
        self.entries.clear();
    }

    pub fn push(&mut self, tier: &Arc<str>, pool: &Arc<str>, counter: Counter, delta: Fen) {
        if delta.is_zero() {
            return;
        }
        let key = AccumulatorKey { tier: Arc::clone(tier), pool: Arc::clone(pool), counter };
        self.entries.push((key, delta));
    }
}
