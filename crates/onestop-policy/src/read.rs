//! Strict readers over the node tree: each table is opened, its keys taken one by one, and
//! closed with a check that no key was left unread, so a misspelt key is always an error.

use std::sync::Arc;

use jiff::civil::Date;
use onestop_core::money::{Fen, Ratio};
use onestop_core::policy::{Param, Source, SourceId};

use crate::error::{PolicyError, PolicyErrorCode};
use crate::tree::{Kind, Node, date_of};

/// State shared while reading one snapshot of one file: where errors point, and the
/// provenance table every parameter is registered in.
pub struct Reader {
    pub file: Arc<str>,
    /// The file's first day, the effective date of values that are not dated.
    pub valid_from: Date,
    pub sources: Vec<Source>,
    /// The ids of the snapshot's disease groups (`[[diseases]]`), by bit, for `when.disease`.
    pub diseases: Vec<Arc<str>>,
}

impl Reader {
    pub fn new(file: &str, valid_from: Date) -> Reader {
        Reader { file: Arc::from(file), valid_from, sources: Vec::new(), diseases: Vec::new() }
    }

    pub fn error(
        &self,
        code: PolicyErrorCode,
        node: &Node,
        path: &str,
        message: String,
    ) -> PolicyError {
        PolicyError::new(code, &self.file, node.line, path, message)
    }

    /// Registers where a parameter came from.
    pub fn source(&mut self, node: &Node, path: &str) -> SourceId {
        let id = SourceId(u32::try_from(self.sources.len()).unwrap_or(u32::MAX));
        self.sources.push(Source {
            file: Arc::clone(&self.file),
            path: path.to_owned(),
            line: node.line,
            effective_from: node.effective_from.unwrap_or(self.valid_from),
        });
        id
    }

    pub fn wrong_type(&self, node: &Node, path: &str, expected: &str) -> PolicyError {
        self.error(
            PolicyErrorCode::WrongType,
            node,
            path,
            format!("expected {expected}, found {}", node.type_name()),
        )
    }

    pub fn invalid(&self, node: &Node, path: &str, message: String) -> PolicyError {
        self.error(PolicyErrorCode::ValueInvalid, node, path, message)
    }

    pub fn money(&mut self, node: &Node, path: &str) -> Result<Param<Fen>, PolicyError> {
        let text = match &node.kind {
            Kind::Str(text) | Kind::Float(text) => text.clone(),
            Kind::Int(value) => value.to_string(),
            _ => return Err(self.wrong_type(node, path, "an amount of yuan such as \"1300\"")),
        };
        let fen = Fen::parse_yuan(&text)
            .map_err(|error| self.invalid(node, path, format!("`{text}` {error}")))?;
        if fen < Fen::ZERO {
            return Err(self.invalid(node, path, format!("`{text}` must not be negative")));
        }
        Ok(Param::new(fen, self.source(node, path)))
    }

    /// A ratio in `0..=max`, written `"85%"`, `0.85`, `"0.85"`, `1` or `0`.
    pub fn ratio(
        &mut self,
        node: &Node,
        path: &str,
        max: Ratio,
    ) -> Result<Param<Ratio>, PolicyError> {
        let text = match &node.kind {
            Kind::Str(text) | Kind::Float(text) => text.clone(),
            Kind::Int(value) => value.to_string(),
            _ => return Err(self.wrong_type(node, path, "a ratio such as \"85%\" or 0.85")),
        };
        let ratio = Ratio::parse(&text)
            .map_err(|error| self.invalid(node, path, format!("`{text}` {error}")))?;
        if ratio > max {
            return Err(self.invalid(node, path, format!("`{text}` exceeds {max}")));
        }
        Ok(Param::new(ratio, self.source(node, path)))
    }

    /// Percentage points, possibly negative, as millionths: `5` → 50,000.
    pub fn points(&mut self, node: &Node, path: &str) -> Result<Param<i64>, PolicyError> {
        let text = match &node.kind {
            Kind::Str(text) | Kind::Float(text) => text.clone(),
            Kind::Int(value) => value.to_string(),
            _ => {
                return Err(self.wrong_type(node, path, "a number of percentage points such as 5"));
            }
        };
        let (negative, magnitude) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.trim_start_matches('+')),
        };
        let ratio = Ratio::parse(&format!("{magnitude}%"))
            .ok()
            .filter(|r| *r <= Ratio::ONE)
            .ok_or_else(|| {
                self.invalid(
                    node,
                    path,
                    format!("`{text}` is not a number of points between -100 and 100"),
                )
            })?;
        let millionths = i64::from(ratio.millionths());
        Ok(Param::new(if negative { -millionths } else { millionths }, self.source(node, path)))
    }

    pub fn text<'n>(&self, node: &'n Node, path: &str) -> Result<&'n str, PolicyError> {
        match &node.kind {
            Kind::Str(text) => Ok(text),
            _ => Err(self.wrong_type(node, path, "a string")),
        }
    }

    pub fn date(&self, node: &Node, path: &str) -> Result<Date, PolicyError> {
        date_of(node).ok_or_else(|| {
            self.invalid(
                node,
                path,
                "a date must be written YYYY-MM-DD and exist in the calendar".to_owned(),
            )
        })
    }

    pub fn boolean(&self, node: &Node, path: &str) -> Result<bool, PolicyError> {
        match node.kind {
            Kind::Bool(value) => Ok(value),
            _ => Err(self.wrong_type(node, path, "true or false")),
        }
    }

    pub fn integer(&self, node: &Node, path: &str, range: (i64, i64)) -> Result<i64, PolicyError> {
        match node.kind {
            Kind::Int(value) if (range.0..=range.1).contains(&value) => Ok(value),
            Kind::Int(value) => Err(self.invalid(
                node,
                path,
                format!("{value} is outside {}..={}", range.0, range.1),
            )),
            _ => Err(self.wrong_type(node, path, "an integer")),
        }
    }

    /// A name from a closed vocabulary.
    pub fn name<T>(
        &self,
        node: &Node,
        path: &str,
        parse: impl Fn(&str) -> Option<T>,
        expected: &str,
    ) -> Result<T, PolicyError> {
        let text = match &node.kind {
            Kind::Str(text) => text.clone(),
            Kind::Int(value) => value.to_string(),
            _ => return Err(self.wrong_type(node, path, "a name")),
        };
        parse(&text).ok_or_else(|| {
            self.invalid(node, path, format!("unknown `{text}`; expected one of: {expected}"))
        })
    }

    /// One value or an array of them, with their paths.
    pub fn one_or_many<'n>(&self, node: &'n Node, path: &str) -> Vec<(&'n Node, String)> {
        match &node.kind {
            Kind::Array(items) => items
                .iter()
                .enumerate()
                .map(|(index, item)| (item, format!("{path}[{index}]")))
                .collect(),
            _ => vec![(node, path.to_owned())],
        }
    }

    /// An array of tables, each with its path.
    pub fn tables<'n>(
        &self,
        node: &'n Node,
        path: &str,
    ) -> Result<Vec<(&'n Node, String)>, PolicyError> {
        match &node.kind {
            Kind::Array(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(index, item)| (item, format!("{path}[{index}]")))
                .collect()),
            _ => Err(self.wrong_type(node, path, "an array of tables")),
        }
    }
}

/// A table being read; unknown keys were rejected when it was opened.
pub struct Table<'n> {
    pub node: &'n Node,
    pub path: String,
    entries: &'n [(String, Node)],
}

impl<'n> Table<'n> {
    /// Opens a table, rejecting at once any key not in `allowed` (so a misspelt key is
    /// reported as such, before anything it would have provided is missed).
    pub fn open(
        reader: &Reader,
        node: &'n Node,
        path: &str,
        allowed: &[&str],
    ) -> Result<Table<'n>, PolicyError> {
        let Kind::Table(entries) = &node.kind else {
            return Err(reader.wrong_type(node, path, "a table"));
        };
        let table = Table { node, path: path.to_owned(), entries };
        for (key, value) in entries {
            if !allowed.contains(&key.as_str()) {
                let hint = closest(key, allowed)
                    .map(|near| format!(" (did you mean `{near}`?)"))
                    .unwrap_or_default();
                return Err(reader.error(
                    PolicyErrorCode::UnknownKey,
                    value,
                    &table.child_path(key),
                    format!("unknown key `{key}`{hint}; allowed here: {}", allowed.join(", ")),
                ));
            }
        }
        Ok(table)
    }

    pub fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_owned() } else { format!("{}.{key}", self.path) }
    }

    /// Takes an optional key.
    pub fn get(&mut self, key: &str) -> Option<(&'n Node, String)> {
        let index = self.entries.iter().position(|(k, _)| k == key)?;
        Some((&self.entries[index].1, self.child_path(key)))
    }

    /// Takes a required key.
    pub fn require(
        &mut self,
        reader: &Reader,
        key: &str,
        what: &str,
    ) -> Result<(&'n Node, String), PolicyError> {
        self.get(key).ok_or_else(|| {
            reader.error(
                PolicyErrorCode::MissingKey,
                self.node,
                &self.child_path(key),
                format!("missing `{key}` ({what})"),
            )
        })
    }
}

/// The allowed key nearest to a misspelt one, if any is close.
fn closest<'a>(key: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|candidate| (edit_distance(key, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 4))
        .min()
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != *cb)).min(row[j] + 1).min(current + 1);
            previous = current;
        }
    }
    row[b.len()]
}
