//! A settlement on the wire, with its explanation rendered as text in Chinese and English.

use onestop_core::policy::{Component, Policy, SourceId, TierKind};
use onestop_core::{
    Claim, Fen, LineSplit, Settlement, Step, StepKind, StepScope, TierPayment, Totals,
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
        SettlementDto {
            date_of_service: bill.date_of_service.to_string(),
            insured_region: claim.person.insured_region.to_string(),
            treatment_region: bill.treatment_region.to_string(),
            visit: bill.visit.code().to_owned(),
            level: bill.level.code().to_owned(),
            admission_number: settlement.admission_number,
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
fn source_of(insured: &Policy, treatment: &Policy, scope: StepScope, id: SourceId) -> ParameterDto {
    let policy = match scope {
        StepScope::Line(_) => treatment,
        _ => insured,
    };
    let source = policy.source(id);
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
    let scope = match step.scope {
        StepScope::Line(index) => format!("line:{index}"),
        StepScope::Tier(index) => format!("tier:{}", insured.tiers[usize::from(index)].id),
        StepScope::Account => "account".to_owned(),
        StepScope::Cash => "cash".to_owned(),
    };
    let banded = matches!(step.kind, StepKind::Band);
    let mut text = describe(claim, insured, settlement, step);
    if let Some(first) = parameters.first() {
        text.push_str(&format!(
            " [{} @ {}:{}, 自 from {}]",
            first.path, first.file, first.line, first.effective_from
        ));
    }
    StepDto {
        scope,
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

fn tier_label(policy: &Policy, index: u16) -> (String, TierKind) {
    let tier = &policy.tiers[usize::from(index)];
    (format!("{} {} ({})", tier.kind.zh(), tier.kind.english(), tier.id), tier.kind)
}

/// One step in words.
pub fn describe(claim: &Claim, insured: &Policy, settlement: &Settlement, step: &Step) -> String {
    match step.scope {
        StepScope::Line(index) => line_text(claim, index, step),
        StepScope::Tier(index) => tier_text(insured, index, step),
        StepScope::Account => format!(
            "个人账户 personal account pays {} of the {} it may cover (balance {})",
            step.amount, step.base, claim.person.account_balance
        ),
        StepScope::Cash => cash_text(settlement, step),
    }
}

fn line_text(claim: &Claim, index: u32, step: &Step) -> String {
    let (amount, base) = (step.amount, step.base);
    let ratio = step.ratio.map(|r| r.to_string()).unwrap_or_default();
    let name = claim.bill.lines.get(index as usize).map_or("", |line| line.name.as_str());
    let label = format!("第{}行 line {} {name}", index + 1, index + 1);
    match step.kind {
        StepKind::OutsideCatalog => {
            format!("{label}: 目录外全自费 outside the catalog, {amount} self-paid in full")
        }
        StepKind::OverLimit => {
            format!("{label}: 超限价自费 over the price limit, {amount} above the {base} allowed")
        }
        StepKind::ClassBFirstSelfPay => format!(
            "{label}: 乙类先行自付 class-B first self-pay {ratio} × {base} = {amount} \
             (rounded per line)"
        ),
        other => format!("{label}: {}", other.code()),
    }
}

fn tier_text(insured: &Policy, index: u16, step: &Step) -> String {
    let (amount, base) = (step.amount, step.base);
    let ratio = step.ratio.map(|r| r.to_string()).unwrap_or_default();
    let (label, kind) = tier_label(insured, index);
    let said = match step.kind {
        StepKind::RuleApplied => "适用规则 rule applies".to_owned(),
        StepKind::NoRuleMatched => {
            "无适用规则 no rule matches this person and visit; pays 0.00".to_owned()
        }
        StepKind::Adjustment => "调整 adjustment applies".to_owned(),
        StepKind::CrossRegionCut => {
            let points = ratio.trim_end_matches('%');
            format!(
                "异地就医支付比例降低{points}个百分点 care outside the insured region: ratios \
                 {points} percentage points lower"
            )
        }
        StepKind::Deductible => {
            format!("起付线 deductible {base} due on this visit, {amount} borne by the person")
        }
        StepKind::Base => {
            format!("计算基数 base {amount} from this visit, {base} counted earlier this year")
        }
        StepKind::Threshold => format!("起付标准 threshold {amount}"),
        StepKind::Band => {
            let position = if kind.is_coinsurance() {
                "政策范围内累计 in-scope"
            } else {
                "基数累计 base"
            };
            let (lower, upper) = (step.lower, step.upper);
            format!("分段 band {position} {lower}–{upper}: {ratio} × {base} = {amount}")
        }
        StepKind::CapReached => {
            format!("封顶线 annual cap: {base} was left under the cap, {amount} not paid")
        }
        StepKind::LimitedToRemaining => {
            format!("以个人负担为限 limited to the {base} the person still bore; {amount} not paid")
        }
        other => other.code().to_owned(),
    };
    format!("{label}: {said}")
}

fn cash_text(settlement: &Settlement, step: &Step) -> String {
    let shares = &settlement.personal_by_component;
    let parts: Vec<String> = Component::ALL
        .iter()
        .filter(|c| !shares[c.index()].is_zero())
        .map(|c| format!("{} {} {}", c.zh(), c.code(), shares[c.index()]))
        .collect();
    let mut text = format!("个人现金 cash {}", step.amount);
    if !parts.is_empty() {
        text.push_str(&format!(" (person's share: {}", parts.join(", ")));
        if settlement.personal_account > Fen::ZERO {
            text.push_str(&format!("; less personal account {}", settlement.personal_account));
        }
        text.push(')');
    }
    text
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
