//! The readable form of a settlement: lines, payments per tier, explanation, accumulators.
//! Columns are aligned by display width, so Chinese terms line up in a terminal.

use std::fmt::Write;

use onestop_api::SettlementDto;
use unicode_width::UnicodeWidthStr;

pub fn pad_right(text: &str, width: usize) -> String {
    let shown = UnicodeWidthStr::width(text);
    format!("{text}{}", " ".repeat(width.saturating_sub(shown)))
}

fn pad_left(text: &str, width: usize) -> String {
    let shown = UnicodeWidthStr::width(text);
    format!("{}{text}", " ".repeat(width.saturating_sub(shown)))
}

/// Renders rows as aligned columns; `numeric[i]` right-aligns column i.
fn columns(rows: &[Vec<String>], numeric: &[bool]) -> String {
    let count = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..count)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| UnicodeWidthStr::width(c.as_str()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if numeric.get(i).copied().unwrap_or(false) {
                    pad_left(cell, widths[i])
                } else {
                    pad_right(cell, widths[i])
                }
            })
            .collect();
        let _ = writeln!(out, "  {}", cells.join("  ").trim_end());
    }
    out
}

fn class_label(code: &str) -> &'static str {
    match code {
        "a" => "甲类 A",
        "b" => "乙类 B",
        _ => "目录外 outside",
    }
}

fn visit_label(code: &str) -> String {
    let zh = onestop_core::VisitType::parse(code).map_or("", onestop_core::VisitType::zh);
    format!("{zh} {code}")
}

pub fn render(s: &SettlementDto) -> String {
    let mut out = String::new();
    header(&mut out, s);
    let _ = writeln!(out, "\n费用明细 Lines");
    out.push_str(&lines_table(s));
    let _ = writeln!(out, "\n各项支付 Payments");
    out.push_str(&payments_table(s));
    let _ = writeln!(
        out,
        "  实际支付起付线 deductible borne: {} · 政策范围内个人自付 personal in-scope share: {}",
        s.deductible, s.personal_in_scope
    );
    let _ = writeln!(out, "\n计算说明 Explanation");
    for step in &s.explanation {
        let _ = writeln!(out, "  - {}", step.text);
    }
    accumulators(&mut out, s);
    out
}

fn header(out: &mut String, s: &SettlementDto) {
    let admission =
        s.admission_number.map(|n| format!(" · 第{n}次住院 admission {n}")).unwrap_or_default();
    let level =
        onestop_core::HospitalLevel::parse(&s.level).map_or("", onestop_core::HospitalLevel::zh);
    let visit = visit_label(&s.visit);
    let _ = writeln!(
        out,
        "onestop calc · {} · {visit} · {level} level {}{admission}",
        s.date_of_service, s.level
    );
    let policy = |p: &onestop_api::settlement::PolicyRefDto| {
        let to = p.valid_to.as_deref().unwrap_or("open");
        format!("{} {} (policy {} to {to})", p.region, p.name, p.valid_from)
    };
    let _ = writeln!(out, "参保地 insured:   {}", policy(&s.insured_policy));
    let _ = writeln!(out, "就医地 treatment: {}", policy(&s.treatment_policy));
    if let Some(disease) = &s.disease {
        let group = match (&s.disease_group, &s.disease_group_name) {
            (Some(id), Some(name)) => format!("{name} {id}"),
            _ => "无分组 no group".to_owned(),
        };
        let _ = writeln!(out, "病种 disease:     {disease} ({group})");
    }
}

fn lines_table(s: &SettlementDto) -> String {
    let heading = [
        "#",
        "code",
        "name",
        "class",
        "amount",
        "全自费 outside",
        "超限价 over-limit",
        "先行自付 B-first",
        "范围内 in-scope",
    ];
    let mut rows = vec![heading.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>()];
    for line in &s.lines {
        rows.push(vec![
            (line.index + 1).to_string(),
            line.code.clone(),
            line.name.clone(),
            class_label(&line.class).into(),
            line.amount.clone(),
            line.outside_catalog.clone(),
            line.over_limit.clone(),
            line.class_b_first_self_pay.clone(),
            line.in_scope.clone(),
        ]);
    }
    let t = &s.totals;
    rows.push(vec![
        String::new(),
        "合计".into(),
        "total".into(),
        String::new(),
        t.total.clone(),
        t.outside_catalog.clone(),
        t.over_limit.clone(),
        t.class_b_first_self_pay.clone(),
        t.in_scope.clone(),
    ]);
    columns(&rows, &[true, false, false, false, true, true, true, true, true])
}

fn payments_table(s: &SettlementDto) -> String {
    let mut rows = Vec::new();
    for tier in &s.tiers {
        let name = format!("{} {}", tier.name_zh, tier.name_en);
        rows.push(vec![name, format!("({})", tier.id), tier.amount.clone()]);
    }
    for (label, amount) in [
        ("基金支付合计 fund total", &s.fund_total),
        ("个人账户 personal account", &s.personal_account),
        ("个人现金 cash", &s.cash),
        ("个人负担合计 personal total", &s.personal_total),
        ("医疗费总额 bill total", &s.totals.total),
    ] {
        rows.push(vec![label.to_owned(), String::new(), amount.clone()]);
    }
    columns(&rows, &[false, false, true])
}

fn accumulators(out: &mut String, s: &SettlementDto) {
    let year = s.accumulators.year.as_ref().map_or("", |y| y.as_str());
    let _ = writeln!(out, "\n年度累计 Year-to-date after this settlement ({year})");
    let admissions = s.accumulators.admissions.as_ref().map_or("0", |a| a.as_str());
    let _ = writeln!(out, "  住院次数 admissions: {admissions}");
    for (tier, pools) in &s.accumulators.tiers {
        for (pool, counters) in pools {
            let values: Vec<String> = counters
                .iter()
                .map(|(k, v)| {
                    let zh = onestop_core::Counter::parse(k).map_or("", onestop_core::Counter::zh);
                    format!("{zh} {k} {}", v.as_str())
                })
                .collect();
            let _ = writeln!(out, "  {tier} / {pool}: {}", values.join(", "));
        }
    }
}
