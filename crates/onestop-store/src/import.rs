//! Assistance-recipient lists as civil affairs send them: CSV (UTF-8 with or without BOM,
//! GB18030/GBK as Excel saves it on a Chinese Windows, or UTF-16 with its BOM; commas or tabs)
//! or a spreadsheet (XLSX, XLS, ODS), a header row naming the columns in English or Chinese,
//! one recipient per row. Parsing is all or nothing: the first bad row is reported with its
//! row number, and nothing is kept.

use std::collections::HashMap;

use onestop_api::{ServiceCode, ServiceError};
use onestop_core::{AssistanceCategory, Date};

/// At most this many rows in one list.
pub const LIST_ROWS_MAX: usize = 200_000;

/// One parsed row; `row` is its 1-based row number in the file (the header is row 1).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ListRow {
    pub row: usize,
    /// The earlier row of the same file this one repeats (the same person, category and
    /// dates): kept out of the store, and reported.
    pub same_as: Option<usize>,
    pub id_number: String,
    pub category: AssistanceCategory,
    pub effective_from: Date,
    pub effective_to: Option<Date>,
}

/// The columns, by the names accepted in the header row.
const COLUMNS: [(&str, &[&str]); 4] = [
    ("id_number", &["id_number", "身份证号", "身份证号码", "证件号码"]),
    ("category", &["category", "救助类别", "救助类型", "人员类别", "类别"]),
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

/// Dates as `2024-03-01`, `2024/3/1`, `2024.3.1`, `20240301` or `2024年3月1日`.
fn date(text: &str) -> Option<Date> {
    let text = text.trim();
    if let Some(rest) = text.strip_suffix('日') {
        let (year, rest) = rest.split_once('年')?;
        let (month, day) = rest.split_once('月')?;
        let (year, month, day) = (year.trim(), month.trim(), day.trim());
        return Date::new(year.parse().ok()?, month.parse().ok()?, day.parse().ok()?).ok();
    }
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    if digits.len() == 8 && !text.contains(['/', '-']) {
        let (y, m, d) =
            (digits[..4].parse().ok()?, digits[4..6].parse().ok()?, digits[6..].parse().ok()?);
        return Date::new(y, m, d).ok();
    }
    let parts: Vec<&str> = text.split(['-', '/', '.']).collect();
    match parts.as_slice() {
        [y, m, d] => Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?).ok(),
        _ => None,
    }
}

/// What lists write for an entitlement with no end date.
const OPEN_ENDED: [&str; 4] = ["长期", "长期有效", "无", "-"];

/// Rows above the header that exports put there (a title, 2025年1月低保名单, a date of export).
const TITLE_ROWS_MAX: usize = 5;

/// The header row: the first of the first rows that names the id column, so that a title or
/// two above it are skipped; its 0-based index, if there is one.
fn header_row(cells: &[Vec<String>]) -> Option<usize> {
    let names = COLUMNS[0].1;
    cells.iter().take(TITLE_ROWS_MAX + 1).position(|row| {
        row.iter().any(|h| names.contains(&h.trim().trim_start_matches('\u{feff}')))
    })
}

/// Parses rows of cells (the header first) into list rows.
pub fn parse_rows(cells: &[Vec<String>]) -> Result<Vec<ListRow>, ServiceError> {
    let at = header_row(cells).unwrap_or(0);
    let Some(header) = cells.get(at) else {
        return Err(list_error(1, "the file is empty".into()));
    };
    let mut index = [None; 4];
    for (slot, (name, names)) in index.iter_mut().zip(COLUMNS) {
        *slot =
            header.iter().position(|h| names.contains(&h.trim().trim_start_matches('\u{feff}')));
        if slot.is_none() && name != "effective_to" {
            let message = format!(
                "no `{name}` column in the header row (looked for it in the first {} rows; \
                 accepted: {})",
                TITLE_ROWS_MAX + 1,
                names.join(", ")
            );
            return Err(list_error(at + 1, message));
        }
    }
    let data_rows = cells.len() - 1 - at;
    if data_rows > LIST_ROWS_MAX {
        return Err(list_error(cells.len(), format!("{data_rows} rows; at most {LIST_ROWS_MAX}")));
    }
    let mut rows: Vec<ListRow> = Vec::with_capacity(data_rows);
    let mut seen: HashMap<(String, AssistanceCategory, Date, Option<Date>), usize> =
        HashMap::with_capacity(data_rows);
    for (offset, row) in cells.iter().enumerate().skip(at + 1) {
        if row.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let mut parsed = parse_row(row, offset + 1, &index)?;
        // A 15-digit number and its 18-character form are one person.
        let person = crate::model::identity_number_forms(&parsed.id_number)
            .into_iter()
            .max_by_key(String::len)
            .unwrap_or_default();
        let first = *seen
            .entry((person, parsed.category, parsed.effective_from, parsed.effective_to))
            .or_insert(parsed.row);
        parsed.same_as = (first != parsed.row).then_some(first);
        rows.push(parsed);
    }
    if rows.is_empty() {
        return Err(list_error(at + 1, "the list has a header but no rows".into()));
    }
    Ok(rows)
}

/// Parses one row, numbered `number` in the file, by the header's column `index`.
fn parse_row(
    row: &[String],
    number: usize,
    index: &[Option<usize>; 4],
) -> Result<ListRow, ServiceError> {
    let cell = |column: Option<usize>| column.and_then(|i| row.get(i)).map_or("", |c| c.trim());
    let id_number = cell(index[0]).to_ascii_uppercase();
    if !crate::model::is_identity_number(&id_number) {
        let message = format!(
            "`{}` is not an identity number (15 digits, or 17 digits and a digit or X)",
            cell(index[0])
        );
        return Err(list_error(number, message));
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
    // 长期 (lasting) is how lists write an entitlement with no end date.
    let effective_to = if to_text.is_empty() || OPEN_ENDED.contains(&to_text) {
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
    Ok(ListRow { row: number, same_as: None, id_number, category, effective_from, effective_to })
}

/// The text of a CSV file: by its byte-order mark if it has one, else UTF-8 if it is valid
/// UTF-8, else GB18030 (a superset of GBK and GB2312), the encoding Excel and WPS write on a
/// Chinese Windows. Bytes that are none of these are refused, never read with replacement
/// characters (an identity number must not be guessed).
pub fn csv_text(bytes: &[u8]) -> Result<String, ServiceError> {
    if let Some((encoding, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        return encoding
            .decode_without_bom_handling_and_without_replacement(&bytes[bom..])
            .map(std::borrow::Cow::into_owned)
            .ok_or_else(|| {
                list_error(1, format!("the file starts with a {} mark but is not", encoding.name()))
            });
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Ok(text.to_owned());
    }
    let mut decoder = encoding_rs::GB18030.new_decoder_without_bom_handling();
    let capacity = decoder.max_utf8_buffer_length_without_replacement(bytes.len());
    let mut text = String::with_capacity(capacity.unwrap_or(bytes.len().saturating_mul(2)));
    let (result, read) = decoder.decode_to_string_without_replacement(bytes, &mut text, true);
    match result {
        encoding_rs::DecoderResult::InputEmpty => Ok(text),
        _ => {
            let row = 1 + bytes[..read].iter().filter(|&&b| b == b'\n').count();
            Err(list_error(row, "the text is neither UTF-8 nor GB18030 (GBK)".into()))
        }
    }
}

/// Reads a CSV file into cells: comma-separated, or tab-separated when the header row has tabs
/// and no commas (Excel's "Unicode text").
pub fn csv_cells(bytes: &[u8]) -> Result<Vec<Vec<String>>, ServiceError> {
    let text = csv_text(bytes)?;
    let header = text.lines().next().unwrap_or("");
    let delimiter = if header.contains('\t') && !header.contains(',') { b'\t' } else { b',' };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let mut cells = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let record = record.map_err(|e| list_error(index + 1, format!("not CSV: {e}")))?;
        cells.push(record.iter().map(str::to_owned).collect());
    }
    Ok(cells)
}

/// Whether a file is a spreadsheet rather than text: a ZIP (XLSX, ODS) or an OLE compound
/// file (XLS).
pub fn is_spreadsheet(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0])
}

/// Reads a workbook (XLSX, XLS or ODS) into cells: its first sheet with an id column in its
/// first rows (a sheet of instructions, 说明, before the list is passed over), else its first.
pub fn xlsx_cells(bytes: &[u8]) -> Result<Vec<Vec<String>>, ServiceError> {
    use calamine::Reader;
    let cursor = std::io::Cursor::new(bytes);
    let mut workbook = calamine::open_workbook_auto_from_rs(cursor)
        .map_err(|e| list_error(1, format!("not a spreadsheet (XLSX, XLS or ODS): {e}")))?;
    let mut first = None;
    for (_, range) in workbook.worksheets() {
        let cells: Vec<Vec<String>> =
            range.rows().map(|row| row.iter().map(cell_text).collect()).collect();
        if header_row(&cells).is_some() {
            return Ok(cells);
        }
        first.get_or_insert(cells);
    }
    first.ok_or_else(|| list_error(1, "the workbook has no sheet".into()))
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
        // Excel keeps 15 significant digits of a number: an 18-digit identity number typed
        // into a number cell has already lost its last digits, so it must not be read as one.
        calamine::Data::Float(value) if value.abs() >= 1e15 => {
            format!("{value:.0} (a number cell keeps 15 digits; store identity numbers as text)")
        }
        calamine::Data::Float(value) if value.fract() == 0.0 => format!("{value:.0}"),
        calamine::Data::Int(value) if value.unsigned_abs() >= 1_000_000_000_000_000 => {
            format!("{value} (a number cell keeps 15 digits; store identity numbers as text)")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::{AssistanceCategory as C, category, csv_cells, parse_rows, xlsx_cells};
    use onestop_core::Date;

    const LIST: &str = "身份证号,姓名,救助类别,生效日期,截止日期\r\n\
        110101196001011234,李四,低保对象,2024-01-01,\r\n\
        11010119700202567x,王五·阿里木,特困,2024/3/5,20241231\r\n";

    fn expected() -> Vec<(String, C, Date, Option<Date>)> {
        vec![
            (
                "110101196001011234".into(),
                C::SubsistenceAllowance,
                Date::constant(2024, 1, 1),
                None,
            ),
            (
                "11010119700202567X".into(),
                C::ExtremePoverty,
                Date::constant(2024, 3, 5),
                Some(Date::constant(2024, 12, 31)),
            ),
        ]
    }

    fn read(cells: &[Vec<String>]) -> Vec<(String, C, Date, Option<Date>)> {
        let rows = parse_rows(cells).expect("rows");
        rows.into_iter()
            .map(|r| (r.id_number, r.category, r.effective_from, r.effective_to))
            .collect()
    }

    #[test]
    fn a_csv_list_is_read_in_the_encodings_chinese_offices_save_it_in() {
        let (gb18030, _, lossy) = encoding_rs::GB18030.encode(LIST);
        assert!(!lossy);
        let mut utf8_bom = b"\xEF\xBB\xBF".to_vec();
        utf8_bom.extend_from_slice(LIST.as_bytes());
        let tabbed = LIST.replace(',', "\t");
        let mut utf16le = vec![0xFF, 0xFE];
        utf16le.extend(tabbed.encode_utf16().flat_map(u16::to_le_bytes));
        for (name, bytes) in [
            ("UTF-8", LIST.as_bytes().to_vec()),
            ("UTF-8 with BOM", utf8_bom),
            ("GB18030", gb18030.into_owned()),
            ("UTF-16LE, tabs", utf16le),
        ] {
            let cells = csv_cells(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(cells[2][1], "王五·阿里木", "{name}");
            assert_eq!(read(&cells), expected(), "{name}");
        }
    }

    #[test]
    fn a_list_is_read_below_its_title_with_the_ways_offices_write_dates() {
        let list = "2024年3月低保名单,,,\n导出日期 2024-03-31,,,\n\
            身份证号,救助类型,生效日期,截止日期\n\
            110101196001011234,低保对象,2024年1月1日,长期\n\
            11010119700202567x,特困,2024.3.5,2024年12月31日\n";
        let cells = csv_cells(list.as_bytes()).expect("cells");
        assert_eq!(read(&cells), expected());
        let rows = parse_rows(&cells).expect("rows");
        assert_eq!(rows[0].row, 4, "rows keep their numbers in the file");
        let header_only = csv_cells("身份证号,救助类别,生效日期\n,,\n".as_bytes()).expect("cells");
        let error = parse_rows(&header_only).expect_err("nothing to import");
        assert!(error.body.message.contains("no rows"), "{error}");
        let no_ids = csv_cells("姓名,类别,日期\n李四,低保,2024-01-01\n".as_bytes()).expect("cells");
        let error = parse_rows(&no_ids).expect_err("no id column");
        assert!(error.body.message.contains("in the header row"), "{error}");
    }

    #[test]
    fn a_csv_list_in_no_known_encoding_is_refused_at_its_row() {
        let (gb18030, _, _) = encoding_rs::GB18030.encode(LIST);
        let mut bytes = gb18030.into_owned();
        // A lone lead byte with nothing after it is neither GB18030 nor UTF-8.
        bytes.extend_from_slice(b"110101196001011234,\x81");
        let error = csv_cells(&bytes).expect_err("refused");
        assert_eq!(error.body.field.as_deref(), Some("rows[4]"), "{error}");
        assert!(error.body.message.contains("GB18030"), "{error}");
    }

    #[test]
    fn an_xlsx_list_is_read_with_date_cells_and_ids_as_text() {
        let mut book = rust_xlsxwriter::Workbook::new();
        // A sheet of instructions first, as some exports have: passed over.
        let notes = book.add_worksheet().set_name("说明").expect("name");
        notes.write_string(0, 0, "本表为2024年救助对象名单").expect("note");
        let sheet = book.add_worksheet();
        let date = rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd");
        for (col, title) in
            ["身份证号", "姓名", "救助类别", "生效日期", "截止日期"].iter().enumerate()
        {
            sheet.write_string(0, u16::try_from(col).expect("column"), *title).expect("header");
        }
        let rows = [("110101196001011234", "低保对象", (2024, 1, 1), None)];
        let rows = rows
            .iter()
            .chain([("11010119700202567x", "特困", (2024, 3, 5), Some((2024, 12, 31)))].iter());
        for (row, (id, category, from, to)) in rows.enumerate() {
            let row = u32::try_from(row + 1).expect("row");
            sheet.write_string(row, 0, *id).expect("id");
            sheet.write_string(row, 2, *category).expect("category");
            let from =
                rust_xlsxwriter::ExcelDateTime::from_ymd(from.0, from.1, from.2).expect("date");
            sheet.write_datetime_with_format(row, 3, &from, &date).expect("from");
            if let Some(to) = to {
                let to = rust_xlsxwriter::ExcelDateTime::from_ymd(to.0, to.1, to.2).expect("date");
                sheet.write_datetime_with_format(row, 4, &to, &date).expect("to");
            }
        }
        let bytes = book.save_to_buffer().expect("xlsx");
        assert!(super::is_spreadsheet(&bytes));
        assert_eq!(read(&xlsx_cells(&bytes).expect("cells")), expected());

        // The same id typed into a number cell has lost its last digits: refused, not guessed.
        sheet_with_number_id(&mut book);
        let bytes = book.save_to_buffer().expect("xlsx");
        let error = parse_rows(&xlsx_cells(&bytes).expect("cells")).expect_err("refused");
        assert_eq!(error.body.field.as_deref(), Some("rows[2]"), "{error}");
        assert!(error.body.message.contains("store identity numbers as text"), "{error}");
    }

    fn sheet_with_number_id(book: &mut rust_xlsxwriter::Workbook) {
        let sheet = book.worksheet_from_index(1).expect("sheet");
        sheet.write_number(1, 0, 110_101_196_001_011_234_f64).expect("number id");
    }

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
