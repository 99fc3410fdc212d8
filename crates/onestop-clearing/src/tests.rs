//! Hand-computed clearing and statistics.

use onestop_core::{Date, Fen, Region, VisitType};

use crate::{Clearing, Entry, Month, Statistics, payout_ratio, statement_csv};

const BEIJING: Region = Region(110_000);
const LANGFANG: Region = Region(131_000);
const TIANJIN: Region = Region(120_000);

fn yuan(text: &str) -> Fen {
    Fen::parse_yuan(text).expect("yuan")
}

/// A settlement of `cost` of which `fund` and `account` were paid by the insured region.
fn entry(insured: Region, treatment: Region, day: &str, amounts: [&str; 3]) -> Entry {
    let [fund, account, cost] = amounts.map(yuan);
    Entry {
        insured,
        treatment,
        visit: VisitType::Inpatient,
        booked_on: day.parse::<Date>().expect("date"),
        reversal: false,
        medical_cost: cost,
        fund,
        personal_account: account,
        cash: cost - fund - account,
    }
}

fn reversal(of: Entry, day: &str) -> Entry {
    Entry {
        booked_on: day.parse::<Date>().expect("date"),
        reversal: true,
        medical_cost: -of.medical_cost,
        fund: -of.fund,
        personal_account: -of.personal_account,
        cash: -of.cash,
        ..of
    }
}

#[test]
fn months_parse_and_step() {
    let month = Month::parse("2024-12").expect("month");
    assert_eq!((month.to_string(), month.next().to_string()), ("2024-12".into(), "2025-01".into()));
    assert_eq!(month.first_day(), Date::constant(2024, 12, 1));
    for bad in ["2024-13", "2024-1", "24-01", "2024/01", "2024-00", ""] {
        assert_eq!(Month::parse(bad), None, "{bad}");
    }
}

#[test]
fn each_region_owes_what_its_people_were_paid_elsewhere_netted_per_pair() {
    let june = Month::parse("2024-06").expect("month");
    let mut clearing = Clearing::new(june);
    let langfang_in_beijing = entry(LANGFANG, BEIJING, "2024-06-03", ["800", "50", "1000"]);
    let cancelled_in_may = entry(LANGFANG, BEIJING, "2024-05-30", ["300", "0", "400"]);
    let entries = [
        langfang_in_beijing,
        entry(LANGFANG, BEIJING, "2024-06-20", ["1200", "0", "2000"]),
        entry(BEIJING, LANGFANG, "2024-06-11", ["500", "100", "700"]),
        entry(BEIJING, BEIJING, "2024-06-12", ["9000", "0", "10000"]),
        entry(TIANJIN, LANGFANG, "2024-06-30", ["70", "0", "100"]),
        // A May settlement cancelled in June counts in June, negative.
        reversal(cancelled_in_may, "2024-06-02"),
    ];
    for e in &entries {
        clearing.add(e).expect("in June");
    }
    let outside = clearing.add(&cancelled_in_may).expect_err("May is not June");
    assert_eq!(outside.to_string(), "an entry booked on 2024-05-30 is not in month 2024-06");

    let langfang = clearing.statement(LANGFANG, Some(yuan("10000")));
    // Langfang owes Beijing 850 + 1200 − 300 = 1750 and is owed 600 by Beijing, 70 by Tianjin.
    let lines: Vec<_> =
        langfang.counterparts.iter().map(|l| (l.counterpart, l.net.to_string())).collect();
    assert_eq!(lines, [(BEIJING, "-1150.00".to_owned()), (TIANJIN, "70.00".to_owned())]);
    assert_eq!(langfang.counterparts[0].payable.reversals, 1);
    assert_eq!(langfang.payable_total, yuan("1750"));
    assert_eq!(langfang.receivable_total, yuan("670"));
    assert_eq!(langfang.closing_balance, yuan("8920"));
    assert_eq!(langfang.top_up_required, Fen::ZERO);

    let beijing = clearing.statement(BEIJING, None);
    assert_eq!((beijing.net_total, beijing.local.fund), (yuan("1150"), yuan("9000")));
    assert!(!beijing.opening_balance_set);
    let tianjin = clearing.statement(TIANJIN, Some(yuan("50")));
    assert_eq!(tianjin.top_up_required, yuan("20"), "50 − 70 leaves 20 to pay in");

    // Every fen is someone's: the nets sum to zero, and the statements add up to the month.
    let regions = clearing.regions();
    let nets: Fen = regions.iter().map(|r| clearing.statement(*r, None).net_total).sum();
    assert_eq!(nets, Fen::ZERO);
    let paid: Fen = regions
        .iter()
        .map(|r| {
            let s = clearing.statement(*r, None);
            s.payable_total + s.local.payable()
        })
        .sum();
    assert_eq!(paid, clearing.total().payable());
}

#[test]
fn parts_of_a_month_merge_into_the_whole() {
    let june = Month::parse("2024-06").expect("month");
    let entries = [
        entry(LANGFANG, BEIJING, "2024-06-03", ["800", "50", "1000"]),
        entry(BEIJING, LANGFANG, "2024-06-11", ["500", "100", "700"]),
        entry(BEIJING, BEIJING, "2024-06-12", ["9000", "0", "10000"]),
    ];
    let mut whole = Clearing::new(june);
    let (mut first, mut second) = (Clearing::new(june), Clearing::new(june));
    for (index, e) in entries.iter().enumerate() {
        whole.add(e).expect("June");
        if index % 2 == 0 { &mut first } else { &mut second }.add(e).expect("June");
    }
    first.merge(&second);
    for region in whole.regions() {
        assert_eq!(first.statement(region, None), whole.statement(region, None));
    }
}

#[test]
fn a_statement_reads_as_csv_with_every_row_the_same_width() {
    let mut clearing = Clearing::new(Month::parse("2024-06").expect("month"));
    clearing.add(&entry(LANGFANG, BEIJING, "2024-06-03", ["800", "50", "1000"])).expect("June");
    clearing.add(&entry(LANGFANG, LANGFANG, "2024-06-04", ["80", "0", "100"])).expect("June");
    let text = statement_csv(&clearing.statement(LANGFANG, Some(yuan("5000"))));
    let text = text.strip_prefix('\u{feff}').expect("a byte-order mark for spreadsheets");
    assert!(text.lines().count() > 1 && text.split("\r\n").count() == text.lines().count() + 1);
    let rows: Vec<csv::StringRecord> = csv::Reader::from_reader(text.as_bytes())
        .records()
        .collect::<Result<_, _>>()
        .expect("valid CSV");
    assert_eq!(rows.len(), 9, "counterpart, total, four local lines, three balance lines");
    assert!(rows.iter().all(|row| row.len() == 19), "every row as wide as the header");
    assert_eq!(&rows[0][3], "110000");
    // Payable: fund 800, account 50, cash 150 (not cleared); fund and account 850.
    let payable = (&rows[0][7], &rows[0][8], &rows[0][9], &rows[0][10]);
    assert_eq!(payable, ("800.00", "50.00", "150.00", "850.00"));
    assert_eq!((&rows[0][17], &rows[0][18]), ("0.00", "-850.00"), "nothing receivable, net");
    assert_eq!((&rows[1][10], &rows[1][17], &rows[1][18]), ("850.00", "0.00", "-850.00"));
    // Local care is shown on lines of its own, in no column the counterparts fill.
    let line =
        |label: &str| rows.iter().find(|r| r[2].starts_with(label)).expect(label)[18].to_owned();
    assert_eq!(line("本地基金支付"), "80.00", "local care is shown, not cleared");
    assert_eq!(line("预付金期末余额"), "4150.00", "closing balance 5000 − 850");
    assert!(rows[2..].iter().all(|r| r.iter().skip(4).take(14).all(str::is_empty)));
}

#[test]
fn the_payout_ratio_rounds_to_a_tenth_of_a_percent() {
    // Jan–Sep 2022, cross-province inpatient: 56.116 of 95.228 billion yuan.
    assert_eq!(payout_ratio(yuan("56116"), yuan("95228")).as_deref(), Some("58.9%"));
    assert_eq!(payout_ratio(yuan("2965"), yuan("4967")).as_deref(), Some("59.7%"));
    assert_eq!(payout_ratio(yuan("1"), yuan("3")).as_deref(), Some("33.3%"));
    assert_eq!(payout_ratio(yuan("2"), yuan("3")).as_deref(), Some("66.7%"));
    assert_eq!(payout_ratio(Fen::ZERO, Fen::ZERO), None);
}

#[test]
fn statistics_count_each_regions_people_and_its_visitors() {
    let from = Date::constant(2024, 6, 1);
    let mut stats = Statistics::new(from, Date::constant(2024, 6, 30));
    let outpatient = Entry {
        visit: VisitType::ChronicOutpatient,
        ..entry(LANGFANG, LANGFANG, "2024-06-05", ["40", "10", "100"])
    };
    let elsewhere = entry(LANGFANG, BEIJING, "2024-06-03", ["800", "50", "1000"]);
    for e in [elsewhere, outpatient, entry(BEIJING, LANGFANG, "2024-06-11", ["500", "100", "700"])]
    {
        assert!(stats.add(&e));
    }
    assert!(!stats.add(&entry(LANGFANG, BEIJING, "2024-07-01", ["1", "0", "1"])), "July");
    let langfang = stats.region(LANGFANG);
    let inpatient = &langfang.lines[0];
    assert_eq!((inpatient.bucket, inpatient.insured.settlements), ("inpatient", 1));
    assert_eq!(inpatient.payout_ratio.as_deref(), Some("80.0%"));
    assert_eq!(inpatient.advances_spared, yuan("850"));
    assert_eq!(inpatient.visitors.medical_cost, yuan("700"), "Beijing's person treated here");
    let all = langfang.lines.last().expect("all");
    assert_eq!((all.bucket, all.insured.settlements, all.insured.fund), ("all", 2, yuan("840")));
    assert_eq!(all.payout_ratio.as_deref(), Some("76.4%"), "840 / 1100");
}
