//! The loader's contract: the bundled policies load; each rejection code has a bad-file
//! fixture that names the file, the line, the key path and the words of the message.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use onestop_policy::{PolicyErrorCode, load_dir, load_str};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Reads the `# key: value` expectation header of a fixture.
fn header(text: &str, key: &str) -> String {
    let prefix = format!("# {key}:");
    let line =
        text.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no `{prefix}`"));
    line[prefix.len()..].trim().to_owned()
}

#[test]
fn every_bad_file_fixture_fails_as_its_header_says() {
    // Each code with the first message seen for it, for the reference page.
    let mut seen: BTreeMap<&str, String> = BTreeMap::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixtures().join("bad"))
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .collect();
    paths.sort();
    for path in paths {
        let name = path.file_name().expect("name").to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).expect("read");
        let error = load_str(&name, &text).expect_err(&name);
        assert_eq!(error.code.code(), header(&text, "code"), "{name}: {error}");
        assert_eq!(error.line.to_string(), header(&text, "line"), "{name}: {error}");
        assert_eq!(error.path, header(&text, "path"), "{name}: {error}");
        assert!(error.message.contains(&header(&text, "says")), "{name}: {error}");
        assert!(error.to_string().starts_with(&format!("{name}:{}: ", error.line)), "{error}");
        seen.entry(error.code.code()).or_insert_with(|| error.to_string());
    }
    for (dir, code) in
        [("files_gap", PolicyErrorCode::FilesGap), ("files_overlap", PolicyErrorCode::FilesOverlap)]
    {
        let error = load_dir(&fixtures().join("dirs").join(dir)).expect_err(dir);
        assert_eq!(error.code, code, "{error}");
        assert!(error.message.contains("region 350100"), "{error}");
        seen.entry(error.code.code()).or_insert_with(|| error.to_string());
    }
    let error = load_dir(&fixtures().join("no-such-directory")).expect_err("missing directory");
    assert_eq!(error.code, PolicyErrorCode::FileUnreadable);
    seen.entry(error.code.code()).or_insert_with(|| error.to_string());
    let big = std::env::temp_dir().join(format!("onestop-big-policy-{}", std::process::id()));
    std::fs::create_dir_all(&big).expect("temp dir");
    std::fs::write(big.join("big.toml"), "#".repeat(2 * 1024 * 1024)).expect("write");
    let error = load_dir(&big).expect_err("too large");
    std::fs::remove_dir_all(&big).expect("clean up");
    assert_eq!(error.code, PolicyErrorCode::FileTooLarge);
    seen.entry(error.code.code()).or_insert_with(|| error.to_string());
    for code in PolicyErrorCode::ALL {
        assert!(seen.contains_key(code.code()), "no fixture exercises {code}");
    }
    check_reference(&seen);
}

/// `docs/reference/policy-errors.md` is generated from the codes and the fixtures' real
/// messages; `UPDATE_EXPECT=1 cargo test -p onestop-policy --test loader` rewrites it.
fn check_reference(examples: &BTreeMap<&str, String>) {
    let path = repo().join("docs/reference/policy-errors.md");
    let mut text = String::from(REFERENCE_HEAD);
    let root = fixtures().display().to_string();
    for code in PolicyErrorCode::ALL {
        let example = examples[code.code()].replace(&root, "crates/onestop-policy/tests/fixtures");
        let (name, description) = (code.code(), code.description());
        text.push_str(&format!("\n## `{name}`\n\n{description}\n\nExample:\n\n    {example}\n"));
    }
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, &text).expect("write the reference");
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    let hint = "run UPDATE_EXPECT=1 cargo test -p onestop-policy --test loader";
    assert!(current == text, "docs/reference/policy-errors.md is stale: {hint}");
}

const REFERENCE_HEAD: &str = "# Policy file errors (政策文件错误)

The loader refuses a policy directory at the first error it finds and says where:
`<file>:<line>: <code>: <key path>: <message>`. Nothing of a refused directory is used.
The examples are the real messages of the bad-file fixtures in
`crates/onestop-policy/tests/fixtures/`, from which this page is generated. The format itself
is in `docs/policy-format.md`.
";

#[test]
fn bundled_policies_load() {
    let (book, files) = load_dir(&repo().join("policies")).expect("bundled policies load");
    assert!(!files.is_empty());
    assert!(book.regions().count() >= 1);
    for entry in std::fs::read_dir(repo().join("policies/examples")).expect("examples") {
        let dir = entry.expect("entry").path();
        load_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    }
}

#[test]
fn dated_parameters_cut_the_file_into_snapshots_with_their_effective_dates() {
    let dir = repo().join("policies/examples/cn-fuzhou-2022-employee-second-admission-l3a");
    let (_, files) = load_dir(&dir).expect("loads");
    let snapshots = &files[0].snapshots;
    assert_eq!(snapshots.len(), 2, "one snapshot before 2022-07-01, one from it");
    assert_eq!(snapshots[0].valid_to.map(|d| d.to_string()).as_deref(), Some("2022-06-30"));
    assert_eq!(snapshots[1].valid_from.to_string(), "2022-07-01");
    let ratio = |index: usize| {
        let band = snapshots[index].tiers[0].rules[0].bands[0];
        let source = snapshots[index].source(band.ratio.source);
        (band.ratio.value.to_string(), source.path.clone(), source.effective_from.to_string())
    };
    assert_eq!(ratio(0), ("85%".into(), "tiers[0].rules[0].ratio".into(), "2022-01-01".into()));
    assert_eq!(ratio(1), ("87%".into(), "tiers[0].rules[0].ratio".into(), "2022-07-01".into()));
}

#[test]
fn floats_are_read_as_the_decimals_written() {
    let text = "[policy]\nregion = 110000\nname = \"t\"\nvalid_from = 2024-01-01\n\
        [[tiers]]\nid = \"basic\"\nkind = \"basic_pool\"\n\
        [[tiers.rules]]\nwhen = { visit = \"inpatient\" }\n\
        deductible = { amount = 1300.5, per = \"year\" }\nratio = 0.991\n";
    let file = load_str("floats.toml", text).expect("loads");
    let rule = &file.snapshots[0].tiers[0].rules[0];
    assert_eq!(rule.bands[0].ratio.value.millionths(), 991_000);
    assert_eq!(rule.deductible.as_ref().expect("deductible").amount.nominal().0, 130_050);
}

#[test]
fn a_dated_rounding_cuts_the_file_too() {
    let text = "[policy]\nregion = \"350100\"\nname = \"t\"\nvalid_from = \"2022-01-01\"\n\
        rounding = [{ from = \"2022-01-01\", to = \"2022-06-30\", value = \"half_up\" }, \
        { from = \"2022-07-01\", value = \"down\" }]\n";
    let file = load_str("rounding.toml", text).expect("loads");
    let roundings: Vec<_> = file.snapshots.iter().map(|s| s.rounding.value.name()).collect();
    assert_eq!(roundings, ["half_up", "down"]);
    assert_eq!(
        file.snapshots[1].source(file.snapshots[1].rounding.source).effective_from.to_string(),
        "2022-07-01"
    );
}
