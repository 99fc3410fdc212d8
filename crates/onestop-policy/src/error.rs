//! Loader errors: a stable code, the file, the line and the key path, and what was wrong.

use std::fmt;

macro_rules! policy_error_codes {
    ($($variant:ident = $code:literal, $zh:literal, $doc:literal;)+) => {
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

            /// The code's Chinese term, for the agency's analysts.
            pub fn zh(self) -> &'static str {
                match self { $(PolicyErrorCode::$variant => $zh),+ }
            }
        }
    };
}

policy_error_codes! {
    FileUnreadable = "policy_file_unreadable", "政策文件无法读取",
        "The policy directory and its files must be readable.";
    FileTooLarge = "policy_file_too_large", "政策文件过大",
        "A policy file must not exceed 1 MiB; a directory must not hold more than 1,000 files.";
    Syntax = "policy_syntax", "政策文件格式错误",
        "A policy file must be valid TOML.";
    UnknownKey = "policy_unknown_key", "未知参数项",
        "Every key must be one the format defines: a misspelt key is an error, never ignored.";
    MissingKey = "policy_missing_key", "缺少必填参数",
        "Every required key must be present.";
    WrongType = "policy_wrong_type", "参数类型错误",
        "Every value must have the type its key takes (string, number, table, array).";
    ValueInvalid = "policy_value_invalid", "参数值无效",
        "Every value must be valid for its key: a real date, an amount with at most two decimals, \
         a ratio within bounds, a known name.";
    DatedGap = "policy_dated_gap", "分期参数有间断",
        "A dated parameter's periods must follow each other without a gap and cover the file's \
         whole range.";
    DatedOverlap = "policy_dated_overlap", "分期参数重叠",
        "A dated parameter's periods must not overlap.";
    FilesGap = "policy_files_gap", "政策文件期间有间断",
        "A region's policy files must follow each other without a gap between their ranges.";
    FilesOverlap = "policy_files_overlap", "政策文件期间重叠",
        "A region's policy files must not cover the same day twice.";
    RulesOverlap = "policy_rules_overlap", "规则适用范围重叠",
        "Within a tier, no two rules may match the same person and visit.";
    BandsInvalid = "policy_bands_invalid", "分段设置错误",
        "Bands must ascend strictly, each starting where the previous one ends; only the last is \
         open.";
    TiersInvalid = "policy_tiers_invalid", "保障层级设置错误",
        "Tier ids must be unique; coinsurance tiers come before layers; a layer's base may only \
         name earlier layers.";
    LimitExceeded = "policy_limit_exceeded", "超出政策规模限制",
        "A policy has at most 16 tiers, 64 rules per tier, 16 bands and 16 adjustments per rule, \
         100 deductibles by admission and 100,000 catalog items.";
}

impl fmt::Display for PolicyErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code(), self.zh())
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
