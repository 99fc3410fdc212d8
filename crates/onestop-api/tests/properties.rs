//! Properties of the split that hold for every claim: conservation to the fen, caps, fund
//! payments that never fall when a line's amount rises, determinism, and accumulator deltas
//! that a reversal undoes exactly. Run over the bundled Beijing policy and a synthetic policy
//! whose small caps bind.

use std::path::Path;
use std::sync::Arc;

use onestop_api::{SettlementDto, settlement_json};
use onestop_core::accumulators::{AccumulatorKey, Accumulators, Counter};
use onestop_core::policy::TierKind;
use onestop_core::{
    AssistanceCategory, Bill, CatalogClass, Category, Claim, Date, Fen, HospitalLevel, Line,
    Person, PolicyBook, Quantity, Region, Settlement, StepKind, StepScope, UnitPrice, VisitType,
};
use proptest::prelude::*;

fn load(dir: &str) -> PolicyBook {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    onestop_policy::load_dir(&path).unwrap_or_else(|e| panic!("{e}")).0
}

fn books() -> &'static [(PolicyBook, Region); 2] {
    static BOOKS: std::sync::OnceLock<[(PolicyBook, Region); 2]> = std::sync::OnceLock::new();
    BOOKS.get_or_init(|| {
        [
            (load("tests/fixtures/capped"), Region(990_100)),
            (load("../../policies"), Region(110_000)),
        ]
    })
}

fn line_strategy() -> impl Strategy<Value = Line> {
    (0..3usize, 0..3usize, 1..4i64, 1..5_000_000i64).prop_map(
        |(class, code, quantity, price_fen)| {
            let class = [CatalogClass::A, CatalogClass::B, CatalogClass::Outside][class];
            let code = ["X", "LIMITED", "B20"][code].to_owned();
            let quantity = Quantity(quantity * Quantity::SCALE);
            let unit_price = UnitPrice::from_fen(Fen(price_fen));
            let amount = unit_price.extend(quantity, onestop_core::Rounding::HalfUp);
            Line {
                name: code.clone(),
                code,
                class,
                quantity,
                unit_price,
                amount,
                price_limit: None,
            }
        },
    )
}

fn claim_strategy() -> impl Strategy<Value = (Claim, usize)> {
    let visit = prop::sample::select(vec![
        VisitType::GeneralOutpatient,
        VisitType::ChronicOutpatient,
        VisitType::Inpatient,
        VisitType::LtcInstitutional,
    ]);
    let level = prop::sample::select(HospitalLevel::ALL.to_vec());
    let category = prop::sample::select(Category::ALL.to_vec());
    let assistance = prop::option::of(prop::sample::select(AssistanceCategory::ALL.to_vec()));
    (
        (visit, level, 1..5u16, prop::collection::vec(line_strategy(), 1..12), 1..32u16),
        (category, 0..100u8, assistance, any::<(bool, bool, bool, bool)>(), 0..500_000i64),
        0..2usize,
    )
        .prop_map(|(bill, person, which)| {
            let (visit, level, admission, lines, days) = bill;
            let (category, age, assistance, flags, balance) = person;
            let region = books()[which].1;
            let bill = Bill {
                filing: None,
                disease: None,
                days: Some(days),
                date_of_service: Date::constant(2024, 7, 1),
                treatment_region: region,
                visit,
                level,
                admission_number: (visit == VisitType::Inpatient).then_some(admission),
                use_personal_account: flags.3,
                lines,
            };
            let person = Person {
                insured_region: region,
                category,
                age,
                assistance,
                needy: flags.0,
                civil_servant: flags.1,
                enterprise_supplementary: flags.2,
                account_balance: Fen(balance),
            };
            (Claim { bill, person }, which)
        })
}

/// Year-to-date counters already part-way to the caps.
fn ytd_strategy() -> impl Strategy<Value = Accumulators> {
    (0..5u16, 0..3_000_000i64, 0..500_000i64, 0..2_000_000i64).prop_map(
        |(admissions, paid, ci, base)| {
            let mut ytd = Accumulators::new(2024);
            ytd.admissions = admissions;
            let key = |tier: &str, pool: &str, counter| AccumulatorKey {
                tier: Arc::from(tier),
                pool: Arc::from(pool),
                counter,
            };
            ytd.add(&key("basic", "inpatient", Counter::Paid), Fen(paid));
            ytd.add(&key("basic", "inpatient", Counter::InScope), Fen(paid * 2));
            ytd.add(&key("basic", "outpatient", Counter::DeductibleMet), Fen(ci % 150_000));
            ytd.add(&key("basic", "outpatient", Counter::Paid), Fen(ci % 800_000));
            ytd.add(&key("critical_illness", "all", Counter::Base), Fen(base));
            ytd.add(&key("critical_illness", "all", Counter::Paid), Fen(ci));
            ytd.add(&key("assistance", "all", Counter::Paid), Fen(ci / 2));
            ytd
        },
    )
}

fn policy_of(claim: &Claim, which: usize) -> &'static onestop_core::policy::Policy {
    let book = &books()[which].0;
    book.at(claim.person.insured_region, claim.bill.date_of_service).expect("policy")
}

fn split(claim: &Claim, which: usize, ytd: &Accumulators) -> Settlement {
    books()[which].0.split(claim, ytd).expect("valid claims settle").0
}

fn conserves(claim: &Claim, settlement: &Settlement) {
    let total: Fen = claim.bill.lines.iter().map(|l| l.amount).sum();
    assert_eq!(settlement.totals.total, total);
    assert_eq!(settlement.fund_total() + settlement.personal_account + settlement.cash, total);
    for (line, split) in claim.bill.lines.iter().zip(&settlement.lines) {
        let parts = split.outside_catalog
            + split.over_limit
            + split.class_b_first_self_pay
            + split.in_scope;
        assert_eq!(parts, line.amount);
    }
    for payment in &settlement.payments {
        assert!(payment.amount >= Fen::ZERO);
    }
    assert!(settlement.personal_account <= claim.person.account_balance);
    assert!(settlement.cash >= Fen::ZERO);
    // A coinsurance tier's bands, as the explanation shows them, add up to what it pays, to the
    // fen, however it rounds (per band, or once for the tier). (A layer's bands are its base's
    // shares before what limits the layer, each limit a step of its own.)
    let coinsurance = |kind: TierKind| matches!(kind, TierKind::BasicPool | TierKind::LongTermCare);
    for payment in settlement.payments.iter().filter(|p| coinsurance(p.kind)) {
        let scope = StepScope::Tier(u16::try_from(payment.tier).expect("a tier index"));
        let bands =
            settlement.steps.iter().filter(|s| s.scope == scope && s.kind == StepKind::Band);
        let shown: Fen = bands.map(|s| s.amount).sum();
        assert_eq!(shown, payment.amount, "the bands of {} as shown", payment.id);
    }
}

/// No tier's year-to-date payment exceeds the largest cap its rule allows.
fn within_caps(which: usize, claim: &Claim, ytd: &Accumulators, settlement: &Settlement) {
    let policy = books()[which]
        .0
        .at(claim.person.insured_region, claim.bill.date_of_service)
        .expect("policy");
    for payment in &settlement.payments {
        let Some(rule_source) = payment.rule else { continue };
        let tier = &policy.tiers[payment.tier];
        let rule = tier.rules.iter().find(|r| r.source == rule_source).expect("rule");
        if let Some(cap) = rule.cap_per_visit {
            assert!(
                payment.amount <= cap.value,
                "{} paid {} on one visit",
                tier.id,
                payment.amount
            );
        }
        if let Some(cap) = rule.cap_per_day {
            let days = i64::from(claim.bill.days.expect("every generated bill has days"));
            let most = Fen(cap.value.0 * days);
            assert!(payment.amount <= most, "{} paid {} in {days} days", tier.id, payment.amount);
        }
        let after = settlement.accumulators_after(ytd);
        if let Some(cap) = rule.pool_cap {
            let before = ytd.get(&tier.id, &rule.pool_cap_pool, Counter::Paid);
            let now = after.get(&tier.id, &rule.pool_cap_pool, Counter::Paid);
            assert_eq!(now - before, payment.amount, "counted in the pool cap's pool too");
            assert!(now <= cap.value.max(before), "{} paid {now} in its pool", tier.id);
        }
        let caps = rule.cap.iter().chain(rule.adjustments.iter().filter_map(|a| a.cap.as_ref()));
        let Some(cap) = caps.map(|c| c.value).max() else { continue };
        let before = ytd.get(&tier.id, &rule.cap_pool, Counter::Paid);
        let now = after.get(&tier.id, &rule.cap_pool, Counter::Paid);
        assert_eq!(now - before, payment.amount);
        assert!(now <= cap.max(before), "{} paid {now} with a cap of {cap}", tier.id);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn conservation_caps_and_reversal((claim, which) in claim_strategy(), ytd in ytd_strategy()) {
        let settlement = split(&claim, which, &ytd);
        conserves(&claim, &settlement);
        within_caps(which, &claim, &ytd, &settlement);
        let mut reversed = settlement.accumulators_after(&ytd);
        reversed.apply(&settlement.deltas, -1);
        prop_assert_eq!(reversed, ytd);
    }

    #[test]
    fn fund_payments_never_fall_when_a_line_rises(
        (claim, which) in claim_strategy(),
        ytd in ytd_strategy(),
        index in any::<prop::sample::Index>(),
        extra in 1..2_000_000i64,
    ) {
        let before = split(&claim, which, &ytd);
        let mut raised = claim.clone();
        // The quantity stays: a price limit allows the same amount before and after.
        raised.bill.lines[index.index(claim.bill.lines.len())].amount += Fen(extra);
        let after = split(&raised, which, &ytd);
        prop_assert!(after.fund_total() >= before.fund_total());
        // Each tier's payment rises too, up to the first layer whose base leaves out an earlier
        // layer's payment (the synthetic policy's critical illness ignores the civil-servant
        // subsidy): from there on, a tier may pay less when an earlier one pays more, since it
        // can only pay what the person still bears.
        let policy = policy_of(&claim, which);
        let partial = policy.tiers.iter().enumerate().position(|(index, tier)| {
            let layers = (0..index).filter(|i| !policy.tiers[*i].kind.is_coinsurance());
            let layers_before = layers.count();
            !tier.kind.is_coinsurance() && tier.base.after.len() < layers_before
        });
        let checked = partial.unwrap_or(before.payments.len());
        for (old, new) in before.payments.iter().zip(&after.payments).take(checked) {
            let (id, old, new) = (&old.id, old.amount, new.amount);
            prop_assert!(new >= old, "{id} fell from {old} to {new}");
        }
    }

    #[test]
    fn the_same_input_gives_the_same_output(
        (claim, which) in claim_strategy(),
        ytd in ytd_strategy(),
    ) {
        let first = split(&claim, which, &ytd);
        let second = split(&claim, which, &ytd);
        prop_assert_eq!(&first, &second);
        let policy = policy_of(&claim, which);
        let json = |s: &Settlement| {
            let dto = SettlementDto::from_core(&claim, policy, policy, &ytd, s);
            serde_json::to_string(&dto).expect("json")
        };
        prop_assert_eq!(json(&first), json(&second));
        // What the service writes straight from the settlement is the DTO's JSON, to the byte.
        prop_assert_eq!(settlement_json(&claim, policy, policy, &ytd, &first), json(&first));
    }
}
