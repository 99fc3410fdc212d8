//! Each transaction of the national interface, mapped onto the service's operations (never a
//! second engine): registration and admission open visits, fee uploads append lines,
//! pre-settle and settle run the same `ops` as `/v1`, with the message's `msgid` as the
//! idempotency key. Runs inside the store transaction that also records the message.

use onestop_api::service::{OpenVisitRequest, PersonViewDto, SettleRequest, SettlementRecordDto};
use onestop_api::wire::Scalar;
use onestop_api::{LineDto, ServiceError};
use std::ops::Not;

use onestop_core::{Category, Region, VisitType};
use onestop_nhsa::envelope::{Request, text, text_any};
use onestop_nhsa::{codes, setl};
use onestop_store::model::{IdKind, LineOrigin, id_check_matches, parse_id};
use onestop_store::tx::Result;
use onestop_store::{Env, Idempotency, Institution, PersonKey, Tx, ops, people, visits};
use serde_json::{Map, Value, json};

use crate::nhsa::Failure;

type Outcome = std::result::Result<Value, Failure>;

/// An error as an `err_msg`: its message (led by its Chinese term), then its code.
fn failure_text(error: ServiceError) -> String {
    format!("{} [{}]", error.body.message, error.body.code)
}

impl From<ServiceError> for Failure {
    fn from(error: ServiceError) -> Failure {
        Failure(failure_text(error))
    }
}

/// The object a transaction's fields are in: `input.data` (most), or `input` itself.
fn data<'a>(input: &'a Value, node: &str) -> &'a Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    let empty = EMPTY.get_or_init(Map::new);
    input.get(node).and_then(Value::as_object).or_else(|| input.as_object()).unwrap_or(empty)
}

fn required(object: &Map<String, Value>, key: &str) -> std::result::Result<String, Failure> {
    text(object, key).ok_or_else(|| Failure(format!("缺少必填字段 missing field `{key}`")))
}

/// The person a `psn_no` names, in the insured region the envelope gives (else the
/// institution's own).
fn person_key(
    request: &Request,
    actor: &Institution,
    psn_no: &str,
) -> std::result::Result<PersonKey, Failure> {
    let region = request.insuplc_admdvs.as_deref().and_then(Region::parse).unwrap_or(actor.region);
    PersonKey::new(region, psn_no)
        .ok_or_else(|| Failure(format!("人员编号无效 `{psn_no}` is not a person number")))
}

pub fn dispatch(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    request: &Request,
    input: &Value,
) -> Result<Outcome> {
    match request.infno.as_str() {
        "9001" => sign_in(tx, env, actor, request, input),
        "9002" => sign_out(tx, env, actor, input),
        "1101" => person_info(tx, env, actor, request, input),
        "2201" => register(tx, env, actor, request, data(input, "data"), "11"),
        "2401" => register(tx, env, actor, request, data(input, "mdtrtinfo"), "21"),
        "2202" | "2404" => cancel_visit(tx, actor, data(input, "data")),
        "2203" | "2403" => visit_info(tx, actor, input),
        "2402" => discharge(tx, actor, input, true),
        "2405" => discharge(tx, actor, input, false),
        "2204" | "2301" => upload_fees(tx, env, actor, input),
        "2205" | "2302" => cancel_fees(tx, actor, data(input, "data")),
        "2206" | "2207" | "2208" | "2303" | "2304" | "2305"
            if let Some(failure) = misfits(tx, actor, &request.infno, data(input, "data"))? =>
        {
            Ok(Err(failure))
        }
        "2206" | "2303" => presettle(tx, env, actor, data(input, "data")),
        "2207" | "2304" => settle(tx, env, actor, request, data(input, "data")),
        "2208" | "2305" => cancel_settlement(tx, env, actor, request, data(input, "data")),
        "2601" => reverse(tx, env, actor, request, data(input, "data")),
        "3201" => crate::nhsa_reports::reconcile_totals(tx, actor, data(input, "data")),
        "3202" => crate::nhsa_reports::reconcile_details(tx, actor, data(input, "data")),
        "5203" => settlement_query(tx, env, actor, data(input, "data")),
        "5206" => year_to_date(tx, env, actor, request, data(input, "data")),
        other => Ok(Err(Failure(format!(
            "不支持的交易 infno `{other}` is not supported (see docs/national-interface.md)"
        )))),
    }
}

/// 2206-2208 settle outpatient visits and 2303-2305 admissions: a transaction of the other kind
/// than its visit's is refused (long-term care is settled by either).
fn misfits(
    tx: &mut dyn Tx,
    actor: &Institution,
    infno: &str,
    node: &Map<String, Value>,
) -> Result<Option<Failure>> {
    let inpatient_code = matches!(infno, "2303" | "2304" | "2305");
    // Only the institution's own visits and settlements: of another's, nothing is told here
    // (the operation itself refuses it).
    let own = |institution_id: &str| institution_id == actor.institution_id;
    let visit_type = if let Some(setl_id) = text(node, "setl_id") {
        match parse_id(&setl_id) {
            Some((_, key)) => tx
                .settlement(&key, &setl_id)?
                .filter(|row| own(&row.institution_id))
                .map(|row| row.visit_type),
            None => None,
        }
    } else if let Some(visit_id) = text(node, "mdtrt_id") {
        match parse_id(&visit_id) {
            Some((_, key)) => tx
                .visit(&key, &visit_id)?
                .filter(|row| own(&row.institution_id))
                .map(|row| row.visit_type),
            None => None,
        }
    } else {
        None
    };
    let misfit = match visit_type {
        Some(VisitType::Inpatient) => !inpatient_code,
        Some(VisitType::GeneralOutpatient | VisitType::ChronicOutpatient) => inpatient_code,
        _ => false,
    };
    Ok(misfit.then(|| {
        let (kind, use_instead) = if inpatient_code {
            ("门诊 an outpatient visit", "2206/2207/2208")
        } else {
            ("住院 an admission", "2303/2304/2305")
        };
        Failure(format!("交易与就诊类型不符 {infno} does not settle {kind}; use {use_instead}"))
    }))
}

fn sign_in(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    request: &Request,
    input: &Value,
) -> Result<Outcome> {
    let node = data(input, "signIn");
    let opter = text(node, "opter_no").or_else(|| request.opter.clone()).unwrap_or_default();
    let digits: String = env.now.chars().filter(char::is_ascii_digit).take(14).collect();
    let sign_no = format!("{}{digits}{:04}", actor.institution_id, rand::random::<u16>() % 10_000);
    tx.nhsa_sign_in(&actor.institution_id, &sign_no, &opter, &env.now)?;
    let sign_time = setl::interface_time(&env.now);
    Ok(Ok(json!({ "signinoutb": { "sign_no": sign_no, "sign_time": sign_time } })))
}

fn sign_out(tx: &mut dyn Tx, env: &Env<'_>, actor: &Institution, input: &Value) -> Result<Outcome> {
    let node = data(input, "signOut");
    let Some(sign_no) = text(node, "sign_no") else {
        return Ok(Err(Failure("缺少必填字段 missing field `sign_no`".into())));
    };
    if !tx.nhsa_sign_out(&actor.institution_id, &sign_no, &env.now)? {
        return Ok(Err(Failure(format!("签到不存在或已签退 no open sign-in `{sign_no}`"))));
    }
    Ok(Ok(json!({ "signoutoutb": { "sign_time": setl::interface_time(&env.now) } })))
}

/// The person found by identity number (凭证类型 02, or `certno`) or by person number.
fn find_person(
    tx: &mut dyn Tx,
    request: &Request,
    actor: &Institution,
    node: &Map<String, Value>,
) -> Result<std::result::Result<PersonKey, Failure>> {
    let region = request.insuplc_admdvs.as_deref().and_then(Region::parse).unwrap_or(actor.region);
    let number = text(node, "certno").or_else(|| text(node, "mdtrt_cert_no")).unwrap_or_default();
    let found = people::persons_by_id_number(tx, &region.to_string(), &number)?;
    if let [key] = found.as_slice() {
        return Ok(Ok(key.clone()));
    }
    if found.len() > 1 {
        return Ok(Err(Failure(format!(
            "证件号码对应多名参保人 the identity number is registered to more than one person of \
             region {region}; name the person by psn_no"
        ))));
    }
    match PersonKey::new(region, &number) {
        Some(key) if tx.person(&key, false)?.is_some() => Ok(Ok(key)),
        _ if number.len() == 18 && !id_check_matches(&number.to_ascii_uppercase()) => {
            Ok(Err(Failure(format!(
                "未查询到参保人，证件号码校验码不符 no person with this credential in region \
                 {region}, and its check character does not match its other 17 digits (GB \
                 11643): a digit may be mistyped"
            ))))
        }
        _ => Ok(Err(Failure(format!(
            "未查询到参保人 no person with this credential in region {region}"
        )))),
    }
}

fn view(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    key: &PersonKey,
) -> Result<std::result::Result<PersonViewDto, Failure>> {
    Ok(people::person_view(tx, env, actor, key, env.today.year())?.map_err(Failure::from))
}

fn person_info(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    request: &Request,
    input: &Value,
) -> Result<Outcome> {
    let node = data(input, "data");
    let key = match find_person(tx, request, actor, node)? {
        Ok(key) => key,
        Err(failure) => return Ok(Err(failure)),
    };
    // A name sent must be the registered one (the name is not shown: the caller may be wrong).
    if let Some(name) = text(node, "psn_name").filter(|name| !name.trim().is_empty())
        && tx.person(&key, false)?.is_some_and(|person| same_name(&person.name, &name).not())
    {
        return Ok(Err(Failure(
            "姓名与证件不符 psn_name is not the name registered with this credential".into(),
        )));
    }
    let person = match view(tx, env, actor, &key)? {
        Ok(person) => person,
        Err(failure) => return Ok(Err(failure)),
    };
    let mut baseinfo = setl::person_fields(&person);
    for key in ["insutype", "psn_type", "cvlserv_flag"] {
        baseinfo.remove(key);
    }
    let insuinfo: Vec<Value> = person
        .enrolment
        .iter()
        .map(|e| {
            let category = Category::parse(&e.category).unwrap_or(Category::WorkingAge);
            json!({
                "balc": setl::amount(&person.account_balance),
                "insutype": codes::insutype(category.scheme()),
                "psn_type": codes::psn_type(category),
                "psn_insu_stas": "1",
                "psn_insu_date": format!("{}-01-01", e.year),
                "paus_insu_date": "",
                "cvlserv_flag": if e.civil_servant { "1" } else { "0" },
                "insuplc_admdvs": person.insured_region,
                "emp_name": "",
            })
        })
        .collect();
    // The rows that stand today: one a later list ended or replaced is not shown.
    let entries = tx.assistance(&key)?;
    let idetinfo: Vec<Value> = onestop_store::model::assistance_standing(&entries, env.today)
        .map(|entry| {
            json!({
                "psn_idet_type": codes::idet_type(entry.category),
                "psn_type_lv": "",
                "memo": entry.category.zh(),
                "begntime": format!("{} 00:00:00", entry.effective_from),
                "endtime": entry.effective_to.map_or(String::new(), |d| format!("{d} 23:59:59")),
            })
        })
        .collect();
    Ok(Ok(json!({ "baseinfo": baseinfo, "insuinfo": insuinfo, "idetinfo": idetinfo })))
}

fn register(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    request: &Request,
    node: &Map<String, Value>,
    default_med_type: &str,
) -> Result<Outcome> {
    let psn_no = match required(node, "psn_no") {
        Ok(psn_no) => psn_no,
        Err(failure) => return Ok(Err(failure)),
    };
    let med_type = text(node, "med_type").unwrap_or_else(|| default_med_type.to_owned());
    let Some(visit) = codes::visit_of_med_type(&med_type) else {
        return Ok(Err(Failure(format!(
            "不支持的医疗类别 med_type `{med_type}` is not settled here"
        ))));
    };
    let date =
        text_any(node, &["begntime", "adm_time"]).and_then(|t| t.get(..10).map(str::to_owned));
    let open = OpenVisitRequest {
        person_id: Some(psn_no.clone()),
        insured_region: request.insuplc_admdvs.clone().map(Scalar),
        visit: Some(Scalar(visit.code().to_owned())),
        date_of_service: date.map(Scalar),
        admission_number: None,
        // 病种编码: what rules of the insured region's policy may select by (门诊慢特病).
        disease: text(node, "dise_codg").map(Scalar),
    };
    let visit = match visits::open_visit(tx, env, actor, &open)? {
        Ok(visit) => visit,
        Err(error) => return Ok(Err(error.into())),
    };
    let ipt_otp_no = text_any(node, &["ipt_otp_no", "ipt_no"]).unwrap_or_default();
    let answer = json!({ "mdtrt_id": visit.visit_id, "psn_no": psn_no, "ipt_otp_no": ipt_otp_no });
    Ok(Ok(json!({ "data": answer, "result": answer })))
}

fn visit_id_of(node: &Map<String, Value>) -> std::result::Result<String, Failure> {
    let visit_id = required(node, "mdtrt_id")?;
    same_person(node, &visit_id)?;
    Ok(visit_id)
}

/// Refuses a message whose `psn_no` is not the person of the visit or settlement it names: a
/// mixed-up patient is never settled or cancelled on another's record.
fn same_person(node: &Map<String, Value>, id: &str) -> std::result::Result<(), Failure> {
    let (Some(psn_no), Some((_, key))) = (text(node, "psn_no"), parse_id(id)) else {
        return Ok(());
    };
    if psn_no == key.person_id {
        return Ok(());
    }
    Err(Failure(format!(
        "人员编号与就诊不符 psn_no `{psn_no}` is not the person of `{id}` ({})",
        key.person_id
    )))
}

fn cancel_visit(
    tx: &mut dyn Tx,
    actor: &Institution,
    node: &Map<String, Value>,
) -> Result<Outcome> {
    let visit_id = match visit_id_of(node) {
        Ok(id) => id,
        Err(failure) => return Ok(Err(failure)),
    };
    Ok(visits::cancel_visit(tx, actor, &visit_id)?.map(|()| json!({})).map_err(Failure::from))
}

/// Two writings of one name: spaces aside, the middle dots of minority and foreign names
/// (·, •, ・, ‧, .) alike, and a name cut where registration cut it (50 characters).
fn same_name(registered: &str, sent: &str) -> bool {
    let normal = |name: &str| -> String {
        let kept = name.chars().filter(|c| !c.is_whitespace()).take(50);
        kept.map(|c| if matches!(c, '•' | '・' | '‧' | '.' | '･') { '·' } else { c }).collect()
    };
    normal(registered) == normal(sent)
}

fn visit_info(tx: &mut dyn Tx, actor: &Institution, input: &Value) -> Result<Outcome> {
    let node = input
        .get("mdtrtinfo")
        .or_else(|| input.get("adminfo"))
        .and_then(Value::as_object)
        .unwrap_or_else(|| data(input, "data"));
    let visit_id = match visit_id_of(node) {
        Ok(id) => id,
        Err(failure) => return Ok(Err(failure)),
    };
    let visit = match visits::open_visit_of(tx, actor, &visit_id)? {
        Ok(visit) => visit,
        Err(error) => return Ok(Err(error.into())),
    };
    if let Some(med_type) = text(node, "med_type") {
        let Some(visit_type) = codes::visit_of_med_type(&med_type) else {
            return Ok(Err(Failure(format!(
                "不支持的医疗类别 med_type `{med_type}` is not settled here"
            ))));
        };
        // An admission stays an admission and an outpatient visit an outpatient one: only the
        // kind within each changes (门诊慢特病 for 普通门诊, 住院 types among themselves).
        if let Err(why) = visits::kind_change(&visit_id, visit.visit_type, visit_type) {
            return Ok(Err(Failure(format!("医疗类别不符 med_type `{med_type}`: {why}"))));
        }
        tx.set_visit_type(&visit.key, &visit_id, visit_type)?;
    }
    if let Some(code) = text(node, "dise_codg") {
        let disease = match onestop_api::claim::parse_disease(Some(&Scalar(code))) {
            Ok(disease) => disease,
            Err(rejection) => return Ok(Err(ServiceError::from(rejection).into())),
        };
        tx.set_visit_disease(&visit.key, &visit_id, disease.as_deref())?;
    }
    Ok(Ok(json!({})))
}

fn discharge(
    tx: &mut dyn Tx,
    actor: &Institution,
    input: &Value,
    discharged: bool,
) -> Result<Outcome> {
    let node = input
        .get("dscginfo")
        .or_else(|| input.get("mdtrtinfo"))
        .and_then(Value::as_object)
        .unwrap_or_else(|| data(input, "data"));
    let visit_id = match visit_id_of(node) {
        Ok(id) => id,
        Err(failure) => return Ok(Err(failure)),
    };
    let visit = match visits::owned_visit(tx, actor, &visit_id, true)? {
        Ok(visit) => visit,
        Err(error) => return Ok(Err(error.into())),
    };
    // A settled stay's discharge stands until its settlement is cancelled (2305 first).
    if !discharged && let Err(error) = visits::require_open(&visit) {
        return Ok(Err(error.into()));
    }
    let at = if discharged { Some(text(node, "endtime").unwrap_or_default()) } else { None };
    tx.set_discharged(&visit.key, &visit_id, at.as_deref())?;
    Ok(Ok(json!({})))
}

/// One fee line of 2204/2301. Prices may carry six decimals: where quantity × price does not
/// give the amount at onestop's four-decimal precision, the amount stands (the price derived
/// from it, a documented deviation) if `cnt × pric` is that amount to the fen.
fn fee_line(
    tx_catalog_class: Option<&'static str>,
    detail: &Map<String, Value>,
) -> std::result::Result<(onestop_core::Line, LineOrigin), Failure> {
    let amount = required(detail, "det_item_fee_sumamt")?;
    let class = match text(detail, "chrgitm_lv") {
        Some(level) => codes::class_of_chrgitm_lv(&level).ok_or_else(|| {
            Failure(format!(
                "收费项目等级未知 chrgitm_lv `{level}` is not 01 (甲类), 02 (乙类) or 03 (丙类)"
            ))
        })?,
        None => tx_catalog_class.unwrap_or("a"),
    };
    let code = text_any(detail, &["med_list_codg", "medins_list_codg"]).unwrap_or_default();
    let name = text_any(detail, &["medins_list_name", "med_list_name", "hilist_name"])
        .unwrap_or_else(|| code.clone());
    let strict = LineDto {
        code: Some(code.clone()),
        name: Some(name.clone()),
        class: Some(Scalar(class.to_owned())),
        quantity: text(detail, "cnt").map(Scalar),
        unit_price: text(detail, "pric").map(Scalar),
        amount: Some(Scalar(amount.clone())),
        price_limit: None,
    };
    let line = match onestop_api::claim::parse_lines(std::slice::from_ref(&strict)) {
        Ok(mut lines) => lines.remove(0),
        Err(rejection) => {
            // `cnt` num(16,4) and `pric` num(16,6) are finer than a line's quantity and price:
            // the line is then kept by its amount alone, but only when `cnt × pric` is that
            // amount to the fen (clients round it their way); otherwise the line is refused.
            let lenient = LineDto { quantity: None, unit_price: None, ..strict.clone() };
            let mut lines = onestop_api::claim::parse_lines(std::slice::from_ref(&lenient))
                .map_err(|_| Failure(failure_text(ServiceError::from(rejection))))?;
            if let (Some(count), Some(price)) = (text(detail, "cnt"), text(detail, "pric")) {
                let product = fen_of_product(&count, &price).ok_or_else(|| {
                    Failure(format!(
                        "数量或单价格式错误 cnt `{count}` and pric `{price}` must be decimal \
                         numbers, cnt more than 0"
                    ))
                })?;
                let sent = lines[0].amount;
                if (sent.0 - product).abs() > 1 {
                    return Err(Failure(format!(
                        "明细金额不符 det_item_fee_sumamt {amount} is not cnt {count} × pric \
                         {price} ({})",
                        onestop_core::Fen(product)
                    )));
                }
            }
            lines.remove(0)
        }
    };
    let origin =
        LineOrigin { serial: text(detail, "feedetl_sn"), batch: text(detail, "chrg_bchno") };
    Ok((line, origin))
}

/// A decimal number as digits and a scale (`"1.25"` is `(125, 2)`); at most 8 decimals.
fn decimal(text: &str) -> Option<(i128, u32)> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || whole.len() > 16
        || fraction.len() > 8
        || !digits(whole)
        || !digits(fraction)
    {
        return None;
    }
    let scale = u32::try_from(fraction.len()).ok()?;
    Some((format!("{whole}{fraction}").parse().ok()?, scale))
}

/// `count × price` in fen, rounded half up; `None` unless both are decimals and the count is
/// more than 0.
fn fen_of_product(count: &str, price: &str) -> Option<i64> {
    let ((count, count_scale), (price, price_scale)) = (decimal(count)?, decimal(price)?);
    if count == 0 {
        return None;
    }
    let product = count.checked_mul(price)?;
    // The product has `count_scale + price_scale` decimals; fen have two.
    let shift = 10_i128.checked_pow((count_scale + price_scale).saturating_sub(2))?;
    let fen = if count_scale + price_scale >= 2 {
        (product + shift / 2) / shift
    } else {
        product * 10_i128.pow(2 - count_scale - price_scale)
    };
    i64::try_from(fen).ok()
}

/// A fee line's serial (feedetl_sn) names it within the visit: a line sent again under a new
/// msgid is refused rather than billed twice.
fn serial_taken(
    tx: &mut dyn Tx,
    visit_id: &str,
    lines: &[(onestop_core::Line, LineOrigin)],
) -> Result<Option<Failure>> {
    let Some((_, key)) = parse_id(visit_id) else { return Ok(None) };
    let mut serials: std::collections::BTreeSet<String> = tx
        .lines_with_origin(&key, visit_id)?
        .into_iter()
        .filter_map(|(_, _, origin)| origin.serial)
        .collect();
    for (index, (_, origin)) in lines.iter().enumerate() {
        if let Some(serial) = &origin.serial
            && !serials.insert(serial.clone())
        {
            return Ok(Some(Failure(format!(
                "feedetail[{index}] 费用明细流水号重复 feedetl_sn `{serial}` is already a line of \
                 visit `{visit_id}`; withdraw it (2205/2302) before sending it again"
            ))));
        }
    }
    Ok(None)
}

fn upload_fees(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    input: &Value,
) -> Result<Outcome> {
    let details: Vec<&Map<String, Value>> = input
        .get("feedetail")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default();
    let Some(first) = details.first() else {
        return Ok(Err(Failure("缺少费用明细 `feedetail` is empty".into())));
    };
    let visit_id = match visit_id_of(first) {
        Ok(id) => id,
        Err(failure) => return Ok(Err(failure)),
    };
    let mut lines = Vec::with_capacity(details.len());
    for (index, detail) in details.iter().enumerate() {
        if text(detail, "mdtrt_id").as_deref() != Some(visit_id.as_str()) {
            return Ok(Err(Failure(format!(
                "feedetail[{index}] 就诊ID不一致: all lines of one upload belong to one visit"
            ))));
        }
        match fee_line(None, detail) {
            Ok(line) => lines.push(line),
            Err(Failure(message)) => {
                return Ok(Err(Failure(format!("feedetail[{index}]: {message}"))));
            }
        }
    }
    // The visit must be the institution's and open before anything of its lines is told.
    if let Err(error) = visits::open_visit_of(tx, actor, &visit_id)? {
        return Ok(Err(error.into()));
    }
    if let Some(failure) = serial_taken(tx, &visit_id, &lines)? {
        return Ok(Err(failure));
    }
    let count = lines.len();
    let visit = match visits::append_lines(tx, env, actor, &visit_id, lines)? {
        Ok(visit) => visit,
        Err(error) => return Ok(Err(error.into())),
    };
    let key = parse_id(&visit_id).map(|(_, key)| key).ok_or_else(|| Failure("bad visit id".into()));
    let origins = match key {
        Ok(key) => tx.lines_with_origin(&key, &visit_id)?,
        Err(f) => return Ok(Err(f)),
    };
    let start = visit.lines.len().saturating_sub(count);
    let result: Vec<Value> = visit.lines[start..]
        .iter()
        .zip(&origins[start..])
        .map(|(line, (_, _, origin))| {
            let mut answer = setl::fee_line(line, origin.serial.as_deref().unwrap_or(""));
            answer["chrg_bchno"] = json!(origin.batch);
            answer
        })
        .collect();
    Ok(Ok(json!({ "result": result })))
}

fn cancel_fees(tx: &mut dyn Tx, actor: &Institution, node: &Map<String, Value>) -> Result<Outcome> {
    let visit_id = match visit_id_of(node) {
        Ok(id) => id,
        Err(failure) => return Ok(Err(failure)),
    };
    let visit = match visits::open_visit_of(tx, actor, &visit_id)? {
        Ok(visit) => visit,
        Err(error) => return Ok(Err(error.into())),
    };
    // "0000" (or no batch) withdraws every line of the visit.
    let batch = text(node, "chrg_bchno").filter(|b| b != "0000");
    let withdrawn = tx.delete_lines_of_batch(&visit.key, &visit_id, batch.as_deref())?;
    if withdrawn == 0
        && let Some(batch) = batch
    {
        return Ok(Err(Failure(format!(
            "收费批次不存在 no line of visit `{visit_id}` has chrg_bchno `{batch}`"
        ))));
    }
    Ok(Ok(json!({})))
}

/// A `medfee_sumamt` the client sent that is not the total of the lines of an open visit (a
/// settled visit is left to the settlement's own answer, which replays by msgid).
fn total_differs(
    tx: &mut dyn Tx,
    visit_id: &str,
    node: &Map<String, Value>,
) -> Result<Option<Failure>> {
    let Some(sent) = text(node, "medfee_sumamt") else {
        if node.get("medfee_sumamt").is_some_and(|v| !v.is_null()) {
            return Ok(Some(Failure("金额格式错误 medfee_sumamt is not an amount".into())));
        }
        return Ok(None);
    };
    let Some((_, key)) = parse_id(visit_id) else { return Ok(None) };
    let open = tx
        .visit(&key, visit_id)?
        .is_some_and(|v| v.status == onestop_store::model::VisitStatus::Open);
    if !open {
        return Ok(None);
    }
    let total: onestop_core::Fen =
        tx.lines(&key, visit_id)?.iter().map(|(_, line)| line.amount).sum();
    if onestop_core::Fen::parse_yuan(&sent).ok() == Some(total) {
        return Ok(None);
    }
    Ok(Some(Failure(format!(
        "费用总额不符 medfee_sumamt {sent} differs from the uploaded lines' total {total}"
    ))))
}

/// `acct_used_flag`: `1` pays the person's share from the personal account, `0` does not;
/// absent, the policy's default. `mid_setl_flag` `1`, an interim settlement (中途结算) of a
/// stay that goes on, is refused rather than read as a discharge: the stay is settled whole,
/// and a settlement closes its visit.
fn use_account(node: &Map<String, Value>) -> std::result::Result<SettleRequest, Failure> {
    match text(node, "mid_setl_flag").as_deref() {
        None | Some("0") => {}
        Some("1") => {
            return Err(Failure(
                "中途结算暂不支持 mid_setl_flag 1 (an interim settlement) is not supported: \
                 settle the stay at discharge with mid_setl_flag 0"
                    .to_owned(),
            ));
        }
        Some(other) => {
            return Err(Failure(format!("中途结算标志无效 mid_setl_flag `{other}` is 0 or 1")));
        }
    }
    let use_personal_account = match text(node, "acct_used_flag").as_deref() {
        None => None,
        Some("1") => Some(true),
        Some("0") => Some(false),
        Some(other) => {
            return Err(Failure(format!(
                "个人账户使用标志无效 acct_used_flag `{other}` is 0 or 1"
            )));
        }
    };
    Ok(SettleRequest { use_personal_account, days: None })
}

/// The settlement output of a record: `setlinfo` and `setldetail`.
pub fn settlement_output(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    record: &SettlementRecordDto,
    msgid: &str,
) -> Result<Outcome> {
    let Some(key) = PersonKey::new(
        Region::parse(&record.insured_region).unwrap_or(actor.region),
        &record.person_id,
    ) else {
        return Ok(Err(Failure("bad person".into())));
    };
    let person = match view(tx, env, actor, &key)? {
        Ok(person) => person,
        Err(failure) => return Ok(Err(failure)),
    };
    let sign = if record.status == "reversal" { -1 } else { 1 };
    let scheme = onestop_core::Scheme::parse(&record.settlement.scheme)
        .unwrap_or(onestop_core::Scheme::Employee);
    let info = setl::setlinfo(record, &person, msgid, sign);
    Ok(Ok(json!({ "setlinfo": info, "setldetail": setl::setldetail(record, scheme, sign) })))
}

fn presettle(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    node: &Map<String, Value>,
) -> Result<Outcome> {
    let visit_id = match visit_id_of(node) {
        Ok(id) => id,
        Err(failure) => return Ok(Err(failure)),
    };
    let request = match use_account(node) {
        Ok(request) => request,
        Err(failure) => return Ok(Err(failure)),
    };
    let settlement = match ops::presettle(tx, env, actor, &visit_id, &request)? {
        Ok(settlement) => settlement,
        Err(error) => return Ok(Err(error.into())),
    };
    if let Some(failure) = total_differs(tx, &visit_id, node)? {
        return Ok(Err(failure));
    }
    let Some((_, key)) = parse_id(&visit_id) else {
        return Ok(Err(Failure("bad visit id".into())));
    };
    let record = SettlementRecordDto {
        settlement_id: String::new(),
        visit_id,
        person_id: key.person_id.clone(),
        insured_region: key.region_text(),
        institution_id: actor.institution_id.clone(),
        status: "pre-settled".into(),
        reverses: None,
        reversed_by: None,
        booked_at: env.now.clone(),
        total: settlement.totals.total.clone(),
        fund_total: settlement.fund_total.clone(),
        personal_account: settlement.personal_account.clone(),
        cash: settlement.cash.clone(),
        settlement,
    };
    settlement_output(tx, env, actor, &record, "")
}

/// The record a settle or cancel answered, or its error as a failure of the message.
fn stored_record(
    response: &onestop_store::model::StoredResponse,
) -> Result<std::result::Result<SettlementRecordDto, Failure>> {
    let body = response.body.get()?;
    if response.status != 200 {
        let parsed = serde_json::from_str::<onestop_api::ErrorBody>(body);
        return Ok(Err(match parsed {
            Ok(error) => Failure(format!("{} [{}]", error.message, error.code)),
            Err(e) => Failure(e.to_string()),
        }));
    }
    Ok(serde_json::from_str(body).map_err(|e| Failure(e.to_string())))
}

fn settle(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    request: &Request,
    node: &Map<String, Value>,
) -> Result<Outcome> {
    let visit_id = match visit_id_of(node) {
        Ok(id) => id,
        Err(failure) => return Ok(Err(failure)),
    };
    if let Some(failure) = total_differs(tx, &visit_id, node)? {
        return Ok(Err(failure));
    }
    let key = format!("nhsa:{}", request.msgid);
    let idempotency = Idempotency { key: &key, request_sha256: &request.msgid, also: None };
    let settle_request = match use_account(node) {
        Ok(settle_request) => settle_request,
        Err(failure) => return Ok(Err(failure)),
    };
    let response = ops::settle(tx, env, actor, &visit_id, &settle_request, &idempotency)?;
    match stored_record(&response)? {
        Ok(record) => settlement_output(tx, env, actor, &record, &request.msgid),
        Err(failure) => Ok(Err(failure)),
    }
}

fn cancel_settlement(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    request: &Request,
    node: &Map<String, Value>,
) -> Result<Outcome> {
    let setl_id = match required(node, "setl_id") {
        Ok(id) => id,
        Err(failure) => return Ok(Err(failure)),
    };
    if let Err(failure) = same_person(node, &setl_id) {
        return Ok(Err(failure));
    }
    // The visit named, if any, must be the settlement's.
    if let (Some(visit_id), Some((IdKind::Settlement, key))) =
        (text(node, "mdtrt_id"), parse_id(&setl_id))
        && let Some(row) = tx.settlement(&key, &setl_id)?
        && row.institution_id == actor.institution_id
        && row.visit_id != visit_id
    {
        return Ok(Err(Failure(format!(
            "就诊ID与结算不符 mdtrt_id `{visit_id}` is not the visit of `{setl_id}` ({})",
            row.visit_id
        ))));
    }
    cancel_by_id(tx, env, actor, &setl_id, &request.msgid)
}

fn cancel_by_id(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    setl_id: &str,
    msgid: &str,
) -> Result<Outcome> {
    if let Some((IdKind::Settlement, key)) = parse_id(setl_id) {
        // Over this interface a second cancel is a wrong state, not a replay: a repeated
        // request repeats its msgid, which replays the first answer before this point.
        if let Some(reversal) = tx.reversal_of(&key, setl_id)? {
            return Ok(Err(Failure(format!(
                "结算已撤销 settlement `{setl_id}` is already cancelled by `{}`",
                reversal.settlement_id
            ))));
        }
        let key = format!("nhsa-cancel:{setl_id}");
        let idempotency = Idempotency { key: &key, request_sha256: "cancel", also: None };
        let response = ops::cancel(tx, env, actor, setl_id, &idempotency)?;
        return match stored_record(&response)? {
            Ok(record) => settlement_output(tx, env, actor, &record, msgid),
            Err(failure) => Ok(Err(failure)),
        };
    }
    Ok(Err(Failure(format!("结算ID无效 `{setl_id}` is not a settlement id"))))
}

/// 2601: reverses a call whose outcome the client does not know. A message never received is
/// answered as reversed (nothing happened); a failed one needs nothing.
fn reverse(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    request: &Request,
    node: &Map<String, Value>,
) -> Result<Outcome> {
    let omsgid = match required(node, "omsgid") {
        Ok(id) => id,
        Err(failure) => return Ok(Err(failure)),
    };
    if omsgid == request.msgid {
        return Ok(Err(Failure(format!(
            "原报文ID无效 omsgid `{omsgid}` is this message's own msgid: name the message to reverse"
        ))));
    }
    if omsgid.len() > onestop_nhsa::envelope::MSGID_BYTES_MAX {
        return Ok(Err(Failure(format!(
            "原报文ID过长 omsgid has at most {} characters",
            onestop_nhsa::envelope::MSGID_BYTES_MAX
        ))));
    }
    let Some(original) = tx.nhsa_message(&actor.institution_id, &omsgid)? else {
        // The original may still be on its way: its msgid is taken now, so that if it arrives
        // it is refused rather than settled behind the client's back.
        let refusal = format!(
            "原交易已冲正 msgid `{omsgid}` was reversed by 2601 (msgid `{}`) before it arrived \
             and is not processed; send the transaction again with a new msgid",
            request.msgid
        );
        tx.insert_nhsa_message(&onestop_store::model::NhsaMessage {
            institution_id: actor.institution_id.clone(),
            msgid: omsgid,
            infno: text(node, "oinfno").unwrap_or_default().chars().take(4).collect(),
            request_sha256: format!("{}{}", crate::nhsa::REVERSED_BEFORE_ARRIVAL, request.msgid),
            response: refusal,
            at: env.now.clone(),
        })?;
        return Ok(Ok(json!({
            "reversed": false,
            "memo": "原交易未收到 the original message was never received; it will be refused \
                     if it arrives",
        })));
    };
    let response: Value = serde_json::from_str(&original.response).unwrap_or(Value::Null);
    if onestop_nhsa::envelope::response_infcode(&response) != Some(0) {
        return Ok(Ok(json!({
            "reversed": false,
            "memo": "原交易失败 the original message failed; nothing to reverse",
        })));
    }
    let output = &response["output"];
    match original.infno.as_str() {
        "2207" | "2304" => {
            let setl_id = output["setlinfo"]["setl_id"].as_str().unwrap_or_default().to_owned();
            cancel_by_id(tx, env, actor, &setl_id, &request.msgid)
        }
        "2201" | "2401" => {
            let visit_id = output["data"]["mdtrt_id"].as_str().unwrap_or_default().to_owned();
            Ok(visits::cancel_visit(tx, actor, &visit_id)?
                .map(|()| json!({ "reversed": true }))
                .map_err(Failure::from))
        }
        other => Ok(Err(Failure(format!(
            "交易 {other} 不可冲正 transaction {other} cannot be reversed by 2601; use its own cancel"
        )))),
    }
}

fn settlement_query(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    node: &Map<String, Value>,
) -> Result<Outcome> {
    let setl_id = match required(node, "setl_id") {
        Ok(id) => id,
        Err(failure) => return Ok(Err(failure)),
    };
    if let Err(failure) = same_person(node, &setl_id) {
        return Ok(Err(failure));
    }
    let record = match ops::get_settlement(tx, env, actor, &setl_id)? {
        Ok(record) => record,
        Err(error) => return Ok(Err(error.into())),
    };
    let msgid = settling_msgid(tx, actor, &record)?.unwrap_or_default();
    settlement_output(tx, env, actor, &record, &msgid)
}

/// The msgid of the message that made a settlement or reversal (`medins_setl_id`), when it was
/// made over this interface by the institution: its idempotency key is `nhsa:<msgid>` for a
/// settle, `nhsa-cancel:<setl_id>` for a cancel (whose msgid is not kept: none then).
fn settling_msgid(
    tx: &mut dyn Tx,
    actor: &Institution,
    record: &SettlementRecordDto,
) -> Result<Option<String>> {
    let Some((_, key)) = parse_id(&record.settlement_id) else { return Ok(None) };
    // A stored success names its settlement (`ops::SETTLEMENT_REFERENCE`).
    let names = format!("{}{}", ops::SETTLEMENT_REFERENCE, record.settlement_id);
    let answers = tx.idempotency_answers(&key, &actor.institution_id, "nhsa:")?;
    Ok(answers
        .into_iter()
        .find(|(_, response)| *response == names)
        .and_then(|(idempotency_key, _)| idempotency_key.strip_prefix("nhsa:").map(str::to_owned)))
}

fn year_to_date(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    request: &Request,
    node: &Map<String, Value>,
) -> Result<Outcome> {
    let key = match required(node, "psn_no").and_then(|p| person_key(request, actor, &p)) {
        Ok(key) => key,
        Err(failure) => return Ok(Err(failure)),
    };
    let person = match view(tx, env, actor, &key)? {
        Ok(person) => person,
        Err(failure) => return Ok(Err(failure)),
    };
    let year = person.ytd.year.as_ref().map_or_else(String::new, |y| y.as_str().to_owned());
    let mut cuminfo =
        vec![json!({ "year": year, "cum_type_code": "admissions", "cum_type_name": "住院次数",
        "cum": person.ytd.admissions.as_ref().and_then(|n| n.as_str().parse::<u64>().ok())
            .unwrap_or(0) })];
    // Tiers and pools by their Chinese names, from the latest policy of the counters' year
    // that has the tier (a tier may be renamed or added from one year to the next).
    let in_year: Option<i16> = year.parse().ok();
    let timeline = env.book.timeline(key.region);
    let tier_zh = |tier: &str| {
        let of_year = |p: &&std::sync::Arc<onestop_core::policy::Policy>| {
            in_year.is_none_or(|y| p.valid_from.year() <= y)
        };
        let kind = (timeline.iter().rev().filter(of_year))
            .chain(timeline.iter())
            .find_map(|p| p.tiers.iter().find(|t| &*t.id == tier));
        kind.map_or_else(|| tier.to_owned(), |t| t.kind.zh().to_owned())
    };
    let pool_zh = |pool: &str| match pool {
        "outpatient" => "门诊".to_owned(),
        "inpatient" => "住院".to_owned(),
        other => other.to_owned(),
    };
    for (tier, pools) in &person.ytd.tiers {
        for (pool, counters) in pools {
            for (counter, value) in counters {
                let zh =
                    onestop_core::Counter::parse(counter).map_or("", onestop_core::Counter::zh);
                cuminfo.push(json!({
                    "year": year,
                    "cum_type_code": format!("{tier}.{pool}.{counter}"),
                    "cum_type_name": format!("{}{}{zh}", tier_zh(tier), pool_zh(pool)),
                    "cum": setl::amount(value.as_str()),
                }));
            }
        }
    }
    Ok(Ok(json!({ "cuminfo": cuminfo })))
}

#[cfg(test)]
mod tests {
    use super::{fen_of_product, same_name};

    #[test]
    fn a_name_is_the_same_whatever_its_middle_dot_and_spaces() {
        assert!(same_name("阿依古丽·买买提", "阿依古丽•买买提"));
        assert!(same_name("阿依古丽·买买提", " 阿依古丽・买买提 "));
        assert!(same_name("王五", "王 五"));
        assert!(!same_name("王五", "王六"));
        let long = "名".repeat(60);
        assert!(same_name(&long.chars().take(50).collect::<String>(), &long));
    }

    #[test]
    fn a_count_times_a_price_is_rounded_half_up_to_the_fen() {
        let cases = [
            ("3", "1.234567", Some(370)),
            ("2", "0.333333", Some(67)),
            ("2", "10", Some(2000)),
            ("0.5", "0.01", Some(1)),
            ("1.5", "0.333", Some(50)),
            ("0", "10", None),
            ("two", "10", None),
            ("-1", "10", None),
            ("1", "1e3", None),
        ];
        for (count, price, fen) in cases {
            assert_eq!(fen_of_product(count, price), fen, "{count} × {price}");
        }
    }
}
