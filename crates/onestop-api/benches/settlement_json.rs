//! A settlement's wire JSON (with its explanation), as the service builds one for every settle:
//! through the `SettlementDto` (owned strings, then serialized) against written straight from
//! the engine's values (`settlement_json`), in the same run. Bills shaped as the load
//! generator's: an 8-line outpatient visit and a 40-line admission on the bundled Beijing
//! policy. Run: `cargo bench -p onestop-api --bench settlement_json`.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use onestop_api::{ClaimDto, SettlementDto, settlement_json};
use serde_json::json;

fn claim(visit: &str, lines: usize) -> ClaimDto {
    let lines: Vec<_> = (0..lines)
        .map(|i| {
            let class = ["a", "b", "a", "outside"][i % 4];
            let (quantity, price) = (i % 3 + 1, (i * 7919) % 90_000 + 500);
            let yuan = |fen: usize| format!("{}.{:02}", fen / 100, fen % 100);
            json!({
                "code": format!("X{i:08}"),
                "name": format!("检查项目 item {i}"),
                "class": class,
                "quantity": quantity.to_string(),
                "unit_price": yuan(price),
                "amount": yuan(price * quantity),
            })
        })
        .collect();
    let admission = (visit == "inpatient").then_some("1");
    serde_json::from_value(json!({
        "bill": {
            "date_of_service": "2024-05-20", "treatment_region": "110000", "visit": visit,
            "level": "2", "admission_number": admission, "lines": lines,
        },
        "person": {
            "insured_region": "110000", "category": "retired", "age": "68",
            "account_balance": "1500.00",
        },
        "ytd": { "tiers": { "basic": { "outpatient": { "deductible_met": "900.00" } } } },
    }))
    .expect("a claim")
}

fn bench(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let (book, _) = onestop_policy::load_dir(&dir).expect("bundled policies");
    let mut group = c.benchmark_group("settlement_json");
    group.throughput(Throughput::Elements(1));
    for (name, dto) in [
        ("outpatient_8_lines", claim("general_outpatient", 8)),
        ("inpatient_40_lines", claim("inpatient", 40)),
    ] {
        let (claim, ytd) = dto.parse().expect("parses");
        let (settlement, insured, treatment) = book.split(&claim, &ytd).expect("settles");
        let direct = settlement_json(&claim, insured, treatment, &ytd, &settlement);
        let through_dto = serde_json::to_string(&SettlementDto::from_core(
            &claim,
            insured,
            treatment,
            &ytd,
            &settlement,
        ))
        .expect("serializes");
        assert_eq!(direct, through_dto, "both ways give the same bytes");
        group.bench_function(format!("{name}/through_dto"), |b| {
            b.iter(|| {
                let dto = SettlementDto::from_core(
                    black_box(&claim),
                    insured,
                    treatment,
                    &ytd,
                    black_box(&settlement),
                );
                serde_json::to_string(&dto).expect("serializes")
            })
        });
        group.bench_function(format!("{name}/direct"), |b| {
            b.iter(|| {
                settlement_json(black_box(&claim), insured, treatment, &ytd, black_box(&settlement))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
