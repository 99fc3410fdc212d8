//! onestop-policy: reads policy files into validated, dated `onestop-core` policies.
//!
//! A policy file is TOML (format: `docs/policy-format.md`). Every parameter may be dated; the
//! loader cuts the file's range into snapshots at every date a parameter changes, so the engine
//! only ever sees a `Policy` whose numbers are constant. The loader is strict: unknown keys,
//! bad values, gaps and overlaps (between periods of a parameter, between files of a region)
//! and overlapping rules are errors that name the file, the line and the key path.

mod diseases;
mod error;
mod read;
mod schema;
mod tree;

use std::path::Path;

use jiff::civil::Date;
use onestop_core::PolicyBook;
use onestop_core::policy::Policy;

pub use error::{PolicyError, PolicyErrorCode};
pub use schema::Header;

/// A policy file larger than this is refused before it is parsed.
pub const FILE_BYTES_MAX: u64 = 1024 * 1024;
/// A policy directory with more files than this is refused.
pub const FILES_COUNT_MAX: usize = 1_000;

/// One loaded file: its header and its snapshots, oldest first.
#[derive(Clone, Debug)]
pub struct LoadedFile {
    pub file: String,
    pub header: Header,
    pub snapshots: Vec<Policy>,
}

/// Reads one policy file's text. `file` names it in errors and explanations.
pub fn load_str(file: &str, text: &str) -> Result<LoadedFile, PolicyError> {
    let root = tree::parse(file, text)?;
    let header = schema::header(&read::Reader::new(file, Date::constant(2000, 1, 1)), &root)?;
    let range = (header.valid_from, header.valid_to);
    let mut starts = vec![header.valid_from];
    if let tree::Kind::Table(entries) = &root.kind {
        for (key, value) in entries {
            if key == "policy" {
                // Of the header, only the rounding and the needy categories may be dated.
                for dated in ["rounding", "needy_assistance"] {
                    if let Some(node) = value.get(dated) {
                        tree::change_dates(
                            node,
                            file,
                            &format!("policy.{dated}"),
                            range,
                            &mut starts,
                        )?;
                    }
                }
            } else {
                tree::change_dates(value, file, key, range, &mut starts)?;
            }
        }
    }
    starts.sort();
    starts.dedup();
    let mut snapshots = Vec::with_capacity(starts.len());
    for (index, start) in starts.iter().enumerate() {
        let end = match starts.get(index + 1) {
            Some(next) => Some(next.yesterday().expect("dates after 0001-01-01 have a yesterday")),
            None => header.valid_to,
        };
        let resolved = tree::resolve(&root, *start, file, range)?;
        let mut reader = read::Reader::new(file, header.valid_from);
        snapshots.push(schema::snapshot(&mut reader, &resolved, &header, *start, end)?);
    }
    Ok(LoadedFile { file: file.to_owned(), header, snapshots })
}

/// Reads every `*.toml` file directly in `dir` (not in subdirectories), checks that each
/// region's files neither overlap nor leave gaps, and returns the policy book.
pub fn load_dir(dir: &Path) -> Result<(PolicyBook, Vec<LoadedFile>), PolicyError> {
    let unreadable = |message: String| {
        PolicyError::new(
            PolicyErrorCode::FileUnreadable,
            &dir.display().to_string(),
            0,
            "",
            message,
        )
    };
    let entries = std::fs::read_dir(dir)
        .map_err(|e| unreadable(format!("cannot read the policy directory: {e}")))?;
    let mut paths = Vec::new();
    for entry in entries {
        let path =
            entry.map_err(|e| unreadable(format!("cannot list the policy directory: {e}")))?.path();
        if path.is_file() && path.extension().is_some_and(|ext| ext == "toml") {
            paths.push(path);
        }
    }
    if paths.len() > FILES_COUNT_MAX {
        return Err(PolicyError::new(
            PolicyErrorCode::FileTooLarge,
            &dir.display().to_string(),
            0,
            "",
            format!("{} policy files; at most {FILES_COUNT_MAX}", paths.len()),
        ));
    }
    paths.sort();
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let size = std::fs::metadata(&path)
            .map_err(|e| {
                PolicyError::new(PolicyErrorCode::FileUnreadable, &name, 0, "", e.to_string())
            })?
            .len();
        if size > FILE_BYTES_MAX {
            return Err(PolicyError::new(
                PolicyErrorCode::FileTooLarge,
                &name,
                0,
                "",
                format!("{size} bytes; a policy file has at most {FILE_BYTES_MAX}"),
            ));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| {
            PolicyError::new(PolicyErrorCode::FileUnreadable, &name, 0, "", e.to_string())
        })?;
        files.push(load_str(&name, &text)?);
    }
    let book = book(&files)?;
    Ok((book, files))
}

/// Joins files into a book, rejecting files of one region that overlap or leave a gap.
pub fn book(files: &[LoadedFile]) -> Result<PolicyBook, PolicyError> {
    let mut by_region: Vec<&LoadedFile> = files.iter().collect();
    by_region.sort_by_key(|f| (f.header.region, f.header.valid_from));
    for pair in by_region.windows(2) {
        let (earlier, later) = (pair[0], pair[1]);
        if earlier.header.region != later.header.region {
            continue;
        }
        let Some(end) = earlier.header.valid_to.filter(|end| *end < later.header.valid_from) else {
            return Err(PolicyError::new(
                PolicyErrorCode::FilesOverlap,
                &later.file,
                later.header.valid_from_line,
                "policy.valid_from",
                format!(
                    "region {} is already covered on {} by {}",
                    later.header.region, later.header.valid_from, earlier.file
                ),
            ));
        };
        if end.tomorrow().ok() != Some(later.header.valid_from) {
            return Err(PolicyError::new(
                PolicyErrorCode::FilesGap,
                &later.file,
                later.header.valid_from_line,
                "policy.valid_from",
                format!(
                    "region {} has no policy from {} to {}: {} ends {end} and this file starts {}",
                    later.header.region,
                    end.tomorrow().unwrap_or(end),
                    later.header.valid_from.yesterday().unwrap_or(later.header.valid_from),
                    earlier.file,
                    later.header.valid_from
                ),
            ));
        }
    }
    let snapshots = files.iter().flat_map(|f| f.snapshots.iter().cloned()).collect();
    Ok(PolicyBook::new(snapshots))
}
