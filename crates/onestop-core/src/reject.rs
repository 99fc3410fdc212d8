//! Rejections of a claim: one exhaustive list of stable codes, in the order they are checked.
//!
//! A code says what must hold (`line_amount_must_not_be_negative`). Each has a page in
//! `docs/reference/rejections.md` and a test in `onestop-api`'s rejection suite.

use std::fmt;

macro_rules! rejection_codes {
    ($($variant:ident = $code:literal, $zh:literal, $doc:literal;)+) => {
        /// Why a claim cannot be settled, in the order checks run.
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
        pub enum RejectionCode { $(#[doc = $doc] $variant),+ }

        impl RejectionCode {
            pub const ALL: &'static [RejectionCode] = &[$(RejectionCode::$variant),+];

            pub fn code(self) -> &'static str {
                match self { $(RejectionCode::$variant => $code),+ }
            }

            /// The Chinese summary shown beside the English message.
            pub fn zh(self) -> &'static str {
                match self { $(RejectionCode::$variant => $zh),+ }
            }

            /// What must hold, in a sentence.
            pub fn description(self) -> &'static str {
                match self { $(RejectionCode::$variant => $doc),+ }
            }

            pub fn parse(text: &str) -> Option<RejectionCode> {
                match text { $($code => Some(RejectionCode::$variant),)+ _ => None }
            }
        }
    };
}

rejection_codes! {
    InputUnreadable = "input_unreadable", "输入文件无法读取",
        "An input file named on the command line must exist and be readable UTF-8 text.";
    MalformedInput = "malformed_input", "报文格式错误",
        "The input must be well-formed JSON or TOML.";
    UnknownField = "unknown_field", "未知字段",
        "Every field must be one the format defines; a misspelt field is never ignored.";
    MissingField = "missing_field", "缺少必填字段",
        "Every required field must be present.";
    TextTooLong = "text_too_long", "文本超长",
        "Codes, names and identifiers must fit their documented length.";
    DateOfServiceInvalid = "date_of_service_invalid", "就诊日期无效",
        "The date of service must be a real calendar date written YYYY-MM-DD, and a visit's not \
         after today.";
    RegionCodeInvalid = "region_code_invalid", "统筹区编码无效",
        "A pooling region is a six-digit administrative division code such as 110000.";
    VisitTypeUnknown = "visit_type_unknown", "医疗类别未知",
        "The visit type must be one of the documented visit types.";
    HospitalLevelUnknown = "hospital_level_unknown", "医院等级未知",
        "The hospital level must be community, 1, 2 or 3.";
    AdmissionNumberOutOfRange = "admission_number_out_of_range", "住院次数超出范围",
        "The admission number within the year must be between 1 and 100.";
    FilingKindUnknown = "filing_kind_unknown", "备案类型未知",
        "A filing kind must be long_term_resident, resettled_retiree, referral, emergency or \
         other_temporary.";
    DiseaseInvalid = "disease_invalid", "病种编码无效",
        "A disease code (病种编码) is 1 to 30 letters, digits, `.`, `-` and `_`, such as M03900 \
         or I10.x00.";
    DaysOutOfRange = "days_out_of_range", "天数超出范围",
        "A bill's days (住院天数 or 护理天数) must be a whole number from 1 to 3,660.";
    BillMustHaveLines = "bill_must_have_lines", "费用明细为空",
        "A bill must have at least one fee line.";
    LinesCountExceedsMax = "lines_count_exceeds_max", "费用明细条数超限",
        "A bill may have at most 5,000 fee lines.";
    LineClassUnknown = "line_class_unknown", "目录类别未知",
        "A line's catalog class must be a (甲类), b (乙类) or outside (目录外).";
    LineAmountInvalid = "line_amount_invalid", "金额格式错误",
        "An amount is yuan with at most two decimals, written as a string or a number.";
    LineAmountMustNotBeNegative = "line_amount_must_not_be_negative", "金额不能为负",
        "Amounts on a bill must not be negative; a refund is a cancellation.";
    LineAmountExceedsMax = "line_amount_exceeds_max", "单条金额超限",
        "A line's amount must not exceed 10,000,000 yuan.";
    LineQuantityInvalid = "line_quantity_invalid", "数量无效",
        "A quantity must be a positive decimal with at most four decimals.";
    LineUnitPriceInvalid = "line_unit_price_invalid", "单价无效",
        "A unit price or price limit must be a non-negative decimal with at most four decimals.";
    LineAmountMustEqualQuantityTimesUnitPrice =
        "line_amount_must_equal_quantity_times_unit_price", "金额与数量单价不符",
        "Where quantity and unit price are given, the amount must equal their product rounded \
         half up to the fen.";
    BillAmountExceedsMax = "bill_amount_exceeds_max", "单据总额超限",
        "A bill's total must not exceed 100,000,000 yuan.";
    CategoryUnknown = "category_unknown", "人员类别未知",
        "The person's category must be one of the documented categories.";
    AgeOutOfRange = "age_out_of_range", "年龄超出范围",
        "A person's age must be between 0 and 150.";
    AssistanceCategoryUnknown = "assistance_category_unknown", "救助对象类别未知",
        "An assistance category must be one of the documented recipient categories.";
    AccountBalanceInvalid = "account_balance_invalid", "个人账户余额无效",
        "The personal-account balance must be a non-negative amount of yuan.";
    AccumulatorInvalid = "accumulator_invalid", "累计信息无效",
        "Year-to-date counters must name a known counter and hold a non-negative amount.";
    AccumulatorsYearMustMatchDateOfService =
        "accumulators_year_must_match_date_of_service", "累计年度与就诊年度不符",
        "Year-to-date accumulators must be those of the year of the date of service.";
    InsuredRegionHasNoPolicy = "insured_region_has_no_policy", "参保地无政策",
        "The insured region must have a policy file.";
    NoPolicyInForceOnDateOfService = "no_policy_in_force_on_date_of_service", "就诊日期无有效政策",
        "The insured region's policy must be in force on the date of service.";
    CrossRegionFilingRequired = "cross_region_filing_required", "异地就医未备案",
        "Care outside the insured region needs a valid filing (备案) for the region of treatment \
         where the insured region's policy requires one.";
    TreatmentRegionHasNoCatalogInForce =
        "treatment_region_has_no_catalog_in_force", "就医地无有效目录",
        "The region of treatment must have catalog rules in force on the date of service.";
    DaysRequired = "days_required", "缺少住院或护理天数",
        "A rule that limits what it pays per day (`cap_per_day`, 每日限额) needs the bill's \
         days: give `days`, or discharge the admission first so that its days are known.";
}

impl fmt::Display for RejectionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A rejected claim: a stable code, the field at fault where there is one, and a message that
/// says what was found.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Rejection {
    pub code: RejectionCode,
    pub field: Option<String>,
    pub message: String,
}

impl Rejection {
    pub fn new(code: RejectionCode, message: impl Into<String>) -> Rejection {
        Rejection { code, field: None, message: message.into() }
    }

    pub fn field(mut self, field: impl Into<String>) -> Rejection {
        self.field = Some(field.into());
        self
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code.code(), self.code.zh(), self.message)?;
        if let Some(field) = &self.field {
            write!(f, " [field {field}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for Rejection {}
