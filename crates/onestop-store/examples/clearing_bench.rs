//! Benchmark of monthly clearing (清算) over synthetic settlements.
//!
//!     cargo run --release -p onestop-store --example clearing_bench -- [settlements] [--store]
//!
//! Generates `settlements` (default 10,000,000) synthetic settlements of one month across 31
//! regions (one in ten treated outside the insured region, one in fifty a reversal) and times:
//! 1. the generator alone (the baseline), then the generator feeding the pure clearing sums;
//! 2. with `--store`, the same settlements bulk-loaded into a SQLite database through the
//!    service's schema, then every region's statement computed through the store, as
//!    `onestop clearing` does. The load is not timed as part of clearing.

use std::time::Instant;

use onestop_clearing::{Clearing, Entry, Month};
use onestop_core::{Date, Fen, Region, VisitType};

const REGIONS: u32 = 31;

/// splitmix64: a fast deterministic generator, so every run clears the same month.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn region(index: u64) -> Region {
    Region(110_000 + u32::try_from(index % u64::from(REGIONS)).unwrap_or(0) * 10_000)
}

/// The `n`th synthetic settlement of June 2024.
fn synthetic(random: &mut Random) -> Entry {
    let insured = region(random.below(u64::from(REGIONS)));
    let treatment =
        if random.below(10) == 0 { region(random.below(u64::from(REGIONS))) } else { insured };
    let inpatient = random.below(5) == 0;
    let cost =
        if inpatient { 300_000 + random.below(3_000_000) } else { 2_000 + random.below(50_000) };
    let cost = i64::try_from(cost).unwrap_or(0);
    let fund = cost * i64::try_from(50 + random.below(40)).unwrap_or(0) / 100;
    let account = (cost - fund) / 4;
    let reversal = random.below(50) == 0;
    let sign = if reversal { -1 } else { 1 };
    let day = i8::try_from(1 + random.below(30)).unwrap_or(1);
    Entry {
        insured,
        treatment,
        visit: if inpatient { VisitType::Inpatient } else { VisitType::GeneralOutpatient },
        booked_on: Date::constant(2024, 6, 1).with().day(day).build().unwrap_or(Date::MIN),
        reversal,
        medical_cost: Fen(sign * cost),
        fund: Fen(sign * fund),
        personal_account: Fen(sign * account),
        cash: Fen(sign * (cost - fund - account)),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count: u64 =
        args.iter().find_map(|a| a.replace('_', "").parse().ok()).unwrap_or(10_000_000);
    let month = Month::parse("2024-06").expect("month");

    let started = Instant::now();
    let mut random = Random(7);
    let mut check = 0i64;
    for _ in 0..count {
        check = check.wrapping_add(synthetic(&mut random).fund.0);
    }
    let generate = started.elapsed();

    let started = Instant::now();
    let mut random = Random(7);
    let mut clearing = Clearing::new(month);
    for _ in 0..count {
        clearing.add(&synthetic(&mut random)).expect("June");
    }
    let statements: Vec<_> =
        clearing.regions().iter().map(|r| clearing.statement(*r, None)).collect();
    let pure = started.elapsed();
    assert_eq!(clearing.total().fund.0, check, "every fen generated is cleared");
    let nets: i64 = statements.iter().map(|s| s.net_total.0).sum();
    assert_eq!(nets, 0, "the nets of all regions cancel out");
    println!(
        "settlements: {count}, regions: {}, pairs: {}",
        statements.len(),
        clearing.pairs().count()
    );
    println!("generator alone (baseline):  {:>8.2} s", generate.as_secs_f64());
    println!(
        "generator + clearing (pure):  {:>8.2} s  ({:.2}× the baseline)",
        pure.as_secs_f64(),
        pure.as_secs_f64() / generate.as_secs_f64()
    );
    if args.iter().any(|a| a == "--store") {
        store_run(count, month, &clearing);
    }
}

fn store_run(count: u64, month: Month, expected: &Clearing) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("clearing.sqlite");
    let url = format!("sqlite:{}", path.display());
    drop(onestop_store::Store::open(&url).expect("schema"));
    let started = Instant::now();
    load(&path, count);
    println!(
        "bulk load into SQLite:        {:>8.2} s (not part of clearing)",
        started.elapsed().as_secs_f64()
    );
    let store = onestop_store::Store::open(&url).expect("store");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let started = Instant::now();
    let statements = runtime
        .block_on(store.read(move |tx| onestop_store::clearing::statements(tx, month)))
        .expect("clearing");
    let elapsed = started.elapsed();
    for statement in &statements {
        assert_eq!(*statement, expected.statement(statement.region, None), "store = pure");
    }
    println!(
        "clearing through the store:   {:>8.2} s  ({:.0} settlements/s)",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64()
    );
}

/// Writes the synthetic settlements into the settlements table, as the service would have.
fn load(path: &std::path::Path, count: u64) {
    let mut conn = rusqlite::Connection::open(path).expect("open");
    conn.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;").expect("pragmas");
    let tx = conn.transaction().expect("tx");
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO settlements (region, person_id, settlement_id, visit_id, \
                 institution_id, treatment_region, visit_type, reverses, date_of_service, \
                 booked_on, booked_at, total, fund_total, personal_account, cash, result, \
                 postings, counters) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?9, ?10, \
                 ?11, ?12, ?13, '{}', '[]', '[]')",
            )
            .expect("prepare");
        let mut random = Random(7);
        for n in 0..count {
            let e = synthetic(&mut random);
            let person = format!("P{n}");
            let id = format!("S-{}-{person}-1", e.insured);
            let reverses = e.reversal.then(|| format!("S-{}-{person}-0", e.insured));
            let day = e.booked_on.to_string();
            insert
                .execute(rusqlite::params![
                    e.insured.to_string(),
                    person,
                    id,
                    "V",
                    "H",
                    e.treatment.to_string(),
                    e.visit.code(),
                    reverses,
                    day,
                    e.medical_cost.0,
                    e.fund.0,
                    e.personal_account.0,
                    e.cash.0
                ])
                .expect("insert");
        }
    }
    tx.commit().expect("commit");
}
