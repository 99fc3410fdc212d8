//! xtask: project automation written in Rust rather than shell.
//!
//! `cargo xtask test` runs the whole suite as CI does, the store tests on a throw-away
//! PostgreSQL too. `cargo xtask tidy` checks the code rules that a machine can check (style.md
//! rule 11 and friends); the same check runs as a test inside `cargo test`, so it never erodes.

mod pg_server;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Longest line, in characters.
const LINE_CHARS_MAX: usize = 100;
/// Longest function body, in lines.
const FUNCTION_LINES_MAX: usize = 70;

// The banned patterns are glued together from pieces so that this file, which the check also
// reads, never spells them out whole and so never flags itself.
/// Attribute that hides a test from the run.
const IGNORE: &str = concat!("#[", "ignore");
/// Attribute that lets a test pass by panicking.
const SHOULD_PANIC: &str = concat!("#[", "should_panic");
/// Call that turns a missing value into a crash.
const UNWRAP: &str = concat!(".unwrap", "()");

fn main() -> ExitCode {
    let task = std::env::args().nth(1).unwrap_or_default();
    match task.as_str() {
        "tidy" => {
            let problems = tidy(&repo_root());
            for problem in &problems {
                eprintln!("{problem}");
            }
            if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        "test" => test(&repo_root(), std::env::args().skip(2)),
        "bench-service" => bench_service(&repo_root(), std::env::args().skip(2)),
        _ => {
            eprintln!("usage: cargo xtask <task>");
            eprintln!("  test   run the whole suite, as CI does [cargo test arguments]");
            eprintln!("  tidy   check the code rules");
            eprintln!("  bench-service  load-test settle on SQLite and on a durable PostgreSQL");
            ExitCode::from(2)
        }
    }
}

/// Load-tests settle on the embedded SQLite store and on a throw-away PostgreSQL running with
/// full durability (fsync on), with the same load generator (`onestop load`). Further arguments
/// go to `onestop load` (`cargo xtask bench-service --rate 1000 --seconds 10`).
fn bench_service(root: &Path, extra: impl Iterator<Item = String>) -> ExitCode {
    let extra: Vec<String> = extra.collect();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let load = |database: Option<String>| {
        let mut command = Command::new(&cargo);
        command.args(["run", "--release", "--quiet", "-p", "onestop-cli", "--", "load"]);
        command.args(&extra).current_dir(root);
        if let Some(database) = database {
            command.args(["--database", &database]);
        }
        command.status().is_ok_and(|s| s.success())
    };
    if !load(None) {
        return ExitCode::FAILURE;
    }
    match pg_server::Server::start_with(true) {
        Ok(server) => {
            if !load(Some(server.url())) {
                return ExitCode::FAILURE;
            }
        }
        Err(error) => eprintln!("PostgreSQL could not start, so only SQLite was measured: {error}"),
    }
    ExitCode::SUCCESS
}

/// Runs the whole suite as CI does: every crate's tests, including the tidy test, with the
/// store contract on SQLite and on a throw-away PostgreSQL (see `pg_server`). Further
/// arguments go to `cargo test` (`cargo xtask test --no-fail-fast`).
fn test(root: &Path, extra: impl Iterator<Item = String>) -> ExitCode {
    let server = match postgres_for_tests() {
        Ok(server) => server,
        Err(code) => return code,
    };
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.args(["test", "--workspace", "--locked"]).args(extra).current_dir(root);
    if let Some(server) = &server {
        let (client_cert, client_key) = server.client_identity();
        command.env(pg_server::URL_ENV, server.url()).env(pg_server::CA_ENV, server.ca());
        command.env(pg_server::CLIENT_CERT_ENV, client_cert);
        command.env(pg_server::CLIENT_KEY_ENV, client_key);
    }
    let status = command.status();
    // Stops the server whatever the tests did.
    drop(server);
    match status {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("cannot run cargo: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The server the tests use: none when `ONESTOP_TEST_POSTGRES` already names one, else a
/// throw-away one. Without PostgreSQL the tests run on SQLite alone, except under CI.
fn postgres_for_tests() -> Result<Option<pg_server::Server>, ExitCode> {
    if let Some(url) = std::env::var_os(pg_server::URL_ENV).filter(|url| !url.is_empty()) {
        eprintln!("store tests use the PostgreSQL of {}={}", pg_server::URL_ENV, url.display());
        return Ok(None);
    }
    match pg_server::Server::start() {
        Ok(server) => {
            eprintln!("started a throw-away PostgreSQL for the store tests at {}", server.url());
            Ok(Some(server))
        }
        Err(error) if std::env::var_os("CI").is_some() => {
            eprintln!("error: cannot start PostgreSQL, which CI requires: {error}");
            Err(ExitCode::FAILURE)
        }
        Err(error) => {
            let rule = "!".repeat(78);
            eprintln!("{rule}\nWARNING: cannot start PostgreSQL: {error}");
            eprintln!("WARNING: the store tests run on SQLite ONLY; PostgreSQL is NOT tested.");
            eprintln!("WARNING: (under CI, with CI set, this is an error)\n{rule}");
            Ok(None)
        }
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every file below `dir` whose name ends with one of `extensions`, skipping build output.
fn files(dir: &Path, extensions: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with('.') || name == "target" || name == "node_modules" {
            continue;
        }
        if path.is_dir() {
            files(&path, extensions, out);
        } else if extensions.iter().any(|ext| name.ends_with(ext)) {
            out.push(path);
        }
    }
}

/// All problems found, one line each (`path:line: what`).
fn tidy(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let mut sources = Vec::new();
    files(&root.join("crates"), &[".rs"], &mut sources);
    files(&root.join("xtask"), &[".rs"], &mut sources);
    for path in &sources {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let shown = path.strip_prefix(root).unwrap_or(path).display().to_string();
        check_source(&shown, &text, &mut problems);
    }
    let mut documents = Vec::new();
    files(root, &[".md", ".toml", ".rs", ".json", ".sh", ".html", ".js", ".css"], &mut documents);
    files(&root.join(".ci"), &["run"], &mut documents);
    for path in &documents {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let shown = path.strip_prefix(root).unwrap_or(path).display().to_string();
        check_document(&shown, &text, &mut problems);
    }
    problems
}

fn check_source(path: &str, text: &str, problems: &mut Vec<String>) {
    let in_src = path.contains("/src/");
    let in_core = path.starts_with("crates/onestop-core/src");
    if in_src && !text.starts_with("//!") {
        problems.push(format!("{path}:1: a module opens with `//!` saying what it is for"));
    }
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let chars = line.chars().count();
        if chars > LINE_CHARS_MAX {
            problems.push(format!("{path}:{number}: {chars} characters; at most {LINE_CHARS_MAX}"));
        }
        let code = line.split("//").next().unwrap_or_default();
        if code.contains(IGNORE) || code.contains(SHOULD_PANIC) {
            problems.push(format!("{path}:{number}: {IGNORE}] and {SHOULD_PANIC}] are banned"));
        }
        if in_core && (has_word(code, "f32") || has_word(code, "f64")) {
            problems.push(format!("{path}:{number}: no floating point in the core: money is fen"));
        }
        if in_src && !path.contains("/tests") && code.contains(UNWRAP) {
            problems.push(format!("{path}:{number}: no {UNWRAP} outside tests: handle or expect"));
        }
    }
    check_function_lengths(path, text, problems);
}

fn has_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        let boundary = |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        boundary(before) && boundary(after)
    })
}

/// Functions are found by their `fn` line and end at the first line that closes them at the
/// same indentation.
fn check_function_lengths(path: &str, text: &str, problems: &mut Vec<String>) {
    let lines: Vec<&str> = text.lines().collect();
    let mut in_tests = false;
    for (index, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("mod tests") || trimmed.starts_with("#[cfg(test)]") {
            in_tests = true;
        }
        let is_fn = ["fn ", "pub fn ", "pub(crate) fn ", "const fn ", "pub const fn "]
            .iter()
            .any(|prefix| trimmed.starts_with(prefix));
        if !is_fn || in_tests || is_declaration(&lines[index..]) {
            continue;
        }
        let indent = line.len() - trimmed.len();
        let closing = format!("{}}}", " ".repeat(indent));
        let end = lines[index..]
            .iter()
            .position(|l| *l == closing || l.starts_with(&format!("{closing} ")));
        if let Some(length) = end
            && length + 1 > FUNCTION_LINES_MAX
        {
            let name = trimmed.split('(').next().unwrap_or(trimmed);
            problems.push(format!(
                "{path}:{}: `{name}` is {} lines; at most {FUNCTION_LINES_MAX}",
                index + 1,
                length + 1
            ));
        }
    }
}

/// A function without a body (a trait's required method), even when its signature spans
/// lines: the signature ends with `;` before any `{`.
fn is_declaration(from: &[&str]) -> bool {
    for line in from {
        let line = line.trim_end();
        if line.ends_with(';') {
            return true;
        }
        if line.ends_with('{') || line.contains("{ ") {
            return false;
        }
    }
    false
}

/// Docs and data must not leak a machine's paths or a package registry's host.
fn check_document(path: &str, text: &str, problems: &mut Vec<String>) {
    if path == "Cargo.lock" || path.starts_with("xtask/") {
        return;
    }
    let machine_paths = ["/work/", "/tmp/", "/root/", "/home/"];
    let registries = ["crates.io", "static.crates", "pypi.org", "registry.npmjs", "deb.debian.org"];
    for (index, line) in text.lines().enumerate() {
        for needle in machine_paths.iter().chain(&registries) {
            if line.contains(needle) {
                problems.push(format!("{path}:{}: mentions `{needle}`", index + 1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tidy() {
        let problems = super::tidy(&super::repo_root());
        assert!(
            problems.is_empty(),
            "tidy found {} problems:\n{}",
            problems.len(),
            problems.join("\n")
        );
    }

    /// The needles are assembled at compile time; this guards that they still catch the real
    /// patterns in any other file.
    #[test]
    fn banned_patterns_are_caught() {
        use super::{IGNORE, SHOULD_PANIC, UNWRAP};
        let text = format!("//! x\n{IGNORE}]\n{SHOULD_PANIC}]\nfn f() {{ g(){UNWRAP}; }}\n");
        let mut problems = Vec::new();
        super::check_source("crates/x/src/lib.rs", &text, &mut problems);
        // The expected messages are built from the same pieces so this test does not trip itself.
        let banned = format!("{IGNORE}] and {SHOULD_PANIC}] are banned");
        let expected = [
            format!("crates/x/src/lib.rs:2: {banned}"),
            format!("crates/x/src/lib.rs:3: {banned}"),
            format!("crates/x/src/lib.rs:4: no {UNWRAP} outside tests: handle or expect"),
        ];
        assert_eq!(problems, expected);
        assert_eq!(banned, ["#", "[ignore] and #", "[should_panic] are banned"].concat());
    }
}
