//! People, institutions and assistance lists: what agencies maintain and institutions look up.

use crate::audit::AuditAction;
use onestop_api::claim::parse_region;
use onestop_api::service::{
    AssistanceImportDto, CredentialDto, DuplicateRowDto, EnrolmentDto, PersonViewDto,
    RegisterInstitutionRequest, RegisterPersonRequest,
};
use onestop_api::{ServiceCode, ServiceError, YtdDto};
use onestop_core::{Category, Fen, HospitalLevel};
use sha2::{Digest, Sha256};

use crate::import::ListRow;
use crate::model::{
    AssistanceEntry, Enrolment, Institution, PersonKey, PersonRow, Role, mask_id_number,
};
use crate::ops::{Answer, Env, forbidden};
use crate::tx::{NewAssistance, Result, Tx};

/// The stored form of a credential.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random credential: 32 bytes, hex.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// The institution, agency or auditor a bearer token belongs to.
pub fn authenticate(tx: &mut dyn Tx, token: &str) -> Result<Option<Institution>> {
    tx.institution_by_token(&token_sha256(token))
}

/// A person and their year-to-date totals. Every read is written to the audit log.
pub fn person_view(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    key: &PersonKey,
    year: i16,
) -> Result<Answer<PersonViewDto>> {
    person_view_as(tx, env, actor, key, year, (AuditAction::ReadPerson, format!("year {year}")))
}

/// A person as [`person_view`] shows them, audited as `action` with what it did.
fn person_view_as(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    key: &PersonKey,
    year: i16,
    (action, what): (AuditAction, String),
) -> Result<Answer<PersonViewDto>> {
    if actor.role != Role::Institution && actor.region != key.region {
        return Ok(Err(forbidden(actor)));
    }
    let Some(person) = tx.person(key, false)? else {
        return Ok(Err(ServiceError::new(
            ServiceCode::PersonNotFound,
            format!("no person `{}` in region {}", key.person_id, key.region),
        )));
    };
    let enrolment = tx.enrolment(key, year)?.map(|e| EnrolmentDto {
        year: e.year,
        scheme: e.category.scheme().code().to_owned(),
        category: e.category.code().to_owned(),
        civil_servant: e.civil_servant,
        enterprise_supplementary: e.enterprise_supplementary,
        needy: e.needy,
    });
    // A past year is shown as it ended (its last day); this year and later as of today.
    let as_of = match onestop_core::Date::new(year, 12, 31).ok() {
        Some(last_day) if last_day < env.today => last_day,
        _ => env.today,
    };
    let assistance = crate::model::assistance_on(&tx.assistance(key)?, as_of)
        .map(|category| category.code().to_owned());
    let ytd = YtdDto::from_core(&tx.accumulators(key, year)?);
    let credits = tx.account_credits(key, &year.to_string())?;
    let account_credits = credits.iter().map(|c| crate::accounts::credit_dto(key, c)).collect();
    let detail = format!("{what}, id number {}", mask_id_number(&person.id_number));
    crate::audit::record(tx, env, key, &actor.institution_id, action, &detail)?;
    Ok(Ok(PersonViewDto {
        person_id: key.person_id.clone(),
        insured_region: key.region_text(),
        name: person.name.clone(),
        id_number: person.id_number.clone(),
        birth_date: person.birth_date.to_string(),
        gender: person.gender.clone(),
        age: person.age_on(as_of),
        account_balance: person.account_balance.to_string(),
        enrolment,
        assistance,
        as_of: as_of.to_string(),
        ytd,
        account_credits,
    }))
}

fn invalid(field: &str, message: String) -> ServiceError {
    ServiceError::new(ServiceCode::IdInvalid, message).field(field)
}

fn person_invalid(field: &str, message: String) -> ServiceError {
    ServiceError::new(ServiceCode::PersonInvalid, format!("{message} (人员信息错误)")).field(field)
}

/// Gender codes of GB/T 2261.1 (the national interface's `gend`).
const GENDERS: [&str; 4] = ["0", "1", "2", "9"];

fn person_row(
    actor: &Institution,
    request: &RegisterPersonRequest,
    today: onestop_core::Date,
) -> Answer<PersonRow> {
    let key = PersonKey::new(actor.region, &request.person_id).ok_or_else(|| {
        invalid("person_id", format!("`{}` must be 1 to 30 letters and digits", request.person_id))
    })?;
    // A check character written as a lowercase x is the same number.
    let id_number = request.id_number.to_ascii_uppercase();
    let id_ok = crate::model::is_identity_number(&id_number);
    if !id_ok {
        let message = "an identity number is 15 digits, or 17 digits and a digit or X";
        return Err(person_invalid("id_number", message.to_owned()));
    }
    let birth_date = request.birth_date.parse::<onestop_core::Date>().ok();
    let Some(birth_date) = birth_date.filter(|_| request.birth_date.len() == 10) else {
        let message = format!("`{}` is not a date written YYYY-MM-DD", request.birth_date);
        return Err(person_invalid("birth_date", message));
    };
    if birth_date > today {
        let message = format!("the birth date {birth_date} is after today, {today}");
        return Err(person_invalid("birth_date", message));
    }
    if !GENDERS.contains(&request.gender.as_str()) {
        let message = format!(
            "`{}` is not a gender code; expected one of: 0 (未知 unknown), 1 (男 male), \
             2 (女 female), 9 (未说明 unstated)",
            request.gender
        );
        return Err(person_invalid("gender", message));
    }
    let account_balance = match &request.account_balance {
        None => Fen::ZERO,
        Some(text) => {
            Fen::parse_yuan(text.as_str()).ok().filter(|f| *f >= Fen::ZERO).ok_or_else(|| {
                let rejection = onestop_core::Rejection::new(
                    onestop_core::RejectionCode::AccountBalanceInvalid,
                    format!("`{}` is not an amount of yuan, 0 or more", text.as_str()),
                );
                ServiceError::from(rejection.field("account_balance"))
            })?
        }
    };
    Ok(PersonRow {
        key,
        name: request.name.chars().take(50).collect(),
        id_number,
        birth_date,
        gender: request.gender.clone(),
        account_balance,
    })
}

/// Registers or updates a person of the agency's region and their enrolments.
pub fn register_person(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    request: &RegisterPersonRequest,
) -> Result<Answer<PersonViewDto>> {
    if actor.role != Role::Agency {
        return Ok(Err(forbidden(actor)));
    }
    let row = match person_row(actor, request, env.today) {
        Ok(row) => row,
        Err(error) => return Ok(Err(error)),
    };
    let mut enrolments = Vec::with_capacity(request.enrolments.len());
    for (index, enrolment) in request.enrolments.iter().enumerate() {
        let Some(category) = Category::parse(&enrolment.category) else {
            let rejection = onestop_core::Rejection::new(
                onestop_core::RejectionCode::CategoryUnknown,
                format!(
                    "`{}` is not a category; expected one of: {}",
                    enrolment.category,
                    Category::codes()
                ),
            );
            let field = format!("enrolments[{index}].category");
            return Ok(Err(ServiceError::from(rejection.field(field))));
        };
        if !(1900..=2100).contains(&enrolment.year) {
            let field = format!("enrolments[{index}].year");
            let message = format!("the year {} is not between 1900 and 2100", enrolment.year);
            return Ok(Err(person_invalid(&field, message)));
        }
        enrolments.push(Enrolment {
            year: enrolment.year,
            category,
            civil_servant: enrolment.civil_servant,
            enterprise_supplementary: enrolment.enterprise_supplementary,
            needy: enrolment.needy,
        });
    }
    if let Some(error) = id_number_taken(tx, &row)? {
        return Ok(Err(error));
    }
    if let Some(error) = balance_changed(tx, &row, request)? {
        return Ok(Err(error));
    }
    tx.upsert_person(&row)?;
    for enrolment in &enrolments {
        tx.upsert_enrolment(&row.key, enrolment)?;
    }
    let years: Vec<String> = enrolments.iter().map(|e| e.year.to_string()).collect();
    let what = if years.is_empty() {
        "registered".to_owned()
    } else {
        format!("registered, enrolled {}", years.join(", "))
    };
    let audited = (AuditAction::RegisterPerson, what);
    person_view_as(tx, env, actor, &row.key, env.today.year(), audited)
}

/// An identity number names one person of the region: the import of assistance lists and the
/// national interface (by `certno`) find people by it. Written as an old 15-digit number or as
/// its 18-character form, it is one number: the lock is on the 18-character form, so that two
/// registrations of one number serialize.
fn id_number_taken(tx: &mut dyn Tx, row: &PersonRow) -> Result<Option<ServiceError>> {
    let region = row.key.region_text();
    let forms = crate::model::identity_number_forms(&row.id_number);
    let lock = forms.iter().find(|f| f.len() == 18).unwrap_or(&forms[0]);
    tx.lock_name(&format!("id_number:{region}:{lock}"))?;
    let holders = persons_by_id_number(tx, &region, &row.id_number)?;
    let Some(other) = holders.iter().find(|key| key.person_id != row.key.person_id) else {
        return Ok(None);
    };
    let message = format!(
        "the identity number {} is already person {}'s in region {region}",
        mask_id_number(&row.id_number),
        other.person_id
    );
    Ok(Some(person_invalid("id_number", message)))
}

/// A registration of a known person that sends another account balance than theirs: refused,
/// not ignored. The balance is the ledger's (settlements and cancellations move it).
fn balance_changed(
    tx: &mut dyn Tx,
    row: &PersonRow,
    request: &RegisterPersonRequest,
) -> Result<Option<ServiceError>> {
    if request.account_balance.is_none() {
        return Ok(None);
    }
    let Some(known) = tx.person(&row.key, false)? else { return Ok(None) };
    if known.account_balance == row.account_balance {
        return Ok(None);
    }
    let rejection = onestop_core::Rejection::new(
        onestop_core::RejectionCode::AccountBalanceInvalid,
        format!(
            "person {} is registered, with a personal-account balance of {}: it is set at \
             registration only and then moves with settlements, cancellations and credits. \
             Leave `account_balance` out (or send {}) to update the person; credit the account \
             (个人账户划入) with POST /v1/persons/{}/{}/account-credits",
            row.key.person_id,
            known.account_balance,
            known.account_balance,
            row.key.region,
            row.key.person_id
        ),
    );
    Ok(Some(ServiceError::from(rejection.field("account_balance"))))
}

/// The people of a region with an identity number, however it is written: an old 15-digit
/// number finds the person registered under its 18-character form, and the other way round.
pub fn persons_by_id_number(
    tx: &mut dyn Tx,
    region: &str,
    id_number: &str,
) -> Result<Vec<PersonKey>> {
    let mut found = Vec::new();
    for form in crate::model::identity_number_forms(id_number) {
        for key in tx.persons_by_id_number(region, &form)? {
            if !found.contains(&key) {
                found.push(key);
            }
        }
    }
    Ok(found)
}

/// Registers an institution of the agency's region; the token is returned once.
pub fn register_institution(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    request: &RegisterInstitutionRequest,
) -> Result<Answer<CredentialDto>> {
    if actor.role != Role::Agency {
        return Ok(Err(forbidden(actor)));
    }
    let id_ok = crate::model::person_id_is_valid(&request.institution_id);
    let Some(level) = HospitalLevel::parse(request.level.as_str()).filter(|_| id_ok) else {
        return Ok(Err(invalid(
            "institution_id",
            format!(
                "an institution id is 1 to 30 letters and digits and its level one of: {}",
                HospitalLevel::codes()
            ),
        )));
    };
    let institution = Institution {
        institution_id: request.institution_id.clone(),
        region: actor.region,
        name: request.name.chars().take(100).collect(),
        level: Some(level),
        role: Role::Institution,
    };
    register(tx, env, &institution)
}

/// Stores a credential for `institution` and returns its token (also used to bootstrap the
/// first agency of a region from the command line). An id already registered is registered
/// again only with its region and role: then its name, level and token are replaced (the old
/// token no longer authenticates); with another region or role it is refused.
pub fn register(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    institution: &Institution,
) -> Result<Answer<CredentialDto>> {
    // Two agencies registering one id at once (PostgreSQL: both could find it free, and the
    // second's upsert replace the first's token) take turns.
    tx.lock_name(&format!("institution:{}", institution.institution_id))?;
    if let Some(known) = tx.institution(&institution.institution_id)?
        && (known.region != institution.region || known.role != institution.role)
    {
        return Ok(Err(ServiceError::new(
            ServiceCode::InstitutionIdTaken,
            format!(
                "`{}` is already registered as {} of region {}; an id names one institution, \
                 agency or auditor of one region (机构编码已被占用)",
                institution.institution_id,
                known.role.code(),
                known.region
            ),
        )
        .field("institution_id")));
    }
    let token = new_token();
    tx.insert_institution(institution, &token_sha256(&token), &env.now)?;
    Ok(Ok(CredentialDto { institution_id: institution.institution_id.clone(), token }))
}

/// Imports an assistance-recipient list: every row must name a registered person of the
/// agency's region, or nothing is imported.
/// A new import's id. Import ids sort in the order of import: a later list sets aside an
/// earlier one's rows (`model::assistance_standing`) and wins a tie of start dates. Imports of a
/// region take turns, and one in the same instant as the last (or after the clock went back)
/// sorts after it all the same.
fn next_import_id(tx: &mut dyn Tx, env: &Env<'_>, region: &str) -> Result<String> {
    tx.lock_name(&format!("assistance-import:{region}"))?;
    let stamp: String = env.now.chars().filter(char::is_ascii_digit).take(17).collect();
    let import_id = format!("{region}-{stamp}-{}", new_token().get(..8).unwrap_or_default());
    Ok(match tx.last_assistance_import(region)? {
        Some(last) if import_id <= last => format!("{last}.1"),
        _ => import_id,
    })
}

pub fn import_assistance(
    tx: &mut dyn Tx,
    env: &Env<'_>,
    actor: &Institution,
    file_name: &str,
    rows: &[ListRow],
) -> Result<Answer<AssistanceImportDto>> {
    if actor.role != Role::Agency {
        return Ok(Err(forbidden(actor)));
    }
    let region = actor.region.to_string();
    let mut keys = Vec::with_capacity(rows.len());
    for row in rows {
        let mut found = persons_by_id_number(tx, &region, &row.id_number)?;
        match found.pop() {
            Some(key) if found.is_empty() => keys.push(key),
            Some(key) => {
                let message = format!(
                    "row {}: identity number {} is of two people of region {region} ({} and \
                    {}); nothing was imported",
                    row.row,
                    mask_id_number(&row.id_number),
                    found[0].person_id,
                    key.person_id
                );
                let error = ServiceError::new(ServiceCode::AssistanceListInvalid, message);
                return Ok(Err(error.field(format!("rows[{}]", row.row))));
            }
            None => {
                let message = format!(
                    "row {}: no person of region {region} has identity number \
                    {}; nothing was imported",
                    row.row,
                    mask_id_number(&row.id_number)
                );
                let error = ServiceError::new(ServiceCode::AssistanceListInvalid, message);
                return Ok(Err(error.field(format!("rows[{}]", row.row))));
            }
        }
    }
    let import_id = next_import_id(tx, env, &region)?;
    let duplicates: Vec<DuplicateRowDto> = rows
        .iter()
        .filter_map(|row| row.same_as.map(|same_as| DuplicateRowDto { row: row.row, same_as }))
        .collect();
    for (row, key) in rows.iter().zip(&keys).filter(|(row, _)| row.same_as.is_none()) {
        let entry = AssistanceEntry {
            entry_id: format!("{import_id}-{:06}", row.row),
            category: row.category,
            effective_from: row.effective_from,
            effective_to: row.effective_to,
        };
        let entry_id = entry.entry_id.clone();
        tx.insert_assistance(&NewAssistance { key, entry_id, entry, import_id: &import_id })?;
    }
    let kept = rows.len() - duplicates.len();
    tx.insert_assistance_import(
        &import_id,
        &region,
        file_name,
        kept,
        &actor.institution_id,
        &env.now,
    )?;
    let file_name = file_name.to_owned();
    Ok(Ok(AssistanceImportDto { import_id, file_name, rows: kept, duplicates }))
}

/// Reads the region from a path segment.
pub fn region_of(text: &str) -> Answer<onestop_core::Region> {
    parse_region(text, "region").map_err(ServiceError::from)
}
