//! A policy snapshot: every parameter of one pooling region as it stands on a range of dates
//! where nothing changes, with the provenance of each value.
//!
//! Formulas live in `split`; these are only numbers and choices. Each number is a [`Param`]
//! that remembers where it came from (file, key path, line, effective date) so that every
//! amount of a settlement can be explained by the parameters that produced it.
//! `onestop-policy` builds these from policy files; tests and benchmarks may build them by hand.

use std::sync::Arc;

use jiff::civil::Date;

use crate::claim::{
    AssistanceCategory, CatalogClass, Category, FilingKind, HospitalLevel, Region, VisitType,
};
use crate::money::{Fen, Ratio, Rounding, UnitPrice};

/// An index into [`Policy::sources`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct SourceId(pub u32);

/// Where a parameter's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The policy file, relative to the policy directory.
    pub file: Arc<str>,
    /// The key path inside the file, such as `tiers[0].rules[2].bands[1].ratio`.
    pub path: String,
    /// The 1-based line where the value is written.
    pub line: u32,
    /// The first day on which this value is in force.
    pub effective_from: Date,
}

/// A parameter value and where it came from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Param<T> {
    pub value: T,
    pub source: SourceId,
}

impl<T> Param<T> {
    pub fn new(value: T, source: SourceId) -> Param<T> {
        Param { value, source }
    }
}

/// The parameters of one region on a range of dates.
#[derive(Clone, Debug)]
pub struct Policy {
    pub region: Region,
    /// A human name, such as `北京市 Beijing`.
    pub name: String,
    /// First day of this snapshot.
    pub valid_from: Date,
    /// Last day of this snapshot, inclusive; `None` while open-ended.
    pub valid_to: Option<Date>,
    /// The rounding of every product and quotient, 四舍五入 unless the policy says otherwise.
    pub rounding: Param<Rounding>,
    /// The catalog rules this region applies to bills treated here (就医地目录).
    pub catalog: Option<Catalog>,
    /// The tiers that pay for people insured here, in the order they are computed.
    pub tiers: Vec<Tier>,
    /// What the personal account may pay, for people insured here.
    pub account: Option<AccountRule>,
    /// Assistance categories that count as needy (困难人员) even without the needy flag.
    pub needy_assistance: Param<u32>,
    /// How this region's people are settled when treated elsewhere (异地就医); `None`: as at
    /// home, no filing needed.
    pub cross_region: Option<CrossRegion>,
    /// Groups of diseases (病种) that rules select by `when.disease`; at most
    /// [`DISEASE_GROUPS_MAX`], no code in two groups.
    pub diseases: Vec<DiseaseGroup>,
    /// Provenance of every parameter; indexed by [`SourceId`].
    pub sources: Vec<Source>,
}

impl Policy {
    pub fn source(&self, id: SourceId) -> &Source {
        &self.sources[id.0 as usize]
    }

    pub fn covers(&self, date: Date) -> bool {
        date >= self.valid_from && self.valid_to.is_none_or(|to| date <= to)
    }

    /// The bit of the disease group a bill's disease code belongs to, or
    /// [`Selector::NO_DISEASE`] for a bill naming no disease or one of no group.
    pub fn disease_bit(&self, code: Option<&str>) -> u64 {
        self.disease_group(code).map_or(Selector::NO_DISEASE, |(index, _)| 1 << index)
    }

    /// The disease group a bill's disease code belongs to, with its index.
    pub fn disease_group(&self, code: Option<&str>) -> Option<(usize, &DiseaseGroup)> {
        // Most policies have no groups: nothing to look up, nothing to allocate.
        if self.diseases.is_empty() {
            return None;
        }
        let code = code?.to_ascii_uppercase();
        let has = |g: &&DiseaseGroup| g.codes.binary_search_by(|c| (**c).cmp(&code)).is_ok();
        self.diseases.iter().enumerate().find(|(_, g)| has(g))
    }
}

/// At most this many disease groups in a policy (a selector holds them as bits).
pub const DISEASE_GROUPS_MAX: usize = 63;
/// At most this many disease codes in a policy, over all its groups.
pub const DISEASE_CODES_MAX: usize = 100_000;

/// A group of diseases (病种) treated alike, such as 门诊慢性病 高血压 or 门诊特殊病 恶性肿瘤
/// 放化疗: rules select it by `when.disease`, and a rule of its own pool gives it its own
/// deductible, ratio and annual limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiseaseGroup {
    pub id: Arc<str>,
    pub name: String,
    /// The disease codes of the group (病种编码, such as the national 门慢特病 codes or ICD-10),
    /// in upper case (codes are compared without regard to case), sorted.
    pub codes: Vec<Arc<str>>,
    pub source: SourceId,
}

/// Catalog rules of the place of treatment.
#[derive(Clone, Debug)]
pub struct Catalog {
    /// Class-B first self-pay ratio (乙类先行自付比例) for employees.
    pub class_b_first_self_pay_employee: Param<Ratio>,
    /// Class-B first self-pay ratio for residents (often the same as for employees).
    pub class_b_first_self_pay_resident: Param<Ratio>,
    /// Where the class-B first self-pay is rounded to the fen: on each line, or once on the
    /// bill's class-B total (and shared out to the lines).
    pub first_self_pay_round_at: Param<FirstSelfPayRoundAt>,
    /// Item-specific entries, sorted by code.
    pub items: Vec<CatalogItem>,
}

impl Catalog {
    pub fn item(&self, code: &str) -> Option<&CatalogItem> {
        if self.items.is_empty() {
            return None;
        }
        self.items
            .binary_search_by(|item| item.code.as_str().cmp(code))
            .ok()
            .map(|i| &self.items[i])
    }
}

/// Where a bill's class-B first self-pay (乙类先行自付) is rounded to the fen.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FirstSelfPayRoundAt {
    /// Each line's share is rounded (as a hospital's fee upload, 2204, answers it).
    Line,
    /// The exact shares of the bill's class-B lines are summed and rounded once, as published
    /// examples compute "乙类费用 × 10%"; the total is shared out to the lines by largest
    /// remainder, so that the lines still add up to it.
    Bill,
}

/// What the catalog says about one item code; absent fields fall back to the bill line.
#[derive(Clone, Debug)]
pub struct CatalogItem {
    pub code: String,
    pub class: Option<Param<CatalogClass>>,
    pub first_self_pay: Option<Param<Ratio>>,
    pub price_limit: Option<Param<UnitPrice>>,
}

/// The tier kinds a region can have. The kind decides the mechanism, the Chinese name and,
/// later, the national fund codes; the parameters are the rules'.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum TierKind {
    BasicPool,
    LongTermCare,
    LargeAmount,
    CivilServantSubsidy,
    EnterpriseSupplementary,
    CriticalIllness,
    InclusiveCommercial,
    MedicalAssistance,
    TiltAssistance,
}

impl TierKind {
    pub const ALL: [TierKind; 9] = [
        TierKind::BasicPool,
        TierKind::LongTermCare,
        TierKind::LargeAmount,
        TierKind::CivilServantSubsidy,
        TierKind::EnterpriseSupplementary,
        TierKind::CriticalIllness,
        TierKind::InclusiveCommercial,
        TierKind::MedicalAssistance,
        TierKind::TiltAssistance,
    ];

    pub fn code(self) -> &'static str {
        match self {
            TierKind::BasicPool => "basic_pool",
            TierKind::LongTermCare => "long_term_care",
            TierKind::LargeAmount => "large_amount",
            TierKind::CivilServantSubsidy => "civil_servant_subsidy",
            TierKind::EnterpriseSupplementary => "enterprise_supplementary",
            TierKind::CriticalIllness => "critical_illness",
            TierKind::InclusiveCommercial => "inclusive_commercial",
            TierKind::MedicalAssistance => "medical_assistance",
            TierKind::TiltAssistance => "tilt_assistance",
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            TierKind::BasicPool => "基本医疗保险统筹基金",
            TierKind::LongTermCare => "长期护理保险基金",
            TierKind::LargeAmount => "大额医疗费用补助",
            TierKind::CivilServantSubsidy => "公务员医疗补助",
            TierKind::EnterpriseSupplementary => "企业补充医疗保险",
            TierKind::CriticalIllness => "大病保险",
            TierKind::InclusiveCommercial => "普惠型商业健康保险",
            TierKind::MedicalAssistance => "医疗救助",
            TierKind::TiltAssistance => "倾斜救助",
        }
    }

    pub fn english(self) -> &'static str {
        match self {
            TierKind::BasicPool => "basic pooled fund",
            TierKind::LongTermCare => "long-term care fund",
            TierKind::LargeAmount => "large-amount subsidy",
            TierKind::CivilServantSubsidy => "civil-servant subsidy",
            TierKind::EnterpriseSupplementary => "enterprise supplementary",
            TierKind::CriticalIllness => "critical-illness insurance",
            TierKind::InclusiveCommercial => "inclusive commercial insurance",
            TierKind::MedicalAssistance => "medical assistance",
            TierKind::TiltAssistance => "tilt assistance",
        }
    }

    pub fn parse(text: &str) -> Option<TierKind> {
        TierKind::ALL.into_iter().find(|kind| kind.code() == text)
    }

    /// Coinsurance tiers split the in-scope amount with a deductible and bands; every other tier
    /// is a layer over what the tiers before it left to the person.
    pub fn is_coinsurance(self) -> bool {
        matches!(self, TierKind::BasicPool | TierKind::LongTermCare)
    }
}

/// The parts of a bill that a person bears before later tiers pay some of them. Layers name the
/// components their base is made of; the personal account names those it may pay.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Component {
    /// In scope, below the deductible (起付线以下).
    BelowDeductible = 0,
    /// In scope, the person's co-insurance share within the bands (按比例自付).
    Copay = 1,
    /// In scope, beyond the coinsurance tier's annual cap (封顶线以上).
    AboveCap = 2,
    /// In scope, the share a person treated outside the insured region pays first, before the
    /// basic fund's deductible and ratios (异地就医先行自付, `[cross_region] first_self_pay`).
    ElsewhereFirstSelfPay = 3,
    /// Class-B first self-pay (乙类先行自付).
    ClassBFirstSelfPay = 4,
    /// Above the price limit (超限价自费).
    OverLimit = 5,
    /// Outside the catalog (全自费).
    OutsideCatalog = 6,
}

impl Component {
    pub const COUNT: usize = 7;
    pub const ALL: [Component; Component::COUNT] = [
        Component::BelowDeductible,
        Component::Copay,
        Component::AboveCap,
        Component::ElsewhereFirstSelfPay,
        Component::ClassBFirstSelfPay,
        Component::OverLimit,
        Component::OutsideCatalog,
    ];
    pub const IN_SCOPE: [Component; 4] = [
        Component::BelowDeductible,
        Component::Copay,
        Component::AboveCap,
        Component::ElsewhereFirstSelfPay,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Component::BelowDeductible => "below_deductible",
            Component::Copay => "copay",
            Component::AboveCap => "above_cap",
            Component::ElsewhereFirstSelfPay => "elsewhere_first_self_pay",
            Component::ClassBFirstSelfPay => "class_b_first_self_pay",
            Component::OverLimit => "over_limit",
            Component::OutsideCatalog => "outside_catalog",
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            Component::BelowDeductible => "起付线以下",
            Component::Copay => "按比例自付",
            Component::AboveCap => "封顶线以上",
            Component::ElsewhereFirstSelfPay => "异地先行自付",
            Component::ClassBFirstSelfPay => "乙类先行自付",
            Component::OverLimit => "超限价自费",
            Component::OutsideCatalog => "全自费",
        }
    }

    pub fn parse(text: &str) -> Option<Component> {
        Component::ALL.into_iter().find(|c| c.code() == text)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// One tier of a region's policy.
#[derive(Clone, Debug)]
pub struct Tier {
    /// Unique within the policy; names the tier's accumulators and explanations.
    pub id: Arc<str>,
    pub kind: TierKind,
    /// The key path of the tier's table.
    pub source: SourceId,
    /// For layers, what the base is made of; ignored for coinsurance tiers.
    pub base: Base,
    /// Whether band positions and thresholds count over the calendar year or restart per visit.
    pub accumulate: Accumulate,
    /// The tier's rules; for any person and visit at most one matches.
    pub rules: Vec<Rule>,
}

/// What a layer's base is made of.
#[derive(Clone, Debug)]
pub struct Base {
    /// Components, in the order the tier's payment is attributed to them.
    pub components: Vec<Component>,
    /// Indices of the earlier layer tiers whose payments are deducted from the base. Usually
    /// every earlier tier; a policy may name fewer.
    pub after: Vec<usize>,
    pub source: SourceId,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Accumulate {
    /// Positions and thresholds count the whole calendar year (年度累计).
    Year,
    /// Each visit starts from zero.
    Visit,
}

/// The facts of a claim that rules are selected on, as bit sets of the vocabularies.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Selector {
    pub categories: u32,
    pub visits: u32,
    pub levels: u32,
    /// Assistance categories, plus [`Selector::NO_ASSISTANCE`] for people on no list.
    pub assistance: u32,
    pub needy: Option<bool>,
    pub civil_servant: Option<bool>,
    pub enterprise_supplementary: Option<bool>,
    /// Care outside the insured pooling region (异地就医), or at home; `None` matches both.
    pub elsewhere: Option<bool>,
    /// Filing kinds (备案类别) of the bill, plus [`Selector::NO_FILING`] for bills with none.
    pub filings: u32,
    /// Disease groups (bit `i` is the policy's group `i`), plus [`Selector::NO_DISEASE`] for
    /// bills of no group.
    pub diseases: u64,
    /// Inclusive age range.
    pub age: (u8, u8),
    /// Inclusive range of the admission number within the year.
    pub admission: (u16, u16),
}

impl Selector {
    pub const NO_ASSISTANCE: u32 = 1 << 31;
    pub const NO_DISEASE: u64 = 1 << 63;
    pub const NO_FILING: u32 = 1 << 31;

    /// The selector that matches everything.
    pub fn any() -> Selector {
        let all = |bits: u32| bits;
        Selector {
            categories: all(Category::ALL.iter().fold(0, |acc, c| acc | c.bit())),
            visits: VisitType::ALL.iter().fold(0, |acc, v| acc | v.bit()),
            levels: HospitalLevel::ALL.iter().fold(0, |acc, l| acc | l.bit()),
            assistance: AssistanceCategory::ALL
                .iter()
                .fold(Selector::NO_ASSISTANCE, |acc, a| acc | a.bit()),
            needy: None,
            civil_servant: None,
            enterprise_supplementary: None,
            elsewhere: None,
            filings: FilingKind::ALL.iter().fold(Selector::NO_FILING, |acc, f| acc | f.bit()),
            diseases: u64::MAX,
            age: (0, u8::MAX),
            admission: (0, u16::MAX),
        }
    }

    pub fn matches(&self, facts: &Facts) -> bool {
        let flag = |want: Option<bool>, have: bool| want.is_none_or(|want| want == have);
        self.categories & facts.category.bit() != 0
            && self.visits & facts.visit.bit() != 0
            && self.levels & facts.level.bit() != 0
            && self.assistance & facts.assistance_bit() != 0
            && flag(self.needy, facts.needy)
            && flag(self.civil_servant, facts.civil_servant)
            && flag(self.enterprise_supplementary, facts.enterprise_supplementary)
            && flag(self.elsewhere, facts.elsewhere)
            && self.filings & facts.filing.map_or(Selector::NO_FILING, FilingKind::bit) != 0
            && self.diseases & facts.disease != 0
            && (self.age.0..=self.age.1).contains(&facts.age)
            && (self.admission.0..=self.admission.1).contains(&facts.admission)
    }

    /// Whether some claim could match both selectors.
    pub fn overlaps(&self, other: &Selector) -> bool {
        let flags = |a: Option<bool>, b: Option<bool>| a.is_none() || b.is_none() || a == b;
        let ranges = |a: (u16, u16), b: (u16, u16)| a.0 <= b.1 && b.0 <= a.1;
        self.categories & other.categories != 0
            && self.visits & other.visits != 0
            && self.levels & other.levels != 0
            && self.assistance & other.assistance != 0
            && flags(self.needy, other.needy)
            && flags(self.civil_servant, other.civil_servant)
            && flags(self.enterprise_supplementary, other.enterprise_supplementary)
            && flags(self.elsewhere, other.elsewhere)
            && self.filings & other.filings != 0
            && self.diseases & other.diseases != 0
            && ranges(
                (u16::from(self.age.0), u16::from(self.age.1)),
                (u16::from(other.age.0), u16::from(other.age.1)),
            )
            && ranges(self.admission, other.admission)
    }
}

/// The facts of one claim that selectors look at.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Facts {
    pub category: Category,
    pub visit: VisitType,
    pub level: HospitalLevel,
    pub assistance: Option<AssistanceCategory>,
    pub needy: bool,
    pub civil_servant: bool,
    pub enterprise_supplementary: bool,
    /// Treated outside the insured pooling region.
    pub elsewhere: bool,
    /// The kind of the filing the bill is settled under, if any.
    pub filing: Option<FilingKind>,
    /// The bill's disease group, as [`Policy::disease_bit`] gives it.
    pub disease: u64,
    pub age: u8,
    /// The admission number within the year; 1 for visits that are not admissions.
    pub admission: u16,
}

impl Facts {
    fn assistance_bit(&self) -> u32 {
        self.assistance.map_or(Selector::NO_ASSISTANCE, AssistanceCategory::bit)
    }
}

/// One rule of a tier: for the claims its selector matches, the tier's parameters.
#[derive(Clone, Debug)]
pub struct Rule {
    /// The key path of the rule's table.
    pub source: SourceId,
    pub when: Selector,
    /// The accumulator pool for deductibles, band positions and thresholds (default: the visit
    /// type for coinsurance tiers, `all` for layers).
    pub pool: Arc<str>,
    /// The pool the annual cap counts in (default: `pool`); pools may be shared by rules, for a
    /// cap common to inpatient and chronic outpatient care.
    pub cap_pool: Arc<str>,
    /// Coinsurance tiers only.
    pub deductible: Option<Deductible>,
    /// Layers only: the amount of base below which nothing is paid (起付标准).
    pub threshold: Option<Param<Fen>>,
    pub band_basis: Param<BandBasis>,
    /// Ascending, contiguous from zero; the last one is open.
    pub bands: Vec<Band>,
    /// Where each band's product is rounded.
    pub round_at: Param<RoundAt>,
    /// The annual cap on what this tier pays in `cap_pool` (封顶线/最高支付限额).
    pub cap: Option<Param<Fen>>,
    /// A second annual cap, on what this tier pays in the rule's own `pool`, inside the shared
    /// `cap` of `cap_pool` (门慢年度限额 within the year's 最高支付限额). Only where the
    /// two pools differ.
    pub pool_cap: Option<Param<Fen>>,
    /// The pool where `pool_cap` counts this tier's payments: the rule's `pool` unless the
    /// `pool_cap` names another (a sub-limit for 门慢 while the threshold counts in a pool shared
    /// with admissions).
    pub pool_cap_pool: Arc<str>,
    /// The most this tier pays on one bill (每次/每人次最高支付限额; for long-term care billed
    /// by the month, the month's limit).
    pub cap_per_visit: Option<Param<Fen>>,
    /// The most this tier pays per day of the bill (每日/每床日最高支付限额): `days ×` this, on
    /// one bill. A bill without days is refused where such a rule applies.
    pub cap_per_day: Option<Param<Fen>>,
    /// Coinsurance tiers only: the band position (on `band_basis`) from which the tier pays
    /// nothing (封顶线 written as a cost, "起付线以上至15万元"); the in-scope amount above it is
    /// `above_cap`, for a large-amount layer.
    pub ceiling: Option<Param<Fen>>,
    /// Adjustments that apply on top of the rule to the claims their selectors match.
    pub adjustments: Vec<Adjustment>,
}

impl Rule {
    /// Every pool the rule counts in: its own, its cap's and its pool cap's.
    pub fn pools(&self) -> [&str; 3] {
        [&self.pool, &self.cap_pool, &self.pool_cap_pool]
    }
}

/// Where band positions are measured from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BandBasis {
    /// Bands are bounds on the cumulative amount counted from zero, deductible or threshold
    /// included (the Beijing table "1300–30000, 30000–40000, 40000+").
    Cumulative,
    /// Bands are bounds on the amount above the deductible or threshold ("up to 50,000 above
    /// the threshold 60 %").
    AboveThreshold,
}

impl BandBasis {
    pub fn code(self) -> &'static str {
        match self {
            BandBasis::Cumulative => "cumulative",
            BandBasis::AboveThreshold => "above_threshold",
        }
    }
}

/// Where the product of an amount and a ratio is rounded to the fen.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RoundAt {
    /// Each band's payment is rounded, then summed (as published examples print them).
    Band,
    /// Band products are summed exactly and the tier's payment is rounded once.
    Tier,
}

/// One band: up to `to` (exclusive of what lies above), the ratio the tier pays.
#[derive(Clone, Copy, Debug)]
pub struct Band {
    /// The band's upper bound on the band basis; `None` for the last, open band.
    pub to: Option<Param<Fen>>,
    pub ratio: Param<Ratio>,
}

/// A coinsurance tier's deductible (起付线).
#[derive(Clone, Debug)]
pub struct Deductible {
    pub per: Param<DeductiblePer>,
    pub amount: DeductibleAmount,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DeductiblePer {
    /// Once per admission.
    Admission,
    /// Once per calendar year, counted in the rule's pool.
    Year,
    /// Once per visit (outpatient per-visit deductibles).
    Visit,
}

impl DeductiblePer {
    pub fn code(self) -> &'static str {
        match self {
            DeductiblePer::Admission => "admission",
            DeductiblePer::Year => "year",
            DeductiblePer::Visit => "visit",
        }
    }
}

/// How the deductible's amount is found.
#[derive(Clone, Debug)]
pub enum DeductibleAmount {
    Fixed(Param<Fen>),
    /// The n-th admission's deductible; admissions past the table use the last entry.
    ByAdmission(Vec<Param<Fen>>),
    /// `max(floor, first − (n − 1) × step)` for the n-th admission.
    StepDown {
        first: Param<Fen>,
        step: Param<Fen>,
        floor: Param<Fen>,
    },
}

impl DeductibleAmount {
    /// The nominal deductible for the `admission`-th admission, and the parameter it came from.
    pub fn for_admission(&self, admission: u16) -> (Fen, SourceId) {
        let n = usize::from(admission.max(1));
        match self {
            DeductibleAmount::Fixed(amount) => (amount.value, amount.source),
            DeductibleAmount::ByAdmission(table) => {
                let entry = table[(n - 1).min(table.len() - 1)];
                (entry.value, entry.source)
            }
            DeductibleAmount::StepDown { first, step, floor } => {
                let steps = i64::try_from(n - 1).unwrap_or(i64::MAX / 2);
                let stepped = Fen(first.value.0.saturating_sub(steps.saturating_mul(step.value.0)));
                if stepped <= floor.value {
                    (floor.value, floor.source)
                } else if n == 1 {
                    (stepped, first.source)
                } else {
                    (stepped, step.source)
                }
            }
        }
    }

    /// The amount written first, which a first band may name as its lower bound.
    pub fn nominal(&self) -> Fen {
        self.for_admission(1).0
    }
}

/// An adjustment of a rule for the claims its selector matches. All matching adjustments
/// apply: ratio points add up, factors multiply, a cap replaces the rule's.
#[derive(Clone, Debug)]
pub struct Adjustment {
    pub source: SourceId,
    pub when: Selector,
    /// Percentage points added to every band's ratio, in millionths (5 points = 50,000);
    /// negative to cut. The result is clamped to 0..=100 %.
    pub ratio_points: Option<Param<i64>>,
    /// Scales the person's share `1 − ratio` (Beijing retirees bear 60 % of what in-service
    /// employees bear).
    pub personal_share_factor: Option<Param<Ratio>>,
    /// Scales the deductible (coinsurance) or the threshold (layers): students halved.
    pub threshold_factor: Option<Param<Ratio>>,
    /// Replaces the rule's annual cap.
    pub cap: Option<Param<Fen>>,
}

/// The insured region's rules for care elsewhere (参保地政策).
#[derive(Clone, Debug)]
pub struct CrossRegion {
    /// Percentage points (millionths) taken off the basic fund's ratios, by filing kind, in the
    /// order of `FilingKind::ALL`.
    pub cuts: Vec<Param<i64>>,
    /// What an unfiled visit gets.
    pub unfiled: Param<Unfiled>,
    /// The share of the in-scope amount the person pays first (先行自付), by filing kind in the
    /// order of `FilingKind::ALL`, then for unfiled care.
    pub first_self_pay: Vec<Param<Ratio>>,
    /// Days after the visit within which an emergency may still be filed.
    pub emergency_filing_days: Param<u16>,
    /// Filing kinds that need the agency's approval (a bit set of `FilingKind`).
    pub approval_required: Param<u32>,
}

impl CrossRegion {
    pub fn cut(&self, kind: FilingKind) -> Param<i64> {
        self.cuts[kind as usize]
    }

    /// The share paid first under a filing of `kind`, or unfiled (`None`).
    pub fn first_self_pay(&self, kind: Option<FilingKind>) -> Param<Ratio> {
        self.first_self_pay[kind.map_or(FilingKind::ALL.len(), |kind| kind as usize)]
    }
}

/// What care outside the insured region gets without a valid filing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Unfiled {
    /// It is refused: `cross_region_filing_required`.
    Reject,
    /// It is settled with the basic fund's ratios cut by these points (millionths).
    Cut(i64),
}

/// What the personal account may pay.
#[derive(Clone, Debug)]
pub struct AccountRule {
    pub source: SourceId,
    /// Categories whose people have an account (usually the employee ones).
    pub categories: u32,
    /// The components the account may pay, in order.
    pub covers: Vec<Component>,
}
