//! Assistance-recipient lists as civil affairs send them: CSV (UTF-8, with or without BOM) or
//! XLSX, a header row naming the columns in English or Chinese, one recipient per row. Parsing
//! is all or nothing: the first bad row is reported with its row number, and nothing is kept.

use onestop_api::{ServiceCode, ServiceError};
use onestop_core::{AssistanceCategory, Date};

/// At most this many rows in one list.
pub const LIST_ROWS_MAX: usize = 200_000;

/// One parsed row; `row` is its 1-based row number in the file (the header is row 1).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ListRow {
    pub row: usize,
    pub id_number: String,
    pub category: AssistanceCategory,
    pub effective_from: Date,
    pub effective_to: Option<Date>,
}

/// The columns, by the names accepted in the header row.
const COLUMNS: [(&str, &[&str]); 4] = [
    ("id_number", &["id_number", "身份证号", "身份证号码", "证件号码"]),
    ("category", &["category", "救助类别", "人员类别", "类别"]),
    ("effective_from", &["effective_from", "生效日期", "起始日期", "开始日期"]),
    ("effective_to", &["effective_to", "截止日期", "终止日期", "结束日期"]),
];

fn list_error(row: usize, message: String) -> ServiceError {
    let message = format!("row {row}: {message}; nothing was imported");
    ServiceError::new(ServiceCode::AssistanceListInvalid, message).field(format!("rows[{row}]"))
}

/// The short names civil affairs' lists also write, each for one category.
const CATEGORY_ALIASES: &[(&str, AssistanceCategory)] = &[
    ("低保", AssistanceCategory::SubsistenceAllowance),
    ("低保户", AssistanceCategory::SubsistenceAllowance),
    ("城乡低保", AssistanceCategory::SubsistenceAllowance),
    ("城市低保", AssistanceCategory::SubsistenceAllowance),
    ("农村低保", AssistanceCategory::SubsistenceAllowance),
    ("最低生活保障对象", AssistanceCategory::SubsistenceAllowance),
    ("特困", AssistanceCategory::ExtremePoverty),
    ("特困供养人员", AssistanceCategory::ExtremePoverty),
    ("五保", AssistanceCategory::ExtremePoverty),
    ("五保户", AssistanceCategory::ExtremePoverty),
    ("低保边缘", AssistanceCategory::LowIncomeEdge),
    ("低边", AssistanceCategory::LowIncomeEdge),
    ("监测对象", AssistanceCategory::ReturningToPovertyRisk),
    ("防返贫监测对象", AssistanceCategory::ReturningToPovertyRisk),
    ("因病致贫", AssistanceCategory::ImpoverishedByIllness),
    ("重残", AssistanceCategory::SevereDisability),
    ("重度残疾", AssistanceCategory::SevereDisability),
];

/// A category by its code, its Chinese name (低保对象, 特困人员, ...) or a short name of
/// `CATEGORY_ALIASES` (低保, 特困, ...).
fn category(text: &str) -> Option<AssistanceCategory> {
    let text = text.trim();
    AssistanceCategory::parse(text)
        .or_else(|| CATEGORY_ALIASES.iter().find(|(alias, _)| *alias == text).map(|(_, c)| *c))
        .or_else(|| {
            AssistanceCategory::ALL
                .iter()
                .copied()
                .find(|c| c.zh() == text || text.contains(c.zh()))
        })
}

/// What a category cell may hold, for the message that refuses one.
fn categories_accepted() -> String {
    let names: Vec<String> =
        AssistanceCategory::ALL.iter().map(|c| format!("{} ({})", c.zh(), c.code())).collect();
    let aliases: Vec<&str> = CATEGORY_ALIASES.iter().map(|(alias, _)| *alias).collect();
    format!("{}; or {}", names.join(", "), aliases.join(", "))
}

/// Dates as `2024-03-01`, `2024/3/1` or `20240301`.
fn date(text: &str) -> Option<Date> {
    let text = text.trim();
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    if digits.len() == 8 && !text.contains(['/', '-']) {
        let (y, m, d) =
            (digits[..4].parse().ok()?, digits[4..6].parse().ok()?, digits[6..].parse().ok()?);
        return Date::new(y, m, d).ok();
    }
    let parts: Vec<&str> = text.split(['-', '/']).collect();
    match parts.as_slice() {
        [y, m, d] => Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?).ok(),
        _ => None,
    }
}

/// Parses rows of cells (the header first) into list rows.
pub fn parse_rows(cells: &[Vec<String>]) -> Result<Vec<ListRow>, ServiceError> {
    let Some(header) = cells.first() else { return Err(list_error(1, "the file is empty".into())) };
    let mut index = [None; 4];
    for (slot, (name, names)) in index.iter_mut().zip(COLUMNS) {
        *slot =
            header.iter().position(|h| names.contains(&h.trim().trim_start_matches('\u{feff}')));
        if slot.is_none() && name != "effective_to" {
            return Err(list_error(
                1,
                format!("no `{name}` column (accepted: {})", names.join(", ")),
            ));
        }
    }
    if cells.len() - 1 > LIST_ROWS_MAX {
        return Err(list_error(
            cells.len(),
            format!("{} rows; at most {LIST_ROWS_MAX}", cells.len() - 1),
        ));
    }
    let mut rows = Vec::with_capacity(cells.len() - 1);
    for (offset, row) in cells.iter().enumerate().skip(1) {
        let number = offset + 1;
        let cell = |column: Option<usize>| column.and_then(|i| row.get(i)).map_or("", |c| c.trim());
        if row.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let id_number = cell(index[0]).to_ascii_uppercase();
        if !(15..=18).contains(&id_number.len())
            || !id_number.bytes().all(|b| b.is_ascii_digit() || b == b'X')
        {
            return Err(list_error(number, format!("`{id_number}` is not an identity number")));
        }
        let category = category(cell(index[1])).ok_or_else(|| {
            let message = format!(
                "`{}` is not an assistance category (救助类别); expected one of: {}",
                cell(index[1]),
                categories_accepted()
            );
            list_error(number, message)
        })?;
        let effective_from = date(cell(index[2]))
            .ok_or_else(|| list_error(number, format!("`{}` is not a date", cell(index[2]))))?;
        let to_text = cell(index[3]);
        let effective_to = if to_text.is_empty() {
            None
        } else {
            Some(
                date(to_text)
                    .ok_or_else(|| list_error(number, format!("`{to_text}` is not a date")))?,
            )
        };
        if effective_to.is_some_and(|to| to < effective_from) {
            return Err(list_error(number, "the end date is before the start date".into()));
        }
        rows.push(ListRow { row: number, id_number, category, effective_from, effective_to });
    }
    Ok(rows)
}

/// Reads a CSV file into cells.
pub fn csv_cells(bytes: &[u8]) -> Result<Vec<Vec<String>>, ServiceError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(bytes);
    let mut cells = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let record = record.map_err(|e| list_error(index + 1, format!("not CSV: {e}")))?;
        cells.push(record.iter().map(str::to_owned).collect());
    }
    Ok(cells)
}

/// Reads the first sheet of an XLSX workbook into cells.
pub fn xlsx_cells(bytes: &[u8]) -> Result<Vec<Vec<String>>, ServiceError> {
    use calamine::Reader;
    let cursor = std::io::Cursor::new(bytes);
    let mut workbook =
        calamine::Xlsx::new(cursor).map_err(|e| list_error(1, format!("not XLSX: {e}")))?;
    let range = workbook
        .worksheet_range_at(0)
        .ok_or_else(|| list_error(1, "the workbook has no sheet".into()))?
        .map_err(|e| list_error(1, format!("unreadable sheet: {e}")))?;
    Ok(range.rows().map(|row| row.iter().map(cell_text).collect()).collect())
}

#[allow(clippy::float_arithmetic, clippy::cast_possible_truncation)]
fn cell_text(cell: &calamine::Data) -> String {
    match cell {
        // Excel stores dates as days since 1899-12-30.
        calamine::Data::DateTime(value) => {
            let days = value.as_f64().floor() as i64;
            let epoch = Date::constant(1899, 12, 30);
            epoch
                .checked_add(jiff::Span::new().days(days))
                .map(|d| d.to_string())
                .unwrap_or_default()
        }
        calamine::Data::Float(value) if value.fract() == 0.0 => format!("{value:.0}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::{AssistanceCategory as C, category};

    #[test]
    fn a_category_is_read_by_code_chinese_name_or_short_name() {
        let cases = [
            ("subsistence_allowance", Some(C::SubsistenceAllowance)),
            ("低保对象", Some(C::SubsistenceAllowance)),
            ("低保", Some(C::SubsistenceAllowance)),
            (" 农村低保 ", Some(C::SubsistenceAllowance)),
            ("低保边缘", Some(C::LowIncomeEdge)),
            ("低保边缘家庭成员", Some(C::LowIncomeEdge)),
            ("特困", Some(C::ExtremePoverty)),
            ("五保户", Some(C::ExtremePoverty)),
            ("重残", Some(C::SevereDisability)),
            ("贫困", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(category(text), want, "{text}");
        }
    }
}
