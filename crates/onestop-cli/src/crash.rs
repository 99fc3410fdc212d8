//! `onestop crash-test`: kill -9 the server at random moments under concurrent settlement load,
//! restart it, and check that every acknowledged settlement is there exactly once, that every
//! unacknowledged one resolves by retrying its idempotency key, and that the ledger balances
//! and the accumulators equal the ledger.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use serde_json::json;

use crate::demo::Api;

#[derive(clap::Args)]
pub struct CrashArgs {
    /// How many times to kill the server.
    #[arg(long, default_value_t = 20)]
    pub rounds: usize,
    /// Concurrent hospital clients during each round.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Directory of policy files.
    #[arg(long, default_value = "policies")]
    pub policies: std::path::PathBuf,
    /// Seed for the kill moments.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// One settle request: which visit, with which key, and what came back (if anything).
#[derive(Clone)]
struct Attempt {
    visit_id: String,
    key: String,
    token: String,
    acknowledged: Option<String>,
}

pub struct Server {
    child: Child,
    pub api: Api,
}

impl Server {
    /// The service's process id (for the load generator's CPU report).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

pub fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

pub async fn start(database: &str, policies: &std::path::Path) -> Result<Server, String> {
    start_with(database, policies, &[], &[]).await
}

/// Starts `onestop serve` with extra arguments and environment variables.
pub async fn start_with(
    database: &str,
    policies: &std::path::Path,
    extra: &[String],
    env: &[(&str, &str)],
) -> Result<Server, String> {
    let port = free_port()?;
    start_on(port, database, policies, extra, env).await
}

pub async fn start_on(
    port: u16,
    database: &str,
    policies: &std::path::Path,
    extra: &[String],
    env: &[(&str, &str)],
) -> Result<Server, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let child = Command::new(exe)
        .args(["serve", "--database", database, "--listen", &format!("127.0.0.1:{port}")])
        .arg("--policies")
        .arg(policies)
        .args(extra)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the server: {e}"))?;
    let api = Api::new(&format!("http://127.0.0.1:{port}"))?;
    for _ in 0..200 {
        if api.client().get(format!("http://127.0.0.1:{port}/v1/health")).send().await.is_ok() {
            return Ok(Server { child, api });
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err("the server did not start".into())
}

pub fn kill(server: &mut Server) {
    let _ = server.child.kill();
    let _ = server.child.wait();
}

/// A fresh region on `database`: an agency token, a running server, `institutions` hospitals
/// and `count` people registered through it.
pub async fn seed_region(
    database: &str,
    policies: &std::path::Path,
    count: usize,
    institutions: usize,
) -> Result<(String, Vec<String>, Vec<onestop_sim::SimPerson>, Server), String> {
    let book = crate::serve::load_book(policies)?;
    let agency = {
        let store = crate::serve::open_store(database)?;
        let who = onestop_store::Institution {
            institution_id: "A110000".into(),
            region: onestop_core::Region(110_000),
            name: "agency".into(),
            level: None,
            role: onestop_store::Role::Agency,
        };
        crate::serve::issue(&store, book, who).await?
    };
    let year = onestop_server::timestamp(&onestop_server::system_clock()).1.year();
    let people = onestop_sim::people(onestop_core::Region(110_000), count, year, 7);
    let server = start(database, policies).await?;
    let tokens = seed(&server.api, &agency, &people, institutions).await?;
    Ok((agency, tokens, people, server))
}

/// Registers hospitals and people once; returns the hospitals' tokens.
pub async fn seed(
    api: &Api,
    agency: &str,
    people: &[onestop_sim::SimPerson],
    institutions: usize,
) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let region = onestop_core::Region(110_000);
    for institution in onestop_sim::institutions(region).into_iter().take(institutions) {
        let body = serde_json::to_value(&institution).map_err(|e| e.to_string())?;
        let credential =
            api.ok(reqwest::Method::POST, "/v1/institutions", agency, Some(&body)).await?;
        tokens.push(credential["token"].as_str().unwrap_or_default().to_owned());
    }
    for person in people {
        let body = serde_json::to_value(&person.request).map_err(|e| e.to_string())?;
        api.ok(reqwest::Method::POST, "/v1/persons", agency, Some(&body)).await?;
    }
    Ok(tokens)
}

/// Opens visits with lines for this round (before the load, so the load is settles alone).
async fn prepare(
    api: &Api,
    tokens: &[String],
    people: &[onestop_sim::SimPerson],
    round: usize,
    count: usize,
) -> Result<Vec<Attempt>, String> {
    let visits = onestop_sim::visits(people, tokens.len(), count, 1_000 + round as u64);
    let mut attempts = Vec::with_capacity(count);
    for (n, visit) in visits.iter().enumerate() {
        let token = &tokens[visit.institution];
        let body = json!({ "person_id": visit.person_id, "visit": visit.visit });
        let opened = api.ok(reqwest::Method::POST, "/v1/visits", token, Some(&body)).await?;
        let visit_id = opened["visit_id"].as_str().unwrap_or_default().to_owned();
        let lines = json!({ "lines": visit.lines });
        api.ok(reqwest::Method::POST, &format!("/v1/visits/{visit_id}/lines"), token, Some(&lines))
            .await?;
        attempts.push(Attempt {
            visit_id,
            key: format!("r{round}-{n}"),
            token: token.clone(),
            acknowledged: None,
        });
    }
    Ok(attempts)
}

/// Fires every attempt from `clients` workers until the server dies.
async fn load(api: &Api, attempts: Vec<Attempt>, clients: usize) -> Vec<Attempt> {
    let queue = Arc::new(Mutex::new(attempts));
    let done = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (api, queue, done) = (api.clone(), Arc::clone(&queue), Arc::clone(&done));
            tokio::spawn(async move {
                loop {
                    let next = queue.lock().ok().and_then(|mut q| q.pop());
                    let Some(mut attempt) = next else { break };
                    let path = format!("/v1/visits/{}/settle", attempt.visit_id);
                    if let Ok((200, record)) = api
                        .call(
                            reqwest::Method::POST,
                            &path,
                            &attempt.token,
                            None,
                            Some(&attempt.key),
                        )
                        .await
                    {
                        attempt.acknowledged = record["settlement_id"].as_str().map(str::to_owned);
                    }
                    if let Ok(mut done) = done.lock() {
                        done.push(attempt);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    let mut all =
        std::mem::take(&mut *done.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    all.extend(std::mem::take(
        &mut *queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
    ));
    all
}

/// After a restart: retries every attempt with its key and checks exactly-once.
async fn verify(api: &Api, attempts: &[Attempt], agency: &str) -> Result<(usize, usize), String> {
    let mut recovered = 0;
    for attempt in attempts {
        let path = format!("/v1/visits/{}/settle", attempt.visit_id);
        let (status, record) = api
            .call(reqwest::Method::POST, &path, &attempt.token, None, Some(&attempt.key))
            .await?;
        if status != 200 {
            return Err(format!("retry of {} answered {status}: {record}", attempt.key));
        }
        let id = record["settlement_id"].as_str().unwrap_or_default();
        match &attempt.acknowledged {
            Some(acknowledged) if acknowledged != id => {
                return Err(format!(
                    "{} was acknowledged as {acknowledged} but replays as {id}",
                    attempt.key
                ));
            }
            Some(_) => {}
            None => recovered += 1,
        }
        let visit = api
            .ok(
                reqwest::Method::GET,
                &format!("/v1/visits/{}", attempt.visit_id),
                &attempt.token,
                None,
            )
            .await?;
        if visit["status"] != "settled" {
            return Err(format!(
                "visit {} is {} after its settlement",
                attempt.visit_id, visit["status"]
            ));
        }
    }
    let check = api.ok(reqwest::Method::GET, "/v1/invariants", agency, None).await?;
    if check["violations"] != json!([]) {
        return Err(format!("invariants violated: {}", check["violations"]));
    }
    let acknowledged = attempts.iter().filter(|a| a.acknowledged.is_some()).count();
    Ok((acknowledged, recovered))
}

/// Every settlement booked today by each hospital: one per visit, never two.
async fn count_settlements(api: &Api, agency: &str, tokens: &[String]) -> Result<u64, String> {
    let ids: Vec<String> = onestop_sim::institutions(onestop_core::Region(110_000))
        .into_iter()
        .take(tokens.len())
        .map(|i| i.institution_id)
        .collect();
    let mut total = 0;
    for id in ids {
        let day = api
            .ok(
                reqwest::Method::GET,
                &format!("/v1/reconciliation?institution_id={id}"),
                agency,
                None,
            )
            .await?;
        total += day["settlements"].as_u64().unwrap_or_default();
    }
    Ok(total)
}

pub fn run(args: &CrashArgs) -> Result<(), String> {
    crate::serve::runtime()?.block_on(crash_test(args))
}

async fn crash_test(args: &CrashArgs) -> Result<(), String> {
    let dir =
        tempfile::Builder::new().prefix("onestop-crash-").tempdir().map_err(|e| e.to_string())?;
    let database = format!("sqlite:{}", dir.path().join("crash.sqlite").display());
    let (agency, tokens, people, mut server) =
        seed_region(&database, &args.policies, 60, 4).await?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let mut totals =
        BTreeMap::from([("acknowledged", 0usize), ("recovered", 0), ("settlements", 0)]);
    for round in 0..args.rounds {
        let attempts = prepare(&server.api, &tokens, &people, round, 200).await?;
        let kill_after = Duration::from_millis(rng.random_range(2..80));
        let api = server.api.clone();
        let running = tokio::spawn({
            let clients = args.clients;
            async move { load(&api, attempts, clients).await }
        });
        tokio::time::sleep(kill_after).await;
        kill(&mut server);
        let attempts = running.await.map_err(|e| e.to_string())?;
        server = start(&database, &args.policies).await?;
        let (acknowledged, recovered) = verify(&server.api, &attempts, &agency).await?;
        *totals.entry("acknowledged").or_default() += acknowledged;
        *totals.entry("recovered").or_default() += recovered;
        *totals.entry("settlements").or_default() += attempts.len();
        println!(
            "round {:>2}: killed after {:>3} ms; {acknowledged:>3} acknowledged, \
             {recovered:>3} resolved by retry; \
            exactly once, ledger consistent",
            round + 1,
            kill_after.as_millis()
        );
    }
    let booked = count_settlements(&server.api, &agency, &tokens).await?;
    kill(&mut server);
    if booked != totals["settlements"] as u64 {
        return Err(format!("{booked} settlements booked for {} visits", totals["settlements"]));
    }
    println!(
        "crash test passed: {} kills, {} settlements ({} acknowledged before a kill, \
         {} resolved by retrying \
        their key), each booked exactly once",
        args.rounds, booked, totals["acknowledged"], totals["recovered"]
    );
    Ok(())
}
