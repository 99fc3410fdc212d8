//! A policy file as a plain tree of nodes with line numbers, and the resolution of dated
//! parameters to the values in force on one date.
//!
//! toml_edit keeps spans; this module turns its many item shapes (tables, inline tables,
//! arrays of tables) into one `Node` shape so that the schema reader has a single thing to
//! walk. Floats keep their source text, so `0.85` is read as the exact decimal it was written.

use jiff::civil::Date;

use crate::error::{PolicyError, PolicyErrorCode};

/// A value in a policy file.
#[derive(Clone, Debug)]
pub enum Kind {
    Str(String),
    Int(i64),
    /// A float, kept as the text it was written as.
    Float(String),
    Bool(bool),
    /// A TOML date literal such as `2023-01-01`, as text.
    Date(String),
    Array(Vec<Node>),
    /// Keys in file order.
    Table(Vec<(String, Node)>),
}

/// A value and where it stands.
#[derive(Clone, Debug)]
pub struct Node {
    pub kind: Kind,
    /// 1-based line of the value (of the header, for tables).
    pub line: u32,
    /// For values inside a dated parameter: the first day the value is in force.
    pub effective_from: Option<Date>,
}

impl Node {
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Str(_) => "a string",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a number",
            Kind::Bool(_) => "a boolean",
            Kind::Date(_) => "a date",
            Kind::Array(_) => "an array",
            Kind::Table(_) => "a table",
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            Kind::Table(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Maps byte offsets to 1-based line numbers.
struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    fn new(text: &str) -> Lines {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { starts }
    }

    fn line(&self, offset: usize) -> u32 {
        let index = self.starts.partition_point(|start| *start <= offset);
        u32::try_from(index.max(1)).unwrap_or(u32::MAX)
    }
}

/// Parses TOML text into a node tree.
pub fn parse(file: &str, text: &str) -> Result<Node, PolicyError> {
    let document = toml_edit::Document::parse(text).map_err(|error| {
        let line = error.span().map_or(1, |span| Lines::new(text).line(span.start));
        let message = error.message().trim().to_owned();
        PolicyError::new(PolicyErrorCode::Syntax, file, line, "", format!("TOML syntax: {message}"))
    })?;
    let lines = Lines::new(text);
    let converter = Converter { text, lines: &lines };
    Ok(converter.table(document.as_table(), 1))
}

struct Converter<'a> {
    text: &'a str,
    lines: &'a Lines,
}

impl Converter<'_> {
    fn line_of(&self, span: Option<std::ops::Range<usize>>, fallback: u32) -> u32 {
        span.map_or(fallback, |span| self.lines.line(span.start))
    }

    fn table(&self, table: &toml_edit::Table, fallback: u32) -> Node {
        let line = self.line_of(table.span(), fallback);
        let mut entries = Vec::new();
        for (key, item) in table.iter() {
            let key_line = self.line_of(table.key(key).and_then(toml_edit::Key::span), line);
            if let Some(node) = self.item(item, key_line) {
                entries.push((key.to_owned(), node));
            }
        }
        Node { kind: Kind::Table(entries), line, effective_from: None }
    }

    fn item(&self, item: &toml_edit::Item, fallback: u32) -> Option<Node> {
        match item {
            toml_edit::Item::None => None,
            toml_edit::Item::Value(value) => Some(self.value(value, fallback)),
            toml_edit::Item::Table(table) => Some(self.table(table, fallback)),
            toml_edit::Item::ArrayOfTables(array) => {
                let line = self.line_of(array.span(), fallback);
                let items = array.iter().map(|table| self.table(table, line)).collect();
                Some(Node { kind: Kind::Array(items), line, effective_from: None })
            }
        }
    }

    fn value(&self, value: &toml_edit::Value, fallback: u32) -> Node {
        let line = self.line_of(value.span(), fallback);
        let kind = match value {
            toml_edit::Value::String(s) => Kind::Str(s.value().clone()),
            toml_edit::Value::Integer(i) => Kind::Int(*i.value()),
            toml_edit::Value::Float(f) => {
                // The source text is the exact decimal the author wrote.
                let raw = value.span().and_then(|span| self.text.get(span)).map(str::trim);
                Kind::Float(raw.map_or_else(|| f.value().to_string(), |raw| raw.replace('_', "")))
            }
            toml_edit::Value::Boolean(b) => Kind::Bool(*b.value()),
            toml_edit::Value::Datetime(d) => Kind::Date(d.value().to_string()),
            toml_edit::Value::Array(array) => {
                Kind::Array(array.iter().map(|v| self.value(v, line)).collect())
            }
            toml_edit::Value::InlineTable(table) => {
                let mut entries = Vec::new();
                for (key, v) in table.iter() {
                    let key_line =
                        self.line_of(table.key(key).and_then(toml_edit::Key::span), line);
                    entries.push((key.to_owned(), self.value(v, key_line)));
                }
                Kind::Table(entries)
            }
        };
        Node { kind, line, effective_from: None }
    }
}

/// One period of a dated parameter.
#[derive(Clone, Debug)]
pub struct Period {
    pub from: Date,
    /// Inclusive; `None` for open-ended.
    pub to: Option<Date>,
    pub value: Node,
}

/// Whether a node is written as a dated parameter: an array whose entries are all tables with a
/// `value` key (and so never an ordinary list of bands or categories).
pub fn is_dated(node: &Node) -> bool {
    match &node.kind {
        Kind::Array(items) => {
            !items.is_empty() && items.iter().all(|item| item.get("value").is_some())
        }
        _ => false,
    }
}

/// Reads a date written as a TOML date or a `YYYY-MM-DD` string.
pub fn date_of(node: &Node) -> Option<Date> {
    match &node.kind {
        Kind::Str(text) | Kind::Date(text) => {
            text.parse::<Date>().ok().filter(|_| text.len() == 10)
        }
        _ => None,
    }
}

/// Reads a dated parameter's periods and checks that they are ordered, neither overlap nor
/// leave a gap, and cover the file's range exactly.
pub fn periods(
    node: &Node,
    file: &str,
    path: &str,
    range: (Date, Option<Date>),
) -> Result<Vec<Period>, PolicyError> {
    let Kind::Array(items) = &node.kind else { unreachable!("is_dated was checked") };
    let mut periods: Vec<Period> = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{index}]");
        let period = period(item, file, &item_path)?;
        if let Some(previous) = periods.last() {
            check_follows(previous, &period, item, file, &item_path, index)?;
        }
        periods.push(period);
    }
    check_covers(&periods, node, file, path, range)?;
    Ok(periods)
}

/// Reads one period's `from`, `to` and `value`; any other key is a misspelling.
fn period(item: &Node, file: &str, item_path: &str) -> Result<Period, PolicyError> {
    let Kind::Table(entries) = &item.kind else { unreachable!("is_dated was checked") };
    for (key, value) in entries {
        if !matches!(key.as_str(), "from" | "to" | "value") {
            return Err(PolicyError::new(
                PolicyErrorCode::UnknownKey,
                file,
                value.line,
                &format!("{item_path}.{key}"),
                format!("unknown key `{key}` in a dated value; expected from, to, value"),
            ));
        }
    }
    let read_date = |key: &str| -> Result<Option<Date>, PolicyError> {
        let Some(value) = item.get(key) else { return Ok(None) };
        date_of(value).map(Some).ok_or_else(|| {
            PolicyError::new(
                PolicyErrorCode::ValueInvalid,
                file,
                value.line,
                &format!("{item_path}.{key}"),
                "a date must be written YYYY-MM-DD and exist in the calendar".to_owned(),
            )
        })
    };
    let from = read_date("from")?.ok_or_else(|| {
        PolicyError::new(
            PolicyErrorCode::MissingKey,
            file,
            item.line,
            &format!("{item_path}.from"),
            "every dated value needs `from` (its first day in force)".to_owned(),
        )
    })?;
    let to = read_date("to")?;
    if to.is_some_and(|to| to < from) {
        return Err(PolicyError::new(
            PolicyErrorCode::ValueInvalid,
            file,
            item.line,
            &format!("{item_path}.to"),
            format!("`to` is before `from` ({from})"),
        ));
    }
    let value = item.get("value").expect("is_dated was checked").clone();
    Ok(Period { from, to, value })
}

/// Checks that period `index` starts the day after `previous` ends, so that exactly one value
/// is in force on every day between them.
fn check_follows(
    previous: &Period,
    period: &Period,
    item: &Node,
    file: &str,
    item_path: &str,
    index: usize,
) -> Result<(), PolicyError> {
    let from = period.from;
    let Some(previous_to) = previous.to else {
        return Err(PolicyError::new(
            PolicyErrorCode::DatedOverlap,
            file,
            item.line,
            item_path,
            format!("period {index} starts {from} but period {} is open-ended", index - 1),
        ));
    };
    if from <= previous_to {
        return Err(PolicyError::new(
            PolicyErrorCode::DatedOverlap,
            file,
            item.line,
            item_path,
            format!(
                "period {index} starts {from}, on or before the end of period {} \
                 ({previous_to})",
                index - 1
            ),
        ));
    }
    if previous_to.tomorrow().ok() != Some(from) {
        return Err(PolicyError::new(
            PolicyErrorCode::DatedGap,
            file,
            item.line,
            item_path,
            format!("gap between {previous_to} and {from}: no value is in force in between"),
        ));
    }
    Ok(())
}

/// Checks that the periods, already known to follow each other, start on the file's first day
/// and reach its last, so that every day the file is in force has a value.
fn check_covers(
    periods: &[Period],
    node: &Node,
    file: &str,
    path: &str,
    range: (Date, Option<Date>),
) -> Result<(), PolicyError> {
    let first = periods.first().expect("is_dated requires at least one period");
    let last = periods.last().expect("is_dated requires at least one period");
    if first.from != range.0 {
        return Err(PolicyError::new(
            PolicyErrorCode::DatedGap,
            file,
            node.line,
            path,
            format!(
                "the first period starts {} but the file is in force from {}",
                first.from, range.0
            ),
        ));
    }
    let covers_end = match (last.to, range.1) {
        (None, _) => true,
        (Some(to), Some(end)) => to == end,
        (Some(_), None) => false,
    };
    if !covers_end {
        let end = range.1.map_or_else(|| "open-ended".to_owned(), |d| d.to_string());
        let to = last.to.map_or_else(|| "open".to_owned(), |d| d.to_string());
        return Err(PolicyError::new(
            PolicyErrorCode::DatedGap,
            file,
            node.line,
            path,
            format!("the last period ends {to} but the file is in force until {end}"),
        ));
    }
    Ok(())
}

/// Collects the first day of every period of every dated parameter in the tree.
pub fn change_dates(
    node: &Node,
    file: &str,
    path: &str,
    range: (Date, Option<Date>),
    out: &mut Vec<Date>,
) -> Result<(), PolicyError> {
    if is_dated(node) {
        for period in periods(node, file, path, range)? {
            out.push(period.from);
            change_dates(&period.value, file, &format!("{path}.value"), range, out)?;
        }
        return Ok(());
    }
    match &node.kind {
        Kind::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                change_dates(item, file, &format!("{path}[{index}]"), range, out)?;
            }
        }
        Kind::Table(entries) => {
            for (key, value) in entries {
                let child = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                change_dates(value, file, &child, range, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The tree as it stands on `date`: every dated parameter replaced by the value in force, that
/// value marked with the day it came into force.
pub fn resolve(
    node: &Node,
    date: Date,
    file: &str,
    range: (Date, Option<Date>),
) -> Result<Node, PolicyError> {
    if is_dated(node) {
        let periods = periods(node, file, "", range)?;
        let period = periods
            .iter()
            .find(|p| p.from <= date && p.to.is_none_or(|to| date <= to))
            .expect("periods cover the file's range, which contains the date");
        let mut value = resolve(&period.value, date, file, range)?;
        mark(&mut value, period.from);
        return Ok(value);
    }
    let kind = match &node.kind {
        Kind::Array(items) => Kind::Array(
            items.iter().map(|item| resolve(item, date, file, range)).collect::<Result<_, _>>()?,
        ),
        Kind::Table(entries) => Kind::Table(
            entries
                .iter()
                .map(|(key, value)| Ok((key.clone(), resolve(value, date, file, range)?)))
                .collect::<Result<_, PolicyError>>()?,
        ),
        other => other.clone(),
    };
    Ok(Node { kind, line: node.line, effective_from: node.effective_from })
}

fn mark(node: &mut Node, from: Date) {
    if node.effective_from.is_none_or(|existing| existing < from) {
        node.effective_from = Some(from);
    }
    match &mut node.kind {
        Kind::Array(items) => items.iter_mut().for_each(|item| mark(item, from)),
        Kind::Table(entries) => entries.iter_mut().for_each(|(_, value)| mark(value, from)),
        _ => {}
    }
}
