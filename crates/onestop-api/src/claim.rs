//! Bills, persons and year-to-date accumulators on the wire (JSON, or TOML in files), and
//! their parsing into core types. Every field is checked here, once, with its own rejection
//! code; the core only ever sees valid claims.

use std::collections::BTreeMap;
use std::sync::Arc;

use onestop_core::accumulators::{AccumulatorKey, Accumulators, Counter};
use onestop_core::claim::{
    ADMISSION_NUMBER_MAX, AGE_MAX, BILL_AMOUNT_MAX, DAYS_MAX, LINE_AMOUNT_MAX, LINES_COUNT_MAX,
};
use onestop_core::money::DecimalParseError;
use onestop_core::{
    AssistanceCategory, Bill, CatalogClass, Category, Claim, Date, Fen, FilingKind, HospitalLevel,
    Line, Person, Quantity, Region, Rejection, RejectionCode, Rounding, UnitPrice, VisitType,
};
use serde::{Deserialize, Serialize};

use crate::wire::Scalar;

/// Item codes and names longer than this are refused.
pub const TEXT_CHARS_MAX: usize = 200;

/// A bill as sent by a hospital's system.
#[derive(Clone, Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BillDto {
    /// `YYYY-MM-DD`.
    pub date_of_service: Option<Scalar>,
    /// Six-digit division code of the place of treatment.
    pub treatment_region: Option<Scalar>,
    /// `general_outpatient`, `chronic_outpatient`, `inpatient`, `ltc_institutional`, `ltc_home`.
    pub visit: Option<Scalar>,
    /// `community`, `1`, `2` or `3`.
    pub level: Option<Scalar>,
    /// The admission's number within the year, for inpatient bills.
    pub admission_number: Option<Scalar>,
    /// Pay the personal share from the personal account where the policy allows (default true).
    pub use_personal_account: Option<bool>,
    /// For care outside the insured region: the kind of the person's valid filing (备案).
    pub filing: Option<Scalar>,
    /// The disease treated (病种编码), for policies whose rules differ by disease group
    /// (门诊慢特病).
    pub disease: Option<Scalar>,
    /// The days the bill covers (住院天数, 护理天数), 1 to 3,660, for rules that limit what they
    /// pay per day.
    pub days: Option<Scalar>,
    pub lines: Option<Vec<LineDto>>,
}

/// One fee line.
#[derive(Clone, Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LineDto {
    pub code: Option<String>,
    pub name: Option<String>,
    /// `a` (甲类), `b` (乙类) or `outside` (目录外).
    pub class: Option<Scalar>,
    pub quantity: Option<Scalar>,
    pub unit_price: Option<Scalar>,
    pub amount: Option<Scalar>,
    pub price_limit: Option<Scalar>,
}

/// The insured person.
#[derive(Clone, Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PersonDto {
    pub insured_region: Option<Scalar>,
    /// `in_service`, `retired`, `elderly`, `working_age`, `student_child`.
    pub category: Option<Scalar>,
    pub age: Option<Scalar>,
    /// An assistance-recipient category, if the person is on a list.
    pub assistance: Option<Scalar>,
    pub needy: Option<bool>,
    pub civil_servant: Option<bool>,
    pub enterprise_supplementary: Option<bool>,
    pub account_balance: Option<Scalar>,
}

/// Year-to-date accumulators: `tiers.<tier id>.<pool>.<counter> = amount`.
#[derive(Clone, Debug, Deserialize, Serialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct YtdDto {
    pub year: Option<Scalar>,
    pub admissions: Option<Scalar>,
    #[serde(default)]
    pub tiers: BTreeMap<String, BTreeMap<String, BTreeMap<String, Scalar>>>,
}

fn missing(field: &str, what: &str) -> Rejection {
    Rejection::new(RejectionCode::MissingField, format!("`{field}` is required: {what}"))
        .field(field)
}

fn require<'a>(value: &'a Option<Scalar>, field: &str, what: &str) -> Result<&'a str, Rejection> {
    value.as_ref().map(Scalar::as_str).filter(|s| !s.is_empty()).ok_or_else(|| missing(field, what))
}

fn amount(text: &str, field: &str) -> Result<Fen, Rejection> {
    let fen = Fen::parse_yuan(text).map_err(|error| {
        Rejection::new(RejectionCode::LineAmountInvalid, format!("`{text}` {error}")).field(field)
    })?;
    if fen < Fen::ZERO {
        return Err(Rejection::new(
            RejectionCode::LineAmountMustNotBeNegative,
            format!("{fen} is negative; a refund is a cancellation, not a negative line"),
        )
        .field(field));
    }
    Ok(fen)
}

fn check_text(text: &str, field: &str) -> Result<(), Rejection> {
    if text.chars().count() > TEXT_CHARS_MAX {
        return Err(Rejection::new(
            RejectionCode::TextTooLong,
            format!("{} characters; at most {TEXT_CHARS_MAX}", text.chars().count()),
        )
        .field(field));
    }
    Ok(())
}

pub fn parse_region(text: &str, field: &str) -> Result<Region, Rejection> {
    Region::parse(text).ok_or_else(|| {
        Rejection::new(
            RejectionCode::RegionCodeInvalid,
            format!("`{text}` is not a six-digit division code such as 110000"),
        )
        .field(field)
    })
}

pub fn parse_date(text: &str, field: &str) -> Result<Date, Rejection> {
    text.parse::<Date>().ok().filter(|_| text.len() == 10).ok_or_else(|| {
        Rejection::new(
            RejectionCode::DateOfServiceInvalid,
            format!("`{text}` is not a calendar date written YYYY-MM-DD"),
        )
        .field(field)
    })
}

/// A date of a request other than a bill's (a period's bound, a filing's start), refused with
/// the service code of what it belongs to.
pub fn parse_date_as(
    text: &str,
    field: &str,
    code: crate::ServiceCode,
) -> Result<Date, crate::ServiceError> {
    parse_date(text, field)
        .map_err(|rejection| crate::ServiceError::new(code, rejection.message).field(field))
}

/// Reads a required name from a closed vocabulary, rejecting unknown names with `code`.
fn vocabulary<T>(
    value: &Option<Scalar>,
    field: &str,
    what: &str,
    parse: impl Fn(&str) -> Option<T>,
    (code, codes): (RejectionCode, String),
) -> Result<T, Rejection> {
    let text = require(value, field, what)?;
    parse(text).ok_or_else(|| {
        let message = format!("`{text}` is not {what}; expected one of: {codes}");
        Rejection::new(code, message).field(field)
    })
}

impl BillDto {
    /// Checks every field, in the order of the rejection codes.
    pub fn parse(&self) -> Result<Bill, Rejection> {
        let date_text =
            require(&self.date_of_service, "date_of_service", "the date of service, YYYY-MM-DD")?;
        let date_of_service = parse_date(date_text, "date_of_service")?;
        let region_what = "the division code of the place of treatment";
        let region_text = require(&self.treatment_region, "treatment_region", region_what)?;
        let treatment_region = parse_region(region_text, "treatment_region")?;
        let visit = vocabulary(
            &self.visit,
            "visit",
            "a visit type",
            VisitType::parse,
            (RejectionCode::VisitTypeUnknown, VisitType::codes()),
        )?;
        let level = vocabulary(
            &self.level,
            "level",
            "a hospital level",
            HospitalLevel::parse,
            (RejectionCode::HospitalLevelUnknown, HospitalLevel::codes()),
        )?;
        let admission_number = self.admission_number.as_ref().map(parse_admission).transpose()?;
        let filing = match self.filing.as_ref().map(Scalar::as_str).filter(|s| !s.is_empty()) {
            None => None,
            Some(text) => Some(FilingKind::parse(text).ok_or_else(|| {
                let message = format!(
                    "`{text}` is not a filing kind; expected one of: {} (leave `filing` out \
                     for care without a filing, 未备案)",
                    FilingKind::codes()
                );
                Rejection::new(RejectionCode::FilingKindUnknown, message).field("filing")
            })?),
        };
        let disease = parse_disease(self.disease.as_ref())?;
        let days = self.days.as_ref().map(parse_days).transpose()?;
        let lines = parse_lines(self.lines.as_deref().unwrap_or_default())?;
        Ok(Bill {
            date_of_service,
            treatment_region,
            visit,
            level,
            admission_number,
            use_personal_account: self.use_personal_account.unwrap_or(true),
            filing,
            disease,
            days,
            lines,
        })
    }
}

/// A disease code, trimmed; empty means none.
pub fn parse_disease(text: Option<&Scalar>) -> Result<Option<String>, Rejection> {
    let Some(text) = text.map(|t| t.as_str().trim()).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if onestop_core::claim::is_disease_code(text) {
        return Ok(Some(text.to_owned()));
    }
    let shown: String = text.chars().take(40).collect();
    let message = format!(
        "{} `{shown}` is not a disease code: 1 to {} letters, digits, `.`, `-` and `_`",
        RejectionCode::DiseaseInvalid.zh(),
        onestop_core::claim::DISEASE_CODE_MAX
    );
    Err(Rejection::new(RejectionCode::DiseaseInvalid, message).field("disease"))
}

fn parse_admission(text: &Scalar) -> Result<u16, Rejection> {
    let number = text.as_str().parse::<u16>().ok();
    number.filter(|n| (1..=ADMISSION_NUMBER_MAX).contains(n)).ok_or_else(|| {
        let message = format!(
            "`{}` is not an admission number from 1 to {ADMISSION_NUMBER_MAX}",
            text.as_str()
        );
        Rejection::new(RejectionCode::AdmissionNumberOutOfRange, message).field("admission_number")
    })
}

/// A bill's days (住院天数, 护理天数): a whole number from 1 to [`DAYS_MAX`].
pub fn parse_days(text: &Scalar) -> Result<u16, Rejection> {
    // Digits alone: `+30` and `30.0` are typing slips, not days.
    let digits = text.as_str();
    let number = digits.bytes().all(|b| b.is_ascii_digit()).then(|| digits.parse::<u16>().ok());
    number.flatten().filter(|n| (1..=DAYS_MAX).contains(n)).ok_or_else(|| {
        let shown: String = text.as_str().chars().take(40).collect();
        let message = format!("`{shown}` is not a whole number of days from 1 to {DAYS_MAX}");
        Rejection::new(RejectionCode::DaysOutOfRange, message).field("days")
    })
}

pub fn parse_lines(dtos: &[LineDto]) -> Result<Vec<Line>, Rejection> {
    if dtos.is_empty() {
        let rejection =
            Rejection::new(RejectionCode::BillMustHaveLines, "the bill has no fee lines");
        return Err(rejection.field("lines"));
    }
    if dtos.len() > LINES_COUNT_MAX {
        let message = format!("{} lines; a bill has at most {LINES_COUNT_MAX}", dtos.len());
        return Err(Rejection::new(RejectionCode::LinesCountExceedsMax, message).field("lines"));
    }
    let lines = dtos.iter().enumerate().map(|(index, dto)| dto.parse(index));
    let lines: Vec<Line> = lines.collect::<Result<_, _>>()?;
    let total: Fen = lines.iter().map(|line| line.amount).sum();
    if total > BILL_AMOUNT_MAX {
        let message = format!("the bill totals {total}; at most {BILL_AMOUNT_MAX}");
        return Err(Rejection::new(RejectionCode::BillAmountExceedsMax, message).field("lines"));
    }
    Ok(lines)
}

fn decimal_error(
    code: RejectionCode,
    text: &str,
    error: DecimalParseError,
    field: &str,
) -> Rejection {
    Rejection::new(code, format!("`{text}` {error}")).field(field)
}

impl LineDto {
    fn parse(&self, index: usize) -> Result<Line, Rejection> {
        let field = |name: &str| format!("lines[{index}].{name}");
        let code = self.code.clone().unwrap_or_default();
        check_text(&code, &field("code"))?;
        let name = self.name.clone().unwrap_or_default();
        check_text(&name, &field("name"))?;
        let parse_class = |text: &str| CatalogClass::parse(&text.to_ascii_lowercase());
        let class = vocabulary(
            &self.class,
            &field("class"),
            "a catalog class",
            parse_class,
            (RejectionCode::LineClassUnknown, CatalogClass::codes()),
        )?;
        let amount_text = require(&self.amount, &field("amount"), "the line's amount in yuan")?;
        let amount = amount(amount_text, &field("amount"))?;
        if amount > LINE_AMOUNT_MAX {
            let message = format!("{amount} exceeds {LINE_AMOUNT_MAX}");
            let rejection = Rejection::new(RejectionCode::LineAmountExceedsMax, message);
            return Err(rejection.field(field("amount")));
        }
        let quantity = match &self.quantity {
            None => Quantity::ONE,
            Some(text) => parse_quantity(text, &field("quantity"))?,
        };
        let unit_price = match parse_price(&self.unit_price, &field("unit_price"))? {
            Some(unit_price) => {
                let expected = unit_price.extend(quantity, Rounding::HalfUp);
                if expected != amount {
                    let message = format!(
                        "{quantity} × {unit_price} = {expected}, but the amount is {amount}"
                    );
                    let code = RejectionCode::LineAmountMustEqualQuantityTimesUnitPrice;
                    return Err(Rejection::new(code, message).field(field("amount")));
                }
                unit_price
            }
            None if self.quantity.is_none() => UnitPrice::from_fen(amount),
            None => {
                let what = "a line that gives a quantity gives its unit price too";
                return Err(missing(&field("unit_price"), what));
            }
        };
        let price_limit = parse_price(&self.price_limit, &field("price_limit"))?;
        Ok(Line { code, name, class, quantity, unit_price, amount, price_limit })
    }
}

fn parse_quantity(text: &Scalar, field: &str) -> Result<Quantity, Rejection> {
    let code = RejectionCode::LineQuantityInvalid;
    let quantity = Quantity::parse(text.as_str())
        .map_err(|error| decimal_error(code, text.as_str(), error, field))?;
    if quantity.0 > 0 && quantity <= Quantity::MAX {
        return Ok(quantity);
    }
    let message = format!("`{}` must be above 0 and at most {}", text.as_str(), Quantity::MAX);
    Err(Rejection::new(code, message).field(field))
}

fn parse_price(value: &Option<Scalar>, field: &str) -> Result<Option<UnitPrice>, Rejection> {
    let code = RejectionCode::LineUnitPriceInvalid;
    let parse = |text: &Scalar| {
        UnitPrice::parse(text.as_str())
            .map_err(|error| decimal_error(code, text.as_str(), error, field))
    };
    value.as_ref().map(parse).transpose()
}

impl PersonDto {
    pub fn parse(&self) -> Result<Person, Rejection> {
        let region_text = require(
            &self.insured_region,
            "insured_region",
            "the division code where the person is insured",
        )?;
        let insured_region = parse_region(region_text, "insured_region")?;
        let category_text = require(&self.category, "category", "the person's category")?;
        let category = Category::parse(category_text).ok_or_else(|| {
            Rejection::new(
                RejectionCode::CategoryUnknown,
                format!(
                    "`{category_text}` is not a category; expected one of: {}",
                    Category::codes()
                ),
            )
            .field("category")
        })?;
        let age_text = require(&self.age, "age", "the person's age in years")?;
        let age = age_text.parse::<u8>().ok().filter(|age| *age <= AGE_MAX).ok_or_else(|| {
            Rejection::new(
                RejectionCode::AgeOutOfRange,
                format!("`{age_text}` is not an age from 0 to {AGE_MAX}"),
            )
            .field("age")
        })?;
        let assistance = match self
            .assistance
            .as_ref()
            .map(Scalar::as_str)
            .filter(|s| !s.is_empty() && *s != "none")
        {
            None => None,
            Some(text) => Some(AssistanceCategory::parse(text).ok_or_else(|| {
                Rejection::new(
                    RejectionCode::AssistanceCategoryUnknown,
                    format!(
                        "`{text}` is not an assistance category; expected one of: {}",
                        AssistanceCategory::codes()
                    ),
                )
                .field("assistance")
            })?),
        };
        let account_balance = match &self.account_balance {
            None => Fen::ZERO,
            Some(text) => Fen::parse_yuan(text.as_str())
                .ok()
                .filter(|fen| *fen >= Fen::ZERO)
                .ok_or_else(|| {
                    Rejection::new(
                        RejectionCode::AccountBalanceInvalid,
                        format!("`{}` is not a non-negative amount of yuan", text.as_str()),
                    )
                    .field("account_balance")
                })?,
        };
        Ok(Person {
            insured_region,
            category,
            age,
            assistance,
            needy: self.needy.unwrap_or(false),
            civil_servant: self.civil_servant.unwrap_or(false),
            enterprise_supplementary: self.enterprise_supplementary.unwrap_or(false),
            account_balance,
        })
    }
}

impl YtdDto {
    /// Parses accumulators; with no `year`, they are taken to be `default_year`'s.
    pub fn parse(&self, default_year: i16) -> Result<Accumulators, Rejection> {
        let invalid = |field: &str, message: String| {
            Rejection::new(RejectionCode::AccumulatorInvalid, message).field(field)
        };
        let year = match &self.year {
            None => default_year,
            Some(text) => {
                text.as_str().parse::<i16>().ok().filter(|y| (1900..=9999).contains(y)).ok_or_else(
                    || invalid("ytd.year", format!("`{}` is not a year", text.as_str())),
                )?
            }
        };
        let mut accumulators = Accumulators::new(year);
        if let Some(text) = &self.admissions {
            accumulators.admissions = text
                .as_str()
                .parse::<u16>()
                .ok()
                .filter(|n| *n <= ADMISSION_NUMBER_MAX)
                .ok_or_else(|| {
                    invalid(
                        "ytd.admissions",
                        format!("`{}` is not a number of admissions", text.as_str()),
                    )
                })?;
        }
        for (tier, pools) in &self.tiers {
            for (pool, counters) in pools {
                for (counter, value) in counters {
                    let field = format!("ytd.tiers.{tier}.{pool}.{counter}");
                    let counter = Counter::parse(counter).ok_or_else(|| {
                        let known = Counter::ALL.map(Counter::code).join(", ");
                        invalid(
                            &field,
                            format!("unknown counter `{counter}`; expected one of: {known}"),
                        )
                    })?;
                    let fen = Fen::parse_yuan(value.as_str())
                        .ok()
                        .filter(|fen| *fen >= Fen::ZERO)
                        .ok_or_else(|| {
                            invalid(
                                &field,
                                format!(
                                    "`{}` is not a non-negative amount of yuan",
                                    value.as_str()
                                ),
                            )
                        })?;
                    let key = AccumulatorKey {
                        tier: Arc::from(tier.as_str()),
                        pool: Arc::from(pool.as_str()),
                        counter,
                    };
                    accumulators.add(&key, fen);
                }
            }
        }
        Ok(accumulators)
    }

    /// The wire form of accumulators.
    pub fn from_core(accumulators: &Accumulators) -> YtdDto {
        let mut tiers: BTreeMap<String, BTreeMap<String, BTreeMap<String, Scalar>>> =
            BTreeMap::new();
        for (key, value) in accumulators.entries() {
            tiers
                .entry(key.tier.to_string())
                .or_default()
                .entry(key.pool.to_string())
                .or_default()
                .insert(key.counter.code().to_owned(), Scalar(value.to_string()));
        }
        YtdDto {
            year: Some(Scalar(accumulators.year.to_string())),
            admissions: Some(Scalar(accumulators.admissions.to_string())),
            tiers,
        }
    }
}

/// A claim as one document: the bill, with the person and accumulators beside it.
#[derive(Clone, Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ClaimDto {
    pub bill: BillDto,
    pub person: PersonDto,
    #[serde(default)]
    pub ytd: Option<YtdDto>,
}

impl ClaimDto {
    pub fn parse(&self) -> Result<(Claim, Accumulators), Rejection> {
        fn within(section: &'static str) -> impl Fn(Rejection) -> Rejection {
            move |rejection| Rejection {
                field: rejection.field.map(|field| format!("{section}.{field}")),
                ..rejection
            }
        }
        let bill = self.bill.parse().map_err(within("bill"))?;
        let person = self.person.parse().map_err(within("person"))?;
        let year = bill.date_of_service.year();
        let mut ytd = self.ytd.clone().unwrap_or_default().parse(year)?;
        completed(&mut ytd)?;
        Ok((Claim { bill, person }, ytd))
    }
}

/// Checks and completes a coinsurance pool's three counters written by hand: the in-scope
/// amount of the year is what fell under the deductible plus what was above it, so `in_scope =
/// deductible_met + eligible`. A counter left out is derived from the other two (a lone
/// `deductible_met` or `eligible` gives `in_scope`); three that disagree are refused.
fn completed(ytd: &mut Accumulators) -> Result<(), Rejection> {
    let mut pools: Vec<(Arc<str>, Arc<str>)> = ytd
        .entries()
        .iter()
        .filter(|(key, _)| {
            matches!(key.counter, Counter::InScope | Counter::DeductibleMet | Counter::Eligible)
        })
        .map(|(key, _)| (Arc::clone(&key.tier), Arc::clone(&key.pool)))
        .collect();
    pools.sort();
    pools.dedup();
    for (tier, pool) in pools {
        let given = |counter: Counter| {
            ytd.entries()
                .iter()
                .any(|(k, _)| k.tier == tier && k.pool == pool && k.counter == counter)
        };
        let (has_in_scope, has_eligible) = (given(Counter::InScope), given(Counter::Eligible));
        let has_met = given(Counter::DeductibleMet);
        let in_scope = ytd.get(&tier, &pool, Counter::InScope);
        let met = ytd.get(&tier, &pool, Counter::DeductibleMet);
        let eligible = ytd.get(&tier, &pool, Counter::Eligible);
        let field = |counter: Counter| format!("ytd.tiers.{tier}.{pool}.{}", counter.code());
        let key =
            |counter| AccumulatorKey { tier: Arc::clone(&tier), pool: Arc::clone(&pool), counter };
        if !has_in_scope {
            ytd.add(&key(Counter::InScope), met + eligible);
        } else if !has_met && eligible <= in_scope {
            ytd.add(&key(Counter::DeductibleMet), in_scope - eligible);
        } else if met > in_scope {
            let message = format!(
                "deductible_met {met} is more than in_scope {in_scope}: the deductible is met \
                 out of the in-scope amount (起付线累计不能超过政策范围内累计)"
            );
            return Err(Rejection::new(RejectionCode::AccumulatorInvalid, message)
                .field(field(Counter::DeductibleMet)));
        } else if !has_eligible {
            ytd.add(&key(Counter::Eligible), in_scope - met);
        } else if met + eligible != in_scope {
            let message = format!(
                "deductible_met {met} + eligible {eligible} is not in_scope {in_scope}: the year's \
                 in-scope amount is what fell under the deductible plus what was above it (政策范围内\
                 累计 = 起付线累计 + 起付线以上累计); leave `eligible` out to have it derived"
            );
            return Err(Rejection::new(RejectionCode::AccumulatorInvalid, message)
                .field(field(Counter::Eligible)));
        }
    }
    Ok(())
}
