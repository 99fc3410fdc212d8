//! Times settle through the store alone (no HTTP), to split service time into store and HTTP.

use std::sync::Arc;
use std::time::Instant;

use onestop_api::service::{AddLinesRequest, OpenVisitRequest, SettleRequest};
use onestop_api::wire::Scalar;
use onestop_core::{Date, HospitalLevel, Region};
use onestop_store::{Env, Idempotency, Institution, Role, Store, ops, people, visits};

fn env(book: &onestop_core::PolicyBook) -> Env<'_> {
    Env {
        book,
        now: "2024-06-10T09:00:00+08:00".into(),
        today: Date::constant(2024, 6, 10),
        channel: onestop_store::audit::Channel::Local,
    }
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("dir");
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("sqlite:{}", dir.path().join("t.sqlite").display()));
    let store = Store::open(&url).expect("store");
    let book =
        Arc::new(onestop_policy::load_dir(std::path::Path::new("policies")).expect("policies").0);
    let agency = Institution {
        institution_id: "A1".into(),
        region: Region(110_000),
        name: "a".into(),
        level: None,
        role: Role::Agency,
    };
    let hospital = Institution {
        institution_id: "H1".into(),
        region: Region(110_000),
        name: "h".into(),
        level: Some(HospitalLevel::Level2),
        role: Role::Institution,
    };
    let people = onestop_sim::people(Region(110_000), 500, 2024, 3);
    for p in &people {
        let (b, a, r) = (book.clone(), agency.clone(), p.request.clone());
        store
            .write(move |tx| people::register_person(tx, &env(&b), &a, &r))
            .await
            .expect("s")
            .expect("p");
    }
    let sim = onestop_sim::visits(&people, 1, 2000, 5);
    let mut ids = Vec::new();
    for v in &sim {
        let (b, h) = (book.clone(), hospital.clone());
        let open = OpenVisitRequest {
            person_id: Some(v.person_id.clone()),
            visit: Some(Scalar(v.visit.into())),
            ..Default::default()
        };
        let visit = store
            .write(move |tx| visits::open_visit(tx, &env(&b), &h, &open))
            .await
            .expect("s")
            .expect("v");
        let (b, h, id, lines) = (
            book.clone(),
            hospital.clone(),
            visit.visit_id.clone(),
            AddLinesRequest { lines: v.lines.clone() },
        );
        store
            .write(move |tx| visits::add_lines(tx, &env(&b), &h, &id, &lines))
            .await
            .expect("s")
            .expect("l");
        ids.push(visit.visit_id);
    }
    let started = Instant::now();
    let mut times = Vec::new();
    for (n, id) in ids.into_iter().enumerate() {
        let (b, h) = (book.clone(), hospital.clone());
        let t = Instant::now();
        let key = format!("k{n}");
        store
            .write(move |tx| {
                ops::settle(
                    tx,
                    &env(&b),
                    &h,
                    &id,
                    &SettleRequest::default(),
                    &Idempotency { key: &key, request_sha256: "x", also: None },
                )
            })
            .await
            .expect("s");
        times.push(t.elapsed().as_micros());
    }
    times.sort();
    let sizes = store
        .read(|tx| {
            tx.query_strings(
                "SELECT CAST(AVG(LENGTH(result)) AS TEXT) || ' ' || CAST(MAX(LENGTH(result)) AS \
                 TEXT) FROM settlements",
            )
        })
        .await
        .expect("sizes");
    println!("stored result bytes (avg max): {}", sizes[0]);
    println!(
        "{} sequential settles in {:?}: p50 {} µs, p99 {} µs",
        times.len(),
        started.elapsed(),
        times[times.len() / 2],
        times[times.len() * 99 / 100]
    );
}
