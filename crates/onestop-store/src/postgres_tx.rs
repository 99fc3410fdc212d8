//! The storage primitives in PostgreSQL's dialect. `PgTx` borrows a transaction that is already
//! open (see `postgres`); it never commits or rolls back itself.
//!
//! Column types follow `schema/postgres.sql`: money and counts are BIGINT (`i64`), small numbers
//! INTEGER (`i32`), booleans 0/1 INTEGER, dates ISO TEXT. The row decoders are shared with the
//! SQLite store, so both read the same rows into the same values; text is ordered by `COLLATE
//! "C"` (bytes, as SQLite does), whatever the database's collation.

use ::postgres::types::ToSql;
use ::postgres::{Row, Transaction};
use onestop_core::{
    Accumulators, AssistanceCategory, Category, Date, Fen, HospitalLevel, Line, Region, VisitType,
};
use onestop_ledger::Posting;

use crate::later::Later;
use crate::model::{
    AssistanceEntry, Enrolment, Institution, Journal, LineOrigin, NhsaKeys, NhsaMessage, PersonKey,
    PersonRow, SettlementRow, StoredResponse, VisitRow, VisitStatus, postings_from_json,
};
use crate::multi_row::Column::{Each, Shared};
use crate::multi_row::{Dialect, ROWS_PER_STATEMENT};
use crate::sqlite_tx::{
    CLEARING_COLUMNS, SETTLEMENT_COLUMNS, VISITOR_COLUMNS, WINDOW_COLUMNS, add_counter,
    clearing_entry, corrupt, date, institution_from, line_from, region, settlement_row, time_text,
    visitor_from, visitor_texts, window_from,
};
use crate::tx::{NewAssistance, Result, StoreError, Tx};

pub struct PgTx<'t, 'c> {
    pub tx: &'t mut Transaction<'c>,
    /// The connection's prepared statements, by SQL text.
    pub statements: &'t mut std::collections::HashMap<String, ::postgres::Statement>,
}

impl PgTx<'_, '_> {
    /// The prepared statement of `sql`, prepared on first use on this connection.
    fn statement(&mut self, sql: &str) -> Result<::postgres::Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.tx.prepare(sql)?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    fn query(&mut self, sql: &str, params: &Params<'_>) -> Result<Vec<Row>> {
        let statement = self.statement(sql)?;
        Ok(self.tx.query(&statement, params)?)
    }

    fn query_opt(&mut self, sql: &str, params: &Params<'_>) -> Result<Option<Row>> {
        let statement = self.statement(sql)?;
        Ok(self.tx.query_opt(&statement, params)?)
    }

    fn query_one(&mut self, sql: &str, params: &Params<'_>) -> Result<Row> {
        let statement = self.statement(sql)?;
        Ok(self.tx.query_one(&statement, params)?)
    }

    fn execute(&mut self, sql: &str, params: &Params<'_>) -> Result<u64> {
        let statement = self.statement(sql)?;
        Ok(self.tx.execute(&statement, params)?)
    }
}

type Params<'a> = [&'a (dyn ToSql + Sync)];

/// A multi-row INSERT in PostgreSQL's numbering of parameters.
fn multi_row_insert(
    head: &str,
    columns: &[crate::multi_row::Column],
    rows: usize,
    tail: &str,
) -> String {
    crate::multi_row::multi_row_insert(Dialect::Postgres, head, columns, rows, tail)
}

/// A number for an INTEGER column, refused when it does not fit.
fn int4<N: TryInto<i32> + Copy + std::fmt::Display>(what: &str, value: N) -> Result<i32> {
    value.try_into().map_err(|_| StoreError::OutOfRange(format!("{what} {value}")))
}

const INSTITUTION_COLUMNS: &str = "institution_id, region, name, level, role";

fn institution_row(row: &Row) -> Result<Institution> {
    institution_from(
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
        row.try_get(4)?,
    )
}

fn read_settlement(row: &Row) -> Result<SettlementRow> {
    let mut texts: [String; 11] = Default::default();
    for (index, text) in texts.iter_mut().enumerate() {
        *text = row.try_get(index)?;
    }
    let numbers = [row.try_get(11)?, row.try_get(12)?, row.try_get(13)?, row.try_get(14)?];
    settlement_row(texts, numbers, row.try_get(15)?)
}

fn read_visitor(row: &Row) -> Result<crate::model::VisitorSettlement> {
    let mut texts: [String; 8] = Default::default();
    for (index, text) in texts.iter_mut().enumerate() {
        *text = row.try_get(index)?;
    }
    let amounts = [row.try_get(8)?, row.try_get(9)?, row.try_get(10)?, row.try_get(11)?];
    visitor_from(texts, amounts, row.try_get(12)?, row.try_get(13)?)
}

fn read_line(row: &Row) -> Result<(i64, Line, LineOrigin)> {
    let line_no: i32 = row.try_get(0)?;
    let values = [row.try_get(4)?, row.try_get(5)?, row.try_get(6)?];
    let line =
        line_from(row.try_get(1)?, row.try_get(2)?, row.try_get(3)?, values, row.try_get(7)?)?;
    let origin = LineOrigin { serial: row.try_get(8)?, batch: row.try_get(9)? };
    Ok((i64::from(line_no), line, origin))
}

impl PgTx<'_, '_> {
    fn settlements_where(&mut self, clause: &str, args: &Params<'_>) -> Result<Vec<SettlementRow>> {
        let sql = format!("SELECT {SETTLEMENT_COLUMNS} FROM settlements WHERE {clause}");
        self.query(sql.as_str(), args)?.iter().map(read_settlement).collect()
    }

    fn institution_where(&mut self, clause: &str, value: &str) -> Result<Option<Institution>> {
        let sql = format!("SELECT {INSTITUTION_COLUMNS} FROM institutions WHERE {clause}");
        self.query_opt(sql.as_str(), &[&value])?.as_ref().map(institution_row).transpose()
    }
}

impl Tx for PgTx<'_, '_> {
    fn institution_by_token(&mut self, token_sha256: &str) -> Result<Option<Institution>> {
        self.institution_where("token_sha256 = $1", token_sha256)
    }

    fn institution(&mut self, institution_id: &str) -> Result<Option<Institution>> {
        self.institution_where("institution_id = $1", institution_id)
    }

    fn insert_institution(
        &mut self,
        row: &Institution,
        token_sha256: &str,
        now: &str,
    ) -> Result<()> {
        self.execute(
            "INSERT INTO institutions (institution_id, region, name, level, role, token_sha256, \
            created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (institution_id) DO UPDATE \
            SET name = EXCLUDED.name, level = EXCLUDED.level, token_sha256 = EXCLUDED.token_sha256",
            &[
                &row.institution_id,
                &row.region.to_string(),
                &row.name,
                &row.level.map(HospitalLevel::code),
                &row.role.code(),
                &token_sha256,
                &now,
            ],
        )?;
        Ok(())
    }

    fn person(&mut self, key: &PersonKey, lock: bool) -> Result<Option<PersonRow>> {
        // The row lock is held to the end of the transaction: a second settlement of the
        // person waits here, then reads what the first committed (READ COMMITTED re-reads).
        let sql = if lock {
            "SELECT name, id_number, birth_date, gender, account_balance FROM persons \
            WHERE region = $1 AND person_id = $2 FOR UPDATE"
        } else {
            "SELECT name, id_number, birth_date, gender, account_balance FROM persons \
            WHERE region = $1 AND person_id = $2"
        };
        let Some(row) = self.query_opt(sql, &[&key.region_text(), &key.person_id])? else {
            return Ok(None);
        };
        let birth: String = row.try_get(2)?;
        Ok(Some(PersonRow {
            key: key.clone(),
            name: row.try_get(0)?,
            id_number: row.try_get(1)?,
            birth_date: date(&birth)?,
            gender: row.try_get(3)?,
            account_balance: Fen(row.try_get(4)?),
        }))
    }

    fn persons_by_id_number(
        &mut self,
        region_text: &str,
        id_number: &str,
    ) -> Result<Vec<PersonKey>> {
        let rows = self.query(
            "SELECT person_id FROM persons WHERE region = $1 AND id_number = $2 \
            ORDER BY person_id COLLATE \"C\" LIMIT 2",
            &[&region_text, &id_number],
        )?;
        let region = region(region_text)?;
        rows.iter().map(|row| Ok(PersonKey { region, person_id: row.try_get(0)? })).collect()
    }

    fn lock_name(&mut self, name: &str) -> Result<()> {
        self.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", &[&name])?;
        Ok(())
    }

    fn upsert_person(&mut self, row: &PersonRow) -> Result<()> {
        self.execute(
            "INSERT INTO persons (region, person_id, name, id_number, birth_date, gender, \
            account_balance, next_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, 1) \
            ON CONFLICT (region, person_id) DO UPDATE SET name = EXCLUDED.name, \
            id_number = EXCLUDED.id_number, birth_date = EXCLUDED.birth_date, \
            gender = EXCLUDED.gender",
            &[
                &row.key.region_text(),
                &row.key.person_id,
                &row.name,
                &row.id_number,
                &row.birth_date.to_string(),
                &row.gender,
                &row.account_balance.0,
            ],
        )?;
        Ok(())
    }

    fn next_seq(&mut self, key: &PersonKey) -> Result<i64> {
        let row = self.query_one(
            "UPDATE persons SET next_seq = next_seq + 1 WHERE region = $1 AND person_id = $2 \
            RETURNING next_seq - 1",
            &[&key.region_text(), &key.person_id],
        )?;
        Ok(row.try_get(0)?)
    }

    fn next_seq_with_balance(&mut self, key: &PersonKey, balance: Fen) -> Result<i64> {
        assert!(balance >= Fen::ZERO, "an account balance never goes negative");
        let row = self.query_one(
            "UPDATE persons SET next_seq = next_seq + 1, account_balance = $3 WHERE region = $1 \
            AND person_id = $2 RETURNING next_seq - 1",
            &[&key.region_text(), &key.person_id, &balance.0],
        )?;
        Ok(row.try_get(0)?)
    }

    fn enrolment(&mut self, key: &PersonKey, year: i16) -> Result<Option<Enrolment>> {
        let row = self.query_opt(
            "SELECT category, civil_servant, enterprise_supplementary, needy FROM enrolments \
            WHERE region = $1 AND person_id = $2 AND year = $3",
            &[&key.region_text(), &key.person_id, &i32::from(year)],
        )?;
        let Some(row) = row else { return Ok(None) };
        let category: String = row.try_get(0)?;
        let flag = |index: usize| row.try_get::<_, i32>(index).map(|value| value != 0);
        Ok(Some(Enrolment {
            year,
            category: Category::parse(&category).ok_or_else(|| corrupt("category", &category))?,
            civil_servant: flag(1)?,
            enterprise_supplementary: flag(2)?,
            needy: flag(3)?,
        }))
    }

    fn upsert_enrolment(&mut self, key: &PersonKey, e: &Enrolment) -> Result<()> {
        self.execute(
            "INSERT INTO enrolments (region, person_id, year, category, civil_servant, \
            enterprise_supplementary, needy) VALUES ($1, $2, $3, $4, $5, $6, $7) \
            ON CONFLICT (region, person_id, year) DO UPDATE SET category = EXCLUDED.category, \
            civil_servant = EXCLUDED.civil_servant, \
            enterprise_supplementary = EXCLUDED.enterprise_supplementary, needy = EXCLUDED.needy",
            &[
                &key.region_text(),
                &key.person_id,
                &i32::from(e.year),
                &e.category.code(),
                &i32::from(e.civil_servant),
                &i32::from(e.enterprise_supplementary),
                &i32::from(e.needy),
            ],
        )?;
        Ok(())
    }

    fn assistance(&mut self, key: &PersonKey) -> Result<Vec<AssistanceEntry>> {
        let rows = self.query(
            "SELECT category, effective_from, effective_to, entry_id FROM assistance \
            WHERE region = $1 AND person_id = $2 ORDER BY entry_id COLLATE \"C\"",
            &[&key.region_text(), &key.person_id],
        )?;
        rows.iter()
            .map(|row| {
                let category: String = row.try_get(0)?;
                let from: String = row.try_get(1)?;
                let to: Option<String> = row.try_get(2)?;
                Ok(AssistanceEntry {
                    entry_id: row.try_get(3)?,
                    category: AssistanceCategory::parse(&category)
                        .ok_or_else(|| corrupt("assistance", &category))?,
                    effective_from: date(&from)?,
                    effective_to: to.as_deref().map(date).transpose()?,
                })
            })
            .collect()
    }

    fn insert_assistance(&mut self, row: &NewAssistance<'_>) -> Result<()> {
        self.execute(
            "INSERT INTO assistance (region, person_id, entry_id, category, effective_from, \
            effective_to, import_id) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &row.key.region_text(),
                &row.key.person_id,
                &row.entry_id,
                &row.entry.category.code(),
                &row.entry.effective_from.to_string(),
                &row.entry.effective_to.map(|d| d.to_string()),
                &row.import_id,
            ],
        )?;
        Ok(())
    }

    fn insert_account_credit(
        &mut self,
        key: &PersonKey,
        credit: &crate::tx::AccountCredit,
    ) -> Result<()> {
        self.execute(
            "INSERT INTO account_credits (region, person_id, credit_id, period, amount, \
            balance_after, note, actor, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &key.region_text(),
                &key.person_id,
                &credit.credit_id,
                &credit.period,
                &credit.amount.0,
                &credit.balance_after.0,
                &credit.note,
                &credit.actor,
                &credit.at,
            ],
        )?;
        Ok(())
    }

    fn account_credits(
        &mut self,
        key: &PersonKey,
        prefix: &str,
    ) -> Result<Vec<crate::tx::AccountCredit>> {
        let rows = self.query(
            "SELECT credit_id, period, amount, balance_after, note, actor, at FROM \
            account_credits WHERE region = $1 AND person_id = $2 AND starts_with(period, $3) \
            ORDER BY at, length(credit_id), credit_id COLLATE \"C\"",
            &[&key.region_text(), &key.person_id, &prefix],
        )?;
        rows.iter()
            .map(|row| {
                Ok(crate::tx::AccountCredit {
                    credit_id: row.try_get(0)?,
                    period: row.try_get(1)?,
                    amount: Fen(row.try_get(2)?),
                    balance_after: Fen(row.try_get(3)?),
                    note: row.try_get(4)?,
                    actor: row.try_get(5)?,
                    at: row.try_get(6)?,
                })
            })
            .collect()
    }

    fn last_assistance_import(&mut self, region_text: &str) -> Result<Option<String>> {
        let rows = self.query(
            "SELECT max(import_id COLLATE \"C\") FROM assistance_imports WHERE region = $1",
            &[&region_text],
        )?;
        Ok(rows.first().map(|row| row.try_get(0)).transpose()?.flatten())
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
        let rows = int4("rows", rows)?;
        self.execute(
            "INSERT INTO assistance_imports (import_id, region, file_name, rows_count, \
            imported_by, imported_at) VALUES ($1, $2, $3, $4, $5, $6)",
            &[&import_id, &region_text, &file_name, &rows, &by, &now],
        )?;
        Ok(())
    }

    fn accumulators(&mut self, key: &PersonKey, year: i16) -> Result<Accumulators> {
        let rows = self.query(
            "SELECT tier, pool, counter, value FROM accumulators \
            WHERE region = $1 AND person_id = $2 AND year = $3",
            &[&key.region_text(), &key.person_id, &i32::from(year)],
        )?;
        let mut accumulators = Accumulators::new(year);
        for row in &rows {
            let (tier, pool, counter): (String, String, String) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            add_counter(&mut accumulators, &tier, &pool, &counter, row.try_get(3)?)?;
        }
        Ok(accumulators)
    }

    fn add_to_accumulators(&mut self, key: &PersonKey, journal: &Journal<'_>) -> Result<()> {
        let year = i32::from(journal.year);
        let (region_text, person_id) = (&key.region_text(), &key.person_id);
        for chunk in journal.counters().chunks(ROWS_PER_STATEMENT) {
            let mut values: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(chunk.len() * 4 + 3);
            values.extend([region_text as &(dyn ToSql + Sync), person_id, &year]);
            for (tier, pool, counter, delta) in chunk {
                values.extend([tier as &(dyn ToSql + Sync), pool, counter, delta]);
            }
            // The counters of one entry are distinct: no row is updated twice in one statement.
            let totals = multi_row_insert(
                "INSERT INTO accumulators (region, person_id, year, tier, pool, counter, value)",
                &[Shared(1), Shared(2), Shared(3), Each(0), Each(1), Each(2), Each(3)],
                chunk.len(),
                " ON CONFLICT (region, person_id, year, tier, pool, counter) \
                DO UPDATE SET value = accumulators.value + EXCLUDED.value",
            );
            self.execute(&totals, &values)?;
        }
        Ok(())
    }

    fn visit(&mut self, key: &PersonKey, visit_id: &str) -> Result<Option<VisitRow>> {
        let row = self.query_opt(
            "SELECT institution_id, visit_type, date_of_service, admission_number, status, \
            opened_at, discharged_at, treatment_region, disease FROM visits \
            WHERE region = $1 AND person_id = $2 AND visit_id = $3",
            &[&key.region_text(), &key.person_id, &visit_id],
        )?;
        let Some(row) = row else { return Ok(None) };
        let visit_type: String = row.try_get(1)?;
        let day: String = row.try_get(2)?;
        let admission: Option<i32> = row.try_get(3)?;
        let status: String = row.try_get(4)?;
        let treatment: String = row.try_get(7)?;
        Ok(Some(VisitRow {
            key: key.clone(),
            visit_id: visit_id.to_owned(),
            institution_id: row.try_get(0)?,
            treatment_region: region(&treatment)?,
            visit_type: VisitType::parse(&visit_type)
                .ok_or_else(|| corrupt("visit", &visit_type))?,
            date_of_service: date(&day)?,
            admission_number: admission.and_then(|n| u16::try_from(n).ok()),
            status: VisitStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
            opened_at: row.try_get(5)?,
            discharged_at: row.try_get(6)?,
            disease: row.try_get(8)?,
        }))
    }

    fn insert_visit(&mut self, row: &VisitRow) -> Result<()> {
        self.execute(
            "INSERT INTO visits (region, person_id, visit_id, institution_id, visit_type, \
            date_of_service, admission_number, status, opened_at, treatment_region, disease) \
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[
                &row.key.region_text(),
                &row.key.person_id,
                &row.visit_id,
                &row.institution_id,
                &row.visit_type.code(),
                &row.date_of_service.to_string(),
                &row.admission_number.map(i32::from),
                &row.status.code(),
                &row.opened_at,
                &row.treatment_region.to_string(),
                &row.disease,
            ],
        )?;
        Ok(())
    }

    fn set_visit_settled(
        &mut self,
        key: &PersonKey,
        visit_id: &str,
        admission_number: Option<u16>,
    ) -> Result<()> {
        self.execute(
            "UPDATE visits SET status = $4, admission_number = coalesce(admission_number, $5) \
            WHERE region = $1 AND person_id = $2 AND visit_id = $3",
            &[
                &key.region_text(),
                &key.person_id,
                &visit_id,
                &VisitStatus::Settled.code(),
                &admission_number.map(i32::from),
            ],
        )?;
        Ok(())
    }

    fn set_visit_status(
        &mut self,
        key: &PersonKey,
        visit_id: &str,
        status: VisitStatus,
    ) -> Result<()> {
        self.execute(
            "UPDATE visits SET status = $4 WHERE region = $1 AND person_id = $2 AND visit_id = $3",
            &[&key.region_text(), &key.person_id, &visit_id, &status.code()],
        )?;
        Ok(())
    }

    fn lines(&mut self, key: &PersonKey, visit_id: &str) -> Result<Vec<(i64, Line)>> {
        let lines = self.lines_with_origin(key, visit_id)?;
        Ok(lines.into_iter().map(|(no, line, _)| (no, line)).collect())
    }

    fn lines_with_origin(
        &mut self,
        key: &PersonKey,
        visit_id: &str,
    ) -> Result<Vec<(i64, Line, LineOrigin)>> {
        let rows = self.query(
            "SELECT line_no, code, name, class, quantity, unit_price, amount, price_limit, \
            serial, batch FROM fee_lines WHERE region = $1 AND person_id = $2 AND visit_id = $3 \
            ORDER BY line_no",
            &[&key.region_text(), &key.person_id, &visit_id],
        )?;
        rows.iter().map(read_line).collect()
    }

    fn insert_line(
        &mut self,
        key: &PersonKey,
        visit_id: &str,
        line_no: i64,
        line: &Line,
        origin: &LineOrigin,
    ) -> Result<()> {
        self.execute(
            "INSERT INTO fee_lines (region, person_id, visit_id, line_no, code, name, class, \
            quantity, unit_price, amount, price_limit, serial, batch) \
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            &[
                &key.region_text(),
                &key.person_id,
                &visit_id,
                &int4("line number", line_no)?,
                &line.code,
                &line.name,
                &line.class.code(),
                &line.quantity.0,
                &line.unit_price.0,
                &line.amount.0,
                &line.price_limit.map(|p| p.0),
                &origin.serial,
                &origin.batch,
            ],
        )?;
        Ok(())
    }

    fn delete_lines_of_batch(
        &mut self,
        key: &PersonKey,
        visit_id: &str,
        batch: Option<&str>,
    ) -> Result<u64> {
        // Without a batch, every line of the visit goes.
        self.execute(
            "DELETE FROM fee_lines WHERE region = $1 AND person_id = $2 AND visit_id = $3 \
            AND ($4::TEXT IS NULL OR batch = $4::TEXT)",
            &[&key.region_text(), &key.person_id, &visit_id, &batch],
        )
    }

    fn set_visit_type(&mut self, key: &PersonKey, visit_id: &str, visit: VisitType) -> Result<()> {
        self.execute(
            "UPDATE visits SET visit_type = $4 \
            WHERE region = $1 AND person_id = $2 AND visit_id = $3",
            &[&key.region_text(), &key.person_id, &visit_id, &visit.code()],
        )?;
        Ok(())
    }

    fn set_visit_disease(
        &mut self,
        key: &PersonKey,
        visit_id: &str,
        disease: Option<&str>,
    ) -> Result<()> {
        self.execute(
            "UPDATE visits SET disease = $4 WHERE region = $1 AND person_id = $2 AND visit_id = $3",
            &[&key.region_text(), &key.person_id, &visit_id, &disease],
        )?;
        Ok(())
    }

    fn set_discharged(&mut self, key: &PersonKey, visit_id: &str, at: Option<&str>) -> Result<()> {
        self.execute(
            "UPDATE visits SET discharged_at = $4 \
            WHERE region = $1 AND person_id = $2 AND visit_id = $3",
            &[&key.region_text(), &key.person_id, &visit_id, &at],
        )?;
        Ok(())
    }

    fn delete_line(&mut self, key: &PersonKey, visit_id: &str, line_no: i64) -> Result<bool> {
        // A number that does not fit the column names no line.
        let Ok(line_no) = i32::try_from(line_no) else { return Ok(false) };
        let count = self.execute(
            "DELETE FROM fee_lines WHERE region = $1 AND person_id = $2 AND visit_id = $3 \
            AND line_no = $4",
            &[&key.region_text(), &key.person_id, &visit_id, &line_no],
        )?;
        Ok(count > 0)
    }

    fn settlement(
        &mut self,
        key: &PersonKey,
        settlement_id: &str,
    ) -> Result<Option<SettlementRow>> {
        let rows = self.settlements_where(
            "region = $1 AND person_id = $2 AND settlement_id = $3",
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
            "region = $1 AND person_id = $2 AND reverses = $3",
            &[&key.region_text(), &key.person_id, &settlement_id],
        )?;
        Ok(rows.into_iter().next())
    }

    fn insert_settlement(&mut self, row: &SettlementRow, journal: &Journal<'_>) -> Result<()> {
        assert_eq!(journal.year, row.date_of_service.year(), "counters of the year of service");
        let sql = format!(
            "INSERT INTO settlements ({SETTLEMENT_COLUMNS}, postings, counters) VALUES ($1, $2, \
            $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
        );
        let treatment_region = row.treatment_region.to_string();
        let (postings, counters) = (journal.postings_json(), journal.counters_json());
        self.execute(
            sql.as_str(),
            &[
                &row.key.region_text(),
                &row.key.person_id,
                &row.settlement_id,
                &row.visit_id,
                &row.institution_id,
                &row.date_of_service.to_string(),
                &row.booked_on.to_string(),
                &row.booked_at,
                &row.result.get()?.text,
                &treatment_region,
                &row.visit_type.code(),
                &row.total.0,
                &row.fund_total.0,
                &row.personal_account.0,
                &row.cash.0,
                &row.reverses,
                &postings,
                &counters,
            ],
        )?;
        Ok(())
    }

    fn visit_settlement(&mut self, key: &PersonKey, visit_id: &str) -> Result<Option<String>> {
        let row = self.query_opt(
            "SELECT s.settlement_id FROM settlements s WHERE s.region = $1 AND s.person_id = $2 \
             AND s.visit_id = $3 AND s.reverses IS NULL AND NOT EXISTS (SELECT 1 FROM \
             settlements r WHERE r.region = s.region AND r.person_id = s.person_id AND \
             r.reverses = s.settlement_id)",
            &[&key.region_text(), &key.person_id, &visit_id],
        )?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    fn postings(&mut self, key: &PersonKey, settlement_id: &str) -> Result<Vec<Posting>> {
        let row = self.query_opt(
            "SELECT postings FROM settlements WHERE region = $1 AND person_id = $2 \
            AND settlement_id = $3",
            &[&key.region_text(), &key.person_id, &settlement_id],
        )?;
        match row {
            Some(row) => postings_from_json(settlement_id, &row.try_get::<_, String>(0)?),
            None => Ok(Vec::new()),
        }
    }

    fn idempotency(
        &mut self,
        key: &PersonKey,
        institution_id: &str,
        idempotency_key: &str,
    ) -> Result<Option<StoredResponse>> {
        let row = self.query_opt(
            "SELECT request_sha256, status, response FROM idempotency WHERE region = $1 \
            AND person_id = $2 AND institution_id = $3 AND idempotency_key = $4",
            &[&key.region_text(), &key.person_id, &institution_id, &idempotency_key],
        )?;
        let Some(row) = row else { return Ok(None) };
        let status: i32 = row.try_get(1)?;
        Ok(Some(StoredResponse {
            request_sha256: row.try_get(0)?,
            status: u16::try_from(status).unwrap_or(500),
            body: Later::ready(row.try_get(2)?),
        }))
    }

    fn idempotency_answers(
        &mut self,
        key: &PersonKey,
        institution_id: &str,
        prefix: &str,
    ) -> Result<Vec<(String, String)>> {
        let rows = self.query(
            "SELECT idempotency_key, response FROM idempotency WHERE region = $1 AND \
            person_id = $2 AND institution_id = $3 AND status = 200 AND \
            substr(idempotency_key, 1, length($4)) = $4",
            &[&key.region_text(), &key.person_id, &institution_id, &prefix],
        )?;
        rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).collect()
    }

    fn insert_idempotency(
        &mut self,
        key: &PersonKey,
        institution_id: &str,
        idempotency_key: &str,
        response: &StoredResponse,
        now: &str,
    ) -> Result<()> {
        self.execute(
            "INSERT INTO idempotency (region, person_id, institution_id, idempotency_key, \
            request_sha256, status, response, created_at) \
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &key.region_text(),
                &key.person_id,
                &institution_id,
                &idempotency_key,
                &response.request_sha256,
                &i32::from(response.status),
                response.body.get()?,
                &now,
            ],
        )?;
        Ok(())
    }

    fn insert_audit(&mut self, row: &crate::audit::AuditRow) -> Result<()> {
        self.execute(
            "INSERT INTO audit_log (region, person_id, audit_id, at, actor, action, detail, \
            channel) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &row.region,
                &row.person_id,
                &row.audit_id,
                &row.at,
                &row.actor,
                &row.action,
                &row.detail,
                &row.channel,
            ],
        )?;
        Ok(())
    }

    fn audit_rows(
        &mut self,
        query: &crate::audit::AuditQuery,
    ) -> Result<Vec<crate::audit::AuditRow>> {
        let (sql, args) = query.select(|n| format!("${n}"));
        let limit = i64::from(query.limit);
        let mut params: Vec<&(dyn ::postgres::types::ToSql + Sync)> =
            args.iter().map(|a| a as &(dyn ::postgres::types::ToSql + Sync)).collect();
        params.push(&limit);
        let rows = self.query(&sql, &params)?;
        Ok(rows
            .iter()
            .map(|row| crate::audit::AuditRow {
                region: row.get(0),
                person_id: row.get(1),
                audit_id: row.get(2),
                at: row.get(3),
                actor: row.get(4),
                action: row.get(5),
                detail: row.get(6),
                channel: row.get(7),
            })
            .collect())
    }

    fn settlements_booked(
        &mut self,
        institution_id: &str,
        day: Date,
    ) -> Result<Vec<SettlementRow>> {
        self.settlements_where(
            "institution_id = $1 AND booked_on = $2",
            &[&institution_id, &day.to_string()],
        )
    }

    fn booked_between(
        &mut self,
        from: Date,
        until: Date,
        each: &mut dyn FnMut(onestop_clearing::Entry),
    ) -> Result<()> {
        use ::postgres::fallible_iterator::FallibleIterator;
        let sql = format!(
            "SELECT {CLEARING_COLUMNS} FROM settlements WHERE booked_on >= $1 AND booked_on < $2"
        );
        let statement = self.statement(&sql)?;
        let (from, until) = (from.to_string(), until.to_string());
        let mut rows = self.tx.query_raw(&statement, [&from, &until])?;
        while let Some(row) = rows.next()? {
            let texts: [String; 4] =
                [row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?];
            let amounts = [row.try_get(5)?, row.try_get(6)?, row.try_get(7)?, row.try_get(8)?];
            each(clearing_entry(&texts, row.try_get(4)?, amounts)?);
        }
        Ok(())
    }

    fn prepayment(&mut self, region: Region, month: &str) -> Result<Option<Fen>> {
        let row = self.query_opt(
            "SELECT balance FROM prepayments WHERE region = $1 AND month = $2",
            &[&region.to_string(), &month],
        )?;
        Ok(row.map(|r| r.try_get::<_, i64>(0)).transpose()?.map(Fen))
    }

    fn set_prepayment(
        &mut self,
        region: Region,
        month: &str,
        balance: Fen,
        by: &str,
        at: &str,
    ) -> Result<()> {
        self.execute(
            "INSERT INTO prepayments (region, month, balance, set_by, set_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (region, month) DO UPDATE SET \
             balance = excluded.balance, set_by = excluded.set_by, set_at = excluded.set_at",
            &[&region.to_string(), &month, &balance.0, &by, &at],
        )?;
        Ok(())
    }

    fn visitors_between(
        &mut self,
        from: Date,
        until: Date,
        each: &mut dyn FnMut(onestop_clearing::Entry),
    ) -> Result<()> {
        use ::postgres::fallible_iterator::FallibleIterator;
        let sql = format!(
            "SELECT {VISITOR_COLUMNS} FROM visitor_settlements WHERE booked_on >= $1 \
             AND booked_on < $2"
        );
        let statement = self.statement(&sql)?;
        let (from, until) = (from.to_string(), until.to_string());
        let mut rows = self.tx.query_raw(&statement, [&from, &until])?;
        while let Some(row) = rows.next()? {
            each(read_visitor(&row)?.entry());
        }
        Ok(())
    }

    fn insert_visitor_settlement(&mut self, row: &crate::model::VisitorSettlement) -> Result<bool> {
        let sql = format!(
            "INSERT INTO visitor_settlements ({VISITOR_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, \
             $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (settlement_id) DO NOTHING"
        );
        let t = visitor_texts(row);
        let inserted = self.execute(
            &sql,
            &[
                &t[0],
                &t[1],
                &t[2],
                &t[3],
                &t[4],
                &t[5],
                &t[6],
                &t[7],
                &row.total.0,
                &row.fund_total.0,
                &row.personal_account.0,
                &row.cash.0,
                &row.reverses,
                &row.scheme.map(onestop_core::Scheme::code),
            ],
        )?;
        Ok(inserted == 1)
    }

    fn visitor_settlements_booked(
        &mut self,
        institution_id: &str,
        day: Date,
    ) -> Result<Vec<crate::model::VisitorSettlement>> {
        let sql = format!(
            "SELECT {VISITOR_COLUMNS} FROM visitor_settlements WHERE institution_id = $1 \
             AND booked_on = $2 ORDER BY settlement_id COLLATE \"C\""
        );
        let rows = self.query(&sql, &[&institution_id, &day.to_string()])?;
        rows.iter().map(read_visitor).collect()
    }

    fn insert_pending_forward(&mut self, p: &crate::model::PendingForward) -> Result<()> {
        self.execute(
            "INSERT INTO pending_forwards (institution_id, visit_id, idempotency_key, \
             forwarded_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            &[&p.institution_id, &p.visit_id, &p.idempotency_key, &p.forwarded_at],
        )?;
        Ok(())
    }

    fn pending_forwards(&mut self) -> Result<Vec<crate::model::PendingForward>> {
        let rows = self.query(
            "SELECT institution_id, visit_id, idempotency_key, forwarded_at FROM \
             pending_forwards ORDER BY forwarded_at LIMIT 1000",
            &[],
        )?;
        rows.iter()
            .map(|r| {
                Ok(crate::model::PendingForward {
                    institution_id: r.try_get(0)?,
                    visit_id: r.try_get(1)?,
                    idempotency_key: r.try_get(2)?,
                    forwarded_at: r.try_get(3)?,
                })
            })
            .collect()
    }

    fn delete_pending_forwards(&mut self, institution_id: &str, visit_id: &str) -> Result<()> {
        self.execute(
            "DELETE FROM pending_forwards WHERE institution_id = $1 AND visit_id = $2",
            &[&institution_id, &visit_id],
        )?;
        Ok(())
    }

    fn insert_window(&mut self, w: &crate::model::MaintenanceWindow) -> Result<()> {
        let sql = format!(
            "INSERT INTO maintenance_windows ({WINDOW_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, \
             $7, $8)"
        );
        self.execute(
            &sql,
            &[
                &w.window_id,
                &w.region.to_string(),
                &time_text(w.starts_at),
                &time_text(w.ends_at),
                &w.reason,
                &w.created_by,
                &w.created_at,
                &w.cancelled_at,
            ],
        )?;
        Ok(())
    }

    fn windows(&mut self) -> Result<Vec<crate::model::MaintenanceWindow>> {
        let sql = format!(
            "SELECT {WINDOW_COLUMNS} FROM maintenance_windows WHERE cancelled_at IS NULL \
             ORDER BY starts_at, window_id COLLATE \"C\""
        );
        let rows = self.query(&sql, &[])?;
        rows.iter()
            .map(|row| {
                let mut texts: [String; 7] = Default::default();
                for (index, text) in texts.iter_mut().enumerate() {
                    *text = row.try_get(index)?;
                }
                window_from(texts, row.try_get(7)?)
            })
            .collect()
    }

    fn cancel_window(&mut self, window_id: &str, at: &str) -> Result<bool> {
        let changed = self.execute(
            "UPDATE maintenance_windows SET cancelled_at = $2 WHERE window_id = $1 \
             AND cancelled_at IS NULL",
            &[&window_id, &at],
        )?;
        Ok(changed == 1)
    }

    fn insert_filing(&mut self, f: &crate::model::Filing) -> Result<()> {
        let sql = format!(
            "INSERT INTO filings (region, person_id, {}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            crate::sqlite_tx::FILING_COLUMNS
        );
        let (region_text, destination) = (f.key.region_text(), f.destination.to_string());
        let (start, filed_on) = (f.start.to_string(), f.filed_on.to_string());
        let end = f.end.map(|d| d.to_string());
        self.execute(
            &sql,
            &[
                &region_text,
                &f.key.person_id,
                &f.filing_id,
                &f.kind.code(),
                &destination,
                &start,
                &f.status.code(),
                &filed_on,
                &end,
                &i32::from(f.commitment),
                &f.filed_at,
            ],
        )?;
        Ok(())
    }

    fn filings(&mut self, key: &PersonKey) -> Result<Vec<crate::model::Filing>> {
        let sql = format!(
            "SELECT {} FROM filings WHERE region = $1 AND person_id = $2 \
             ORDER BY filing_id COLLATE \"C\"",
            crate::sqlite_tx::FILING_COLUMNS
        );
        let rows = self.query(&sql, &[&key.region_text(), &key.person_id])?;
        rows.iter()
            .map(|row| {
                let mut texts: [String; 6] = Default::default();
                for (index, text) in texts.iter_mut().enumerate() {
                    *text = row.try_get(index)?;
                }
                let commitment: i32 = row.try_get(7)?;
                crate::sqlite_tx::filing_from(
                    key,
                    texts,
                    row.try_get(6)?,
                    commitment != 0,
                    row.try_get(8)?,
                )
            })
            .collect()
    }

    fn set_filing_status(
        &mut self,
        key: &PersonKey,
        filing_id: &str,
        status: crate::model::FilingStatus,
    ) -> Result<()> {
        self.execute(
            "UPDATE filings SET status = $4 WHERE region = $1 AND person_id = $2 \
             AND filing_id = $3",
            &[&key.region_text(), &key.person_id, &filing_id, &status.code()],
        )?;
        Ok(())
    }

    fn nhsa_message(&mut self, institution_id: &str, msgid: &str) -> Result<Option<NhsaMessage>> {
        let row = self.query_opt(
            "SELECT infno, request_sha256, response, at FROM nhsa_messages \
            WHERE institution_id = $1 AND msgid = $2",
            &[&institution_id, &msgid],
        )?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(NhsaMessage {
            institution_id: institution_id.to_owned(),
            msgid: msgid.to_owned(),
            infno: row.try_get(0)?,
            request_sha256: row.try_get(1)?,
            response: row.try_get(2)?,
            at: row.try_get(3)?,
        }))
    }

    fn insert_nhsa_message(&mut self, m: &NhsaMessage) -> Result<()> {
        self.execute(
            "INSERT INTO nhsa_messages (institution_id, msgid, infno, request_sha256, response, \
            at) VALUES ($1, $2, $3, $4, $5, $6)",
            &[&m.institution_id, &m.msgid, &m.infno, &m.request_sha256, &m.response, &m.at],
        )?;
        Ok(())
    }

    fn nhsa_sign_in(
        &mut self,
        institution_id: &str,
        sign_no: &str,
        opter: &str,
        now: &str,
    ) -> Result<()> {
        self.execute(
            "INSERT INTO nhsa_sessions (institution_id, sign_no, opter, signed_in_at) \
            VALUES ($1, $2, $3, $4)",
            &[&institution_id, &sign_no, &opter, &now],
        )?;
        Ok(())
    }

    fn nhsa_session_open(&mut self, institution_id: &str, sign_no: &str) -> Result<bool> {
        let row = self.query_opt(
            "SELECT 1 FROM nhsa_sessions WHERE institution_id = $1 AND sign_no = $2 \
            AND signed_out_at IS NULL",
            &[&institution_id, &sign_no],
        )?;
        Ok(row.is_some())
    }

    fn nhsa_sign_out(&mut self, institution_id: &str, sign_no: &str, now: &str) -> Result<bool> {
        let count = self.execute(
            "UPDATE nhsa_sessions SET signed_out_at = $3 WHERE institution_id = $1 \
            AND sign_no = $2 AND signed_out_at IS NULL",
            &[&institution_id, &sign_no, &now],
        )?;
        Ok(count > 0)
    }

    fn nhsa_keys(&mut self, institution_id: &str) -> Result<Option<NhsaKeys>> {
        let row = self.query_opt(
            "SELECT encrypted, sm4_key, sm2_public_key FROM nhsa_keys WHERE institution_id = $1",
            &[&institution_id],
        )?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(NhsaKeys {
            encrypted: row.try_get::<_, i32>(0)? != 0,
            sm4_key: row.try_get(1)?,
            sm2_public_key: row.try_get(2)?,
        }))
    }

    fn set_nhsa_keys(&mut self, institution_id: &str, keys: &NhsaKeys) -> Result<()> {
        self.execute(
            "INSERT INTO nhsa_keys (institution_id, encrypted, sm4_key, sm2_public_key) \
            VALUES ($1, $2, $3, $4) ON CONFLICT (institution_id) DO UPDATE SET \
            encrypted = EXCLUDED.encrypted, sm4_key = EXCLUDED.sm4_key, \
            sm2_public_key = EXCLUDED.sm2_public_key",
            &[&institution_id, &i32::from(keys.encrypted), &keys.sm4_key, &keys.sm2_public_key],
        )?;
        Ok(())
    }

    fn query_strings(&mut self, sql: &str) -> Result<Vec<String>> {
        let rows = self.query(sql, &[])?;
        rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }

    fn postings_booked(
        &mut self,
        institution_id: &str,
        day: Date,
    ) -> Result<Vec<(String, Posting)>> {
        let rows = self.query(
            "SELECT settlement_id, postings FROM settlements WHERE institution_id = $1 \
            AND booked_on = $2 ORDER BY settlement_id COLLATE \"C\"",
            &[&institution_id, &day.to_string()],
        )?;
        let mut postings = Vec::new();
        for row in &rows {
            let id: String = row.try_get(0)?;
            for posting in postings_from_json(&id, &row.try_get::<_, String>(1)?)? {
                postings.push((id.clone(), posting));
            }
        }
        Ok(postings)
    }
}
