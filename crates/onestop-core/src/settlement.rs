//! The result of splitting a bill: each line's classification, what each tier pays, what the
//! person pays from the account and in cash, the new accumulators, and the steps that explain
//! every amount.

use std::sync::Arc;

use crate::accumulators::{Accumulators, Deltas};
use crate::claim::CatalogClass;
use crate::money::{Fen, Ratio};
use crate::policy::{Component, SourceId, TierKind};

/// How the catalog split one line. The four parts add up to the line's amount.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LineSplit {
    /// The class the line was settled as (the catalog's, else the bill's).
    pub class: CatalogClass,
    /// Outside the catalog (全自费).
    pub outside_catalog: Fen,
    /// Above the price limit (超限价自费).
    pub over_limit: Fen,
    /// Class-B first self-pay (乙类先行自付), rounded per line.
    pub class_b_first_self_pay: Fen,
    /// Within the policy scope (政策范围内).
    pub in_scope: Fen,
    /// The first self-pay ratio applied; zero for class A and outside lines.
    pub first_self_pay_ratio: Ratio,
}

/// The bill's totals by catalog part.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Totals {
    /// 医疗费总额.
    pub total: Fen,
    pub outside_catalog: Fen,
    pub over_limit: Fen,
    pub class_b_first_self_pay: Fen,
    pub in_scope: Fen,
}

/// What one tier paid.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TierPayment {
    /// The tier's index in the policy.
    pub tier: usize,
    pub id: Arc<str>,
    pub kind: TierKind,
    pub amount: Fen,
    /// The amount the tier's ratios applied to this visit (in-scope amount for coinsurance
    /// tiers, the layer's base otherwise).
    pub base: Fen,
    /// The rule that applied, if any did.
    pub rule: Option<SourceId>,
}

/// What a step of the explanation is about.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StepScope {
    Line(u32),
    Tier(u16),
    Account,
    Cash,
}

/// The kinds of step in an explanation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StepKind {
    /// A line outside the catalog is self-paid in full.
    OutsideCatalog,
    /// The part of a line above its price limit is self-paid.
    OverLimit,
    /// A class-B line's first self-pay share.
    ClassBFirstSelfPay,
    /// The rule of the tier that applied (sources: the rule).
    RuleApplied,
    /// No rule of the tier matches this person and visit: it pays nothing.
    NoRuleMatched,
    /// An adjustment applied (sources: the adjustment).
    Adjustment,
    /// Care outside the insured region: the basic fund's ratios cut by `ratio` points.
    CrossRegionCut,
    /// Care outside the insured region: the person first pays `ratio` of the in-scope `base`
    /// (`amount`), before the basic fund's deductible and ratios (异地先行自付).
    ElsewhereFirstSelfPay,
    /// The deductible borne on this visit (`amount`), of the deductible `base`.
    Deductible,
    /// A layer's base for this visit (`amount`) and the year's base before it (`base`).
    Base,
    /// A layer's threshold (`amount`).
    Threshold,
    /// A band's payment: `ratio` of `base`, on positions `lower..upper`.
    Band,
    /// The annual cap cut the payment by `amount`; `base` was left under the cap.
    CapReached,
    /// The in-scope amount above the rule's cost ceiling (`base`, a band position): `amount`,
    /// not paid by the tier (above_cap).
    CeilingReached,
    /// The payment was cut by `amount` to what the earlier tiers left to the person.
    LimitedToRemaining,
    /// Paid from the personal account.
    AccountPaid,
    /// Paid in cash.
    CashPaid,
}

impl StepKind {
    pub fn code(self) -> &'static str {
        match self {
            StepKind::OutsideCatalog => "outside_catalog",
            StepKind::OverLimit => "over_limit",
            StepKind::ClassBFirstSelfPay => "class_b_first_self_pay",
            StepKind::RuleApplied => "rule_applied",
            StepKind::NoRuleMatched => "no_rule_matched",
            StepKind::Adjustment => "adjustment",
            StepKind::CrossRegionCut => "cross_region_cut",
            StepKind::ElsewhereFirstSelfPay => "elsewhere_first_self_pay",
            StepKind::Deductible => "deductible",
            StepKind::Base => "base",
            StepKind::Threshold => "threshold",
            StepKind::Band => "band",
            StepKind::CapReached => "cap_reached",
            StepKind::CeilingReached => "ceiling_reached",
            StepKind::LimitedToRemaining => "limited_to_remaining",
            StepKind::AccountPaid => "account_paid",
            StepKind::CashPaid => "cash_paid",
        }
    }
}

/// One step of the explanation: an amount and the rule, band and parameters behind it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Step {
    pub scope: StepScope,
    pub kind: StepKind,
    pub amount: Fen,
    /// What the step's ratio or rule applied to.
    pub base: Fen,
    pub ratio: Option<Ratio>,
    /// For bands: the positions of the part paid, on the band basis.
    pub lower: Fen,
    pub upper: Fen,
    /// The parameters that produced the amount (most specific first).
    pub sources: [Option<SourceId>; 2],
}

impl Step {
    pub fn new(scope: StepScope, kind: StepKind, amount: Fen) -> Step {
        Step {
            scope,
            kind,
            amount,
            base: Fen::ZERO,
            ratio: None,
            lower: Fen::ZERO,
            upper: Fen::ZERO,
            sources: [None, None],
        }
    }

    pub fn base(mut self, base: Fen) -> Step {
        self.base = base;
        self
    }

    pub fn ratio(mut self, ratio: Ratio) -> Step {
        self.ratio = Some(ratio);
        self
    }

    pub fn source(mut self, source: SourceId) -> Step {
        self.sources[0] = Some(source);
        self
    }

    pub fn also(mut self, source: Option<SourceId>) -> Step {
        self.sources[1] = source;
        self
    }

    pub fn positions(mut self, lower: Fen, upper: Fen) -> Step {
        self.lower = lower;
        self.upper = upper;
        self
    }
}

/// The full result of splitting one bill.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Settlement {
    pub lines: Vec<LineSplit>,
    pub totals: Totals,
    /// For inpatient bills, the admission's number within the year (given, or the
    /// admissions so far plus one).
    pub admission_number: Option<u16>,
    /// Deductible borne by the person on this settlement (实际支付起付线).
    pub deductible: Fen,
    /// One entry per tier of the insured region's policy, in policy order.
    pub payments: Vec<TierPayment>,
    /// The person's share by component, after every tier and before account and cash.
    pub personal_by_component: [Fen; Component::COUNT],
    /// The person's in-scope burden right after the coinsurance tier, by component.
    pub burden_after_coinsurance: [Fen; Component::COUNT],
    pub personal_account: Fen,
    pub cash: Fen,
    pub steps: Vec<Step>,
    /// What this settlement adds to the year-to-date accumulators; a reversal subtracts it.
    pub deltas: Deltas,
}

impl Settlement {
    /// Everything the tiers paid (基金支付总额).
    pub fn fund_total(&self) -> Fen {
        self.payments.iter().map(|p| p.amount).sum()
    }

    /// Everything the person pays (个人负担总额): account and cash.
    pub fn personal_total(&self) -> Fen {
        self.personal_account + self.cash
    }

    /// The accumulators after this settlement: `ytd` with the deltas applied.
    pub fn accumulators_after(&self, ytd: &Accumulators) -> Accumulators {
        let mut after = ytd.clone();
        after.apply(&self.deltas, 1);
        after
    }

    /// What tiers of `kind` paid.
    pub fn paid_by_kind(&self, kind: TierKind) -> Fen {
        self.payments.iter().filter(|p| p.kind == kind).map(|p| p.amount).sum()
    }

    /// What the tier with this id paid.
    pub fn paid_by_tier(&self, id: &str) -> Option<Fen> {
        self.payments.iter().find(|p| &*p.id == id).map(|p| p.amount)
    }

    /// The person's in-scope share after every tier.
    pub fn personal_in_scope(&self) -> Fen {
        Component::IN_SCOPE.iter().map(|c| self.personal_by_component[c.index()]).sum()
    }

    pub(crate) fn reset(&mut self) {
        self.lines.clear();
        self.totals = Totals::default();
        self.admission_number = None;
        self.deductible = Fen::ZERO;
        self.payments.clear();
        self.personal_by_component = [Fen::ZERO; Component::COUNT];
        self.burden_after_coinsurance = [Fen::ZERO; Component::COUNT];
        self.personal_account = Fen::ZERO;
        self.cash = Fen::ZERO;
        self.steps.clear();
        self.deltas.clear();
    }
}
