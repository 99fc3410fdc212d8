//! The service as a hospital's system sees it: HTTP on a random port, JSON in and out.

mod support;

use std::sync::Arc;

use onestop_server::AppState;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

struct App {
    base: String,
    client: Client,
    agency: String,
    /// Langfang's agency (131000), of another region than the hospitals'.
    other_agency: String,
    state: AppState,
}

async fn spawn_app() -> App {
    let dir = tempfile::tempdir().expect("temp dir").keep();
    let agency = ("A110000", "北京市医保中心", 110_000);
    let (store, book, token) = support::store_with_agency(&dir.join("api.sqlite"), agency).await;
    let langfang = onestop_store::Institution {
        institution_id: "A131000".into(),
        region: onestop_core::Region(131_000),
        name: "廊坊市医疗保障局".into(),
        level: None,
        role: onestop_store::Role::Agency,
    };
    let env_book = Arc::clone(&book);
    let registered = store.write(move |tx| {
        let (now, today) =
            ("2024-06-10T09:00:00+08:00".into(), onestop_core::Date::constant(2024, 6, 10));
        onestop_store::people::register(
            tx,
            &onestop_store::Env {
                book: &env_book,
                now,
                today,
                channel: onestop_store::audit::Channel::Local,
            },
            &langfang,
        )
    });
    let other_agency = registered.await.expect("registered").expect("a new id").token;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let state = AppState::new(store, book, support::clock());
    tokio::spawn(onestop_server::serve(listener, state.clone(), std::future::pending()));
    App {
        base,
        client: onestop_server::tls::client_builder(None).build().expect("client"),
        agency: token,
        other_agency,
        state,
    }
}

impl App {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("response");
        let status = response.status();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn settle(&self, token: &str, visit_id: &str, key: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}/v1/visits/{visit_id}/settle", self.base))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .send()
            .await
            .expect("response");
        let status = response.status();
        (status, response.json().await.expect("json"))
    }

    /// Registers a hospital and a person; returns the hospital's token.
    async fn setup(&self) -> String {
        let (status, credential) = self.call("POST", "/v1/institutions", Some(&self.agency),
            Some(json!({"institution_id": "H11010500001", "name": "北京某三甲医院", "level": "3"}))).await;
        assert_eq!(status, 201, "{credential}");
        let (status, person) = self
            .call(
                "POST",
                "/v1/persons",
                Some(&self.agency),
                Some(json!({
                    "person_id": "P0001", "name": "李四", "id_number": "110101196001011234",
                    "birth_date": "1960-01-01", "gender": "1", "account_balance": "3000",
                    "enrolments": [{"year": 2024, "category": "retired"}]
                })),
            )
            .await;
        assert_eq!(status, 200, "{person}");
        credential["token"].as_str().expect("token").to_owned()
    }

    /// The hospital level a pre-settlement at `hospital` is computed with.
    async fn level_settled_at(&self, hospital: &str) -> String {
        let body = json!({"person_id": "P0001", "visit": "general_outpatient"});
        let (status, visit) = self.call("POST", "/v1/visits", Some(hospital), Some(body)).await;
        assert_eq!(status, 201, "{visit}");
        let path = format!("/v1/visits/{}", visit["visit_id"].as_str().expect("id"));
        let lines = json!({"lines": [{"class": "a", "amount": "100"}]});
        let (status, body) =
            self.call("POST", &format!("{path}/lines"), Some(hospital), Some(lines)).await;
        assert_eq!(status, 200, "{body}");
        let (status, split) =
            self.call("POST", &format!("{path}/pre-settle"), Some(hospital), None).await;
        assert_eq!(status, 200, "{split}");
        split["level"].as_str().unwrap_or_default().to_owned()
    }

    async fn visit_with_lines(&self, hospital: &str) -> String {
        let (status, visit) = self
            .call(
                "POST",
                "/v1/visits",
                Some(hospital),
                Some(json!({"person_id": "P0001", "visit": "inpatient",
                "date_of_service": "2024-06-08", "disease": "C34.900"})),
            )
            .await;
        assert_eq!(status, 201, "{visit}");
        assert_eq!(visit["disease"], "C34.900", "{visit}");
        let visit_id = visit["visit_id"].as_str().expect("id").to_owned();
        let lines_path = format!("/v1/visits/{visit_id}/lines");
        let (status, visit) = self.call("POST", &lines_path, Some(hospital),
            Some(json!({"lines": [
                {"code": "A1", "name": "手术", "class": "a", "amount": "20000"},
                {"code": "B1", "name": "药品", "class": "b", "quantity": "10", "unit_price": "100",
                 "amount": "1000"},
                {"code": "C1", "name": "自费耗材", "class": "outside", "amount": "500"}
            ]}))).await;
        assert_eq!(status, 200, "{visit}");
        assert_eq!(visit["lines"][1]["class_b_first_self_pay"], "100.00", "{visit}");
        visit_id
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hospital_settles_cancels_and_reconciles() {
    let app = spawn_app().await;
    let hospital = app.setup().await;
    let visit_id = app.visit_with_lines(&hospital).await;
    let (status, preview) =
        app.call("POST", &format!("/v1/visits/{visit_id}/pre-settle"), Some(&hospital), None).await;
    assert_eq!(status, 200, "{preview}");
    // Retiree, level 3: 1 − 0.6 × 15 % = 91 %; in scope 20900; (20900 − 1300) × 91 % = 17836.
    assert_eq!(preview["tiers"][0]["amount"], "17836.00");
    // Admitted on 06-08 and still in on 06-10: two days (算入不算出), unless the bill says.
    assert_eq!(preview["days"], 2, "{preview}");
    let path = format!("/v1/visits/{visit_id}/pre-settle");
    let (status, said) = app.call("POST", &path, Some(&hospital), Some(json!({"days": 5}))).await;
    assert_eq!((status, &said["days"]), (StatusCode::OK, &json!(5)), "{said}");
    let (status, refused) =
        app.call("POST", &path, Some(&hospital), Some(json!({"days": "0"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(
        (&refused["code"], &refused["field"]),
        (&json!("days_out_of_range"), &json!("days"))
    );
    let (status, settled) = app.settle(&hospital, &visit_id, "k-1").await;
    assert_eq!(status, 200, "{settled}");
    assert_eq!(settled["settlement"], preview, "pre-settle answers what settle books, all of it");
    let (status, refused) =
        app.call("POST", &format!("/v1/visits/{visit_id}/pre-settle"), Some(&hospital), None).await;
    assert_eq!((status, &refused["code"]), (StatusCode::CONFLICT, &json!("visit_not_open")));
    assert_eq!(settled["personal_account"], "3000.00");
    // The visit's disease is the bill's (no group of Beijing's policy has it).
    let disease = (&settled["settlement"]["disease"], &settled["settlement"]["disease_group"]);
    assert_eq!(disease, (&json!("C34.900"), &Value::Null));
    assert_eq!(app.settle(&hospital, &visit_id, "k-1").await, (StatusCode::OK, settled.clone()));
    // The same request written otherwise (`{}` for nothing) replays; another choice does not.
    let keyed = |body: &'static str| {
        let url = format!("{}/v1/visits/{visit_id}/settle", app.base);
        let request = app.client.post(url).bearer_auth(&hospital).header("Idempotency-Key", "k-1");
        async move {
            let response = request.body(body).send().await.expect("response");
            (response.status(), response.json::<Value>().await.expect("json"))
        }
    };
    assert_eq!(keyed("{ }").await, (StatusCode::OK, settled.clone()));
    let (status, other) = keyed(r#"{"use_personal_account": false}"#).await;
    assert_eq!(
        (status.as_u16(), other["code"].as_str()),
        (422, Some("idempotency_key_reused_with_another_request"))
    );
    let settlement_id = settled["settlement_id"].as_str().expect("id").to_owned();
    let (_, person) = app.call("GET", "/v1/persons/110000/P0001", Some(&hospital), None).await;
    assert_eq!(person["account_balance"], "0.00");
    // An update that sends another balance is refused, not ignored; without one it updates.
    let update = |balance: Option<&str>| {
        let mut body = json!({
            "person_id": "P0001", "name": "李四", "id_number": "110101196001011234",
            "birth_date": "1960-01-01", "gender": "1",
            "enrolments": [{"year": 2024, "category": "retired"}]
        });
        if let Some(balance) = balance {
            body["account_balance"] = json!(balance);
        }
        app.call("POST", "/v1/persons", Some(&app.agency), Some(body))
    };
    let (status, refused) = update(Some("3000")).await;
    assert_eq!((status.as_u16(), refused["code"].as_str()), (400, Some("account_balance_invalid")));
    assert!(refused["message"].as_str().expect("message").contains("balance of 0.00"), "{refused}");
    assert_eq!(update(None).await.0, 200);
    assert_eq!(update(Some("0")).await.0, 200);
    let (status, reversal) = app
        .call("POST", &format!("/v1/settlements/{settlement_id}/cancel"), Some(&hospital), None)
        .await;
    assert_eq!(status, 200, "{reversal}");
    let (_, again) = app
        .call(
            "POST",
            &format!("/v1/settlements/{settlement_id}/cancel"),
            Some(&hospital),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        again, reversal,
        "cancelling twice (the second with `{{}}`) returns the same reversal"
    );
    let (_, person) = app.call("GET", "/v1/persons/110000/P0001", Some(&hospital), None).await;
    assert_eq!(person["account_balance"], "3000.00");
    let (_, fetched) =
        app.call("GET", &format!("/v1/settlements/{settlement_id}"), Some(&hospital), None).await;
    assert_eq!(fetched["status"], "cancelled");
    let (_, day) =
        app.call("GET", "/v1/reconciliation?day=2024-06-10", Some(&hospital), None).await;
    assert_eq!(
        (day["settlements"].as_u64(), day["reversals"].as_u64()),
        (Some(1), Some(1)),
        "{day}"
    );
    assert_eq!(day["fund_total"], "0.00");
    let (_, check) = app.call("GET", "/v1/invariants", Some(&app.agency), None).await;
    assert_eq!(check["violations"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicate_submissions_settle_once() {
    let app = Arc::new(spawn_app().await);
    let hospital = app.setup().await;
    let visit_id = app.visit_with_lines(&hospital).await;
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let (app, hospital, visit_id) = (Arc::clone(&app), hospital.clone(), visit_id.clone());
        tasks.push(tokio::spawn(async move { app.settle(&hospital, &visit_id, "same").await }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("join"));
    }
    assert!(answers.iter().all(|a| a == &answers[0]), "every duplicate gets the first answer");
    assert_eq!(answers[0].0, 200);
    let (_, person) =
        app.call("GET", "/v1/persons/110000/P0001?year=2024", Some(&hospital), None).await;
    assert_eq!(person["ytd"]["admissions"], "1");
    assert_eq!((&person["as_of"], &person["age"]), (&json!("2024-06-10"), &json!(64)));
    // A past year is shown as it ended.
    let (_, person) =
        app.call("GET", "/v1/persons/110000/P0001?year=2023", Some(&hospital), None).await;
    assert_eq!((&person["as_of"], &person["age"]), (&json!("2023-12-31"), &json!(63)), "{person}");
}

/// A request (method, path, token, body) and the status and error code it must get.
type ErrorCase<'a> = (&'a str, String, Option<&'a str>, Option<Value>, u16, &'a str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_is_registered_again_only_by_its_own_region_and_role() {
    let app = spawn_app().await;
    let hospital = app.setup().await;
    let person = "/v1/persons/110000/P0001";
    assert_eq!(app.call("GET", person, Some(&hospital), None).await.0, 200);

    // Another region's agency may neither take over a hospital nor an agency of Beijing.
    for (id, role) in [("H11010500001", "institution"), ("A110000", "agency")] {
        let body = json!({"institution_id": id, "name": "冒名", "level": "1"});
        let (status, error) =
            app.call("POST", "/v1/institutions", Some(&app.other_agency), Some(body)).await;
        assert_eq!(status, 409, "{error}");
        assert_eq!(error["code"], "institution_id_taken");
        assert_eq!(error["field"], "institution_id");
        let said = format!("`{id}` is already registered as {role} of region 110000");
        assert!(error["message"].as_str().is_some_and(|m| m.contains(&said)), "{error}");
    }
    // Nor may Beijing's own agency turn its agency id into a hospital's.
    let body = json!({"institution_id": "A110000", "name": "x", "level": "1"});
    let (status, error) = app.call("POST", "/v1/institutions", Some(&app.agency), Some(body)).await;
    assert_eq!((status.as_u16(), error["code"].as_str()), (409, Some("institution_id_taken")));
    // Nothing changed: the hospital's token still works, at its level.
    assert_eq!(app.level_settled_at(&hospital).await, "3");

    // Beijing's agency registers its hospital again (a lost token, a new level): the new
    // token works, and the old one stops at once.
    let body = json!({"institution_id": "H11010500001", "name": "北京某医院", "level": "2"});
    let (status, credential) =
        app.call("POST", "/v1/institutions", Some(&app.agency), Some(body)).await;
    assert_eq!(status, 201, "{credential}");
    let renewed = credential["token"].as_str().expect("token");
    assert_ne!(renewed, hospital);
    let (status, error) = app.call("GET", person, Some(&hospital), None).await;
    assert_eq!((status.as_u16(), error["code"].as_str()), (401, Some("unauthorized")));
    assert_eq!(app.level_settled_at(renewed).await, "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_json_with_stable_codes() {
    let app = spawn_app().await;
    let hospital = app.setup().await;
    let visit_id = app.visit_with_lines(&hospital).await;
    let cases: Vec<ErrorCase<'_>> = vec![
        ("GET", "/v1/persons/110000/P0001".into(), None, None, 401, "unauthorized"),
        ("GET", "/v1/persons/110000/P0001".into(), Some("wrong"), None, 401, "unauthorized"),
        ("GET", "/v1/nowhere".into(), Some(&hospital), None, 404, "route_not_found"),
        ("DELETE", "/v1/visits".into(), Some(&hospital), None, 405, "method_not_allowed"),
        (
            "POST",
            format!("/v1/visits/{visit_id}/settle"),
            Some(&hospital),
            None,
            400,
            "idempotency_key_required",
        ),
        (
            "POST",
            "/v1/institutions".into(),
            Some(&hospital),
            Some(json!({"institution_id": "X", "name": "x", "level": "1"})),
            403,
            "forbidden",
        ),
        (
            "POST",
            "/v1/visits".into(),
            Some(&hospital),
            Some(json!({"person_id": "P0001", "visit": "inpatient", "colour": 1})),
            400,
            "unknown_field",
        ),
        (
            "POST",
            "/v1/visits".into(),
            Some(&hospital),
            Some(json!({"person_id": "P9999", "visit": "inpatient"})),
            404,
            "person_not_found",
        ),
        (
            "POST",
            "/v1/visits".into(),
            Some(&hospital),
            Some(json!({"person_id": "P0001", "visit": "clinic"})),
            400,
            "visit_type_unknown",
        ),
        (
            "POST",
            "/v1/visits".into(),
            Some(&hospital),
            Some(json!({"person_id": "P0001", "visit": "chronic_outpatient", "disease": "高血压"})),
            400,
            "disease_invalid",
        ),
        (
            "POST",
            format!("/v1/visits/{visit_id}/lines"),
            Some(&hospital),
            Some(json!({"lines": [{"class": "a", "amount": "-1"}]})),
            400,
            "line_amount_must_not_be_negative",
        ),
        (
            "GET",
            "/v1/settlements/S-110000-P0001-77".into(),
            Some(&hospital),
            None,
            404,
            "settlement_not_found",
        ),
        ("GET", "/v1/settlements/nonsense".into(), Some(&hospital), None, 400, "id_invalid"),
        (
            "POST",
            "/v1/settlements/S-110000-P0001-77/cancel".into(),
            Some(&hospital),
            Some(json!({"reason": "退费"})),
            400,
            "unknown_field",
        ),
        (
            "POST",
            "/v1/visits".into(),
            Some(&hospital),
            Some(json!({"person_id": "P0001", "visit": "inpatient",
                "date_of_service": "2024-06-11"})),
            400,
            "date_of_service_invalid",
        ),
        (
            "DELETE",
            format!("/v1/visits/{visit_id}/lines/abc"),
            Some(&hospital),
            None,
            400,
            "id_invalid",
        ),
        (
            "GET",
            "/v1/persons/110000/P0001?year=abc".into(),
            Some(&hospital),
            None,
            400,
            "query_invalid",
        ),
        (
            "GET",
            "/v1/persons/110000/P0001?year=99999".into(),
            Some(&hospital),
            None,
            400,
            "query_invalid",
        ),
        (
            "GET",
            "/v1/persons/110000/P0001?year=3000".into(),
            Some(&hospital),
            None,
            400,
            "query_invalid",
        ),
        ("GET", "/v1/visits/V-110000-P0001-1".into(), Some(&app.agency), None, 200, ""),
    ];
    for (method, path, token, body, status, code) in cases {
        let (got, answer) = app.call(method, &path, token, body).await;
        assert_eq!(got.as_u16(), status, "{method} {path}: {answer}");
        if !code.is_empty() {
            assert_eq!(answer["code"], code, "{method} {path}: {answer}");
            assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()));
            if code == "query_invalid" {
                assert_eq!(answer["field"], "year", "{answer}");
            }
        }
    }
    // A person's registration names what is wrong, with the code of what it is.
    let person = |change: Value| {
        let mut body = json!({"person_id": "P0002", "name": "王五", "id_number": "110101196001011235",
            "birth_date": "1960-01-01", "gender": "2",
            "enrolments": [{"year": 2024, "category": "retired"}]});
        for (key, value) in change.as_object().expect("an object") {
            if value.is_null() {
                body.as_object_mut().expect("object").remove(key);
            } else {
                body[key] = value.clone();
            }
        }
        body
    };
    let agency = Some(app.agency.as_str());
    let year = |year: i64, category: &str| json!([{"year": year, "category": category}]);
    for (change, code, field) in [
        (
            json!({"enrolments": year(2024, "pensioner")}),
            "category_unknown",
            "enrolments[0].category",
        ),
        (json!({"enrolments": year(-1, "retired")}), "person_invalid", "enrolments[0].year"),
        (json!({"account_balance": "-5"}), "account_balance_invalid", "account_balance"),
        (json!({"birth_date": "1990-02-30"}), "person_invalid", "birth_date"),
        (json!({"birth_date": "2099-01-01"}), "person_invalid", "birth_date"),
        (json!({"gender": "robot"}), "person_invalid", "gender"),
        (json!({"id_number": "110101196001011234"}), "person_invalid", "id_number"),
        (json!({"id_number": "11010119600101X"}), "person_invalid", "id_number"),
        (json!({"name": null}), "missing_field", "name"),
    ] {
        let (status, error) = app.call("POST", "/v1/persons", agency, Some(person(change))).await;
        assert_eq!(status, 400, "{error}");
        assert_eq!((error["code"].as_str(), error["field"].as_str()), (Some(code), Some(field)));
    }
    let (status, error) = app.call("POST", "/v1/persons", agency, Some(person(json!({})))).await;
    assert_eq!(status, 200, "and a person of another identity number is taken: {error}");
    // Dates that are not of a bill carry the code of what they belong to.
    let dates = [
        ("/v1/reconciliation?day=2024-13-01", hospital.as_str(), "period_invalid", "day"),
        ("/v1/statistics?from=yesterday", app.agency.as_str(), "period_invalid", "from"),
        ("/v1/reconciliation", app.agency.as_str(), "query_invalid", "institution_id"),
        ("/v1/clearing?month=2024-06&format=xml", app.agency.as_str(), "query_invalid", "format"),
    ];
    for (path, token, code, field) in dates {
        let (status, error) = app.call("GET", path, Some(token), None).await;
        assert_eq!(status, 400, "{path}: {error}");
        assert_eq!((error["code"].as_str(), error["field"].as_str()), (Some(code), Some(field)));
    }
    let filing = json!({"person_id": "P0001", "kind": "referral", "destination": "131000",
        "start": "someday"});
    let (status, error) = app.call("POST", "/v1/filings", agency, Some(filing)).await;
    assert_eq!((status.as_u16(), error["code"].as_str()), (422, Some("filing_invalid")), "{error}");
    assert_eq!(error["field"], "start");
    for (destination, start, field) in
        [("999999", "2024-06-01", "destination"), ("131000", "1800-11-01", "start")]
    {
        let filing = json!({"person_id": "P0001", "kind": "referral", "destination": destination,
            "start": start});
        let (status, error) = app.call("POST", "/v1/filings", agency, Some(filing)).await;
        assert_eq!((status.as_u16(), error["field"].as_str()), (422, Some(field)), "{error}");
    }

    let huge = "x".repeat(onestop_server::BODY_BYTES_MAX + 1);
    let response = app
        .client
        .post(format!("{}/v1/visits", app.base))
        .bearer_auth(&hospital)
        .body(huge)
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["code"], "body_too_large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assistance_lists_import_whole_or_not_at_all() {
    let app = spawn_app().await;
    let hospital = app.setup().await;
    let post = |csv: &'static str| {
        app.client
            .post(format!("{}/v1/assistance-lists?file_name=list.csv", app.base))
            .bearer_auth(&app.agency)
            .header("content-type", "text/csv")
            .body(csv.as_bytes().to_vec())
            .send()
    };
    let bad = post(
        "身份证号,姓名,救助类别,生效日期\n110101196001011234,李四,低保对象,2024-01-01\n\
         110101196001019999,王五,低保,2024-13-01\n",
    );
    let response = bad.await.expect("response");
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        (body["code"].as_str(), body["field"].as_str()),
        (Some("assistance_list_invalid"), Some("rows[3]")),
        "{body}"
    );
    let (_, person) = app.call("GET", "/v1/persons/110000/P0001", Some(&app.agency), None).await;
    assert_eq!(person["assistance"], Value::Null, "nothing of the bad file was imported");
    // Saved by Excel on a Chinese Windows: GB18030 (GBK), not UTF-8.
    let good = "身份证号,姓名,救助类别,生效日期\n110101196001011234,李四,低保对象,2024-01-01\n";
    let (good, _, _) = encoding_rs::GB18030.encode(good);
    let good = app
        .client
        .post(format!("{}/v1/assistance-lists?file_name=民政救助名单.csv", app.base))
        .bearer_auth(&app.agency)
        .header("content-type", "text/csv; charset=gbk")
        .body(good.into_owned())
        .send();
    assert_eq!(good.await.expect("response").status(), 200);
    let visit_id = app.visit_with_lines(&hospital).await;
    let (_, settled) = app.settle(&hospital, &visit_id, "k").await;
    let assistance = settled["settlement"]["tiers"]
        .as_array()
        .expect("tiers")
        .iter()
        .find(|t| t["id"] == "medical_assistance")
        .expect("tier")
        .clone();
    assert_ne!(
        assistance["amount"], "0.00",
        "the recipient's assistance is paid at the window: {settled}"
    );
    // An exit list (退出名单) restates the row with an end date: the entitlement ends.
    let exit = post(
        "身份证号,救助类别,生效日期,截止日期\n110101196001011234,低保,2024-01-01,2024-05-31\n",
    );
    assert_eq!(exit.await.expect("response").status(), 200);
    let (_, person) = app.call("GET", "/v1/persons/110000/P0001", Some(&app.agency), None).await;
    assert_eq!(person["assistance"], Value::Null, "ended by the later list: {person}");
}

#[tokio::test]
async fn the_openapi_document_names_every_route() {
    let document = onestop_server::openapi::document();
    for (method, path) in onestop_server::ROUTES {
        assert!(document["paths"][path][method].is_object(), "{method} {path} is not documented");
    }
    let codes = document["components"]["schemas"]["Error"]["properties"]["code"]["enum"]
        .as_array()
        .expect("codes");
    for code in onestop_api::ServiceCode::ALL {
        assert!(codes.iter().any(|c| c == code.code()), "{} is not documented", code.code());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agency_files_lists_approves_and_withdraws_filings() {
    let app = spawn_app().await;
    let hospital = app.setup().await;
    let agency = Some(app.agency.as_str());
    let filing = |kind: &str, destination: &str| {
        json!({"person_id": "P0001", "kind": kind, "destination": destination,
               "start": "2024-06-01", "end": "2024-12-31", "commitment": true})
    };
    let (status, referral) =
        app.call("POST", "/v1/filings", agency, Some(filing("referral", "131000"))).await;
    assert_eq!(status, 201, "{referral}");
    assert_eq!(
        (referral["status"].as_str(), referral["kind_zh"].as_str()),
        (Some("pending"), Some("异地转诊人员")),
        "Beijing approves referrals"
    );
    let id = referral["filing_id"].as_str().expect("id").to_owned();
    let (status, refused) =
        app.call("POST", "/v1/filings", Some(&hospital), Some(filing("referral", "131000"))).await;
    assert_eq!((status.as_u16(), refused["code"].as_str()), (403, Some("forbidden")));
    for (body, field) in [
        (filing("tourist", "131000"), "kind"),
        (filing("referral", "110000"), "destination"),
        (
            json!({"person_id": "P0001", "kind": "emergency", "destination": "131000",
                "start": "2024-06-01", "end": "2024-05-01"}),
            "end",
        ),
    ] {
        let (status, error) = app.call("POST", "/v1/filings", agency, Some(body)).await;
        assert_eq!((status.as_u16(), error["code"].as_str()), (422, Some("filing_invalid")));
        assert_eq!(error["field"], field, "{error}");
    }
    let (status, approved) =
        app.call("POST", &format!("/v1/filings/{id}/approve"), agency, None).await;
    assert_eq!((status.as_u16(), approved["status"].as_str()), (200, Some("approved")));
    let (status, twice) =
        app.call("POST", &format!("/v1/filings/{id}/approve"), agency, None).await;
    assert_eq!((status.as_u16(), twice["code"].as_str()), (409, Some("filing_not_pending")));
    let (_, withdrawn) =
        app.call("POST", &format!("/v1/filings/{id}/withdraw"), agency, None).await;
    assert_eq!(withdrawn["status"], "withdrawn");
    let (status, missing) =
        app.call("POST", "/v1/filings/F-110000-P0001-999/approve", agency, None).await;
    assert_eq!((status.as_u16(), missing["code"].as_str()), (404, Some("filing_not_found")));
    let (status, list) = app.call("GET", "/v1/persons/110000/P0001/filings", agency, None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["status"], "withdrawn");
    // A Beijing hospital sees none: no filing names its region.
    let (_, seen) =
        app.call("GET", "/v1/persons/110000/P0001/filings", Some(&hospital), None).await;
    assert_eq!(seen, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hospital_reconciles_its_day_and_the_agency_clears_its_month() {
    let app = spawn_app().await;
    let hospital = app.setup().await;
    let visit_id = app.visit_with_lines(&hospital).await;
    let (_, settled) = app.settle(&hospital, &visit_id, "k-1").await;
    let record = &settled["settlement"];
    let id = settled["settlement_id"].clone();
    let mut ours = json!({
        "day": "2024-06-10", "settlements": 1, "reversals": 0,
        "medical_cost": settled["total"], "fund_total": settled["fund_total"],
        "personal_account": settled["personal_account"], "cash": settled["cash"],
        "tiers": {"basic": record["tiers"][0]["amount"]},
    });
    let (status, matched) =
        app.call("POST", "/v1/reconciliation", Some(&hospital), Some(ours.clone())).await;
    assert_eq!(status, 200, "{matched}");
    assert_eq!((matched["matched"].as_bool(), matched["totals"].clone()), (Some(true), json!([])));

    ours["cash"] = json!("0.01");
    let (_, differs) =
        app.call("POST", "/v1/reconciliation", Some(&hospital), Some(ours.clone())).await;
    assert_eq!(differs["matched"], false);
    assert_eq!(differs["list_needed"], true);
    assert_eq!(differs["totals"][0]["field"], "cash");
    ours["list"] = json!([
        {"settlement_id": id, "total": settled["total"], "fund_total": settled["fund_total"],
         "personal_account": settled["personal_account"], "cash": "0.01"},
        {"settlement_id": "S-110000-P0009-1", "total": "5", "fund_total": "0",
         "personal_account": "0", "cash": "5"},
        {"settlement_id": "S-110000-P0009-1", "total": "5", "fund_total": "0",
         "personal_account": "0", "cash": "5"},
    ]);
    let (_, listed) = app.call("POST", "/v1/reconciliation", Some(&hospital), Some(ours)).await;
    let problems: Vec<(&str, &str)> = listed["settlements"]
        .as_array()
        .expect("differences")
        .iter()
        .map(|d| (d["settlement_id"].as_str().unwrap_or(""), d["problem"].as_str().unwrap_or("")))
        .collect();
    let id = id.as_str().expect("id");
    let twice = ("S-110000-P0009-1", "listed_twice_in_yours");
    assert_eq!(problems, [twice, (id, "amounts_differ"), ("S-110000-P0009-1", "unknown_here")]);

    let agency = Some(app.agency.as_str());
    let (status, stats) =
        app.call("GET", "/v1/statistics?from=2024-06-01&to=2024-06-30", agency, None).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["lines"][0]["insured"]["fund"], settled["fund_total"], "{stats}");
    let (status, refused) =
        app.call("PUT", "/v1/prepayments/2024-06", agency, Some(json!({"balance": "-5"}))).await;
    assert_eq!((status.as_u16(), refused["field"].as_str()), (400, Some("balance")), "{refused}");
    let (status, _) = app
        .call("PUT", "/v1/prepayments/2024-06", agency, Some(json!({"balance": "1000000"})))
        .await;
    assert_eq!(status, 200);
    let (_, statement) = app.call("GET", "/v1/clearing?month=2024-06", agency, None).await;
    assert_eq!(statement["local"]["settlements"], 1, "{statement}");
    assert_eq!(statement["closing_balance"], "1000000.00", "nothing cross-region");
    let csv = app
        .client
        .get(format!("{}/v1/clearing?month=2024-06&format=csv", app.base))
        .bearer_auth(&app.agency)
        .send()
        .await
        .expect("response");
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(csv.text().await.expect("text").starts_with("\u{feff}清算月份 month,"));
    let (status, bad) = app.call("GET", "/v1/clearing?month=2024-6", agency, None).await;
    assert_eq!((status.as_u16(), bad["code"].as_str()), (400, Some("period_invalid")));
    let (status, _) = app.call("GET", "/v1/clearing?month=2024-06", Some(&hospital), None).await;
    assert_eq!(status, 403, "a hospital does not read the region's clearing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintenance_window_stops_settlement_for_the_regions_people_until_it_ends() {
    let app = spawn_app().await;
    let hospital = app.setup().await;
    let visit_id = app.visit_with_lines(&hospital).await;
    let agency = Some(app.agency.as_str());
    // The clock says 2024-06-10 10:00 at UTC+8.
    let window = json!({"starts_at": "2024-06-10T09:30:00+08:00",
        "ends_at": "2024-06-10T11:00:00+08:00", "reason": "数据库升级 database upgrade"});
    let (status, announced) =
        app.call("POST", "/v1/maintenance-windows", agency, Some(window)).await;
    assert_eq!(status, 201, "{announced}");
    let response = app
        .client
        .post(format!("{}/v1/visits/{visit_id}/settle", app.base))
        .bearer_auth(&hospital)
        .header("Idempotency-Key", "m-1")
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "3600", "an hour until 11:00");
    let refused: Value = response.json().await.expect("json");
    assert_eq!(refused["code"], "region_in_maintenance");
    assert!(refused["message"].as_str().unwrap_or("").contains("2024-06-10T11:00:00+08:00"));
    let (status, _) = app.call("GET", "/v1/persons/110000/P0001", agency, None).await;
    assert_eq!(status, 200, "the agency still works in its window");
    // Opening a visit of one of the region's people is refused too, whether or not the
    // request names the insured region.
    for body in [
        json!({"person_id": "P0001", "visit": "inpatient"}),
        json!({"person_id": "P0001", "visit": "inpatient", "insured_region": "110000"}),
    ] {
        let (status, refused) = app.call("POST", "/v1/visits", Some(&hospital), Some(body)).await;
        assert_eq!(
            (status.as_u16(), refused["code"].as_str()),
            (503, Some("region_in_maintenance"))
        );
    }

    let (status, state) = app.call("GET", "/v1/status", None, None).await;
    assert_eq!(status, 200, "public");
    let beijing = state["regions"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["region"] == "110000"))
        .expect("Beijing")
        .clone();
    assert_eq!(
        (beijing["state"].as_str(), beijing["state_zh"].as_str()),
        (Some("maintenance"), Some("维护中"))
    );
    assert_eq!(beijing["current_window"]["ends_at"], "2024-06-10T11:00:00+08:00");

    for (body, field) in [
        // Overlapping the window in force: its end would no longer be when settlement resumes.
        (
            json!({"starts_at": "2024-06-10T10:30:00+08:00", "ends_at": "2024-06-10T12:00:00+08:00",
                "reason": "x"}),
            "starts_at",
        ),
        (
            json!({"starts_at": "2024-06-10T12:00:00+08:00", "ends_at": "2024-06-10T11:00:00+08:00",
                "reason": "x"}),
            "ends_at",
        ),
        (
            json!({"starts_at": "2024-06-11T00:00:00+08:00", "ends_at": "2024-06-19T00:00:00+08:00",
                "reason": "x"}),
            "ends_at",
        ),
        (
            json!({"starts_at": "tomorrow", "ends_at": "2024-06-19T00:00:00+08:00", "reason": "x"}),
            "starts_at",
        ),
    ] {
        let (status, error) = app.call("POST", "/v1/maintenance-windows", agency, Some(body)).await;
        assert_eq!(
            (status.as_u16(), error["code"].as_str()),
            (422, Some("maintenance_window_invalid"))
        );
        assert_eq!(error["field"], field);
    }
    let id = announced["window_id"].as_str().expect("id");
    let (status, _) =
        app.call("DELETE", &format!("/v1/maintenance-windows/{id}"), Some(&hospital), None).await;
    assert_eq!(status, 403);
    let (status, _) =
        app.call("DELETE", &format!("/v1/maintenance-windows/{id}"), agency, None).await;
    assert_eq!(status, 200);
    let (status, settled) = app.settle(&hospital, &visit_id, "m-1").await;
    assert_eq!(status, 200, "{settled}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_says_the_store_failed_for_a_minute_after_it_did() {
    let app = spawn_app().await;
    let (status, health) = app.call("GET", "/v1/health", None, None).await;
    assert_eq!((status.as_u16(), health["status"].as_str()), (200, Some("ok")));
    // A full disk, as SQLite reports it.
    let full = rusqlite_disk_full();
    app.state.store.note_failure(&full);
    let (status, health) = app.call("GET", "/v1/health", None, None).await;
    assert_eq!((status.as_u16(), health["status"].as_str()), (503, Some("degraded")), "{health}");
    assert_eq!(full.kind(), "磁盘已满 the disk is full");
    assert!(health["last_store_error"].as_str().expect("error").contains("full"), "{health}");
    // Load is not a failure.
    let fresh = spawn_app().await;
    fresh.state.store.note_failure(&onestop_store::tx::StoreError::Busy);
    assert_eq!(fresh.call("GET", "/v1/health", None, None).await.0, 200);
}

fn rusqlite_disk_full() -> onestop_store::tx::StoreError {
    let code = rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL);
    onestop_store::tx::StoreError::Sqlite(rusqlite::Error::SqliteFailure(code, None))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_visits_type_and_disease_change_and_a_settled_one_stays() {
    let app = spawn_app().await;
    let hospital = app.setup().await;
    let visit_id = app.visit_with_lines(&hospital).await;
    let path = format!("/v1/visits/{visit_id}");
    let h = Some(hospital.as_str());
    let (status, visit) = app.call("PATCH", &path, h, Some(json!({"disease": "e11.900"}))).await;
    assert_eq!(
        (status.as_u16(), &visit["disease"]),
        (200, &json!("e11.900")),
        "kept as written: {visit}"
    );
    assert_eq!(visit["visit"], "inpatient", "left out, left as it was: {visit}");
    let (status, visit) = app.call("PATCH", &path, h, Some(json!({"disease": null}))).await;
    assert_eq!(status, 200, "{visit}");
    assert!(visit["disease"].is_null(), "null names none: {visit}");
    let refusals = [
        (json!({"visit": "general_outpatient"}), 409, "visit_type_change_invalid", Some("visit")),
        (json!({"visit": "ltc_institutional"}), 409, "visit_type_change_invalid", Some("visit")),
        (json!({"visit": "spa"}), 400, "visit_type_unknown", Some("visit")),
        (json!({"disease": "E11 900"}), 400, "disease_invalid", Some("disease")),
        (json!({"diagnosis": "E11"}), 400, "unknown_field", Some("diagnosis")),
    ];
    for (body, status, code, field) in refusals {
        let (got, error) = app.call("PATCH", &path, h, Some(body.clone())).await;
        assert_eq!((got.as_u16(), error["code"].as_str()), (status, Some(code)), "{body}: {error}");
        assert_eq!(error["field"].as_str(), field, "{body}: {error}");
    }
    let (_, unchanged) = app.call("GET", &path, h, None).await;
    assert!(unchanged["disease"].is_null(), "a refused change changes nothing: {unchanged}");
    // Another hospital does not change it; a settled visit is not changed.
    let (_, other) = app
        .call(
            "POST",
            "/v1/institutions",
            Some(&app.agency),
            Some(json!({"institution_id": "H11010500002", "name": "另一医院", "level": "2"})),
        )
        .await;
    let other = other["token"].as_str().expect("token").to_owned();
    let (status, _) = app.call("PATCH", &path, Some(&other), Some(json!({"disease": "I10"}))).await;
    assert_eq!(status, 403);
    let (status, settled) = app.settle(&hospital, &visit_id, "k-patch").await;
    assert_eq!(status, 200, "{settled}");
    let (status, error) = app.call("PATCH", &path, h, Some(json!({"disease": "I10"}))).await;
    assert_eq!((status.as_u16(), error["code"].as_str()), (409, Some("visit_not_open")), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_shows_who_read_a_persons_visits_and_settlements() {
    let app = spawn_app().await;
    let hospital = app.setup().await;
    let visit_id = app.visit_with_lines(&hospital).await;
    let (status, settled) = app.settle(&hospital, &visit_id, "k-audit").await;
    assert_eq!(status, 200, "{settled}");
    let settlement_id = settled["settlement_id"].as_str().expect("id");
    for path in [format!("/v1/visits/{visit_id}"), format!("/v1/settlements/{settlement_id}")] {
        let (status, body) = app.call("GET", &path, Some(&hospital), None).await;
        assert_eq!(status, 200, "{body}");
    }
    let agency = Some(app.agency.as_str());
    let (status, page) =
        app.call("GET", "/v1/audit-log?person_id=P0001&actor=H11010500001", agency, None).await;
    assert_eq!(status, 200, "{page}");
    let entries = page["entries"].as_array().expect("entries");
    let seen: Vec<(&str, &str, &str, &str)> = entries
        .iter()
        .map(|e| {
            let text = |field: &str| e[field].as_str().unwrap_or_default();
            (text("action"), text("action_zh"), text("detail"), text("channel"))
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("read_visit", "查询就诊信息", &*visit_id, "v1"),
            ("read_settlement", "查询结算信息", settlement_id, "v1")
        ],
        "{page}"
    );
    assert_eq!(page["more"], false, "one page: {page}");
    // Read on later from `next`: nothing new yet, and the cursor stays.
    let next = page["next"].as_str().expect("a cursor");
    let later = format!("/v1/audit-log?person_id=P0001&actor=H11010500001&after={next}");
    let (_, empty) = app.call("GET", &later, agency, None).await;
    assert_eq!((empty["entries"].clone(), empty["next"].as_str()), (json!([]), Some(next)));
    // The agency's read is itself in the log, under its own name.
    let path = "/v1/audit-log?actor=A110000&limit=1000";
    let (_, page) = app.call("GET", path, agency, None).await;
    let (_, reads) = app.call("GET", &format!("{path}&action=read_audit_log"), agency, None).await;
    let mut entries = page["entries"].as_array().cloned().unwrap_or_default();
    entries.extend(reads["entries"].as_array().cloned().unwrap_or_default());
    let page = json!({ "entries": entries });
    let actions: Vec<&str> = page["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"register_person") && actions.contains(&"read_audit_log"), "{page}");
    // Pages follow the cursor.
    let (_, first) = app.call("GET", "/v1/audit-log?limit=1", agency, None).await;
    let next = first["next"].as_str().expect("a next page");
    let (status, second) =
        app.call("GET", &format!("/v1/audit-log?limit=1&after={next}"), agency, None).await;
    assert_eq!(status, 200, "{second}");
    assert_ne!(first["entries"][0], second["entries"][0]);
    // Refused: a hospital, another region's agency, and queries that do not parse.
    let long_msgid = format!("/v1/audit-log?msgid={}", "M".repeat(65));
    for (token, path, status, code, field) in [
        (hospital.as_str(), "/v1/audit-log", 403, "forbidden", None),
        (app.other_agency.as_str(), "/v1/audit-log?region=110000", 403, "forbidden", None),
        (app.agency.as_str(), "/v1/audit-log?limit=0", 400, "query_invalid", Some("limit")),
        (app.agency.as_str(), "/v1/audit-log?limit=1001", 400, "query_invalid", Some("limit")),
        (app.agency.as_str(), "/v1/audit-log?person=P0001", 400, "query_invalid", None),
        (app.agency.as_str(), "/v1/audit-log?from=2024-13-01", 400, "query_invalid", Some("from")),
        (
            app.agency.as_str(),
            "/v1/audit-log?from=2024-06-02&to=2024-06-01",
            400,
            "query_invalid",
            Some("to"),
        ),
        (app.agency.as_str(), "/v1/audit-log?after=nonsense", 400, "query_invalid", Some("after")),
        (app.agency.as_str(), "/v1/audit-log?person_id=", 400, "query_invalid", Some("person_id")),
        (app.agency.as_str(), "/v1/audit-log?action=delete", 400, "query_invalid", Some("action")),
        (app.agency.as_str(), "/v1/audit-log?channel=fsi", 400, "query_invalid", Some("channel")),
        (app.agency.as_str(), "/v1/audit-log?msgid=", 400, "query_invalid", Some("msgid")),
        (app.agency.as_str(), &long_msgid, 400, "query_invalid", Some("msgid")),
        (
            app.agency.as_str(),
            "/v1/audit-log?channel=v1&msgid=M-1",
            400,
            "query_invalid",
            Some("msgid"),
        ),
    ] {
        let (got, error) = app.call("GET", path, Some(token), None).await;
        assert_eq!((got.as_u16(), error["code"].as_str()), (status, Some(code)), "{path}: {error}");
        if let Some(field) = field {
            assert_eq!(error["field"], field, "{path}: {error}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agency_credits_a_personal_account_once_per_idempotency_key() {
    let app = spawn_app().await;
    let hospital = app.setup().await;
    let path = "/v1/persons/110000/P0001/account-credits";
    let credit = |key: Option<&'static str>, token: String, body: Value| {
        let mut request =
            app.client.post(format!("{}{path}", app.base)).bearer_auth(token).json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        async move {
            let response = request.send().await.expect("response");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("json"))
        }
    };
    let july = json!({"amount": "236.50", "period": "2024-07", "note": "月度划入"});
    let (status, missing) = credit(None, app.agency.clone(), july.clone()).await;
    assert_eq!((status, missing["code"].as_str()), (400, Some("idempotency_key_required")));
    let (status, made) = credit(Some("c-07"), app.agency.clone(), july.clone()).await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(
        (made["balance_after"].as_str(), made["amount"].as_str()),
        (Some("3236.50"), Some("236.50"))
    );
    // A retry, with the keys in another order, is the same credit.
    let reordered = json!({"note": "月度划入", "period": "2024-07", "amount": "236.50"});
    let (status, again) = credit(Some("c-07"), app.agency.clone(), reordered).await;
    assert_eq!((status, &again), (201, &made));
    let (status, refused) =
        credit(Some("c-08"), app.agency.clone(), json!({"amount": "10", "period": "2024-7"})).await;
    assert_eq!((status, refused["field"].as_str()), (422, Some("period")), "{refused}");
    let long_note = json!({"amount": "10", "period": "2024-08", "note": "补".repeat(101)});
    let (status, refused) = credit(Some("c-09"), app.agency.clone(), long_note).await;
    assert_eq!((status, refused["field"].as_str()), (422, Some("note")), "{refused}");
    let (status, refused) = credit(Some("h-1"), hospital.clone(), july.clone()).await;
    assert_eq!((status, refused["code"].as_str()), (403, Some("forbidden")));
    let (status, refused) = credit(
        Some("u-1"),
        app.agency.clone(),
        json!({"amount": "1", "period": "2024-07", "by": "x"}),
    )
    .await;
    assert_eq!((status, refused["code"].as_str()), (400, Some("unknown_field")), "{refused}");
    let (status, person) =
        app.call("GET", "/v1/persons/110000/P0001?year=2024", Some(&app.agency), None).await;
    assert_eq!(status, 200, "{person}");
    assert_eq!(person["account_balance"], "3236.50");
    assert_eq!(person["account_credits"], json!([made]));
    let (_, log) =
        app.call("GET", "/v1/audit-log?action=credit_account", Some(&app.agency), None).await;
    assert_eq!(log["entries"].as_array().map(Vec::len), Some(1), "{log}");
    assert_eq!(log["entries"][0]["action_zh"], "个人账户划入");
}
