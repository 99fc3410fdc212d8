//! The national interface across a federation: a Langfang hospital's system, speaking only the
//! national interface to its own node, admits, bills, settles and cancels a Beijing resident;
//! the Beijing node computes and commits, the Langfang node records what its hospital settled
//! and reconciles it (3201, by scheme), and the insured region's maintenance window and outage
//! reach the hospital as precise failures; so do a peer that never answers (the settle is
//! remembered), a peer that refuses, a region no node serves, and what a node refuses of a
//! message forwarded to it. What is remembered is given up after two days only when the
//! insured node answers that it never took effect, never while the node cannot be asked.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use onestop_core::Region;
use onestop_nhsa::crypto;
use onestop_server::federation::Federation;
use onestop_server::{AppState, NhsaConfig};
use onestop_store::Store;
use reqwest::Client;
use serde_json::{Value, json};

const SECRET: &str = "a-shared-secret-of-the-federation";

struct Node {
    store: Arc<Store>,
    agency: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

fn federation_file(name: &str, region: &str, peer: (&str, &str, &str)) -> String {
    federation_file_with(name, region, 2000, &[peer])
}

fn federation_file_with(
    name: &str,
    region: &str,
    timeout_ms: u32,
    peers: &[(&str, &str, &str)],
) -> String {
    let mut text = format!(
        "[node]\nname = \"{name}\"\nregions = [\"{region}\"]\ntimeout_ms = {timeout_ms}\n\
         status_refresh_ms = 100\n"
    );
    for (peer, served, url) in peers {
        text +=
            &format!("[[peers]]\nname = \"{peer}\"\nregions = [\"{served}\"]\nurl = \"{url}\"\n");
    }
    text
}

/// A node of `region` on `listener`, with its agency's credential.
async fn node(
    dir: &Path,
    listener: tokio::net::TcpListener,
    (name, region): (&str, u32),
    federation: &str,
    sign_in: bool,
) -> Node {
    node_with_clock(dir, listener, (name, region), federation, sign_in, support::clock()).await
}

/// As [`node`], on `clock`.
async fn node_with_clock(
    dir: &Path,
    listener: tokio::net::TcpListener,
    (name, region): (&str, u32),
    federation: &str,
    sign_in: bool,
    clock: onestop_server::Clock,
) -> Node {
    let path = dir.join(format!("{name}.sqlite"));
    let (store, book, token) =
        support::store_with_agency(&path, (&format!("A{region}"), "agency", region)).await;
    let federation = Federation::from_toml(federation, SECRET, dir).expect("federation file");
    let sign_in_regions = if sign_in { [Region(region)].into() } else { Default::default() };
    let state = AppState::new(Arc::clone(&store), book, clock)
        .with_federation(federation)
        .with_nhsa(NhsaConfig { sign_in_regions, service_key: None });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    tokio::spawn(onestop_server::serve(listener, state, shutdown));
    Node { store, agency: token, stop: Some(stop) }
}

async fn v1(client: &Client, method: &str, url: String, token: &str, body: Value) -> Value {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = client.request(method.clone(), &url).bearer_auth(token);
    if !body.is_null() {
        request = request.json(&body);
    }
    let response = request.send().await.expect("response");
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{method} {url}: {status} {answer}");
    answer
}

/// The Langfang hospital's system.
struct His {
    client: Client,
    node: String,
    token: String,
    sign_no: String,
    serial: AtomicU32,
}

const CODE: &str = "H13100000001";
const SM4_KEY: &str = "H131000000010000";

impl His {
    fn msgid(&self) -> String {
        format!("{CODE}20240610100000{:04}", self.serial.fetch_add(1, Ordering::SeqCst))
    }

    async fn call_with(&self, infno: &str, input: Value, msgid: &str) -> Value {
        self.call_about("110000", infno, input, msgid).await
    }

    /// A message about a person insured in `insured`.
    async fn call_about(&self, insured: &str, infno: &str, input: Value, msgid: &str) -> Value {
        let envelope = json!({
            "infno": infno, "msgid": msgid, "mdtrtarea_admvs": "131000",
            "insuplc_admdvs": insured, "recer_sys_code": "MK", "infver": "V1.0",
            "opter_type": "1", "opter": "001", "opter_name": "收费员",
            "inf_time": "2024-06-10 10:00:00", "fixmedins_code": CODE,
            "fixmedins_name": "廊坊市人民医院", "sign_no": self.sign_no, "input": input,
            "enc_type": if input.is_string() { "SM4" } else { "" },
        });
        let url = format!("{}/fsi/api/rsfComIfsService/callService", self.node);
        let response = self.client.post(url).bearer_auth(&self.token).json(&envelope).send();
        response.await.expect("response").json().await.expect("an envelope")
    }

    /// In the encrypted mode: the input sealed with the institution's SM4 key, the output
    /// opened with it.
    async fn call_sealed(&self, infno: &str, input: Value, msgid: &str) -> Value {
        let key = crypto::sm4_key(SM4_KEY).expect("key");
        let sealed = json!(crypto::sm4_encrypt(&key, input.to_string().as_bytes()));
        let mut envelope = self.call_with(infno, sealed, msgid).await;
        assert_eq!(envelope["infcode"], 0, "{infno}: {envelope}");
        let output = envelope["output"].as_str().expect("the output is sealed");
        let plain = crypto::sm4_decrypt(&key, output).expect("opens with the key");
        envelope["output"] = serde_json::from_slice(&plain).expect("json");
        envelope
    }

    async fn call(&self, infno: &str, input: Value) -> Value {
        self.call_with(infno, input, &self.msgid()).await
    }

    async fn ok(&self, infno: &str, input: Value) -> Value {
        let response = self.call(infno, input).await;
        assert_eq!(response["infcode"], 0, "{infno}: {response}");
        response["output"].clone()
    }

    async fn fails(&self, infno: &str, input: Value) -> String {
        let response = self.call(infno, input).await;
        assert_eq!(response["infcode"], -1, "{infno}: {response}");
        response["err_msg"].as_str().expect("err_msg").to_owned()
    }
}

fn reconciliation(insutype: &str, count: u32, medfee: &str, fund: &str) -> Value {
    json!({"data": {
        "insutype": insutype, "clr_type": "21", "setl_optins": "110000",
        "stmt_begndate": "2024-06-10", "stmt_enddate": "2024-06-10",
        "medfee_sumamt": medfee, "fund_pay_sumamt": fund, "acct_pay": "0.00",
        "fixmedins_setl_cnt": count
    }})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hospital_on_the_national_interface_settles_a_visitor_through_its_node() {
    let dir = tempfile::tempdir().expect("temp dir");
    let beijing_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let langfang_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let beijing_url = format!("http://{}", beijing_listener.local_addr().expect("addr"));
    let langfang_url = format!("http://{}", langfang_listener.local_addr().expect("addr"));
    let file = federation_file("beijing", "110000", ("langfang", "131000", &langfang_url));
    let mut beijing = node(dir.path(), beijing_listener, ("beijing", 110_000), &file, false).await;
    let file = federation_file("langfang", "131000", ("beijing", "110000", &beijing_url));
    let langfang = node(dir.path(), langfang_listener, ("langfang", 131_000), &file, true).await;
    let client = onestop_server::tls::client_builder(None).build().expect("client");

    // The Beijing agency enrols the resident and files long-term residence in Langfang; the
    // Langfang agency registers its hospital.
    let person = json!({"person_id": "P0001", "name": "王五", "id_number": "110101197001011234",
        "birth_date": "1970-01-01", "gender": "1",
        "enrolments": [{"year": 2024, "category": "working_age"}]});
    v1(&client, "POST", format!("{beijing_url}/v1/persons"), &beijing.agency, person).await;
    let filing = json!({"person_id": "P0001", "kind": "long_term_resident",
        "destination": "131000", "start": "2024-01-01"});
    v1(&client, "POST", format!("{beijing_url}/v1/filings"), &beijing.agency, filing).await;
    let hospital = json!({"institution_id": CODE, "name": "廊坊市人民医院", "level": "3"});
    let url = format!("{langfang_url}/v1/institutions");
    let credential = v1(&client, "POST", url, &langfang.agency, hospital).await;
    let mut his = His {
        client: client.clone(),
        node: langfang_url.clone(),
        token: credential["token"].as_str().expect("token").to_owned(),
        sign_no: String::new(),
        serial: AtomicU32::new(0),
    };

    // Sign-in is Langfang's (its region requires it); every message after carries it.
    let refused = his.fails("1101", json!({"data": {"certno": "110101197001011234"}})).await;
    assert!(refused.contains("9001"), "{refused}");
    let signed = his.ok("9001", json!({"signIn": {"opter_no": "001"}})).await;
    his.sign_no = signed["signinoutb"]["sign_no"].as_str().expect("sign_no").to_owned();

    let found = his.ok("1101", json!({"data": {"certno": "110101197001011234"}})).await;
    assert_eq!(found["baseinfo"]["psn_no"], "P0001", "{found}");
    let admission = json!({"mdtrtinfo": {"psn_no": "P0001", "insutype": "390", "med_type": "21",
        "ipt_no": "ZY01", "begntime": "2024-06-10 08:00:00"}});
    let admitted = his.ok("2401", admission).await;
    let visit = admitted["result"]["mdtrt_id"].as_str().expect("mdtrt_id").to_owned();
    assert!(visit.starts_with("V-110000-P0001-"), "the visit lives with the person: {visit}");
    let fees = json!({"feedetail": [{"feedetl_sn": "F001", "mdtrt_id": visit, "psn_no": "P0001",
        "chrg_bchno": "B1", "med_list_codg": "XA30", "det_item_fee_sumamt": "10000.00",
        "cnt": "1", "pric": "10000.00", "chrgitm_lv": "01"}]});
    his.ok("2301", fees).await;
    let settle = json!({"data": {"psn_no": "P0001", "mdtrt_id": visit, "acct_used_flag": "0"}});
    let pre = his.ok("2303", settle.clone()).await;
    // Beijing resident, level 3, first admission: (10000 − 1300) × 78 % (Langfang's catalog,
    // Beijing's ratios; no cut for a filed long-term resident).
    assert_eq!(pre["setlinfo"]["fund_pay_sumamt"], 6786.0, "{pre}");

    let msgid = his.msgid();
    let settled = his.call_with("2304", settle.clone(), &msgid).await;
    assert_eq!(settled["infcode"], 0, "{settled}");
    let setlinfo = &settled["output"]["setlinfo"];
    assert_eq!(setlinfo["fund_pay_sumamt"], 6786.0, "{settled}");
    let setl_id = setlinfo["setl_id"].as_str().expect("setl_id").to_owned();
    assert!(setl_id.starts_with("S-110000-P0001-"), "{setl_id}");
    // The same msgid again replays Beijing's first answer: nothing settles twice.
    let again = his.call_with("2304", settle.clone(), &msgid).await;
    assert_eq!(again["output"], settled["output"]);
    let url = format!("{beijing_url}/v1/settlements/{setl_id}");
    let booked = v1(&client, "GET", url, &beijing.agency, Value::Null).await;
    assert_eq!(booked["fund_total"], "6786.00", "Beijing holds the settlement: {booked}");

    // Langfang reconciles its hospital's day, its visitors included, by scheme.
    let books = reconciliation("390", 1, "10000.00", "6786.00");
    let balanced = his.ok("3201", books).await;
    assert_eq!(balanced["stmtinfo"]["stmt_rslt"], "0", "{balanced}");
    let employees = his.ok("3201", reconciliation("310", 1, "10000.00", "6786.00")).await;
    assert_eq!(employees["stmtinfo"]["stmt_rslt"], "1", "no employee settled: {employees}");
    let details = json!({"data": {"stmt_begndate": "2024-06-10", "stmt_enddate": "2024-06-10",
        "details": [{"setl_id": setl_id, "medfee_sumamt": "10000.00",
            "fund_pay_sumamt": "6786.00"}]}});
    let detailed = his.ok("3202", details).await;
    assert_eq!(detailed["stmtinfo"]["stmt_rslt"], "0", "{detailed}");

    // Cancelled: Beijing reverses it, Langfang records the reversal, the day nets to nothing.
    let cancel = json!({"data": {"setl_id": setl_id, "mdtrt_id": visit, "psn_no": "P0001"}});
    let reversed = his.ok("2305", cancel).await;
    assert_eq!(reversed["setlinfo"]["fund_pay_sumamt"], -6786.0, "{reversed}");
    let balanced = his.ok("3201", reconciliation("390", 0, "0.00", "0.00")).await;
    assert_eq!(balanced["stmtinfo"]["stmt_rslt"], "0", "{balanced}");

    // In the encrypted mode: Langfang opens the input, Beijing settles, Langfang seals the
    // answer; the same sealed message again replays Beijing's answer.
    let keys = json!({"encrypted": false, "sm4_key": SM4_KEY});
    let url = format!("{langfang_url}/v1/institutions/{CODE}/nhsa-keys");
    v1(&client, "PUT", url, &langfang.agency, keys).await;
    let msgid = his.msgid();
    let sealed = his.call_sealed("2304", settle.clone(), &msgid).await;
    assert_eq!(sealed["output"]["setlinfo"]["fund_pay_sumamt"], 6786.0, "{sealed}");
    let again = his.call_sealed("2304", settle.clone(), &msgid).await;
    assert_eq!(again["output"], sealed["output"]);
    let second = sealed["output"]["setlinfo"]["setl_id"].as_str().expect("setl_id");
    assert_ne!(second, setl_id, "a new settlement after the cancellation");
    let balanced = his.ok("3201", reconciliation("390", 1, "10000.00", "6786.00")).await;
    assert_eq!(balanced["stmtinfo"]["stmt_rslt"], "0", "{balanced}");

    // Beijing's maintenance window reaches the Langfang hospital; its own messages still work.
    let window = json!({"starts_at": "2024-06-10T09:30:00+08:00",
        "ends_at": "2024-06-10T11:00:00+08:00", "reason": "数据库升级 database upgrade"});
    let url = format!("{beijing_url}/v1/maintenance-windows");
    let announced = v1(&client, "POST", url, &beijing.agency, window).await;
    let refused = his.fails("1101", json!({"data": {"certno": "110101197001011234"}})).await;
    assert!(refused.contains("系统维护中") && refused.contains("110000"), "{refused}");
    his.ok("3201", reconciliation("390", 1, "10000.00", "6786.00")).await;
    let id = announced["window_id"].as_str().expect("window_id");
    let url = format!("{beijing_url}/v1/maintenance-windows/{id}");
    v1(&client, "DELETE", url, &beijing.agency, Value::Null).await;
    // Langfang asks for Beijing's status every 100 ms here.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    his.ok("1101", json!({"data": {"certno": "110101197001011234"}})).await;

    // Beijing down: nothing is sent, and the hospital is told so.
    let _ = beijing.stop.take().map(|stop| stop.send(()));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let admission = json!({"mdtrtinfo": {"psn_no": "P0001", "insutype": "390", "med_type": "21",
        "begntime": "2024-06-10 10:00:00"}});
    let refused = his.fails("2401", admission).await;
    assert!(refused.contains("无法连接") && refused.contains("nothing was settled"), "{refused}");
}

/// A peer that accepts connections and never answers.
async fn silent_peer() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    url
}

/// A peer that answers every request 401 with a body that is no envelope.
async fn refusing_peer() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 65_536];
                let _ = stream.read(&mut buffer).await;
                let answer = "HTTP/1.1 401 Unauthorized\r\ncontent-length: 11\r\n\
                    connection: close\r\n\r\nnot allowed";
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    url
}

/// A peer that answers every message with a reversal, but cannot show its record (503).
async fn forgetful_peer() -> String {
    use axum::routing::{get, post};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let envelope = json!({"infcode": 0, "err_msg": "", "output": {"setlinfo": {
        "setl_id": "R-120000-P0001-3", "mdtrt_id": "V-120000-P0001-1"}}});
    let app = axum::Router::new()
        .route("/fsi/api/rsfComIfsService/callService", post(|| async { axum::Json(envelope) }))
        .route(
            "/v1/settlements/{id}",
            get(|| async { axum::http::StatusCode::SERVICE_UNAVAILABLE }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_does_not_answer_or_refuses_is_told_precisely_and_nothing_is_lost() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let langfang_url = format!("http://{}", listener.local_addr().expect("addr"));
    let (silent, refusing) = (silent_peer().await, refusing_peer().await);
    let forgetful = forgetful_peer().await;
    let peers = [
        ("beijing", "110000", silent.as_str()),
        ("shanghai", "310000", &refusing),
        ("tianjin", "120000", &forgetful),
    ];
    let file = federation_file_with("langfang", "131000", 300, &peers);
    let langfang = node(dir.path(), listener, ("langfang", 131_000), &file, false).await;
    let client = onestop_server::tls::client_builder(None).build().expect("client");
    let hospital = json!({"institution_id": CODE, "name": "廊坊市人民医院", "level": "3"});
    let url = format!("{langfang_url}/v1/institutions");
    let credential = v1(&client, "POST", url, &langfang.agency, hospital).await;
    let his = His {
        client: client.clone(),
        node: langfang_url.clone(),
        token: credential["token"].as_str().expect("token").to_owned(),
        sign_no: String::new(),
        serial: AtomicU32::new(0),
    };

    // No answer within the bound: the outcome is unknown; the settle is remembered, to be
    // asked about until Langfang has its record.
    let visit = "V-110000-P0001-1";
    let msgid = his.msgid();
    let settle = json!({"data": {"psn_no": "P0001", "mdtrt_id": visit}});
    let lost = his.call_with("2304", settle, &msgid).await;
    assert_eq!(lost["infcode"], -1, "{lost}");
    let message = lost["err_msg"].as_str().expect("err_msg");
    assert!(message.contains("outcome is unknown") && message.contains("300 ms"), "{message}");
    let admission = json!({"mdtrtinfo": {"psn_no": "P0001", "begntime": "2024-06-10 10:00:00"}});
    assert!(his.fails("2401", admission.clone()).await.contains("outcome is unknown"));
    // A cancel lost the same way is remembered by the settlement it names.
    let settlement = "S-110000-P0001-2";
    let cancel_msgid = his.msgid();
    let cancel = json!({"data": {"psn_no": "P0001", "mdtrt_id": visit, "setl_id": settlement}});
    let lost = his.call_with("2305", cancel, &cancel_msgid).await;
    assert!(lost["err_msg"].as_str().expect("err_msg").contains("outcome is unknown"), "{lost}");
    let pending = langfang.store.read(|tx| tx.pending_forwards()).await.expect("read");
    let mut remembered: Vec<_> =
        pending.iter().map(|p| (&*p.institution_id, &*p.visit_id, &*p.idempotency_key)).collect();
    remembered.sort();
    let expected = [(CODE, settlement, cancel_msgid.as_str()), (CODE, visit, msgid.as_str())];
    assert_eq!(remembered, expected, "only the settle and the cancel are remembered");

    // A cancel answered whose reversal cannot be fetched for the record: remembered by the
    // reversal, to be fetched later.
    let answered_msgid = his.msgid();
    let input = json!({"data": {"psn_no": "P0001", "setl_id": "S-120000-P0001-2"}});
    let answered = his.call_about("120000", "2305", input, &answered_msgid).await;
    assert_eq!(answered["infcode"], 0, "{answered}");
    let pending = langfang.store.read(|tx| tx.pending_forwards()).await.expect("read");
    let reversal = pending.iter().find(|p| p.idempotency_key == answered_msgid).expect("kept");
    assert_eq!(reversal.visit_id, "R-120000-P0001-3");

    // A peer that answers with no envelope: its status is relayed, nothing else.
    let refused = his.call_about("310000", "2401", admission.clone(), &his.msgid()).await;
    let message = refused["err_msg"].as_str().expect("err_msg");
    assert!(message.contains("拒绝了转发") && message.contains("401"), "{message}");
    assert!(message.contains("not allowed"), "{message}");

    // A region no node serves.
    let nowhere = his.call_about("440100", "2401", admission, &his.msgid()).await;
    let message = nowhere["err_msg"].as_str().expect("err_msg");
    assert!(message.contains("440100") && message.contains("not served"), "{message}");

    // What a node refuses of a message forwarded to it (the secret is right).
    let forwarded = |fixmedins: &str, insured: &str, input: Value| {
        let envelope = json!({"infno": "1101", "msgid": "M1", "fixmedins_code": fixmedins,
            "insuplc_admdvs": insured, "input": input});
        let request = client
            .post(format!("{langfang_url}/fsi/api/rsfComIfsService/callService"))
            .header("x-onestop-federation-secret", SECRET)
            .header("x-onestop-actor", format!("{CODE};131000;3;institution"))
            .json(&envelope)
            .send();
        async move {
            let answer: Value = request.await.expect("answer").json().await.expect("envelope");
            assert_eq!(answer["infcode"], -1, "{answer}");
            answer["err_msg"].as_str().expect("err_msg").to_owned()
        }
    };
    let query = json!({"data": {"certno": "110101197001011234"}});
    let other = forwarded("H13100000002", "131000", query.clone()).await;
    assert!(other.contains("转发的机构不符"), "{other}");
    let sealed = forwarded(CODE, "131000", json!("c2VhbGVk")).await;
    assert!(sealed.contains("明文"), "{sealed}");
    let elsewhere = forwarded(CODE, "110000", query).await;
    assert!(elsewhere.contains("not served"), "never forwarded again: {elsewhere}");
}

/// A peer that knows none of the visits and settlements it is asked about (404), or, for
/// `fails`, cannot answer (503); it counts the questions.
async fn peer_that_knows_nothing(fails: bool, asked: Arc<AtomicU32>) -> String {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let answer = move || {
        let asked = Arc::clone(&asked);
        async move {
            asked.fetch_add(1, Ordering::SeqCst);
            if fails {
                axum::http::StatusCode::SERVICE_UNAVAILABLE
            } else {
                axum::http::StatusCode::NOT_FOUND
            }
        }
    };
    let app = axum::Router::new()
        .route("/v1/visits/{id}", get(answer.clone()))
        .route("/v1/settlements/{id}", get(answer));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Waits until `asked` has counted `more` questions beyond `since` (the background asks every
/// 100 ms): a whole round of questions has then run on the clock as it is now. False if the
/// questions stopped (nothing is left to ask about).
async fn rounds(asked: &AtomicU32, since: u32, more: u32) -> bool {
    for _ in 0..100 {
        if asked.load(Ordering::SeqCst) >= since + more {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_request_is_given_up_after_two_days_only_when_the_insured_node_never_saw_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let langfang_url = format!("http://{}", listener.local_addr().expect("addr"));
    let (unaware, failing) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let tianjin = peer_that_knows_nothing(false, Arc::clone(&unaware)).await;
    let shanghai = peer_that_knows_nothing(true, Arc::clone(&failing)).await;
    let peers = [("tianjin", "120000", tianjin.as_str()), ("shanghai", "310000", &shanghai)];
    let file = federation_file_with("langfang", "131000", 300, &peers);
    // The node's clock runs `later` seconds after the fixed test clock.
    let later = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let offset = Arc::clone(&later);
    let clock: onestop_server::Clock = Arc::new(move || {
        let seconds = jiff::SignedDuration::from_secs(offset.load(Ordering::SeqCst));
        support::clock()().checked_add(seconds).expect("a time")
    });
    let langfang =
        node_with_clock(dir.path(), listener, ("langfang", 131_000), &file, false, clock).await;
    let client = onestop_server::tls::client_builder(None).build().expect("client");
    let hospital = json!({"institution_id": CODE, "name": "廊坊市人民医院", "level": "3"});
    v1(&client, "POST", format!("{langfang_url}/v1/institutions"), &langfang.agency, hospital)
        .await;
    // A settle and a cancel lost on their way to Tianjin (which never saw them), and a settle
    // lost on its way to Shanghai (which cannot be asked): remembered at the test clock's time.
    let lost = [
        ("V-120000-P0001-1", "k-settle"),
        ("S-120000-P0002-2", "k-cancel"),
        ("V-310000-P0003-1", "k-unknown"),
    ];
    for (id, key) in lost {
        let pending = onestop_store::model::PendingForward {
            institution_id: CODE.into(),
            visit_id: id.into(),
            idempotency_key: key.into(),
            forwarded_at: "2024-06-10T10:00:00+08:00".into(),
        };
        langfang.store.write(move |tx| tx.insert_pending_forward(&pending)).await.expect("kept");
    }
    let remembered = || async {
        let pending = langfang.store.read(|tx| tx.pending_forwards()).await.expect("read");
        let mut keys: Vec<String> = pending.into_iter().map(|p| p.idempotency_key).collect();
        keys.sort();
        keys
    };

    // Up to two days (two days to the second, the bound, included), a request the insured
    // node does not know may still be on its way: kept, and asked about again.
    later.store(2 * 86_400, Ordering::SeqCst);
    let asked_again = rounds(&unaware, unaware.load(Ordering::SeqCst), 4).await;
    assert_eq!(remembered().await, ["k-cancel", "k-settle", "k-unknown"]);
    assert!(asked_again, "kept requests are asked about again");

    // After two days it is given up (it never took effect); the one whose insured node cannot
    // answer is kept, however old: its outcome is still unknown.
    later.store(2 * 86_400 + 1, Ordering::SeqCst);
    for _ in 0..200 {
        if remembered().await.len() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(rounds(&failing, failing.load(Ordering::SeqCst), 2).await, "asked again");
    assert_eq!(remembered().await, ["k-unknown"]);
    later.store(30 * 86_400, Ordering::SeqCst);
    assert!(rounds(&failing, failing.load(Ordering::SeqCst), 2).await, "asked again");
    assert_eq!(remembered().await, ["k-unknown"]);
}
