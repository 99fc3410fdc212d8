//! A statement as CSV for the agency's spreadsheet: one row per counterpart, then the local
//! care, then the totals and the prepayment balance. Headers carry the Chinese and English term.

use crate::{CounterpartLine, Statement, Sums};

const HEADER: [&str; 14] = [
    "清算月份 month",
    "统筹区 region",
    "项目 line",
    "对方统筹区 counterpart",
    "应付人次 payable settlements",
    "应付冲销 payable reversals",
    "应付医疗费用 payable medical cost",
    "应付基金 payable fund",
    "应付个人账户 payable personal account",
    "应付合计 payable fund and account",
    "应收人次 receivable settlements",
    "应收医疗费用 receivable medical cost",
    "应收基金及个人账户 receivable fund and account",
    "轧差 net (receivable − payable)",
];

/// The statement as CSV (UTF-8, with a byte-order mark so spreadsheets read the Chinese).
pub fn statement_csv(statement: &Statement) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    write_rows(&mut writer, statement).expect("writing CSV to memory cannot fail");
    let bytes = writer.into_inner().expect("flushing to memory cannot fail");
    let text = String::from_utf8(bytes).expect("every field is UTF-8");
    format!("\u{feff}{text}")
}

fn write_rows(writer: &mut csv::Writer<Vec<u8>>, s: &Statement) -> csv::Result<()> {
    writer.write_record(HEADER)?;
    let (month, region) = (s.month.to_string(), s.region.to_string());
    for CounterpartLine { counterpart, payable, receivable, net } in &s.counterparts {
        let mut row = vec![month.clone(), region.clone(), "异地 cross-region".to_owned()];
        row.push(counterpart.to_string());
        row.extend(sums_fields(payable));
        row.push(receivable.settlements.to_string());
        row.push(receivable.medical_cost.to_string());
        row.push(receivable.payable().to_string());
        row.push(net.to_string());
        writer.write_record(&row)?;
    }
    let mut local = vec![month.clone(), region.clone(), "本地 local (not cleared)".to_owned()];
    local.push(region.clone());
    local.extend(sums_fields(&s.local));
    local[9] = String::new();
    local.extend(["", "", "", ""].map(str::to_owned));
    writer.write_record(&local)?;
    let blank = |n: usize| vec![String::new(); n];
    let mut total = vec![month.clone(), region.clone(), "合计 total".to_owned()];
    total.extend(blank(6));
    total.push(s.payable_total.to_string());
    total.extend(blank(2));
    total.push(s.receivable_total.to_string());
    total.push(s.net_total.to_string());
    writer.write_record(&total)?;
    for (label, amount) in [
        ("预付金期初余额 prepayment opening balance", s.opening_balance),
        ("预付金期末余额 prepayment closing balance", s.closing_balance),
        ("需补缴预付金 top-up required", s.top_up_required),
    ] {
        let mut row = vec![month.clone(), region.clone(), label.to_owned()];
        row.extend(blank(10));
        row.push(amount.to_string());
        writer.write_record(&row)?;
    }
    Ok(())
}

fn sums_fields(sums: &Sums) -> [String; 6] {
    [
        sums.settlements.to_string(),
        sums.reversals.to_string(),
        sums.medical_cost.to_string(),
        sums.fund.to_string(),
        sums.personal_account.to_string(),
        sums.payable().to_string(),
    ]
}
