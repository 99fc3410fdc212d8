//! A hospital's system (HIS) that speaks only the national interface's JSON envelopes over
//! HTTP runs the outpatient and inpatient flows, in plain and encrypted mode, for an employee, a
//! resident with critical illness and an assistance recipient; every amount is checked against
//! the engine's settlement (read back through `/v1`), and every identity of the reference holds.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use onestop_core::{Fen, Region};
use onestop_nhsa::crypto;
use onestop_server::{AppState, NhsaConfig};
use reqwest::Client;
use serde_json::{Value, json};

const SERVICE_KEY: &str = "1f3a8e2b7c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7";
/// The national interface's path for every message.
const CALL_SERVICE: &str = "/fsi/api/rsfComIfsService/callService";
const HIS_KEY: &str = "3945208f7b2144b13f36e38ac6d39f95889393692860b51a42fb81ef4df7c5b8";

struct Service {
    base: String,
    client: Client,
    agency: String,
}

async fn start() -> Service {
    let dir = tempfile::tempdir().expect("dir").keep();
    let agency = ("A110000", "agency", 110_000);
    let (store, book, token) = support::store_with_agency(&dir.join("n.sqlite"), agency).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let nhsa = NhsaConfig {
        sign_in_regions: [Region(110_000)].into(),
        service_key: Some(SERVICE_KEY.into()),
    };
    let state = AppState::new(store, book, support::clock()).with_nhsa(nhsa);
    tokio::spawn(onestop_server::serve(listener, state, std::future::pending()));
    Service {
        base,
        client: onestop_server::tls::client_builder(None).build().expect("client"),
        agency: token,
    }
}

impl Service {
    async fn v1(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Value {
        let mut request =
            self.client.request(method, format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("response");
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.json().await.expect("json")
    }

    /// A hospital, three people of the region, the assistance list.
    async fn setup(&self, id: &str, encrypted: bool) -> His<'_> {
        let credential = self
            .v1(
                reqwest::Method::POST,
                "/v1/institutions",
                &self.agency,
                Some(json!({"institution_id": id, "name": "某三级医院", "level": "3"})),
            )
            .await;
        let public = crypto::sm2_public_key(HIS_KEY).expect("public key");
        if encrypted {
            let sm4_key = &id[..12].to_owned().repeat(2)[..16];
            let keys = json!({"encrypted": true, "sm4_key": sm4_key, "sm2_public_key": public});
            let path = format!("/v1/institutions/{id}/nhsa-keys");
            self.v1(reqwest::Method::PUT, &path, &self.agency, Some(keys)).await;
        }
        for (person, category, number) in [
            ("P1", "in_service", "110101198001011111"),
            ("P2", "working_age", "110101196501012222"),
            ("P3", "elderly", "110101195001013333"),
        ] {
            let body = json!({
                "person_id": person,
                "name": format!("参保人{person}"),
                "id_number": number,
                "birth_date": format!("{}-01-01", &number[6..10]),
                "gender": "1",
                "account_balance": "1500",
                "enrolments": [{"year": 2024, "category": category}]
            });
            self.v1(reqwest::Method::POST, "/v1/persons", &self.agency, Some(body)).await;
        }
        let csv =
            "身份证号,姓名,救助类别,生效日期\n110101195001013333,参保人P3,低保对象,2024-01-01\n";
        let response = self
            .client
            .post(format!("{}/v1/assistance-lists?file_name=l.csv", self.base))
            .bearer_auth(&self.agency)
            .body(csv)
            .send()
            .await
            .expect("list");
        assert_eq!(response.status(), 200);
        His {
            service: self,
            code: id.to_owned(),
            token: credential["token"].as_str().expect("token").to_owned(),
            encrypted,
            sign_no: String::new(),
            serial: AtomicU32::new(0),
        }
    }
}

/// The hospital's system: builds envelopes, encrypts and signs in the encrypted mode.
struct His<'a> {
    service: &'a Service,
    code: String,
    token: String,
    encrypted: bool,
    sign_no: String,
    serial: AtomicU32,
}

impl His<'_> {
    fn sm4(&self) -> [u8; 16] {
        crypto::sm4_key(&self.code[..12].to_owned().repeat(2)[..16]).expect("key")
    }

    fn msgid(&self) -> String {
        format!("{}20240610100000{:04}", self.code, self.serial.fetch_add(1, Ordering::SeqCst))
    }

    async fn call(&self, infno: &str, input: Value) -> Value {
        self.call_with(infno, input, &self.msgid()).await
    }

    async fn call_with(&self, infno: &str, input: Value, msgid: &str) -> Value {
        let plain = input.to_string();
        let mut envelope = json!({
            "infno": infno, "msgid": msgid, "mdtrtarea_admvs": "110000", "insuplc_admdvs": "110000",
            "recer_sys_code": "MK", "dev_no": "", "dev_safe_info": "", "cainfo": "", "signtype": "",
            "infver": "V1.0", "opter_type": "1", "opter": "001", "opter_name": "收费员",
            "inf_time": "2024-06-10 10:00:00", "fixmedins_code": self.code,
            "fixmedins_name": "某三级医院",
            "sign_no": self.sign_no, "enc_type": "", "input": input,
        });
        let mut request = self
            .service
            .client
            .post(format!("{}/fsi/api/rsfComIfsService/callService", self.service.base));
        if self.encrypted {
            envelope["input"] = json!(crypto::sm4_encrypt(&self.sm4(), plain.as_bytes()));
            envelope["enc_type"] = json!("SM4");
            envelope["cainfo"] =
                json!(crypto::sm2_sign(HIS_KEY, &self.code, plain.as_bytes()).expect("sign"));
            envelope["signtype"] = json!("SM2");
        } else {
            request = request.bearer_auth(&self.token);
        }
        let response: Value =
            request.json(&envelope).send().await.expect("response").json().await.expect("json");
        if self.encrypted && response["infcode"] == 0 {
            let sealed = response["output"].as_str().expect("encrypted output");
            let plain = crypto::sm4_decrypt(&self.sm4(), sealed).expect("decrypts");
            let service_public = crypto::sm2_public_key(SERVICE_KEY).expect("key");
            let signature = response["cainfo"].as_str().expect("cainfo");
            crypto::sm2_verify(&service_public, &self.code, &plain, signature)
                .expect("the service signs its output");
            let mut opened = response.clone();
            opened["output"] = serde_json::from_slice(&plain).expect("json");
            return opened;
        }
        response
    }

    /// As `call_with` (plain mode), the envelope written with spaces and line breaks, as a
    /// client that builds its JSON its own way would.
    async fn call_pretty(&self, infno: &str, input: Value, msgid: &str) -> Value {
        let envelope = json!({
            "infno": infno, "msgid": msgid, "mdtrtarea_admvs": "110000", "insuplc_admdvs": "110000",
            "fixmedins_code": self.code, "sign_no": self.sign_no, "enc_type": "", "input": input,
        });
        let body = serde_json::to_string_pretty(&envelope).expect("json");
        self.post_raw(CALL_SERVICE, body).await
    }

    /// Posts an envelope written by hand to `path` of the service, with the bearer token.
    async fn post_raw(&self, path: &str, body: String) -> Value {
        let url = format!("{}{path}", self.service.base);
        let request = self.service.client.post(url).bearer_auth(&self.token);
        let response = request.header("content-type", "application/json").body(body).send();
        response.await.expect("response").json().await.expect("json")
    }

    async fn ok(&self, infno: &str, input: Value) -> Value {
        let response = self.call(infno, input).await;
        assert_eq!(response["infcode"], 0, "{infno}: {response}");
        for key in ["inf_refmsgid", "refmsg_time", "respond_time", "err_msg", "output"] {
            assert!(response.get(key).is_some(), "{infno}: no {key}");
        }
        response["output"].clone()
    }
}

fn fen(value: &Value) -> Fen {
    match value {
        Value::Number(n) => {
            Fen::parse_yuan(&format!("{:.2}", n.as_f64().expect("number"))).expect("yuan")
        }
        Value::String(s) => Fen::parse_yuan(s).expect("yuan"),
        other => panic!("not an amount: {other}"),
    }
}

/// The identities of the reference, to the fen.
fn identities_hold(setlinfo: &Value, setldetail: &Value) {
    let f = |key: &str| fen(&setlinfo[key]);
    assert_eq!(
        f("medfee_sumamt"),
        f("fulamt_ownpay_amt") + f("overlmt_selfpay") + f("preselfpay_amt") + f("inscp_scp_amt")
    );
    assert_eq!(f("medfee_sumamt"), f("fund_pay_sumamt") + f("psn_part_amt"));
    assert_eq!(f("psn_part_amt"), f("acct_pay") + f("psn_cash_pay"));
    let funds =
        ["hifp_pay", "cvlserv_pay", "hifes_pay", "hifmi_pay", "hifob_pay", "maf_pay", "oth_pay"];
    assert_eq!(f("fund_pay_sumamt"), funds.iter().map(|k| f(k)).sum());
    let detail: Fen =
        setldetail.as_array().expect("setldetail").iter().map(|d| fen(&d["fund_payamt"])).sum();
    assert_eq!(detail, f("fund_pay_sumamt"));
}

/// The setlinfo amounts equal the engine's settlement, read back through /v1.
async fn matches_engine(his: &His<'_>, setlinfo: &Value) {
    let id = setlinfo["setl_id"].as_str().expect("setl_id");
    let record = his
        .service
        .v1(reqwest::Method::GET, &format!("/v1/settlements/{id}"), &his.token, None)
        .await;
    let tiers = record["settlement"]["tiers"].as_array().expect("tiers");
    let paid = |kind: &str| {
        tiers.iter().filter(|t| t["kind"] == kind).map(|t| fen(&t["amount"])).sum::<Fen>()
    };
    assert_eq!(fen(&setlinfo["hifp_pay"]), paid("basic_pool"));
    assert_eq!(fen(&setlinfo["hifmi_pay"]), paid("critical_illness"));
    assert_eq!(fen(&setlinfo["hifob_pay"]), paid("large_amount"));
    assert_eq!(fen(&setlinfo["maf_pay"]), paid("medical_assistance") + paid("tilt_assistance"));
    assert_eq!(fen(&setlinfo["medfee_sumamt"]), fen(&record["total"]));
    assert_eq!(fen(&setlinfo["acct_pay"]), fen(&record["personal_account"]));
    assert_eq!(fen(&setlinfo["psn_cash_pay"]), fen(&record["cash"]));
}

fn fee_details(visit: &str, psn: &str, lines: &[(&str, &str, &str, &str)]) -> Value {
    let feedetail = lines
        .iter()
        .enumerate()
        .map(|(n, (code, level, cnt, price))| {
            let fen = Fen::parse_yuan(price).expect("price").0;
            let amount = fen * cnt.parse::<i64>().expect("count");
            json!({
                "feedetl_sn": format!("F{n:03}"), "mdtrt_id": visit, "psn_no": psn,
                "chrg_bchno": "B1", "med_list_codg": code, "medins_list_codg": code,
                "det_item_fee_sumamt": format!("{}", Fen(amount)),
                "cnt": cnt, "pric": price, "chrgitm_lv": level, "bilg_dept_codg": "01",
                "hosp_appr_flag": "1"
            })
        })
        .collect::<Vec<_>>();
    json!({ "feedetail": feedetail })
}

async fn outpatient(his: &His<'_>, psn: &str, certno: &str) {
    let query = json!({"data": {
        "mdtrt_cert_type": "02", "mdtrt_cert_no": certno, "psn_cert_type": "01",
        "certno": certno, "psn_name": ""
    }});
    let person = his.ok("1101", query.clone()).await;
    assert_eq!(person["baseinfo"]["psn_no"], psn);
    // Another name with the credential is refused; the registered name is not disclosed.
    let mut other = query;
    other["data"]["psn_name"] = json!("某某某");
    let refused = his.call("1101", other).await;
    assert_eq!(refused["infcode"], -1, "{refused}");
    assert!(refused["err_msg"].as_str().is_some_and(|m| m.starts_with("姓名与证件不符")));
    assert_eq!(person["insuinfo"][0]["balc"], 1500.0);
    let registration = json!({"data": {
        "psn_no": psn, "insutype": person["insuinfo"][0]["insutype"],
        "begntime": "2024-06-10 09:30:00", "mdtrt_cert_type": "02", "mdtrt_cert_no": certno,
        "ipt_otp_no": "MZ001", "atddr_no": "D1", "dr_name": "王医生", "dept_code": "01",
        "dept_name": "内科", "caty": "A03"
    }});
    let registered = his.ok("2201", registration).await;
    let visit = registered["data"]["mdtrt_id"].as_str().expect("mdtrt_id").to_owned();
    let diagnosis = json!({
        "mdtrtinfo": {
            "mdtrt_id": visit, "psn_no": psn, "med_type": "11", "begntime": "2024-06-10 09:30:00"
        },
        "diseinfo": [{
            "diag_type": "1", "diag_srt_no": "1", "diag_code": "J06.900",
            "diag_name": "上呼吸道感染"
        }]
    });
    his.ok("2203", diagnosis.clone()).await;
    // The disease (病种编码) is kept when it is a code, refused when it is not.
    let mut disease = diagnosis.clone();
    disease["mdtrtinfo"]["dise_codg"] = json!("上呼吸道感染");
    let refused = his.call("2203", disease.clone()).await;
    assert!(
        refused["err_msg"].as_str().is_some_and(|m| m.starts_with("病种编码无效")),
        "{refused}"
    );
    disease["mdtrtinfo"]["dise_codg"] = json!("J06.900");
    his.ok("2203", disease).await;
    // An outpatient visit does not become an admission (住院 21) by a change of type.
    let mut admission = diagnosis;
    admission["mdtrtinfo"]["med_type"] = json!("21");
    let refused = his.call("2203", admission).await;
    assert_eq!(refused["infcode"], -1, "{refused}");
    assert!(refused["err_msg"].as_str().is_some_and(|m| m.starts_with("医疗类别不符")));
    let fees = his
        .ok(
            "2204",
            fee_details(
                &visit,
                psn,
                &[
                    ("XA01", "01", "2", "120.00"),
                    ("XB01", "02", "3", "850.00"),
                    ("XC01", "03", "1", "60.50"),
                ],
            ),
        )
        .await;
    assert_eq!(fees["result"][1]["preselfpay_amt"], 255.0, "{fees}");
    let settlement = json!({"data": {
        "psn_no": psn, "mdtrt_id": visit, "medfee_sumamt": "2850.50", "psn_setlway": "01",
        "acct_used_flag": "1", "insutype": "310"
    }});
    let pre = his.ok("2206", settlement.clone()).await;
    identities_hold(&pre["setlinfo"], &pre["setldetail"]);
    let settled = his.ok("2207", settlement).await;
    identities_hold(&settled["setlinfo"], &settled["setldetail"]);
    for key in ["medfee_sumamt", "hifp_pay", "psn_cash_pay", "acct_pay"] {
        assert_eq!(settled["setlinfo"][key], pre["setlinfo"][key], "{key}");
    }
    matches_engine(his, &settled["setlinfo"]).await;
    let setl_id = settled["setlinfo"]["setl_id"].as_str().expect("setl_id").to_owned();
    let cancelled = his
        .ok("2208", json!({"data": {"setl_id": setl_id, "mdtrt_id": visit, "psn_no": psn}}))
        .await;
    assert_eq!(
        fen(&cancelled["setlinfo"]["medfee_sumamt"]),
        -fen(&settled["setlinfo"]["medfee_sumamt"])
    );
    let twice = his
        .call("2208", json!({"data": {"setl_id": setl_id, "mdtrt_id": visit, "psn_no": psn}}))
        .await;
    assert_eq!(twice["infcode"], -1, "cancelling twice is a wrong state: {twice}");
    assert!(twice["err_msg"].as_str().expect("err_msg").contains("already cancelled"));
}

async fn inpatient(his: &His<'_>, psn: &str, fees: &[(&str, &str, &str, &str)]) -> Value {
    let admission = json!({
        "mdtrtinfo": {
            "psn_no": psn, "insutype": "390", "mdtrt_cert_type": "02", "med_type": "21",
            "ipt_no": "ZY01", "begntime": "2024-06-01 08:00:00", "dept_code": "02",
            "dept_name": "外科"
        },
        "diseinfo": [{"diag_type": "1", "diag_code": "C34.900", "diag_name": "肺恶性肿瘤"}]
    });
    let admitted = his.ok("2401", admission).await;
    let visit = admitted["result"]["mdtrt_id"].as_str().expect("mdtrt_id").to_owned();
    his.ok("2301", fee_details(&visit, psn, fees)).await;
    let settlement = json!({"data": {
        "psn_no": psn, "mdtrt_id": visit, "mid_setl_flag": "0", "acct_used_flag": "1"
    }});
    let outpatient_code = his.call("2207", settlement.clone()).await;
    assert_eq!(outpatient_code["infcode"], -1, "{outpatient_code}");
    let said = outpatient_code["err_msg"].as_str().unwrap_or_default();
    assert!(said.starts_with("交易与就诊类型不符 2207"), "{outpatient_code}");
    // An interim settlement (中途结算) is refused, not taken for a discharge.
    let mut interim = settlement.clone();
    interim["data"]["mid_setl_flag"] = json!("1");
    for infno in ["2303", "2304"] {
        let refused = his.call(infno, interim.clone()).await;
        let said = refused["err_msg"].as_str().unwrap_or_default();
        assert!(said.starts_with("中途结算暂不支持"), "{infno}: {refused}");
    }
    let pre = his.ok("2303", settlement.clone()).await;
    identities_hold(&pre["setlinfo"], &pre["setldetail"]);
    let settled = his.ok("2304", settlement).await;
    identities_hold(&settled["setlinfo"], &settled["setldetail"]);
    assert_eq!(pre["setlinfo"]["balc"], settled["setlinfo"]["balc"], "the balance after, both");
    matches_engine(his, &settled["setlinfo"]).await;
    let discharge = json!({
        "dscginfo": {
            "mdtrt_id": visit, "psn_no": psn, "endtime": "2024-06-10 09:00:00", "dscg_way": "1"
        },
        "diseinfo": []
    });
    his.ok("2402", discharge).await;
    // The discharge of a settled stay is withdrawn only after its settlement is cancelled.
    let undo = json!({"data": {"mdtrt_id": visit, "psn_no": psn}});
    let refused = his.call("2405", undo.clone()).await;
    assert_eq!(refused["infcode"], -1, "{refused}");
    let setl_id = settled["setlinfo"]["setl_id"].as_str().expect("setl_id").to_owned();
    let cancel = json!({"data": {"setl_id": setl_id, "mdtrt_id": visit, "psn_no": psn}});
    his.ok("2305", cancel).await;
    his.ok("2405", undo).await;
    settled
}

async fn flows(encrypted: bool, code: &str) {
    let service = start().await;
    let mut his = service.setup(code, encrypted).await;
    let refused = his.call("1101", json!({"data": {"certno": "110101198001011111"}})).await;
    assert_eq!(refused["infcode"], -1, "sign-in is required in 110000: {refused}");
    let signed = his
        .ok(
            "9001",
            json!({"signIn": {"opter_no": "001", "mac": "00:00:00:00:00:00", "ip": "127.0.0.1"}}),
        )
        .await;
    his.sign_no = signed["signinoutb"]["sign_no"].as_str().expect("sign_no").to_owned();
    // Each of the three goes through the outpatient flow, then the inpatient flow.
    for (psn, certno) in
        [("P1", "110101198001011111"), ("P2", "110101196501012222"), ("P3", "110101195001013333")]
    {
        outpatient(&his, psn, certno).await;
    }
    let employee =
        inpatient(&his, "P1", &[("XA30", "01", "1", "9000.00"), ("XB30", "02", "2", "700.00")])
            .await;
    assert!(fen(&employee["setlinfo"]["hifp_pay"]) > Fen::ZERO, "{employee}");
    // A resident with a large admission reaches critical illness.
    let big = [
        ("XA10", "01", "1", "250000.00"),
        ("XB10", "02", "4", "2500.00"),
        ("XC10", "03", "1", "3000.00"),
    ];
    let resident = inpatient(&his, "P2", &big).await;
    assert!(
        fen(&resident["setlinfo"]["hifmi_pay"]) > Fen::ZERO,
        "critical illness pays: {resident}"
    );
    // An assistance recipient (低保) gets medical assistance at the window.
    let recipient = inpatient(&his, "P3", &[("XA20", "01", "1", "20000.00")]).await;
    assert!(fen(&recipient["setlinfo"]["maf_pay"]) > Fen::ZERO, "assistance pays: {recipient}");
    his.ok("9002", json!({"signOut": {"sign_no": his.sign_no, "opter_no": "001"}})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outpatient_and_inpatient_flows_in_plain_mode() {
    flows(false, "H11010500001").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outpatient_and_inpatient_flows_in_encrypted_mode() {
    flows(true, "H11010500002").await;
}

/// A signed-in plain-mode hospital with one outpatient visit of P1, lines uploaded.
async fn ready_visit(service: &Service) -> (His<'_>, String) {
    let mut his = service.setup("H11010500009", false).await;
    let signed = his.ok("9001", json!({"signIn": {"opter_no": "001"}})).await;
    his.sign_no = signed["signinoutb"]["sign_no"].as_str().expect("sign_no").to_owned();
    let registered = his
        .ok(
            "2201",
            json!({"data": {"psn_no": "P1", "insutype": "310", "begntime": "2024-06-10 09:30:00"}}),
        )
        .await;
    let visit = registered["data"]["mdtrt_id"].as_str().expect("mdtrt_id").to_owned();
    his.ok("2204", fee_details(&visit, "P1", &[("XA01", "01", "1", "3000.00")])).await;
    (his, visit)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_msgid_replays_the_first_answer_and_never_settles_twice() {
    let service = start().await;
    let (his, visit) = ready_visit(&service).await;
    let input = json!({"data": {"psn_no": "P1", "mdtrt_id": visit, "medfee_sumamt": 3000}});
    let first = his.call_with("2207", input.clone(), "H11010500009202406101000009999").await;
    let again = his.call_with("2207", input, "H11010500009202406101000009999").await;
    assert_eq!(first["infcode"], 0, "{first}");
    assert_eq!(again, first, "the same msgid answers the same envelope, byte for byte");
    let input = json!({"data": {"psn_no": "P1", "mdtrt_id": visit, "medfee_sumamt": 3000}});
    let rebuilt = his.call_pretty("2207", input, "H11010500009202406101000009999").await;
    assert_eq!(rebuilt, first, "the same input written with other whitespace is the same request");
    let reused = his
        .call_with(
            "2206",
            json!({"data": {"psn_no": "P1", "mdtrt_id": visit}}),
            "H11010500009202406101000009999",
        )
        .await;
    assert_eq!(reused["infcode"], -1);
    assert!(reused["err_msg"].as_str().expect("msg").contains("msgid"), "{reused}");
    let reference = reused["inf_refmsgid"].as_str().unwrap_or_default();
    assert!(reference.starts_with("110000"), "the division of treatment leads: {reused}");
    assert_eq!(reference.len(), 30, "{reused}");
    let day = service
        .v1(reqwest::Method::GET, "/v1/reconciliation?day=2024-06-10", &his.token, None)
        .await;
    assert_eq!(day["settlements"], 1, "one settlement for two identical messages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_15_digit_certno_finds_the_person_and_a_bad_check_character_is_named() {
    let service = start().await;
    let (his, _) = ready_visit(&service).await;
    let body = json!({
        "person_id": "P15", "name": "参保人", "id_number": "11010519491231002X",
        "birth_date": "1949-12-31", "gender": "1", "account_balance": "0",
        "enrolments": [{"year": 2024, "category": "retired"}]
    });
    service.v1(reqwest::Method::POST, "/v1/persons", &service.agency, Some(body)).await;
    let found = his.ok("1101", json!({"data": {"certno": "110105491231002"}})).await;
    assert_eq!(found["baseinfo"]["psn_no"], "P15", "{found}");
    // One digit mistyped: the check character tells.
    let mistyped = his.call("1101", json!({"data": {"certno": "110105194912310024"}})).await;
    assert_eq!(mistyped["infcode"], -1, "{mistyped}");
    let message = mistyped["err_msg"].as_str().unwrap_or_default();
    assert!(message.starts_with("未查询到参保人，证件号码校验码不符"), "{message}");
    // A number whose check character matches is only not found.
    let unknown = his.call("1101", json!({"data": {"certno": "110105194912310046"}})).await;
    assert_eq!(
        unknown["err_msg"],
        "未查询到参保人 no person with this credential in region 110000"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_read_is_audited_again_naming_its_message() {
    let service = start().await;
    let (his, visit) = ready_visit(&service).await;
    let settled = his.ok("2207", json!({"data": {"psn_no": "P1", "mdtrt_id": visit}})).await;
    let setl_id = settled["setlinfo"]["setl_id"].clone();
    let reads = [
        ("1101", json!({"data": {"certno": "110101198001011111"}}), "M-1101"),
        (
            "5203",
            json!({"data": {"psn_no": "P1", "setl_id": setl_id, "mdtrt_id": visit}}),
            "M-5203",
        ),
        ("5206", json!({"data": {"psn_no": "P1"}}), "M-5206"),
    ];
    for (infno, input, msgid) in &reads {
        let first = his.call_with(infno, input.clone(), msgid).await;
        assert_eq!(first["infcode"], 0, "{first}");
        let again = his.call_with(infno, input.clone(), msgid).await;
        assert_eq!(again, first, "{infno}: the first answer, byte for byte");
    }
    // A refused read sends no data: its replay is not audited either.
    let unknown = json!({"data": {"certno": "110101198001019999"}});
    for _ in 0..2 {
        assert_eq!(his.call_with("1101", unknown.clone(), "M-404").await["infcode"], -1);
    }
    let path = "/v1/audit-log?actor=H11010500009&limit=1000";
    let log = service.v1(reqwest::Method::GET, path, &service.agency, None).await;
    let seen: Vec<(String, String, String, bool)> = log["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["channel"] == "nhsa" && e["infno"] != "2207")
        .map(|e| {
            let text = |field: &str| e[field].as_str().unwrap_or_default().to_owned();
            (text("action"), text("infno"), text("msgid"), e["replayed"] == true)
        })
        .collect();
    // 5203 reads the settlement and the person it names.
    let expected: Vec<(String, String, String, bool)> = reads
        .iter()
        .flat_map(|(infno, _, msgid)| {
            let actions: &[&str] = match *infno {
                "5203" => &["read_settlement", "read_person"],
                _ => &["read_person"],
            };
            [false, true].into_iter().flat_map(move |replayed| {
                actions.iter().map(move |action| {
                    ((*action).to_owned(), (*infno).to_owned(), (*msgid).to_owned(), replayed)
                })
            })
        })
        .collect();
    assert_eq!(seen, expected, "{log}");
    assert!(!log.to_string().contains("M-404"), "{log}");
    // One message's rows, its replay's too; and the national interface's rows alone.
    let path = "/v1/audit-log?msgid=M-5203";
    let one = service.v1(reqwest::Method::GET, path, &service.agency, None).await;
    let rows: Vec<(&str, bool)> = one["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| (e["action"].as_str().unwrap_or_default(), e["replayed"] == true))
        .collect();
    let both = [("read_settlement", false), ("read_person", false)];
    let again = [("read_settlement", true), ("read_person", true)];
    assert_eq!(rows, [both, again].concat(), "{one}");
    assert!(one["entries"].as_array().expect("entries").iter().all(|e| e["msgid"] == "M-5203"));
    let path = "/v1/audit-log?channel=nhsa&limit=1000";
    let national = service.v1(reqwest::Method::GET, path, &service.agency, None).await;
    let national = national["entries"].as_array().expect("entries").clone();
    assert!(national.len() >= seen.len() && national.iter().all(|e| e["channel"] == "nhsa"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintenance_window_stops_the_regions_messages_but_not_the_institutions_own() {
    let service = start().await;
    let (his, visit) = ready_visit(&service).await;
    // The clock says 2024-06-10 10:00 at UTC+8.
    let window = json!({"starts_at": "2024-06-10T09:30:00+08:00",
        "ends_at": "2024-06-10T11:00:00+08:00", "reason": "数据库升级 database upgrade"});
    let announced = service
        .v1(reqwest::Method::POST, "/v1/maintenance-windows", &service.agency, Some(window))
        .await;
    let input = json!({"data": {"psn_no": "P1", "mdtrt_id": visit}});
    let refused = his.call("2207", input.clone()).await;
    assert_eq!(refused["infcode"], -1, "{refused}");
    let message = refused["err_msg"].as_str().expect("err_msg");
    assert!(message.contains("系统维护中") && message.contains("数据库升级"), "{message}");
    // Sign-in and reconciliation are the institution's own: they go on.
    let books = json!({"data": {"stmt_begndate": "2024-06-10", "stmt_enddate": "2024-06-10",
        "medfee_sumamt": 0, "fund_pay_sumamt": 0, "acct_pay": 0, "fixmedins_setl_cnt": 0}});
    let day = his.ok("3201", books).await;
    assert_eq!(day["stmtinfo"]["stmt_rslt"], "0", "nothing was settled: {day}");
    his.ok("9001", json!({"signIn": {"opter_no": "002"}})).await;
    let id = announced["window_id"].as_str().expect("window_id");
    let path = format!("/v1/maintenance-windows/{id}");
    service.v1(reqwest::Method::DELETE, &path, &service.agency, None).await;
    his.ok("2207", input).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reversal_2601_cancels_a_settlement_whose_answer_was_lost() {
    let service = start().await;
    let (his, visit) = ready_visit(&service).await;
    let lost = "H11010500009202406101000008888";
    let settled =
        his.call_with("2207", json!({"data": {"psn_no": "P1", "mdtrt_id": visit}}), lost).await;
    assert_eq!(settled["infcode"], 0);
    let reversed =
        his.ok("2601", json!({"data": {"psn_no": "P1", "omsgid": lost, "oinfno": "2207"}})).await;
    assert!(fen(&reversed["setlinfo"]["medfee_sumamt"]) < Fen::ZERO, "{reversed}");
    let unknown = "H11010500009202406101000007777";
    let reversal = json!({"data": {"psn_no": "P1", "omsgid": unknown, "oinfno": "2207"}});
    let never = his.ok("2601", reversal).await;
    assert_eq!(never["reversed"], false);
    let own = "H11010500009202406101000006666";
    let itself = json!({"data": {"psn_no": "P1", "omsgid": own, "oinfno": "2207"}});
    let refused = his.call_with("2601", itself, own).await;
    assert!(
        refused["err_msg"].as_str().is_some_and(|m| m.starts_with("原报文ID无效")),
        "{refused}"
    );
    // The original, arriving after its reversal, is refused and settles nothing.
    let late =
        his.call_with("2207", json!({"data": {"psn_no": "P1", "mdtrt_id": visit}}), unknown).await;
    assert_eq!(late["infcode"], -1, "{late}");
    assert!(late["err_msg"].as_str().is_some_and(|m| m.contains("原交易已冲正")), "{late}");
    for key in ["inf_refmsgid", "refmsg_time", "respond_time", "warn_msg", "cainfo", "signtype"] {
        assert!(late.get(key).is_some(), "a whole envelope: no {key} in {late}");
    }
    let visit_now =
        service.v1(reqwest::Method::GET, &format!("/v1/visits/{visit}"), &his.token, None).await;
    assert_eq!(visit_now["status"], "open", "the visit can be settled again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_answer_minus_one_with_a_precise_message_and_change_nothing() {
    let service = start().await;
    let (his, visit) = ready_visit(&service).await;
    let url = format!("{}/fsi/api/rsfComIfsService/callService", service.base);
    let raw =
        |body: &'static str| service.client.post(&url).bearer_auth(&his.token).body(body).send();
    let malformed: Value =
        raw("{\"infno\": \"1101\"").await.expect("r").json().await.expect("json");
    assert_eq!(
        (malformed["infcode"].as_i64(), malformed["err_msg"].as_str().map(|m| m.contains("JSON"))),
        (Some(-1), Some(true))
    );
    let cases = [
        ("9999", json!({"data": {}}), "not supported"),
        ("2207", json!({"data": {"psn_no": "P1"}}), "missing field `mdtrt_id`"),
        (
            "2207",
            json!({"data": {"psn_no": "P1", "mdtrt_id": visit, "medfee_sumamt": "2999.99"}}),
            "medfee_sumamt 2999.99 differs",
        ),
        (
            "2207",
            json!({"data": {"psn_no": "P2", "mdtrt_id": visit}}),
            "人员编号与就诊不符 psn_no `P2` is not the person of",
        ),
        (
            "2207",
            json!({"data": {"psn_no": "P1", "mdtrt_id": visit, "acct_used_flag": "N"}}),
            "个人账户使用标志无效 acct_used_flag `N` is 0 or 1",
        ),
        (
            "2207",
            json!({"data": {"psn_no": "P1", "mdtrt_id": visit, "medfee_sumamt": {"a": 1}}}),
            "金额格式错误 medfee_sumamt",
        ),
        (
            "2204",
            json!({"feedetail": [{"mdtrt_id": visit, "det_item_fee_sumamt": "5.00",
                "chrgitm_lv": "09", "feedetl_sn": "X9"}]}),
            "收费项目等级未知 chrgitm_lv `09`",
        ),
        (
            "2204",
            json!({"feedetail": [
                {"mdtrt_id": visit, "det_item_fee_sumamt": "-5", "cnt": 1, "pric": "-5"}
            ]}),
            "line_amount",
        ),
        (
            "2204",
            json!({"feedetail": [
                {"mdtrt_id": visit, "det_item_fee_sumamt": "5000.00", "cnt": 2, "pric": "10"}
            ]}),
            "明细金额不符 det_item_fee_sumamt 5000.00 is not cnt 2 × pric 10 (20.00)",
        ),
        (
            "2204",
            json!({"feedetail": [
                {"mdtrt_id": visit, "det_item_fee_sumamt": "5.00", "cnt": "two", "pric": "2.5"}
            ]}),
            "数量或单价格式错误",
        ),
    ];
    for (infno, input, says) in cases {
        let answer = his.call(infno, input).await;
        assert_eq!(answer["infcode"], -1, "{infno}: {answer}");
        assert!(answer["err_msg"].as_str().expect("msg").contains(says), "{infno}: {answer}");
    }
    his.ok("2202", json!({"data": {"psn_no": "P1", "mdtrt_id": visit}})).await;
    let settle_cancelled =
        his.call("2207", json!({"data": {"psn_no": "P1", "mdtrt_id": visit}})).await;
    assert_eq!(settle_cancelled["infcode"], -1);
    assert!(
        settle_cancelled["err_msg"].as_str().expect("msg").contains("was cancelled"),
        "{settle_cancelled}"
    );
    // A bad signature: a hospital in the signed mode whose cainfo does not verify.
    let mut signed = service.setup("H11010500008", true).await;
    signed.sign_no = String::new();
    let sign_in = b"{\"signIn\":{}}";
    let cainfo = crypto::sm2_sign(SERVICE_KEY, "H11010500008", sign_in).expect("sign");
    let mut forged = json!({
        "infno": "9001", "msgid": "H110105000082024061010000000001",
        "fixmedins_code": "H11010500008",
        "input": crypto::sm4_encrypt(&signed.sm4(), sign_in), "enc_type": "SM4",
        "cainfo": cainfo, "signtype": "SM2"
    });
    let answer: Value = service
        .client
        .post(&url)
        .json(&forged)
        .send()
        .await
        .expect("r")
        .json()
        .await
        .expect("json");
    assert_eq!(answer["infcode"], -1);
    assert!(answer["err_msg"].as_str().expect("msg").contains("signature"), "{answer}");
    forged["input"] = json!({"signIn": {}});
    let answer: Value = service
        .client
        .post(&url)
        .json(&forged)
        .send()
        .await
        .expect("r")
        .json()
        .await
        .expect("json");
    assert!(
        answer["err_msg"].as_str().expect("msg").contains("must send input encrypted"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_3201_balances_a_mixed_day_and_reports_a_difference() {
    let service = start().await;
    let (his, first) = ready_visit(&service).await;
    let settled = his.ok("2207", json!({"data": {"psn_no": "P1", "mdtrt_id": first}})).await;
    let registered =
        his.ok("2201", json!({"data": {"psn_no": "P2", "begntime": "2024-06-10 11:00:00"}})).await;
    let second = registered["data"]["mdtrt_id"].as_str().expect("id").to_owned();
    his.ok("2204", fee_details(&second, "P2", &[("XA02", "01", "2", "400.00")])).await;
    let other = his.ok("2207", json!({"data": {"psn_no": "P2", "mdtrt_id": second}})).await;
    let other_id = &other["setlinfo"]["setl_id"];
    for (wrong, says) in [
        (json!({"setl_id": other_id, "mdtrt_id": first, "psn_no": "P2"}), "就诊ID与结算不符"),
        (json!({"setl_id": other_id, "mdtrt_id": second, "psn_no": "P1"}), "人员编号与就诊不符"),
    ] {
        let refused = his.call("2208", json!({ "data": wrong })).await;
        assert_eq!(refused["infcode"], -1, "{refused}");
        assert!(refused["err_msg"].as_str().is_some_and(|m| m.contains(says)), "{refused}");
    }
    let cancel = json!({"data": {"setl_id": other_id, "mdtrt_id": second, "psn_no": "P2"}});
    his.ok("2208", cancel).await;
    // The day: one settlement in force (the other cancelled): the first's amounts.
    let s = &settled["setlinfo"];
    let books = json!({"data": {
        "setl_optins": "110000", "stmt_begndate": "2024-06-10", "stmt_enddate": "2024-06-10",
        "medfee_sumamt": s["medfee_sumamt"], "fund_pay_sumamt": s["fund_pay_sumamt"],
        "acct_pay": s["acct_pay"], "fixmedins_setl_cnt": 1
    }});
    let balanced = his.ok("3201", books.clone()).await;
    assert_eq!(balanced["stmtinfo"]["stmt_rslt"], "0", "{balanced}");
    // A count written as a decimal or a string is the same count.
    for count in [json!(1.0), json!("1")] {
        let mut same = books.clone();
        same["data"]["fixmedins_setl_cnt"] = count;
        assert_eq!(his.ok("3201", same).await["stmtinfo"]["stmt_rslt"], "0");
    }
    // A total that is absent or not an amount never balances: the message is refused.
    for (field, value, says) in [
        ("medfee_sumamt", Value::Null, "missing field `medfee_sumamt`"),
        ("medfee_sumamt", json!("250.004"), "金额格式错误 `medfee_sumamt`"),
        ("acct_pay", json!("abc"), "金额格式错误 `acct_pay`"),
        ("fixmedins_setl_cnt", json!("two"), "笔数格式错误 `fixmedins_setl_cnt`"),
        ("fixmedins_setl_cnt", Value::Null, "missing field `fixmedins_setl_cnt`"),
    ] {
        let mut broken = books.clone();
        match value {
            Value::Null => drop(broken["data"].as_object_mut().expect("data").remove(field)),
            value => broken["data"][field] = value,
        }
        let refused = his.call("3201", broken).await;
        assert_eq!(refused["infcode"], -1, "{field}: {refused}");
        assert!(refused["err_msg"].as_str().is_some_and(|m| m.contains(says)), "{refused}");
    }
    // The last days of the calendar are a period like any other (it once never ended).
    let mut far = books.clone();
    far["data"]["stmt_begndate"] = json!("9999-01-01");
    far["data"]["stmt_enddate"] = json!("9999-12-31");
    let far = his.ok("3201", far).await;
    assert!(far["stmtinfo"]["stmt_rslt_dscr"].as_str().is_some_and(|d| d.contains("医保 0")));
    let mut wrong = books;
    wrong["data"]["fund_pay_sumamt"] = json!(1.0);
    let unbalanced = his.ok("3201", wrong).await;
    assert_eq!(unbalanced["stmtinfo"]["stmt_rslt"], "1");
    assert!(
        unbalanced["stmtinfo"]["stmt_rslt_dscr"]
            .as_str()
            .expect("dscr")
            .contains("fund_pay_sumamt"),
        "{unbalanced}"
    );
    let ledger = json!({"data": {
        "stmt_begndate": "2024-06-10", "stmt_enddate": "2024-06-10",
        "details": [{
            "setl_id": s["setl_id"], "medfee_sumamt": s["medfee_sumamt"],
            "fund_pay_sumamt": s["fund_pay_sumamt"], "acct_pay": ""
        }]
    }});
    let details = his.ok("3202", ledger).await;
    // The cancelled settlement and its reversal are booked but missing from the hospital's list.
    assert_eq!(details["stmtinfo"]["stmt_rslt"], "1");
    assert_eq!(details["detail"].as_array().expect("detail").len(), 2, "{details}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_code_may_be_the_last_path_segment_and_queries_answer() {
    let service = start().await;
    let (his, visit) = ready_visit(&service).await;
    let settled = his.ok("2207", json!({"data": {"psn_no": "P1", "mdtrt_id": visit}})).await;
    let setl_id = &settled["setlinfo"]["setl_id"];
    let input = json!({"data": {"psn_no": "P1", "setl_id": setl_id, "mdtrt_id": visit}});
    let envelope = json!({
        "msgid": "H11010500009202406101000005203", "fixmedins_code": "H11010500009",
        "sign_no": his.sign_no, "infcode": 0, "input": input
    });
    let answer = his.post_raw(&format!("{CALL_SERVICE}/5203"), envelope.to_string()).await;
    assert_eq!(answer["infcode"], 0, "{answer}");
    assert_eq!(answer["output"]["setlinfo"]["hifp_pay"], settled["setlinfo"]["hifp_pay"]);
    // The institution's own settlement id is the msgid of the 2207 that made it.
    let medins_setl_id = &answer["output"]["setlinfo"]["medins_setl_id"];
    assert_eq!(medins_setl_id, &settled["setlinfo"]["medins_setl_id"], "{answer}");
    assert!(medins_setl_id.as_str().is_some_and(|m| m.starts_with("H11010500009")), "{answer}");
    let ytd = his.ok("5206", json!({"data": {"psn_no": "P1"}})).await;
    assert!(
        ytd["cuminfo"]
            .as_array()
            .expect("cuminfo")
            .iter()
            .any(|c| c["cum_type_code"] == "basic.outpatient.paid"
                && c["cum_type_name"] == "基本医疗保险统筹基金门诊支付累计"),
        "{ytd}"
    );
    let admissions = &ytd["cuminfo"][0];
    assert_eq!(
        (&admissions["cum_type_code"], &admissions["cum"]),
        (&json!("admissions"), &json!(0))
    );
}

/// The settlement keys of a setlinfo that are not person fields.
const SETTLEMENT_KEYS: [&str; 30] = [
    "mdtrt_id",
    "setl_id",
    "setl_time",
    "medfee_sumamt",
    "fulamt_ownpay_amt",
    "overlmt_selfpay",
    "preselfpay_amt",
    "inscp_scp_amt",
    "act_pay_dedc",
    "hifp_pay",
    "pool_prop_selfpay",
    "cvlserv_pay",
    "hifes_pay",
    "hifmi_pay",
    "hifob_pay",
    "maf_pay",
    "oth_pay",
    "fund_pay_sumamt",
    "psn_part_amt",
    "acct_pay",
    "psn_cash_pay",
    "hosp_part_amt",
    "balc",
    "acct_mulaid_pay",
    "medins_setl_id",
    "clr_optins",
    "clr_way",
    "clr_type",
    "med_type",
    "mdtrt_cert_type",
];

#[test]
fn every_captured_sample_parses_and_replies_have_its_shape() {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/spec");
    let Ok(entries) = std::fs::read_dir(&spec) else { return };
    for entry in entries {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let text = std::fs::read(&path).expect("read");
        let value: Value = serde_json::from_slice(&text).expect("JSON");
        if value.get("infno").is_some() {
            let request = onestop_nhsa::Request::parse(&text, None).expect("request envelope");
            assert_eq!(request.infno, "1101");
        } else {
            assert_eq!(
                onestop_nhsa::envelope::response_infcode(&value),
                Some(0),
                "{}",
                path.display()
            );
        }
    }
    // The Hunan 2304 capture's setlinfo keys are all in onestop's setlinfo, and its amounts
    // satisfy the identities onestop's replies satisfy.
    let hunan: Value = serde_json::from_slice(
        &std::fs::read(spec.join("response_2304_hunan_redacted.json")).expect("read"),
    )
    .expect("json");
    let info = &hunan["output"]["setlinfo"];
    identities_hold(info, &json!([{"fund_payamt": info["fund_pay_sumamt"]}]));
    let ours = onestop_nhsa::setl::person_fields(&onestop_api::service::PersonViewDto {
        person_id: String::new(),
        insured_region: String::new(),
        name: String::new(),
        id_number: String::new(),
        birth_date: String::new(),
        gender: String::new(),
        age: 0,
        account_balance: "0".into(),
        enrolment: None,
        assistance: None,
        as_of: String::new(),
        ytd: onestop_api::YtdDto::default(),
        account_credits: Vec::new(),
    });
    for key in info.as_object().expect("setlinfo").keys() {
        assert!(
            ours.contains_key(key) || SETTLEMENT_KEYS.contains(&key.as_str()),
            "onestop's setlinfo lacks `{key}`"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fee_line_is_uploaded_once_and_withdrawn_by_its_batch() {
    let service = start().await;
    // The visit has one line, F000 of batch B1, 3,000.00.
    let (his, visit) = ready_visit(&service).await;
    let again = fee_details(&visit, "P1", &[("XA01", "01", "1", "3000.00")]);
    let refused = his.call("2204", again.clone()).await;
    assert_eq!(refused["infcode"], -1, "{refused}");
    let said = refused["err_msg"].as_str().unwrap_or_default();
    assert!(said.contains("费用明细流水号重复 feedetl_sn `F000`"), "{refused}");
    let unknown = his.call("2205", json!({"data": {"mdtrt_id": visit, "chrg_bchno": "B9"}})).await;
    assert_eq!(unknown["infcode"], -1, "{unknown}");
    assert!(unknown["err_msg"].as_str().is_some_and(|m| m.contains("收费批次不存在")), "{unknown}");
    // The line is billed once: the settlement's total is the one line's.
    let total = json!({"data": {"psn_no": "P1", "mdtrt_id": visit, "medfee_sumamt": "3000.00"}});
    his.ok("2206", total).await;
    // Withdrawn by its batch, the line may be sent again.
    his.ok("2205", json!({"data": {"mdtrt_id": visit, "chrg_bchno": "B1"}})).await;
    his.ok("2204", again).await;
    let settled = his.ok("2207", json!({"data": {"psn_no": "P1", "mdtrt_id": visit}})).await;
    assert_eq!(fen(&settled["setlinfo"]["medfee_sumamt"]), Fen(300_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_input_is_answered_plain_whatever_its_enc_type_says() {
    let service = start().await;
    // A hospital in the plain mode that signs its input (keys set, `encrypted` false).
    let his = service.setup("H11010500007", false).await;
    let signed = his.ok("9001", json!({"signIn": {"opter_no": "001"}})).await;
    let sign_no = signed["signinoutb"]["sign_no"].as_str().expect("sign_no").to_owned();
    let public = crypto::sm2_public_key(HIS_KEY).expect("public key");
    let keys = json!({"encrypted": false, "sm4_key": "H11010500007H110", "sm2_public_key": public});
    let path = "/v1/institutions/H11010500007/nhsa-keys";
    service.v1(reqwest::Method::PUT, path, &service.agency, Some(keys)).await;
    let input = r#"{"data":{"mdtrt_cert_type":"02","mdtrt_cert_no":"110101198001011111"}}"#;
    let cainfo = crypto::sm2_sign(HIS_KEY, "H11010500007", input.as_bytes()).expect("sign");
    let body = format!(
        r#"{{"infno":"1101","msgid":"H110105000072024061010000000001",
            "fixmedins_code":"H11010500007","enc_type":"SM4","signtype":"SM2","sign_no":"{sign_no}",
            "cainfo":"{cainfo}","input":{input}}}"#
    );
    let answer = his.post_raw(CALL_SERVICE, body).await;
    assert_eq!(answer["infcode"], 0, "{answer}");
    assert_eq!(answer["output"]["baseinfo"]["psn_no"], "P1", "a plain answer: {answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_institutions_visit_is_refused_without_telling_its_kind() {
    let service = start().await;
    // H11010500009's outpatient visit, asked about by another hospital with an inpatient code:
    // refused as not its own, never as "the wrong kind of visit" (which would tell the kind).
    let (_, visit) = ready_visit(&service).await;
    let mut other = service.setup("H11010500006", false).await;
    let signed = other.ok("9001", json!({"signIn": {"opter_no": "001"}})).await;
    other.sign_no = signed["signinoutb"]["sign_no"].as_str().expect("sign_no").to_owned();
    let refused = other.call("2304", json!({"data": {"psn_no": "P1", "mdtrt_id": visit}})).await;
    assert_eq!(refused["infcode"], -1, "{refused}");
    let said = refused["err_msg"].as_str().unwrap_or_default();
    assert!(!said.contains("交易与就诊类型不符") && said.contains("[forbidden]"), "{refused}");
}
