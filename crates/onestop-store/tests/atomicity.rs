//! Transaction guarantees every store gives, checked on each store available (see
//! `support`): a failed or panicking write leaves nothing behind, a read cannot write, writes
//! that lock one person serialize (no lost update), and changing a visit's lines waits for a
//! settlement of its person.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use onestop_api::LineDto;
use onestop_api::service::AddLinesRequest;
use onestop_api::wire::Scalar;
use onestop_core::{Category, Date, Fen, HospitalLevel, Region, VisitType};
use onestop_store::model::{Enrolment, IdKind, PersonRow, VisitRow, VisitStatus, make_id};
use onestop_store::{Env, Institution, PersonKey, Role, Store, StoreError, visits};

mod support;
use support::stores;

fn key() -> PersonKey {
    PersonKey::new(Region(110_000), "P0001").expect("key")
}

fn institution() -> Institution {
    let id = "H11000000009".to_owned();
    Institution {
        institution_id: id.clone(),
        region: Region(110_000),
        name: id,
        level: None,
        role: Role::Agency,
    }
}

async fn institution_exists(store: &Store) -> bool {
    store.read(|tx| Ok(tx.institution("H11000000009")?.is_some())).await.expect("read")
}

async fn add_person(store: &Store, balance: i64) {
    let row = PersonRow {
        key: key(),
        name: "张三".into(),
        id_number: "110101197001011234".into(),
        birth_date: Date::constant(1970, 1, 1),
        gender: "1".into(),
        account_balance: Fen(balance),
    };
    store.write(move |tx| tx.upsert_person(&row)).await.expect("person");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_leaves_nothing() {
    for store in stores().await {
        let failed = store
            .write(|tx| {
                tx.insert_institution(&institution(), "token", "now")?;
                Err::<(), _>(StoreError::Corrupt("the work failed".into()))
            })
            .await;
        assert!(matches!(failed, Err(StoreError::Corrupt(_))), "{}", store.kind());
        assert!(!institution_exists(&store).await, "{}: the insert was rolled back", store.kind());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_write_leaves_nothing_and_the_store_goes_on() {
    for store in stores().await {
        let panicked = store
            .write(|tx| {
                tx.insert_institution(&institution(), "token", "now")?;
                assert!(tx.institution("H11000000009")?.is_some(), "visible inside");
                panic!("a bug in the request");
            })
            .await;
        assert!(matches!(panicked, Err::<(), _>(StoreError::Corrupt(_))), "{}", store.kind());
        assert!(!institution_exists(&store).await, "{}: the insert was rolled back", store.kind());
        store
            .write(|tx| tx.insert_institution(&institution(), "token", "now"))
            .await
            .expect("write");
        assert!(institution_exists(&store).await, "{}", store.kind());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_cannot_write() {
    for store in stores().await {
        let wrote = store.read(|tx| tx.insert_institution(&institution(), "token", "now")).await;
        assert!(wrote.is_err(), "{}", store.kind());
        assert!(!institution_exists(&store).await, "{}", store.kind());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_that_lock_one_person_serialize() {
    const WRITERS: i64 = 6;
    for store in stores().await {
        let store = Arc::new(store);
        add_person(&store, 10_000).await;
        let mut handles = Vec::new();
        for _ in 0..WRITERS {
            let store = Arc::clone(&store);
            handles.push(tokio::spawn(async move {
                store
                    .write(|tx| {
                        let person = tx.person(&key(), true)?.expect("person");
                        // Without the lock, the others would read the same balance meanwhile.
                        std::thread::sleep(Duration::from_millis(20));
                        tx.next_seq_with_balance(&key(), person.account_balance - Fen(100))
                    })
                    .await
                    .expect("write")
            }));
        }
        let mut seqs = Vec::new();
        for handle in handles {
            seqs.push(handle.await.expect("join"));
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=WRITERS).collect::<Vec<_>>(), "{}", store.kind());
        let person = store.read(|tx| tx.person(&key(), false)).await.expect("read");
        let balance = person.expect("person").account_balance;
        assert_eq!(balance, Fen(10_000 - 100 * WRITERS), "{}: no lost update", store.kind());
    }
}

/// A hospital, the person enrolled for 2024 and an open visit of theirs without lines.
async fn open_visit(store: &Store, hospital: &Institution) -> String {
    add_person(store, 10_000).await;
    let hospital = hospital.clone();
    let write = store.write(move |tx| {
        tx.insert_institution(&hospital, "hospital-token", "now")?;
        let category = Category::parse("working_age").expect("category");
        let enrolment = Enrolment {
            year: 2024,
            category,
            civil_servant: false,
            enterprise_supplementary: false,
            needy: false,
        };
        tx.upsert_enrolment(&key(), &enrolment)?;
        let visit_id = make_id(IdKind::Visit, &key(), tx.next_seq(&key())?);
        tx.insert_visit(&VisitRow {
            key: key(),
            visit_id: visit_id.clone(),
            institution_id: hospital.institution_id.clone(),
            treatment_region: hospital.region,
            visit_type: VisitType::parse("inpatient").expect("visit type"),
            date_of_service: Date::constant(2024, 6, 10),
            admission_number: None,
            status: VisitStatus::Open,
            opened_at: "now".into(),
            discharged_at: None,
            disease: None,
        })?;
        Ok(visit_id)
    });
    write.await.expect("visit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn adding_lines_waits_for_a_settlement_of_the_person() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let book = Arc::new(onestop_policy::load_dir(&dir).expect("policies").0);
    let hospital = Institution {
        institution_id: "H11000000001".into(),
        region: Region(110_000),
        name: "hospital".into(),
        level: Some(HospitalLevel::Level3),
        role: Role::Institution,
    };
    for store in stores().await {
        let store = Arc::new(store);
        let visit_id = open_visit(&store, &hospital).await;
        // A settlement: holds the person, reads the lines, settles the visit a while later.
        let (locked, is_locked) = tokio::sync::oneshot::channel();
        let settling = tokio::spawn({
            let (store, visit_id) = (Arc::clone(&store), visit_id.clone());
            async move {
                let mut locked = Some(locked);
                let write = store.write(move |tx| {
                    tx.person(&key(), true)?;
                    let lines = tx.lines(&key(), &visit_id)?.len();
                    if let Some(locked) = locked.take() {
                        let _ = locked.send(());
                    }
                    std::thread::sleep(Duration::from_millis(300));
                    tx.set_visit_status(&key(), &visit_id, VisitStatus::Settled)?;
                    Ok(lines)
                });
                write.await.expect("settle")
            }
        });
        is_locked.await.expect("the settlement started");
        let line = LineDto {
            code: Some("X".into()),
            class: Some(Scalar("a".into())),
            amount: Some(Scalar("100".into())),
            ..Default::default()
        };
        let request = AddLinesRequest { lines: vec![line] };
        let (book, actor) = (Arc::clone(&book), hospital.clone());
        let added = store
            .write(move |tx| {
                let env = Env {
                    book: &book,
                    now: "now".into(),
                    today: Date::constant(2024, 6, 10),
                    channel: onestop_store::audit::Channel::Local,
                };
                visits::add_lines(tx, &env, &actor, &visit_id, &request)
            })
            .await
            .expect("store");
        assert_eq!(settling.await.expect("join"), 0, "the settlement saw no line");
        let refused = added.map(|_| ()).map_err(|error| error.body.code);
        assert_eq!(
            refused,
            Err("visit_not_open".to_owned()),
            "{}: a line added meanwhile would be on a settled visit, outside its settlement",
            store.kind()
        );
    }
}
