//! Settlement fields (§3.2): `setlinfo` and `setldetail` filled from the service's settlement
//! record, and the per-line answer of a fee upload. The identities of §3.2 hold to the fen:
//! `medfee_sumamt = fulamt_ownpay_amt + overlmt_selfpay + preselfpay_amt + inscp_scp_amt`,
//! `medfee_sumamt = fund_pay_sumamt + psn_part_amt`, `psn_part_amt = acct_pay + psn_cash_pay`,
//! `fund_pay_sumamt` = the sum of the fund columns = the sum of `setldetail[].fund_payamt`.

use onestop_api::service::{PersonViewDto, SettlementRecordDto, VisitLineDto};
use onestop_core::policy::TierKind;
use onestop_core::{Category, Fen, VisitType};
use serde_json::{Map, Value, json};

use crate::codes;

/// A yuan amount as a JSON number with its two decimals (clients read numbers or strings).
pub fn amount(yuan: &str) -> Value {
    let fen = Fen::parse_yuan(yuan).unwrap_or_default();
    yuan_number(fen)
}

#[allow(clippy::float_arithmetic, clippy::cast_precision_loss)]
pub fn yuan_number(fen: Fen) -> Value {
    // Any amount below 10^13 fen prints back exactly: f64 keeps 15 significant digits.
    serde_json::Number::from_f64(fen.0 as f64 / 100.0).map_or(Value::Null, Value::Number)
}

fn fen(yuan: &str) -> Fen {
    Fen::parse_yuan(yuan).unwrap_or_default()
}

/// An RFC 3339 time as the interface writes times: `yyyy-MM-dd HH:mm:ss`.
pub fn interface_time(rfc3339: &str) -> String {
    rfc3339.get(..19).unwrap_or("").replace('T', " ")
}

/// The person as 1101 and every settlement output describe them.
pub fn person_fields(person: &PersonViewDto) -> Map<String, Value> {
    let category = person.enrolment.as_ref().and_then(|e| Category::parse(&e.category));
    let mut fields = Map::new();
    fields.insert("psn_no".into(), json!(person.person_id));
    fields.insert("psn_name".into(), json!(person.name));
    fields.insert("psn_cert_type".into(), json!("01"));
    fields.insert("certno".into(), json!(person.id_number));
    fields.insert("gend".into(), json!(person.gender));
    fields.insert("naty".into(), json!(""));
    fields.insert("brdy".into(), json!(person.birth_date));
    fields.insert("age".into(), json!(person.age));
    fields.insert("insutype".into(), json!(category.map_or("", |c| codes::insutype(c.scheme()))));
    fields.insert("psn_type".into(), json!(category.map_or("", codes::psn_type)));
    let civil = person.enrolment.as_ref().is_some_and(|e| e.civil_servant);
    fields.insert("cvlserv_flag".into(), json!(if civil { "1" } else { "0" }));
    fields
}

/// The personal-account balance after the settlement (`balc`). A settlement or reversal is
/// answered after it is written, so the person's balance is already the one after it; a
/// pre-settlement writes nothing, so its balance is the current one less what it would take.
fn balance_after(record: &SettlementRecordDto, person: &PersonViewDto) -> Value {
    let now = fen(&person.account_balance);
    if record.status == "pre-settled" {
        yuan_number(now - fen(&record.settlement.personal_account))
    } else {
        yuan_number(now)
    }
}

/// `setlinfo` of a settlement (or of a reversal: its amounts are negative).
pub fn setlinfo(
    record: &SettlementRecordDto,
    person: &PersonViewDto,
    msgid: &str,
    sign: i64,
) -> Map<String, Value> {
    let s = &record.settlement;
    let visit = VisitType::parse(&s.visit).unwrap_or(VisitType::GeneralOutpatient);
    let signed = |yuan: &str| yuan_number(Fen(fen(yuan).0 * sign));
    let mut info = person_fields(person);
    for (key, value) in [
        ("mdtrt_id", json!(record.visit_id)),
        ("setl_id", json!(record.settlement_id)),
        ("mdtrt_cert_type", json!("02")),
        ("med_type", json!(codes::med_type_of(visit))),
        ("setl_time", json!(interface_time(&record.booked_at))),
        ("medfee_sumamt", signed(&s.totals.total)),
        ("fulamt_ownpay_amt", signed(&s.totals.outside_catalog)),
        ("overlmt_selfpay", signed(&s.totals.over_limit)),
        ("preselfpay_amt", signed(&s.totals.class_b_first_self_pay)),
        ("inscp_scp_amt", signed(&s.totals.in_scope)),
        ("act_pay_dedc", signed(&s.deductible)),
        ("fund_pay_sumamt", signed(&s.fund_total)),
        ("psn_part_amt", signed(&s.personal_total)),
        ("acct_pay", signed(&s.personal_account)),
        ("psn_cash_pay", signed(&s.cash)),
        // Some clients read the cash column of a cancel's answer by this name.
        ("pdn_cash_pay", signed(&s.cash)),
        ("hosp_part_amt", yuan_number(Fen::ZERO)),
        ("acct_mulaid_pay", yuan_number(Fen::ZERO)),
        // The balance after the settlement: a pre-settlement's is what would remain.
        ("balc", balance_after(record, person)),
        ("medins_setl_id", json!(msgid)),
        ("clr_optins", json!(record.insured_region)),
        ("clr_way", json!("01")),
        ("clr_type", json!(codes::clr_type(visit))),
        ("pool_prop_selfpay", json!(0)),
    ] {
        info.insert(key.into(), value);
    }
    for column in
        ["hifp_pay", "cvlserv_pay", "hifes_pay", "hifmi_pay", "hifob_pay", "maf_pay", "oth_pay"]
    {
        let paid: Fen = s
            .tiers
            .iter()
            .filter(|t| {
                TierKind::parse(&t.kind).is_some_and(|k| codes::setlinfo_column(k) == column)
            })
            .map(|t| fen(&t.amount))
            .sum();
        info.insert(column.into(), yuan_number(Fen(paid.0 * sign)));
    }
    info.insert("pool_prop_selfpay".into(), pool_ratio(record));
    info
}

/// The basic fund's share of the in-scope amount above the deductible (统筹基金支付比例), to
/// four decimals; 0 when nothing was above the deductible.
#[allow(clippy::float_arithmetic, clippy::cast_precision_loss)]
fn pool_ratio(record: &SettlementRecordDto) -> Value {
    let s = &record.settlement;
    let basic: Fen =
        s.tiers.iter().filter(|t| t.kind == "basic_pool").map(|t| fen(&t.amount)).sum();
    let above = fen(&s.totals.in_scope) - fen(&s.deductible);
    if above <= Fen::ZERO {
        return json!(0);
    }
    let ratio = (basic.0 * 10_000 + above.0 / 2) / above.0;
    serde_json::Number::from_f64(ratio as f64 / 10_000.0).map_or(json!(0), Value::Number)
}

/// `setldetail`: one row per fund that paid, with the steps that explain it.
pub fn setldetail(
    record: &SettlementRecordDto,
    scheme: onestop_core::Scheme,
    sign: i64,
) -> Vec<Value> {
    let s = &record.settlement;
    s.tiers
        .iter()
        .filter(|tier| !fen(&tier.amount).is_zero())
        .filter_map(|tier| {
            let kind = TierKind::parse(&tier.kind)?;
            let (code, name) = codes::fund_pay_type(kind, scheme);
            let scope = format!("tier:{}", tier.id);
            let process: Vec<&str> = s
                .explanation
                .iter()
                .filter(|step| step.scope == scope)
                .map(|step| step.text.as_str())
                .collect();
            let info: String = process.join("；").chars().take(4000).collect();
            Some(json!({
                "fund_pay_type": code,
                "fund_pay_type_name": name,
                "inscp_scp_amt": amount(&tier.base),
                "crt_payb_lmt_amt": yuan_number(Fen::ZERO),
                "fund_payamt": yuan_number(Fen(fen(&tier.amount).0 * sign)),
                "setl_proc_info": info,
            }))
        })
        .collect()
}

/// The answer for one uploaded fee line (2204/2301 `result[]`).
pub fn fee_line(line: &VisitLineDto, serial: &str) -> Value {
    let ratio = onestop_core::Ratio::parse(&line.first_self_pay_ratio).unwrap_or_default();
    #[allow(clippy::float_arithmetic)]
    let selfpay_prop = f64::from(ratio.millionths()) / 1_000_000.0;
    let pric_uplmt_amt =
        line.price_limit.as_deref().map_or(json!(0), |p| json!(p.parse::<f64>().unwrap_or(0.0)));
    json!({
        "feedetl_sn": serial,
        "det_item_fee_sumamt": amount(&line.amount),
        "cnt": line.quantity.parse::<f64>().unwrap_or(1.0),
        "pric": line.unit_price.parse::<f64>().unwrap_or(0.0),
        "pric_uplmt_amt": pric_uplmt_amt,
        "selfpay_prop": selfpay_prop,
        "fulamt_ownpay_amt": amount(&line.outside_catalog),
        "overlmt_amt": amount(&line.over_limit),
        "preselfpay_amt": amount(&line.class_b_first_self_pay),
        "inscp_scp_amt": amount(&line.in_scope),
        "chrgitm_lv": codes::chrgitm_lv(&line.class),
        "med_chrgitm_type": "",
        "bas_medn_flag": "0",
        "hi_nego_drug_flag": "0",
        "chld_medc_flag": "0",
        "list_sp_item_flag": "0",
        "lmt_used_flag": if line.price_limit.is_some() { "1" } else { "0" },
        "drt_reim_flag": "0",
        "memo": "",
    })
}

#[cfg(test)]
mod tests {
    use super::interface_time;

    #[test]
    fn times_are_written_as_the_interface_writes_them() {
        assert_eq!(interface_time("2026-11-24T09:10:41.123+08:00"), "2026-11-24 09:10:41");
        assert_eq!(interface_time("2026-11-24T09:10:41Z"), "2026-11-24 09:10:41");
        assert_eq!(interface_time("2026-11-24"), "", "a time too short to be one writes nothing");
    }
}
