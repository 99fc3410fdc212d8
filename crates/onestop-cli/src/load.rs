//! `onestop load`: a load generator of many concurrent hospital clients on loopback.
//!
//! It starts `onestop serve` as a separate process on a fresh database, enrols a synthetic
//! region, opens visits with their lines beforehand, and then measures settle alone: first at a
//! fixed offered rate (open loop; latency counted from each request's scheduled start, so a
//! stall is not hidden), then as fast as the clients can go (closed loop). Last, it measures the
//! store's own rate of durable single-row commits with the same durability settings, the
//! baseline the throughput is compared with.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::json;

use crate::crash::{Server, kill, seed_region};
use crate::demo::Api;

#[derive(clap::Args)]
pub struct LoadArgs {
    /// The store: a fresh temporary SQLite file unless given (`postgres://...` for PostgreSQL).
    #[arg(long)]
    pub database: Option<String>,
    /// Directory of policy files.
    #[arg(long, default_value = "policies")]
    pub policies: std::path::PathBuf,
    /// Settles per second offered in the open-loop phase.
    #[arg(long, default_value_t = 1000)]
    pub rate: u32,
    /// Length of each phase, in seconds.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Concurrent hospital clients.
    #[arg(long, default_value_t = 256)]
    pub clients: usize,
    /// People in the synthetic region (at most 10,000).
    #[arg(long, default_value_t = 2000, value_parser = crate::demo::people_count)]
    pub people: usize,
    /// Measure settlement across two nodes of a federation (a Langfang hospital settling a
    /// Beijing resident through its own node) beside settlement on one node, in the same run.
    #[arg(long)]
    pub federated: bool,
}

/// A prepared visit: settle it with this token and key.
#[derive(Clone)]
pub(crate) struct Ready {
    path: String,
    token: String,
    key: String,
}

pub(crate) async fn prepare(
    api: &Api,
    tokens: &[String],
    people: &[onestop_sim::SimPerson],
    count: usize,
    clients: usize,
    insured_region: Option<&str>,
) -> Result<Vec<Ready>, String> {
    let insured_region = insured_region.map(str::to_owned);
    let visits = Arc::new(Mutex::new(onestop_sim::visits(people, tokens.len(), count, 99)));
    let ready = Arc::new(Mutex::new(Vec::with_capacity(count)));
    let progress = crate::demo::progress(count, "预备就诊 preparing visits");
    let workers: Vec<_> = (0..clients)
        .map(|worker| {
            let (api, tokens, visits, ready, progress, insured) = (
                api.clone(),
                tokens.to_vec(),
                Arc::clone(&visits),
                Arc::clone(&ready),
                progress.clone(),
                insured_region.clone(),
            );
            tokio::spawn(async move {
                let mut n = 0;
                loop {
                    let next = visits.lock().ok().and_then(|mut v| v.pop());
                    let Some(visit) = next else { return Ok::<(), String>(()) };
                    let token = &tokens[visit.institution];
                    let mut body = json!({ "person_id": visit.person_id, "visit": visit.visit });
                    if let Some(region) = &insured {
                        body["insured_region"] = json!(region);
                    }
                    let opened =
                        api.ok(reqwest::Method::POST, "/v1/visits", token, Some(&body)).await?;
                    let id = opened["visit_id"].as_str().unwrap_or_default().to_owned();
                    let lines = json!({ "lines": visit.lines });
                    api.ok(
                        reqwest::Method::POST,
                        &format!("/v1/visits/{id}/lines"),
                        token,
                        Some(&lines),
                    )
                    .await?;
                    let key = format!("load-{worker}-{n}");
                    n += 1;
                    if let Ok(mut ready) = ready.lock() {
                        ready.push(Ready {
                            path: format!("/v1/visits/{id}/settle"),
                            token: token.clone(),
                            key,
                        });
                    }
                    progress.inc(1);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.map_err(|e| e.to_string())??;
    }
    progress.finish();
    Ok(Arc::try_unwrap(ready).ok().and_then(|m| m.into_inner().ok()).unwrap_or_default())
}

/// Latencies in microseconds (from the request's send to its answer), how late requests were
/// sent against their schedule (open loop), and how many settles failed.
pub(crate) struct Measured {
    pub latencies: Histogram<u64>,
    lag: Histogram<u64>,
    errors: u64,
    elapsed: Duration,
}

/// One settle; the body is read but not parsed (the client should not compete with the server
/// for the CPU more than a hospital's system would).
async fn settle(api: &Api, ready: &Ready) -> bool {
    let request = api
        .client()
        .post(format!("{}{}", api.base(), ready.path))
        .bearer_auth(&ready.token)
        .header("Idempotency-Key", &ready.key);
    match request.send().await {
        Ok(response) => response.status() == 200 && response.bytes().await.is_ok(),
        Err(_) => false,
    }
}

/// Offers `rate` settles a second for `seconds`; latency counts from each scheduled start.
pub(crate) async fn open_loop(api: &Api, work: Vec<Ready>, rate: u32, clients: usize) -> Measured {
    let started = Instant::now();
    let interval = Duration::from_secs(1) / rate.max(1);
    let queue = Arc::new(Mutex::new(work.into_iter().enumerate().rev().collect::<Vec<_>>()));
    run_clients(api, queue, clients, move |index| {
        Some(started + interval * u32::try_from(index).unwrap_or(0))
    })
    .await
}

/// Settles back to back from every client until the work or the time runs out.
pub(crate) async fn closed_loop(
    api: &Api,
    work: Vec<Ready>,
    seconds: u64,
    clients: usize,
) -> Measured {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let queue = Arc::new(Mutex::new(work.into_iter().enumerate().rev().collect::<Vec<_>>()));
    let limited = Arc::clone(&queue);
    tokio::spawn(async move {
        tokio::time::sleep_until(deadline.into()).await;
        if let Ok(mut queue) = limited.lock() {
            queue.clear();
        }
    });
    run_clients(api, queue, clients, |_| None).await
}

async fn run_clients(
    api: &Api,
    queue: Arc<Mutex<Vec<(usize, Ready)>>>,
    clients: usize,
    schedule: impl Fn(usize) -> Option<Instant> + Send + Sync + Clone + 'static,
) -> Measured {
    let started = Instant::now();
    let histogram = || Histogram::<u64>::new(3).unwrap_or_else(|_| unreachable!());
    let results = Arc::new(Mutex::new((histogram(), histogram(), 0u64)));
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (api, queue, results, schedule) =
                (api.clone(), Arc::clone(&queue), Arc::clone(&results), schedule.clone());
            tokio::spawn(async move {
                loop {
                    let next = queue.lock().ok().and_then(|mut q| q.pop());
                    let Some((index, ready)) = next else { break };
                    let due = schedule(index);
                    if let Some(due) = due {
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let sent = Instant::now();
                    let lag = due.map_or(0, |due| sent.saturating_duration_since(due).as_micros());
                    let ok = settle(&api, &ready).await;
                    let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                    if let Ok(mut results) = results.lock() {
                        if ok {
                            let _ = results.0.record(micros.max(1));
                            let _ = results.1.record(u64::try_from(lag).unwrap_or(u64::MAX).max(1));
                        } else {
                            results.2 += 1;
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    let elapsed = started.elapsed();
    let (latencies, lag, errors) = Arc::try_unwrap(results)
        .ok()
        .and_then(|m| m.into_inner().ok())
        .unwrap_or_else(|| (histogram(), histogram(), 0));
    Measured { latencies, lag, errors, elapsed }
}

#[allow(clippy::float_arithmetic)]
pub(crate) fn report(label: &str, measured: &Measured) -> f64 {
    let count = measured.latencies.len();
    let rate = count as f64 / measured.elapsed.as_secs_f64();
    let ms = |q: f64| measured.latencies.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "  {label}: {count} settles in {:.1} s = {rate:.0}/s; {} errors",
        measured.elapsed.as_secs_f64(),
        measured.errors
    );
    println!(
        "    settle latency p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms",
        ms(0.5),
        ms(0.99),
        ms(0.999)
    );
    if measured.lag.max() > 1 {
        let lag = |q: f64| measured.lag.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "    sent late against the schedule: p50 {:.2} ms, p99 {:.2} ms (the generator's own \
            timer; a large value would mean the clients could not keep the offered rate)",
            lag(0.5),
            lag(0.99)
        );
    }
    rate
}

pub fn run(args: &LoadArgs) -> Result<(), String> {
    if args.federated {
        return crate::serve::runtime()?.block_on(crate::federated_load::run(args));
    }
    crate::serve::runtime()?.block_on(load(args))
}

#[allow(clippy::float_arithmetic)]
async fn load(args: &LoadArgs) -> Result<(), String> {
    let dir =
        tempfile::Builder::new().prefix("onestop-load-").tempdir().map_err(|e| e.to_string())?;
    let database = args
        .database
        .clone()
        .unwrap_or_else(|| format!("sqlite:{}", dir.path().join("load.sqlite").display()));
    let (agency, tokens, people, mut server): (String, Vec<String>, _, Server) =
        seed_region(&database, &args.policies, args.people, 24).await?;
    let offered = usize::try_from(u64::from(args.rate) * args.seconds).unwrap_or(usize::MAX);
    // The open loop takes `offered` visits; the closed loop the rest, enough for 8× the rate.
    let mut work =
        prepare(&server.api, &tokens, &people, offered * 9, args.clients.min(32), None).await?;
    let first: Vec<Ready> = work.drain(..offered.min(work.len())).collect();
    println!(
        "\nonestop load — {} store, {} clients on loopback",
        database.split(':').next().unwrap_or("?"),
        args.clients
    );
    let open = open_loop(&server.api, first, args.rate, args.clients).await;
    let offered_rate = report(&format!("offered {}/s (open loop)", args.rate), &open);
    let before = crate::cpu::snapshot(server.pid());
    let started = Instant::now();
    let closed = closed_loop(&server.api, work, args.seconds, args.clients).await;
    let after = crate::cpu::snapshot(server.pid());
    let throughput = report("as fast as possible (closed loop)", &closed);
    if let (Some(before), Some(after)) = (before, after)
        && let Some(used) = crate::cpu::used(before, after, started.elapsed())
    {
        print_cpu(&used, throughput);
    }
    let check = server.api.ok(reqwest::Method::GET, "/v1/invariants", &agency, None).await?;
    kill(&mut server);
    let url = database.clone();
    let raw = tokio::task::spawn_blocking(move || {
        onestop_store::raw_commit_rate(&url, Duration::from_secs(3))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    println!("  the store's raw durable single-row commits (same durability settings): {raw:.0}/s");
    println!(
        "  throughput ÷ raw commit rate: {:.2}× (group commit: one fsync for many settlements)",
        throughput / raw
    );
    println!(
        "  ledger and accumulators after the run: {}",
        if check["violations"] == json!([]) { "consistent" } else { "VIOLATED" }
    );
    let _ = offered_rate;
    Ok(())
}

/// Where the cores went in the closed loop: a loop limited by the cores, not by waiting, shows
/// the machine nearly all busy.
#[allow(clippy::float_arithmetic)]
fn print_cpu(used: &crate::cpu::Used, throughput: f64) {
    let per_settle = |cores: f64| {
        if throughput > 0.0 { cores / throughput * 1e6 } else { 0.0 }
    };
    println!(
        "    cores used: service {:.2} ({:.0} µs of CPU a settle), clients {:.2} ({:.0} µs); \
         the machine's {} cores {:.0}% busy",
        used.service_cores,
        per_settle(used.service_cores),
        used.generator_cores,
        per_settle(used.generator_cores),
        used.machine_cores,
        used.machine_busy * 100.0
    );
}
