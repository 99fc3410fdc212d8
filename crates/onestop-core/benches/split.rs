//! The split on the bundled Beijing policy: a 10-line outpatient bill and a 300-line inpatient
//! bill that runs through every tier. Run: `cargo bench -p onestop-core --bench split`.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use onestop_core::accumulators::{AccumulatorKey, Accumulators, Counter};
use onestop_core::{
    AssistanceCategory, Bill, CatalogClass, Category, Claim, Date, Fen, HospitalLevel, Line,
    Person, Quantity, Region, Rounding, Settlement, UnitPrice, VisitType, split_into,
};

const BEIJING: Region = Region(110_000);

fn lines(count: usize) -> Vec<Line> {
    (0..count)
        .map(|i| {
            let class =
                [CatalogClass::A, CatalogClass::B, CatalogClass::A, CatalogClass::Outside][i % 4];
            let quantity = Quantity(((i % 5) as i64 + 1) * Quantity::SCALE);
            let unit_price = UnitPrice(((i * 7919) % 40_000 + 500) as i64 * 100);
            let price_limit = (i % 9 == 0).then_some(UnitPrice(unit_price.0 * 9 / 10));
            Line {
                code: format!("X{i:08}"),
                name: format!("item {i}"),
                class,
                quantity,
                unit_price,
                amount: unit_price.extend(quantity, Rounding::HalfUp),
                price_limit,
            }
        })
        .collect()
}

fn outpatient() -> (Claim, Accumulators) {
    let bill = Bill {
        filing: None,
        disease: None,
        days: None,
        date_of_service: Date::constant(2024, 5, 20),
        treatment_region: BEIJING,
        visit: VisitType::GeneralOutpatient,
        level: HospitalLevel::Level2,
        admission_number: None,
        use_personal_account: true,
        lines: lines(10),
    };
    let person = Person {
        insured_region: BEIJING,
        category: Category::InService,
        age: 41,
        assistance: None,
        needy: false,
        civil_servant: false,
        enterprise_supplementary: false,
        account_balance: Fen(150_000),
    };
    let mut ytd = Accumulators::new(2024);
    let key = |counter| AccumulatorKey {
        tier: Arc::from("basic"),
        pool: Arc::from("outpatient"),
        counter,
    };
    ytd.add(&key(Counter::DeductibleMet), Fen(90_000));
    ytd.add(&key(Counter::InScope), Fen(90_000));
    (Claim { bill, person }, ytd)
}

fn inpatient() -> (Claim, Accumulators) {
    let bill = Bill {
        filing: None,
        disease: None,
        days: None,
        date_of_service: Date::constant(2024, 9, 2),
        treatment_region: BEIJING,
        visit: VisitType::Inpatient,
        level: HospitalLevel::Level3,
        admission_number: Some(2),
        use_personal_account: true,
        lines: lines(300),
    };
    let person = Person {
        insured_region: BEIJING,
        category: Category::Elderly,
        age: 72,
        assistance: Some(AssistanceCategory::LowIncomeEdge),
        needy: false,
        civil_servant: false,
        enterprise_supplementary: false,
        account_balance: Fen::ZERO,
    };
    let mut ytd = Accumulators::new(2024);
    ytd.admissions = 1;
    let key = |tier: &str, pool: &str, counter| AccumulatorKey {
        tier: Arc::from(tier),
        pool: Arc::from(pool),
        counter,
    };
    ytd.add(&key("basic", "inpatient", Counter::InScope), Fen(3_000_000));
    ytd.add(&key("basic", "inpatient", Counter::Paid), Fen(2_200_000));
    ytd.add(&key("critical_illness", "all", Counter::Base), Fen(700_000));
    (Claim { bill, person }, ytd)
}

fn bench(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let (book, _) = onestop_policy::load_dir(&dir).expect("bundled policies");
    let mut group = c.benchmark_group("split");
    for (name, (claim, ytd)) in
        [("outpatient_10_lines", outpatient()), ("inpatient_300_lines", inpatient())]
    {
        let policy = book.at(BEIJING, claim.bill.date_of_service).expect("policy").clone();
        let mut out = Settlement::default();
        split_into(&claim, &policy, &policy, &ytd, &mut out).expect("settles");
        assert!(out.fund_total() > Fen::ZERO);
        group.throughput(Throughput::Elements(1));
        group.bench_function(name, |b| {
            b.iter(|| split_into(black_box(&claim), &policy, &policy, black_box(&ytd), &mut out))
        });
    }
    let (claim, ytd) = outpatient();
    let policy = book.at(BEIJING, claim.bill.date_of_service).expect("policy").clone();
    group.bench_function("outpatient_10_lines_fresh_result", |b| {
        b.iter(|| onestop_core::split(black_box(&claim), &policy, &policy, black_box(&ytd)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
