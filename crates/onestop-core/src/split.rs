//! `split`: one bill, one person, their year-to-date accumulators and the policies in force
//! give what every tier pays, to the fen, with the steps that explain it.
//!
//! The order is fixed and the parameters are data:
//! 1. the treatment region's catalog splits each line into outside-catalog, over-limit,
//!    class-B first self-pay and in-scope parts;
//! 2. the insured region's coinsurance tier (basic pooled fund, or long-term care) takes the
//!    in-scope amount through its deductible, bands and cap, leaving the person a burden made
//!    of components (below the deductible, co-insurance share, above the cap, and the three
//!    out-of-scope parts);
//! 3. each layer in policy order takes a base from the components it names, less what the
//!    earlier tiers it names paid, and pays through its threshold, bands and cap;
//! 4. the personal account pays what it may cover, and cash the rest.
//!
//! Invariants, asserted on every call: the line parts add up to each line; the tiers, the
//! account and cash add up to the bill total; no component ever goes negative.

use crate::accumulators::{Accumulators, Counter};
use crate::claim::{CatalogClass, Claim, Line, Scheme, VisitType};
use crate::money::{Fen, Ratio, Rounding, div_round};
use crate::policy::{
    Accumulate, BandBasis, Catalog, Component, DeductiblePer, Facts, FirstSelfPayRoundAt, Param,
    Policy, RoundAt, Rule, SourceId, Tier, Unfiled,
};
use crate::reject::{Rejection, RejectionCode};
use crate::settlement::{LineSplit, Settlement, Step, StepKind, StepScope, TierPayment, Totals};

/// At most this many tiers in one policy; the loader enforces it.
pub const TIERS_MAX: usize = 16;
/// At most this many bands in one rule; the loader enforces it.
pub const BANDS_MAX: usize = 16;

/// Splits a claim. `insured` is the insured region's policy in force on the date of service,
/// `treatment` the treatment region's (the same policy when the person is treated at home).
pub fn split(
    claim: &Claim,
    insured: &Policy,
    treatment: &Policy,
    ytd: &Accumulators,
) -> Result<Settlement, Rejection> {
    let mut settlement = Settlement::default();
    split_into(claim, insured, treatment, ytd, &mut settlement)?;
    Ok(settlement)
}

/// As [`split`], reusing the buffers of `out` (for callers that settle many bills).
pub fn split_into(
    claim: &Claim,
    insured: &Policy,
    treatment: &Policy,
    ytd: &Accumulators,
    out: &mut Settlement,
) -> Result<(), Rejection> {
    let (catalog, elsewhere) = check(claim, insured, treatment, ytd)?;
    out.reset();
    let rounding = insured.rounding.value;
    classify(claim, catalog, treatment.rounding.value, out);
    let mut run = Run::new(claim, insured, ytd, rounding, out);
    run.elsewhere = elsewhere;
    run.tiers()?;
    run.account_and_cash();
    run.finish();
    Ok(())
}

fn check<'p>(
    claim: &Claim,
    insured: &Policy,
    treatment: &'p Policy,
    ytd: &Accumulators,
) -> Result<(&'p Catalog, Elsewhere), Rejection> {
    let date = claim.bill.date_of_service;
    if insured.region != claim.person.insured_region {
        return Err(Rejection::new(
            RejectionCode::InsuredRegionHasNoPolicy,
            format!(
                "the policy given is region {}'s, the person is insured in {}",
                insured.region, claim.person.insured_region
            ),
        ));
    }
    if insured.tiers.is_empty() {
        return Err(Rejection::new(
            RejectionCode::InsuredRegionHasNoPolicy,
            format!(
                "region {}'s policy in force on {date} has catalog rules only, no tiers: \
                people insured there cannot be settled",
                insured.region
            ),
        ));
    }
    if !insured.covers(date) {
        return Err(Rejection::new(
            RejectionCode::NoPolicyInForceOnDateOfService,
            format!("region {}'s policy snapshot does not cover {date}", insured.region),
        ));
    }
    let elsewhere = elsewhere(claim, insured)?;
    let catalog = treatment
        .catalog
        .as_ref()
        .filter(|_| treatment.region == claim.bill.treatment_region && treatment.covers(date));
    let Some(catalog) = catalog else {
        return Err(Rejection::new(
            RejectionCode::TreatmentRegionHasNoCatalogInForce,
            format!(
                "region {} has no catalog rules in force on {date}",
                claim.bill.treatment_region
            ),
        ));
    };
    if i32::from(ytd.year) != i32::from(date.year()) {
        return Err(Rejection::new(
            RejectionCode::AccumulatorsYearMustMatchDateOfService,
            format!("the accumulators are for {} but the date of service is {date}", ytd.year),
        )
        .field("ytd.year"));
    }
    Ok((catalog, elsewhere))
}

/// What care outside the insured region changes in the basic fund (参保地政策 for 异地就医).
#[derive(Clone, Copy, Default)]
struct Elsewhere {
    /// Points cut off the basic fund's ratios, with the parameter that says so.
    cut: Option<Param<i64>>,
    /// The share of the in-scope amount the person pays first (先行自付).
    first_self_pay: Option<Param<Ratio>>,
}

/// What the insured region's `[cross_region]` rules do to this bill; refuses unfiled care where
/// the insured region requires a filing.
fn elsewhere(claim: &Claim, insured: &Policy) -> Result<Elsewhere, Rejection> {
    let elsewhere = claim.bill.treatment_region != claim.person.insured_region;
    let Some(rules) = insured.cross_region.as_ref().filter(|_| elsewhere) else {
        return Ok(Elsewhere::default());
    };
    let first_self_pay =
        Some(rules.first_self_pay(claim.bill.filing)).filter(|p| p.value != Ratio::ZERO);
    match (claim.bill.filing, rules.unfiled.value) {
        (Some(kind), _) => Ok(Elsewhere { cut: Some(rules.cut(kind)), first_self_pay }),
        (None, Unfiled::Cut(points)) => {
            Ok(Elsewhere { cut: Some(Param::new(points, rules.unfiled.source)), first_self_pay })
        }
        (None, Unfiled::Reject) => Err(Rejection::new(
            RejectionCode::CrossRegionFilingRequired,
            format!(
                "region {} requires a filing (备案) for care in region {}; the person has no \
                 valid filing for it on {}",
                insured.region, claim.bill.treatment_region, claim.bill.date_of_service
            ),
        )),
    }
}

/// Splits every line by the catalog of the place of treatment (就医地目录).
fn classify(claim: &Claim, catalog: &Catalog, rounding: Rounding, out: &mut Settlement) {
    let scheme = claim.person.scheme();
    let mut totals = Totals::default();
    for (index, line) in claim.bill.lines.iter().enumerate() {
        let scope = StepScope::Line(u32::try_from(index).unwrap_or(u32::MAX));
        let split = split_line(line, scheme, catalog, rounding, &mut |step| {
            out.steps.push(Step { scope, ..step });
        });
        totals.total += line.amount;
        totals.outside_catalog += split.outside_catalog;
        totals.over_limit += split.over_limit;
        totals.class_b_first_self_pay += split.class_b_first_self_pay;
        totals.in_scope += split.in_scope;
        out.lines.push(split);
    }
    let at = catalog.first_self_pay_round_at;
    if at.value == FirstSelfPayRoundAt::Bill {
        let moved = first_self_pay_on_the_total(claim, rounding, out, at.source);
        totals.class_b_first_self_pay += moved;
        totals.in_scope -= moved;
    }
    out.totals = totals;
}

/// Rounds the class-B first self-pay once on the bill: the lines' exact shares summed and
/// rounded, then shared out to the lines, each its exact share rounded down and the fen left
/// over to those with the largest remainders (the earlier line first among equals). Updates
/// each line and its step; returns how much more the bill's first self-pay is than the sum of
/// the lines rounded one by one (negative when less).
fn first_self_pay_on_the_total(
    claim: &Claim,
    rounding: Rounding,
    out: &mut Settlement,
    source: SourceId,
) -> Fen {
    let scale = i128::from(Ratio::SCALE);
    // Each class-B line: its index, its allowed amount and its exact share in fen × millionths.
    let mut shares: Vec<(usize, Fen, i128)> = Vec::new();
    for (index, split) in out.lines.iter().enumerate() {
        if split.class == CatalogClass::B {
            let allowed = claim.bill.lines[index].amount - split.outside_catalog - split.over_limit;
            let exact = i128::from(allowed.0) * i128::from(split.first_self_pay_ratio.millionths());
            shares.push((index, allowed, exact));
        }
    }
    let total = div_round(shares.iter().map(|share| share.2).sum(), scale, rounding);
    let floors: i128 = shares.iter().map(|share| share.2 / scale).sum();
    let mut left = total - floors;
    assert!(
        (0..=i128::try_from(shares.len()).unwrap_or(i128::MAX)).contains(&left),
        "the total rounded lies between the lines rounded down and rounded up"
    );
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by_key(|&at| (std::cmp::Reverse(shares[at].2 % scale), shares[at].0));
    let mut extra = vec![false; shares.len()];
    for &at in &order {
        if left == 0 {
            break;
        }
        if shares[at].2 % scale != 0 {
            extra[at] = true;
            left -= 1;
        }
    }
    assert_eq!(left, 0, "the fen left over go to lines with a remainder");
    let mut moved = Fen::ZERO;
    for (at, &(index, allowed, exact)) in shares.iter().enumerate() {
        let share = Fen(narrow(exact / scale + i128::from(extra[at])));
        let split = &mut out.lines[index];
        moved += share - split.class_b_first_self_pay;
        split.class_b_first_self_pay = share;
        split.in_scope = allowed - share;
    }
    // Each class-B line's step shows its share, and cites where it was rounded.
    let mut restated = 0;
    for step in out.steps.iter_mut().filter(|step| step.kind == StepKind::ClassBFirstSelfPay) {
        let StepScope::Line(index) = step.scope else { continue };
        step.amount = out.lines[index as usize].class_b_first_self_pay;
        step.sources[1] = Some(source);
        restated += 1;
    }
    assert_eq!(restated, shares.len(), "every class-B line has its first self-pay step");
    moved
}

/// How the catalog splits one line for a person of `scheme` (as the fee upload, 2204, answers
/// it before settlement).
pub fn classify_line(
    line: &Line,
    scheme: Scheme,
    catalog: &Catalog,
    rounding: Rounding,
) -> LineSplit {
    split_line(line, scheme, catalog, rounding, &mut |_| {})
}

fn split_line(
    line: &Line,
    scheme: Scheme,
    catalog: &Catalog,
    rounding: Rounding,
    record: &mut dyn FnMut(Step),
) -> LineSplit {
    let scope = StepScope::Line(0);
    let item = catalog.item(&line.code);
    let class_param = item.and_then(|item| item.class);
    let class = class_param.map_or(line.class, |p| p.value);
    let mut split = LineSplit {
        class,
        outside_catalog: Fen::ZERO,
        over_limit: Fen::ZERO,
        class_b_first_self_pay: Fen::ZERO,
        in_scope: Fen::ZERO,
        first_self_pay_ratio: Ratio::ZERO,
    };
    if class == CatalogClass::Outside {
        split.outside_catalog = line.amount;
        let step = Step::new(scope, StepKind::OutsideCatalog, line.amount);
        record(match class_param {
            Some(p) => step.source(p.source),
            None => step,
        });
    } else {
        let limit = item.and_then(|item| item.price_limit);
        let allowed = match (limit, line.price_limit) {
            (Some(limit), _) => limit.value.extend(line.quantity, rounding).min(line.amount),
            (None, Some(limit)) => limit.extend(line.quantity, rounding).min(line.amount),
            (None, None) => line.amount,
        };
        split.over_limit = line.amount - allowed;
        if !split.over_limit.is_zero() {
            let step = Step::new(scope, StepKind::OverLimit, split.over_limit).base(allowed);
            record(match limit {
                Some(p) => step.source(p.source),
                None => step,
            });
        }
        if class == CatalogClass::B {
            let class_b_default = match scheme {
                Scheme::Employee => catalog.class_b_first_self_pay_employee,
                Scheme::Resident => catalog.class_b_first_self_pay_resident,
            };
            let ratio = item.and_then(|item| item.first_self_pay).unwrap_or(class_b_default);
            split.first_self_pay_ratio = ratio.value;
            split.class_b_first_self_pay = allowed.mul_ratio(ratio.value, rounding);
            record(
                Step::new(scope, StepKind::ClassBFirstSelfPay, split.class_b_first_self_pay)
                    .base(allowed)
                    .ratio(ratio.value)
                    .source(ratio.source),
            );
        }
        split.in_scope = allowed - split.class_b_first_self_pay;
    }
    let parts =
        split.outside_catalog + split.over_limit + split.class_b_first_self_pay + split.in_scope;
    assert_eq!(parts, line.amount, "a line's parts add up to the line");
    assert!(split.in_scope >= Fen::ZERO);
    split
}

/// The adjustments that apply to one claim under one rule, combined.
struct Adjusted {
    points: i64,
    share_factor: Option<Ratio>,
    /// The parameter that last changed the ratios (points or a share factor), cited beside each
    /// band's own ratio so that a ratio paid is traced to what made it.
    ratio_source: Option<SourceId>,
    threshold_factor: Ratio,
    threshold_factor_source: Option<SourceId>,
    cap: Option<Param<Fen>>,
    /// The cross-region cut, in millionths: taken off the ratio last.
    cut_points: i64,
}

impl Adjusted {
    /// A band's ratio for this person: the rule's, moved by the adjustments' points, then the
    /// person's share scaled by a share factor, then the cross-region cut off what results (the
    /// cut lowers the ratio the person would have had at home by its points, whatever made it).
    fn ratio(&self, ratio: Ratio) -> Ratio {
        let with_points = ratio.plus_points(self.points);
        let shared = match self.share_factor {
            None => with_points,
            Some(factor) => factor.times(with_points.complement()).min(Ratio::ONE).complement(),
        };
        shared.plus_points(-self.cut_points)
    }
}

/// The result of paying bands over a range of positions.
struct BandOutcome {
    paid: Fen,
    /// For coinsurance tiers: the in-scope amount the cap left unpaid (封顶线以上).
    above_cap: Fen,
}

/// One band's share of the positions being paid.
#[derive(Clone, Copy)]
struct BandPart {
    amount: Fen,
    ratio: Ratio,
    lower: Fen,
    source: SourceId,
}

struct Run<'a> {
    claim: &'a Claim,
    policy: &'a Policy,
    ytd: &'a Accumulators,
    facts: Facts,
    rounding: Rounding,
    out: &'a mut Settlement,
    /// The person's burden by component right after the coinsurance tier.
    initial: [Fen; Component::COUNT],
    /// What is still the person's, by component.
    remaining: [Fen; Component::COUNT],
    /// What each tier paid, by component.
    paid_by: [[Fen; Component::COUNT]; TIERS_MAX],
    /// What care outside the insured region changes in the basic fund.
    elsewhere: Elsewhere,
}

impl<'a> Run<'a> {
    fn new(
        claim: &'a Claim,
        policy: &'a Policy,
        ytd: &'a Accumulators,
        rounding: Rounding,
        out: &'a mut Settlement,
    ) -> Run<'a> {
        assert!(policy.tiers.len() <= TIERS_MAX);
        let person = &claim.person;
        let admission = match claim.bill.visit {
            VisitType::Inpatient => claim.bill.admission_number.unwrap_or(ytd.admissions + 1),
            _ => 1,
        };
        let needy_by_list =
            person.assistance.is_some_and(|a| a.bit() & policy.needy_assistance.value != 0);
        let facts = Facts {
            category: person.category,
            visit: claim.bill.visit,
            level: claim.bill.level,
            assistance: person.assistance,
            needy: person.needy || needy_by_list,
            civil_servant: person.civil_servant,
            enterprise_supplementary: person.enterprise_supplementary,
            elsewhere: claim.bill.treatment_region != person.insured_region,
            filing: claim.bill.filing,
            disease: policy.disease_bit(claim.bill.disease.as_deref()),
            age: person.age,
            admission,
        };
        let totals = out.totals;
        let mut initial = [Fen::ZERO; Component::COUNT];
        // Until a coinsurance tier splits it, the whole in-scope amount is the person's share.
        initial[Component::Copay.index()] = totals.in_scope;
        initial[Component::ClassBFirstSelfPay.index()] = totals.class_b_first_self_pay;
        initial[Component::OverLimit.index()] = totals.over_limit;
        initial[Component::OutsideCatalog.index()] = totals.outside_catalog;
        Run {
            claim,
            policy,
            ytd,
            facts,
            rounding,
            out,
            initial,
            remaining: initial,
            paid_by: [[Fen::ZERO; Component::COUNT]; TIERS_MAX],
            elsewhere: Elsewhere::default(),
        }
    }

    /// Refuses a bill without days under a rule that limits its payment per day, where the
    /// rule has something to pay on (`range`, band positions): a bill of lines outside the
    /// catalog alone needs no days.
    fn require_days(&self, tier: &Tier, rule: &Rule, range: (Fen, Fen)) -> Result<(), Rejection> {
        let missing = self.claim.bill.days.is_none() && range.0 < range.1;
        let Some(cap) = rule.cap_per_day.filter(|_| missing) else {
            return Ok(());
        };
        Err(Rejection::new(
            RejectionCode::DaysRequired,
            format!(
                "{} tier `{}` pays at most {} a day (每日限额): the bill must say its days \
                 (`days`, 住院天数/护理天数)",
                tier.kind.zh(),
                tier.id,
                cap.value
            ),
        )
        .field("bill.days"))
    }

    /// Applies each tier's matching rule in order; refuses the claim where a rule needs what
    /// the bill does not say.
    fn tiers(&mut self) -> Result<(), Rejection> {
        let policy = self.policy;
        let mut coinsurance_done = false;
        for (index, tier) in policy.tiers.iter().enumerate() {
            let scope = StepScope::Tier(u16::try_from(index).unwrap_or(u16::MAX));
            let rule = tier.rules.iter().find(|rule| rule.when.matches(&self.facts));
            let (amount, base) = match rule {
                None => {
                    self.out.steps.push(
                        Step::new(scope, StepKind::NoRuleMatched, Fen::ZERO).source(tier.source),
                    );
                    (Fen::ZERO, Fen::ZERO)
                }
                Some(rule) => {
                    self.out.steps.push(
                        Step::new(scope, StepKind::RuleApplied, Fen::ZERO).source(rule.source),
                    );
                    if tier.kind.is_coinsurance() {
                        assert!(!coinsurance_done, "at most one coinsurance tier applies");
                        coinsurance_done = true;
                        self.coinsurance(index, tier, rule)?
                    } else {
                        self.layer(index, tier, rule)?
                    }
                }
            };
            self.out.payments.push(TierPayment {
                tier: index,
                id: tier.id.clone(),
                kind: tier.kind,
                amount,
                base,
                rule: rule.map(|rule| rule.source),
            });
        }
        self.out.burden_after_coinsurance = self.initial;
        Ok(())
    }

    /// Collects the adjustments whose selectors match, and records each one.
    fn adjust(&mut self, scope: StepScope, rule: &Rule) -> Adjusted {
        let mut adjusted = Adjusted {
            points: 0,
            share_factor: None,
            ratio_source: None,
            cut_points: 0,
            threshold_factor: Ratio::ONE,
            threshold_factor_source: None,
            cap: None,
        };
        for adjustment in rule.adjustments.iter().filter(|a| a.when.matches(&self.facts)) {
            // The adjustment's step cites, beside its table, the parameter it changes.
            let changes = (adjustment.personal_share_factor.map(|p| p.source))
                .or(adjustment.ratio_points.map(|p| p.source))
                .or(adjustment.threshold_factor.map(|p| p.source))
                .or(adjustment.cap.map(|p| p.source));
            self.out.steps.push(
                Step::new(scope, StepKind::Adjustment, Fen::ZERO)
                    .source(adjustment.source)
                    .also(changes),
            );
            if let Some(points) = adjustment.ratio_points {
                adjusted.points += points.value;
                adjusted.ratio_source = Some(points.source);
            }
            if let Some(factor) = adjustment.personal_share_factor {
                let current = adjusted.share_factor.unwrap_or(Ratio::ONE);
                adjusted.share_factor = Some(current.times(factor.value));
                adjusted.ratio_source = Some(factor.source);
            }
            if let Some(factor) = adjustment.threshold_factor {
                adjusted.threshold_factor = adjusted.threshold_factor.times(factor.value);
                adjusted.threshold_factor_source = Some(factor.source);
            }
            if let Some(cap) = adjustment.cap {
                adjusted.cap = Some(cap);
            }
        }
        adjusted
    }

    /// The basic pooled fund (or long-term care fund): deductible, bands, cap.
    fn coinsurance(
        &mut self,
        index: usize,
        tier: &Tier,
        rule: &Rule,
    ) -> Result<(Fen, Fen), Rejection> {
        let scope = StepScope::Tier(u16::try_from(index).unwrap_or(u16::MAX));
        let mut adjusted = self.adjust(scope, rule);
        let basic = tier.kind == crate::policy::TierKind::BasicPool;
        let first = self.elsewhere_first_self_pay(scope, basic);
        let in_scope = self.out.totals.in_scope - first;
        if let Some(cut) = self.elsewhere.cut.filter(|cut| basic && cut.value != 0) {
            adjusted.cut_points += cut.value;
            self.out.steps.push(
                Step::new(scope, StepKind::CrossRegionCut, Fen::ZERO)
                    .ratio(Ratio::from_millionths(u32::try_from(cut.value.abs()).unwrap_or(0)))
                    .source(cut.source),
            );
        }
        let deductible = rule.deductible.as_ref().expect("coinsurance rules have a deductible");
        let (nominal, nominal_source) = deductible.amount.for_admission(self.facts.admission);
        let full = nominal.mul_ratio(adjusted.threshold_factor, self.rounding);
        let already = match deductible.per.value {
            DeductiblePer::Year => self.ytd.get(&tier.id, &rule.pool, Counter::DeductibleMet),
            DeductiblePer::Admission | DeductiblePer::Visit => Fen::ZERO,
        };
        let below = in_scope.min(full.saturating_excess(already));
        self.out.steps.push(
            Step::new(scope, StepKind::Deductible, below)
                .base(full.saturating_excess(already))
                .source(nominal_source)
                .also(adjusted.threshold_factor_source.or(Some(deductible.per.source))),
        );
        let eligible = in_scope - below;
        let (start, end) = self.band_range(tier, rule, below, in_scope);
        // Positions from the ceiling on are not paid: they are above the cap.
        let ceiling = rule.ceiling.filter(|ceiling| end > ceiling.value);
        let paid_to = ceiling.map_or(end, |ceiling| ceiling.value.max(start));
        self.require_days(tier, rule, (start, paid_to))?;
        let cap = self.cap_remaining(tier, rule, &adjusted);
        let mut outcome = self.pay_bands(scope, rule, &adjusted, Fen::ZERO, (start, paid_to), cap);
        if let Some(ceiling) = ceiling {
            self.out.steps.push(
                Step::new(scope, StepKind::CeilingReached, end - paid_to)
                    .base(ceiling.value)
                    .source(ceiling.source),
            );
            outcome.above_cap += end - paid_to;
        }
        let copay = eligible - outcome.paid - outcome.above_cap;
        assert!(copay >= Fen::ZERO, "the co-insurance share is never negative");
        self.initial[Component::BelowDeductible.index()] = below;
        self.initial[Component::Copay.index()] = copay;
        self.initial[Component::AboveCap.index()] = outcome.above_cap;
        self.initial[Component::ElsewhereFirstSelfPay.index()] = first;
        self.remaining = self.initial;
        self.out.deductible = below;
        let deltas = &mut self.out.deltas;
        deltas.push(&tier.id, &rule.pool, Counter::DeductibleMet, below);
        deltas.push(&tier.id, &rule.pool, Counter::InScope, in_scope);
        deltas.push(&tier.id, &rule.pool, Counter::Eligible, eligible);
        self.count_paid(tier, rule, outcome.paid);
        Ok((outcome.paid, in_scope))
    }

    /// The share of the in-scope amount a person treated outside the insured region pays first,
    /// before the basic fund's deductible (异地先行自付); zero at home and for other tiers.
    fn elsewhere_first_self_pay(&mut self, scope: StepScope, basic: bool) -> Fen {
        let Some(ratio) = self.elsewhere.first_self_pay.filter(|_| basic) else { return Fen::ZERO };
        let in_scope = self.out.totals.in_scope;
        let first = in_scope.mul_ratio(ratio.value, self.rounding);
        self.out.steps.push(
            Step::new(scope, StepKind::ElsewhereFirstSelfPay, first)
                .base(in_scope)
                .ratio(ratio.value)
                .source(ratio.source),
        );
        first
    }

    /// The band positions a coinsurance tier pays on for this bill (5.4): from the year's count
    /// before it (or zero), past the deductible borne.
    fn band_range(&self, tier: &Tier, rule: &Rule, below: Fen, in_scope: Fen) -> (Fen, Fen) {
        let (counter, from, to) = match rule.band_basis.value {
            BandBasis::Cumulative => (Counter::InScope, below, in_scope),
            BandBasis::AboveThreshold => (Counter::Eligible, Fen::ZERO, in_scope - below),
        };
        let before = match tier.accumulate {
            Accumulate::Year => self.ytd.get(&tier.id, &rule.pool, counter),
            Accumulate::Visit => Fen::ZERO,
        };
        (before + from, before + to)
    }

    /// A layer over what earlier tiers left: critical illness, assistance, subsidies.
    fn layer(&mut self, index: usize, tier: &Tier, rule: &Rule) -> Result<(Fen, Fen), Rejection> {
        let scope = StepScope::Tier(u16::try_from(index).unwrap_or(u16::MAX));
        let base: Fen = tier
            .base
            .components
            .iter()
            .map(|component| {
                let deducted: Fen =
                    tier.base.after.iter().map(|t| self.paid_by[*t][component.index()]).sum();
                self.initial[component.index()].saturating_excess(deducted)
            })
            .sum();
        let year = tier.accumulate == Accumulate::Year;
        let before =
            if year { self.ytd.get(&tier.id, &rule.pool, Counter::Base) } else { Fen::ZERO };
        self.out
            .steps
            .push(Step::new(scope, StepKind::Base, base).base(before).source(tier.base.source));
        let adjusted = self.adjust(scope, rule);
        let threshold = rule.threshold.map_or(Fen::ZERO, |t| t.value);
        let threshold = threshold.mul_ratio(adjusted.threshold_factor, self.rounding);
        if let Some(source) = rule.threshold.map(|t| t.source) {
            self.out.steps.push(
                Step::new(scope, StepKind::Threshold, threshold)
                    .source(source)
                    .also(adjusted.threshold_factor_source),
            );
        }
        let offset = match rule.band_basis.value {
            BandBasis::Cumulative => Fen::ZERO,
            BandBasis::AboveThreshold => threshold,
        };
        let range = (before.max(threshold), before + base);
        self.require_days(tier, rule, range)?;
        let cap = self.cap_remaining(tier, rule, &adjusted);
        let outcome = self.pay_bands(scope, rule, &adjusted, offset, range, cap);
        let available: Fen = tier.base.components.iter().map(|c| self.remaining[c.index()]).sum();
        let paid = outcome.paid.min(available);
        if paid < outcome.paid {
            self.out.steps.push(
                Step::new(scope, StepKind::LimitedToRemaining, outcome.paid - paid).base(available),
            );
        }
        let mut left = paid;
        for component in &tier.base.components {
            let take = left.min(self.remaining[component.index()]);
            self.remaining[component.index()] -= take;
            self.paid_by[index][component.index()] += take;
            left -= take;
        }
        assert!(left.is_zero(), "a layer's payment is attributed to its components in full");
        let deltas = &mut self.out.deltas;
        deltas.push(&tier.id, &rule.pool, Counter::Base, base);
        self.count_paid(tier, rule, paid);
        Ok((paid, base))
    }

    /// What the caps still allow, with the parameter of the one that allows least: the annual
    /// cap in `cap_pool`, the rule's own pool's cap, the cap on one bill, the cap per day times
    /// the bill's days.
    fn cap_remaining(
        &self,
        tier: &Tier,
        rule: &Rule,
        adjusted: &Adjusted,
    ) -> Option<(Fen, SourceId)> {
        let annual = adjusted.cap.or(rule.cap).map(|cap| {
            let paid = self.ytd.get(&tier.id, &rule.cap_pool, Counter::Paid);
            (cap.value.saturating_excess(paid), cap.source)
        });
        let pool = rule.pool_cap.map(|cap| {
            let paid = self.ytd.get(&tier.id, &rule.pool_cap_pool, Counter::Paid);
            (cap.value.saturating_excess(paid), cap.source)
        });
        let visit = rule.cap_per_visit.map(|cap| (cap.value, cap.source));
        // Without days there is nothing to pay on (`require_days`), so no cap to cite.
        let day = rule
            .cap_per_day
            .zip(self.claim.bill.days)
            .map(|(cap, days)| (Fen(cap.value.0.saturating_mul(i64::from(days))), cap.source));
        // The first of equals wins, so that a binding annual cap is the one cited.
        let caps = [annual, pool, visit, day];
        caps.into_iter().flatten().reduce(|a, b| if b.0 < a.0 { b } else { a })
    }

    /// Counts what a tier paid in its cap's pool, and in the pool cap's pool too where the rule
    /// has one.
    fn count_paid(&mut self, tier: &Tier, rule: &Rule, paid: Fen) {
        let deltas = &mut self.out.deltas;
        deltas.push(&tier.id, &rule.cap_pool, Counter::Paid, paid);
        if rule.pool_cap.is_some() {
            let own = &rule.pool_cap_pool;
            assert!(*own != rule.cap_pool, "the loader refuses a pool cap in the cap's pool");
            deltas.push(&tier.id, own, Counter::Paid, paid);
        }
    }

    /// Pays each band's ratio on the part of `range` that falls in it, bands shifted up by
    /// `offset`, within the cap. Records one step per band paid.
    fn pay_bands(
        &mut self,
        scope: StepScope,
        rule: &Rule,
        adjusted: &Adjusted,
        offset: Fen,
        range: (Fen, Fen),
        cap: Option<(Fen, SourceId)>,
    ) -> BandOutcome {
        let parts = band_parts(rule, adjusted, offset, range);
        let scale = i128::from(Ratio::SCALE);
        let per_band = rule.round_at.value == RoundAt::Band;
        // Each band's contribution in fen × millionths: exact, or rounded to whole fen.
        let contribution = |part: &BandPart| -> i128 {
            let exact = i128::from(part.amount.0) * i128::from(part.ratio.millionths());
            if per_band { div_round(exact, scale, self.rounding) * scale } else { exact }
        };
        let uncapped_scaled: i128 = parts.iter().flatten().map(contribution).sum();
        let uncapped = Fen(narrow(div_round(uncapped_scaled, scale, self.rounding)));
        let (cap_left, cap_source) = match cap {
            Some((left, source)) if left < uncapped => (left, Some(source)),
            _ => (uncapped, None),
        };
        let cap_scaled = i128::from(cap_left.0) * scale;
        let mut paid_scaled: i128 = 0;
        // Each band shows the rounded total after it less this, so that the bands shown add up
        // to what the tier pays, to the fen, whether it rounds per band or once for the tier.
        let mut shown_so_far = Fen::ZERO;
        let mut above_cap = Fen::ZERO;
        for part in parts.iter().flatten() {
            let full = contribution(part);
            let room = cap_scaled - paid_scaled;
            let (pays, unpaid_cost) = if cap_source.is_none() || full <= room {
                (full, Fen::ZERO)
            } else if room <= 0 {
                (0, part.amount)
            } else {
                let ratio = i128::from(part.ratio.millionths());
                let covered = Fen(narrow(div_round(room, ratio, self.rounding))).min(part.amount);
                (room, part.amount - covered)
            };
            paid_scaled += pays;
            above_cap += unpaid_cost;
            // A band wholly beyond the cap is explained by the cap step alone; a band the cap
            // cuts shows the part of it that was paid for.
            let covered = part.amount - unpaid_cost;
            if covered.is_zero() && !part.amount.is_zero() {
                continue;
            }
            let total_now = Fen(narrow(div_round(paid_scaled, scale, self.rounding)));
            let shown = total_now - shown_so_far;
            shown_so_far = total_now;
            self.out.steps.push(
                Step::new(scope, StepKind::Band, shown)
                    .base(covered)
                    .ratio(part.ratio)
                    .positions(part.lower, part.lower + covered)
                    .source(part.source)
                    .also(adjusted.ratio_source),
            );
        }
        if let Some(source) = cap_source {
            self.out.steps.push(
                Step::new(scope, StepKind::CapReached, uncapped - cap_left)
                    .base(cap_left)
                    .source(source),
            );
        }
        BandOutcome { paid: cap_left, above_cap }
    }

    fn account_and_cash(&mut self) {
        self.out.personal_by_component = self.remaining;
        let person = &self.claim.person;
        if let Some(rule) = &self.policy.account {
            let has_account = rule.categories & person.category.bit() != 0;
            if has_account && self.claim.bill.use_personal_account {
                let covered: Fen = rule.covers.iter().map(|c| self.remaining[c.index()]).sum();
                let paid = covered.min(person.account_balance.max(Fen::ZERO));
                let mut left = paid;
                for component in &rule.covers {
                    let take = left.min(self.remaining[component.index()]);
                    self.remaining[component.index()] -= take;
                    left -= take;
                }
                self.out.personal_account = paid;
                self.out.steps.push(
                    Step::new(StepScope::Account, StepKind::AccountPaid, paid)
                        .base(covered)
                        .source(rule.source),
                );
            }
        }
        self.out.cash = self.remaining.iter().copied().sum();
        self.out.steps.push(Step::new(StepScope::Cash, StepKind::CashPaid, self.out.cash));
    }

    fn finish(&mut self) {
        for component in self.remaining {
            assert!(component >= Fen::ZERO, "no component of the person's share is negative");
        }
        let settled = self.out.fund_total() + self.out.personal_account + self.out.cash;
        assert_eq!(settled, self.out.totals.total, "tiers, account and cash add up to the bill");
        if self.claim.bill.visit == VisitType::Inpatient {
            self.out.admission_number = Some(self.facts.admission);
            // An admission counts once, and brings the count up to its number: the n-th
            // admission of a year with fewer counted (some elsewhere) counts up to n. One
            // whose number is already counted (settled again after a cancel, when a later
            // admission was settled meanwhile) still counts itself.
            let catch_up = self.facts.admission.saturating_sub(self.ytd.admissions);
            self.out.deltas.admissions = catch_up.max(1);
        }
    }
}

/// The part of `range` that falls in each of the rule's bands, bands shifted up by `offset`;
/// `None` where a band holds none of it.
fn band_parts(
    rule: &Rule,
    adjusted: &Adjusted,
    offset: Fen,
    range: (Fen, Fen),
) -> [Option<BandPart>; BANDS_MAX] {
    let (start, end) = range;
    let mut parts = [None::<BandPart>; BANDS_MAX];
    let mut lower = Fen::ZERO;
    for (slot, band) in parts.iter_mut().zip(&rule.bands) {
        let band_lower = offset + lower;
        let part_lower = band_lower.max(start);
        let part_upper = band.to.map_or(end, |to| (offset + to.value).min(end));
        if let Some(to) = band.to {
            lower = to.value;
        }
        if part_upper > part_lower {
            *slot = Some(BandPart {
                amount: part_upper - part_lower,
                ratio: adjusted.ratio(band.ratio.value),
                lower: part_lower,
                source: band.ratio.source,
            });
        }
    }
    parts
}

fn narrow(value: i128) -> i64 {
    i64::try_from(value).expect("amounts are bounded, so payments fit in i64")
}
