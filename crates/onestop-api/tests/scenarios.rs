//! Hand-computed scenarios on the bundled Beijing policy, one feature each: the arithmetic is
//! written beside every amount so a reader can check it without the engine.

use std::path::Path;

use onestop_api::settlement::quantity;
use onestop_api::{ClaimDto, Format, read_document};
use onestop_core::{Fen, PolicyBook, StepKind};

fn book() -> PolicyBook {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    onestop_policy::load_dir(&dir).expect("bundled policies").0
}

/// A book of policies written inline, each `(file name, text)`.
fn book_of(files: &[(&str, &str)]) -> PolicyBook {
    let snapshots = files
        .iter()
        .flat_map(|(name, text)| onestop_policy::load_str(name, text).expect(name).snapshots)
        .collect();
    PolicyBook::new(snapshots)
}

/// A place of treatment whose catalog classifies the lines: every line in scope, class-B
/// lines with no first self-pay, admissions paid 90 % with no deductible.
fn treatment_policy(region: &str) -> String {
    format!(
        "[policy]\nregion = \"{region}\"\nname = \"t\"\nvalid_from = \"2024-01-01\"\n\
        [catalog]\nclass_b_first_self_pay = \"0%\"\n\
        [[tiers]]\nid = \"basic\"\nkind = \"basic_pool\"\n\
        [[tiers.rules]]\nwhen = {{ visit = \"inpatient\" }}\ndeductible = {{ amount = \"0\" }}\n\
        ratio = \"90%\"\n"
    )
}

/// A level-2 admission on 2024-05-01 of a person aged 40, paid without the personal account:
/// `[treatment region, insured region]`, the person's category, more of the bill's header (a
/// filing), the fee lines (TOML inline tables) and more of the person (an assistance list).
fn admission(regions: [&str; 2], category: &str, bill: &str, lines: &str, person: &str) -> String {
    let [treatment, insured] = regions;
    format!(
        "[bill]\ndate_of_service = \"2024-05-01\"\ntreatment_region = \"{treatment}\"\n\
         visit = \"inpatient\"\nlevel = \"2\"\nuse_personal_account = false\n{bill}\
         lines = [{lines}]\n\
         [person]\ninsured_region = \"{insured}\"\ncategory = \"{category}\"\nage = 40\n{person}"
    )
}

/// Settles a claim written in TOML and checks named quantities to the fen.
fn check(book: &PolicyBook, claim: &str, expected: &[(&str, &str)]) -> onestop_core::Settlement {
    let dto: ClaimDto = read_document(claim, Format::Toml).expect("claim parses");
    let (claim, ytd) = dto.parse().expect("claim is valid");
    let (settlement, _, _) = book.split(&claim, &ytd).expect("settles");
    for (name, amount) in expected {
        let got = quantity(&settlement, name).unwrap_or_else(|| panic!("no quantity {name}"));
        assert_eq!(got, Fen::parse_yuan(amount).expect("amount"), "{name}");
    }
    settlement
}

const INPATIENT_L3: &str = r#"
[bill]
date_of_service = "2024-05-01"
treatment_region = "110000"
visit = "inpatient"
level = "3"
"#;

#[test]
fn the_basic_cap_stops_payment_inside_a_band_and_the_large_amount_tier_takes_the_rest() {
    let claim = format!(
        "{INPATIENT_L3}lines = [{{ class = \"a\", amount = \"700000\" }}]\n\
        [person]\ninsured_region = \"110000\"\ncategory = \"in_service\"\nage = 50\n"
    );
    let settlement = check(
        &book(),
        &claim,
        &[
            // Uncapped: 28700 × 85 % + 10000 × 90 % + 660000 × 95 % = 660395; the cap is 500000.
            ("tier.basic", "500000.00"),
            // 500000 − 24395 − 9000 = 466605 paid in the 95 % band covers 466605 / 95 % =
            // 491163.16 of it; 660000 − 491163.16 = 168836.84 is above the cap; × 85 %.
            ("tier.large_amount", "143511.31"),
            ("component.above_cap", "25325.53"),
        ],
    );
    let capped_band =
        settlement.steps.iter().filter(|s| s.kind == StepKind::Band).nth(2).expect("band 3");
    assert_eq!(capped_band.amount, Fen::parse_yuan("466605.00").expect("yuan"));
    assert_eq!(capped_band.base, Fen::parse_yuan("491163.16").expect("yuan"));
    assert!(settlement.steps.iter().any(|s| s.kind == StepKind::CapReached));
}

#[test]
fn retirees_bear_sixty_percent_of_the_in_service_share() {
    let claim = format!(
        "{INPATIENT_L3}lines = [{{ class = \"a\", amount = \"10000\" }}]\n\
        [person]\ninsured_region = \"110000\"\ncategory = \"retired\"\nage = 66\n"
    );
    // 1 − 0.6 × (1 − 85 %) = 91 %; (10000 − 1300) × 91 % = 7917.
    let book = book();
    let settlement = check(&book, &claim, &[("tier.basic", "7917.00"), ("deductible", "1300.00")]);
    // The band paid at 91 % cites both its own ratio (85 %) and the factor that made it 91 %.
    let band = settlement.steps.iter().find(|s| s.kind == StepKind::Band).expect("a band");
    let date = onestop_core::Date::constant(2024, 5, 1);
    let policy = book.at(onestop_core::Region(110_000), date).expect("policy");
    let cited: Vec<&str> =
        band.sources.iter().flatten().map(|id| policy.source(*id).path.as_str()).collect();
    assert!(cited[0].ends_with(".ratio"), "{cited:?}");
    assert!(cited[1].ends_with("personal_share_factor"), "{cited:?}");
}

#[test]
fn students_have_the_inpatient_deductible_halved() {
    let claim = "[bill]\ndate_of_service = \"2024-05-01\"\ntreatment_region = \"110000\"\n\
        visit = \"inpatient\"\nlevel = \"2\"\nlines = [{ class = \"a\", amount = \"5000\" }]\n\
        [person]\ninsured_region = \"110000\"\ncategory = \"student_child\"\nage = 12\n";
    // 800 × 0.5 = 400; (5000 − 400) × 78 % = 3588.
    check(&book(), claim, &[("deductible", "400.00"), ("tier.basic", "3588.00")]);
}

#[test]
fn needy_people_get_critical_illness_from_half_the_threshold_five_points_higher() {
    let claim = format!(
        "{INPATIENT_L3}lines = [{{ class = \"a\", amount = \"100000\" }}]\n\
        [person]\ninsured_region = \"110000\"\ncategory = \"working_age\"\nage = 45\nneedy = true\n"
    );
    check(
        &book(),
        &claim,
        &[
            // (100000 − 1300) × 78 % = 76986; the person bears 23014.
            ("tier.basic", "76986.00"),
            // Threshold 30404 × 0.5 = 15202; (23014 − 15202) × (60 % + 5) = 7812 × 65 % = 5077.80.
            ("tier.critical_illness", "5077.80"),
            ("personal_total", "17936.20"),
        ],
    );
}

#[test]
fn the_outpatient_deductible_is_annual_and_bands_count_the_year() {
    let claim = "[bill]\ndate_of_service = \"2024-05-01\"\ntreatment_region = \"110000\"\n\
        visit = \"general_outpatient\"\nlevel = \"2\"\nuse_personal_account = false\n\
        lines = [{ class = \"a\", amount = \"3000\" }]\n\
        [person]\ninsured_region = \"110000\"\ncategory = \"in_service\"\nage = 30\n\
        [ytd]\nyear = 2024\n[ytd.tiers.basic.outpatient]\n\
        deductible_met = \"1000\"\nin_scope = \"1000\"\n";
    // 1800 − 1000 = 800 still due; (3000 − 800) × 70 % = 1540.
    check(
        &book(),
        claim,
        &[("deductible", "800.00"), ("tier.basic", "1540.00"), ("cash", "1460.00")],
    );
}

#[test]
fn the_personal_account_pays_before_cash() {
    let claim = "[bill]\ndate_of_service = \"2024-05-01\"\ntreatment_region = \"110000\"\n\
        visit = \"general_outpatient\"\nlevel = \"community\"\n\
        lines = [{ class = \"a\", amount = \"500\" }, { class = \"outside\", amount = \"80\" }]\n\
        [person]\ninsured_region = \"110000\"\ncategory = \"in_service\"\nage = 30\n\
        account_balance = \"120.50\"\n";
    // All 500 is under the 1800 deductible: nothing from the fund; the account pays 120.50.
    check(
        &book(),
        claim,
        &[("tier.basic", "0.00"), ("personal_account", "120.50"), ("cash", "459.50")],
    );
}

/// A Langfang (131000) retiree's chronic outpatient bill in Beijing: Beijing's catalog, Langfang's
/// ratio (80 %), cut by the points Langfang's policy sets for the filing kind.
fn langfang_retiree_in_beijing(filing: Option<&str>) -> String {
    let filing = filing.map(|f| format!("filing = \"{f}\"\n")).unwrap_or_default();
    format!(
        "[bill]\ndate_of_service = \"2024-03-10\"\ntreatment_region = \"110000\"\n\
         visit = \"chronic_outpatient\"\nlevel = \"3\"\n{filing}\
         lines = [{{ class = \"a\", amount = \"1000\" }}, {{ class = \"b\", amount = \"500\" }}]\n\
         [person]\ninsured_region = \"131000\"\ncategory = \"retired\"\nage = 66\n"
    )
}

#[test]
fn care_elsewhere_uses_the_treating_catalog_and_the_insured_ratio_cut_by_the_filing_kind() {
    let book = book();
    // In scope: 1000 + 500 × 90 % (Beijing's class-B first self-pay) = 1450.
    let cases = [
        // Long-term residents and resettled retirees keep the full 80 %: 1450 × 80 % = 1160.
        (Some("long_term_resident"), "1160.00"),
        (Some("resettled_retiree"), "1160.00"),
        // Referral and emergency 10 points lower: 1450 × 70 % = 1015.
        (Some("referral"), "1015.00"),
        (Some("emergency"), "1015.00"),
        // Other temporary visitors 20 points lower: 1450 × 60 % = 870.
        (Some("other_temporary"), "870.00"),
        // Unfiled: Langfang settles 30 points lower rather than refusing: 1450 × 50 % = 725.
        (None, "725.00"),
    ];
    for (filing, basic) in cases {
        let claim = langfang_retiree_in_beijing(filing);
        let settlement = check(
            &book,
            &claim,
            &[("in_scope", "1450.00"), ("component.class_b_first_self_pay", "50.00")],
        );
        let paid = quantity(&settlement, "tier.basic").expect("basic");
        assert_eq!(paid, Fen::parse_yuan(basic).expect("yuan"), "{filing:?}");
        let cut = settlement.steps.iter().any(|s| s.kind == StepKind::CrossRegionCut);
        assert_eq!(cut, basic != "1160.00", "a cut step explains every cut: {filing:?}");
    }
}

#[test]
fn the_cut_lowers_only_the_basic_fund_and_not_at_home() {
    let book = book();
    // At home in Langfang the filing is irrelevant: 80 %.
    let home = langfang_retiree_in_beijing(Some("other_temporary"))
        .replace("treatment_region = \"110000\"", "treatment_region = \"131000\"");
    check(&book, &home, &[("tier.basic", "1160.00")]);
    // A Langfang employee admitted in Beijing as an emergency: the basic bands are cut by 10
    // points, critical illness is not. In scope 100000; deductible 1000; 49000 × 75 % +
    // 50000 × 80 % = 76750 from the basic fund. Critical illness: the burden 100000 − 76750 =
    // 23250 exceeds the 18000 threshold by 5250, × 60 % = 3150 (uncut).
    let claim = "[bill]\ndate_of_service = \"2024-03-10\"\ntreatment_region = \"110000\"\n\
        visit = \"inpatient\"\nlevel = \"3\"\nadmission_number = 1\nfiling = \"emergency\"\n\
        lines = [{ class = \"a\", amount = \"100000\" }]\n\
        [person]\ninsured_region = \"131000\"\ncategory = \"in_service\"\nage = 40\n";
    check(&book, claim, &[("tier.basic", "76750.00"), ("tier.critical_illness", "3150.00")]);
}

#[test]
fn the_cut_comes_off_the_ratio_the_person_has_at_home_retirees_too() {
    // A Beijing retiree admitted at a level-3 hospital in Langfang, filed as another temporary
    // visitor (Beijing cuts 10 points). At home the ratio is 1 − 0.6 × (1 − 85 %) = 91 %; in
    // Langfang 91 % − 10 = 81 %, not 1 − 0.6 × (1 − 75 %) = 85 % (which would be a 6-point cut).
    // (10000 − 1300) × 81 % = 7047.
    let claim = "[bill]\ndate_of_service = \"2024-05-01\"\ntreatment_region = \"131000\"\n\
        visit = \"inpatient\"\nlevel = \"3\"\nfiling = \"other_temporary\"\n\
        lines = [{ class = \"a\", amount = \"10000\" }]\n\
        [person]\ninsured_region = \"110000\"\ncategory = \"retired\"\nage = 66\n";
    let settlement = check(&book(), claim, &[("tier.basic", "7047.00"), ("deductible", "1300.00")]);
    let band = settlement.steps.iter().find(|s| s.kind == StepKind::Band).expect("a band");
    assert_eq!(band.ratio.map(|r| r.millionths()), Some(810_000));
}

/// The synthetic region of the property tests, whose small caps bind.
fn capped_book() -> PolicyBook {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/capped");
    onestop_policy::load_dir(&dir).expect("fixture policy").0
}

fn capped_claim(visit: &str, category: &str, amount: &str, ytd: &str) -> String {
    format!(
        "[bill]\ndate_of_service = \"2024-05-01\"\ntreatment_region = \"990100\"\n\
         visit = \"{visit}\"\nlevel = \"2\"\nuse_personal_account = false\ndays = 30\n\
         lines = [{{ class = \"a\", amount = \"{amount}\" }}]\n\
         [person]\ninsured_region = \"990100\"\ncategory = \"{category}\"\nage = 40\n\
         [ytd]\nyear = 2024\n{ytd}"
    )
}

#[test]
fn a_cap_per_visit_limits_one_bill_and_cites_itself() {
    // Resident outpatient: 50 a visit, then 50 %, at most 300 a visit (and 2000 a year).
    // (800 − 50) × 50 % = 375, limited to 300.
    let claim = capped_claim("general_outpatient", "working_age", "800", "");
    let settlement = check(&capped_book(), &claim, &[("tier.basic", "300.00")]);
    let cap = settlement.steps.iter().find(|s| s.kind == StepKind::CapReached).expect("cap");
    assert_eq!((cap.base, cap.amount), (Fen(30_000), Fen(7_500)));
    // The annual cap binds first when less of it is left: 2000 − 1900 = 100.
    let ytd = "[ytd.tiers.basic.outpatient]\npaid = \"1900\"\n";
    check(
        &capped_book(),
        &capped_claim("general_outpatient", "working_age", "800", ytd),
        &[("tier.basic", "100.00")],
    );
    // Long-term care billed by the month: 70 % of 5000 = 3500, the month's limit 3000.
    let claim = capped_claim("ltc_institutional", "working_age", "5000", "");
    check(&capped_book(), &claim, &[("tier.basic", "3000.00")]);
}

#[test]
fn a_cap_per_day_limits_a_bill_by_its_days_and_a_bill_without_days_is_refused() {
    // Long-term care, 70 %, at most 120 a day of care and 3000 a month: 20 days of care costing
    // 5000 → 70 % = 3500, limited to 120 × 20 = 2400 (under the month's 3000).
    let claim = capped_claim("ltc_institutional", "working_age", "5000", "")
        .replace("days = 30", "days = 20");
    let settlement = check(&capped_book(), &claim, &[("tier.basic", "2400.00")]);
    let cap = settlement.steps.iter().find(|s| s.kind == StepKind::CapReached).expect("cap");
    assert_eq!((cap.base, cap.amount), (Fen(240_000), Fen(110_000)));
    let dto: ClaimDto = read_document(&claim, Format::Toml).expect("claim parses");
    let (claim_core, ytd) = dto.parse().expect("valid");
    let book = capped_book();
    let (settlement, insured, treatment) = book.split(&claim_core, &ytd).expect("settles");
    let shown =
        onestop_api::SettlementDto::from_core(&claim_core, insured, treatment, &ytd, &settlement);
    assert_eq!(shown.days, Some(20));
    let text =
        shown.explanation.iter().find(|s| s.step == "cap_reached").expect("cap").text.clone();
    assert!(text.contains("每日最高支付 cap per day 120.00 × 20 days"), "{text}");
    // 30 days leave 3600 a month under the day limit: the month's 3000 binds.
    let claim = capped_claim("ltc_institutional", "working_age", "5000", "");
    check(&capped_book(), &claim, &[("tier.basic", "3000.00")]);
    // Without its days the bill cannot be settled under that rule, and says why.
    let no_days = claim.replace("days = 30\n", "");
    let dto: ClaimDto = read_document(&no_days, Format::Toml).expect("claim parses");
    let (claim_core, ytd) = dto.parse().expect("valid");
    let rejection = capped_book().split(&claim_core, &ytd).expect_err("refused");
    assert_eq!(rejection.code, onestop_core::RejectionCode::DaysRequired);
    assert_eq!(rejection.field.as_deref(), Some("bill.days"));
    assert!(rejection.message.contains("120.00"), "{}", rejection.message);
    // Nor can it when the rule has nothing to pay on: a bill outside the catalog alone
    // settles without days, all of it the patient's.
    let outside = no_days.replace("class = \"a\"", "class = \"outside\"");
    assert!(outside.contains("\"outside\""));
    check(&capped_book(), &outside, &[("tier.basic", "0.00")]);
    // A bill with no such rule needs no days.
    let outpatient =
        capped_claim("general_outpatient", "working_age", "800", "").replace("days = 30\n", "");
    check(&capped_book(), &outpatient, &[("tier.basic", "300.00")]);
    for bad in ["0", "3661", "\"x\"", "2.5", "\"+30\"", "\"30.0\"", "-1"] {
        let claim = claim.replace("days = 30", &format!("days = {bad}"));
        let dto: ClaimDto = read_document(&claim, Format::Toml).expect("claim parses");
        let rejection = dto.parse().expect_err("days out of range");
        assert_eq!(rejection.code, onestop_core::RejectionCode::DaysOutOfRange, "{bad}");
    }
}

#[test]
fn a_pool_cap_limits_its_pool_inside_a_cap_shared_with_another() {
    // Employee outpatient: 1500 a year, then 10000 at 50 % and the rest at 60 % above it:
    // 20000 → 10000 × 50 % + 8500 × 60 % = 10100; outpatient at most 8000 a year, inside the
    // 60000 it shares with inpatient care.
    let fresh = capped_claim("general_outpatient", "in_service", "20000", "");
    let settlement = check(&capped_book(), &fresh, &[("tier.basic", "8000.00")]);
    let deltas = &settlement.deltas;
    let after = settlement.accumulators_after(&onestop_core::Accumulators::new(2024));
    let paid = |pool| after.get("basic", pool, onestop_core::accumulators::Counter::Paid);
    assert_eq!((paid("outpatient"), paid("inpatient")), (Fen(800_000), Fen(800_000)), "{deltas:?}");
    // 55000 of the shared 60000 already paid for admissions: 5000 left, under the 8000.
    let ytd = "[ytd.tiers.basic.inpatient]\npaid = \"55000\"\n";
    let shared = capped_claim("general_outpatient", "in_service", "20000", ytd);
    check(&capped_book(), &shared, &[("tier.basic", "5000.00")]);
    // 7500 of the outpatient 8000 already paid: 500 left.
    let ytd = "[ytd.tiers.basic.inpatient]\npaid = \"7500\"\n\
               [ytd.tiers.basic.outpatient]\npaid = \"7500\"\ndeductible_met = \"1500\"\n";
    let own = capped_claim("general_outpatient", "in_service", "20000", ytd);
    check(&capped_book(), &own, &[("tier.basic", "500.00"), ("deductible", "0.00")]);
}

#[test]
fn a_pool_cap_can_count_in_a_pool_of_its_own_while_the_threshold_is_shared() {
    // 医疗救助 低保: one threshold of 2000 a year on admissions and 门诊慢特病 together, 70 %,
    // 50000 a year, of which 门慢 at most 5000. The bill's in-scope amount stands for the burden
    // after basic insurance (no coinsurance tier).
    let policy = "[policy]\nregion = \"990300\"\nname = \"t\"\nvalid_from = \"2024-01-01\"\n\
        [catalog]\nclass_b_first_self_pay = \"0%\"\n\
        [[tiers]]\nid = \"ma\"\nkind = \"medical_assistance\"\n\
        [[tiers.rules]]\nwhen = { visit = \"inpatient\" }\n\
        threshold = \"2000\"\nratio = \"70%\"\ncap = \"50000\"\n\
        [[tiers.rules]]\nwhen = { visit = \"chronic_outpatient\" }\n\
        threshold = \"2000\"\nratio = \"70%\"\ncap = \"50000\"\n\
        pool_cap = { amount = \"5000\", pool = \"chronic\" }\n";
    let book = book_of(&[("p.toml", policy)]);
    let claim = |ytd: &str| {
        format!(
            "[bill]\ndate_of_service = \"2024-07-01\"\ntreatment_region = \"990300\"\n\
             visit = \"chronic_outpatient\"\nlevel = \"2\"\n\
             lines = [{{ class = \"a\", amount = \"1000\" }}]\n\
             [person]\ninsured_region = \"990300\"\ncategory = \"working_age\"\nage = 40\n\
             [ytd]\nyear = 2024\n{ytd}"
        )
    };
    // 8000 of base counted on admissions already: the threshold is met; 1000 × 70 % = 700,
    // counted in `all` and in `chronic`.
    let met = "[ytd.tiers.ma.all]\nbase = \"8000\"\npaid = \"4200\"\n";
    let settlement = check(&book, &claim(met), &[("tier.ma", "700.00")]);
    let after = settlement.accumulators_after(&onestop_core::Accumulators::new(2024));
    let paid = |pool| after.get("ma", pool, onestop_core::accumulators::Counter::Paid);
    assert_eq!((paid("all"), paid("chronic")), (Fen(70_000), Fen(70_000)));
    // 1500 counted: the bill's base runs 1500 → 2500, 500 above the threshold × 70 % = 350.
    check(&book, &claim("[ytd.tiers.ma.all]\nbase = \"1500\"\n"), &[("tier.ma", "350.00")]);
    // 4800 of the 门慢 5000 paid: 200 left.
    let sub = format!("{met}[ytd.tiers.ma.chronic]\npaid = \"4800\"\n");
    check(&book, &claim(&sub), &[("tier.ma", "200.00")]);
    // The sub-limit cannot count in the pool of the shared cap itself.
    let same = policy.replace("pool = \"chronic\"", "pool = \"all\"");
    let error = onestop_policy::load_str("p.toml", &same).expect_err("refused");
    assert_eq!(error.code, onestop_policy::PolicyErrorCode::ValueInvalid, "{error}");
}

#[test]
fn a_rule_can_select_care_outside_the_insured_region() {
    // 异地转诊: a referral elsewhere pays the deductible of the insured region's level-3
    // hospitals (1000) at whatever level it is treated; at home a level-2 admission pays 600.
    let insured = "[policy]\nregion = \"990300\"\nname = \"t\"\nvalid_from = \"2024-01-01\"\n\
        [catalog]\nclass_b_first_self_pay = \"0%\"\n\
        [[tiers]]\nid = \"basic\"\nkind = \"basic_pool\"\n\
        [[tiers.rules]]\nwhen = { visit = \"inpatient\", level = \"2\", elsewhere = false }\n\
        deductible = { per = \"admission\", amount = \"600\" }\nratio = \"80%\"\n\
        [[tiers.rules]]\nwhen = { visit = \"inpatient\", level = \"3\", elsewhere = false }\n\
        deductible = { per = \"admission\", amount = \"1000\" }\nratio = \"80%\"\n\
        [[tiers.rules]]\nwhen = { visit = \"inpatient\", elsewhere = true }\n\
        deductible = { per = \"admission\", amount = \"1000\" }\nratio = \"80%\"\n";
    let book = book_of(&[("insured.toml", insured), ("t.toml", &treatment_policy("990400"))]);
    let claim = |region: &str| {
        admission([region, "990300"], "in_service", "", "{ class = \"a\", amount = \"10000\" }", "")
    };
    // At home: (10000 − 600) × 80 % = 7520. Elsewhere: (10000 − 1000) × 80 % = 7200.
    check(&book, &claim("990300"), &[("deductible", "600.00"), ("tier.basic", "7520.00")]);
    check(&book, &claim("990400"), &[("deductible", "1000.00"), ("tier.basic", "7200.00")]);
    // A rule that names no place overlaps both: the loader says so.
    let overlapping = insured.replace("level = \"2\", elsewhere = false", "level = \"2\"");
    let error = onestop_policy::load_str("o.toml", &overlapping).expect_err("overlap");
    assert_eq!(error.code, onestop_policy::PolicyErrorCode::RulesOverlap, "{error}");
}

#[test]
fn care_elsewhere_can_have_a_share_paid_first_before_the_deductible() {
    // 未备案先自付20%, 余下按参保地规定: unfiled care elsewhere pays 20 % of the in-scope amount
    // first; a referral 10 % (and no cut); a critical-illness layer on the in-scope burden
    // counts the share paid first as part of it.
    let insured = "[policy]\nregion = \"990300\"\nname = \"t\"\nvalid_from = \"2024-01-01\"\n\
        [catalog]\nclass_b_first_self_pay = \"0%\"\n\
        [cross_region]\nfirst_self_pay = { referral = \"10%\", unfiled = \"20%\" }\n\
        [[tiers]]\nid = \"basic\"\nkind = \"basic_pool\"\n\
        [[tiers.rules]]\nwhen = { visit = \"inpatient\" }\n\
        deductible = { per = \"admission\", amount = \"500\" }\nratio = \"80%\"\n\
        [[tiers]]\nid = \"ci\"\nkind = \"critical_illness\"\n\
        [[tiers.rules]]\nthreshold = \"3000\"\nratio = \"60%\"\n";
    let book = book_of(&[("insured.toml", insured), ("t.toml", &treatment_policy("990400"))]);
    let claim = |region: &str, filing: &str| {
        let lines = "{ class = \"a\", amount = \"20000\" }";
        admission([region, "990300"], "working_age", filing, lines, "")
    };
    // Unfiled: 20000 × 20 % = 4000 first; (16000 − 500) × 80 % = 12400. The person's in-scope
    // burden 4000 + 500 + 3100 = 7600; critical illness (7600 − 3000) × 60 % = 2760, taken from
    // the components in order (below the deductible, copay, ..., the share paid first last), so
    // the person still bears all 4000 of it.
    let settlement = check(
        &book,
        &claim("990400", ""),
        &[
            ("tier.basic", "12400.00"),
            ("personal_in_scope_after_coinsurance", "7600.00"),
            ("tier.ci", "2760.00"),
            ("component.elsewhere_first_self_pay", "4000.00"),
            ("cash", "4840.00"),
        ],
    );
    let first = settlement.steps.iter().find(|s| s.kind == StepKind::ElsewhereFirstSelfPay);
    let first = first.expect("the share paid first is a step");
    assert_eq!((first.amount, first.base), (Fen(400_000), Fen(2_000_000)));
    // A referral: 2000 first; (18000 − 500) × 80 % = 14000.
    let referral = claim("990400", "filing = \"referral\"\n");
    check(&book, &referral, &[("tier.basic", "14000.00")]);
    // At home nothing is paid first: (20000 − 500) × 80 % = 15600.
    check(&book, &claim("990300", ""), &[("tier.basic", "15600.00")]);
}

#[test]
fn class_b_first_self_pay_can_be_rounded_once_on_the_bill() {
    // Two class-B lines, 3333.35 and 1666.65, at 10 %: per line 333.34 + 166.67 = 500.01; on
    // the bill 5000.00 × 10 % = 500.00, shared out as 333.34 + 166.66 (the exact shares are
    // 333.335 and 166.665: both round down, and the fen left goes to the earlier of the equal
    // remainders). The fund pays 80 % of the rest: 4499.99 → 3599.99, 4500.00 → 3600.00. A
    // third line at 20 % of 0.03 (0.006) keeps the total exact: 500.006 → 500.01.
    let policy = |at: &str| {
        format!(
            "[policy]\nregion = \"990300\"\nname = \"t\"\nvalid_from = \"2024-01-01\"\n\
             [catalog]\nclass_b_first_self_pay = \"10%\"\n{at}\
             [[catalog.items]]\ncode = \"B20\"\nfirst_self_pay = \"20%\"\n\
             [[tiers]]\nid = \"basic\"\nkind = \"basic_pool\"\n\
             [[tiers.rules]]\nwhen = {{ visit = \"inpatient\" }}\n\
             deductible = {{ per = \"admission\", amount = \"0\" }}\nratio = \"80%\"\n"
        )
    };
    let claim = |third: &str| {
        let lines = format!(
            "{{ class = \"b\", amount = \"3333.35\" }}, \
             {{ class = \"b\", amount = \"1666.65\" }}{third}"
        );
        admission(["990300", "990300"], "working_age", "", &lines, "")
    };
    let per_line = book_of(&[("p.toml", &policy(""))]);
    check(
        &per_line,
        &claim(""),
        &[("class_b_first_self_pay", "500.01"), ("tier.basic", "3599.99")],
    );
    let on_bill = book_of(&[("p.toml", &policy("first_self_pay_round_at = \"bill\"\n"))]);
    let settlement = check(
        &on_bill,
        &claim(""),
        &[("class_b_first_self_pay", "500.00"), ("tier.basic", "3600.00")],
    );
    let shares: Vec<Fen> = settlement.lines.iter().map(|l| l.class_b_first_self_pay).collect();
    assert_eq!(shares, [Fen(33_334), Fen(16_666)]);
    for (split, amount) in settlement.lines.iter().zip([333_335, 166_665]) {
        assert_eq!(split.class_b_first_self_pay + split.in_scope, Fen(amount));
    }
    let steps = settlement.steps.iter().filter(|s| s.kind == StepKind::ClassBFirstSelfPay);
    let amounts: Vec<Fen> = steps.map(|s| s.amount).collect();
    assert_eq!(amounts, shares, "the explanation shows the shares booked");
    let claim_text = claim("");
    let dto: ClaimDto = read_document(&claim_text, Format::Toml).expect("claim parses");
    let (claim_core, ytd) = dto.parse().expect("valid");
    let (settlement, insured, treatment) = on_bill.split(&claim_core, &ytd).expect("settles");
    let shown =
        onestop_api::SettlementDto::from_core(&claim_core, insured, treatment, &ytd, &settlement);
    let line = shown.explanation.iter().find(|s| s.scope == "line:1").expect("line 2");
    assert!(line.text.contains("10% × 1666.65 = 166.665, 166.66 as its share"), "{}", line.text);
    let cited: Vec<&str> = line.parameters.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(cited, ["catalog.class_b_first_self_pay", "catalog.first_self_pay_round_at"]);
    let third = ", { code = \"B20\", class = \"b\", amount = \"0.03\" }";
    let settlement = check(&on_bill, &claim(third), &[("class_b_first_self_pay", "500.01")]);
    let shares: Vec<Fen> = settlement.lines.iter().map(|l| l.class_b_first_self_pay).collect();
    // Remainders .5, .5 and .6 of a fen; two fen left over go to the .6 and the first .5.
    assert_eq!(shares, [Fen(33_334), Fen(16_666), Fen(1)]);
    // Any other word is refused when the file loads.
    let error = onestop_policy::load_str("p.toml", &policy("first_self_pay_round_at = \"item\"\n"))
        .expect_err("refused");
    assert_eq!(error.code, onestop_policy::PolicyErrorCode::ValueInvalid, "{error}");
}

/// A region whose chronic outpatient care (门诊慢特病) differs by disease group.
const BY_DISEASE: &str = "[policy]\nregion = \"990500\"\nname = \"t\"\n\
    valid_from = \"2024-01-01\"\n[catalog]\nclass_b_first_self_pay = \"0%\"\n\
    [[diseases]]\nid = \"hypertension\"\nname = \"高血压\"\ncodes = [\"M03900\", \"I10.x00\"]\n\
    [[diseases]]\nid = \"cancer\"\nname = \"恶性肿瘤门诊放化疗\"\ncodes = [\"M00500\"]\n\
    [[tiers]]\nid = \"basic\"\nkind = \"basic_pool\"\n\
    [[tiers.rules]]\nwhen = { visit = \"chronic_outpatient\", disease = \"hypertension\" }\n\
    pool = \"hypertension\"\ndeductible = { amount = \"0\" }\nratio = \"60%\"\ncap = \"600\"\n\
    [[tiers.rules]]\nwhen = { visit = \"chronic_outpatient\", disease = \"cancer\" }\n\
    pool = \"cancer\"\ndeductible = { per = \"year\", amount = \"800\" }\nratio = \"80%\"\n\
    cap = \"100000\"\n";

fn disease_claim(disease: Option<&str>, amount: &str, ytd: &str) -> String {
    let disease = disease.map_or(String::new(), |code| format!("disease = \"{code}\"\n"));
    format!(
        "[bill]\ndate_of_service = \"2024-05-01\"\ntreatment_region = \"990500\"\n\
         visit = \"chronic_outpatient\"\nlevel = \"2\"\nuse_personal_account = false\n{disease}\
         lines = [{{ class = \"a\", amount = \"{amount}\" }}]\n\
         [person]\ninsured_region = \"990500\"\ncategory = \"in_service\"\nage = 50\n\
         [ytd]\nyear = 2024\n{ytd}"
    )
}

#[test]
fn rules_select_by_disease_group_each_with_its_own_pool_and_limit() {
    let book = book_of(&[("d.toml", BY_DISEASE)]);
    // 高血压: 500 × 60 % = 300, counted in its own pool.
    let settlement =
        check(&book, &disease_claim(Some("M03900"), "500", ""), &[("tier.basic", "300.00")]);
    let after = settlement.accumulators_after(&onestop_core::Accumulators::new(2024));
    let paid = |pool| after.get("basic", pool, onestop_core::accumulators::Counter::Paid);
    assert_eq!((paid("hypertension"), paid("cancer")), (Fen(30_000), Fen::ZERO));
    // The other code of the group, with 500 of its 600 a year paid: 1500 × 60 % = 900 → 100.
    let ytd = "[ytd.tiers.basic.hypertension]\npaid = \"500\"\n";
    check(&book, &disease_claim(Some("I10.x00"), "1500", ytd), &[("tier.basic", "100.00")]);
    // 恶性肿瘤: its own deductible and ratio, and the hypertension limit does not touch it:
    // (10000 − 800) × 80 % = 7360.
    let claim = disease_claim(Some("M00500"), "10000", ytd);
    check(&book, &claim, &[("tier.basic", "7360.00"), ("deductible", "800.00")]);
    // Codes are compared without regard to letter case.
    check(&book, &disease_claim(Some("i10.X00"), "1500", ytd), &[("tier.basic", "100.00")]);
    // A disease of no group, or none named: no rule applies and the fund pays nothing.
    for disease in [Some("E11.900"), None] {
        check(&book, &disease_claim(disease, "500", ""), &[("tier.basic", "0.00")]);
    }
    // The settlement names the disease and its group.
    let dto: ClaimDto = read_document(&disease_claim(Some("M03900"), "500", ""), Format::Toml)
        .expect("claim parses");
    let (claim, ytd) = dto.parse().expect("valid");
    let (settlement, insured, treatment) = book.split(&claim, &ytd).expect("settles");
    let shown =
        onestop_api::SettlementDto::from_core(&claim, insured, treatment, &ytd, &settlement);
    let group = (shown.disease_group.as_deref(), shown.disease_group_name.as_deref());
    assert_eq!(shown.disease.as_deref(), Some("M03900"));
    assert_eq!(group, (Some("hypertension"), Some("高血压")));
}

#[test]
fn disease_groups_are_checked_when_the_policy_is_loaded() {
    use onestop_policy::PolicyErrorCode as E;
    let cases = [
        // A group the file does not define.
        (
            BY_DISEASE.replace("disease = \"cancer\"", "disease = \"diabetes\""),
            E::ValueInvalid,
            "diabetes",
        ),
        // One code in two groups would let two rules apply to one bill.
        (BY_DISEASE.replace("[\"M00500\"]", "[\"M00500\", \"M03900\"]"), E::ValueInvalid, "M03900"),
        (BY_DISEASE.replace("[\"M00500\"]", "[\"M 005\"]"), E::ValueInvalid, "disease code"),
        (
            BY_DISEASE.replace("id = \"cancer\"", "id = \"hypertension\""),
            E::ValueInvalid,
            "another group",
        ),
        (BY_DISEASE.replace("id = \"cancer\"", "id = \"none\""), E::ValueInvalid, "no group"),
        (
            BY_DISEASE.replace("id = \"cancer\"", "id = \"Cancer\""),
            E::ValueInvalid,
            "disease group id",
        ),
        (
            BY_DISEASE.replace("[\"M00500\"]", "[\"M00500\", \"m00500\"]"),
            E::ValueInvalid,
            "listed twice in this group",
        ),
        // A rule for every chronic disease overlaps the cancer rule.
        (
            BY_DISEASE.replace(
                "disease = \"hypertension\"",
                "disease = [\"hypertension\", \"none\", \"cancer\"]",
            ),
            E::RulesOverlap,
            "",
        ),
    ];
    for (text, code, says) in cases {
        let error = onestop_policy::load_str("d.toml", &text).expect_err("refused");
        assert_eq!(error.code, code, "{error}");
        assert!(error.to_string().contains(says), "{error}");
    }
}

#[test]
fn year_to_date_counters_written_by_hand_are_completed_or_refused_when_they_disagree() {
    // Employee outpatient: 1500 a year, then 10000 at 50 % and the rest at 60 % above it. With
    // 6500 in scope and the 1500 met, 5000 was above the deductible (derived): the bill's 10000
    // sits from 5000 to 15000: 5000 × 50 % + 5000 × 60 % = 5500.
    let derived = "[ytd.tiers.basic.outpatient]\nin_scope = \"6500\"\ndeductible_met = \"1500\"\n";
    let claim = capped_claim("general_outpatient", "in_service", "10000", derived);
    check(&capped_book(), &claim, &[("tier.basic", "5500.00"), ("deductible", "0.00")]);
    // The same written out in full.
    let full = format!("{derived}eligible = \"5000\"\n");
    let claim = capped_claim("general_outpatient", "in_service", "10000", &full);
    check(&capped_book(), &claim, &[("tier.basic", "5500.00")]);
    // Or as in scope and above the deductible (the 1500 met is derived).
    let above = "[ytd.tiers.basic.outpatient]\nin_scope = \"6500\"\neligible = \"5000\"\n";
    let claim = capped_claim("general_outpatient", "in_service", "10000", above);
    check(&capped_book(), &claim, &[("tier.basic", "5500.00"), ("deductible", "0.00")]);
    // Counters that disagree are refused, naming the counter.
    for (ytd, field) in [
        (format!("{derived}eligible = \"100\"\n"), "eligible"),
        (
            "[ytd.tiers.basic.outpatient]\nin_scope = \"1000\"\ndeductible_met = \"1500\"\n"
                .to_owned(),
            "deductible_met",
        ),
    ] {
        let claim = capped_claim("general_outpatient", "in_service", "10000", &ytd);
        let dto: ClaimDto = read_document(&claim, Format::Toml).expect("claim parses");
        let rejection = dto.parse().expect_err("refused");
        assert_eq!(rejection.code, onestop_core::RejectionCode::AccumulatorInvalid);
        let expected = format!("ytd.tiers.basic.outpatient.{field}");
        assert_eq!(rejection.field.as_deref(), Some(expected.as_str()), "{}", rejection.message);
    }
}

#[test]
fn an_adjustment_can_lift_a_rules_cap() {
    // Assistance pays 70 % up to 10000 a year; for people in extreme poverty (特困人员) no limit.
    let policy = "[policy]\nregion = \"990600\"\nname = \"t\"\nvalid_from = \"2024-01-01\"\n\
        [catalog]\nclass_b_first_self_pay = \"0%\"\n\
        [[tiers]]\nid = \"assistance\"\nkind = \"medical_assistance\"\n\
        base = { components = \"in_scope\" }\n\
        [[tiers.rules]]\nthreshold = \"0\"\nratio = \"70%\"\ncap = \"10000\"\n\
        [[tiers.rules.adjust]]\nwhen = { assistance = \"extreme_poverty\" }\ncap = \"none\"\n";
    let book = book_of(&[("a.toml", policy)]);
    let claim = |assistance: &str| {
        let lines = "{ class = \"a\", amount = \"100000\" }";
        admission(["990600", "990600"], "working_age", "", lines, assistance)
    };
    // 100000 × 70 % = 70000: capped at 10000, or not at all.
    check(
        &book,
        &claim("assistance = \"subsistence_allowance\"\n"),
        &[("tier.assistance", "10000.00")],
    );
    check(&book, &claim("assistance = \"extreme_poverty\"\n"), &[("tier.assistance", "70000.00")]);
}

/// An employee scheme whose basic fund pays from the deductible up to 150,000 of the year's
/// in-scope cost (封顶线 written as a cost), and a large-amount layer on what lies above it.
const COST_CEILING: &str = "[policy]\nregion = \"990600\"\nname = \"t\"\n\
    valid_from = \"2024-01-01\"\n[catalog]\nclass_b_first_self_pay = \"0%\"\n\
    [[tiers]]\nid = \"basic\"\nkind = \"basic_pool\"\n\
    [[tiers.rules]]\nwhen = { visit = \"inpatient\" }\n\
    deductible = { per = \"admission\", by_admission = [\"1000\", \"500\"] }\n\
    ratio = \"85%\"\nceiling = \"150000\"\n\
    [[tiers]]\nid = \"large_amount\"\nkind = \"large_amount\"\n\
    base = { components = \"above_cap\" }\n[[tiers.rules]]\nratio = \"90%\"\n";

#[test]
fn a_cost_ceiling_ends_the_basic_funds_bands_and_the_large_amount_layer_pays_above_it() {
    let book = book_of(&[("c.toml", COST_CEILING)]);
    let claim = |amount: &str, admission: u8, ytd: &str| {
        format!(
            "[bill]\ndate_of_service = \"2024-10-01\"\ntreatment_region = \"990600\"\n\
             visit = \"inpatient\"\nlevel = \"3\"\nadmission_number = {admission}\n\
             use_personal_account = false\nlines = [{{ class = \"a\", amount = \"{amount}\" }}]\n\
             [person]\ninsured_region = \"990600\"\ncategory = \"in_service\"\nage = 46\n{ytd}"
        )
    };
    // Below the ceiling it changes nothing: (20000 − 1000) × 85 % = 16150.
    check(
        &book,
        &claim("20000", 1, ""),
        &[("tier.basic", "16150.00"), ("tier.large_amount", "0.00")],
    );
    // A second admission, 100,000 in scope earlier: positions 100,500–180,000. The fund pays
    // 85 % of 100,500–150,000 = 42,075; 30,000 lies above the ceiling: 90 % = 27,000.
    let ytd = "[ytd]\nyear = 2024\nadmissions = 1\n[ytd.tiers.basic.inpatient]\n\
        deductible_met = \"1000\"\nin_scope = \"100000\"\npaid = \"84150\"\n";
    let settlement = check(
        &book,
        &claim("80000", 2, ytd),
        &[
            ("tier.basic", "42075.00"),
            ("component.above_cap", "3000.00"),
            ("tier.large_amount", "27000.00"),
            ("cash", "10925.00"),
        ],
    );
    let ceiling = settlement.steps.iter().find(|s| s.kind == StepKind::CeilingReached);
    let ceiling = ceiling.expect("the ceiling is explained");
    assert_eq!((ceiling.amount, ceiling.base), (Fen(3_000_000), Fen(15_000_000)));
    // Wholly above it: the fund pays nothing, the layer 90 % of everything but the deductible.
    let ytd = ytd.replace("in_scope = \"100000\"", "in_scope = \"160000\"");
    check(
        &book,
        &claim("10000", 2, &ytd),
        &[("tier.basic", "0.00"), ("tier.large_amount", "8550.00")],
    );
}

#[test]
fn a_rule_can_select_the_kind_of_filing_a_bill_is_settled_under() {
    // 异地就医: a referral pays the insured region's level-3 deductible (1000) and loses 10
    // points; a long-term resident pays the deductible of the level treated at (500 at level 2)
    // at the full ratio; care without a filing is cut 20 points.
    let insured = "[policy]\nregion = \"990700\"\nname = \"t\"\nvalid_from = \"2024-01-01\"\n\
        [catalog]\nclass_b_first_self_pay = \"0%\"\n\
        [cross_region]\ncuts = { referral = 10 }\nunfiled = 20\n\
        [[tiers]]\nid = \"basic\"\nkind = \"basic_pool\"\n\
        [[tiers.rules]]\nwhen = { visit = \"inpatient\", elsewhere = false }\n\
        deductible = { per = \"admission\", amount = \"800\" }\nratio = \"80%\"\n\
        [[tiers.rules]]\nwhen = { visit = \"inpatient\", elsewhere = true, filing = [\"referral\", \
        \"none\"] }\ndeductible = { per = \"admission\", amount = \"1000\" }\nratio = \"80%\"\n\
        [[tiers.rules]]\nwhen = { visit = \"inpatient\", elsewhere = true, filing = \
        [\"long_term_resident\", \"resettled_retiree\", \"emergency\", \"other_temporary\"] }\n\
        deductible = { per = \"admission\", amount = \"500\" }\nratio = \"80%\"\n";
    let book = book_of(&[("insured.toml", insured), ("t.toml", &treatment_policy("990800"))]);
    let claim = |filing: &str| {
        let lines = "{ class = \"a\", amount = \"20000\" }";
        admission(["990800", "990700"], "in_service", filing, lines, "")
    };
    // Referral: (20000 − 1000) × (80 % − 10) = 13300.
    let referral = claim("filing = \"referral\"\n");
    check(&book, &referral, &[("deductible", "1000.00"), ("tier.basic", "13300.00")]);
    // Long-term resident: (20000 − 500) × 80 % = 15600.
    let resident = claim("filing = \"long_term_resident\"\n");
    check(&book, &resident, &[("deductible", "500.00"), ("tier.basic", "15600.00")]);
    // No filing: (20000 − 1000) × (80 % − 20) = 11400.
    check(&book, &claim(""), &[("deductible", "1000.00"), ("tier.basic", "11400.00")]);
    // Rules whose filings overlap are refused.
    let overlapping = insured.replace("\"referral\", \"none\"", "\"referral\", \"emergency\"");
    let error = onestop_policy::load_str("o.toml", &overlapping).expect_err("overlap");
    assert_eq!(error.code, onestop_policy::PolicyErrorCode::RulesOverlap, "{error}");
}
