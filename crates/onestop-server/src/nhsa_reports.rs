//! 3201 and 3202: the institution's totals or settlements over a period, against its books.

use std::collections::BTreeMap;

use onestop_api::SettlementDto;
use onestop_core::{Date, Fen, Region, Scheme, VisitType};
use onestop_nhsa::codes;
use onestop_nhsa::envelope::text;
use onestop_store::Institution;
use onestop_store::Tx;
use onestop_store::model::SettlementRow;
use onestop_store::tx::Result;
use serde_json::{Map, Value, json};

use crate::nhsa::Failure;

type Outcome = std::result::Result<Value, Failure>;

/// A reconciliation period is at most this many days.
pub const PERIOD_DAYS_MAX: i32 = 366;

fn date(node: &Map<String, Value>, key: &str) -> std::result::Result<Date, Failure> {
    let text =
        text(node, key).ok_or_else(|| Failure(format!("缺少必填字段 missing field `{key}`")))?;
    text.get(..10)
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| Failure(format!("日期格式错误 `{key}` is not a date: {text}")))
}

/// A total the institution must send: an amount of yuan with at most two decimals.
fn required_fen(node: &Map<String, Value>, key: &str) -> std::result::Result<Fen, Failure> {
    let text =
        text(node, key).ok_or_else(|| Failure(format!("缺少必填字段 missing field `{key}`")))?;
    Fen::parse_yuan(&text).map_err(|_| {
        Failure(format!("金额格式错误 `{key}` is not an amount of yuan with two decimals: {text}"))
    })
}

/// A count the institution must send: a whole number (`2`, `"2"`, `2.0`).
fn required_count(node: &Map<String, Value>, key: &str) -> std::result::Result<i64, Failure> {
    let value =
        node.get(key).ok_or_else(|| Failure(format!("缺少必填字段 missing field `{key}`")))?;
    let count = match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            // A count written as a decimal (`2.0`) is whole when its fraction is zero.
            n.to_string().strip_suffix(".0").and_then(|whole| whole.parse().ok())
        }),
        Value::String(t) => t.trim().parse::<i64>().ok(),
        _ => None,
    };
    count.ok_or_else(|| Failure(format!("笔数格式错误 `{key}` is not a whole number: {value}")))
}

fn fen(node: &Map<String, Value>, key: &str) -> Option<Fen> {
    text(node, key).and_then(|t| Fen::parse_yuan(&t).ok())
}

/// A settlement or reversal booked by the institution, its own person's or (in a federation) a
/// visitor's whose insured region's node settled it.
struct Booked {
    settlement_id: String,
    reversal: bool,
    total: Fen,
    fund_total: Fen,
    personal_account: Fen,
}

/// What 3201 and 3202 may filter on: scheme (insutype), visit type (clr_type) and the insured
/// region that clears it (setl_optins).
struct Filters {
    insutype: Option<String>,
    clr_type: Option<String>,
    optins: Option<Region>,
}

impl Filters {
    /// `scheme` is `None` for a visitor settlement recorded before its scheme was kept: it
    /// counts only when no scheme is asked for.
    fn keep(&self, scheme: Option<Scheme>, visit: VisitType, insured: Region) -> bool {
        let scheme = scheme.map(codes::insutype);
        self.insutype.as_deref().is_none_or(|i| scheme == Some(i))
            && self.clr_type.as_deref().is_none_or(|c| codes::clr_type(visit) == c)
            && self.optins.is_none_or(|r| insured == r)
    }
}

/// Settlements and reversals booked in the period that match the filters sent: the
/// institution's own and those of its visitors.
fn booked(
    tx: &mut dyn Tx,
    actor: &Institution,
    node: &Map<String, Value>,
) -> Result<std::result::Result<Vec<Booked>, Failure>> {
    let (begin, end) =
        match date(node, "stmt_begndate").and_then(|b| Ok((b, date(node, "stmt_enddate")?))) {
            Ok(range) => range,
            Err(failure) => return Ok(Err(failure)),
        };
    let days = begin.until(end).map(|span| span.get_days()).unwrap_or(-1);
    if !(0..PERIOD_DAYS_MAX).contains(&days) {
        return Ok(Err(Failure(format!(
            "对账期间无效 the period {begin} to {end} must run forward, at most {PERIOD_DAYS_MAX} days"
        ))));
    }
    let filters = Filters {
        insutype: text(node, "insutype"),
        clr_type: text(node, "clr_type"),
        optins: text(node, "setl_optins").and_then(|r| Region::parse(&r)),
    };
    let mut rows = Vec::new();
    let mut day = begin;
    loop {
        for row in tx.settlements_booked(&actor.institution_id, day)? {
            let dto: SettlementDto =
                serde_json::from_str(&row.result.get()?.text).map_err(|e| {
                    onestop_store::StoreError::Corrupt(format!(
                        "settlement {}: {e}",
                        row.settlement_id
                    ))
                })?;
            if let Some(visit) = VisitType::parse(&dto.visit)
                && filters.keep(Scheme::parse(&dto.scheme), visit, row.key.region)
            {
                rows.push(own(row));
            }
        }
        for visitor in tx.visitor_settlements_booked(&actor.institution_id, day)? {
            if filters.keep(visitor.scheme, visitor.visit_type, visitor.insured) {
                rows.push(Booked {
                    reversal: visitor.reverses.is_some(),
                    total: visitor.total,
                    fund_total: visitor.fund_total,
                    personal_account: visitor.personal_account,
                    settlement_id: visitor.settlement_id,
                });
            }
        }
        // Ends at `end`, and at the last day of the calendar (9999-12-31 has no tomorrow).
        match day.tomorrow() {
            Ok(next) if day < end => day = next,
            _ => break,
        }
    }
    Ok(Ok(rows))
}

fn own(row: SettlementRow) -> Booked {
    Booked {
        reversal: row.reverses.is_some(),
        total: row.total,
        fund_total: row.fund_total,
        personal_account: row.personal_account,
        settlement_id: row.settlement_id,
    }
}

/// Sums of the period: (count net of reversals, medical cost, fund, personal account).
fn totals(rows: &[Booked]) -> (i64, Fen, Fen, Fen) {
    let count = rows.iter().map(|r| if r.reversal { -1 } else { 1 }).sum();
    let sum = |f: fn(&Booked) -> Fen| rows.iter().map(f).sum::<Fen>();
    (count, sum(|r| r.total), sum(|r| r.fund_total), sum(|r| r.personal_account))
}

pub fn reconcile_totals(
    tx: &mut dyn Tx,
    actor: &Institution,
    node: &Map<String, Value>,
) -> Result<Outcome> {
    let rows = match booked(tx, actor, node)? {
        Ok(rows) => rows,
        Err(failure) => return Ok(Err(failure)),
    };
    // The institution's totals are all required: one that is absent or does not parse can
    // never count as matching.
    let theirs = (|| {
        Ok((
            required_count(node, "fixmedins_setl_cnt")?,
            required_fen(node, "medfee_sumamt")?,
            required_fen(node, "fund_pay_sumamt")?,
            required_fen(node, "acct_pay")?,
        ))
    })();
    let (their_count, their_medfee, their_fund, their_account) = match theirs {
        Ok(theirs) => theirs,
        Err(failure) => return Ok(Err(failure)),
    };
    let (count, medfee, fund, account) = totals(&rows);
    let mut differences = Vec::new();
    let mut compare = |name: &str, ours: String, theirs: String| {
        if theirs != ours {
            differences.push(format!("{name} 医保 {ours} 机构 {theirs}"));
        }
    };
    compare("medfee_sumamt", medfee.to_string(), their_medfee.to_string());
    compare("fund_pay_sumamt", fund.to_string(), their_fund.to_string());
    compare("acct_pay", account.to_string(), their_account.to_string());
    compare("fixmedins_setl_cnt", count.to_string(), their_count.to_string());
    let balanced = differences.is_empty();
    let description = if balanced {
        "平 balanced".to_owned()
    } else {
        format!("不平 unbalanced: {}", differences.join("; "))
    };
    Ok(Ok(json!({ "stmtinfo": {
        "setl_optins": text(node, "setl_optins").unwrap_or_default(),
        "stmt_rslt": if balanced { "0" } else { "1" },
        "stmt_rslt_dscr": description,
    } })))
}

/// 3202 with the detail rows sent inline as `data.details` (the file of 9101 is not supported):
/// every settlement that differs, is missing on either side, or has other amounts.
pub fn reconcile_details(
    tx: &mut dyn Tx,
    actor: &Institution,
    node: &Map<String, Value>,
) -> Result<Outcome> {
    let rows = match booked(tx, actor, node)? {
        Ok(rows) => rows,
        Err(failure) => return Ok(Err(failure)),
    };
    let ours: BTreeMap<&str, &Booked> =
        rows.iter().map(|r| (r.settlement_id.as_str(), r)).collect();
    let theirs: Vec<&Map<String, Value>> = node
        .get("details")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default();
    let mut detail = Vec::new();
    for row in &theirs {
        let id = text(row, "setl_id").unwrap_or_default();
        let memo = match ours.get(id.as_str()) {
            None => Some("医保无此结算 not booked by the service".to_owned()),
            Some(r)
                if fen(row, "medfee_sumamt") != Some(r.total)
                    || fen(row, "fund_pay_sumamt") != Some(r.fund_total)
                    // Sent (not absent, `null` or empty): then compared.
                    || text(row, "acct_pay")
                        .is_some_and(|_| fen(row, "acct_pay") != Some(r.personal_account)) =>
            {
                Some(format!(
                    "金额不符 service medfee {} fund {} acct_pay {}",
                    r.total, r.fund_total, r.personal_account
                ))
            }
            Some(_) => None,
        };
        if let Some(memo) = memo {
            detail.push(json!({ "setl_id": id, "stmt_rslt": "1", "memo": memo }));
        }
    }
    let sent: std::collections::BTreeSet<String> =
        theirs.iter().filter_map(|r| text(r, "setl_id")).collect();
    for id in ours.keys().filter(|id| !sent.contains(**id)) {
        detail.push(json!({
            "setl_id": id,
            "stmt_rslt": "1",
            "memo": "机构无此结算 missing from the institution's details",
        }));
    }
    let balanced = detail.is_empty();
    let stmt_rslt = if balanced { "0" } else { "1" };
    let stmt_rslt_dscr = if balanced {
        "平 balanced".to_owned()
    } else {
        format!("不平 {} settlements differ", detail.len())
    };
    Ok(Ok(json!({
        "stmtinfo": { "stmt_rslt": stmt_rslt, "stmt_rslt_dscr": stmt_rslt_dscr },
        "detail": detail,
    })))
}
