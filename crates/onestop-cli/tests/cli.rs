//! The `onestop` binary as a user runs it: the README's calc example, JSON output, and bad
//! input answered with a code on stderr and exit status 2, never a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn onestop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_onestop"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const README_CALC: &[&str] = &[
    "calc",
    "--policies",
    "policies",
    "--bill",
    "examples/bill-inpatient.toml",
    "--person",
    "examples/person-needy-resident.toml",
    "--ytd",
    "examples/ytd-resident.toml",
];

#[test]
fn calc_prints_every_tier_with_its_explanation() {
    let output = onestop(README_CALC);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for expected in [
        "基本医疗保险统筹基金 basic pooled fund",
        "大病保险 critical-illness insurance",
        "医疗救助 medical assistance",
        "计算说明 Explanation",
        "年度累计",
        "tiers[0].rules[9].ratio @ cn-110000-beijing.toml",
        // A second admission of a working-age resident: the deductible is halved.
        "起付线 deductible 650.00 due on this visit",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn calc_json_adds_up_to_the_bill() {
    let mut args = README_CALC.to_vec();
    args.push("--json");
    let output = onestop(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    let fen = |v: &serde_json::Value| {
        onestop_core::Fen::parse_yuan(v.as_str().expect("amount")).expect("yuan")
    };
    let tiers: onestop_core::Fen =
        json["tiers"].as_array().expect("tiers").iter().map(|t| fen(&t["amount"])).sum();
    assert_eq!(tiers, fen(&json["fund_total"]));
    assert_eq!(
        fen(&json["fund_total"]) + fen(&json["personal_total"]),
        fen(&json["totals"]["total"])
    );
    assert_eq!(json["accumulators"]["admissions"], "2");
    let steps = json["explanation"].as_array().expect("explanation");
    assert!(
        steps
            .iter()
            .any(|s| s["step"] == "band" && !s["parameters"].as_array().expect("p").is_empty())
    );
}

#[test]
fn a_whole_claim_file_needs_no_person_flag() {
    let dir = std::env::temp_dir().join(format!("onestop-cli-claim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let claim = dir.join("claim.json");
    let text = r#"{"bill": {"date_of_service": "2024-03-01", "treatment_region": "110000",
        "visit": "general_outpatient", "level": "community",
        "lines": [{"code": "A", "class": "a", "amount": 2500}]},
        "person": {"insured_region": "110000", "category": "retired", "age": 71,
                   "account_balance": "100"}}"#;
    std::fs::write(&claim, text).expect("write");
    let output = onestop(&["calc", "--bill", claim.to_str().expect("utf-8"), "--json"]);
    std::fs::remove_dir_all(&dir).expect("clean up");
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    // Retiree, community facility: deductible 1300, then 90 % of 1200; the account pays 100.
    assert_eq!(json["tiers"][0]["amount"], "1080.00");
    assert_eq!(json["personal_account"], "100.00");
    assert_eq!(json["cash"], "1320.00");
}

#[test]
fn bad_input_exits_2_with_its_code_and_never_panics() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["calc", "--bill", "no/such/bill.toml", "--person", "examples/person-employee.toml"],
            "input_unreadable",
        ),
        (&["calc", "--bill", "examples/bill-inpatient.toml"], "missing_field"),
        (
            &[
                "calc",
                "--bill",
                "examples/person-employee.toml",
                "--person",
                "examples/person-employee.toml",
            ],
            "unknown_field",
        ),
        (
            &[
                "calc",
                "--policies",
                "crates/onestop-policy/tests/fixtures/dirs/files_gap",
                "--bill",
                "examples/bill-inpatient.toml",
                "--person",
                "examples/person-employee.toml",
            ],
            "policy_files_gap",
        ),
        (
            &[
                "calc",
                "--policies",
                "examples",
                "--bill",
                "examples/bill-inpatient.toml",
                "--person",
                "examples/person-employee.toml",
            ],
            "policy_unknown_key",
        ),
        (
            &["calc", "--bill", "README.md", "--person", "examples/person-employee.toml"],
            ".json or .toml",
        ),
        (
            &[
                "calc",
                "--bill",
                "examples/bill-inpatient.toml",
                "--person",
                "examples/bill-inpatient.toml",
            ],
            "[field person.",
        ),
    ];
    for (args, code) in cases {
        let output = onestop(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
        let message = stderr(&output);
        assert!(message.starts_with("error: ") && message.contains(code), "{args:?}: {message}");
        assert!(!message.contains("panicked"), "{message}");
    }
}

#[test]
fn the_demo_settles_a_day_and_stays_consistent() {
    let output = onestop(&[
        "demo",
        "--no-wait",
        "--people",
        "300",
        "--visits",
        "150",
        "--clients",
        "8",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for expected in [
        "settlements in force: 149",
        "failed 0",
        "基金支付比例 payout ratio",
        "ledger and accumulators: consistent",
        "The service answers at http://127.0.0.1:",
        "and stops now (--no-wait)",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn a_short_crash_test_finds_every_settlement_exactly_once() {
    let output = onestop(&["crash-test", "--rounds", "2", "--clients", "4"]);
    assert!(output.status.success(), "{}\n{}", stdout(&output), stderr(&output));
    assert!(stdout(&output).contains("crash test passed: 2 kills"), "{}", stdout(&output));
}

/// The load generator as a benchmark runs it, small: each phase reports, every settle
/// succeeds, the baseline is measured and the ledger is consistent after the run.
#[test]
fn a_short_load_reports_each_phase_and_a_consistent_ledger() {
    let output =
        onestop(&["load", "--rate", "50", "--seconds", "1", "--clients", "8", "--people", "200"]);
    let text = stdout(&output);
    assert!(output.status.success(), "{text}\n{}", stderr(&output));
    for expected in [
        "offered 50/s (open loop): 50 settles",
        "as fast as possible (closed loop)",
        "the store's raw durable single-row commits",
        "throughput ÷ raw commit rate",
        "ledger and accumulators after the run: consistent",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert_eq!(text.matches("; 0 errors").count(), 2, "both phases without an error:\n{text}");
    if cfg!(target_os = "linux") {
        assert!(text.contains("cores used: service"), "the closed loop's cores:\n{text}");
    }
}

#[test]
fn a_token_is_issued_again_only_for_the_same_region_and_role() {
    let dir = tempfile::tempdir().expect("dir");
    let database = format!("sqlite:{}", dir.path().join("tokens.sqlite").display());
    let token = |extra: &[&str]| {
        let mut args = vec!["token", "--database", &database, "--id", "A110000"];
        args.extend_from_slice(extra);
        onestop(&args)
    };
    let first = token(&["--region", "110000"]);
    assert!(first.status.success(), "{}", stderr(&first));
    // The same agency again: a new token (the old one is replaced).
    let again = token(&["--region", "110000"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_ne!(stdout(&first), stdout(&again));
    // Another role or region for the same id is refused, never silently ignored.
    let auditor = token(&["--region", "110000", "--role", "auditor"]);
    assert_eq!(auditor.status.code(), Some(2), "{}", stdout(&auditor));
    assert!(stderr(&auditor).contains("already registered as agency of region 110000"));
    assert!(stderr(&auditor).contains("institution_id_taken"), "{}", stderr(&auditor));
    // A database that is not a URL is refused, and no file is made of it.
    for database in ["tokens-bare.sqlite", "mysql://x"] {
        let args = ["token", "--database", database, "--id", "A1", "--region", "110000"];
        let output = Command::new(env!("CARGO_BIN_EXE_onestop"))
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("runs");
        assert!(!output.status.success(), "{database}");
        assert!(stderr(&output).contains("is not a database: write sqlite:PATH"), "{database}");
    }
    assert!(!dir.path().join("tokens-bare.sqlite").exists());
    let elsewhere = token(&["--region", "131000"]);
    assert!(!elsewhere.status.success());
    assert!(stderr(&elsewhere).contains("institution_id_taken"), "{}", stderr(&elsewhere));
}

#[test]
fn a_misspelt_counter_in_a_ytd_file_is_refused_not_ignored() {
    let dir = tempfile::tempdir().expect("dir");
    let good = std::fs::read_to_string(repo().join("examples/ytd-resident.toml")).expect("ytd");
    for (wrong, says) in [
        ("[tiers.basic.inpatinet]", "`inpatinet` is not a pool of tier `basic`"),
        ("[tiers.basci.inpatient]", "`basci` is not a tier of the insured region's policy"),
    ] {
        let path = dir.path().join("ytd.toml");
        std::fs::write(&path, good.replace("[tiers.basic.inpatient]", wrong)).expect("written");
        let ytd = path.to_str().expect("a path");
        let output = onestop(&[
            "calc",
            "--bill",
            "examples/bill-inpatient.toml",
            "--person",
            "examples/person-needy-resident.toml",
            "--ytd",
            ytd,
        ]);
        assert_eq!(output.status.code(), Some(2), "{wrong}: {}", stdout(&output));
        let message = stderr(&output);
        assert!(message.contains("accumulator_invalid") && message.contains(says), "{message}");
    }
}

#[test]
fn a_ytd_file_may_name_the_pool_a_pool_cap_counts_in() {
    // 门慢 at most 5000 of assistance a year, counted in `chronic`, the threshold in `all`:
    // 4000 of it paid, so a bill of 3000 at 70 % (2100) is paid 1000.
    let dir = tempfile::tempdir().expect("dir");
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).expect("dir");
    let policy = "[policy]\nregion = \"990300\"\nname = \"t\"\nvalid_from = \"2024-01-01\"\n\
        [catalog]\nclass_b_first_self_pay = \"0%\"\n\
        [[tiers]]\nid = \"ma\"\nkind = \"medical_assistance\"\n\
        [[tiers.rules]]\nwhen = { visit = \"chronic_outpatient\" }\n\
        threshold = \"2000\"\nratio = \"70%\"\ncap = \"50000\"\n\
        pool_cap = { amount = \"5000\", pool = \"chronic\" }\n";
    std::fs::write(policies.join("p.toml"), policy).expect("written");
    let files = [
        (
            "bill.toml",
            "date_of_service = \"2024-07-01\"\ntreatment_region = \"990300\"\n\
             visit = \"chronic_outpatient\"\nlevel = \"2\"\n\
             lines = [{ class = \"a\", amount = \"3000\" }]\n",
        ),
        ("person.toml", "insured_region = \"990300\"\ncategory = \"working_age\"\nage = 40\n"),
        (
            "ytd.toml",
            "year = 2024\n[tiers.ma.all]\nbase = \"8000\"\npaid = \"4000\"\n\
             [tiers.ma.chronic]\npaid = \"4000\"\n",
        ),
    ];
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("written");
    }
    let path = |name: &str| dir.path().join(name).to_str().expect("a path").to_owned();
    let (policies, bill, person, ytd) =
        (path("policies"), path("bill.toml"), path("person.toml"), path("ytd.toml"));
    let output = onestop(&[
        "calc",
        "--policies",
        &policies,
        "--bill",
        &bill,
        "--person",
        &person,
        "--ytd",
        &ytd,
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let settlement: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("json");
    assert_eq!(settlement["tiers"][0]["amount"], "1000.00", "{settlement}");
}
