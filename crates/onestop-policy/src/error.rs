//! Loader errors: a stable code, the file, the line and the key path, and what was wrong.

use std::fmt;

macro_rules! policy_error_codes {
    ($($variant:ident = $code:literal, $doc:literal;)+) => {
        /// Why a policy file or directory was rejected.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        pub enum PolicyErrorCode { $(#[doc = $doc] $variant),+ }

        impl PolicyErrorCode {
            pub const ALL: &'static [PolicyErrorCode] = &[$(PolicyErrorCode::$variant),+];

            pub fn code(self) -> &'static str {
                match self { $(PolicyErrorCode::$variant => $code),+ }
            }

            pub fn description(self) -> &'static str {
                match self { $(PolicyErrorCode::$variant => $doc),+ }
            }
        }
    };
}

policy_error_codes! {
    FileUnreadable = "policy_file_unreadable",
        "The policy directory and its files must be readable.";
    FileTooLarge = "policy_file_too_large",
        "A policy file must not exceed 1 MiB; a directory must not hold more than 1,000 files.";
    Syntax = "policy_syntax",
        "A policy file must be valid TOML.";
    UnknownKey = "policy_unknown_key",
        "Every key must be one the format defines: a misspelt key is an error, never ignored.";
    MissingKey = "policy_missing_key",
        "Every required key must be present.";
    WrongType = "policy_wrong_type",
        "Every value must have the type its key takes (string, number, table, array).";
    ValueInvalid = "policy_value_invalid",
        "Every value must be valid for its key: a real date, an amount with at most two decimals, \
         a ratio within bounds, a known name.";
    DatedGap = "policy_dated_gap",
        "A dated parameter's periods must follow each other without a gap and cover the file's \
         whole range.";
    DatedOverlap = "policy_dated_overlap",
        "A dated parameter's periods must not overlap.";
    FilesGap = "policy_files_gap",
        "A region's policy files must follow each other without a gap between their ranges.";
    FilesOverlap = "policy_files_overlap",
        "A region's policy files must not cover the same day twice.";
    RulesOverlap = "policy_rules_overlap",
        "Within a tier, no two rules may match the same person and visit.";
    BandsInvalid = "policy_bands_invalid",
        "Bands must ascend strictly, each starting where the previous one ends; only the last is \
         open.";
    TiersInvalid = "policy_tiers_invalid",
        "Tier ids must be unique; coinsurance tiers come before layers; a layer's base may only \
         name earlier layers.";
    LimitExceeded = "policy_limit_exceeded",
        "A policy has at most 16 tiers, 64 rules per tier, 16 bands and 16 adjustments per rule, \
         100 deductibles by admission and 100,000 catalog items.";
}

impl fmt::Display for PolicyErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A rejected policy file.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("{file}:{line}: {code}: {path_shown}{message}")]
pub struct PolicyError {
    pub code: PolicyErrorCode,
    pub file: String,
    pub line: u32,
    /// The key path, such as `tiers[0].rules[2].bands[1].ratio`; empty for whole-file errors.
    pub path: String,
    pub message: String,
    path_shown: String,
}

impl PolicyError {
    pub fn new(
        code: PolicyErrorCode,
        file: &str,
        line: u32,
        path: &str,
        message: String,
    ) -> PolicyError {
        let path_shown = if path.is_empty() { String::new() } else { format!("{path}: ") };
        PolicyError {
            code,
            file: file.to_owned(),
            line,
            path: path.to_owned(),
            message,
            path_shown,
        }
    }
}
