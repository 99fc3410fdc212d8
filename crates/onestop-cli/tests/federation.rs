//! A federation for real: two `onestop serve` processes on loopback, Beijing's node (110000)
//! holding Beijing's people and Langfang's node (131000) its hospitals. A Langfang hospital
//! settles a Beijing resident through its own node, which forwards to Beijing's; then the
//! insured node is frozen past the bound, killed mid-request, restarted, and put in
//! maintenance, and every settlement is still made exactly once. The same two nodes also run
//! over TLS, each serving HTTPS and verifying its peer by the federation's CA.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde_json::{Value, json};

const SECRET: &str = "federation-test-secret-0123456789";
const BOUND_MS: u64 = 600;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    listener.local_addr().expect("addr").port()
}

struct Node {
    name: &'static str,
    port: u16,
    database: String,
    config: PathBuf,
    child: Option<Child>,
    /// The certificate and key it serves HTTPS with, if it does.
    tls: Option<(PathBuf, PathBuf)>,
}

impl Node {
    fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    fn start(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_onestop"))
            .args(["serve", "--database", &self.database, "--listen"])
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--federation")
            .arg(&self.config)
            .args(self.tls.iter().flat_map(|(certificate, key)| {
                [
                    OsStr::new("--tls-cert"),
                    certificate.as_os_str(),
                    OsStr::new("--tls-key"),
                    key.as_os_str(),
                ]
            }))
            .env("ONESTOP_FEDERATION_SECRET", SECRET)
            .current_dir(repo())
            .stdout(Stdio::null())
            .stderr(self.log())
            .spawn()
            .expect("onestop serve starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "node {} did not start", self.name);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Where the node's standard error goes (appended to across restarts), to read what it said.
    fn log(&self) -> std::fs::File {
        let path = self.config.with_extension("log");
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path);
        file.expect("the node's log")
    }

    /// Waits, 10 s at most, until the node has said `text` `count` times; what it said.
    fn said(&self, text: &str, count: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log =
                std::fs::read_to_string(self.config.with_extension("log")).unwrap_or_default();
            if log.matches(text).count() >= count {
                return log;
            }
            assert!(Instant::now() < deadline, "node {} never said `{text}`: {log}", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, signal: Signal) {
        let pid = self.child.as_ref().expect("running").id();
        let pid = Pid::from_raw(i32::try_from(pid).expect("a pid"));
        nix::sys::signal::kill(pid, signal).expect("the signal is delivered");
        if signal == Signal::SIGSTOP {
            self.wait_stopped(pid);
        }
    }

    /// Waits until every thread of the node is stopped. `kill` returns once SIGSTOP is
    /// queued, and the stop itself waits for one of the node's threads to be scheduled; on a
    /// busy machine the other threads could meanwhile answer a request the test sends next.
    fn wait_stopped(&self, pid: Pid) {
        let tasks = PathBuf::from(format!("/proc/{pid}/task"));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let entries = std::fs::read_dir(&tasks).expect("the node's threads");
            let stopped = entries.flatten().all(|task| {
                let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
                // The state follows the command name's closing parenthesis: "T" when stopped.
                let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
                state.is_none_or(|rest| rest.starts_with('T') || rest.starts_with('t'))
            });
            if stopped {
                return;
            }
            assert!(Instant::now() < deadline, "node {} did not stop", self.name);
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn token(&self, id: &str, region: &str) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_onestop"))
            .args(["token", "--database", &self.database, "--id", id, "--region", region])
            .output()
            .expect("onestop token runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A throw-away CA and the certificate it signs for 127.0.0.1, as PEM files in `dir`.
struct Certificates {
    ca: PathBuf,
    certificate: PathBuf,
    key: PathBuf,
}

impl Certificates {
    fn new(dir: &Path) -> Certificates {
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let ca_certificate = ca.self_signed(&ca_key).expect("CA certificate");
        let server = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("names");
        let key = rcgen::KeyPair::generate().expect("key");
        let certificate =
            server.signed_by(&key, &rcgen::Issuer::new(ca, ca_key)).expect("certificate");
        let files = Certificates {
            ca: dir.join("ca.pem"),
            certificate: dir.join("node.pem"),
            key: dir.join("node.key"),
        };
        std::fs::write(&files.ca, ca_certificate.pem()).expect("written");
        std::fs::write(&files.certificate, certificate.pem()).expect("written");
        std::fs::write(&files.key, key.serialize_pem()).expect("written");
        files
    }

    fn roots(&self) -> onestop_server::tls::RootCertStore {
        onestop_store::root_certificates(&self.ca).expect("the CA")
    }
}

fn node(
    dir: &Path,
    name: &'static str,
    region: &str,
    port: u16,
    peer: (&str, &str, u16),
    tls: Option<&Certificates>,
) -> Node {
    let config = dir.join(format!("{name}.toml"));
    let (scheme, ca) = match tls {
        Some(files) => ("https", format!("ca = \"{}\"\n", files.ca.display())),
        None => ("http", String::new()),
    };
    let text = format!(
        "[node]\nname = \"{name}\"\nregions = [\"{region}\"]\ntimeout_ms = {BOUND_MS}\n\
         status_refresh_ms = 200\n{ca}\n[[peers]]\nname = \"{}\"\nregions = [\"{}\"]\n\
         url = \"{scheme}://127.0.0.1:{}\"\n",
        peer.0, peer.1, peer.2
    );
    std::fs::write(&config, text).expect("config");
    let database = format!("sqlite:{}", dir.join(format!("{name}.sqlite")).display());
    let tls = tls.map(|files| (files.certificate.clone(), files.key.clone()));
    Node { name, port, database, config, child: None, tls }
}

struct Client {
    http: reqwest::Client,
}

impl Client {
    async fn call(
        &self,
        method: &str,
        url: String,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.keyed(method, url, token, body, None).await
    }

    async fn keyed(
        &self,
        method: &str,
        url: String,
        token: &str,
        body: Option<Value>,
        key: Option<&str>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, url).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.expect("the node answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

fn today() -> jiff::civil::Date {
    let tz = jiff::tz::TimeZone::fixed(jiff::tz::Offset::constant(8));
    jiff::Timestamp::now().to_zoned(tz).date()
}

struct World {
    client: Client,
    beijing: Node,
    langfang: Node,
    beijing_agency: String,
    hospital: String,
}

impl World {
    /// Opens a visit of the Beijing resident at the Langfang hospital, with one line.
    async fn visit(&self, amount: &str) -> String {
        let url = format!("{}/v1/visits", self.langfang.url());
        let body = json!({"person_id": "P0001", "insured_region": "110000", "visit": "inpatient"});
        let (status, visit) = self.client.call("POST", url, &self.hospital, Some(body)).await;
        assert_eq!(status, 201, "{visit}");
        let id = visit["visit_id"].as_str().expect("id").to_owned();
        assert!(id.starts_with("V-110000-P0001-"), "the visit lives with the person: {id}");
        let lines = json!({"lines": [{"code": "A1", "class": "a", "amount": amount}]});
        let url = format!("{}/v1/visits/{id}/lines", self.langfang.url());
        let (status, body) = self.client.call("POST", url, &self.hospital, Some(lines)).await;
        assert_eq!(status, 200, "{body}");
        id
    }

    async fn settle(&self, visit: &str, key: &str) -> (u16, Value) {
        let url = format!("{}/v1/visits/{visit}/settle", self.langfang.url());
        self.client.keyed("POST", url, &self.hospital, None, Some(key)).await
    }

    /// Sends a POST straight to Beijing's node, as Langfang's node forwards it for its hospital.
    async fn post_as_forwarded(&self, path: &str, key: Option<&str>) -> (u16, Value) {
        let mut request = (self.client.http)
            .post(format!("{}{path}", self.beijing.url()))
            .header("x-onestop-federation-secret", SECRET)
            .header("x-onestop-actor", "H13100000001;131000;3;institution");
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.expect("Beijing answers");
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }

    /// Waits, 10 s at most, until Langfang's reconciliation of `day` shows `count` of `what`
    /// (`settlements` or `reversals`); the reconciliation.
    async fn langfang_shows(&self, day: &str, what: &str, count: u64) -> Value {
        let url = format!("{}/v1/reconciliation?day={day}", self.langfang.url());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, recon) = self.client.call("GET", url.clone(), &self.hospital, None).await;
            if recon[what].as_u64() == Some(count) {
                return recon;
            }
            assert!(Instant::now() < deadline, "never {count} {what}, the lost answer: {recon}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Langfang's `GET /v1/status`, and its entry for Beijing's region (110000).
    async fn langfang_sees_beijing(&self) -> (Value, Value) {
        let url = format!("{}/v1/status", self.langfang.url());
        let (_, state) = self.client.call("GET", url, "", None).await;
        let regions = state["regions"].as_array().cloned().unwrap_or_default();
        let beijing = regions.into_iter().find(|r| r["region"] == "110000").unwrap_or_default();
        (state, beijing)
    }

    /// The settlements the Beijing node booked for the person (its reversals are counted apart).
    async fn beijing_settlements(&self) -> u64 {
        let url = format!("{}/v1/clearing?month={}", self.beijing.url(), &today().to_string()[..7]);
        let (status, statement) = self.client.call("GET", url, &self.beijing_agency, None).await;
        assert_eq!(status, 200, "{statement}");
        let counterparts = statement["counterparts"].as_array().cloned().unwrap_or_default();
        counterparts.iter().map(|c| c["payable"]["settlements"].as_u64().unwrap_or(0)).sum()
    }
}

async fn setup(dir: &Path, tls: Option<&Certificates>) -> World {
    let (beijing_port, langfang_port) = (free_port(), free_port());
    let beijing_peer = ("langfang", "131000", langfang_port);
    let mut beijing = node(dir, "beijing", "110000", beijing_port, beijing_peer, tls);
    let langfang_peer = ("beijing", "110000", beijing_port);
    let mut langfang = node(dir, "langfang", "131000", langfang_port, langfang_peer, tls);
    let beijing_agency = beijing.token("A110000", "110000");
    let langfang_agency = langfang.token("A131000", "131000");
    beijing.start();
    langfang.start();
    let roots = tls.map(Certificates::roots);
    let http = onestop_server::tls::client_builder(roots).build().expect("client");
    let client = Client { http };
    let year = today().year();
    let person = json!({"person_id": "P0001", "name": "王五", "id_number": "110101197001011234",
        "birth_date": "1970-01-01", "gender": "1",
        "enrolments": [{"year": year, "category": "working_age"}]});
    let url = format!("{}/v1/persons", beijing.url());
    let (status, body) = client.call("POST", url, &beijing_agency, Some(person)).await;
    assert_eq!(status, 200, "{body}");
    let filing = json!({"person_id": "P0001", "kind": "long_term_resident",
        "destination": "131000", "start": format!("{year}-01-01")});
    let url = format!("{}/v1/filings", beijing.url());
    let (status, body) = client.call("POST", url, &beijing_agency, Some(filing)).await;
    assert_eq!(status, 201, "{body}");
    let hospital =
        json!({"institution_id": "H13100000001", "name": "廊坊市人民医院", "level": "3"});
    let url = format!("{}/v1/institutions", langfang.url());
    let (status, credential) = client.call("POST", url, &langfang_agency, Some(hospital)).await;
    assert_eq!(status, 201, "{credential}");
    let hospital = credential["token"].as_str().expect("token").to_owned();
    World { client, beijing, langfang, beijing_agency, hospital }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hospital_settles_a_visitor_through_its_node_and_faults_never_settle_twice() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut world = setup(dir.path(), None).await;

    // 1. Forwarded: Beijing's node computes (Langfang's catalog, Beijing's ratios) and commits.
    let first = world.visit("10000").await;
    let (status, settled) = world.settle(&first, "k-1").await;
    assert_eq!(status, 200, "{settled}");
    // Beijing resident, level 3, first admission: (10000 − 1300) × 78 %; no cut (long-term).
    assert_eq!(settled["fund_total"], "6786.00");
    assert_eq!(settled["settlement"]["treatment_region"], "131000");
    assert_eq!(world.settle(&first, "k-1").await, (200, settled.clone()), "a retry replays");
    let day = today().to_string();
    let url = format!("{}/v1/reconciliation?day={day}", world.langfang.url());
    let (status, recon) = world.client.call("GET", url, &world.hospital, None).await;
    assert_eq!(status, 200, "{recon}");
    assert_eq!(
        (recon["settlements"].as_u64(), recon["fund_total"].as_str()),
        (Some(1), Some("6786.00")),
        "the place of treatment keeps its own record: {recon}"
    );

    // 2. The insured node frozen past the bound: a timeout within the bound, outcome unknown;
    //    retrying the same key after it thaws settles exactly once.
    let second = world.visit("2000").await;
    world.beijing.signal(Signal::SIGSTOP);
    let started = Instant::now();
    let (status, error) = world.settle(&second, "k-2").await;
    let waited = started.elapsed();
    world.beijing.signal(Signal::SIGCONT);
    assert_eq!((status, error["code"].as_str()), (504, Some("insured_region_timeout")), "{error}");
    assert!(waited < Duration::from_millis(BOUND_MS + 1500), "answered in {waited:?}");
    let (status, retried) = world.settle(&second, "k-2").await;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(world.settle(&second, "k-2").await.1, retried);
    assert_eq!(world.beijing_settlements().await, 2);

    // 2b. The answer lost for good: the insured node committed (here: the same forwarded
    //     request, sent to it directly) but the hospital never retries. The treating node asks
    //     the insured node about the visit in the background and records the settlement.
    let lost = world.visit("1500").await;
    world.beijing.signal(Signal::SIGSTOP);
    let (status, _) = world.settle(&lost, "k-lost").await;
    world.beijing.signal(Signal::SIGCONT);
    assert_eq!(status, 504);
    let path = format!("/v1/visits/{lost}/settle");
    let (status, lost_settlement) = world.post_as_forwarded(&path, Some("k-lost")).await;
    assert_eq!(status, 200, "{lost_settlement}");
    let lost_settlement = lost_settlement["settlement_id"].as_str().expect("id").to_owned();
    world.langfang_shows(&day, "settlements", 3).await;
    assert_eq!(world.beijing_settlements().await, 3);

    // 2c. A cancel whose answer is lost the same way: the treating node asks the insured node
    //     about the settlement and records the reversal it finds.
    world.beijing.signal(Signal::SIGSTOP);
    let url = format!("{}/v1/settlements/{lost_settlement}/cancel", world.langfang.url());
    let (status, error) = world.client.call("POST", url, &world.hospital, None).await;
    world.beijing.signal(Signal::SIGCONT);
    assert_eq!((status, error["code"].as_str()), (504, Some("insured_region_timeout")), "{error}");
    let path = format!("/v1/settlements/{lost_settlement}/cancel");
    let (status, reversal) = world.post_as_forwarded(&path, None).await;
    assert_eq!(status, 200, "{reversal}");
    let recon = world.langfang_shows(&day, "reversals", 1).await;
    assert_eq!(recon["settlements"], 3, "{recon}");
    assert_eq!(world.beijing_settlements().await, 3, "reversals are counted apart");

    // 3. Killed mid-request: frozen with the request in flight, then killed. While it is down,
    //    requests fail at once with nothing settled; after a restart the same key settles once.
    let third = world.visit("3000").await;
    world.beijing.signal(Signal::SIGSTOP);
    let (status, error) = world.settle(&third, "k-3").await;
    assert_eq!((status, error["code"].as_str()), (504, Some("insured_region_timeout")), "{error}");
    world.beijing.kill();
    let (status, error) = world.settle(&third, "k-3").await;
    assert_eq!((status, error["code"].as_str()), (503, Some("insured_region_unavailable")));
    world.beijing.start();
    let (status, resolved) = world.settle(&third, "k-3").await;
    assert_eq!(status, 200, "{resolved}");
    assert_eq!(world.beijing_settlements().await, 4);
    let url = format!("{}/v1/invariants", world.beijing.url());
    let (_, check) = world.client.call("GET", url, &world.beijing_agency, None).await;
    assert_eq!(check["violations"], json!([]), "the ledger balances after the kill");

    // 4. Clearing: Beijing owes Langfang exactly what Langfang's record says it is owed.
    let month = &day[..7];
    let url = format!("{}/v1/clearing?month={month}", world.beijing.url());
    let (_, beijing) = world.client.call("GET", url, &world.beijing_agency, None).await;
    let langfang_agency = world.langfang.token("A131001", "131000");
    let url = format!("{}/v1/clearing?month={month}", world.langfang.url());
    let (_, langfang) = world.client.call("GET", url, &langfang_agency, None).await;
    assert_eq!(beijing["counterparts"][0]["counterpart"], "131000");
    let owed = beijing["payable_total"].as_str().expect("payable");
    assert_eq!(langfang["receivable_total"].as_str(), Some(owed), "{langfang}");
    assert_eq!(langfang["counterparts"][0]["receivable"]["settlements"], 4);
    assert_eq!(beijing["counterparts"][0]["payable"]["reversals"], 1, "{beijing}");
    assert_eq!(langfang["counterparts"][0]["receivable"]["reversals"], 1, "{langfang}");

    // 5. Maintenance: Beijing announces a window; Langfang's node learns it from Beijing's
    //    status and refuses at once, even while Beijing's node does not answer at all.
    let fourth = world.visit("500").await;
    let now = jiff::Timestamp::now();
    let window = json!({"starts_at": (now - jiff::SignedDuration::from_secs(60)).to_string(),
        "ends_at": (now + jiff::SignedDuration::from_secs(3600)).to_string(),
        "reason": "年度结转 year-end rollover"});
    let url = format!("{}/v1/maintenance-windows", world.beijing.url());
    let (status, body) = world.client.call("POST", url, &world.beijing_agency, Some(window)).await;
    assert_eq!(status, 201, "{body}");
    let (status, error) = world.settle(&fourth, "k-4").await;
    assert_eq!((status, error["code"].as_str()), (503, Some("region_in_maintenance")));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (state, beijing) = world.langfang_sees_beijing().await;
        if beijing["state"] == "maintenance" {
            assert_eq!(beijing["served_by"], "beijing");
            break;
        }
        assert!(Instant::now() < deadline, "Langfang's node never saw the window: {state}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    world.beijing.signal(Signal::SIGSTOP);
    let started = Instant::now();
    let (status, error) = world.settle(&fourth, "k-4").await;
    let refused_in = started.elapsed();
    // Beijing's node says nothing while stopped, inside the window it announced: Langfang's
    // status shows the region in maintenance (as announced), not merely unreachable.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (state, beijing) = world.langfang_sees_beijing().await;
    world.beijing.signal(Signal::SIGCONT);
    assert_eq!(beijing["state"], "maintenance", "{state}");
    assert_eq!(beijing["state_zh"], "维护中", "{state}");
    assert_eq!((status, error["code"].as_str()), (503, Some("region_in_maintenance")), "{error}");
    assert!(refused_in < Duration::from_millis(BOUND_MS), "refused without asking");
    assert_eq!(world.beijing_settlements().await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_over_tls_verify_their_peer_and_settle_a_visitor() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certificates = Certificates::new(dir.path());
    let mut world = setup(dir.path(), Some(&certificates)).await;
    assert!(world.langfang.url().starts_with("https://"));

    // The hospital reaches its node over HTTPS; the node forwards over HTTPS, verifying the
    // insured region's node by the federation's CA.
    let visit = world.visit("10000").await;
    let (status, settled) = world.settle(&visit, "k-tls").await;
    assert_eq!(status, 200, "{settled}");
    assert_eq!(settled["fund_total"], "6786.00");
    assert_eq!(world.beijing_settlements().await, 1);

    // A client that does not trust the CA cannot connect, nor can one speaking plain HTTP.
    let untrusting = onestop_server::tls::client_builder(None).build().expect("client");
    let url = format!("{}/v1/health", world.langfang.url());
    let refused = untrusting.get(&url).send().await.expect_err("an unverified server");
    assert!(refused.is_connect(), "{refused:?}");
    let plain = url.replace("https://", "http://");
    let answered = untrusting.get(&plain).send().await;
    assert!(answered.is_err() || !answered.is_ok_and(|r| r.status().is_success()));

    // A renewed certificate (here of another CA) is served after SIGHUP, without a restart;
    // files that do not load then leave the last good certificate in place.
    let renewed_dir = dir.path().join("renewed");
    std::fs::create_dir(&renewed_dir).expect("dir");
    let renewed = Certificates::new(&renewed_dir);
    let (certificate, key) = world.langfang.tls.clone().expect("served over TLS");
    std::fs::copy(&renewed.certificate, &certificate).expect("renewed certificate");
    std::fs::copy(&renewed.key, &key).expect("renewed key");
    let trusts = |files: &Certificates| {
        let client = onestop_server::tls::client_builder(Some(files.roots())).build();
        let url = url.clone();
        async move { client.expect("client").get(&url).send().await.is_ok() }
    };
    assert!(trusts(&certificates).await, "the first certificate until the signal");
    world.langfang.signal(Signal::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !trusts(&renewed).await {
        assert!(Instant::now() < deadline, "the renewed certificate is never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!trusts(&certificates).await, "the old certificate is no longer served");
    std::fs::write(&certificate, "not a certificate\n").expect("broken");
    world.langfang.signal(Signal::SIGHUP);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(trusts(&renewed).await, "a broken file leaves the last good certificate");
    // The hospital, trusting the renewed CA, retries its settle: the stored answer.
    let http = onestop_server::tls::client_builder(Some(renewed.roots())).build().expect("client");
    let settle = format!("{}/v1/visits/{visit}/settle", world.langfang.url());
    let (status, replayed) =
        Client { http }.keyed("POST", settle, &world.hospital, None, Some("k-tls")).await;
    assert_eq!(status, 200, "{replayed}");
    assert_eq!(replayed, settled, "the same settlement, once");

    // Beijing restarts with a certificate of the new CA too: Langfang refuses to forward to a
    // peer it cannot verify, until its CA file holds the new CA and SIGHUP reads it again.
    let (certificate, key) = world.beijing.tls.clone().expect("served over TLS");
    std::fs::copy(&renewed.certificate, &certificate).expect("renewed certificate");
    std::fs::copy(&renewed.key, &key).expect("renewed key");
    world.beijing.kill();
    world.beijing.start();
    let client = onestop_server::tls::client_builder(Some(renewed.roots())).build();
    let client = client.expect("client");
    let open = || {
        let (url, token) = (format!("{}/v1/visits", world.langfang.url()), &world.hospital);
        let body = json!({"person_id": "P0001", "insured_region": "110000", "visit": "inpatient"});
        let request = client.post(url).bearer_auth(token).json(&body).send();
        async move { request.await.expect("Langfang answers").status().as_u16() }
    };
    assert_eq!(open().await, 503, "Beijing's new certificate is not verified by the old CA");
    let both = [std::fs::read_to_string(&certificates.ca), std::fs::read_to_string(&renewed.ca)];
    let both = both.map(|pem| pem.expect("a CA file")).concat();
    std::fs::write(&certificates.ca, both).expect("the CA file with both CAs");
    world.langfang.signal(Signal::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while open().await != 201 {
        assert!(Instant::now() < deadline, "Langfang never verifies Beijing by the new CA");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reads_the_federation_file_again_unless_the_node_itself_would_change() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut world = setup(dir.path(), None).await;
    let open = || {
        let (url, token) = (format!("{}/v1/visits", world.langfang.url()), &world.hospital);
        let body = json!({"person_id": "P0001", "insured_region": "110000", "visit": "inpatient"});
        let request = world.client.http.post(url).bearer_auth(token).json(&body).send();
        async move { request.await.expect("Langfang answers").status().as_u16() }
    };
    assert_eq!(open().await, 201);

    // Beijing's node moves to another address: Langfang cannot reach it until its file says so.
    world.beijing.kill();
    let old = world.beijing.port;
    world.beijing.port = free_port();
    world.beijing.start();
    assert_eq!(open().await, 503, "the old address answers nothing");
    let file = std::fs::read_to_string(&world.langfang.config).expect("the file");
    let moved = file.replace(&format!(":{old}\""), &format!(":{}\"", world.beijing.port));
    assert_ne!(moved, file);

    // A file that would also give the node another region is refused whole, and says why; so
    // is one that does not parse. Either way the peers read before stay.
    let grown = moved.replace("regions = [\"131000\"]", "regions = [\"131000\", \"130100\"]");
    std::fs::write(&world.langfang.config, grown).expect("written");
    world.langfang.signal(Signal::SIGHUP);
    let log = world.langfang.said("SIGHUP: federation NOT changed", 1);
    assert!(log.contains("node.regions changed from [131000] to [130100, 131000]"), "{log}");
    assert_eq!(open().await, 503, "still the old address");
    std::fs::write(&world.langfang.config, "[node\n").expect("written");
    world.langfang.signal(Signal::SIGHUP);
    world.langfang.said("SIGHUP: federation NOT changed", 2);
    assert_eq!(open().await, 503, "still the old address");

    // The file as it should be: read on the next SIGHUP, the visitor is served again.
    std::fs::write(&world.langfang.config, moved).expect("written");
    world.langfang.signal(Signal::SIGHUP);
    let log = world.langfang.said("read again: node langfang", 1);
    let new = format!("beijing [110000] at http://127.0.0.1:{}", world.beijing.port);
    assert!(log.contains(&new), "{log}");
    assert_eq!(open().await, 201, "forwarded to the new address");
    let visit = world.visit("10000").await;
    let (status, settled) = world.settle(&visit, "k-moved").await;
    assert_eq!(status, 200, "{settled}");
    assert_eq!(world.beijing_settlements().await, 1);

    // The month's clearing run on Langfang's node: its statement only, Beijing's being written
    // by Beijing's node (which alone holds all its people's settlements).
    let month = &today().to_string()[..7];
    let clear = |federation: Option<&Path>, out: &Path| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_onestop"));
        command.args(["clearing", "--database", &world.langfang.database, "--month", month]);
        command.arg("--out").arg(out);
        if let Some(file) = federation {
            command.arg("--federation").arg(file);
        }
        let output = command.output().expect("onestop clearing runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let mut names: Vec<String> = std::fs::read_dir(out)
            .expect("written")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let own = clear(Some(&world.langfang.config), &dir.path().join("own"));
    let csv = format!("clearing-131000-{month}.csv");
    assert_eq!(own, [csv.clone(), format!("clearing-131000-{month}.json")]);
    let all = clear(None, &dir.path().join("all"));
    assert!(all.contains(&format!("clearing-110000-{month}.csv")), "{all:?}");
}
