//! The storage primitives in SQLite's dialect. `SqliteTx` borrows a connection that is
//! already inside a transaction (see `sqlite`).

use std::sync::Arc;

use onestop_core::accumulators::{AccumulatorKey, Counter};
use onestop_core::{
    Accumulators, AssistanceCategory, CatalogClass, Category, Date, Fen, HospitalLevel, Line,
    Quantity, Region, UnitPrice, VisitType,
};
use onestop_ledger::Posting;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::later::{Later, SettlementJson};
use crate::model::{
    ADMISSIONS, AssistanceEntry, Enrolment, Institution, Journal, LineOrigin, NhsaKeys,
    NhsaMessage, PersonKey, PersonRow, Role, SettlementRow, StoredResponse, VisitRow, VisitStatus,
    postings_from_json,
};
use crate::multi_row::Column::{Each, Shared};
use crate::multi_row::{Dialect, ROWS_PER_STATEMENT, multi_row_insert};
use crate::tx::{NewAssistance, Result, StoreError, Tx};

pub struct SqliteTx<'c> {
    pub conn: &'c Connection,
}

pub(crate) fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} `{value}`"))
}

pub(crate) fn region(text: &str) -> Result<Region> {
    Region::parse(text).ok_or_else(|| corrupt("region", text))
}

pub(crate) fn date(text: &str) -> Result<Date> {
    text.parse().map_err(|_| corrupt("date", text))
}

pub(crate) fn institution_from(
    id: String,
    region_text: String,
    name: String,
    level: Option<String>,
    role: String,
) -> Result<Institution> {
    let level = match level {
        Some(level) => Some(HospitalLevel::parse(&level).ok_or_else(|| corrupt("level", &level))?),
        None => None,
    };
    Ok(Institution {
        institution_id: id,
        region: region(&region_text)?,
        name,
        level,
        role: Role::parse(&role).ok_or_else(|| corrupt("role", &role))?,
    })
}

pub(crate) fn line_from(
    code: String,
    name: String,
    class: String,
    values: [i64; 3],
    limit: Option<i64>,
) -> Result<Line> {
    Ok(Line {
        code,
        name,
        class: CatalogClass::parse(&class).ok_or_else(|| corrupt("class", &class))?,
        quantity: Quantity(values[0]),
        unit_price: UnitPrice(values[1]),
        amount: Fen(values[2]),
        price_limit: limit.map(UnitPrice),
    })
}

pub(crate) fn add_counter(
    acc: &mut Accumulators,
    tier: &str,
    pool: &str,
    counter: &str,
    value: i64,
) -> Result<()> {
    if (tier, pool, counter) == ADMISSIONS {
        acc.admissions =
            u16::try_from(value).map_err(|_| corrupt("admissions", &value.to_string()))?;
        return Ok(());
    }
    let counter = Counter::parse(counter).ok_or_else(|| corrupt("counter", counter))?;
    let key = AccumulatorKey { tier: Arc::from(tier), pool: Arc::from(pool), counter };
    acc.add(&key, Fen(value));
    Ok(())
}

/// The column of `SETTLEMENT_COLUMNS` that holds the settlement's JSON.
const RESULT_COLUMN: usize = 8;

fn settlement_from(row: &Row<'_>) -> rusqlite::Result<[String; 11]> {
    let mut texts: [String; 11] = Default::default();
    for (index, text) in texts.iter_mut().enumerate() {
        *text = if index == RESULT_COLUMN { result_text(row, index)? } else { row.get(index)? };
    }
    Ok(texts)
}

/// A settlement's JSON is stored compressed (LZ4, its length first): it is a tenth of the row
/// count but most of the bytes, and it compresses about fivefold. Text is read as it is.
fn result_text(row: &Row<'_>, index: usize) -> rusqlite::Result<String> {
    let failed = |error: Box<dyn std::error::Error + Send + Sync>| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Blob, error)
    };
    match row.get_ref(index)? {
        rusqlite::types::ValueRef::Blob(bytes) => {
            let plain = lz4_flex::decompress_size_prepended(bytes).map_err(|e| failed(e.into()))?;
            String::from_utf8(plain).map_err(|e| failed(e.into()))
        }
        _ => row.get(index),
    }
}

/// `lz4_flex::compress_prepend_size`'s bytes, compressed through a buffer each thread keeps
/// for the worst case instead of a fresh zeroed one a settlement (a third of the compression's
/// time went to allocating and zeroing it); the result is allocated at its own size.
pub(crate) fn compressed(text: &str) -> Vec<u8> {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let input = text.as_bytes();
    let length = u32::try_from(input.len()).expect("a settlement's JSON is far below 4 GiB");
    let size = 4 + lz4_flex::block::get_maximum_output_size(input.len());
    SCRATCH.with_borrow_mut(|scratch| {
        if scratch.len() < size {
            scratch.resize(size, 0);
        }
        scratch[..4].copy_from_slice(&length.to_le_bytes());
        let written = lz4_flex::block::compress_into(input, &mut scratch[4..size])
            .expect("room for the worst case");
        scratch[..4 + written].to_vec()
    })
}

pub(crate) fn settlement_row(
    texts: [String; 11],
    numbers: [i64; 4],
    reverses: Option<String>,
) -> Result<SettlementRow> {
    let [
        region_text,
        person_id,
        settlement_id,
        visit_id,
        institution_id,
        date_text,
        booked_on,
        booked_at,
        result,
        treatment_region,
        visit_type,
    ] = texts;
    let visit_type = VisitType::parse(&visit_type)
        .ok_or_else(|| StoreError::Corrupt(format!("visit type `{visit_type}`")))?;
    Ok(SettlementRow {
        key: PersonKey { region: region(&region_text)?, person_id },
        settlement_id,
        visit_id,
        institution_id,
        treatment_region: region(&treatment_region)?,
        visit_type,
        reverses,
        date_of_service: date(&date_text)?,
        booked_on: date(&booked_on)?,
        booked_at,
        total: Fen(numbers[0]),
        fund_total: Fen(numbers[1]),
        personal_account: Fen(numbers[2]),
        cash: Fen(numbers[3]),
        result: Later::ready(SettlementJson::new(result)),
    })
}

pub(crate) const SETTLEMENT_COLUMNS: &str = "region, person_id, settlement_id, visit_id, \
    institution_id, date_of_service, booked_on, booked_at, result, treatment_region, visit_type, \
    total, fund_total, personal_account, cash, reverses";

type SettlementFields = ([String; 11], [i64; 4], Option<String>);

fn read_settlement(row: &Row<'_>) -> rusqlite::Result<SettlementFields> {
    Ok((
        settlement_from(row)?,
        [row.get(11)?, row.get(12)?, row.get(13)?, row.get(14)?],
        row.get(15)?,
    ))
}

fn read_visitor(row: &Row<'_>) -> Result<crate::model::VisitorSettlement> {
    let mut texts: [String; 8] = Default::default();
    for (index, text) in texts.iter_mut().enumerate() {
        *text = row.get(index)?;
    }
    let amounts = [row.get(8)?, row.get(9)?, row.get(10)?, row.get(11)?];
    visitor_from(texts, amounts, row.get(12)?, row.get(13)?)
}

impl SqliteTx<'_> {
    fn settlements_where(
        &self,
        clause: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<SettlementRow>> {
        let sql = format!("SELECT {SETTLEMENT_COLUMNS} FROM settlements WHERE {clause}");
        let mut statement = self.conn.prepare_cached(&sql)?;
        let rows =
            statement.query_map(args, read_settlement)?.collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(|(t, n, r)| settlement_row(t, n, r)).collect()
    }
}

impl SqliteTx<'_> {
    /// Writes a settlement's row: its JSON compressed (unless it was beforehand) and its
    /// journal entry (`Journal::postings_json`, `Journal::counters_json`).
    pub(crate) fn insert_settlement_row(
        &self,
        row: &SettlementRow,
        json: &SettlementJson,
        postings: &str,
        counters: &str,
    ) -> Result<()> {
        let made_here;
        let blob: &[u8] = match &json.packed {
            Some(packed) => packed,
            None => {
                made_here = compressed(&json.text);
                &made_here
            }
        };
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO settlements ({SETTLEMENT_COLUMNS}, postings, counters) VALUES (?1, \
                ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
            ))?
            .execute(params![
                row.key.region_text(),
                row.key.person_id,
                row.settlement_id,
                row.visit_id,
                row.institution_id,
                row.date_of_service.to_string(),
                row.booked_on.to_string(),
                row.booked_at,
                blob,
                row.treatment_region.to_string(),
                row.visit_type.code(),
                row.total.0,
                row.fund_total.0,
                row.personal_account.0,
                row.cash.0,
                row.reverses,
                postings,
                counters,
            ])?;
        Ok(())
    }
}

// Statements on the hot path have no ORDER BY: with one, SQLite re-prepares the statement
// whenever its bound values change (it may plan differently for them), which costs a parse on
// every settlement. Their few rows are sorted here instead.
impl Tx for SqliteTx<'_> {
    fn institution_by_token(&mut self, token_sha256: &str) -> Result<Option<Institution>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT institution_id, region, name, level, role FROM institutions WHERE token_sha256 \
            = ?1",
        )?;
        let row = statement
            .query_row(params![token_sha256], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()?;
        row.map(|(a, b, c, d, e)| institution_from(a, b, c, d, e)).transpose()
    }

    fn institution(&mut self, institution_id: &str) -> Result<Option<Institution>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT institution_id, region, name, level, role FROM institutions WHERE \
            institution_id = ?1",
        )?;
        let row = statement
            .query_row(params![institution_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()?;
        row.map(|(a, b, c, d, e)| institution_from(a, b, c, d, e)).transpose()
    }

    fn insert_institution(
        &mut self,
        row: &Institution,
        token_sha256: &str,
        now: &str,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO institutions (institution_id, region, name, level, role, \
                token_sha256, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT \
                (institution_id) DO UPDATE SET name = excluded.name, level = excluded.level, \
                token_sha256 = excluded.token_sha256",
            )?
            .execute(params![
                row.institution_id,
                row.region.to_string(),
                row.name,
                row.level.map(HospitalLevel::code),
                row.role.code(),
                token_sha256,
                now
            ])?;
        Ok(())
    }

    fn person(&mut self, key: &PersonKey, _lock: bool) -> Result<Option<PersonRow>> {
        // SQLite has one writer: every write transaction already holds the whole database.
        let mut statement = self.conn.prepare_cached(
            "SELECT name, id_number, birth_date, gender, account_balance FROM persons WHERE region \
            = ?1 AND person_id = ?2",
        )?;
        let row = statement
            .query_row(params![key.region_text(), key.person_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .optional()?;
        row.map(|(name, id_number, birth, gender, balance)| {
            Ok(PersonRow {
                key: key.clone(),
                name,
                id_number,
                birth_date: date(&birth)?,
                gender,
                account_balance: Fen(balance),
            })
        })
        .transpose()
    }

    fn persons_by_id_number(
        &mut self,
        region_text: &str,
        id_number: &str,
    ) -> Result<Vec<PersonKey>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT person_id FROM persons WHERE region = ?1 AND id_number = ?2 ORDER BY person_id \
            LIMIT 2",
        )?;
        let region = region(region_text)?;
        let ids = statement.query_map(params![region_text, id_number], |r| r.get(0))?;
        ids.map(|id| Ok(PersonKey { region, person_id: id? })).collect()
    }

    fn upsert_person(&mut self, row: &PersonRow) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO persons (region, person_id, name, id_number, birth_date, gender, \
                account_balance, next_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1) ON CONFLICT \
                (region, person_id) DO UPDATE SET name = excluded.name, id_number = \
                excluded.id_number, birth_date = excluded.birth_date, gender = excluded.gender, \
                account_balance = persons.account_balance",
            )?
            .execute(params![
                row.key.region_text(),
                row.key.person_id,
                row.name,
                row.id_number,
                row.birth_date.to_string(),
                row.gender,
                row.account_balance.0
            ])?;
        Ok(())
    }

    fn next_seq(&mut self, key: &PersonKey) -> Result<i64> {
        let seq: i64 = self
            .conn
            .prepare_cached(
                "UPDATE persons SET next_seq = next_seq + 1 WHERE region = ?1 AND person_id = ?2 \
                RETURNING next_seq - 1",
            )?
            .query_row(params![key.region_text(), key.person_id], |r| r.get(0))?;
        Ok(seq)
    }

    fn next_seq_with_balance(&mut self, key: &PersonKey, balance: Fen) -> Result<i64> {
        assert!(balance >= Fen::ZERO, "an account balance never goes negative");
        let seq: i64 = self
            .conn
            .prepare_cached(
                "UPDATE persons SET next_seq = next_seq + 1, account_balance = ?3 WHERE region = \
                ?1 AND person_id = ?2 RETURNING next_seq - 1",
            )?
            .query_row(params![key.region_text(), key.person_id, balance.0], |r| r.get(0))?;
        Ok(seq)
    }

    fn enrolment(&mut self, key: &PersonKey, year: i16) -> Result<Option<Enrolment>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT category, civil_servant, enterprise_supplementary, needy FROM enrolments WHERE \
            region = ?1 AND person_id = ?2 AND year = ?3",
        )?;
        let row = statement
            .query_row(params![key.region_text(), key.person_id, year], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .optional()?;
        row.map(|(category, civil, enterprise, needy)| {
            Ok(Enrolment {
                year,
                category: Category::parse(&category)
                    .ok_or_else(|| corrupt("category", &category))?,
                civil_servant: civil != 0,
                enterprise_supplementary: enterprise != 0,
                needy: needy != 0,
            })
        })
        .transpose()
    }

    fn upsert_enrolment(&mut self, key: &PersonKey, e: &Enrolment) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO enrolments (region, person_id, year, category, civil_servant, \
                enterprise_supplementary, needy) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT \
                (region, person_id, year) DO UPDATE SET category = excluded.category, \
                civil_servant = excluded.civil_servant, enterprise_supplementary = \
                excluded.enterprise_supplementary, needy = excluded.needy",
            )?
            .execute(params![
                key.region_text(),
                key.person_id,
                e.year,
                e.category.code(),
                i64::from(e.civil_servant),
                i64::from(e.enterprise_supplementary),
                i64::from(e.needy)
            ])?;
        Ok(())
    }

    fn assistance(&mut self, key: &PersonKey) -> Result<Vec<AssistanceEntry>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT category, effective_from, effective_to, entry_id FROM assistance \
            WHERE region = ?1 AND person_id = ?2",
        )?;
        let rows = statement
            .query_map(params![key.region_text(), key.person_id], |r| {
                let category = r.get::<_, String>(0)?;
                Ok((category, r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?, r.get(3)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(category, from, to, entry_id)| {
                Ok(AssistanceEntry {
                    entry_id,
                    category: AssistanceCategory::parse(&category)
                        .ok_or_else(|| corrupt("assistance", &category))?,
                    effective_from: date(&from)?,
                    effective_to: to.as_deref().map(date).transpose()?,
                })
            })
            .collect()
    }

    fn insert_assistance(&mut self, row: &NewAssistance<'_>) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO assistance (region, person_id, entry_id, category, effective_from, \
                effective_to, import_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                row.key.region_text(),
                row.key.person_id,
                row.entry_id,
                row.entry.category.code(),
                row.entry.effective_from.to_string(),
                row.entry.effective_to.map(|d| d.to_string()),
                row.import_id
            ])?;
        Ok(())
    }

    fn insert_account_credit(
        &mut self,
        key: &PersonKey,
        credit: &crate::tx::AccountCredit,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO account_credits (region, person_id, credit_id, period, amount, \
                balance_after, note, actor, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                key.region_text(),
                key.person_id,
                credit.credit_id,
                credit.period,
                credit.amount.0,
                credit.balance_after.0,
                credit.note,
                credit.actor,
                credit.at
            ])?;
        Ok(())
    }

    fn account_credits(
        &mut self,
        key: &PersonKey,
        prefix: &str,
    ) -> Result<Vec<crate::tx::AccountCredit>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT credit_id, period, amount, balance_after, note, actor, at FROM \
            account_credits WHERE region = ?1 AND person_id = ?2 AND substr(period, 1, \
            length(?3)) = ?3 ORDER BY at, length(credit_id), credit_id",
        )?;
        let rows = statement.query_map(params![key.region_text(), key.person_id, prefix], |r| {
            Ok(crate::tx::AccountCredit {
                credit_id: r.get(0)?,
                period: r.get(1)?,
                amount: Fen(r.get(2)?),
                balance_after: Fen(r.get(3)?),
                note: r.get(4)?,
                actor: r.get(5)?,
                at: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn last_assistance_import(&mut self, region_text: &str) -> Result<Option<String>> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT max(import_id) FROM assistance_imports WHERE region = ?1")?;
        Ok(statement.query_row(params![region_text], |r| r.get(0))?)
    }

    fn insert_assistance_import(
        &mut self,
        import_id: &str,
        region_text: &str,
        file_name: &str,
        rows: usize,
        by: &str,
        now: &str,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO assistance_imports (import_id, region, file_name, rows_count, \
                imported_by, imported_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![import_id, region_text, file_name, rows as i64, by, now])?;
        Ok(())
    }

    fn accumulators(&mut self, key: &PersonKey, year: i16) -> Result<Accumulators> {
        let mut statement = self.conn.prepare_cached(
            "SELECT tier, pool, counter, value FROM accumulators WHERE region = ?1 AND person_id = \
            ?2 AND year = ?3",
        )?;
        let rows = statement
            .query_map(params![key.region_text(), key.person_id, year], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut accumulators = Accumulators::new(year);
        for (tier, pool, counter, value) in rows {
            add_counter(&mut accumulators, &tier, &pool, &counter, value)?;
        }
        Ok(accumulators)
    }

    fn add_to_accumulators(&mut self, key: &PersonKey, journal: &Journal<'_>) -> Result<()> {
        let (region_text, person_id) = (&key.region_text(), &key.person_id);
        let year = i64::from(journal.year);
        for chunk in journal.counters().chunks(ROWS_PER_STATEMENT) {
            let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(chunk.len() * 4 + 3);
            values.extend([region_text as &dyn rusqlite::ToSql, person_id, &year]);
            for (tier, pool, counter, delta) in chunk {
                values.extend([tier as &dyn rusqlite::ToSql, pool, counter, delta]);
            }
            // The counters of one entry are distinct: no row is updated twice in one statement.
            let totals = multi_row_insert(
                Dialect::Sqlite,
                "INSERT INTO accumulators (region, person_id, year, tier, pool, counter, value)",
                &[Shared(1), Shared(2), Shared(3), Each(0), Each(1), Each(2), Each(3)],
                chunk.len(),
                " ON CONFLICT (region, person_id, year, tier, pool, counter) \
                DO UPDATE SET value = value + excluded.value",
            );
            self.conn.prepare_cached(&totals)?.execute(values.as_slice())?;
        }
        Ok(())
    }

    fn visit(&mut self, key: &PersonKey, visit_id: &str) -> Result<Option<VisitRow>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT institution_id, visit_type, date_of_service, admission_number, status, \
            opened_at, discharged_at, treatment_region, disease FROM visits WHERE region = ?1 \
            AND person_id = ?2 AND visit_id = ?3",
        )?;
        let row = statement
            .query_row(params![key.region_text(), key.person_id, visit_id], |r| {
                Ok((
                    (r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?),
                    r.get::<_, Option<i64>>(3)?,
                    (r.get::<_, String>(4)?, r.get::<_, String>(7)?),
                    r.get::<_, String>(5)?,
                    (r.get::<_, Option<String>>(6)?, r.get::<_, Option<String>>(8)?),
                ))
            })
            .optional()?;
        row.map(
            |(
                (institution_id, visit_type, day),
                admission,
                (status, treatment),
                opened_at,
                (discharged_at, disease),
            )| {
                Ok(VisitRow {
                    key: key.clone(),
                    visit_id: visit_id.to_owned(),
                    institution_id,
                    treatment_region: region(&treatment)?,
                    visit_type: VisitType::parse(&visit_type)
                        .ok_or_else(|| corrupt("visit", &visit_type))?,
                    date_of_service: date(&day)?,
                    admission_number: admission.and_then(|n| u16::try_from(n).ok()),
                    status: VisitStatus::parse(&status)
                        .ok_or_else(|| corrupt("status", &status))?,
                    opened_at,
                    discharged_at,
                    disease,
                })
            },
        )
        .transpose()
    }

    fn insert_visit(&mut self, row: &VisitRow) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO visits (region, person_id, visit_id, institution_id, visit_type, \
                date_of_service, admission_number, status, opened_at, treatment_region, disease) \
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                row.key.region_text(),
                row.key.person_id,
                row.visit_id,
                row.institution_id,
                row.visit_type.code(),
                row.date_of_service.to_string(),
                row.admission_number,
                row.status.code(),
                row.opened_at,
                row.treatment_region.to_string(),
                row.disease
            ])?;
        Ok(())
    }

    fn set_visit_settled(
        &mut self,
        key: &PersonKey,
        visit_id: &str,
        admission_number: Option<u16>,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE visits SET status = ?4, admission_number = coalesce(admission_number, ?5) \
                WHERE region = ?1 AND person_id = ?2 AND visit_id = ?3",
            )?
            .execute(params![
                key.region_text(),
                key.person_id,
                visit_id,
                VisitStatus::Settled.code(),
                admission_number
            ])?;
        Ok(())
    }

    fn set_visit_status(
        &mut self,
        key: &PersonKey,
        visit_id: &str,
        status: VisitStatus,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE visits SET status = ?4 WHERE region = ?1 AND person_id = ?2 AND visit_id = \
                ?3",
            )?
            .execute(params![key.region_text(), key.person_id, visit_id, status.code()])?;
        Ok(())
    }

    fn lines(&mut self, key: &PersonKey, visit_id: &str) -> Result<Vec<(i64, Line)>> {
        // Settle's path (on the writer): without the origin columns, and the class read in
        // place instead of into a string of its own.
        let mut statement = self.conn.prepare_cached(
            "SELECT line_no, code, name, class, quantity, unit_price, amount, price_limit \
            FROM fee_lines WHERE region = ?1 AND person_id = ?2 AND visit_id = ?3",
        )?;
        let mut rows = statement.query(params![key.region_text(), key.person_id, visit_id])?;
        let mut lines = Vec::new();
        while let Some(r) = rows.next()? {
            let class = r.get_ref(3)?.as_str().map_err(rusqlite::Error::from)?;
            let line = Line {
                code: r.get(1)?,
                name: r.get(2)?,
                class: CatalogClass::parse(class).ok_or_else(|| corrupt("class", class))?,
                quantity: Quantity(r.get(4)?),
                unit_price: UnitPrice(r.get(5)?),
                amount: Fen(r.get(6)?),
                price_limit: r.get::<_, Option<i64>>(7)?.map(UnitPrice),
            };
            lines.push((r.get::<_, i64>(0)?, line));
        }
        lines.sort_by_key(|row| row.0);
        Ok(lines)
    }

    fn lines_with_origin(
        &mut self,
        key: &PersonKey,
        visit_id: &str,
    ) -> Result<Vec<(i64, Line, LineOrigin)>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT line_no, code, name, class, quantity, unit_price, amount, price_limit, \
            serial, batch FROM fee_lines WHERE region = ?1 AND person_id = ?2 AND visit_id = ?3",
        )?;
        let rows = statement
            .query_map(params![key.region_text(), key.person_id, visit_id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    (r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?),
                    [r.get::<_, i64>(4)?, r.get::<_, i64>(5)?, r.get::<_, i64>(6)?],
                    r.get::<_, Option<i64>>(7)?,
                    LineOrigin { serial: r.get(8)?, batch: r.get(9)? },
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut rows = rows;
        rows.sort_by_key(|row| row.0);
        rows.into_iter()
            .map(|(no, (code, name, class), values, limit, origin)| {
                Ok((no, line_from(code, name, class, values, limit)?, origin))
            })
            .collect()
    }

    fn insert_line(
        &mut self,
        key: &PersonKey,
        visit_id: &str,
        line_no: i64,
        line: &Line,
        origin: &LineOrigin,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO fee_lines (region, person_id, visit_id, line_no, code, name, class, \
                quantity, unit_price, amount, price_limit, serial, batch) VALUES (?1, ?2, ?3, ?4, \
                ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?
            .execute(params![
                key.region_text(),
                key.person_id,
                visit_id,
                line_no,
                line.code,
                line.name,
                line.class.code(),
                line.quantity.0,
                line.unit_price.0,
                line.amount.0,
                line.price_limit.map(|p| p.0),
                origin.serial,
                origin.batch
            ])?;
        Ok(())
    }

    fn delete_lines_of_batch(
        &mut self,
        key: &PersonKey,
        visit_id: &str,
        batch: Option<&str>,
    ) -> Result<u64> {
        let count = self
            .conn
            .prepare_cached(
                "DELETE FROM fee_lines WHERE region = ?1 AND person_id = ?2 AND visit_id = ?3 AND \
                (?4 IS NULL OR batch = ?4)",
            )?
            .execute(params![key.region_text(), key.person_id, visit_id, batch])?;
        Ok(count as u64)
    }

    fn set_visit_type(&mut self, key: &PersonKey, visit_id: &str, visit: VisitType) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE visits SET visit_type = ?4 WHERE region = ?1 AND person_id = ?2 AND \
                visit_id = ?3",
            )?
            .execute(params![key.region_text(), key.person_id, visit_id, visit.code()])?;
        Ok(())
    }

    fn set_visit_disease(
        &mut self,
        key: &PersonKey,
        visit_id: &str,
        disease: Option<&str>,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE visits SET disease = ?4 WHERE region = ?1 AND person_id = ?2 AND \
                visit_id = ?3",
            )?
            .execute(params![key.region_text(), key.person_id, visit_id, disease])?;
        Ok(())
    }

    fn set_discharged(&mut self, key: &PersonKey, visit_id: &str, at: Option<&str>) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE visits SET discharged_at = ?4 WHERE region = ?1 AND person_id = ?2 AND \
                visit_id = ?3",
            )?
            .execute(params![key.region_text(), key.person_id, visit_id, at])?;
        Ok(())
    }

    fn delete_line(&mut self, key: &PersonKey, visit_id: &str, line_no: i64) -> Result<bool> {
        let count = self
            .conn
            .prepare_cached(
                "DELETE FROM fee_lines WHERE region = ?1 AND person_id = ?2 AND visit_id = ?3 AND \
                line_no = ?4",
            )?
            .execute(params![key.region_text(), key.person_id, visit_id, line_no])?;
        Ok(count > 0)
    }

    fn settlement(
        &mut self,
        key: &PersonKey,
        settlement_id: &str,
    ) -> Result<Option<SettlementRow>> {
        let rows = self.settlements_where(
            "region = ?1 AND person_id = ?2 AND settlement_id = ?3",
            &[&key.region_text(), &key.person_id, &settlement_id],
        )?;
        Ok(rows.into_iter().next())
    }

    fn reversal_of(
        &mut self,
        key: &PersonKey,
        settlement_id: &str,
    ) -> Result<Option<SettlementRow>> {
        let rows = self.settlements_where(
            "region = ?1 AND person_id = ?2 AND reverses = ?3",
            &[&key.region_text(), &key.person_id, &settlement_id],
        )?;
        Ok(rows.into_iter().next())
    }

    fn insert_settlement(&mut self, row: &SettlementRow, journal: &Journal<'_>) -> Result<()> {
        assert_eq!(journal.year, row.date_of_service.year(), "counters of the year of service");
        let json = row.result.get()?;
        self.insert_settlement_row(row, json, &journal.postings_json(), &journal.counters_json())
    }

    fn visit_settlement(&mut self, key: &PersonKey, visit_id: &str) -> Result<Option<String>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT s.settlement_id FROM settlements s WHERE s.region = ?1 AND s.person_id = ?2 \
             AND s.visit_id = ?3 AND s.reverses IS NULL AND NOT EXISTS (SELECT 1 FROM \
             settlements r WHERE r.region = s.region AND r.person_id = s.person_id AND \
             r.reverses = s.settlement_id)",
        )?;
        let found = statement
            .query_row(params![key.region_text(), key.person_id, visit_id], |r| r.get(0))
            .optional()?;
        Ok(found)
    }

    fn postings(&mut self, key: &PersonKey, settlement_id: &str) -> Result<Vec<Posting>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT postings FROM settlements WHERE region = ?1 AND person_id = ?2 AND \
            settlement_id = ?3",
        )?;
        let json: Option<String> = statement
            .query_row(params![key.region_text(), key.person_id, settlement_id], |r| r.get(0))
            .optional()?;
        json.map_or(Ok(Vec::new()), |json| postings_from_json(settlement_id, &json))
    }

    fn idempotency(
        &mut self,
        key: &PersonKey,
        institution_id: &str,
        idempotency_key: &str,
    ) -> Result<Option<StoredResponse>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT request_sha256, status, response FROM idempotency WHERE region = ?1 AND \
            person_id = ?2 AND institution_id = ?3 AND idempotency_key = ?4",
        )?;
        let row = statement
            .query_row(
                params![key.region_text(), key.person_id, institution_id, idempotency_key],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?)),
            )
            .optional()?;
        Ok(row.map(|(request_sha256, status, body)| StoredResponse {
            request_sha256,
            status: u16::try_from(status).unwrap_or(500),
            body: Later::ready(body),
        }))
    }

    fn idempotency_answers(
        &mut self,
        key: &PersonKey,
        institution_id: &str,
        prefix: &str,
    ) -> Result<Vec<(String, String)>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT idempotency_key, response FROM idempotency WHERE region = ?1 AND \
            person_id = ?2 AND institution_id = ?3 AND status = 200 AND \
            substr(idempotency_key, 1, length(?4)) = ?4",
        )?;
        let rows = statement
            .query_map(params![key.region_text(), key.person_id, institution_id, prefix], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
        Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
    }

    fn insert_idempotency(
        &mut self,
        key: &PersonKey,
        institution_id: &str,
        idempotency_key: &str,
        response: &StoredResponse,
        now: &str,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO idempotency (region, person_id, institution_id, idempotency_key, \
                request_sha256, status, response, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, \
                ?8)",
            )?
            .execute(params![
                key.region_text(),
                key.person_id,
                institution_id,
                idempotency_key,
                response.request_sha256,
                i64::from(response.status),
                response.body.get()?,
                now
            ])?;
        Ok(())
    }

    fn insert_audit(&mut self, row: &crate::audit::AuditRow) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO audit_log (region, person_id, audit_id, at, actor, action, detail, \
                channel) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                row.region,
                row.person_id,
                row.audit_id,
                row.at,
                row.actor,
                row.action,
                row.detail,
                row.channel
            ])?;
        Ok(())
    }

    fn audit_rows(
        &mut self,
        query: &crate::audit::AuditQuery,
    ) -> Result<Vec<crate::audit::AuditRow>> {
        let (sql, args) = query.select(|n| format!("?{n}"));
        let mut values: Vec<rusqlite::types::Value> =
            args.into_iter().map(|a| rusqlite::types::Value::Text(a.to_owned())).collect();
        values.push(rusqlite::types::Value::Integer(i64::from(query.limit)));
        let mut statement = self.conn.prepare_cached(&sql)?;
        let rows = statement.query_map(rusqlite::params_from_iter(values), |row| {
            Ok(crate::audit::AuditRow {
                region: row.get(0)?,
                person_id: row.get(1)?,
                audit_id: row.get(2)?,
                at: row.get(3)?,
                actor: row.get(4)?,
                action: row.get(5)?,
                detail: row.get(6)?,
                channel: row.get(7)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn settlements_booked(
        &mut self,
        institution_id: &str,
        day: Date,
    ) -> Result<Vec<SettlementRow>> {
        self.settlements_where(
            "institution_id = ?1 AND booked_on = ?2",
            &[&institution_id, &day.to_string()],
        )
    }

    fn booked_between(
        &mut self,
        from: Date,
        until: Date,
        each: &mut dyn FnMut(onestop_clearing::Entry),
    ) -> Result<()> {
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT {CLEARING_COLUMNS} FROM settlements WHERE booked_on >= ?1 AND booked_on < ?2"
        ))?;
        let mut rows = statement.query(params![from.to_string(), until.to_string()])?;
        while let Some(row) = rows.next()? {
            let texts: [String; 4] = [row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?];
            let reversal = row.get::<_, i64>(4)? != 0;
            let amounts = [row.get(5)?, row.get(6)?, row.get(7)?, row.get(8)?];
            each(clearing_entry(&texts, reversal, amounts)?);
        }
        Ok(())
    }

    fn prepayment(&mut self, region: Region, month: &str) -> Result<Option<Fen>> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT balance FROM prepayments WHERE region = ?1 AND month = ?2")?;
        let balance = statement
            .query_row(params![region.to_string(), month], |r| r.get::<_, i64>(0))
            .optional()?;
        Ok(balance.map(Fen))
    }

    fn set_prepayment(
        &mut self,
        region: Region,
        month: &str,
        balance: Fen,
        by: &str,
        at: &str,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO prepayments (region, month, balance, set_by, set_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (region, month) DO UPDATE SET \
                 balance = excluded.balance, set_by = excluded.set_by, set_at = excluded.set_at",
            )?
            .execute(params![region.to_string(), month, balance.0, by, at])?;
        Ok(())
    }

    fn visitors_between(
        &mut self,
        from: Date,
        until: Date,
        each: &mut dyn FnMut(onestop_clearing::Entry),
    ) -> Result<()> {
        let sql = format!(
            "SELECT {VISITOR_COLUMNS} FROM visitor_settlements WHERE booked_on >= ?1 \
             AND booked_on < ?2"
        );
        let mut statement = self.conn.prepare_cached(&sql)?;
        let mut rows = statement.query(params![from.to_string(), until.to_string()])?;
        while let Some(row) = rows.next()? {
            each(read_visitor(row)?.entry());
        }
        Ok(())
    }

    fn insert_visitor_settlement(&mut self, row: &crate::model::VisitorSettlement) -> Result<bool> {
        let sql = format!(
            "INSERT INTO visitor_settlements ({VISITOR_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, \
             ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) ON CONFLICT (settlement_id) DO NOTHING"
        );
        let t = visitor_texts(row);
        let inserted = self.conn.prepare_cached(&sql)?.execute(params![
            t[0],
            t[1],
            t[2],
            t[3],
            t[4],
            t[5],
            t[6],
            t[7],
            row.total.0,
            row.fund_total.0,
            row.personal_account.0,
            row.cash.0,
            row.reverses,
            row.scheme.map(onestop_core::Scheme::code)
        ])?;
        Ok(inserted == 1)
    }

    fn visitor_settlements_booked(
        &mut self,
        institution_id: &str,
        day: Date,
    ) -> Result<Vec<crate::model::VisitorSettlement>> {
        let sql = format!(
            "SELECT {VISITOR_COLUMNS} FROM visitor_settlements WHERE institution_id = ?1 \
             AND booked_on = ?2 ORDER BY settlement_id"
        );
        let mut statement = self.conn.prepare_cached(&sql)?;
        let mut rows = statement.query(params![institution_id, day.to_string()])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(read_visitor(row)?);
        }
        Ok(out)
    }

    fn insert_pending_forward(&mut self, p: &crate::model::PendingForward) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO pending_forwards (institution_id, visit_id, idempotency_key, \
                 forwarded_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            )?
            .execute(params![p.institution_id, p.visit_id, p.idempotency_key, p.forwarded_at])?;
        Ok(())
    }

    fn pending_forwards(&mut self) -> Result<Vec<crate::model::PendingForward>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT institution_id, visit_id, idempotency_key, forwarded_at FROM \
             pending_forwards ORDER BY forwarded_at LIMIT 1000",
        )?;
        let rows = statement.query_map([], |r| {
            Ok(crate::model::PendingForward {
                institution_id: r.get(0)?,
                visit_id: r.get(1)?,
                idempotency_key: r.get(2)?,
                forwarded_at: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn delete_pending_forwards(&mut self, institution_id: &str, visit_id: &str) -> Result<()> {
        self.conn
            .prepare_cached(
                "DELETE FROM pending_forwards WHERE institution_id = ?1 AND visit_id = ?2",
            )?
            .execute(params![institution_id, visit_id])?;
        Ok(())
    }

    fn insert_window(&mut self, w: &crate::model::MaintenanceWindow) -> Result<()> {
        let sql = format!(
            "INSERT INTO maintenance_windows ({WINDOW_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, \
             ?7, ?8)"
        );
        self.conn.prepare_cached(&sql)?.execute(params![
            w.window_id,
            w.region.to_string(),
            time_text(w.starts_at),
            time_text(w.ends_at),
            w.reason,
            w.created_by,
            w.created_at,
            w.cancelled_at
        ])?;
        Ok(())
    }

    fn windows(&mut self) -> Result<Vec<crate::model::MaintenanceWindow>> {
        let sql = format!(
            "SELECT {WINDOW_COLUMNS} FROM maintenance_windows WHERE cancelled_at IS NULL \
             ORDER BY starts_at, window_id"
        );
        let mut statement = self.conn.prepare_cached(&sql)?;
        let mut rows = statement.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let texts = [
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
                row.get(6)?,
            ];
            out.push(window_from(texts, row.get(7)?)?);
        }
        Ok(out)
    }

    fn cancel_window(&mut self, window_id: &str, at: &str) -> Result<bool> {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE maintenance_windows SET cancelled_at = ?2 WHERE window_id = ?1 \
                 AND cancelled_at IS NULL",
            )?
            .execute(params![window_id, at])?;
        Ok(changed == 1)
    }

    fn insert_filing(&mut self, f: &crate::model::Filing) -> Result<()> {
        let sql = format!(
            "INSERT INTO filings (region, person_id, {FILING_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        );
        self.conn.prepare_cached(&sql)?.execute(params![
            f.key.region_text(),
            f.key.person_id,
            f.filing_id,
            f.kind.code(),
            f.destination.to_string(),
            f.start.to_string(),
            f.status.code(),
            f.filed_on.to_string(),
            f.end.map(|d| d.to_string()),
            i64::from(f.commitment),
            f.filed_at
        ])?;
        Ok(())
    }

    fn filings(&mut self, key: &PersonKey) -> Result<Vec<crate::model::Filing>> {
        let sql =
            format!("SELECT {FILING_COLUMNS} FROM filings WHERE region = ?1 AND person_id = ?2");
        let mut statement = self.conn.prepare_cached(&sql)?;
        let rows = statement
            .query_map(params![key.region_text(), key.person_id], |r| {
                let texts = [r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?];
                Ok((texts, r.get(6)?, r.get::<_, i64>(7)? != 0, r.get(8)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut filings: Vec<crate::model::Filing> = rows
            .into_iter()
            .map(|(t, end, c, at)| filing_from(key, t, end, c, at))
            .collect::<Result<_>>()?;
        filings.sort_by(|a, b| a.filing_id.cmp(&b.filing_id));
        Ok(filings)
    }

    fn set_filing_status(
        &mut self,
        key: &PersonKey,
        filing_id: &str,
        status: crate::model::FilingStatus,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE filings SET status = ?4 WHERE region = ?1 AND person_id = ?2 AND \
                 filing_id = ?3",
            )?
            .execute(params![key.region_text(), key.person_id, filing_id, status.code()])?;
        Ok(())
    }

    fn nhsa_message(&mut self, institution_id: &str, msgid: &str) -> Result<Option<NhsaMessage>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT infno, request_sha256, response, at FROM nhsa_messages \
            WHERE institution_id = ?1 AND msgid = ?2",
        )?;
        let row = statement
            .query_row(params![institution_id, msgid], |r| {
                Ok(NhsaMessage {
                    institution_id: institution_id.to_owned(),
                    msgid: msgid.to_owned(),
                    infno: r.get(0)?,
                    request_sha256: r.get(1)?,
                    response: r.get(2)?,
                    at: r.get(3)?,
                })
            })
            .optional()?;
        Ok(row)
    }

    fn insert_nhsa_message(&mut self, m: &NhsaMessage) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO nhsa_messages (institution_id, msgid, infno, request_sha256, \
                response, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                m.institution_id,
                m.msgid,
                m.infno,
                m.request_sha256,
                m.response,
                m.at
            ])?;
        Ok(())
    }

    fn nhsa_sign_in(
        &mut self,
        institution_id: &str,
        sign_no: &str,
        opter: &str,
        now: &str,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO nhsa_sessions (institution_id, sign_no, opter, signed_in_at) \
                VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![institution_id, sign_no, opter, now])?;
        Ok(())
    }

    fn nhsa_session_open(&mut self, institution_id: &str, sign_no: &str) -> Result<bool> {
        let mut statement = self.conn.prepare_cached(
            "SELECT 1 FROM nhsa_sessions WHERE institution_id = ?1 AND sign_no = ?2 \
            AND signed_out_at IS NULL",
        )?;
        Ok(statement.query_row(params![institution_id, sign_no], |_| Ok(())).optional()?.is_some())
    }

    fn nhsa_sign_out(&mut self, institution_id: &str, sign_no: &str, now: &str) -> Result<bool> {
        let count = self
            .conn
            .prepare_cached(
                "UPDATE nhsa_sessions SET signed_out_at = ?3 WHERE institution_id = ?1 \
                AND sign_no = ?2 AND signed_out_at IS NULL",
            )?
            .execute(params![institution_id, sign_no, now])?;
        Ok(count > 0)
    }

    fn nhsa_keys(&mut self, institution_id: &str) -> Result<Option<NhsaKeys>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT encrypted, sm4_key, sm2_public_key FROM nhsa_keys WHERE institution_id = ?1",
        )?;
        let row = statement
            .query_row(params![institution_id], |r| {
                Ok(NhsaKeys {
                    encrypted: r.get::<_, i64>(0)? != 0,
                    sm4_key: r.get(1)?,
                    sm2_public_key: r.get(2)?,
                })
            })
            .optional()?;
        Ok(row)
    }

    fn set_nhsa_keys(&mut self, institution_id: &str, keys: &NhsaKeys) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO nhsa_keys (institution_id, encrypted, sm4_key, sm2_public_key) \
                VALUES (?1, ?2, ?3, ?4) ON CONFLICT (institution_id) DO UPDATE SET \
                encrypted = excluded.encrypted, sm4_key = excluded.sm4_key, \
                sm2_public_key = excluded.sm2_public_key",
            )?
            .execute(params![
                institution_id,
                i64::from(keys.encrypted),
                keys.sm4_key,
                keys.sm2_public_key
            ])?;
        Ok(())
    }

    fn query_strings(&mut self, sql: &str) -> Result<Vec<String>> {
        let mut statement = self.conn.prepare(sql)?;
        let rows = statement.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn postings_booked(
        &mut self,
        institution_id: &str,
        day: Date,
    ) -> Result<Vec<(String, Posting)>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT settlement_id, postings FROM settlements WHERE institution_id = ?1 AND \
            booked_on = ?2",
        )?;
        let mut rows = statement
            .query_map(params![institution_id, day.to_string()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.sort_unstable();
        let mut postings = Vec::new();
        for (id, json) in rows {
            for posting in postings_from_json(&id, &json)? {
                postings.push((id.clone(), posting));
            }
        }
        Ok(postings)
    }
}

/// Reads a filing row (shared with the PostgreSQL store).
pub(crate) fn filing_from(
    key: &PersonKey,
    texts: [String; 6],
    end: Option<String>,
    commitment: bool,
    filed_at: String,
) -> Result<crate::model::Filing> {
    let [filing_id, kind, destination, start, status, filed_on] = texts;
    Ok(crate::model::Filing {
        key: key.clone(),
        filing_id,
        kind: onestop_core::FilingKind::parse(&kind)
            .ok_or_else(|| corrupt("filing kind", &kind))?,
        destination: region(&destination)?,
        start: date(&start)?,
        end: end.as_deref().map(date).transpose()?,
        commitment,
        status: crate::model::FilingStatus::parse(&status)
            .ok_or_else(|| corrupt("status", &status))?,
        filed_on: date(&filed_on)?,
        filed_at,
    })
}

pub(crate) const CLEARING_COLUMNS: &str = "region, treatment_region, visit_type, booked_on, \
    reverses IS NOT NULL, total, fund_total, personal_account, cash";

/// A clearing entry from the columns of `CLEARING_COLUMNS`.
pub(crate) fn clearing_entry(
    texts: &[String; 4],
    reversal: bool,
    amounts: [i64; 4],
) -> Result<onestop_clearing::Entry> {
    let visit = VisitType::parse(&texts[2])
        .ok_or_else(|| StoreError::Corrupt(format!("visit type `{}`", texts[2])))?;
    Ok(onestop_clearing::Entry {
        insured: region(&texts[0])?,
        treatment: region(&texts[1])?,
        visit,
        booked_on: date(&texts[3])?,
        reversal,
        medical_cost: Fen(amounts[0]),
        fund: Fen(amounts[1]),
        personal_account: Fen(amounts[2]),
        cash: Fen(amounts[3]),
    })
}

pub(crate) const VISITOR_COLUMNS: &str = "settlement_id, institution_id, insured_region, \
    treatment_region, visit_type, booked_on, tiers, recorded_at, total, fund_total, \
    personal_account, cash, reverses, scheme";

pub(crate) fn visitor_from(
    texts: [String; 8],
    amounts: [i64; 4],
    reverses: Option<String>,
    scheme: Option<String>,
) -> Result<crate::model::VisitorSettlement> {
    let scheme = match scheme {
        Some(code) => Some(
            onestop_core::Scheme::parse(&code)
                .ok_or_else(|| StoreError::Corrupt(format!("visitor scheme `{code}`")))?,
        ),
        None => None,
    };
    let [settlement_id, institution_id, insured, treatment, visit, booked_on, tiers, recorded_at] =
        texts;
    let tiers: std::collections::BTreeMap<String, i64> = serde_json::from_str(&tiers)
        .map_err(|e| StoreError::Corrupt(format!("visitor tiers `{tiers}`: {e}")))?;
    Ok(crate::model::VisitorSettlement {
        settlement_id,
        institution_id,
        insured: region(&insured)?,
        treatment: region(&treatment)?,
        visit_type: VisitType::parse(&visit)
            .ok_or_else(|| StoreError::Corrupt(format!("visit type `{visit}`")))?,
        reverses,
        booked_on: date(&booked_on)?,
        total: Fen(amounts[0]),
        fund_total: Fen(amounts[1]),
        personal_account: Fen(amounts[2]),
        cash: Fen(amounts[3]),
        tiers: tiers.into_iter().map(|(k, v)| (k, Fen(v))).collect(),
        scheme,
        recorded_at,
    })
}

/// The visitor row's text columns, in the order of `VISITOR_COLUMNS`.
pub(crate) fn visitor_texts(row: &crate::model::VisitorSettlement) -> [String; 8] {
    let tiers: std::collections::BTreeMap<&str, i64> =
        row.tiers.iter().map(|(k, v)| (k.as_str(), v.0)).collect();
    [
        row.settlement_id.clone(),
        row.institution_id.clone(),
        row.insured.to_string(),
        row.treatment.to_string(),
        row.visit_type.code().to_owned(),
        row.booked_on.to_string(),
        serde_json::to_string(&tiers).unwrap_or_default(),
        row.recorded_at.clone(),
    ]
}

pub(crate) const WINDOW_COLUMNS: &str =
    "window_id, region, starts_at, ends_at, reason, created_by, created_at, cancelled_at";

pub(crate) fn window_from(
    texts: [String; 7],
    cancelled_at: Option<String>,
) -> Result<crate::model::MaintenanceWindow> {
    let [window_id, region_text, starts_at, ends_at, reason, created_by, created_at] = texts;
    let time = |text: &str| {
        text.parse::<jiff::Timestamp>()
            .map_err(|e| StoreError::Corrupt(format!("time `{text}`: {e}")))
    };
    Ok(crate::model::MaintenanceWindow {
        window_id,
        region: region(&region_text)?,
        starts_at: time(&starts_at)?,
        ends_at: time(&ends_at)?,
        reason,
        created_by,
        created_at,
        cancelled_at,
    })
}

/// A timestamp as stored: RFC 3339 at UTC+8.
pub(crate) fn time_text(at: jiff::Timestamp) -> String {
    let tz = jiff::tz::TimeZone::fixed(jiff::tz::Offset::constant(8));
    at.to_zoned(tz).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

pub(crate) const FILING_COLUMNS: &str =
    "filing_id, kind, destination, start_date, status, filed_on, end_date, commitment, filed_at";

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::{compressed, result_text};

    fn read_back(value: rusqlite::types::Value) -> rusqlite::Result<String> {
        let conn = Connection::open_in_memory()?;
        conn.query_row("SELECT ?1", [value], |row| result_text(row, 0))
    }

    #[test]
    fn a_stored_result_reads_back_compressed_or_plain() {
        let json = r#"{"tiers":[{"tier":"basic","amount":"6786.00"}]}"#;
        let blob = rusqlite::types::Value::Blob(compressed(json));
        assert_eq!(read_back(blob).expect("compressed"), json);
        let text = rusqlite::types::Value::Text(json.to_owned());
        assert_eq!(read_back(text).expect("plain"), json);
    }

    #[test]
    fn compressed_through_the_kept_buffer_as_lz4_flex_would_alone() {
        // Large, then smaller (the buffer is longer than needed), then empty, then larger.
        let large: String =
            (0..3_000).map(|i| format!("{{\"line\":{i},\"amount\":\"{i}.00\"}}")).collect();
        for text in [&large[..], &large[..5_000], "", "{}", &large.repeat(2)] {
            let packed = compressed(text);
            assert_eq!(packed, lz4_flex::compress_prepend_size(text.as_bytes()));
            assert_eq!(packed.capacity(), packed.len(), "allocated at its own size");
            assert_eq!(read_back(rusqlite::types::Value::Blob(packed)).expect("reads"), text);
        }
    }

    /// The plan SQLite chooses for `sql` on the service's schema, one line per step.
    fn plan(sql: &str) -> String {
        let conn = Connection::open_in_memory().expect("memory");
        conn.execute_batch(include_str!("../schema/sqlite.sql")).expect("schema");
        let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).expect("plan");
        let steps = statement.query_map([], |row| row.get::<_, String>(3)).expect("steps");
        steps.collect::<rusqlite::Result<Vec<_>>>().expect("rows").join("\n")
    }

    #[test]
    fn clearing_and_reconciliation_read_through_the_one_day_index() {
        let clearing = plan(&format!(
            "SELECT {} FROM settlements WHERE booked_on >= '2024-06-01' AND booked_on < \
             '2024-07-01'",
            super::CLEARING_COLUMNS
        ));
        assert!(clearing.contains("COVERING INDEX settlements_by_day"), "{clearing}");
        let day = plan(&format!(
            "SELECT {} FROM settlements WHERE institution_id = 'H1' AND booked_on = '2024-06-10'",
            super::SETTLEMENT_COLUMNS
        ));
        assert!(
            day.contains("INDEX settlements_by_day (booked_on=? AND institution_id=?)"),
            "{day}"
        );
    }

    #[test]
    fn a_damaged_stored_result_is_an_error_not_a_guess() {
        let damaged = rusqlite::types::Value::Blob(vec![200, 0, 0, 0, 1, 2, 3]);
        let error = read_back(damaged).expect_err("damaged");
        assert!(matches!(error, rusqlite::Error::FromSqlConversionFailure(0, _, _)), "{error}");
    }
}
