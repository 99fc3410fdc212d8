//! `onestop load --federated`: settlement across two nodes of a federation, measured beside
//! settlement on one node in the same run.
//!
//! Two `onestop serve` processes on loopback, each with its own SQLite file: Beijing's node
//! (110000) holds the synthetic people, Langfang's node (131000) its own hospitals. Phase one
//! settles at Beijing's hospitals on Beijing's node (the single-node baseline); phase two
//! settles the same kind of visits at Langfang's hospitals through Langfang's node, which
//! forwards each settle to Beijing's and records the answer. Both phases offer the same rate.

use serde_json::json;

use crate::crash::{Server, free_port, kill, seed, start_on};
use crate::load::{LoadArgs, open_loop, prepare, report};

const SECRET_VAR: &str = crate::serve::FEDERATION_SECRET_VAR;

fn config(dir: &std::path::Path, name: &str, region: &str, peer: (&str, &str, u16)) -> String {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "[node]\nname = \"{name}\"\nregions = [\"{region}\"]\n\n[[peers]]\nname = \"{}\"\n\
         regions = [\"{}\"]\nurl = \"http://127.0.0.1:{}\"\n",
        peer.0, peer.1, peer.2
    );
    let _ = std::fs::write(&path, text);
    path.display().to_string()
}

async fn agency(database: &str, id: &str, region: u32) -> Result<String, String> {
    let store = crate::serve::open_store(database)?;
    let who = onestop_store::Institution {
        institution_id: id.into(),
        region: onestop_core::Region(region),
        name: id.into(),
        level: None,
        role: onestop_store::Role::Agency,
    };
    crate::serve::issue(&store, std::sync::Arc::default(), who).await
}

async fn start(
    dir: &std::path::Path,
    node: (&str, &str, u16),
    peer: (&str, &str, u16),
    policies: &std::path::Path,
    secret: &str,
) -> Result<(String, Server), String> {
    let database = format!("sqlite:{}", dir.join(format!("{}.sqlite", node.0)).display());
    let token = agency(&database, &format!("A{}", node.1), node.1.parse().unwrap_or(0)).await?;
    let extra = ["--federation".to_owned(), config(dir, node.0, node.1, peer)];
    let server = start_on(node.2, &database, policies, &extra, &[(SECRET_VAR, secret)]).await?;
    Ok((token, server))
}

pub async fn run(args: &LoadArgs) -> Result<(), String> {
    let dir =
        tempfile::Builder::new().prefix("onestop-fed-").tempdir().map_err(|e| e.to_string())?;
    let secret = onestop_store::people::new_token();
    let (beijing_port, langfang_port) = (free_port()?, free_port()?);
    let beijing_node = ("beijing", "110000", beijing_port);
    let langfang_node = ("langfang", "131000", langfang_port);
    let (beijing_agency, mut beijing) =
        start(dir.path(), beijing_node, langfang_node, &args.policies, &secret).await?;
    let (langfang_agency, mut langfang) =
        start(dir.path(), langfang_node, beijing_node, &args.policies, &secret).await?;
    let year = onestop_server::timestamp(&onestop_server::system_clock()).1.year();
    let people = onestop_sim::people(onestop_core::Region(110_000), args.people, year, 7);
    let beijing_hospitals = seed(&beijing.api, &beijing_agency, &people, 24).await?;
    for person in &people {
        let filing = json!({"person_id": person.request.person_id, "kind": "long_term_resident",
            "destination": "131000", "start": format!("{year}-01-01")});
        beijing
            .api
            .ok(reqwest::Method::POST, "/v1/filings", &beijing_agency, Some(&filing))
            .await?;
    }
    let mut langfang_hospitals = Vec::new();
    for institution in onestop_sim::institutions(onestop_core::Region(131_000)).into_iter().take(24)
    {
        let body = serde_json::to_value(&institution).map_err(|e| e.to_string())?;
        let credential = langfang
            .api
            .ok(reqwest::Method::POST, "/v1/institutions", &langfang_agency, Some(&body))
            .await?;
        langfang_hospitals.push(credential["token"].as_str().unwrap_or_default().to_owned());
    }
    let offered = usize::try_from(u64::from(args.rate) * args.seconds).unwrap_or(usize::MAX);
    let clients = args.clients.min(32);
    let local = prepare(&beijing.api, &beijing_hospitals, &people, offered, clients, None).await?;
    let away =
        prepare(&langfang.api, &langfang_hospitals, &people, offered, clients, Some("110000"))
            .await?;
    println!("\nonestop load --federated — SQLite nodes, {} clients on loopback", args.clients);
    let single = open_loop(&beijing.api, local, args.rate, args.clients).await;
    report(&format!("one node, offered {}/s (open loop)", args.rate), &single);
    let cross = open_loop(&langfang.api, away, args.rate, args.clients).await;
    report(&format!("across two nodes, offered {}/s (open loop)", args.rate), &cross);
    #[allow(clippy::float_arithmetic)]
    let ratio = |q: f64| {
        cross.latencies.value_at_quantile(q) as f64
            / single.latencies.value_at_quantile(q).max(1) as f64
    };
    println!("  cross-node ÷ single-node latency: p50 {:.2}×, p99 {:.2}×", ratio(0.5), ratio(0.99));
    let check =
        beijing.api.ok(reqwest::Method::GET, "/v1/invariants", &beijing_agency, None).await?;
    let consistent = check["violations"] == json!([]);
    println!(
        "  Beijing's ledger after the run: {}",
        if consistent { "consistent" } else { "VIOLATED" }
    );
    kill(&mut langfang);
    kill(&mut beijing);
    Ok(())
}
