//! `onestop demo`: a day at a synthetic pooling region, settled through the HTTP API.
//!
//! It starts the service on a temporary SQLite file, registers hospitals of each level and a few
//! thousand people of every category, imports an assistance-recipient list, settles a day of
//! visits from many concurrent hospital clients, cancels and re-settles a few, prints what the
//! funds paid, and keeps the service answering.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use onestop_core::{Fen, Region};
use onestop_sim::{SimPerson, SimVisit};
use onestop_store::{Institution, Role};
use serde_json::{Value, json};

const REGION: Region = Region(110_000);

/// A count of synthetic people: 1 to `onestop_sim::PEOPLE_MAX`.
pub fn people_count(text: &str) -> Result<usize, String> {
    let count: usize = text.parse().map_err(|_| format!("`{text}` is not a count"))?;
    if (1..=onestop_sim::PEOPLE_MAX).contains(&count) {
        Ok(count)
    } else {
        Err(format!("from 1 to {} people", onestop_sim::PEOPLE_MAX))
    }
}

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Directory of policy files.
    #[arg(long, default_value = "policies")]
    pub policies: std::path::PathBuf,
    /// Address to serve on; if it is taken, any free port is used.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// People to enrol (at most 10,000).
    #[arg(long, default_value_t = 3000, value_parser = people_count)]
    pub people: usize,
    /// Visits in the day.
    #[arg(long, default_value_t = 2000)]
    pub visits: usize,
    /// Concurrent hospital clients.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Seed of the synthetic region.
    #[arg(long, default_value_t = 20_241_124)]
    pub seed: u64,
    /// Print the summary and exit instead of serving on.
    #[arg(long)]
    pub no_wait: bool,
}

/// A small JSON client for the service.
#[derive(Clone)]
pub struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    pub fn new(base: &str) -> Result<Api, String> {
        let client = onestop_server::tls::client_builder(None)
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Api { base: base.to_owned(), client })
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> Result<(u16, Value), String> {
        let mut request =
            self.client.request(method, format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.map_err(|e| format!("{path}: {e}"))?;
        let status = response.status().as_u16();
        let value = response.json().await.map_err(|e| format!("{path}: {e}"))?;
        Ok((status, value))
    }

    pub async fn ok(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Result<Value, String> {
        match self.call(method, path, token, body, None).await? {
            (200 | 201, value) => Ok(value),
            (status, value) => Err(format!("{path}: {status} {value}")),
        }
    }
}

pub fn progress(length: usize, message: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(length as u64);
    let style = ProgressStyle::with_template("{msg:28} [{bar:40}] {pos}/{len} {per_sec}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(message);
    bar
}

/// Registers the institutions, the people and the assistance list; returns hospital tokens.
async fn enrol(
    api: &Api,
    agency: &str,
    people: &[SimPerson],
    year: i16,
) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    for institution in onestop_sim::institutions(REGION) {
        let body = serde_json::to_value(&institution).map_err(|e| e.to_string())?;
        let credential =
            api.ok(reqwest::Method::POST, "/v1/institutions", agency, Some(&body)).await?;
        tokens.push(credential["token"].as_str().unwrap_or_default().to_owned());
    }
    let progress = progress(people.len(), "参保登记 enrolling people");
    for chunk in people.chunks(64) {
        let calls = chunk.iter().map(|person| {
            let body = serde_json::to_value(&person.request).unwrap_or_default();
            let api = api.clone();
            let agency = agency.to_owned();
            async move { api.ok(reqwest::Method::POST, "/v1/persons", &agency, Some(&body)).await }
        });
        for outcome in futures_join(calls).await {
            outcome?;
            progress.inc(1);
        }
    }
    progress.finish();
    let csv = onestop_sim::assistance_csv(people, year);
    let response = api
        .client
        .post(format!("{}/v1/assistance-lists?file_name=民政救助名单.csv", api.base))
        .bearer_auth(agency)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status() != 200 {
        return Err(format!("assistance list: {}", response.text().await.unwrap_or_default()));
    }
    Ok(tokens)
}

/// Runs futures concurrently and collects their outputs in order.
async fn futures_join<F: Future<Output = T> + Send + 'static, T: Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<T> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        if let Ok(value) = handle.await {
            out.push(value);
        }
    }
    out
}

/// What the day produced.
#[derive(Default)]
pub struct Day {
    /// Settlement records in force at the end of the day, by id.
    pub settled: BTreeMap<String, Value>,
    /// Settle latencies in microseconds.
    pub latencies: Vec<u64>,
    pub failures: Vec<String>,
    pub cancelled: usize,
    pub resettled: usize,
}

async fn one_visit(
    api: &Api,
    token: &str,
    visit: &SimVisit,
    key: &str,
) -> Result<(Value, u64), String> {
    let body = json!({ "person_id": visit.person_id, "visit": visit.visit });
    let opened = api.ok(reqwest::Method::POST, "/v1/visits", token, Some(&body)).await?;
    let visit_id = opened["visit_id"].as_str().unwrap_or_default().to_owned();
    let lines = json!({ "lines": visit.lines });
    api.ok(reqwest::Method::POST, &format!("/v1/visits/{visit_id}/lines"), token, Some(&lines))
        .await?;
    let started = Instant::now();
    let settled = api
        .call(
            reqwest::Method::POST,
            &format!("/v1/visits/{visit_id}/settle"),
            token,
            None,
            Some(key),
        )
        .await?;
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    match settled {
        (200, record) => Ok((record, micros)),
        (status, error) => Err(format!("settle {visit_id}: {status} {error}")),
    }
}

/// Settles the day's visits from `clients` concurrent hospital clients.
async fn run_day(api: &Api, tokens: &[String], visits: Vec<SimVisit>, clients: usize) -> Day {
    let progress = progress(visits.len(), "门诊住院结算 settling visits");
    let queue = Arc::new(Mutex::new(visits.into_iter().enumerate().collect::<Vec<_>>()));
    let day = Arc::new(Mutex::new(Day::default()));
    let workers = (0..clients.max(1)).map(|_| {
        let (api, tokens, queue, day, progress) =
            (api.clone(), tokens.to_vec(), Arc::clone(&queue), Arc::clone(&day), progress.clone());
        async move {
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop());
                let Some((n, visit)) = next else { break };
                let outcome =
                    one_visit(&api, &tokens[visit.institution], &visit, &format!("demo-{n}")).await;
                if let Ok(mut day) = day.lock() {
                    match outcome {
                        Ok((record, micros)) => {
                            day.latencies.push(micros);
                            let id =
                                record["settlement_id"].as_str().unwrap_or_default().to_owned();
                            day.settled.insert(id, record);
                        }
                        Err(error) => day.failures.push(error),
                    }
                }
                progress.inc(1);
            }
        }
    });
    futures_join(workers).await;
    progress.finish();
    Arc::try_unwrap(day).ok().and_then(|m| m.into_inner().ok()).unwrap_or_default()
}

/// Cancels one settlement in fifty; half of those are refunds of one line, settled again
/// without it (the national practice for a partial refund).
async fn cancel_some(
    api: &Api,
    tokens: &BTreeMap<String, String>,
    day: &mut Day,
) -> Result<(), String> {
    let chosen: Vec<(String, Value)> =
        day.settled.iter().step_by(50).map(|(k, v)| (k.clone(), v.clone())).collect();
    for (index, (id, record)) in chosen.into_iter().enumerate() {
        let token = &tokens[record["institution_id"].as_str().unwrap_or_default()];
        api.ok(reqwest::Method::POST, &format!("/v1/settlements/{id}/cancel"), token, None).await?;
        day.settled.remove(&id);
        day.cancelled += 1;
        if index % 2 == 1 {
            continue;
        }
        let visit_id = record["visit_id"].as_str().unwrap_or_default();
        let visit =
            api.ok(reqwest::Method::GET, &format!("/v1/visits/{visit_id}"), token, None).await?;
        let lines = visit["lines"].as_array().map_or(0, Vec::len);
        if lines > 1 {
            let last = visit["lines"][lines - 1]["line_no"].as_i64().unwrap_or_default();
            api.ok(
                reqwest::Method::DELETE,
                &format!("/v1/visits/{visit_id}/lines/{last}"),
                token,
                None,
            )
            .await?;
        }
        let key = format!("refund-{id}");
        let (status, again) = api
            .call(
                reqwest::Method::POST,
                &format!("/v1/visits/{visit_id}/settle"),
                token,
                None,
                Some(&key),
            )
            .await?;
        if status == 200 {
            day.settled
                .insert(again["settlement_id"].as_str().unwrap_or_default().to_owned(), again);
            day.resettled += 1;
        }
    }
    Ok(())
}

fn fen(value: &Value) -> Fen {
    value.as_str().and_then(|text| Fen::parse_yuan(text).ok()).unwrap_or_default()
}

/// A latency for the report (display only: the measurement itself stays in microseconds).
#[allow(clippy::float_arithmetic)]
fn percentile(sorted: &[u64], per_mille: usize) -> String {
    if sorted.is_empty() {
        return "-".into();
    }
    let index = (sorted.len() * per_mille / 1000).min(sorted.len() - 1);
    format!("{:.2} ms", sorted[index] as f64 / 1000.0)
}

/// Prints the day: settlements, what each tier paid, the payout ratio, the advances spared.
fn summary(day: &mut Day, people: &[SimPerson]) {
    let mut by_tier: BTreeMap<(String, String), Fen> = BTreeMap::new();
    let (mut cost, mut fund) = (Fen::ZERO, Fen::ZERO);
    for record in day.settled.values() {
        cost += fen(&record["total"]);
        fund += fen(&record["fund_total"]);
        for tier in record["settlement"]["tiers"].as_array().into_iter().flatten() {
            let name = format!(
                "{} {}",
                tier["name_zh"].as_str().unwrap_or(""),
                tier["name_en"].as_str().unwrap_or("")
            );
            *by_tier.entry((tier["id"].as_str().unwrap_or("").to_owned(), name)).or_default() +=
                fen(&tier["amount"]);
        }
    }
    let spared: Fen = by_tier.iter().filter(|((id, _), _)| id != "basic").map(|(_, a)| *a).sum();
    let on_lists = people.iter().filter(|p| p.assistance.is_some()).count();
    println!("\nonestop demo — 北京市 Beijing ({REGION}), synthetic region");
    let institutions = onestop_sim::institutions(REGION);
    let count = |level: &str| institutions.iter().filter(|i| i.level.as_str() == level).count();
    println!(
        "  定点医疗机构 institutions: {} (三级 {}, 二级 {}, 一级 {}, 社区 {})",
        institutions.len(),
        count("3"),
        count("2"),
        count("1"),
        count("community")
    );
    println!("  参保人 people: {} (救助名单 on assistance lists: {on_lists})", people.len());
    println!(
        "  结算 settlements in force: {} (撤销 cancelled {}, 退费后重新结算 re-settled {}, failed {})",
        day.settled.len(),
        day.cancelled,
        day.resettled,
        day.failures.len()
    );
    println!("  {} {cost:>14}", crate::table::pad_right("医疗费总额 medical cost:", 46));
    for ((id, name), amount) in &by_tier {
        println!("    {} {amount:>14}  ({id})", crate::table::pad_right(name, 44));
    }
    println!("  {} {fund:>14}", crate::table::pad_right("基金支付合计 fund total:", 46));
    let ratio = if cost.is_zero() { 0 } else { fund.0 * 1000 / cost.0 };
    println!("  基金支付比例 payout ratio:  {}.{} %", ratio / 10, ratio % 10);
    let label = crate::table::pad_right("一站式免垫付 advances spared:", 46);
    println!("  {label} {spared:>14}  (paid at the window by the tiers after basic insurance)");
    day.latencies.sort_unstable();
    println!(
        "  结算耗时 settle latency: p50 {}, p99 {} over {} settlements",
        percentile(&day.latencies, 500),
        percentile(&day.latencies, 990),
        day.latencies.len()
    );
    for failure in day.failures.iter().take(5) {
        println!("  failed: {failure}");
    }
}

async fn bind(listen: &str) -> Result<tokio::net::TcpListener, String> {
    match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => Ok(listener),
        Err(_) => tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string()),
    }
}

pub fn run(args: &DemoArgs) -> Result<(), String> {
    let book = crate::serve::load_book(&args.policies)?;
    let runtime = crate::serve::runtime()?;
    runtime.block_on(demo(args, book))
}

async fn demo(args: &DemoArgs, book: Arc<onestop_core::PolicyBook>) -> Result<(), String> {
    let dir =
        tempfile::Builder::new().prefix("onestop-demo-").tempdir().map_err(|e| e.to_string())?;
    let database = format!("sqlite:{}", dir.path().join("demo.sqlite").display());
    crate::serve::log_to_stderr();
    let store = crate::serve::open_store(&database)?;
    let agency = Institution {
        institution_id: "A110000".into(),
        region: REGION,
        name: "北京市医疗保障事务管理中心".into(),
        level: None,
        role: Role::Agency,
    };
    let agency_token = crate::serve::issue(&store, Arc::clone(&book), agency).await?;
    let listener = bind(&args.listen).await?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let state = onestop_server::AppState::new(store, book, onestop_server::system_clock());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(onestop_server::serve(listener, state, async {
        let _ = stopped.await;
    }));
    let api = Api {
        base: format!("http://{address}"),
        client: onestop_server::tls::client_builder(None)
            .pool_max_idle_per_host(args.clients)
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?,
    };
    let year = onestop_server::timestamp(&onestop_server::system_clock()).1.year();
    let people = onestop_sim::people(REGION, args.people, year, args.seed);
    let tokens = enrol(&api, &agency_token, &people, year).await?;
    let visits = onestop_sim::visits(&people, tokens.len(), args.visits, args.seed);
    let mut day = run_day(&api, &tokens, visits, args.clients).await;
    let by_id: BTreeMap<String, String> = onestop_sim::institutions(REGION)
        .into_iter()
        .map(|i| i.institution_id)
        .zip(tokens.iter().cloned())
        .collect();
    cancel_some(&api, &by_id, &mut day).await?;
    summary(&mut day, &people);
    let check = api.ok(reqwest::Method::GET, "/v1/invariants", &agency_token, None).await?;
    println!(
        "  账实核对 ledger and accumulators: {}",
        if check["violations"] == json!([]) { "consistent" } else { "VIOLATED" }
    );
    println!("\nThe service answers at http://{address}/v1 (OpenAPI: /v1/openapi.json)");
    if args.no_wait {
        println!("  and stops now (--no-wait); its temporary database is removed.");
    } else {
        println!("  agency token 经办机构令牌: {agency_token}");
        println!(
            "  try: curl -H 'Authorization: Bearer {agency_token}' \\\n       \
             http://{address}/v1/persons/110000/P0000001"
        );
        println!("It keeps answering; Ctrl-C stops it.");
        let _ = tokio::signal::ctrl_c().await;
    }
    let _ = stop.send(());
    let _ = server.await;
    Ok(())
}
