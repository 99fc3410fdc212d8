//! A settlement on the wire, with its explanation rendered as text in Chinese and English.

use std::fmt;

use onestop_core::policy::{BandBasis, Component, Param, Policy, SourceId, Tier};
use onestop_core::{
    Claim, Fen, LineSplit, Ratio, Settlement, Step, StepKind, StepScope, TierPayment, Totals,
};
use serde::{Deserialize, Serialize};

use crate::claim::YtdDto;

/// Which policy snapshot was applied.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PolicyRefDto {
    pub region: String,
    pub name: String,
    pub valid_from: String,
    pub valid_to: Option<String>,
}

impl PolicyRefDto {
    pub fn from_core(policy: &Policy) -> PolicyRefDto {
        PolicyRefDto {
            region: policy.region.to_string(),
            name: policy.name.clone(),
            valid_from: policy.valid_from.to_string(),
            valid_to: policy.valid_to.map(|d| d.to_string()),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TotalsDto {
    pub total: String,
    pub outside_catalog: String,
    pub over_limit: String,
    pub class_b_first_self_pay: String,
    pub in_scope: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LineResultDto {
    pub index: usize,
    pub code: String,
    pub name: String,
    pub class: String,
    pub amount: String,
    pub outside_catalog: String,
    pub over_limit: String,
    pub class_b_first_self_pay: String,
    pub in_scope: String,
    pub first_self_pay_ratio: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TierResultDto {
    pub id: String,
    pub kind: String,
    pub name_zh: String,
    pub name_en: String,
    pub amount: String,
    pub base: String,
    /// The key path of the rule that applied, if one did.
    pub rule: Option<String>,
}

/// A parameter behind an amount.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ParameterDto {
    pub path: String,
    pub file: String,
    pub line: u32,
    pub effective_from: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StepDto {
    /// `line:3`, `tier:basic`, `account` or `cash`.
    pub scope: String,
    pub step: String,
    pub amount: String,
    pub base: String,
    pub ratio: Option<String>,
    pub lower: Option<String>,
    pub upper: Option<String>,
    pub parameters: Vec<ParameterDto>,
    /// The step in words, Chinese term first.
    pub text: String,
}

/// The full result of a calculation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SettlementDto {
    pub date_of_service: String,
    pub insured_region: String,
    pub treatment_region: String,
    pub visit: String,
    pub level: String,
    pub admission_number: Option<u16>,
    /// The days the bill covers (住院天数, 护理天数), where known.
    pub days: Option<u16>,
    /// The disease the bill treats (病种编码), and the insured region's disease group (病种分组)
    /// it belongs to, which rules may select by.
    pub disease: Option<String>,
    pub disease_group: Option<String>,
    /// The group's name, such as 高血压.
    pub disease_group_name: Option<String>,
    /// The person's scheme and category on the date of service.
    pub scheme: String,
    pub category: String,
    pub insured_policy: PolicyRefDto,
    pub treatment_policy: PolicyRefDto,
    pub totals: TotalsDto,
    pub lines: Vec<LineResultDto>,
    pub tiers: Vec<TierResultDto>,
    /// 基金支付总额: everything the tiers paid.
    pub fund_total: String,
    /// 实际支付起付线: deductible borne on this settlement.
    pub deductible: String,
    pub personal_account: String,
    pub cash: String,
    /// 个人负担总额: account and cash.
    pub personal_total: String,
    /// The person's in-scope share after every tier (政策范围内个人自付).
    pub personal_in_scope: String,
    /// The person's share by component after every tier, before account and cash.
    pub personal_by_component: std::collections::BTreeMap<String, String>,
    pub explanation: Vec<StepDto>,
    pub accumulators: YtdDto,
    pub accumulator_deltas: YtdDto,
}

impl LineResultDto {
    fn from_core(index: usize, line: &onestop_core::Line, split: &LineSplit) -> LineResultDto {
        LineResultDto {
            index,
            code: line.code.clone(),
            name: line.name.clone(),
            class: split.class.code().to_owned(),
            amount: line.amount.to_string(),
            outside_catalog: split.outside_catalog.to_string(),
            over_limit: split.over_limit.to_string(),
            class_b_first_self_pay: split.class_b_first_self_pay.to_string(),
            in_scope: split.in_scope.to_string(),
            first_self_pay_ratio: split.first_self_pay_ratio.to_string(),
        }
    }
}

impl TierResultDto {
    fn from_core(insured: &Policy, payment: &TierPayment) -> TierResultDto {
        TierResultDto {
            id: payment.id.to_string(),
            kind: payment.kind.code().to_owned(),
            name_zh: payment.kind.zh().to_owned(),
            name_en: payment.kind.english().to_owned(),
            amount: payment.amount.to_string(),
            base: payment.base.to_string(),
            rule: payment.rule.map(|id| insured.source(id).path.clone()),
        }
    }
}

impl TotalsDto {
    fn from_core(totals: &Totals) -> TotalsDto {
        TotalsDto {
            total: totals.total.to_string(),
            outside_catalog: totals.outside_catalog.to_string(),
            over_limit: totals.over_limit.to_string(),
            class_b_first_self_pay: totals.class_b_first_self_pay.to_string(),
            in_scope: totals.in_scope.to_string(),
        }
    }
}

impl SettlementDto {
    /// The wire form of a settlement; `ytd` are the accumulators it was computed on.
    pub fn from_core(
        claim: &Claim,
        insured: &Policy,
        treatment: &Policy,
        ytd: &onestop_core::Accumulators,
        settlement: &Settlement,
    ) -> SettlementDto {
        let bill = &claim.bill;
        let lines = bill.lines.iter().zip(&settlement.lines).enumerate();
        let lines =
            lines.map(|(index, (line, split))| LineResultDto::from_core(index, line, split));
        let tiers = settlement.payments.iter().map(|p| TierResultDto::from_core(insured, p));
        let mut deltas = onestop_core::Accumulators::new(ytd.year);
        deltas.apply(&settlement.deltas, 1);
        let steps = settlement.steps.iter();
        let explanation = steps.map(|step| step_dto(claim, insured, treatment, settlement, step));
        let by_component = Component::ALL.iter().map(|c| {
            (c.code().to_owned(), settlement.personal_by_component[c.index()].to_string())
        });
        let group = insured.disease_group(bill.disease.as_deref()).map(|(_, g)| g);
        SettlementDto {
            date_of_service: bill.date_of_service.to_string(),
            insured_region: claim.person.insured_region.to_string(),
            treatment_region: bill.treatment_region.to_string(),
            visit: bill.visit.code().to_owned(),
            level: bill.level.code().to_owned(),
            admission_number: settlement.admission_number,
            days: bill.days,
            disease: bill.disease.clone(),
            disease_group: group.map(|g| g.id.to_string()),
            disease_group_name: group.map(|g| g.name.clone()),
            scheme: claim.person.scheme().code().to_owned(),
            category: claim.person.category.code().to_owned(),
            insured_policy: PolicyRefDto::from_core(insured),
            treatment_policy: PolicyRefDto::from_core(treatment),
            totals: TotalsDto::from_core(&settlement.totals),
            lines: lines.collect(),
            tiers: tiers.collect(),
            fund_total: settlement.fund_total().to_string(),
            deductible: settlement.deductible.to_string(),
            personal_account: settlement.personal_account.to_string(),
            cash: settlement.cash.to_string(),
            personal_total: settlement.personal_total().to_string(),
            personal_in_scope: settlement.personal_in_scope().to_string(),
            personal_by_component: by_component.collect(),
            explanation: explanation.collect(),
            accumulators: YtdDto::from_core(&settlement.accumulators_after(ytd)),
            accumulator_deltas: YtdDto::from_core(&deltas),
        }
    }
}

/// Line steps cite the treatment region's catalog; every other step the insured region's policy.
pub(crate) fn source_policy<'a>(
    insured: &'a Policy,
    treatment: &'a Policy,
    scope: StepScope,
) -> &'a Policy {
    match scope {
        StepScope::Line(_) => treatment,
        _ => insured,
    }
}

fn source_of(insured: &Policy, treatment: &Policy, scope: StepScope, id: SourceId) -> ParameterDto {
    let source = source_policy(insured, treatment, scope).source(id);
    ParameterDto {
        path: source.path.clone(),
        file: source.file.to_string(),
        line: source.line,
        effective_from: source.effective_from.to_string(),
    }
}

fn step_dto(
    claim: &Claim,
    insured: &Policy,
    treatment: &Policy,
    settlement: &Settlement,
    step: &Step,
) -> StepDto {
    let parameters: Vec<ParameterDto> = step
        .sources
        .iter()
        .flatten()
        .map(|id| source_of(insured, treatment, step.scope, *id))
        .collect();
    let banded = matches!(step.kind, StepKind::Band);
    let text = StepText { claim, insured, treatment, settlement, step }.to_string();
    StepDto {
        scope: StepScopeText { insured, scope: step.scope }.to_string(),
        step: step.kind.code().to_owned(),
        amount: step.amount.to_string(),
        base: step.base.to_string(),
        ratio: step.ratio.map(|r| r.to_string()),
        lower: banded.then(|| step.lower.to_string()),
        upper: banded.then(|| step.upper.to_string()),
        parameters,
        text,
    }
}

/// A step's scope as the wire names it: `line:3`, `tier:basic`, `account` or `cash`.
pub(crate) struct StepScopeText<'a> {
    pub insured: &'a Policy,
    pub scope: StepScope,
}

impl fmt::Display for StepScopeText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scope {
            StepScope::Line(index) => write!(f, "line:{index}"),
            StepScope::Tier(index) => {
                write!(f, "tier:{}", self.insured.tiers[usize::from(index)].id)
            }
            StepScope::Account => f.write_str("account"),
            StepScope::Cash => f.write_str("cash"),
        }
    }
}

/// A step in words with the parameter it cites first: the explanation's `text`.
pub(crate) struct StepText<'a> {
    pub claim: &'a Claim,
    pub insured: &'a Policy,
    pub treatment: &'a Policy,
    pub settlement: &'a Settlement,
    pub step: &'a Step,
}

impl fmt::Display for StepText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let StepText { claim, insured, treatment, settlement, step } = *self;
        Described { claim, insured, settlement, step }.fmt(f)?;
        if let Some(id) = step.sources.iter().flatten().next() {
            let source = source_policy(insured, treatment, step.scope).source(*id);
            write!(
                f,
                " [{} @ {}:{}, 自 from {}]",
                source.path, source.file, source.line, source.effective_from
            )?;
        }
        Ok(())
    }
}

/// One step in words.
pub fn describe(claim: &Claim, insured: &Policy, settlement: &Settlement, step: &Step) -> String {
    Described { claim, insured, settlement, step }.to_string()
}

struct Described<'a> {
    claim: &'a Claim,
    insured: &'a Policy,
    settlement: &'a Settlement,
    step: &'a Step,
}

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Described { claim, insured, settlement, step } = *self;
        match step.scope {
            StepScope::Line(index) => line_text(f, claim, index, step),
            StepScope::Tier(index) => tier_text(f, claim, insured, index, step),
            StepScope::Account => write!(
                f,
                "个人账户 personal account pays {} of the {} it may cover (balance {})",
                step.amount, step.base, claim.person.account_balance
            ),
            StepScope::Cash => cash_text(f, settlement, step),
        }
    }
}

/// An amount times a ratio, exactly: yuan with as many decimals as it takes (at least two).
struct ExactProduct(Fen, Ratio);

impl fmt::Display for ExactProduct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Fen × millionths: 10^8 of these make a yuan.
        let exact = i128::from(self.0.0) * i128::from(self.1.millionths());
        let sign = if exact < 0 { "-" } else { "" };
        let (yuan, fraction) = (exact.abs() / 100_000_000, exact.abs() % 100_000_000);
        let digits = format!("{fraction:08}");
        let digits = digits.trim_end_matches('0');
        let digits = if digits.len() < 2 { &format!("{digits:0<2}") } else { digits };
        write!(f, "{sign}{yuan}.{digits}")
    }
}

/// A step's ratio, or nothing.
struct RatioText(Option<Ratio>);

impl fmt::Display for RatioText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(ratio) => ratio.fmt(f),
            None => Ok(()),
        }
    }
}

fn line_text(f: &mut fmt::Formatter<'_>, claim: &Claim, index: u32, step: &Step) -> fmt::Result {
    let (amount, base, ratio) = (step.amount, step.base, RatioText(step.ratio));
    let name = claim.bill.lines.get(index as usize).map_or("", |line| line.name.as_str());
    write!(f, "第{}行 line {} {name}: ", index + 1, index + 1)?;
    match step.kind {
        StepKind::OutsideCatalog => {
            write!(f, "目录外全自费 outside the catalog, {amount} self-paid in full")
        }
        StepKind::OverLimit => {
            write!(f, "超限价自费 over the price limit, {amount} above the {base} allowed")
        }
        // A second parameter is the catalog's `first_self_pay_round_at = "bill"`.
        StepKind::ClassBFirstSelfPay if step.sources[1].is_some() => {
            let exact = ExactProduct(base, step.ratio.unwrap_or(Ratio::ZERO));
            write!(
                f,
                "乙类先行自付 class-B first self-pay {ratio} × {base} = {exact}, {amount} as its \
                 share of the bill's class-B total rounded once (按乙类合计取整, \
                 catalog.first_self_pay_round_at = \"bill\")"
            )
        }
        StepKind::ClassBFirstSelfPay => write!(
            f,
            "乙类先行自付 class-B first self-pay {ratio} × {base} = {amount} (rounded per line)"
        ),
        other => f.write_str(other.code()),
    }
}

fn tier_text(
    f: &mut fmt::Formatter<'_>,
    claim: &Claim,
    insured: &Policy,
    index: u16,
    step: &Step,
) -> fmt::Result {
    let (amount, base, ratio) = (step.amount, step.base, RatioText(step.ratio));
    let tier = &insured.tiers[usize::from(index)];
    let kind = tier.kind;
    write!(f, "{} {} ({}): ", kind.zh(), kind.english(), tier.id)?;
    match step.kind {
        StepKind::RuleApplied => f.write_str("适用规则 rule applies"),
        StepKind::NoRuleMatched => {
            f.write_str("无适用规则 no rule matches this person and visit; pays 0.00")
        }
        StepKind::Adjustment => f.write_str("调整 adjustment applies"),
        StepKind::CrossRegionCut => {
            let ratio = ratio.to_string();
            let points = ratio.trim_end_matches('%');
            write!(
                f,
                "异地就医支付比例降低{points}个百分点 care outside the insured region: ratios \
                 {points} percentage points lower"
            )
        }
        StepKind::ElsewhereFirstSelfPay => write!(
            f,
            "异地就医先行自付 care outside the insured region: the person first pays {ratio} × \
             {base} in scope = {amount}, before the deductible"
        ),
        StepKind::Deductible => {
            write!(f, "起付线 deductible {base} due on this visit, {amount} borne by the person")
        }
        StepKind::Base => {
            write!(f, "计算基数 base {amount} from this visit, {base} counted earlier this year")
        }
        StepKind::Threshold => write!(f, "起付标准 threshold {amount}"),
        StepKind::Band => {
            // The rule whose band this is says what its positions count.
            let rule = tier
                .rules
                .iter()
                .find(|r| r.bands.iter().any(|b| Some(b.ratio.source) == step.sources[0]));
            let above = rule.is_some_and(|r| r.band_basis.value == BandBasis::AboveThreshold);
            let position = match (kind.is_coinsurance(), above) {
                (true, false) => "政策范围内累计 in-scope",
                (true, true) => "起付线以上累计 above the deductible",
                (false, false) => "基数累计 base",
                (false, true) => "起付标准以上累计 base above the threshold",
            };
            let (lower, upper) = (step.lower, step.upper);
            write!(f, "分段 band {position} {lower}–{upper}: {ratio} × {base} = {amount}")
        }
        StepKind::CapReached => {
            let cap = cap_name(claim, tier, step);
            write!(f, "{cap}: {base} was left under the cap, {amount} not paid")
        }
        StepKind::CeilingReached => write!(
            f,
            "封顶线以上 above the cost ceiling at {base}: {amount} in scope not paid by this tier"
        ),
        StepKind::LimitedToRemaining => write!(
            f,
            "以个人负担为限 limited to the {base} the person still bore; {amount} not paid"
        ),
        other => f.write_str(other.code()),
    }
}

/// The cap a `cap_reached` step cites, in words.
fn cap_name(claim: &Claim, tier: &Tier, step: &Step) -> String {
    let cites = |cap: Option<Param<Fen>>| cap.is_some_and(|c| Some(c.source) == step.sources[0]);
    let rule = tier
        .rules
        .iter()
        .find(|r| cites(r.pool_cap) || cites(r.cap_per_visit) || cites(r.cap_per_day));
    match rule {
        Some(r) if cites(r.cap_per_visit) => "每次最高支付 cap on one visit".to_owned(),
        Some(r) if cites(r.cap_per_day) => {
            let per_day = r.cap_per_day.map_or(Fen::ZERO, |c| c.value);
            let days = claim.bill.days.unwrap_or(0);
            format!("每日最高支付 cap per day {per_day} × {days} days (天)")
        }
        Some(r) => format!("单项年度限额 annual cap of pool `{}`", r.pool_cap_pool),
        None => "封顶线 annual cap".to_owned(),
    }
}

fn cash_text(f: &mut fmt::Formatter<'_>, settlement: &Settlement, step: &Step) -> fmt::Result {
    let shares = &settlement.personal_by_component;
    write!(f, "个人现金 cash {}", step.amount)?;
    let mut parts = Component::ALL.iter().filter(|c| !shares[c.index()].is_zero()).peekable();
    if parts.peek().is_none() {
        return Ok(());
    }
    f.write_str(" (person's share: ")?;
    for (at, c) in parts.enumerate() {
        let comma = if at == 0 { "" } else { ", " };
        write!(f, "{comma}{} {} {}", c.zh(), c.code(), shares[c.index()])?;
    }
    if settlement.personal_account > Fen::ZERO {
        write!(f, "; less personal account {}", settlement.personal_account)?;
    }
    f.write_str(")")
}

/// Reads a named quantity off a settlement, as golden cases and reports name them:
/// `total`, `in_scope`, `outside_catalog`, `over_limit`, `class_b_first_self_pay`,
/// `tier.<id>`, `fund_total`, `deductible`, `personal_account`, `cash`, `personal_total`,
/// `personal_in_scope`, `personal_in_scope_after_coinsurance`, `component.<name>`.
pub fn quantity(settlement: &Settlement, name: &str) -> Option<Fen> {
    let totals = settlement.totals;
    if let Some(id) = name.strip_prefix("tier.") {
        return settlement.paid_by_tier(id);
    }
    if let Some(code) = name.strip_prefix("component.") {
        return Component::parse(code).map(|c| settlement.personal_by_component[c.index()]);
    }
    Some(match name {
        "total" => totals.total,
        "in_scope" => totals.in_scope,
        "outside_catalog" => totals.outside_catalog,
        "over_limit" => totals.over_limit,
        "class_b_first_self_pay" => totals.class_b_first_self_pay,
        "fund_total" => settlement.fund_total(),
        "deductible" => settlement.deductible,
        "personal_account" => settlement.personal_account,
        "cash" => settlement.cash,
        "personal_total" => settlement.personal_total(),
        "personal_in_scope" => settlement.personal_in_scope(),
        "personal_in_scope_after_coinsurance" => {
            Component::IN_SCOPE.iter().map(|c| settlement.burden_after_coinsurance[c.index()]).sum()
        }
        _ => return None,
    })
}
