//! The dictionaries (§4) onestop answers with, and how it reads the codes clients send.
//! Provinces extend these sets; where the reference marks a code [?], the choice is documented in
//! `docs/national-interface.md`.

use onestop_core::policy::TierKind;
use onestop_core::{AssistanceCategory, Category, Scheme, VisitType};

/// 险种类型: 310 employee basic, 390 urban-rural resident basic.
pub fn insutype(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Employee => "310",
        Scheme::Resident => "390",
    }
}

/// 人员类别, in the two-digit form: 11 in service, 12 retired, 14 resident minor (students
/// and children), 15 resident adult, 16 resident elderly.
pub fn psn_type(category: Category) -> &'static str {
    match category {
        Category::InService => "11",
        Category::Retired => "12",
        Category::StudentChild => "14",
        Category::WorkingAge => "15",
        Category::Elderly => "16",
    }
}

/// 医疗类别 → visit type. Outpatient codes (1x, pharmacy 41) are general outpatient except
/// 14x and 99xx (chronic and special diseases, 门诊慢特病); inpatient codes are 2x. Maternity
/// (5x) is not settled by onestop.
pub fn visit_of_med_type(med_type: &str) -> Option<VisitType> {
    let code = med_type.trim();
    if code.starts_with("14") || code.starts_with("99") {
        Some(VisitType::ChronicOutpatient)
    } else if code.starts_with('1') || code == "41" {
        Some(VisitType::GeneralOutpatient)
    } else if code.starts_with('2') {
        Some(VisitType::Inpatient)
    } else {
        None
    }
}

/// Visit type → 医疗类别 (the canonical two-digit code).
pub fn med_type_of(visit: VisitType) -> &'static str {
    match visit {
        VisitType::GeneralOutpatient => "11",
        VisitType::ChronicOutpatient => "14",
        VisitType::Inpatient => "21",
        VisitType::LtcInstitutional | VisitType::LtcHome => "99",
    }
}

/// 清算类别: 11 outpatient, 21 inpatient, 99 other.
pub fn clr_type(visit: VisitType) -> &'static str {
    match visit {
        VisitType::GeneralOutpatient | VisitType::ChronicOutpatient => "11",
        VisitType::Inpatient => "21",
        VisitType::LtcInstitutional | VisitType::LtcHome => "99",
    }
}

/// 基金支付类型 of a tier, and its name.
pub fn fund_pay_type(kind: TierKind, scheme: Scheme) -> (&'static str, &'static str) {
    match (kind, scheme) {
        (TierKind::BasicPool, Scheme::Employee) => ("310100", "职工基本医疗保险统筹基金"),
        (TierKind::BasicPool, Scheme::Resident) => ("390100", "城乡居民基本医疗保险基金"),
        (TierKind::CivilServantSubsidy, _) => ("320100", "公务员医疗补助基金"),
        (TierKind::LargeAmount, _) => ("330100", "大额医疗费用补助基金"),
        (TierKind::EnterpriseSupplementary, _) => ("370100", "企业补充医疗保险基金"),
        (TierKind::CriticalIllness, _) => ("390200", "城乡居民大病医疗保险基金"),
        (TierKind::MedicalAssistance, _) => ("610100", "医疗救助基金"),
        (TierKind::TiltAssistance, _) => ("610102", "医疗救助再救助基金"),
        (TierKind::LongTermCare, _) => ("620100", "照护保险基金"),
        (TierKind::InclusiveCommercial, _) => ("999997", "其他基金"),
    }
}

/// The setlinfo column a tier's payment is reported in.
pub fn setlinfo_column(kind: TierKind) -> &'static str {
    match kind {
        TierKind::BasicPool => "hifp_pay",
        TierKind::CivilServantSubsidy => "cvlserv_pay",
        TierKind::EnterpriseSupplementary => "hifes_pay",
        TierKind::CriticalIllness => "hifmi_pay",
        TierKind::LargeAmount => "hifob_pay",
        TierKind::MedicalAssistance | TierKind::TiltAssistance => "maf_pay",
        TierKind::LongTermCare | TierKind::InclusiveCommercial => "oth_pay",
    }
}

/// 人员身份类别 of an assistance-recipient category (regional in practice; onestop's codes).
pub fn idet_type(category: AssistanceCategory) -> &'static str {
    match category {
        AssistanceCategory::ExtremePoverty => "01",
        AssistanceCategory::SubsistenceAllowance => "02",
        AssistanceCategory::LowIncomeEdge => "03",
        AssistanceCategory::ReturningToPovertyRisk => "04",
        AssistanceCategory::ImpoverishedByIllness => "05",
        AssistanceCategory::Orphan => "06",
        AssistanceCategory::SevereDisability => "07",
        AssistanceCategory::SpecialCare => "08",
    }
}

/// 收费项目等级: 01 class A, 02 class B, 03 outside the catalog.
pub fn chrgitm_lv(class: &str) -> &'static str {
    match class {
        "a" => "01",
        "b" => "02",
        _ => "03",
    }
}

/// The catalog class of a 收费项目等级 a client sends.
pub fn class_of_chrgitm_lv(level: &str) -> Option<&'static str> {
    match level.trim() {
        "01" | "1" => Some("a"),
        "02" | "2" => Some("b"),
        "03" | "3" => Some("outside"),
        _ => None,
    }
}
