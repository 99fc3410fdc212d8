//! What is settled: a bill of fee lines for one visit, and the person it belongs to.
//!
//! These are already-validated domain values: text from outside becomes one of these through
//! `onestop-api`, which owns the wire formats and their rejection codes.

use jiff::civil::Date;

use crate::money::{Fen, Quantity, UnitPrice};

/// A pooling region (统筹区), named by its six-digit administrative division code.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Region(pub u32);

impl Region {
    /// Accepts exactly six ASCII digits, not starting with zero.
    pub fn parse(text: &str) -> Option<Region> {
        let ok =
            text.len() == 6 && text.bytes().all(|b| b.is_ascii_digit()) && !text.starts_with('0');
        if ok { text.parse().ok().map(Region) } else { None }
    }
}

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

/// Declares a closed vocabulary: the Rust variants, their stable `snake_case` names (used in
/// policy files and on the wire) and their Chinese terms (used in every report).
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $code:literal, $zh:literal;)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable name used in files and on the wire.
            pub fn code(self) -> &'static str {
                match self { $($name::$variant => $code),+ }
            }

            /// The Chinese term, shown beside the English one in every report.
            pub fn zh(self) -> &'static str {
                match self { $($name::$variant => $zh),+ }
            }

            pub fn parse(text: &str) -> Option<$name> {
                match text { $($code => Some($name::$variant),)+ _ => None }
            }

            /// This value's bit in a set of values.
            pub fn bit(self) -> u32 {
                1 << (self as u32)
            }

            /// The names accepted by `parse`, for error messages.
            pub fn codes() -> String {
                let codes: Vec<&str> = Self::ALL.iter().map(|v| v.code()).collect();
                codes.join(", ")
            }
        }
    };
}

vocabulary! {
    /// The two basic medical insurance schemes.
    Scheme {
        Employee = "employee", "职工基本医疗保险";
        Resident = "resident", "城乡居民基本医疗保险";
    }
}

vocabulary! {
    /// A person's category within their scheme; the category decides the scheme.
    Category {
        InService = "in_service", "在职职工";
        Retired = "retired", "退休人员";
        Elderly = "elderly", "老年居民";
        WorkingAge = "working_age", "劳动年龄内居民";
        StudentChild = "student_child", "学生儿童";
    }
}

impl Category {
    pub fn scheme(self) -> Scheme {
        match self {
            Category::InService | Category::Retired => Scheme::Employee,
            Category::Elderly | Category::WorkingAge | Category::StudentChild => Scheme::Resident,
        }
    }
}

vocabulary! {
    /// The kind of visit a bill is for; each has its own deductible, ratios and caps.
    VisitType {
        GeneralOutpatient = "general_outpatient", "普通门诊";
        ChronicOutpatient = "chronic_outpatient", "门诊慢特病";
        Inpatient = "inpatient", "住院";
        LtcInstitutional = "ltc_institutional", "长护机构护理";
        LtcHome = "ltc_home", "长护居家护理";
    }
}

vocabulary! {
    /// Hospital level. Community facilities (社区卫生服务机构) often get their own ratios.
    HospitalLevel {
        Community = "community", "社区卫生服务机构";
        Level1 = "1", "一级医院";
        Level2 = "2", "二级医院";
        Level3 = "3", "三级医院";
    }
}

vocabulary! {
    /// A fee line's class in the catalog (目录) of the place of treatment.
    CatalogClass {
        A = "a", "甲类";
        B = "b", "乙类";
        Outside = "outside", "目录外(丙类/自费)";
    }
}

vocabulary! {
    /// Medical-assistance recipient categories on the lists kept by civil affairs.
    AssistanceCategory {
        ExtremePoverty = "extreme_poverty", "特困人员";
        SubsistenceAllowance = "subsistence_allowance", "低保对象";
        LowIncomeEdge = "low_income_edge", "低保边缘家庭成员";
        ReturningToPovertyRisk = "returning_to_poverty_risk", "防止返贫监测对象";
        ImpoverishedByIllness = "impoverished_by_illness", "因病致贫重病患者";
        Orphan = "orphan", "孤儿";
        SevereDisability = "severe_disability", "重度残疾人";
        SpecialCare = "special_care", "优抚对象";
    }
}

vocabulary! {
    /// The kinds of filing (备案) for care outside the insured region.
    FilingKind {
        LongTermResident = "long_term_resident", "异地长期居住人员";
        ResettledRetiree = "resettled_retiree", "异地安置退休人员";
        Referral = "referral", "异地转诊人员";
        Emergency = "emergency", "异地急诊抢救人员";
        OtherTemporary = "other_temporary", "其他临时外出就医人员";
    }
}

/// One fee line of a bill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The item's code in the catalog (医保目录编码); matched against catalog overrides.
    pub code: String,
    /// The item's name as printed on the bill.
    pub name: String,
    /// The class the hospital's system assigned; a catalog entry for `code` takes precedence.
    pub class: CatalogClass,
    pub quantity: Quantity,
    pub unit_price: UnitPrice,
    /// `quantity × unit_price`, rounded half up to the fen.
    pub amount: Fen,
    /// The price limit per unit (限价) if the hospital's system knows one; a catalog entry for
    /// `code` takes precedence.
    pub price_limit: Option<UnitPrice>,
}

/// A bill: one visit's fee lines, where and when they were incurred.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bill {
    pub date_of_service: Date,
    /// The pooling region of the place of treatment: its catalog classifies the lines.
    pub treatment_region: Region,
    pub visit: VisitType,
    pub level: HospitalLevel,
    /// For inpatient bills, the admission's number within the calendar year (1 = first).
    pub admission_number: Option<u16>,
    /// Whether the person asked to pay their share from the personal account (个人账户).
    pub use_personal_account: bool,
    /// For care outside the insured region: the kind of the person's valid filing for the
    /// region of treatment, if they have one (`None` when unfiled or treated at home).
    pub filing: Option<FilingKind>,
    /// The disease the bill treats (病种编码), for rules that select by disease group: chronic
    /// and special outpatient diseases (门诊慢特病) above all.
    pub disease: Option<String>,
    /// The days the bill covers (住院天数 for an admission, counting the day of admission and
    /// not the day of discharge; 护理天数 for long-term care), for rules that limit what they
    /// pay per day (`cap_per_day`). `None` when not known: such a rule then refuses the bill.
    pub days: Option<u16>,
    pub lines: Vec<Line>,
}

/// The insured person, as enrolled on the date of service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    /// The pooling region where the person is insured: its policy decides every tier.
    pub insured_region: Region,
    pub category: Category,
    pub age: u8,
    /// The person's category on a medical-assistance recipient list, if any.
    pub assistance: Option<AssistanceCategory>,
    /// Needy (困难) for critical-illness purposes, as certified by the agency.
    pub needy: bool,
    /// Covered by the civil-servant medical subsidy (公务员医疗补助).
    pub civil_servant: bool,
    /// Covered by enterprise supplementary medical insurance (企业补充医疗保险).
    pub enterprise_supplementary: bool,
    /// Personal-account (个人账户) balance before this settlement.
    pub account_balance: Fen,
}

impl Person {
    pub fn scheme(&self) -> Scheme {
        self.category.scheme()
    }
}

/// A bill and the person it is settled for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub bill: Bill,
    pub person: Person,
}

/// Limits on a claim, checked where a claim is built.
pub const LINES_COUNT_MAX: usize = 5_000;
/// At most 100 admissions a year; more is a data error.
pub const ADMISSION_NUMBER_MAX: u16 = 100;
/// At most 10 million yuan on one line.
pub const LINE_AMOUNT_MAX: Fen = Fen(1_000_000_000);
/// At most 100 million yuan on one bill.
pub const BILL_AMOUNT_MAX: Fen = Fen(10_000_000_000);
/// At most this many days on one bill (ten years of an admission).
pub const DAYS_MAX: u16 = 3_660;
/// The oldest age accepted.
pub const AGE_MAX: u8 = 150;
/// At most this many characters in a disease code.
pub const DISEASE_CODE_MAX: usize = 30;

/// Whether `code` may be a disease code (病种编码): 1 to [`DISEASE_CODE_MAX`] of letters, digits,
/// `.`, `-` and `_` (national 门慢特病 codes such as `M03900`, ICD-10 codes such as `I10.x00`).
pub fn is_disease_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= DISEASE_CODE_MAX
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}
