//! A settlement's wire JSON written straight from the engine's values: byte for byte what
//! serializing [`SettlementDto::from_core`] gives, without the DTO's hundreds of owned strings.
//!
//! The service writes this for every settlement (some 10 KB with its explanation); through the
//! DTO, allocating, formatting and freeing those strings was most of the work (measured in
//! `benches/settlement_json.rs`). Amounts and texts are formatted into the output as it is
//! written. The DTO stays the one description of the format (it is what clients parse, and
//! what the OpenAPI document shows); a property test holds the two to the same bytes.
//!
//! [`SettlementDto::from_core`]: crate::SettlementDto::from_core

use std::fmt::Display;

use onestop_core::accumulators::{AccumulatorKey, Counter};
use onestop_core::policy::{Component, Policy, Source};
use onestop_core::{
    Accumulators, Claim, Fen, Line, LineSplit, Settlement, Step, StepKind, TierPayment, Totals,
};
use serde::ser::{Serialize, SerializeMap, SerializeStruct, Serializer};

use crate::settlement::{StepScopeText, StepText, source_policy};

/// The settlement's JSON (`SettlementDto`); `ytd` are the accumulators it was computed on.
pub fn settlement_json(
    claim: &Claim,
    insured: &Policy,
    treatment: &Policy,
    ytd: &Accumulators,
    settlement: &Settlement,
) -> String {
    let view = SettlementView { claim, insured, treatment, ytd, settlement };
    serde_json::to_string(&view).expect("writing into memory does not fail")
}

struct SettlementView<'a> {
    claim: &'a Claim,
    insured: &'a Policy,
    treatment: &'a Policy,
    ytd: &'a Accumulators,
    settlement: &'a Settlement,
}

/// A value written as a JSON string by its `Display`, without a string of its own.
#[derive(Clone, Copy)]
struct Text<T>(T);

impl<T: Display> Serialize for Text<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// A JSON array of what the function's iterator yields.
struct Items<F>(F);

impl<F, I> Serialize for Items<F>
where
    F: Fn() -> I,
    I: Iterator<Item: Serialize>,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq((self.0)())
    }
}

impl Serialize for SettlementView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let SettlementView { claim, insured, treatment, ytd, settlement } = *self;
        let (bill, person) = (&claim.bill, &claim.person);
        let mut deltas = Accumulators::new(ytd.year);
        deltas.apply(&settlement.deltas, 1);
        let lines = || {
            let lines = bill.lines.iter().zip(&settlement.lines).enumerate();
            lines.map(|(index, (line, split))| LineView { index, line, split })
        };
        let tiers = || settlement.payments.iter().map(|payment| TierView { insured, payment });
        let steps = || {
            let steps = settlement.steps.iter();
            steps.map(|step| StepView { claim, insured, treatment, settlement, step })
        };

        let mut out = serializer.serialize_struct("SettlementDto", 29)?;
        out.serialize_field("date_of_service", &Text(bill.date_of_service))?;
        out.serialize_field("insured_region", &Text(person.insured_region))?;
        out.serialize_field("treatment_region", &Text(bill.treatment_region))?;
        out.serialize_field("visit", bill.visit.code())?;
        out.serialize_field("level", bill.level.code())?;
        out.serialize_field("admission_number", &settlement.admission_number)?;
        out.serialize_field("days", &bill.days)?;
        out.serialize_field("disease", &bill.disease)?;
        let group = insured.disease_group(bill.disease.as_deref()).map(|(_, g)| g);
        out.serialize_field("disease_group", &group.map(|g| &*g.id))?;
        out.serialize_field("disease_group_name", &group.map(|g| &g.name))?;
        out.serialize_field("scheme", person.scheme().code())?;
        out.serialize_field("category", person.category.code())?;
        out.serialize_field("insured_policy", &PolicyRefView(insured))?;
        out.serialize_field("treatment_policy", &PolicyRefView(treatment))?;
        out.serialize_field("totals", &TotalsView(&settlement.totals))?;
        out.serialize_field("lines", &Items(lines))?;
        out.serialize_field("tiers", &Items(tiers))?;
        out.serialize_field("fund_total", &Text(settlement.fund_total()))?;
        out.serialize_field("deductible", &Text(settlement.deductible))?;
        out.serialize_field("personal_account", &Text(settlement.personal_account))?;
        out.serialize_field("cash", &Text(settlement.cash))?;
        out.serialize_field("personal_total", &Text(settlement.personal_total()))?;
        out.serialize_field("personal_in_scope", &Text(settlement.personal_in_scope()))?;
        out.serialize_field("personal_by_component", &ByComponent(settlement))?;
        out.serialize_field("explanation", &Items(steps))?;
        out.serialize_field("accumulators", &YtdView(&settlement.accumulators_after(ytd)))?;
        out.serialize_field("accumulator_deltas", &YtdView(&deltas))?;
        out.end()
    }
}

struct PolicyRefView<'a>(&'a Policy);

impl Serialize for PolicyRefView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let policy = self.0;
        let mut out = serializer.serialize_struct("PolicyRefDto", 4)?;
        out.serialize_field("region", &Text(policy.region))?;
        out.serialize_field("name", &policy.name)?;
        out.serialize_field("valid_from", &Text(policy.valid_from))?;
        out.serialize_field("valid_to", &policy.valid_to.map(Text))?;
        out.end()
    }
}

struct TotalsView<'a>(&'a Totals);

impl Serialize for TotalsView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let totals = self.0;
        let mut out = serializer.serialize_struct("TotalsDto", 5)?;
        out.serialize_field("total", &Text(totals.total))?;
        out.serialize_field("outside_catalog", &Text(totals.outside_catalog))?;
        out.serialize_field("over_limit", &Text(totals.over_limit))?;
        out.serialize_field("class_b_first_self_pay", &Text(totals.class_b_first_self_pay))?;
        out.serialize_field("in_scope", &Text(totals.in_scope))?;
        out.end()
    }
}

struct LineView<'a> {
    index: usize,
    line: &'a Line,
    split: &'a LineSplit,
}

impl Serialize for LineView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let LineView { index, line, split } = *self;
        let mut out = serializer.serialize_struct("LineResultDto", 10)?;
        out.serialize_field("index", &index)?;
        out.serialize_field("code", &line.code)?;
        out.serialize_field("name", &line.name)?;
        out.serialize_field("class", split.class.code())?;
        out.serialize_field("amount", &Text(line.amount))?;
        out.serialize_field("outside_catalog", &Text(split.outside_catalog))?;
        out.serialize_field("over_limit", &Text(split.over_limit))?;
        out.serialize_field("class_b_first_self_pay", &Text(split.class_b_first_self_pay))?;
        out.serialize_field("in_scope", &Text(split.in_scope))?;
        out.serialize_field("first_self_pay_ratio", &Text(split.first_self_pay_ratio))?;
        out.end()
    }
}

struct TierView<'a> {
    insured: &'a Policy,
    payment: &'a TierPayment,
}

impl Serialize for TierView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let TierView { insured, payment } = *self;
        let mut out = serializer.serialize_struct("TierResultDto", 7)?;
        out.serialize_field("id", &*payment.id)?;
        out.serialize_field("kind", payment.kind.code())?;
        out.serialize_field("name_zh", payment.kind.zh())?;
        out.serialize_field("name_en", payment.kind.english())?;
        out.serialize_field("amount", &Text(payment.amount))?;
        out.serialize_field("base", &Text(payment.base))?;
        out.serialize_field("rule", &payment.rule.map(|id| &insured.source(id).path))?;
        out.end()
    }
}

struct StepView<'a> {
    claim: &'a Claim,
    insured: &'a Policy,
    treatment: &'a Policy,
    settlement: &'a Settlement,
    step: &'a Step,
}

impl Serialize for StepView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let StepView { claim, insured, treatment, settlement, step } = *self;
        let banded = matches!(step.kind, StepKind::Band);
        let policy = source_policy(insured, treatment, step.scope);
        let parameters =
            || step.sources.iter().flatten().map(|id| ParameterView(policy.source(*id)));
        let text = StepText { claim, insured, treatment, settlement, step };
        let mut out = serializer.serialize_struct("StepDto", 9)?;
        out.serialize_field("scope", &Text(StepScopeText { insured, scope: step.scope }))?;
        out.serialize_field("step", step.kind.code())?;
        out.serialize_field("amount", &Text(step.amount))?;
        out.serialize_field("base", &Text(step.base))?;
        out.serialize_field("ratio", &step.ratio.map(Text))?;
        out.serialize_field("lower", &banded.then_some(Text(step.lower)))?;
        out.serialize_field("upper", &banded.then_some(Text(step.upper)))?;
        out.serialize_field("parameters", &Items(parameters))?;
        out.serialize_field("text", &Text(text))?;
        out.end()
    }
}

struct ParameterView<'a>(&'a Source);

impl Serialize for ParameterView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let source = self.0;
        let mut out = serializer.serialize_struct("ParameterDto", 4)?;
        out.serialize_field("path", &source.path)?;
        out.serialize_field("file", &*source.file)?;
        out.serialize_field("line", &source.line)?;
        out.serialize_field("effective_from", &Text(source.effective_from))?;
        out.end()
    }
}

/// The person's share by component, keyed and ordered by the component's code (as the DTO's
/// `BTreeMap` orders them).
struct ByComponent<'a>(&'a Settlement);

impl Serialize for ByComponent<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut components = Component::ALL;
        components.sort_unstable_by_key(|c| c.code());
        let shares = &self.0.personal_by_component;
        serializer.collect_map(components.iter().map(|c| (c.code(), Text(shares[c.index()]))))
    }
}

/// Accumulators as `YtdDto` writes them: `tiers.<tier>.<pool>.<counter>`, each level ordered
/// by its text.
struct YtdView<'a>(&'a Accumulators);

impl Serialize for YtdView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let accumulators = self.0;
        let mut out = serializer.serialize_struct("YtdDto", 3)?;
        out.serialize_field("year", &Text(accumulators.year))?;
        out.serialize_field("admissions", &Text(accumulators.admissions))?;
        out.serialize_field("tiers", &TiersView(accumulators))?;
        out.end()
    }
}

struct TiersView<'a>(&'a Accumulators);

impl Serialize for TiersView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Entries are sorted by tier, then pool (as text), then counter: runs of one tier, and
        // within them runs of one pool.
        let entries = self.0.entries();
        let mut out = serializer.serialize_map(None)?;
        for tier in entries.chunk_by(|a, b| a.0.tier == b.0.tier) {
            out.serialize_entry(&*tier[0].0.tier, &PoolsView(tier))?;
        }
        out.end()
    }
}

type Entries<'a> = &'a [(AccumulatorKey, Fen)];

/// One tier's entries: a map of pools.
struct PoolsView<'a>(Entries<'a>);

impl Serialize for PoolsView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_map(None)?;
        for pool in self.0.chunk_by(|a, b| a.0.pool == b.0.pool) {
            out.serialize_entry(&*pool[0].0.pool, &CountersView(pool))?;
        }
        out.end()
    }
}

/// One pool's entries (at most one a counter): a map of counters, ordered by their codes.
struct CountersView<'a>(Entries<'a>);

impl Serialize for CountersView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        assert!(self.0.len() <= Counter::ALL.len(), "one entry a counter");
        let mut counters = [None; Counter::ALL.len()];
        for (slot, (key, value)) in counters.iter_mut().zip(self.0) {
            *slot = Some((key.counter.code(), Text(*value)));
        }
        counters.sort_unstable_by_key(|entry| entry.as_ref().map(|(code, _)| *code));
        serializer.collect_map(counters.into_iter().flatten())
    }
}
