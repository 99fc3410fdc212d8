//! Golden tests: every published worked example in `policies/examples/` gives its published
//! amounts to the fen, from its own policy file and bill, through the same path as
//! `onestop calc`. Where `../shared/examples/` is present (CI, development), each case is also
//! checked against the example's own `expected` block, so the copy here cannot drift.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use onestop_api::settlement::quantity;
use onestop_api::{
    BillDto, Format, PersonDto, SettlementDto, YtdDto, read_document, settlement_json,
};
use onestop_core::Fen;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    example: String,
    cases: BTreeMap<String, Case>,
    expected: BTreeMap<String, Expectation>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Case {
    bill: Option<String>,
    person: Option<String>,
    ytd: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expectation {
    case: Option<String>,
    quantity: String,
    minus: Option<Operand>,
    amount: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Operand {
    case: String,
    quantity: String,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    read_document(&text, Format::of_path(path))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs every case of one example directory and returns each expected key's computed amount.
fn run_example(dir: &Path) -> (Expected, BTreeMap<String, Fen>) {
    let (book, _) =
        onestop_policy::load_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let case_dir = dir.join("case");
    let expected: Expected = {
        let text = std::fs::read_to_string(case_dir.join("expected.toml")).expect("expected.toml");
        toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
    };
    let mut settlements = BTreeMap::new();
    for (name, case) in &expected.cases {
        let bill: BillDto = read(&case_dir.join(case.bill.as_deref().unwrap_or("bill.toml")));
        let person: PersonDto =
            read(&case_dir.join(case.person.as_deref().unwrap_or("person.toml")));
        let ytd: YtdDto = case.ytd.as_ref().map(|f| read(&case_dir.join(f))).unwrap_or_default();
        let bill = bill.parse().expect("bill parses");
        let person = person.parse().expect("person parses");
        let ytd = ytd.parse(bill.date_of_service.year()).expect("ytd parses");
        let claim = onestop_core::Claim { bill, person };
        let (settlement, insured, treatment) =
            book.split(&claim, &ytd).unwrap_or_else(|e| panic!("{name}: {e}"));
        // The JSON the service writes straight from the settlement is the DTO's, byte for byte.
        let dto = SettlementDto::from_core(&claim, insured, treatment, &ytd, &settlement);
        let direct = settlement_json(&claim, insured, treatment, &ytd, &settlement);
        assert_eq!(direct, serde_json::to_string(&dto).expect("json"), "{name}");
        settlements.insert(name.clone(), settlement);
    }
    let only_case =
        (expected.cases.len() == 1).then(|| expected.cases.keys().next().cloned()).flatten();
    let lookup = |case: &Option<String>, name: &str| -> Fen {
        let case = case
            .clone()
            .or_else(|| only_case.clone())
            .expect("name the case when there are several");
        quantity(&settlements[&case], name).unwrap_or_else(|| panic!("unknown quantity `{name}`"))
    };
    let mut computed = BTreeMap::new();
    for (key, expectation) in &expected.expected {
        let mut value = lookup(&expectation.case, &expectation.quantity);
        if let Some(minus) = &expectation.minus {
            value -= lookup(&Some(minus.case.clone()), &minus.quantity);
        }
        computed.insert(key.clone(), value);
    }
    (expected, computed)
}

#[test]
fn every_worked_example_gives_its_published_amounts() {
    let examples = repo_root().join("policies/examples");
    let shared = repo_root().join("../shared/examples");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&examples)
        .expect("policies/examples")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 8, "every shared example has a directory");
    let mut failures = Vec::new();
    for dir in &dirs {
        let (expected, computed) = run_example(dir);
        let id = dir.file_name().expect("name").to_string_lossy().into_owned();
        assert_eq!(expected.example, id, "the directory is named after its example");
        for (key, expectation) in &expected.expected {
            let want = Fen::parse_yuan(&expectation.amount).expect("amount");
            if computed[key] != want {
                failures
                    .push(format!("{id}: {key}: computed {} but published {want}", computed[key]));
            }
        }
        let published = shared.join(format!("{id}.json"));
        if published.exists() {
            let json: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&published).expect("read"))
                    .expect("example JSON");
            let published_expected = json["expected"].as_object().expect("expected block");
            for (key, value) in published_expected {
                let want = Fen::parse_yuan(value.as_str().expect("yuan string")).expect("amount");
                match computed.get(key) {
                    Some(got) if *got == want => {}
                    Some(got) => failures.push(format!(
                        "{id}: {key}: computed {got} but the shared example says {want}"
                    )),
                    None => failures.push(format!(
                        "{id}: expected key `{key}` is not mapped in case/expected.toml"
                    )),
                }
            }
        }
    }
    assert!(failures.is_empty(), "golden mismatches:\n{}", failures.join("\n"));
}

#[test]
fn every_shared_example_has_a_directory() {
    let shared = repo_root().join("../shared/examples");
    let Ok(entries) = std::fs::read_dir(&shared) else { return };
    for entry in entries {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let id = path.file_stem().expect("stem").to_string_lossy().into_owned();
            assert!(
                repo_root().join("policies/examples").join(&id).is_dir(),
                "no policies/examples/{id}/"
            );
        }
    }
}
