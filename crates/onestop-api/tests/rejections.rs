//! One case per rejection code, in the order the codes are defined (and checked): each starts
//! from a valid claim, breaks one thing, and must be rejected with that code and field.

use std::path::Path;

use onestop_api::{ClaimDto, Format, read_document};
use onestop_core::{PolicyBook, Rejection, RejectionCode};
use serde_json::{Value, json};

/// The bundled policies, and region 990700 whose long-term care pays at most 120 a day.
fn book() -> PolicyBook {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let (_, files) = onestop_policy::load_dir(&dir).expect("bundled policies");
    let mut snapshots: Vec<_> = files.into_iter().flat_map(|file| file.snapshots).collect();
    let per_day = "[policy]\nregion = \"990700\"\nname = \"t\"\nvalid_from = \"2024-01-01\"\n\
        [catalog]\nclass_b_first_self_pay = \"0%\"\n\
        [[tiers]]\nid = \"ltc\"\nkind = \"long_term_care\"\n\
        [[tiers.rules]]\nwhen = { visit = \"ltc_institutional\" }\n\
        deductible = { amount = \"0\" }\nratio = \"70%\"\ncap_per_day = \"120\"\n";
    snapshots.extend(onestop_policy::load_str("per-day.toml", per_day).expect("valid").snapshots);
    PolicyBook::new(snapshots)
}

fn valid_claim() -> Value {
    json!({
        "bill": {
            "date_of_service": "2024-06-10",
            "treatment_region": "110000",
            "visit": "inpatient",
            "level": "3",
            "admission_number": 1,
            "lines": [
                { "code": "A1", "name": "手术", "class": "a", "amount": "18000.00" },
                {
                    "code": "B1", "name": "药品", "class": "b",
                    "quantity": "2", "unit_price": "10.50", "amount": "21.00"
                }
            ]
        },
        "person": { "insured_region": "110000", "category": "in_service", "age": 45 },
        "ytd": { "year": 2024 }
    })
}

/// Applies `change` to a valid claim and returns the rejection, if any.
fn outcome(book: &PolicyBook, text: &str) -> Result<(), Rejection> {
    let dto: ClaimDto = read_document(text, Format::Json)?;
    let (claim, ytd) = dto.parse()?;
    book.split(&claim, &ytd).map(|_| ())
}

/// Sets the value at a JSON pointer, adding the last key if the object lacks it.
fn set(mut claim: Value, pointer: &str, value: Value) -> String {
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
    let parent = claim.pointer_mut(parent).unwrap_or_else(|| panic!("no {parent}"));
    match parent {
        Value::Object(map) => {
            map.insert(key.to_owned(), value);
        }
        Value::Array(items) => items[key.parse::<usize>().expect("index")] = value,
        _ => panic!("{pointer} is not inside an object or array"),
    }
    claim.to_string()
}

fn remove(mut claim: Value, parent: &str, key: &str) -> String {
    claim.pointer_mut(parent).and_then(Value::as_object_mut).expect("object").remove(key);
    claim.to_string()
}

fn many_lines(count: usize, amount: &str) -> Value {
    Value::Array(
        (0..count)
            .map(|i| json!({ "code": format!("L{i}"), "class": "a", "amount": amount }))
            .collect(),
    )
}

/// One case per code, in definition order: the code, the claim, the field at fault.
fn cases() -> Vec<(RejectionCode, String, Option<&'static str>)> {
    let mut cases = bill_cases();
    cases.extend(line_cases());
    cases.extend(other_cases());
    cases
}

/// The cases of the document and the bill's header.
fn bill_cases() -> Vec<(RejectionCode, String, Option<&'static str>)> {
    use RejectionCode as C;
    let base = valid_claim;
    vec![
        (C::MalformedInput, base().to_string()[..40].to_owned(), Some("bill")),
        (
            C::UnknownField,
            set(base(), "/bill/lines/0", json!({"class": "a", "amout": "1"})),
            Some("bill.lines[0].amout"),
        ),
        (C::MissingField, remove(base(), "/bill", "date_of_service"), Some("bill.date_of_service")),
        (
            C::TextTooLong,
            set(base(), "/bill/lines/0/name", json!("药".repeat(201))),
            Some("bill.lines[0].name"),
        ),
        (
            C::DateOfServiceInvalid,
            set(base(), "/bill/date_of_service", json!("2023-02-29")),
            Some("bill.date_of_service"),
        ),
        (
            C::RegionCodeInvalid,
            set(base(), "/bill/treatment_region", json!("11000")),
            Some("bill.treatment_region"),
        ),
        (C::VisitTypeUnknown, set(base(), "/bill/visit", json!("outpatient")), Some("bill.visit")),
        (C::HospitalLevelUnknown, set(base(), "/bill/level", json!(4)), Some("bill.level")),
        (
            C::AdmissionNumberOutOfRange,
            set(base(), "/bill/admission_number", json!(0)),
            Some("bill.admission_number"),
        ),
        (C::FilingKindUnknown, set(base(), "/bill/filing", json!("tourist")), Some("bill.filing")),
        (C::DiseaseInvalid, set(base(), "/bill/disease", json!("高血压")), Some("bill.disease")),
        (C::DaysOutOfRange, set(base(), "/bill/days", json!(0)), Some("bill.days")),
    ]
}

/// The cases of the bill's lines.
fn line_cases() -> Vec<(RejectionCode, String, Option<&'static str>)> {
    use RejectionCode as C;
    let base = valid_claim;
    vec![
        (C::BillMustHaveLines, set(base(), "/bill/lines", json!([])), Some("bill.lines")),
        (
            C::LinesCountExceedsMax,
            set(base(), "/bill/lines", many_lines(5001, "1")),
            Some("bill.lines"),
        ),
        (
            C::LineClassUnknown,
            set(base(), "/bill/lines/0/class", json!("c")),
            Some("bill.lines[0].class"),
        ),
        (
            C::LineAmountInvalid,
            set(base(), "/bill/lines/0/amount", json!("12.345")),
            Some("bill.lines[0].amount"),
        ),
        (
            C::LineAmountMustNotBeNegative,
            set(base(), "/bill/lines/0/amount", json!(-1)),
            Some("bill.lines[0].amount"),
        ),
        (
            C::LineAmountExceedsMax,
            set(base(), "/bill/lines/0/amount", json!("10000000.01")),
            Some("bill.lines[0].amount"),
        ),
        (
            C::LineQuantityInvalid,
            set(base(), "/bill/lines/1/quantity", json!("0")),
            Some("bill.lines[1].quantity"),
        ),
        (
            C::LineUnitPriceInvalid,
            set(base(), "/bill/lines/1/unit_price", json!("ten")),
            Some("bill.lines[1].unit_price"),
        ),
        (
            C::LineAmountMustEqualQuantityTimesUnitPrice,
            set(base(), "/bill/lines/1/amount", json!("21.01")),
            Some("bill.lines[1].amount"),
        ),
        (
            C::BillAmountExceedsMax,
            set(base(), "/bill/lines", many_lines(11, "10000000")),
            Some("bill.lines"),
        ),
    ]
}

/// The cases of the person, the accumulators and the policy lookup.
fn other_cases() -> Vec<(RejectionCode, String, Option<&'static str>)> {
    use RejectionCode as C;
    let base = valid_claim;
    vec![
        (
            C::CategoryUnknown,
            set(base(), "/person/category", json!("pensioner")),
            Some("person.category"),
        ),
        (C::AgeOutOfRange, set(base(), "/person/age", json!(151)), Some("person.age")),
        (
            C::AssistanceCategoryUnknown,
            set(base(), "/person/assistance", json!("poor")),
            Some("person.assistance"),
        ),
        (
            C::AccountBalanceInvalid,
            set(base(), "/person/account_balance", json!("-5")),
            Some("person.account_balance"),
        ),
        (
            C::AccumulatorInvalid,
            set(base(), "/ytd/tiers", json!({"basic": {"inpatient": {"paidd": "1"}}})),
            Some("ytd.tiers.basic.inpatient.paidd"),
        ),
        (
            C::AccumulatorsYearMustMatchDateOfService,
            set(base(), "/ytd/year", json!(2023)),
            Some("ytd.year"),
        ),
        (C::InsuredRegionHasNoPolicy, set(base(), "/person/insured_region", json!("310000")), None),
        (
            C::NoPolicyInForceOnDateOfService,
            set(set_date(base(), "2022-06-01"), "/ytd/year", json!(2022)),
            None,
        ),
        // Beijing refuses unfiled care elsewhere; Langfang (131000) has a catalog.
        (
            C::CrossRegionFilingRequired,
            set(base(), "/bill/treatment_region", json!("131000")),
            None,
        ),
        (
            C::TreatmentRegionHasNoCatalogInForce,
            set(base(), "/bill/treatment_region", json!("310000")),
            Some("bill.treatment_region"),
        ),
        (C::DaysRequired, long_term_care_in_990700(), Some("bill.days")),
    ]
}

/// A month of long-term care in region 990700, whose rule pays at most so much a day, sent
/// without its days.
fn long_term_care_in_990700() -> String {
    let claim = set(valid_claim(), "/bill/treatment_region", json!("990700"));
    let claim =
        set(serde_json::from_str(&claim).expect("json"), "/bill/visit", json!("ltc_institutional"));
    set(serde_json::from_str(&claim).expect("json"), "/person/insured_region", json!("990700"))
}

#[test]
fn each_rejection_code_in_definition_order() {
    let book = book();
    let base = valid_claim;
    let cases = cases();
    assert!(outcome(&book, &base().to_string()).is_ok(), "the base claim is valid");
    let mut tested: Vec<RejectionCode> = Vec::new();
    let mut examples = Vec::new();
    for (code, text, field) in &cases {
        let rejection = outcome(&book, text).expect_err(code.code());
        assert_eq!(rejection.code, *code, "{rejection}");
        assert_eq!(rejection.field.as_deref(), *field, "{rejection}");
        assert!(!rejection.message.is_empty());
        tested.push(*code);
        examples.push(rejection);
    }
    check_reference(&examples);
    // `input_unreadable` concerns files named on the command line: the CLI tests cover it.
    let expected =
        RejectionCode::ALL.iter().copied().filter(|c| *c != RejectionCode::InputUnreadable);
    let expected: Vec<RejectionCode> = expected.collect();
    assert_eq!(tested, expected, "one case per code, in definition order");
    // Input the bill gets wrong is 400; what the policies need and the bill lacks, 422.
    let status = onestop_api::error::rejection_status;
    let days = (status(RejectionCode::DaysOutOfRange), status(RejectionCode::DaysRequired));
    assert_eq!(days, (400, 422));
}

fn set_date(claim: Value, date: &str) -> Value {
    serde_json::from_str(&set(claim, "/bill/date_of_service", json!(date))).expect("json")
}

/// `docs/reference/rejections.md` is generated from the codes and these cases' real messages;
/// `UPDATE_EXPECT=1 cargo test -p onestop-api --test rejections` rewrites it.
fn check_reference(examples: &[Rejection]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/reference/rejections.md");
    let mut text = String::from(REFERENCE_HEAD);
    for code in RejectionCode::ALL {
        let name = code.code();
        assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{name}");
        assert_eq!(RejectionCode::parse(name), Some(*code));
        text.push_str(&format!("\n## `{name}`\n\n{} — {}\n", code.zh(), code.description()));
        match examples.iter().find(|r| r.code == *code) {
            Some(example) => {
                let field =
                    example.field.as_deref().map(|f| format!(" (field `{f}`)")).unwrap_or_default();
                text.push_str(&format!(
                    "\nExample{field}: {}\n",
                    example.message.replace('\n', " ")
                ));
            }
            None => text
                .push_str("\nRaised by `onestop calc` when a file it is given cannot be read.\n"),
        }
    }
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, &text).expect("write docs/reference/rejections.md");
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == text,
        "docs/reference/rejections.md is stale: \
         run UPDATE_EXPECT=1 cargo test -p onestop-api --test rejections"
    );
}

const REFERENCE_HEAD: &str = "# Rejection codes (拒绝代码)

A claim (bill, person, year-to-date accumulators) is rejected with one stable code, a message
that says what was found, and the field at fault where there is one. Codes are checked in the
order below; the first that applies is returned and nothing is settled. Messages may be
reworded; codes never change meaning.

`onestop calc` prints `error: <code> (<中文>): <message> [field <field>]` on stderr and exits
with status 2. The examples below are the real messages of the test suite
(`crates/onestop-api/tests/rejections.rs`), from which this page is generated.
";
