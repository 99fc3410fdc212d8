//! A statement as CSV for the agency's spreadsheet: one row per counterpart (payable and
//! receivable side by side, the same columns each), the totals, then lines of one amount: the
//! local care (not cleared) and the prepayment balance. Headers carry the Chinese and English
//! term.

use crate::{CounterpartLine, Statement, Sums};

const HEADER: [&str; 19] = [
    "清算月份 month",
    "统筹区 region",
    "项目 line",
    "对方统筹区 counterpart",
    "应付人次 payable settlements",
    "应付冲销 payable reversals",
    "应付医疗费用 payable medical cost",
    "应付基金 payable fund",
    "应付个人账户 payable personal account",
    "应付个人现金 payable cash (not cleared)",
    "应付合计 payable fund and account",
    "应收人次 receivable settlements",
    "应收冲销 receivable reversals",
    "应收医疗费用 receivable medical cost",
    "应收基金 receivable fund",
    "应收个人账户 receivable personal account",
    "应收个人现金 receivable cash (not cleared)",
    "应收合计 receivable fund and account",
    "轧差或金额 net (receivable − payable), or the amount of the line",
];

/// The statement as CSV (UTF-8, with a byte-order mark so spreadsheets read the Chinese).
pub fn statement_csv(statement: &Statement) -> String {
    // Lines end in CRLF, as RFC 4180 and the spreadsheets it is written for expect.
    let mut writer =
        csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Vec::new());
    write_rows(&mut writer, statement).expect("writing CSV to memory cannot fail");
    let bytes = writer.into_inner().expect("flushing to memory cannot fail");
    let text = String::from_utf8(bytes).expect("every field is UTF-8");
    format!("\u{feff}{text}")
}

fn write_rows(writer: &mut csv::Writer<Vec<u8>>, s: &Statement) -> csv::Result<()> {
    writer.write_record(HEADER)?;
    let (month, region) = (s.month.to_string(), s.region.to_string());
    // Each counterpart: what this region's people were paid there and what its people were
    // paid here, the same columns on each side, so that one region's payable lines up with the
    // other's receivable.
    for CounterpartLine { counterpart, payable, receivable, net } in &s.counterparts {
        let mut row = vec![month.clone(), region.clone(), "异地 cross-region".to_owned()];
        row.push(counterpart.to_string());
        row.extend(sums_fields(payable));
        row.extend(sums_fields(receivable));
        row.push(net.to_string());
        writer.write_record(&row)?;
    }
    let blank = |n: usize| vec![String::new(); n];
    let mut total = vec![month.clone(), region.clone(), "合计 total".to_owned()];
    total.extend(blank(7));
    total.push(s.payable_total.to_string());
    total.extend(blank(6));
    total.push(s.receivable_total.to_string());
    total.push(s.net_total.to_string());
    writer.write_record(&total)?;
    // Lines of one amount each, in the last column: care at home (not cleared, shown for the
    // month's picture), then the prepayment fund. No column above sums them.
    let local = &s.local;
    for (label, amount) in [
        ("本地就医人次 local settlements (not cleared)", local.settlements.to_string()),
        ("本地医疗费用 local medical cost (not cleared)", local.medical_cost.to_string()),
        ("本地基金支付 local fund (not cleared)", local.fund.to_string()),
        ("本地个人账户 local personal account (not cleared)", local.personal_account.to_string()),
        ("预付金期初余额 prepayment opening balance", s.opening_balance.to_string()),
        ("预付金期末余额 prepayment closing balance", s.closing_balance.to_string()),
        ("需补缴预付金 top-up required", s.top_up_required.to_string()),
    ] {
        let mut row = vec![month.clone(), region.clone(), label.to_owned()];
        row.extend(blank(15));
        row.push(amount);
        writer.write_record(&row)?;
    }
    Ok(())
}

fn sums_fields(sums: &Sums) -> [String; 7] {
    [
        sums.settlements.to_string(),
        sums.reversals.to_string(),
        sums.medical_cost.to_string(),
        sums.fund.to_string(),
        sums.personal_account.to_string(),
        sums.cash.to_string(),
        sums.payable().to_string(),
    ]
}
