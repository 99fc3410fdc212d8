//! The store contract: the same tests run on every store available (SQLite always; PostgreSQL
//! when `ONESTOP_TEST_POSTGRES` names a server, as `cargo xtask test` arranges), each on a
//! fresh database.

use std::path::Path;
use std::sync::Arc;

use onestop_api::service::{
    AddLinesRequest, EnrolmentRequest, FilingDto, FilingRequest, OpenVisitRequest,
    RegisterPersonRequest, SettleRequest, SettlementRecordDto, VisitDto,
};
use onestop_api::wire::Scalar;
use onestop_api::{ErrorBody, LineDto};
use onestop_core::{Date, Fen, HospitalLevel, PolicyBook, Region};
use onestop_store::audit::Channel;
use onestop_store::model::{FilingStatus, StoredResponse};
use onestop_store::{
    Env, Idempotency, Institution, Role, Store, clearing, filings, ops, people, visits,
};

mod support;
use support::stores;

const BEIJING: Region = Region(110_000);
const LANGFANG: Region = Region(131_000);

/// A store with an agency, two hospitals and one enrolled person.
struct World {
    store: Store,
    book: Arc<PolicyBook>,
    agency: Institution,
    hospitals: [Institution; 2],
}

fn book() -> Arc<PolicyBook> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    Arc::new(onestop_policy::load_dir(&dir).expect("policies").0)
}

fn env(book: &PolicyBook) -> Env<'_> {
    Env {
        book,
        now: "2024-06-10T09:00:00+08:00".into(),
        today: Date::constant(2024, 6, 10),
        channel: Channel::Api,
    }
}

fn institution(id: &str, role: Role, level: Option<HospitalLevel>) -> Institution {
    Institution { institution_id: id.into(), region: BEIJING, name: id.into(), level, role }
}

impl World {
    async fn new(store: Store) -> World {
        let book = book();
        let agency = institution("A110000", Role::Agency, None);
        let hospitals = [
            institution("H11000000001", Role::Institution, Some(HospitalLevel::Level3)),
            institution("H11000000002", Role::Institution, Some(HospitalLevel::Level3)),
        ];
        let world = World { store, book, agency, hospitals };
        for member in [&world.agency, &world.hospitals[0], &world.hospitals[1]] {
            let member = member.clone();
            let book = Arc::clone(&world.book);
            world
                .store
                .write(move |tx| people::register(tx, &env(&book), &member))
                .await
                .expect("register")
                .expect("a new id");
        }
        world.person("P0001", "working_age", "110101197001011234").await;
        world
    }

    async fn person(&self, id: &str, category: &str, id_number: &str) {
        let request = RegisterPersonRequest {
            person_id: id.into(),
            name: "张三".into(),
            id_number: id_number.into(),
            birth_date: "1970-01-01".into(),
            gender: "1".into(),
            account_balance: Some(Scalar("2000".into())),
            enrolments: vec![EnrolmentRequest {
                year: 2024,
                category: category.into(),
                ..Default::default()
            }],
        };
        let (book, agency) = (Arc::clone(&self.book), self.agency.clone());
        let answer = self
            .store
            .write(move |tx| people::register_person(tx, &env(&book), &agency, &request))
            .await;
        answer.expect("store").expect("registered");
    }

    async fn visit(&self, hospital: usize, person: &str, amount: &str) -> VisitDto {
        self.visit_by(&self.hospitals[hospital], person, "2024-06-10", amount).await
    }

    /// Opens an inpatient visit at `actor` for a person insured in Beijing, with one line.
    async fn visit_by(
        &self,
        actor: &Institution,
        person: &str,
        date: &str,
        amount: &str,
    ) -> VisitDto {
        let (book, actor) = (Arc::clone(&self.book), actor.clone());
        let request = OpenVisitRequest {
            person_id: Some(person.into()),
            insured_region: Some(Scalar(BEIJING.to_string())),
            visit: Some(Scalar("inpatient".into())),
            date_of_service: Some(Scalar(date.into())),
            ..Default::default()
        };
        let visit = self
            .store
            .write({
                let (book, actor) = (Arc::clone(&book), actor.clone());
                move |tx| visits::open_visit(tx, &env(&book), &actor, &request)
            })
            .await
            .expect("store")
            .expect("opened");
        let lines = AddLinesRequest {
            lines: vec![LineDto {
                code: Some("X".into()),
                class: Some(Scalar("a".into())),
                amount: Some(Scalar(amount.into())),
                ..Default::default()
            }],
        };
        let visit_id = visit.visit_id.clone();
        self.store
            .write(move |tx| visits::add_lines(tx, &env(&book), &actor, &visit_id, &lines))
            .await
            .expect("store")
            .expect("lines")
    }

    async fn settle(
        &self,
        hospital: usize,
        visit_id: &str,
        key: &str,
        body: &str,
    ) -> StoredResponse {
        self.settle_by(&self.hospitals[hospital], visit_id, key, body).await
    }

    async fn settle_by(
        &self,
        actor: &Institution,
        visit_id: &str,
        key: &str,
        body: &str,
    ) -> StoredResponse {
        self.settle_hashed(actor, visit_id, key, &format!("sha-of-{body}"), None).await
    }

    /// Credits `person`'s personal account as `actor`, under idempotency key `key`.
    async fn credit(
        &self,
        (actor, person): (&Institution, &str),
        key: &str,
        amount: &str,
        period: &str,
    ) -> StoredResponse {
        let (book, actor) = (Arc::clone(&self.book), actor.clone());
        let request = onestop_api::service::AccountCreditRequest {
            amount: Scalar(amount.into()),
            period: period.into(),
            note: "月度划入".into(),
        };
        let (key, sha) = (key.to_owned(), format!("sha-of-{amount}-{period}"));
        let person = onestop_store::PersonKey::new(BEIJING, person).expect("key");
        self.store
            .write(move |tx| {
                let idempotency = Idempotency { key: &key, request_sha256: &sha, also: None };
                let env = env(&book);
                onestop_store::accounts::credit_account(
                    tx,
                    &env,
                    &actor,
                    &person,
                    &request,
                    &idempotency,
                )
            })
            .await
            .expect("store")
    }

    /// A settle whose request hashes to `sha` (and, as stored by an earlier version, `also`).
    async fn settle_hashed(
        &self,
        actor: &Institution,
        visit_id: &str,
        key: &str,
        sha: &str,
        also: Option<&str>,
    ) -> StoredResponse {
        let (book, actor) = (Arc::clone(&self.book), actor.clone());
        let (visit_id, key, sha) = (visit_id.to_owned(), key.to_owned(), sha.to_owned());
        let also = also.map(str::to_owned);
        self.store
            .write(move |tx| {
                let (request_sha256, also) = (sha.as_str(), also.as_deref());
                let idempotency = Idempotency { key: &key, request_sha256, also };
                ops::settle(
                    tx,
                    &env(&book),
                    &actor,
                    &visit_id,
                    &SettleRequest::default(),
                    &idempotency,
                )
            })
            .await
            .expect("store")
    }

    async fn cancel(&self, hospital: usize, settlement_id: &str, key: &str) -> StoredResponse {
        let (book, actor) = (Arc::clone(&self.book), self.hospitals[hospital].clone());
        let (id, key) = (settlement_id.to_owned(), key.to_owned());
        self.store
            .write(move |tx| {
                let idempotency = Idempotency { key: &key, request_sha256: "cancel", also: None };
                ops::cancel(tx, &env(&book), &actor, &id, &idempotency)
            })
            .await
            .expect("store")
    }

    async fn ytd(&self, person: &str) -> onestop_api::YtdDto {
        self.person_view(person).await.ytd
    }

    /// The person of Beijing as the agency reads them for 2024.
    async fn person_view(&self, person: &str) -> onestop_api::service::PersonViewDto {
        let (book, agency) = (Arc::clone(&self.book), self.agency.clone());
        let key = onestop_store::PersonKey::new(BEIJING, person).expect("key");
        self.store
            .write(move |tx| people::person_view(tx, &env(&book), &agency, &key, 2024))
            .await
            .expect("store")
            .expect("person")
    }

    /// Imports an assistance list's rows, as the agency.
    async fn import(
        &self,
        file: &'static str,
        rows: Vec<onestop_store::import::ListRow>,
    ) -> Result<onestop_api::service::AssistanceImportDto, onestop_api::ServiceError> {
        let (agency, book) = (self.agency.clone(), Arc::clone(&self.book));
        self.store
            .write(move |tx| people::import_assistance(tx, &env(&book), &agency, file, &rows))
            .await
            .expect("store")
    }

    async fn file(&self, kind: &str, start: &str, filed_on: Option<&str>) -> FilingDto {
        let (book, agency) = (Arc::clone(&self.book), self.agency.clone());
        let request = FilingRequest {
            person_id: "P0001".into(),
            kind: kind.into(),
            destination: Scalar(LANGFANG.to_string()),
            start: start.into(),
            filed_on: filed_on.map(str::to_owned),
            ..Default::default()
        };
        let answer =
            self.store.write(move |tx| filings::file(tx, &env(&book), &agency, &request)).await;
        answer.expect("store").expect("filed")
    }

    async fn set_filing(&self, id: &str, to: FilingStatus) -> Result<FilingDto, ErrorBody> {
        let (book, agency, id) = (Arc::clone(&self.book), self.agency.clone(), id.to_owned());
        let answer = self
            .store
            .write(move |tx| filings::set_status(tx, &env(&book), &agency, &id, to))
            .await;
        answer.expect("store").map_err(|e| e.body)
    }

    /// Registers a level-3 hospital of Langfang (131000).
    async fn langfang_hospital(&self) -> Institution {
        let langfang = Institution {
            region: LANGFANG,
            ..institution("H13100000001", Role::Institution, Some(HospitalLevel::Level3))
        };
        let (book, member) = (Arc::clone(&self.book), langfang.clone());
        let registered = self.store.write(move |tx| people::register(tx, &env(&book), &member));
        registered.await.expect("r").expect("a new id");
        langfang
    }

    async fn violations(&self) -> Vec<String> {
        self.store.read(ops::violations).await.expect("store")
    }
}

fn record(response: &StoredResponse) -> SettlementRecordDto {
    assert_eq!(response.status, 200, "{:?}", response.body);
    serde_json::from_str(response.body.get().expect("built")).expect("settlement record")
}

fn error(response: &StoredResponse) -> ErrorBody {
    serde_json::from_str(response.body.get().expect("built")).expect("error body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settle_is_exactly_once_and_cancel_restores_the_accumulators() {
    for store in stores().await {
        let world = World::new(store).await;
        let visit = world.visit(0, "P0001", "10000").await;
        let first = world.settle(0, &visit.visit_id, "k1", "{}").await;
        let settled = record(&first);
        // The answer splices the stored settlement JSON in; it is byte for byte the record as
        // serialized from its parts.
        let (actor, id) = (world.hospitals[0].clone(), settled.settlement_id.clone());
        let book = Arc::clone(&world.book);
        let fetched = world
            .store
            .write(move |tx| ops::get_settlement(tx, &env(&book), &actor, &id))
            .await
            .expect("store")
            .expect("found");
        assert_eq!(
            first.body.get().expect("built"),
            &serde_json::to_string(&fetched).expect("json")
        );
        // (10000 − 1300) × 78 % = 6786 from the basic fund (resident, level 3).
        assert_eq!(settled.settlement.tiers[0].amount, "6786.00");
        assert_eq!(world.settle(0, &visit.visit_id, "k1", "{}").await, first, "a retry replays");
        let reused = world.settle(0, &visit.visit_id, "k1", "{\"other\":1}").await;
        assert_eq!(
            (reused.status, error(&reused).code.as_str()),
            (422, "idempotency_key_reused_with_another_request")
        );
        let again = world.settle(0, &visit.visit_id, "k2", "{}").await;
        assert_eq!((again.status, error(&again).code.as_str()), (409, "visit_not_open"));
        // The institution's answered keys by prefix, each with what it stored (a settlement is
        // named, not repeated); the failure under k2 is not among them.
        let key = onestop_store::PersonKey::new(BEIJING, "P0001").expect("key");
        let hospital = world.hospitals[0].institution_id.clone();
        let answers = world
            .store
            .read(move |tx| tx.idempotency_answers(&key, &hospital, "k"))
            .await
            .expect("store");
        let named = format!("{}{}", ops::SETTLEMENT_REFERENCE, settled.settlement_id);
        assert_eq!(answers, vec![("k1".to_owned(), named)]);
        let ytd = world.ytd("P0001").await;
        assert_eq!(ytd.tiers["basic"]["inpatient"]["paid"].as_str(), "6786.00");
        assert_eq!(ytd.admissions.as_ref().map(Scalar::as_str), Some("1"));

        let cancelled = world.cancel(0, &settled.settlement_id, "c1").await;
        let reversal = record(&cancelled);
        assert_eq!((reversal.status.as_str(), reversal.total.as_str()), ("reversal", "-10000.00"));
        // The settle's key now replays the settlement as it stands: cancelled.
        let replay = record(&world.settle(0, &visit.visit_id, "k1", "{}").await);
        assert_eq!(
            (replay.status.as_str(), replay.reversed_by.as_deref()),
            ("cancelled", Some(reversal.settlement_id.as_str()))
        );
        assert_eq!(replay.settlement, settled.settlement);
        let twice = record(&world.cancel(0, &settled.settlement_id, "c2").await);
        assert_eq!(
            twice.settlement_id, reversal.settlement_id,
            "cancelling twice gives the same reversal"
        );
        let restored = world.ytd("P0001").await;
        assert!(restored.tiers.is_empty(), "{restored:?}");
        assert_eq!(restored.admissions.as_ref().map(Scalar::as_str), Some("0"));

        // The visit is open again and settles on the restored totals, to the same amounts.
        let resettled = record(&world.settle(0, &visit.visit_id, "k3", "{}").await);
        assert_eq!(resettled.settlement.tiers, settled.settlement.tiers);
        // A record stored under another hash of the same request (an earlier version's) still
        // replays when the retry names that hash as `also`; without it, it is another request.
        let retry = |also| {
            world.settle_hashed(&world.hospitals[0], &visit.visit_id, "k3", "canonical", also)
        };
        assert_eq!(record(&retry(Some("sha-of-{}")).await), resettled);
        let refused = retry(None).await;
        assert_eq!(error(&refused).code, "idempotency_key_reused_with_another_request");
        assert_eq!(world.violations().await, Vec::<String>::new());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_stored_under_their_key_too() {
    for store in stores().await {
        let world = World::new(store).await;
        let visit = world.visit(0, "P0001", "500").await;
        let other_hospital = world.settle(1, &visit.visit_id, "k1", "{}").await;
        assert_eq!(
            (other_hospital.status, error(&other_hospital).code.as_str()),
            (403, "forbidden")
        );
        assert_eq!(world.settle(1, &visit.visit_id, "k1", "{}").await, other_hospital);
        let unknown = world.settle(0, "V-110000-P0001-99", "k9", "{}").await;
        assert_eq!((unknown.status, error(&unknown).code.as_str()), (404, "visit_not_found"));
        assert_eq!(world.settle(0, "V-110000-P0001-99", "k9", "{}").await, unknown);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_settlements_of_one_person_meet_the_deductible_once() {
    for store in stores().await {
        let world = Arc::new(World::new(store).await);
        let visits = [world.visit(0, "P0001", "3000").await, world.visit(1, "P0001", "3000").await];
        let mut handles = Vec::new();
        for (hospital, visit) in visits.iter().enumerate() {
            let (world, visit_id) = (Arc::clone(&world), visit.visit_id.clone());
            handles.push(tokio::spawn(async move {
                world.settle(hospital, &visit_id, "same-key", "{}").await
            }));
        }
        let mut paid = Vec::new();
        for handle in handles {
            paid.push(record(&handle.await.expect("join")).settlement.tiers[0].amount.clone());
        }
        paid.sort();
        // Whichever came first bore the 1300 deductible: (3000 − 1300) × 78 % = 1326; the
        // second, a later admission of a working-age resident, 650: (3000 − 650) × 78 % = 1833.
        assert_eq!(paid, ["1326.00", "1833.00"]);
        let ytd = world.ytd("P0001").await;
        assert_eq!(
            ytd.tiers["basic"]["inpatient"]["deductible_met"].as_str(),
            "1950.00",
            "{paid:?}"
        );
        assert_eq!(ytd.admissions.as_ref().map(Scalar::as_str), Some("2"));
        assert_eq!(world.violations().await, Vec::<String>::new());
    }
}

/// A Beijing resident treated in Langfang: refused unfiled (Beijing's rule), settled with the
/// cut of the filing kind once filed, refused again once withdrawn; a referral waits for the
/// agency's approval; an emergency filed too late does not cover the visit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn care_elsewhere_is_settled_by_the_persons_valid_filing() {
    for store in stores().await {
        let world = World::new(store).await;
        let langfang = world.langfang_hospital().await;
        let settle = |visit: VisitDto, key: &'static str| {
            let langfang = langfang.clone();
            let world = &world;
            async move { world.settle_by(&langfang, &visit.visit_id, key, "{}").await }
        };
        let unfiled = settle(world.visit_by(&langfang, "P0001", "2024-06-10", "10000").await, "u");
        let unfiled = unfiled.await;
        assert_eq!(
            (unfiled.status, error(&unfiled).code.as_str()),
            (422, "cross_region_filing_required")
        );

        // Other temporary: Beijing's 78 % (resident, level 3) cut by 10 points.
        let filing = world.file("other_temporary", "2024-06-01", None).await;
        assert_eq!(
            (filing.status.as_str(), filing.kind_zh.as_str()),
            ("approved", "其他临时外出就医人员")
        );
        let visit = world.visit_by(&langfang, "P0001", "2024-06-10", "10000").await;
        let settled = record(&settle(visit, "t").await);
        // (10000 − 1300) × 68 % = 5916.
        assert_eq!(settled.settlement.tiers[0].amount, "5916.00");
        let ytd = world.ytd("P0001").await;
        assert_eq!(ytd.tiers["basic"]["inpatient"]["paid"].as_str(), "5916.00", "paid by Beijing");

        world.set_filing(&filing.filing_id, FilingStatus::Withdrawn).await.expect("withdrawn");
        let again = world.set_filing(&filing.filing_id, FilingStatus::Withdrawn).await;
        assert_eq!(again.expect_err("twice").code, "filing_not_pending");
        let visit = world.visit_by(&langfang, "P0001", "2024-06-10", "2000").await;
        let refused = settle(visit.clone(), "w").await;
        assert_eq!(error(&refused).code, "cross_region_filing_required");

        // A referral needs approval in Beijing (5 points): pending does not cover, approved does.
        let referral = world.file("referral", "2024-06-01", None).await;
        assert_eq!(referral.status, "pending");
        assert_eq!(error(&settle(visit.clone(), "p").await).code, "cross_region_filing_required");
        world.set_filing(&referral.filing_id, FilingStatus::Approved).await.expect("approved");
        let settled = record(&settle(visit, "a").await);
        // A later admission of a working-age resident halves the deductible: (2000 − 650) × 73 %.
        assert_eq!(settled.settlement.tiers[0].amount, "985.50");

        // An emergency on 2024-05-01 filed 40 days later: past Beijing's 30 days.
        world.set_filing(&referral.filing_id, FilingStatus::Withdrawn).await.expect("withdrawn");
        world.file("emergency", "2024-05-01", Some("2024-06-10")).await;
        let visit = world.visit_by(&langfang, "P0001", "2024-05-01", "1000").await;
        assert_eq!(error(&settle(visit, "e").await).code, "cross_region_filing_required");
        assert_eq!(world.violations().await, Vec::<String>::new());
    }
}

/// Sums of the ledger's postings to accounts matching `like`, booked in `from..until`.
async fn ledger_sum(world: &World, like: &str, from: &str, until: &str) -> Fen {
    let sql = format!(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS TEXT) FROM ledger WHERE account LIKE '{like}' \
         AND booked_on >= '{from}' AND booked_on < '{until}'"
    );
    let found = world.store.read(move |tx| tx.query_strings(&sql)).await.expect("store");
    Fen(found[0].parse().expect("a number"))
}

/// A June settlement in Langfang cancelled in July: June's statements carry it, July's carry
/// the reversal; each month's statements add up to that month's ledger to the fen, and the
/// regions' nets cancel out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clearing_statements_add_up_to_the_ledger_month_by_month() {
    for store in stores().await {
        let world = World::new(store).await;
        let langfang = world.langfang_hospital().await;
        world.file("long_term_resident", "2024-01-01", None).await;
        let at_home = world.visit(0, "P0001", "3000").await;
        record(&world.settle(0, &at_home.visit_id, "home", "{}").await);
        let visit = world.visit_by(&langfang, "P0001", "2024-06-10", "10000").await;
        let away = record(&world.settle_by(&langfang, &visit.visit_id, "away", "{}").await);
        let book = Arc::clone(&world.book);
        let (actor, id) = (langfang.clone(), away.settlement_id.clone());
        let july = world
            .store
            .write(move |tx| {
                let env = Env {
                    book: &book,
                    now: "2024-07-02T09:00:00+08:00".into(),
                    today: Date::constant(2024, 7, 2),
                    channel: Channel::Api,
                };
                ops::cancel(
                    tx,
                    &env,
                    &actor,
                    &id,
                    &Idempotency { key: "c", request_sha256: "c", also: None },
                )
            })
            .await
            .expect("store");
        assert_eq!(july.status, 200, "{:?}", july.body);
        for (month, from, until) in
            [("2024-06", "2024-06-01", "2024-07-01"), ("2024-07", "2024-07-01", "2024-08-01")]
        {
            let month = onestop_clearing::Month::parse(month).expect("month");
            let statements =
                world.store.read(move |tx| clearing::statements(tx, month)).await.expect("store");
            let fund: Fen = statements
                .iter()
                .map(|s| s.local.fund + s.counterparts.iter().map(|c| c.payable.fund).sum::<Fen>())
                .sum();
            assert_eq!(fund, ledger_sum(&world, "tier:%", from, until).await, "{month}");
            let account: Fen = statements
                .iter()
                .map(|s| {
                    s.local.personal_account
                        + s.counterparts.iter().map(|c| c.payable.personal_account).sum::<Fen>()
                })
                .sum();
            let ledger = ledger_sum(&world, "personal_account", from, until).await;
            assert_eq!(account, ledger, "{month}");
            let nets: Fen = statements.iter().map(|s| s.net_total).sum();
            assert_eq!(nets, Fen::ZERO, "{month}");
        }
        let june = onestop_clearing::Month::parse("2024-06").expect("month");
        let beijing = world
            .store
            .read(move |tx| clearing::statements(tx, june))
            .await
            .expect("store")
            .into_iter()
            .find(|s| s.region == BEIJING)
            .expect("Beijing's statement");
        // Beijing owes Langfang what it paid for its resident there, a second admission of a
        // working-age resident (the deductible halved): (10000 − 650) × 78 % = 7293.
        let owed = &beijing.counterparts[0];
        assert_eq!((owed.counterpart, owed.payable.fund.to_string()), (LANGFANG, "7293.00".into()));
        assert_eq!(beijing.net_total.to_string(), "-7293.00");
        assert_eq!(beijing.local.settlements, 1, "the settlement at home is not cleared");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_assistance_list_ends_an_entitlement_even_in_the_same_instant() {
    use onestop_core::AssistanceCategory;
    use onestop_store::import::ListRow;
    for store in stores().await {
        let world = World::new(store).await;
        let row = |to: Option<Date>| ListRow {
            row: 2,
            same_as: None,
            id_number: "110101197001011234".into(),
            category: AssistanceCategory::SubsistenceAllowance,
            effective_from: Date::constant(2024, 1, 1),
            effective_to: to,
        };
        // The monthly list, then the exit list (退出名单), both under the same fixed clock.
        for (file, to) in [("list.csv", None), ("exit.csv", Some(Date::constant(2024, 5, 31)))] {
            world.import(file, vec![row(to)]).await.expect("imported");
        }
        let person = world.person_view("P0001").await;
        assert_eq!(person.assistance, None, "ended on 2024-05-31, before today 2024-06-10");
        // A settlement on a visit of today pays no assistance.
        let visit = world.visit(0, "P0001", "30000").await;
        let settled = record(&world.settle(0, &visit.visit_id, "k1", "{}").await);
        let assistance = settled.settlement.tiers.iter().find(|t| t.id == "medical_assistance");
        assert!(assistance.is_none_or(|t| t.amount == "0.00"), "{:?}", settled.settlement.tiers);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_credit_is_made_once_moves_the_balance_and_is_spent_by_settlements() {
    use onestop_api::service::AccountCreditDto;
    for store in stores().await {
        let world = World::new(store).await;
        let agency = world.agency.clone();
        world.person("P0002", "in_service", "11010519491231002X").await;
        // Registered with 2000.00; the agency credits June's 300.50.
        let first = world.credit((&agency, "P0002"), "c-2024-06", "300.50", "2024-06").await;
        assert_eq!(first.status, 201, "{:?}", first.body);
        let credit: AccountCreditDto =
            serde_json::from_str(first.body.get().expect("built")).expect("a credit");
        assert_eq!(
            (credit.amount.as_str(), credit.balance_after.as_str(), credit.period.as_str()),
            ("300.50", "2300.50", "2024-06")
        );
        assert!(credit.credit_id.starts_with("C-110000-P0002-"), "{}", credit.credit_id);
        // A retry answers the same credit and credits nothing more; the same key with another
        // body is refused.
        let again = world.credit((&agency, "P0002"), "c-2024-06", "300.50", "2024-06").await;
        assert_eq!((again.status, again.body.get().ok()), (201, first.body.get().ok()));
        let other = world.credit((&agency, "P0002"), "c-2024-06", "999.00", "2024-06").await;
        assert!(other.body.get().expect("built").contains("idempotency_key_reused"));
        // Refused: nothing or too much, a month that is not one, a hospital.
        for (amount, period, field) in [
            ("0", "2024-07", "amount"),
            ("100000.01", "2024-07", "amount"),
            ("-5", "2024-07", "amount"),
            ("100", "2024-13", "period"),
            ("100", "2024-7", "period"),
            // Enrolled in 2024 only.
            ("100", "2025-01", "period"),
        ] {
            let key = format!("bad-{amount}-{period}");
            let refused = world.credit((&agency, "P0002"), &key, amount, period).await;
            assert_eq!(refused.status, 422, "{amount} {period}");
            let body = refused.body.get().expect("built");
            assert!(body.contains("account_credit_invalid") && body.contains(field), "{body}");
        }
        let hospital = world.hospitals[0].clone();
        let forbidden = world.credit((&hospital, "P0002"), "h-1", "100", "2024-07").await;
        assert_eq!(forbidden.status, 403);
        // A resident (城乡居民) has no personal account to credit.
        let resident = world.credit((&agency, "P0001"), "r-1", "100", "2024-07").await;
        let body = resident.body.get().expect("built");
        assert!(resident.status == 422 && body.contains("职工医保"), "{body}");
        let person = world.person_view("P0002").await;
        assert_eq!(person.account_balance, "2300.50");
        assert_eq!(person.account_credits, vec![credit]);
        // A settlement spends the credited balance: the person's share, 30000.00 − 24395.00 =
        // 5605.00, is more than it, so all 2300.50 of it and 3304.50 in cash.
        let visit = world.visit(0, "P0002", "30000").await;
        let body = r#"{"use_personal_account": true}"#;
        let settled = record(&world.settle(0, &visit.visit_id, "k1", body).await);
        let paid = (settled.fund_total.as_str(), settled.personal_account.as_str());
        assert_eq!((paid, settled.cash.as_str()), (("24395.00", "2300.50"), "3304.50"));
        assert_eq!(world.person_view("P0002").await.account_balance, "0.00");
        // A credit on the emptied account, then the settlement's cancellation gives back what
        // it took: 300.50 + 2300.50.
        let second = world.credit((&agency, "P0002"), "c-2024-07", "300.50", "2024-07").await;
        assert_eq!(second.status, 201);
        let person = world.person_view("P0002").await;
        assert_eq!(person.account_balance, "300.50");
        assert_eq!(person.account_credits.len(), 2);
        let cancelled = world.cancel(0, &settled.settlement_id, "c1").await;
        assert_eq!(cancelled.status, 200, "{:?}", cancelled.body);
        let person = world.person_view("P0002").await;
        assert_eq!(person.account_balance, "2601.00");
        assert_eq!(person.account_credits[1].balance_after, "300.50");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_is_read_by_channel_and_by_national_message_id() {
    use onestop_store::audit::AuditQuery;
    for store in stores().await {
        let world = World::new(store).await;
        // Reads of P0001 over the national interface (one replayed), and one over `/v1`.
        let messages = [("M-1", false), ("M-1", true), ("M-12", false), ("X:M-1", false)];
        for (msgid, replayed) in messages {
            let (book, agency) = (Arc::clone(&world.book), world.agency.clone());
            let key = onestop_store::PersonKey::new(BEIJING, "P0001").expect("key");
            let msgid = msgid.to_owned();
            world
                .store
                .write(move |tx| {
                    let channel =
                        Channel::Nhsa { infno: "1101".into(), msgid: msgid.clone(), replayed };
                    let env = Env { channel, ..env(&book) };
                    people::person_view(tx, &env, &agency, &key, 2024)
                })
                .await
                .expect("store")
                .expect("person");
        }
        world.person_view("P0001").await;
        let auditor = institution("U110000", Role::Auditor, None);
        let query = |channel: Option<&'static str>, msgid: Option<&str>| AuditQuery {
            region: BEIJING.to_string(),
            person_id: Some("P0001".into()),
            action: Some(onestop_store::audit::AuditAction::ReadPerson),
            channel,
            msgid: msgid.map(str::to_owned),
            limit: 100,
            ..AuditQuery::default()
        };
        let read = |entries: Vec<onestop_api::service::AuditEntryDto>| -> Vec<(String, bool)> {
            entries.into_iter().map(|e| (e.msgid.unwrap_or_default(), e.replayed)).collect()
        };
        let by_message = audit_pages(&world, &auditor, query(None, Some("M-1"))).await;
        let first_and_replay = vec![("M-1".to_owned(), false), ("M-1".to_owned(), true)];
        assert_eq!(read(by_message.expect("read")), first_and_replay, "exact, replays too");
        let national = audit_pages(&world, &auditor, query(Some("nhsa"), None)).await;
        assert_eq!(read(national.expect("read")).len(), 4);
        let api = audit_pages(&world, &auditor, query(Some("v1"), None)).await.expect("read");
        assert_eq!(api.len(), 1);
        assert_eq!(api[0].channel.as_deref(), Some("v1"));
        let none = audit_pages(&world, &auditor, query(Some("local"), None)).await;
        assert_eq!(none.expect("read"), []);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_repeated_in_one_list_is_kept_once_and_reported() {
    use onestop_store::import::{csv_cells, parse_rows};
    for store in stores().await {
        let world = World::new(store).await;
        world.person("P0002", "working_age", "11010519491231002X").await;
        // Row 4 repeats row 2 under the old 15-digit form of the number; row 3 is another
        // person; row 5 is the first person again, with another end date: a statement of its own.
        let csv = "身份证号,救助类别,生效日期,截止日期\n\
                   11010519491231002X,低保,2024-01-01,\n\
                   110101197001011234,特困,2024-01-01,\n\
                   110105491231002,低保,2024/1/1,长期\n\
                   11010519491231002X,低保,2024-01-01,2024-12-31\n";
        let rows = parse_rows(&csv_cells(csv.as_bytes()).expect("cells")).expect("rows");
        let done = world.import("l.csv", rows).await.expect("imported");
        assert_eq!(done.rows, 3);
        let repeated = onestop_api::service::DuplicateRowDto { row: 4, same_as: 2 };
        assert_eq!(done.duplicates, vec![repeated]);
        let key = onestop_store::PersonKey::new(BEIJING, "P0002").expect("key");
        let entries = world.store.write(move |tx| tx.assistance(&key)).await.expect("entries");
        let rows: Vec<&str> = entries.iter().map(|e| e.entry_id.as_str()).collect();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert!(rows.iter().all(|id| !id.ends_with("-000004")), "{rows:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_15_digit_number_finds_the_person_registered_under_its_18_character_form() {
    use onestop_core::AssistanceCategory;
    use onestop_store::import::ListRow;
    for store in stores().await {
        let world = World::new(store).await;
        world.person("P0002", "working_age", "11010519491231002X").await;
        // The civil-affairs list still writes the old number.
        let rows = vec![ListRow {
            row: 2,
            same_as: None,
            id_number: "110105491231002".into(),
            category: AssistanceCategory::SubsistenceAllowance,
            effective_from: Date::constant(2024, 1, 1),
            effective_to: None,
        }];
        assert_eq!(world.import("l.csv", rows).await.expect("imported").rows, 1);
        let person = world.person_view("P0002").await;
        assert_eq!(person.assistance.as_deref(), Some("subsistence_allowance"));
        // Another person under the old form of the same number is refused.
        let request = RegisterPersonRequest {
            person_id: "P0003".into(),
            name: "李四".into(),
            id_number: "110105491231002".into(),
            birth_date: "1949-12-31".into(),
            gender: "1".into(),
            enrolments: vec![],
            ..Default::default()
        };
        let (agency, book) = (world.agency.clone(), Arc::clone(&world.book));
        let refused = world
            .store
            .write(move |tx| people::register_person(tx, &env(&book), &agency, &request))
            .await
            .expect("store")
            .expect_err("one number, two people");
        assert_eq!(refused.code(), "person_invalid", "{refused:?}");
        assert!(refused.body.message.contains("already person P0002's"), "{refused:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admission_settled_again_after_a_refund_keeps_its_number_and_deductible() {
    for store in stores().await {
        let world = World::new(store).await;
        let first = world.visit(0, "P0001", "12000").await;
        let settled_first = record(&world.settle(0, &first.visit_id, "k1", "{}").await);
        let second = world.visit(0, "P0001", "12000").await;
        let settled_second = record(&world.settle(0, &second.visit_id, "k2", "{}").await);
        assert_eq!(
            (settled_first.settlement.admission_number, settled_second.settlement.admission_number),
            (Some(1), Some(2))
        );
        // 退费重结: the first admission is cancelled and settled again, after the second.
        record(&world.cancel(0, &settled_first.settlement_id, "c1").await);
        let again = record(&world.settle(0, &first.visit_id, "k3", "{}").await);
        assert_eq!(again.settlement.admission_number, Some(1), "still the first admission");
        assert_eq!(again.settlement.deductible, settled_first.settlement.deductible);
        assert_eq!(again.settlement.tiers, settled_first.settlement.tiers);
        let ytd = world.ytd("P0001").await;
        assert_eq!(ytd.admissions.as_ref().map(Scalar::as_str), Some("2"), "two admissions");
        // Cancelling it again takes back exactly what it counted.
        record(&world.cancel(0, &again.settlement_id, "c2").await);
        let ytd = world.ytd("P0001").await;
        assert_eq!(ytd.admissions.as_ref().map(Scalar::as_str), Some("1"));
        assert_eq!(world.violations().await, Vec::<String>::new());
    }
}

/// Every page of the audit log that `actor` reads for `query`, following the cursor.
async fn audit_pages(
    world: &World,
    actor: &Institution,
    query: onestop_store::audit::AuditQuery,
) -> Result<Vec<onestop_api::service::AuditEntryDto>, ErrorBody> {
    let mut entries = Vec::new();
    let mut query = query;
    for _ in 0..100 {
        let (book, actor, this) = (Arc::clone(&world.book), actor.clone(), query.clone());
        let page = world
            .store
            .write(move |tx| onestop_store::audit::list(tx, &env(&book), &actor, &this))
            .await
            .expect("store")
            .map_err(|e| e.body)?;
        assert!(page.entries.len() <= query.limit as usize);
        entries.extend(page.entries);
        if !page.more {
            return Ok(entries);
        }
        let next = page.next.expect("a cursor to read on");
        query.after = Some(onestop_store::audit::parse_cursor(&next).expect("a cursor"));
    }
    panic!("the audit log did not end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_of_a_persons_data_is_audited_and_only_the_region_reads_the_log() {
    use onestop_store::audit::AuditQuery;
    for store in stores().await {
        let world = World::new(store).await;
        let hospital = world.hospitals[0].clone();
        let visit = world.visit(0, "P0001", "30000").await;
        let settled = record(&world.settle(0, &visit.visit_id, "k1", "{}").await);
        let (book, reader, visit_id) =
            (Arc::clone(&world.book), hospital.clone(), visit.visit_id.clone());
        let settlement_id = settled.settlement_id.clone();
        world
            .store
            .write(move |tx| {
                let env = env(&book);
                visits::get_visit(tx, &env, &reader, &visit_id)?.expect("the hospital's visit");
                ops::get_settlement(tx, &env, &reader, &settlement_id)?.expect("its settlement");
                Ok(())
            })
            .await
            .expect("store");
        // The other hospital may not read them, and its refused reads are not rows of the log.
        let (book, other, visit_id) =
            (Arc::clone(&world.book), world.hospitals[1].clone(), visit.visit_id.clone());
        let refused = world
            .store
            .write(move |tx| visits::get_visit(tx, &env(&book), &other, &visit_id))
            .await
            .expect("store");
        assert!(refused.is_err());
        world.ytd("P0001").await;
        let region = |person_id: Option<&str>| AuditQuery {
            region: BEIJING.to_string(),
            person_id: person_id.map(str::to_owned),
            limit: 2,
            ..AuditQuery::default()
        };
        let auditor = institution("U110000", Role::Auditor, None);
        let entries = audit_pages(&world, &auditor, region(Some("P0001"))).await.expect("read");
        let mut actions: Vec<(&str, &str)> = entries
            .iter()
            .filter(|e| e.action != "read_audit_log")
            .map(|e| (e.action.as_str(), e.actor.as_str()))
            .collect();
        actions.sort_unstable();
        assert_eq!(
            actions,
            [
                ("read_person", "A110000"),
                ("read_settlement", "H11000000001"),
                ("read_visit", "H11000000001"),
                ("register_person", "A110000"),
            ]
        );
        let read = entries.iter().find(|e| e.action == "read_settlement").expect("read");
        assert_eq!(
            (read.action_zh.as_str(), read.detail.as_str()),
            ("查询结算信息", &*settled.settlement_id)
        );
        assert!(entries.iter().all(|e| e.person_id == "P0001" && e.insured_region == "110000"));
        // Reading the log does not grow what it reads: the walk ends. Each page read is a row of
        // its own, which the action `read_audit_log` shows.
        assert!(entries.iter().all(|e| e.action != "read_audit_log"), "{entries:?}");
        let action = Some(onestop_store::audit::AuditAction::ReadAuditLog);
        let reads = audit_pages(&world, &auditor, AuditQuery { action, ..region(None) }).await;
        let reads = reads.expect("read");
        assert_eq!(reads.len(), 2, "one row per page read: {reads:?}");
        assert!(reads.iter().all(|e| e.actor == "U110000" && e.detail.contains("limit 2")));
        // By actor, and by days: `until` is the day after the last one read.
        let by_hospital =
            AuditQuery { actor: Some(hospital.institution_id.clone()), ..region(None) };
        let read = audit_pages(&world, &world.agency, by_hospital).await.expect("read");
        assert_eq!(read.len(), 2, "{read:?}");
        let before = AuditQuery { until: Some("2024-06-10".into()), ..region(None) };
        assert_eq!(audit_pages(&world, &auditor, before).await.expect("read"), []);
        let on_the_day = AuditQuery { from: Some("2024-06-10".into()), ..region(None) };
        let read = audit_pages(&world, &auditor, on_the_day).await.expect("read");
        assert_eq!(read.len(), 4, "{read:?}");
        // A hospital, and another region's agency, may not read the log.
        let langfang = Institution { region: LANGFANG, ..world.agency.clone() };
        for actor in [&hospital, &langfang] {
            let refused = audit_pages(&world, actor, region(None)).await.expect_err("refused");
            assert_eq!(refused.code, "forbidden");
        }
    }
}
